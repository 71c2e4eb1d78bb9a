//! Load generator for `runnerctl serve`: signed, realistic `workflow_job` deliveries over loopback
//! keep-alive connections to a running `serve` (the release binary) with Redis on the same
//! machine. Reports deliveries per second and p50/p99 latency at concurrency 1, 16 and 64, and
//! the resident memory of `serve`.
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

/// Sends `n` deliveries on one keep-alive connection; returns each one's latency in µs.
fn client(addr: SocketAddr, body: &[u8], sig: &str, tag: usize, n: usize) -> Vec<u64> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut lat = Vec::with_capacity(n);
    let mut line = String::new();
    for i in 0..n {
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-GitHub-Event: workflow_job\r\nX-GitHub-Delivery: {tag}-{i}-{:08x}\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
            fastrand::u32(..),
            body.len()
        );
        let t = Instant::now();
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(body).unwrap();
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
    }
    lat
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
    let body = std::fs::read(format!(
        "{}/tests/fixtures/webhooks/workflow_job.queued.2.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let sig = sign(SECRET.as_bytes(), &body);
    // Warm up connections, Redis scripts and allocator.
    client(addr, &body, &sig, 999, total / 20);

    println!("| concurrency | deliveries/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for concurrency in [1usize, 16, 64] {
        let per = total / concurrency;
        let start = Instant::now();
        let threads: Vec<_> = (0..concurrency)
            .map(|c| {
                let body = body.clone();
                let sig = sig.clone();
                std::thread::spawn(move || client(addr, &body, &sig, c, per))
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
    }
    println!(
        "\nserve resident memory: {:.1} MiB now, {:.1} MiB peak",
        support::rss_kib(pid, "VmRSS:") as f64 / 1024.0,
        support::rss_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    assert!(serve.stop(), "serve exits 0 on SIGTERM");
}
