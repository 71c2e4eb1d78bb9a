//! The key layout before hash tags (`runnerctl:NAME:…`) moves to today's (`runnerctl:{NAME}:…`)
//! by itself the first time the new version connects: records, queued tasks (with their
//! consumer group and pending entries), dead letters and counters, nothing lost, nothing left
//! under the old prefix, and only once.

mod support;

use redis::AsyncCommands;
use runnerctl::model::{key_prefix, old_key_prefix, Runner};
use runnerctl::queue::{Queue, QueueOptions, Task};
use runnerctl::store::{self, RedisStore, Want};
use support::{manager_name, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_layout_moves_to_hash_tagged_keys_on_its_own() {
    let redis = RedisServer::start();
    let name = manager_name("layout");
    let conn = store::connect(&redis.url).await.unwrap();
    // Today's writes, then every key moved back under the old prefix: the old layout exactly,
    // since the prefix is all that changed.
    let s = RedisStore::new(conn.clone(), &name);
    for i in 0..3 {
        let r = Runner::reserved(
            format!("{name}-demo-{i}"),
            "demo",
            "fake",
            vec!["demo".into()],
            None,
            1,
        );
        s.reserve(&r, 5, Want::Explicit).await.unwrap();
    }
    let q = Queue::new(conn.clone(), &name, QueueOptions::default());
    for g in ["a", "b"] {
        q.enqueue(
            Task::GroupHealthCheck { group: g.into() },
            Some(format!("k-{g}")),
        )
        .await
        .unwrap();
    }
    s.count_mark("hello").await.unwrap();
    let mut c = conn.clone();
    let keys: Vec<String> = c.keys(format!("{}*", key_prefix(&name))).await.unwrap();
    assert!(keys.len() >= 5, "{keys:?}");
    for k in &keys {
        let old = k.replacen(&key_prefix(&name), &old_key_prefix(&name), 1);
        let _: () = c.rename(k, &old).await.unwrap();
    }

    // The new version's first command moves them.
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), &name, &redis.url, "");
    let out = std::process::Command::new(support::bin())
        .args(["-o", "json", "--config"])
        .arg(&config)
        .args(["tasks", "list"])
        .env("GITHUB_TOKEN", "t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.contains("group_health_check"), "{listed}");
    let old: Vec<String> = c.keys(format!("{}*", old_key_prefix(&name))).await.unwrap();
    assert!(old.is_empty(), "left under the old prefix: {old:?}");
    assert_eq!(s.all_runners().await.unwrap().len(), 3);
    assert_eq!(s.mark("hello").await.unwrap(), 1);
    let tasks = q.list().await.unwrap();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    // The dedup keys moved too: the same tasks are not queued again.
    assert!(
        q.enqueue(
            Task::GroupHealthCheck { group: "a".into() },
            Some("k-a".into())
        )
        .await
        .unwrap()
        .duplicate
    );
    // Once: the marker says so, and a second run moves nothing.
    assert_eq!(store::migrate_layout(&conn, &name).await.unwrap(), 0);
}
