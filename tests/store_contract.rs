//! One contract for the runner store port, run against both implementations: the Redis store
//! (a real redis-server) and the in-memory store (on a virtual clock). Every property the
//! life cycle relies on is here: reservation against `max_runners`, demand accounting with
//! waiting and started jobs and the free-runner rule, conditional updates, removal, history,
//! locks (exclusive, shared, expiry, renewal and release by the holder only), the data
//! marker, suspects' first sight, counters and cursors.

mod support;

use runnerctl::clock::VirtualClock;
use runnerctl::memory::MemoryStore;
use runnerctl::model::{Pool, Runner, RunnerStatus};
use runnerctl::records::RunnerStore;
use runnerctl::store::{Also, RedisStore, Reservation, RunnerPatch, Transition, Want};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use support::{manager_name, RedisServer};

/// Lets time pass for the store under test.
type Pass = Box<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

async fn record(s: &dyn RunnerStore, name: &str, group: &str) -> Runner {
    let now = s.now().await.unwrap();
    Runner::reserved(name, group, "fake", vec!["self-hosted".into()], None, now)
}

async fn reservation_holds_max_runners(s: &dyn RunnerStore) {
    let a = record(s, "cap-a", "cap").await;
    let b = record(s, "cap-b", "cap").await;
    let c = record(s, "cap-c", "cap").await;
    assert_eq!(
        s.reserve(&a, 2, Want::Explicit).await.unwrap(),
        Reservation::Reserved { held: 1 }
    );
    assert_eq!(
        s.reserve(&b, 2, Want::Explicit).await.unwrap(),
        Reservation::Reserved { held: 2 }
    );
    assert_eq!(
        s.reserve(&c, 2, Want::Explicit).await.unwrap(),
        Reservation::Full { held: 2 }
    );
    assert_eq!(
        s.reserve(&a, 2, Want::Explicit).await.unwrap(),
        Reservation::Exists
    );
    assert!(s.remove(&a.name).await.unwrap());
    assert!(!s.remove(&a.name).await.unwrap(), "removed twice");
    assert_eq!(
        s.reserve(&c, 2, Want::Explicit).await.unwrap(),
        Reservation::Reserved { held: 2 }
    );
    let mut names: Vec<String> = s
        .runners_of_group("cap")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    assert_eq!(names, ["cap-b", "cap-c"]);
}

async fn demand_is_met_by_free_runners_only(s: &dyn RunnerStore) {
    let demand = Want::Demand { min_free: 0 };
    let first = record(s, "dem-1", "dem").await;
    assert_eq!(
        s.reserve(&first, 9, demand).await.unwrap(),
        Reservation::Covered {
            free: 0,
            waiting: 0
        },
        "no job waits"
    );
    let also = Also {
        waiting: Some((101, Duration::from_secs(3600))),
        ..Also::default()
    };
    let (got, _) = s.reserve_noting(&first, 9, demand, also).await.unwrap();
    assert_eq!(got, Reservation::Reserved { held: 1 });
    assert_eq!(s.waiting_jobs("dem").await.unwrap(), [101]);
    // The same job again (a repeated delivery): the fresh reservation covers it.
    let second = record(s, "dem-2", "dem").await;
    let (got, _) = s.reserve_noting(&second, 9, demand, also).await.unwrap();
    assert_eq!(
        got,
        Reservation::Covered {
            free: 1,
            waiting: 1
        }
    );
    // The runner took another job: it is not free, and job 101 needs one.
    s.update(
        &first.name,
        Some(RunnerStatus::Active),
        &[],
        &RunnerPatch {
            job_id: Some(Some(555)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.supply("dem").await.unwrap(), (1, 0));
    // The job started: it waits no more, and a replayed delivery adds no demand.
    let read = s
        .mark_job_started(&["dem".to_string()], 101, Some(&first.name))
        .await
        .unwrap();
    assert_eq!(read.map(|r| r.job_id), Some(Some(555)));
    assert!(s.job_started(101).await.unwrap());
    assert_eq!(s.waiting("dem").await.unwrap(), 0);
    let (got, _) = s.reserve_noting(&second, 9, demand, also).await.unwrap();
    assert!(
        matches!(got, Reservation::Covered { waiting: 0, .. }),
        "{got:?}"
    );
    // min_free asks for free runners with no job waiting.
    let (got, _) = s
        .reserve_noting(&second, 9, Want::Demand { min_free: 1 }, Also::default())
        .await
        .unwrap();
    assert_eq!(got, Reservation::Reserved { held: 2 });
}

async fn abandon_gives_up_only_a_covered_unmade_reservation(s: &dyn RunnerStore) {
    let also = Also {
        waiting: Some((202, Duration::from_secs(3600))),
        ..Also::default()
    };
    let a = record(s, "ab-a", "ab").await;
    let b = record(s, "ab-b", "ab").await;
    s.reserve_noting(&a, 9, Want::Explicit, also).await.unwrap();
    s.reserve(&b, 9, Want::Explicit).await.unwrap();
    // One job waits, and the other (fresh) reservation covers it.
    assert!(s.abandon_if_covered("ab", &a.name, 0).await.unwrap());
    assert!(s.get(&a.name).await.unwrap().is_none());
    // The last one is needed.
    assert!(!s.abandon_if_covered("ab", &b.name, 0).await.unwrap());
    // A registered one is never given up.
    s.update(
        &b.name,
        None,
        &[],
        &RunnerPatch {
            forge_id: Some(Some(9)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!s.abandon_if_covered("ab", &b.name, 0).await.unwrap());
}

async fn updates_are_conditional_and_read_back(s: &dyn RunnerStore) {
    let r = record(s, "up-1", "up").await;
    s.reserve(&r, 9, Want::Explicit).await.unwrap();
    let (t, after) = s
        .update_reading(
            &r.name,
            Some(RunnerStatus::Creating),
            &[RunnerStatus::Reserved],
            &RunnerPatch {
                forge_id: Some(Some(77)),
                error: Some(Some("boom".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t, Transition::Done(RunnerStatus::Reserved));
    let after = after.unwrap();
    assert_eq!(
        (after.status, after.forge_id, after.error.as_deref()),
        (RunnerStatus::Creating, Some(77), Some("boom"))
    );
    assert_eq!(s.get(&r.name).await.unwrap(), Some(after));
    assert_eq!(
        s.update(
            &r.name,
            Some(RunnerStatus::Idle),
            &[RunnerStatus::Reserved],
            &RunnerPatch::default()
        )
        .await
        .unwrap(),
        Transition::Refused(RunnerStatus::Creating)
    );
    // `Some(None)` clears.
    s.update(
        &r.name,
        None,
        &[],
        &RunnerPatch {
            error: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.get(&r.name).await.unwrap().unwrap().error, None);
    assert_eq!(
        s.update("up-none", None, &[], &RunnerPatch::default())
            .await
            .unwrap(),
        Transition::Missing
    );
}

async fn history_follows_a_runner_past_its_record(s: &dyn RunnerStore) {
    let r = record(s, "hist-1", "hist").await;
    s.reserve_noting(
        &r,
        9,
        Want::Explicit,
        Also {
            detail: "for queued job 5",
            ..Also::default()
        },
    )
    .await
    .unwrap();
    s.update(
        &r.name,
        Some(RunnerStatus::Started),
        &[],
        &RunnerPatch {
            instance_id: Some(Some("i-1".into())),
            started_at: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // No change of status: no entry.
    s.update(
        &r.name,
        Some(RunnerStatus::Started),
        &[],
        &RunnerPatch::default(),
    )
    .await
    .unwrap();
    s.remove(&r.name).await.unwrap();
    let h: Vec<(String, String)> = s
        .history(&r.name)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.detail))
        .collect();
    assert_eq!(
        h,
        [
            ("reserved".to_string(), "for queued job 5".to_string()),
            ("started".to_string(), "instance_id=i-1".to_string()),
            ("removed".to_string(), "its slot released".to_string()),
        ]
    );
}

async fn locks_belong_to_their_holder_and_expire(s: &dyn RunnerStore, pass: &Pass) {
    let ttl = Duration::from_millis(300);
    let t = s.try_lock("l", ttl).await.unwrap().unwrap();
    assert!(s.try_lock("l", ttl).await.unwrap().is_none());
    s.unlock("l", "not-the-holder").await.unwrap();
    assert!(s.try_lock("l", ttl).await.unwrap().is_none());
    assert!(!s.renew_lock("l", "not-the-holder", ttl).await.unwrap());
    assert!(s.renew_lock("l", &t, ttl).await.unwrap());
    s.unlock("l", &t).await.unwrap();
    let t = s.try_lock("l", ttl).await.unwrap().unwrap();
    pass(Duration::from_millis(700)).await;
    assert!(
        !s.renew_lock("l", &t, ttl).await.unwrap(),
        "renewed after expiry"
    );
    assert!(
        s.try_lock("l", ttl).await.unwrap().is_some(),
        "held after expiry"
    );
    // Shared holds: many at once, none while it is held alone, and the other way round.
    let a = s.try_lock_shared("sh", ttl).await.unwrap().unwrap();
    let b = s.try_lock_shared("sh", ttl).await.unwrap().unwrap();
    assert!(s.try_lock_exclusive("sh", ttl).await.unwrap().is_none());
    s.unlock_shared("sh", &a).await.unwrap();
    s.unlock_shared("sh", &b).await.unwrap();
    let x = s.try_lock_exclusive("sh", ttl).await.unwrap().unwrap();
    assert!(s.try_lock_shared("sh", ttl).await.unwrap().is_none());
    s.unlock("sh", &x).await.unwrap();
    s.try_lock_shared("sh", ttl).await.unwrap().unwrap();
    pass(Duration::from_millis(700)).await;
    assert!(
        s.try_lock_exclusive("sh", ttl).await.unwrap().is_some(),
        "a dead holder's shared hold kept the lock"
    );
    // A reservation takes the runner's lock in the same step.
    let r = record(s, "lk-1", "lk").await;
    let (_, token) = s
        .reserve_noting(
            &r,
            9,
            Want::Explicit,
            Also {
                lock: Some(("runner:lk-1", ttl)),
                ..Also::default()
            },
        )
        .await
        .unwrap();
    let token = token.expect("the reservation took the lock");
    assert!(s.try_lock("runner:lk-1", ttl).await.unwrap().is_none());
    s.unlock("runner:lk-1", &token).await.unwrap();
}

async fn waiting_jobs_expire(s: &dyn RunnerStore, pass: &Pass) {
    let r = record(s, "exp-1", "exp").await;
    let also = Also {
        waiting: Some((303, Duration::from_secs(1))),
        ..Also::default()
    };
    s.reserve_noting(&r, 0, Want::Explicit, also).await.unwrap();
    assert_eq!(s.waiting("exp").await.unwrap(), 1);
    pass(Duration::from_millis(2_200)).await;
    assert_eq!(s.waiting("exp").await.unwrap(), 0);
    assert!(s.waiting_jobs("exp").await.unwrap().is_empty());
}

async fn the_marker_is_written_once(s: &dyn RunnerStore) {
    let now = s.now().await.unwrap();
    let (peeked, missing) = s.peek_marker(Duration::from_secs(60), now).await.unwrap();
    assert!(missing);
    assert_eq!(peeked.hold_until, now + 60);
    let (m, written) = s.marker(Duration::ZERO).await.unwrap();
    assert!(written);
    assert_eq!(m.hold_until, 0);
    let (again, written) = s.marker(Duration::from_secs(60)).await.unwrap();
    assert!(!written);
    assert_eq!(again, m);
    assert_eq!(
        s.peek_marker(Duration::ZERO, now).await.unwrap(),
        (m, false)
    );
}

async fn suspects_are_seen_first_once(s: &dyn RunnerStore, pass: &Pass) {
    let ab = ["a".to_string(), "b".to_string()];
    let first = s.first_seen("sus", &ab).await.unwrap();
    pass(Duration::from_millis(1_100)).await;
    let later = s.now().await.unwrap();
    assert_eq!(s.peek_first_seen("sus", &ab, later).await.unwrap(), first);
    // `a` is no longer suspected: forgotten, and new when it comes back.
    s.first_seen("sus", &ab[1..]).await.unwrap();
    let again = s.first_seen("sus", &ab).await.unwrap();
    assert_eq!(again[1], first[1]);
    assert!(again[0] > first[0], "{again:?} {first:?}");
}

async fn counters_and_cursors_count(s: &dyn RunnerStore) {
    assert_eq!(s.count_mark("m:x").await.unwrap(), 1);
    assert_eq!(s.count_mark("m:x").await.unwrap(), 2);
    assert_eq!(s.marks_with_prefix("m:").await.unwrap(), [("x".into(), 2)]);
    assert_eq!(s.peek_cursor("c").await.unwrap(), 0);
    assert_eq!(s.next_cursor("c").await.unwrap(), 0);
    assert_eq!(s.next_cursor("c").await.unwrap(), 1);
    assert_eq!(s.peek_cursor("c").await.unwrap(), 2);
    s.note_token_use("orgs/o").await.unwrap();
    s.note_token_use("orgs/o").await.unwrap();
    assert_eq!(s.token_state("orgs/o").await.unwrap(), (2, None));
    s.token_replaced("orgs/o", 2, 1_000).await.unwrap();
    assert_eq!(s.token_state("orgs/o").await.unwrap(), (0, Some(1_000)));
}

/// A demand takes a warm-pool instance before it takes a new slot: a hot one first, then a
/// stopped one, the oldest of each first; the taken record is a creation for the job, locked
/// for the taker; a covered demand takes none, and no instance is taken twice.
async fn a_demand_takes_a_warm_instance_hot_first_and_never_twice(s: &dyn RunnerStore) {
    let now = s.now().await.unwrap();
    let warm = |name: &str, pool: Pool, age: u64| {
        let mut r = Runner::reserved(name, "wp", "fake", vec![], None, now - age);
        r.status = RunnerStatus::Warm;
        r.pool = Some(pool);
        r.instance_id = Some(format!("i-{name}"));
        r
    };
    for r in [
        warm("wp-stopped-old", Pool::Stopped, 300),
        warm("wp-hot-new", Pool::Hot, 10),
        warm("wp-hot-old", Pool::Hot, 200),
    ] {
        assert!(matches!(
            s.reserve(&r, 3, Want::Explicit).await.unwrap(),
            Reservation::Reserved { .. }
        ));
    }
    let job = |n: u64| Runner::reserved(format!("wp-job-{n}"), "wp", "fake", vec![], Some(n), now);
    let take = |n: u64| async move {
        let lock = format!("runner:wp-job-{n}");
        s.reserve_noting(
            &job(n),
            3,
            Want::Demand { min_free: 0 },
            Also {
                detail: "for queued job",
                lock: Some((&lock, Duration::from_secs(10))),
                waiting: Some((n, Duration::from_secs(600))),
            },
        )
        .await
        .unwrap()
    };
    let mut taken = Vec::new();
    for n in 1..=3 {
        let (r, token) = take(n).await;
        let Reservation::Warm { name } = r else {
            panic!("job {n} takes a warm instance, not {r:?}")
        };
        assert!(token.is_some(), "the taker holds its lock");
        assert!(s
            .try_lock(&format!("runner:{name}"), Duration::from_secs(10))
            .await
            .unwrap()
            .is_none());
        let rec = s.get(&name).await.unwrap().unwrap();
        assert_eq!(rec.status, RunnerStatus::Creating);
        assert_eq!(rec.created_for_job, Some(n));
        assert!(rec.created_at >= now, "a creation from now on");
        taken.push(name);
    }
    assert_eq!(taken, ["wp-hot-old", "wp-hot-new", "wp-stopped-old"]);
    // A demand the free runners cover takes nothing (a replayed delivery).
    assert!(matches!(take(1).await.0, Reservation::Covered { .. }));
    // The pool is empty and the group full: a fourth job waits for room.
    assert!(matches!(take(4).await.0, Reservation::Full { .. }));
}

async fn a_job_s_timeline_keeps_each_step_s_first_time(s: &dyn RunnerStore) {
    assert!(s.job_timeline(77).await.unwrap().is_empty());
    s.note_job(
        77,
        &[("queued", 1_000), ("delivered", 2_000)],
        &[("repository", "o/r")],
    )
    .await
    .unwrap();
    // Later notes of the same step (a retried task) change nothing; `0` is the store's now.
    s.note_job(
        77,
        &[("delivered", 9_000), ("decided", 0)],
        &[("runner", "r-77"), ("source", "hot")],
    )
    .await
    .unwrap();
    let t = s.job_timeline(77).await.unwrap();
    assert_eq!(t["queued"], "1000");
    assert_eq!(t["delivered"], "2000", "the first time wins");
    let now_ms = s.now().await.unwrap() * 1000;
    let decided: u64 = t["decided"].parse().unwrap();
    assert!(
        decided + 2_000 >= now_ms && decided <= now_ms + 2_000,
        "{decided} vs {now_ms}"
    );
    assert_eq!(t["runner"], "r-77");
    assert_eq!(t["source"], "hot");
    assert_eq!(t["repository"], "o/r");
    assert!(s.job_timeline(78).await.unwrap().is_empty());
}

async fn contract(s: &dyn RunnerStore, pass: Pass) {
    // First: a reservation writes the marker when it is missing.
    the_marker_is_written_once(s).await;
    reservation_holds_max_runners(s).await;
    demand_is_met_by_free_runners_only(s).await;
    abandon_gives_up_only_a_covered_unmade_reservation(s).await;
    updates_are_conditional_and_read_back(s).await;
    history_follows_a_runner_past_its_record(s).await;
    locks_belong_to_their_holder_and_expire(s, &pass).await;
    waiting_jobs_expire(s, &pass).await;
    suspects_are_seen_first_once(s, &pass).await;
    counters_and_cursors_count(s).await;
    a_demand_takes_a_warm_instance_hot_first_and_never_twice(s).await;
    a_job_s_timeline_keeps_each_step_s_first_time(s).await;
}

#[tokio::test]
async fn the_redis_store_keeps_the_contract() {
    let redis = RedisServer::start();
    let s = RedisStore::connect(&redis.url, &manager_name("contract"))
        .await
        .unwrap();
    contract(&s, Box::new(|d| Box::pin(tokio::time::sleep(d)))).await;
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    let clock = Arc::new(VirtualClock::new(1_790_000_000_000));
    let s = MemoryStore::new(clock.clone());
    contract(
        &s,
        Box::new(move |d| {
            clock.advance(d);
            Box::pin(async {})
        }),
    )
    .await;
}
