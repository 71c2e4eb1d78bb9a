//! Load generator for `runnerctl serve`: signed, realistic `workflow_job` deliveries over loopback
//! keep-alive connections to a running `serve` (the release binary) with Redis on the same
//! machine. Reports deliveries per second and p50/p99 latency at concurrency 1, 16 and 64, and
//! the resident memory of `serve`, for two loads: every delivery new (a job never seen, 7 KB:
//! GitHub's `queued` example fixture with its repository and labels set to the group's, so it is
//! verified, matched and queued) and every delivery repeated (one job under new delivery ids: the
//! cheaper duplicate path). Goal: new deliveries at concurrency 16 answered under 5 ms at p99.
//!
//! Run: `cargo bench --bench webhook`. Without `--bench` (as `cargo test --all-targets` runs it)
//! it does a run 100 times smaller, to check that it works.

#[path = "../tests/support/mod.rs"]
mod support;

use runnerctl::forge::github::webhook::sign;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use std::time::Instant;

const SECRET: &str = "bench-webhook-secret-0123";

/// What each delivery carries.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    /// A new job each time (its id in the body, signed again).
    New,
    /// The same job each time, under a new delivery id.
    Repeated,
}

/// The job id written in the template, 14 digits, replaced by another of the same width.
const TEMPLATE_ID: u64 = 10_000_000_000_000;

/// The next new job (added to [`TEMPLATE_ID`]): unique over the whole run.
static NEXT_JOB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Sends `n` deliveries on one keep-alive connection; returns each one's latency in µs. The body
/// is made and signed before the clock starts.
fn client(addr: SocketAddr, template: &str, load: Load, tag: usize, n: usize) -> Vec<u64> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut lat = Vec::with_capacity(n);
    let mut line = String::new();
    let fixed = template.replace(&TEMPLATE_ID.to_string(), &(TEMPLATE_ID - 1).to_string());
    let fixed_sig = sign(SECRET.as_bytes(), fixed.as_bytes());
    for i in 0..n {
        let (body, sig) = match load {
            Load::New => {
                let id = TEMPLATE_ID + NEXT_JOB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = template.replace(&TEMPLATE_ID.to_string(), &id.to_string());
                let sig = sign(SECRET.as_bytes(), body.as_bytes());
                (body, sig)
            }
            Load::Repeated => (fixed.clone(), fixed_sig.clone()),
        };
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-GitHub-Event: workflow_job\r\nX-GitHub-Delivery: {tag}-{i}-{:08x}\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
            fastrand::u32(..),
            body.len()
        );
        let t = Instant::now();
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(body.as_bytes()).unwrap();
        let mut status = 0;
        let mut len = 0usize;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if status == 0 {
                status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf).unwrap();
        lat.push(t.elapsed().as_micros() as u64);
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&buf));
        let text = String::from_utf8_lossy(&buf);
        match load {
            Load::New => assert_eq!(text, "queued\n", "a new delivery is queued"),
            Load::Repeated if i > 0 || tag > 0 => assert_eq!(text, "already queued\n"),
            Load::Repeated => {}
        }
    }
    lat
}

/// The `queued` example fixture (7 KB compact) for the benchmark's group (`lineville`, labels
/// `self-hosted`, `k8s`), its job id [`TEMPLATE_ID`].
fn template() -> String {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/webhooks/workflow_job.queued.1.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["workflow_job"]["id"] = serde_json::json!(TEMPLATE_ID);
    v["workflow_job"]["labels"] = serde_json::json!(["self-hosted", "k8s"]);
    v["repository"]["full_name"] = serde_json::json!("lineville/bench");
    v["repository"]["name"] = serde_json::json!("bench");
    v["repository"]["owner"]["login"] = serde_json::json!("lineville");
    serde_json::to_string(&v).unwrap()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let total: usize = if full { 40_000 } else { 400 };
    let serve = support::start_serve(
        std::path::Path::new(env!("CARGO_BIN_EXE_runnerctl")),
        "bench",
        SECRET,
    );
    let addr = serve.addr;
    let pid = serve.child.id();
    let template = template();
    println!("payload: {} bytes", template.len());
    // Warm up connections, Redis scripts and allocator.
    client(addr, &template, Load::New, 999, total / 20);

    let mut p99_new_16 = 0.0;
    for (load, title) in [
        (Load::New, "every delivery new"),
        (Load::Repeated, "every delivery a repeat"),
    ] {
        println!("\n{title}:\n");
        println!("| concurrency | deliveries/s | p50 | p99 |");
        println!("|---|---|---|---|");
        for concurrency in [1usize, 16, 64] {
            let per = total / concurrency;
            let start = Instant::now();
            let threads: Vec<_> = (0..concurrency)
                .map(|c| {
                    let template = template.clone();
                    std::thread::spawn(move || client(addr, &template, load, c, per))
                })
                .collect();
            let mut lat: Vec<u64> = threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
            lat.sort_unstable();
            let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
            println!(
                "| {concurrency} | {rate:.0} | {:.2} ms | {:.2} ms |",
                p(0.5),
                p(0.99)
            );
            if load == Load::New && concurrency == 16 {
                p99_new_16 = p(0.99);
            }
        }
    }
    println!(
        "\nserve resident memory: {:.1} MiB now, {:.1} MiB peak",
        support::rss_kib(pid, "VmRSS:") as f64 / 1024.0,
        support::rss_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    assert!(serve.stop(), "serve exits 0 on SIGTERM");
    if full {
        assert!(
            p99_new_16 < 5.0,
            "new deliveries at concurrency 16: p99 {p99_new_16:.2} ms, the goal is under 5 ms"
        );
    }
}
