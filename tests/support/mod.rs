//! Test support: a real Redis server on a free loopback port, and helpers to run the binary.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own, without persistence, stopped when dropped. With
/// `REDIS_URL` set, that server is used instead (each test still has its own manager name).
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        if let Ok(url) = std::env::var("REDIS_URL") {
            return RedisServer {
                child: None,
                port: 0,
                url,
                dir,
            };
        }
        let port = free_port();
        let mut s = RedisServer {
            child: None,
            port,
            url: format!("redis://127.0.0.1:{port}/0"),
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.path().to_str().unwrap(),
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed (apt-get install redis-server; .ci/run does it)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Stops the server (its data is lost: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A manager name unique to this test, so tests sharing a Redis never meet.
pub fn manager_name(test: &str) -> String {
    format!(
        "t-{}-{:06x}",
        test.replace('_', "-"),
        fastrand::u32(..0xffffff)
    )
}

/// Writes a configuration for the fake backend against `redis_url` and returns its path.
pub fn write_config(dir: &Path, name: &str, redis_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "name: {name}\ngithub:\n  token_env: GITHUB_TOKEN\nredis:\n  url: {redis_url}\nwebhook:\n  secret_env: WEBHOOK_SECRET\n{extra}backends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: demo\n    organization: octo-org\n    labels: [self-hosted, demo]\n    backend: fake\n    max_runners: 5\n"
        ),
    )
    .unwrap();
    path
}

/// The runnerctl binary built for the tests.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("runnerctl")
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
