//! A health-check pass over N runners: wall time and GitHub calls, N given as a parameter, the
//! forge on the shared API budget as in a worker (passes 10 s apart, the shortest interval). The
//! group has N idle runners, each with its record in Redis, its registration on the fake GitHub
//! and its instance on the fake backend, so the pass reads everything and has nothing to fix.
//! Then the pass's pure decision (`plan::plan`) alone over N runners, for N up to 100,000 (more
//! than one group may hold: `max_runners` is at most 10,000).
//!
//! Run: `cargo bench --bench healthcheck -- --bench [--runners 1000,10000] [--plan
//! 1000,10000,100000]` (those are the defaults). Without `--bench` it uses 100 runners for the
//! pass and 1,000 for the plan, to check that it works. Goals (BENCHMARKS.md): a pass over 10,000
//! runners under 1 s with at most 1 + N/100 GitHub calls; the plan over 100,000 under 10 s.

#[path = "../tests/support/mod.rs"]
mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::{Backend, BootData, CreateRequest, Instance, InstanceState, OwnerTags};
use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::forge::{ForgeRunner, RunnerState};
use runnerctl::manager::plan::{self, Observed};
use runnerctl::manager::{sync, Manager};
use runnerctl::model::{unix_now, Runner, RunnerStatus};
use runnerctl::store::{self, RedisStore, Want};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The list after `flag` (`--runners 1000,10000`), or `default`.
fn counts(flag: &str, default: &[usize]) -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let passes = counts("--runners", if full { &[1000, 10_000] } else { &[100] });
    let plans = counts(
        "--plan",
        if full {
            &[1000, 10_000, 100_000]
        } else {
            &[1000]
        },
    );
    println!("| runners | pass time (median of 5) | GitHub calls per pass | actions |");
    println!("|---|---|---|---|");
    for n in passes {
        let (time, calls) = pass(n);
        if full && n >= 10_000 {
            assert!(
                time < Duration::from_secs(1),
                "a pass over {n} runners under 1 s"
            );
        }
        assert!(
            calls <= 1 + n / 100 + 2,
            "GitHub calls grow linearly: {calls} for {n}"
        );
    }
    println!();
    println!("| runners | plan alone (median of 5) |");
    println!("|---|---|");
    for n in plans {
        let t = plan_alone(n);
        println!("| {n} | {:.1} ms |", t.as_secs_f64() * 1000.0);
        if n <= 100_000 {
            assert!(
                t < Duration::from_secs(10),
                "the plan over {n} runners under 10 s"
            );
        }
    }
}

/// The pure plan over `n` idle runners, each registered and with its instance.
fn plan_alone(n: usize) -> Duration {
    let now = 1_000_000;
    let mut records = Vec::with_capacity(n);
    let mut forge = Vec::with_capacity(n);
    let mut instances = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("bench-big-{i:010x}");
        let mut r = Runner::reserved(&name, "big", "fake", vec![], None, now - 100);
        r.status = RunnerStatus::Idle;
        r.forge_id = Some(i as u64 + 1);
        r.instance_id = Some(format!("i-{i}"));
        r.started_at = Some(now - 90);
        r.online_at = Some(now - 80);
        forge.push(ForgeRunner {
            id: i as u64 + 1,
            name: name.clone(),
            state: RunnerState::Online,
            busy: false,
            labels: vec![],
            runner_group_id: Some(1),
        });
        let mut tags = BTreeMap::new();
        tags.insert(runnerctl::backend::TAG_RUNNER.to_string(), name.clone());
        instances.push(Instance {
            id: format!("i-{i}"),
            state: InstanceState::Running,
            tags,
            created_at: None,
            spot_fallback: false,
            identity: None,
            address: None,
        });
        records.push(r);
    }
    // Listings come back in their own order, not the records'.
    forge.reverse();
    let seen = BTreeMap::new();
    let o = Observed {
        now,
        listed_at: now - 1,
        min_runners: n as u32,
        max_runners: n as u32,
        time_to_start: 600,
        time_to_live: 43_200,
        cleanup_grace: 0,
        hold_until: 0,
        seen: &seen,
        records: &records,
        forge: &forge,
        instances: &instances,
        waiting_jobs: 0,
        forge_blind: None,
    };
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let actions = plan::plan(&o);
        times.push(t.elapsed());
        assert!(actions.is_empty(), "{:?}", actions.first());
    }
    times.sort();
    times[2]
}

/// A pass over `n` runners, printed as a row; its median time and its GitHub calls.
fn pass(n: usize) -> (Duration, usize) {
    let redis = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = FakeGitHub::start(FakeGitHubOptions {
            orgs: vec![("bench-org".into(), vec!["app".into()])],
            token: Some("t".into()),
            ..FakeGitHubOptions::default()
        })
        .await
        .unwrap();
        let text = format!(
            "name: bench\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: big\n    organization: bench-org\n    selected_repositories: [app]\n    labels: [self-hosted, big]\n    backend: fake\n    min_runners: {n}\n    max_runners: {n}\n",
            sim.url(),
            redis.url
        );
        let config = Arc::new(runnerctl::wiring::parse(&text, "bench").unwrap().config);
        let g = config.runner_groups[0].clone();
        let conn = store::connect(&redis.url).await.unwrap();
        // On the shared API budget, as the wiring builds a worker's forge.
        let gh = Arc::new(
            GitHub::new(&sim.url(), Auth::Token(Secret::new("t")))
                .unwrap()
                .with_budget(
                    Arc::new(runnerctl::budget::RedisBudget::on(conn.clone())),
                    runnerctl::budget::Limits::GITHUB,
                ),
        );
        sync::sync(&*gh, &[&g], false, &|| {}).await;
        let st = RedisStore::new(conn, "bench");
        let backend = Arc::new(FakeBackend::new("fake", "bench", None, None));
        let now = unix_now();
        let started = Instant::now();
        eprintln!("setting up {n} runners (records, registrations, instances)…");
        // Records are written 64 at a time (each reservation checks the group's capacity).
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..n {
            let name = format!("bench-big-{i:010x}");
            let id = sim.add_runner("orgs/bench-org", &name, &["self-hosted", "big"]);
            let inst = backend
                .create(&CreateRequest {
                    runner_name: name.clone(),
                    spec: g.spec.clone(),
                    boot: BootData::default(),
                    tags: OwnerTags {
                        manager: "bench".into(),
                        group: "big".into(),
                        runner: name.clone(),
                    },
                    warm: None,
                })
                .await
                .unwrap();
            let mut r = Runner::reserved(&name, "big", "fake", g.labels.clone(), None, now);
            r.status = RunnerStatus::Idle;
            r.forge_id = Some(id);
            r.instance_id = Some(inst.id);
            let st = st.clone();
            batch.spawn(async move { st.reserve(&r, n as u32, Want::Explicit).await.unwrap() });
            if batch.len() >= 64 {
                batch.join_next().await;
            }
        }
        while batch.join_next().await.is_some() {}
        eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());
        let forge: Arc<dyn Forge> = gh.clone();
        let backends: HashMap<String, Arc<dyn Backend>> =
            HashMap::from([("fake".to_string(), backend as Arc<dyn Backend>)]);
        let m = Manager::new(config.clone(), st, forge, backends);
        let mut times = Vec::new();
        let mut calls = 0;
        let mut actions = 0;
        for i in 0..5 {
            // Passes of one group come `healthcheck_interval` apart (10 s at the least): the
            // budget's read burst has refilled by then.
            if i > 0 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            let before = sim.requests().len();
            let t = Instant::now();
            let done = m.health_check(&g).await.unwrap();
            times.push(t.elapsed());
            calls = sim.requests().len() - before;
            actions = done.len();
        }
        times.sort();
        let runners_calls = sim
            .requests()
            .iter()
            .rev()
            .take(calls)
            .filter(|r| r.ends_with("/actions/runners"))
            .count();
        println!(
            "| {n} | {:.1} ms | {calls} ({runners_calls} to list the runners, {} for the lost-webhook scan) | {actions} |",
            times[2].as_secs_f64() * 1000.0,
            calls - runners_calls
        );
        (times[2], calls)
    })
}
