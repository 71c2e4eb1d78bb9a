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
    /// AOF with `appendfsync always`: a restart keeps every write.
    persistent: bool,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-server` (or a sentinel) with these arguments, once something listens on `port`.
pub fn spawn_redis<S: AsRef<std::ffi::OsStr>>(args: &[S], port: u16) -> Child {
    let child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (apt-get install redis-server; .ci/run does it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server {:?} did not listen on {port}",
            args.first().map(|a| a.as_ref().to_owned())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl RedisServer {
    pub fn start() -> RedisServer {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return RedisServer {
                child: None,
                port: 0,
                url,
                dir: tempfile::tempdir().unwrap(),
                persistent: false,
            };
        }
        RedisServer::own(false)
    }

    /// A server with AOF persistence (`appendfsync always`), so that `restart` loses nothing.
    pub fn start_persistent() -> RedisServer {
        RedisServer::own(true)
    }

    /// A `redis-server` of this test's own on a free port.
    fn own(persistent: bool) -> RedisServer {
        let port = free_port();
        let mut s = RedisServer {
            child: None,
            port,
            url: format!("redis://127.0.0.1:{port}/0"),
            dir: tempfile::tempdir().unwrap(),
            persistent,
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
                if self.persistent { "yes" } else { "no" },
                "--appendfsync",
                "always",
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

    /// Starts it again on the same port: empty, or with its data when persistent.
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

/// A plain HTTP/1.1 exchange over a fresh connection: (status, head, body).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A webhook fixture from `tests/fixtures/webhooks`.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The stand-in for the GitHub runner in the test image: it records what it was given, comes
/// online on the fake GitHub named in its JIT configuration (as the real runner connects to the
/// service its configuration names), then waits for its container to be removed.
const STAND_IN_RUNNER: &str = r#"#!/bin/sh
printf %s "$ACTIONS_RUNNER_INPUT_JITCONFIG" > /tmp/jit-received
echo started > /tmp/runner-state
url=$(printf %s "$ACTIONS_RUNNER_INPUT_JITCONFIG" | base64 -d 2>/dev/null | sed -n 's/.*"sim_connect":"\([^"]*\)".*/\1/p')
if [ -n "$url" ]; then
  body="{\"jitconfig\":\"$ACTIONS_RUNNER_INPUT_JITCONFIG\"}"
  if wget -q -O /tmp/connect-answer --header 'Content-Type: application/json' --post-data "$body" "$url"; then
    echo connected > /tmp/runner-state
  fi
fi
exec sleep 600
"#;

/// The stand-in for Gitea's `act_runner` in the test image: `register` registers at the fake
/// Gitea named by `--instance` with the token, name and labels it is given (as the real one
/// does over Gitea's runner protocol), `daemon` starts its heartbeat there and waits.
const STAND_IN_ACT_RUNNER: &str = r#"#!/bin/sh
case "$1" in
register)
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --instance) instance=$2; shift ;;
      --token) token=$2; shift ;;
      --name) name=$2; shift ;;
      --labels) labels=$2; shift ;;
    esac
    shift
  done
  body="{\"token\":\"$token\",\"name\":\"$name\",\"labels\":\"$labels\",\"ephemeral\":true}"
  wget -q -O /tmp/act-runner.json --header 'Content-Type: application/json' --post-data "$body" "$instance/_sim/act_runner/register" || exit 1
  printf %s "$instance" > /tmp/act-runner.instance
  echo registered > /tmp/runner-state
  ;;
daemon)
  instance=$(cat /tmp/act-runner.instance)
  uuid=$(sed -n 's/.*"uuid":"\([^"]*\)".*/\1/p' /tmp/act-runner.json)
  wget -q -O /tmp/daemon-answer --header 'Content-Type: application/json' --post-data "{\"uuid\":\"$uuid\"}" "$instance/_sim/act_runner/daemon" || exit 1
  echo connected > /tmp/runner-state
  exec sleep 600
  ;;
esac
"#;

/// Whether the Docker engine has `image`.
fn have_image(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The test image, made with `docker import` from a busybox-static root filesystem when missing
/// (no registry is reachable), with the stand-in runner in /home/runner and the host's curl
/// (with the libraries it links) for the broker's fetch hook. Needs a running engine.
pub fn docker_test_image() -> &'static str {
    const IMAGE: &str = "runnerctl-test:5";
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        if have_image(IMAGE) {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "bin",
            "tmp",
            "run",
            "etc",
            "home/runner",
            "var/lib",
            "usr/local/bin",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static must be installed (.ci/run installs it)");
        std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "ls", "cat", "echo", "sleep", "wget", "mkdir", "rm", "test", "env", "id",
            "chmod", "stat", "touch", "printf", "dirname", "base64", "sed", "[", "date", "mv",
            "tr",
        ] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
        copy_with_libraries(Path::new("/usr/bin/curl"), r);
        let run = r.join("home/runner/run.sh");
        std::fs::write(&run, STAND_IN_RUNNER).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        let act = r.join("usr/local/bin/act_runner");
        std::fs::write(&act, STAND_IN_ACT_RUNNER).unwrap();
        std::fs::set_permissions(&act, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = format!(
            "tar -C {} -c . | docker import - {IMAGE} >/dev/null",
            r.display()
        );
        let ok = Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success();
        assert!(ok, "could not build {IMAGE} with docker import");
    });
    IMAGE
}

/// A minimal Debian bookworm image (`debootstrap --variant=minbase`, with adduser), made once
/// from the Debian mirror and kept in `.cache/debian-bookworm.tar` for the next runs; `docker
/// import`ed when the engine lacks it. Needs debootstrap (.ci/run installs it) and an engine.
#[allow(dead_code)]
pub fn debian_image() -> &'static str {
    const IMAGE: &str = "runnerctl-test-debian:bookworm";
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        if have_image(IMAGE) {
            return;
        }
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/debian-bookworm.tar");
        if !cache.is_file() {
            std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
            let root = tempfile::tempdir().unwrap();
            let out = Command::new("debootstrap")
                .args(["--variant=minbase", "--include=adduser", "bookworm"])
                .arg(root.path())
                .arg("http://deb.debian.org/debian")
                .output()
                .expect("debootstrap (.ci/run installs it)");
            assert!(
                out.status.success(),
                "debootstrap: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let partial = cache.with_extension("tar.partial");
            let ok = Command::new("tar")
                .arg("-C")
                .arg(root.path())
                .arg("-cf")
                .arg(&partial)
                .arg(".")
                .status()
                .unwrap()
                .success();
            assert!(ok, "could not archive the Debian root");
            std::fs::rename(&partial, &cache).unwrap();
        }
        let ok = Command::new("docker")
            .args(["import"])
            .arg(&cache)
            .arg(IMAGE)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "could not docker import {}", cache.display());
    });
    IMAGE
}

/// Copies a dynamically linked program into the root filesystem `root` at the same path, with
/// every library `ldd` names and the loader.
fn copy_with_libraries(program: &Path, root: &Path) {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .expect("ldd (the curl package must be installed: .ci/run does it)");
    let mut paths = vec![program.to_path_buf()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            paths.push(p.into());
        }
    }
    for p in paths {
        let to = root.join(p.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&p, &to).unwrap_or_else(|e| panic!("copy {}: {e}", p.display()));
    }
}

/// `docker ARGS…`'s standard output.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker ARGS…`'s standard output when it succeeds (`docker exec` prints its own failures,
/// such as a container that has just stopped, to standard output).
pub fn docker_ok(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A `runnerctl serve` process (the binary `bin`) on a free loopback port, with a Redis and a
/// one-group configuration of its own, for load generators.
pub struct Serve {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    _redis: RedisServer,
    _dir: tempfile::TempDir,
}

/// Starts [`Serve`] with `secret` as the webhook secret and waits until it listens.
pub fn start_serve(bin: &Path, name: &str, secret: &str) -> Serve {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ngithub:\n  token_env: GITHUB_TOKEN\nredis:\n  url: {}\nwebhook:\n  listen: 127.0.0.1:{port}\n  secret_env: SERVE_WEBHOOK_SECRET\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: k8s\n    organization: lineville\n    labels: [self-hosted, k8s]\n    backend: fake\n",
            redis.url
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "-q", "serve"])
        .env("SERVE_WEBHOOK_SECRET", secret)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Serve {
        child,
        addr,
        _redis: redis,
        _dir: dir,
    }
}

impl Serve {
    /// SIGTERM, and whether it exited 0.
    pub fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`); 0 when unknown.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every key matching `pattern` with its value (strings, hashes, sets, sorted sets, streams),
/// as text: what a secret must never be found in.
pub async fn redis_dump(url: &str, pattern: &str) -> String {
    let mut c = runnerctl::store::connect(url).await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut c)
        .await
        .unwrap();
    keys.sort();
    let mut out = String::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        let v: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&k).query_async(&mut c).await.unwrap(),
            "hash" => redis::cmd("HGETALL")
                .arg(&k)
                .query_async(&mut c)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&k)
                .query_async(&mut c)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut c)
                .await
                .unwrap(),
            "stream" => redis::cmd("XRANGE")
                .arg(&k)
                .arg("-")
                .arg("+")
                .query_async(&mut c)
                .await
                .unwrap(),
            _ => redis::Value::Nil,
        };
        out.push_str(&format!("{k} {v:?}\n"));
    }
    out
}

/// A credential broker for a test configuration: a fresh self-signed certificate and key in
/// `dir`, a sealing key, and a free loopback port. The `broker:` section, and the port.
#[allow(dead_code)]
pub fn broker_section(dir: &Path) -> (String, u16) {
    use base64::Engine;
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.join("broker-cert.pem"), dir.join("broker-key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    let sealing = base64::engine::general_purpose::STANDARD
        .encode((0..32).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (
        format!(
            "broker:\n  listen: 127.0.0.1:{port}\n  url: https://127.0.0.1:{port}\n  tls_cert_file: {}\n  tls_key_file: {}\n  key: {sealing}\n",
            cert.display(),
            key.display()
        ),
        port,
    )
}

/// `serve` (in this process, on `listener`) and `workers` workers over the wiring's managers
/// (the stand-in runner playing the fake backend's runners), as the end-to-end tests run them.
pub struct Fleet {
    stop_workers: tokio::sync::watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<runnerctl::worker::WorkerReport>>,
    stop_serve: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

/// What a [`Fleet`] is made of.
pub struct FleetSpec {
    pub config: std::sync::Arc<runnerctl::config::Config>,
    pub target: runnerctl::store::RedisTarget,
    pub forge: std::sync::Arc<dyn runnerctl::forge::Forge>,
    pub secret: String,
    pub options: runnerctl::queue::QueueOptions,
    pub workers: usize,
    /// `redis.wait_replicas` and `wait_timeout` for `serve`.
    pub durability: Option<(u32, Duration)>,
}

pub async fn start_fleet(listener: tokio::net::TcpListener, spec: FleetSpec) -> Fleet {
    use runnerctl::config::Secret;
    use std::sync::Arc;
    let c = &spec.config;
    let mut state = runnerctl::server::State::new(
        runnerctl::wiring::webhook_scheme(c),
        Secret::new(spec.secret.clone()),
        &c.name,
        c.runner_groups.clone(),
        spec.target.clone(),
        spec.options.clone(),
    );
    if let Some((n, t)) = spec.durability {
        state = state.with_durability(n, t);
    }
    let (stop_serve, serve_stop) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(runnerctl::server::serve(
        listener,
        None,
        Arc::new(state),
        async {
            let _ = serve_stop.await;
        },
    ));
    let (stop_workers, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..spec.workers {
        let conn = runnerctl::store::connect_to(&spec.target).await.unwrap();
        let m = runnerctl::wiring::manager_with(
            c.clone(),
            conn.clone(),
            spec.forge.clone(),
            Some(Arc::new(runnerctl::wiring::StandInRunner)),
        )
        .await
        .unwrap();
        let mut opts = runnerctl::worker::WorkerOptions::new(8);
        opts.poll = Duration::from_millis(100);
        workers.push(tokio::spawn(runnerctl::worker::run(
            runnerctl::queue::Queue::new(conn, &c.name, spec.options.clone()),
            runnerctl::store::connect_to(&spec.target).await.unwrap(),
            Arc::new(runnerctl::manager::TaskHandler::with_manager(Arc::new(m))),
            opts,
            stop_rx.clone(),
        )));
    }
    Fleet {
        stop_workers,
        workers,
        stop_serve,
        served,
    }
}

impl Fleet {
    pub async fn stop(self) {
        let _ = self.stop_workers.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        let _ = self.stop_serve.send(());
        let _ = self.served.await;
    }
}

/// One health check per group, keyed by `slot`, as workers schedule them.
pub async fn health_checks(queue: &runnerctl::queue::Queue, groups: &[&str], slot: u64) {
    for g in groups {
        let _ = queue
            .enqueue(
                runnerctl::queue::Task::GroupHealthCheck {
                    group: g.to_string(),
                },
                Some(format!("health:{g}:{slot}")),
            )
            .await;
    }
}

/// `runner_groups:` entries of octo-org on the fake backend: (name, labels, max_runners) each.
pub fn fake_groups_yaml(groups: &[(&str, &[&str], u32)]) -> String {
    groups
        .iter()
        .map(|(g, labels, max)| {
            format!(
                "  - name: {g}\n    organization: octo-org\n    labels: [{}]\n    backend: fake\n    max_runners: {max}\n",
                labels.join(", ")
            )
        })
        .collect()
}

/// Puts one `create_runner` task of group `group` on a manager's dead-letter stream, as if it
/// had failed for good with `error`; the id `tasks requeue` takes for it.
pub async fn dead_task(redis_url: &str, manager: &str, group: &str, error: &str) -> String {
    use runnerctl::queue::{Queue, Task};
    let conn = runnerctl::store::connect(redis_url).await.unwrap();
    let queue = Queue::new(conn.clone(), manager, Default::default());
    queue.ensure_group().await.unwrap();
    queue
        .enqueue(
            Task::CreateRunner {
                group: group.into(),
            },
            None,
        )
        .await
        .unwrap();
    let mut c = conn.clone();
    let got = queue
        .read_new(&mut c, "tests", 1, Duration::from_millis(100))
        .await
        .unwrap();
    queue.dead_letter("tests", &got[0], error).await.unwrap();
    let dead = queue.dead().await.unwrap();
    dead.last().unwrap().id.clone()
}

/// The fake GitHub's options for one organization, `octo-org` with the repository `app`,
/// accepting the personal access token `token`.
pub fn octo_org(token: &str) -> runnerctl::forge::fake::FakeGitHubOptions {
    runnerctl::forge::fake::FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some(token.into()),
        ..Default::default()
    }
}
