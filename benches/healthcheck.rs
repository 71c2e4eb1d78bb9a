//! A health-check pass over 1,000 runners: wall time and GitHub calls. The group has 1,000
//! idle runners, each with its record in Redis, its registration on the fake GitHub and its
//! instance on the fake backend, so the pass reads everything and has nothing to fix.
//!
//! Run: `cargo bench --bench healthcheck`. Without `--bench` it uses 100 runners, to check that
//! it works.

#[path = "../tests/support/mod.rs"]
mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::{Backend, BootData, CreateRequest, OwnerTags};
use runnerctl::config::Secret;
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::forge::sim::{Sim, SimOptions};
use runnerctl::manager::{sync, Manager};
use runnerctl::model::{unix_now, Runner, RunnerStatus};
use runnerctl::store::{self, RedisStore, Want};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let n: usize = if std::env::args().any(|a| a == "--bench") {
        1000
    } else {
        100
    };
    let redis = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = Sim::start(SimOptions {
            orgs: vec![("bench-org".into(), vec!["app".into()])],
            token: Some("t".into()),
            ..SimOptions::default()
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
        let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
        sync::sync(&*gh, &[&g], false, &|| {}).await;
        let conn = store::connect(&redis.url).await.unwrap();
        let st = RedisStore::new(conn, "bench");
        let backend = Arc::new(FakeBackend::new("fake", "bench", None, None));
        let now = unix_now();
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
                })
                .await
                .unwrap();
            let mut r = Runner::reserved(&name, "big", "fake", g.labels.clone(), None, now);
            r.status = RunnerStatus::Idle;
            r.forge_id = Some(id);
            r.instance_id = Some(inst.id);
            st.reserve(&r, n as u32, Want::Explicit).await.unwrap();
        }
        let forge: Arc<dyn Forge> = gh.clone();
        let backends: HashMap<String, Arc<dyn Backend>> =
            HashMap::from([("fake".to_string(), backend as Arc<dyn Backend>)]);
        let m = Manager::new(config.clone(), st, forge, backends);
        println!("| runners | pass time (median of 5) | GitHub calls per pass | actions |");
        println!("|---|---|---|---|");
        let mut times = Vec::new();
        let mut calls = 0;
        let mut actions = 0;
        for _ in 0..5 {
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
    });
}
