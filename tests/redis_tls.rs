//! Redis over TLS, as managed services run it: `rediss://` with a CA of the test's own (made at
//! test time), mutual TLS, an ACL user whose password comes from a secret source. What waiting
//! cannot cure (a certificate not trusted, a client certificate missing, a wrong password, a
//! database that does not exist) makes `runners list`, `worker` and `serve` exit 2 at once with
//! a message naming the URL, the password hidden; an unreachable server is waited out.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Pki {
    ca: String,
    server: (String, String),
    /// A server certificate that carries only a DNS name (`redis.internal.test`).
    named_server: (String, String),
    client: (String, String),
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    // Distinct names: a certificate whose subject is its issuer's looks self-signed to OpenSSL.
    let named = |cn: &str, names: Vec<String>| {
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p
    };
    let mut ca_params = named("runnerctl test CA", vec![]);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = named(&names[0], names.clone())
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: signed(vec!["127.0.0.1".into(), "localhost".into()]),
        named_server: signed(vec![NAMED.into()]),
        client: signed(vec!["runnerctl".into()]),
    }
}

/// The only name `Pki::named_server` carries.
const NAMED: &str = "redis.internal.test";

/// A `redis-server` with TLS only, an ACL user `alice` (password `alice-secret`), and
/// `requirepass` for the default user.
struct TlsRedis {
    child: Child,
    port: u16,
    args: Vec<String>,
    _dir: tempfile::TempDir,
    files: std::path::PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsRedis {
    /// Starts `redis-server` with `args`, listening on `port`, its files in `dir`.
    fn start(args: Vec<String>, port: u16, dir: tempfile::TempDir) -> TlsRedis {
        TlsRedis {
            child: support::spawn_redis(&args, port),
            port,
            args,
            files: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    /// Stops the server (every connection to it dropped) and starts it again on its port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = support::spawn_redis(&self.args, self.port);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn tls_redis(pki: &Pki, auth_clients: bool) -> TlsRedis {
    tls_redis_with(pki, &pki.server, auth_clients)
}

fn tls_redis_with(pki: &Pki, server: &(String, String), auth_clients: bool) -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (cert, key, ca) = (
        write(&d, "server.pem", &server.0),
        write(&d, "server.key", &server.1),
        write(&d, "ca.pem", &pki.ca),
    );
    let port_text = port.to_string();
    let mut args: Vec<&str> = vec!["--port", "0", "--tls-port", &port_text];
    args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    args.extend(["--tls-cert-file", &cert, "--tls-key-file", &key]);
    args.extend(["--tls-ca-cert-file", &ca]);
    args.extend([
        "--tls-auth-clients",
        if auth_clients { "yes" } else { "no" },
    ]);
    args.extend(["--requirepass", "default-secret"]);
    // Alice has the rights README documents for runnerctl, no more.
    args.extend([
        "--user",
        "alice",
        "on",
        ">alice-secret",
        "~runnerctl:*",
        "&*",
    ]);
    args.extend([
        "+@read",
        "+@write",
        "+@stream",
        "+@scripting",
        "+@connection",
        "+time",
        "+info",
    ]);
    args.extend(["--dir", d.to_str().unwrap(), "--loglevel", "warning"]);
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    TlsRedis::start(args, port, dir)
}

/// A configuration file for `url` with the `redis:` extras given, in `dir`.
fn config(dir: &Path, url: &str, redis_extra: &str) -> std::path::PathBuf {
    config_for(dir, "https://api.github.com", url, redis_extra)
}

fn config_for(dir: &Path, github: &str, url: &str, redis_extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "name: {}\ngithub:\n  base_url: {github}\n  token_env: GH\nredis:\n  url: {url}\n{redis_extra}webhook:\n  listen: 127.0.0.1:0\n  secret_env: HOOK\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [g]\n    backend: fake\n",
            support::manager_name("tls")
        ),
    )
    .unwrap();
    path
}

fn runnerctl(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(support::bin());
    c.arg("--config")
        .arg(config)
        .args(args)
        .env("GH", "t")
        .env("HOOK", "a-webhook-secret-long-enough")
        .env("REDIS_PASSWORD", "alice-secret");
    c
}

fn run(config: &Path, args: &[&str]) -> (i32, String) {
    let out = runnerctl(config, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_ca_file_and_an_acl_password_works() {
    use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let pki = make_pki();
    let redis = tls_redis(&pki, false);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let ca = format!("  ca_file: {}\n", redis.files.join("ca.pem").display());
    let c = config_for(
        dir.path(),
        &sim.url(),
        &url,
        &format!("{ca}  username: alice\n  password_env: REDIS_PASSWORD\n"),
    );
    let (code, err) = run(&c, &["config", "validate"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&c, &["runners", "list"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&c, &["tasks", "list"]);
    assert_eq!(code, 0, "{err}");
    // The documented ACL rights are enough for the whole life of a runner.
    for args in [
        &["groups", "sync"][..],
        &["runners", "create", "--group", "g"][..],
        &["healthcheck"][..],
        &["runners", "delete", "--group", "g", "--all", "--yes"][..],
    ] {
        let (code, err) = run(&c, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
}

#[test]
fn what_waiting_cannot_cure_exits_2_naming_the_url() {
    let pki = make_pki();
    let redis = tls_redis(&pki, true);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let ca = format!("  ca_file: {}\n", redis.files.join("ca.pem").display());
    let client_cert = write(dir.path(), "client.pem", &pki.client.0);
    let client_key = write(dir.path(), "client.key", &pki.client.1);
    let mtls = format!("  client_cert_file: {client_cert}\n  client_key_file: {client_key}\n");
    let alice = "  username: alice\n  password_env: REDIS_PASSWORD\n";
    // Mutual TLS and the right password: it works.
    let good = config(dir.path(), &url, &format!("{ca}{mtls}{alice}"));
    let (code, err) = run(&good, &["runners", "list"]);
    assert_eq!(code, 0, "{err}");

    let other = make_pki();
    let other_ca = write(dir.path(), "other-ca.pem", &other.ca);
    let cases = [
        (
            "the server's certificate is not trusted",
            format!("  ca_file: {other_ca}\n{mtls}{alice}"),
            url.clone(),
        ),
        ("no client certificate", format!("{ca}{alice}"), url.clone()),
        (
            "a wrong password",
            format!("{ca}{mtls}  username: alice\n  password: wrong-secret\n"),
            url.clone(),
        ),
        (
            "a database that does not exist",
            format!("{ca}{mtls}{alice}"),
            format!("rediss://127.0.0.1:{}/99", redis.port),
        ),
    ];
    for (what, extra, url) in cases {
        let d = tempfile::tempdir().unwrap();
        let c = config(d.path(), &url, &extra);
        for args in [&["runners", "list"][..], &["worker"][..], &["serve"][..]] {
            let started = Instant::now();
            let out = runnerctl(&c, args).stdin(Stdio::null()).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what}: {args:?}: {err}");
            assert!(err.contains(&url), "{what}: {args:?} names the URL: {err}");
            assert!(
                !err.contains("alice-secret") && !err.contains("wrong-secret"),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: {args:?} did not wait"
            );
        }
    }
}

#[test]
fn an_unreachable_tls_server_is_waited_out_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = config(dir.path(), &format!("rediss://127.0.0.1:{port}/0"), "");
    let mut child = runnerctl(&c, &["worker"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the worker waits for Redis"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_name_verifies_a_certificate_for_another_name_than_the_host() {
    let pki = make_pki();
    let mut redis = tls_redis_with(&pki, &pki.named_server, false);
    let dir = tempfile::tempdir().unwrap();
    // Reached by its address, its certificate carrying only a DNS name.
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let ca = format!("  ca_file: {}\n", redis.files.join("ca.pem").display());
    let alice = "  username: alice\n  password_env: REDIS_PASSWORD\n";
    let named = |name: &str| format!("{ca}{alice}  tls_server_name: {name}\n");

    let by_host = config(dir.path(), &url, &format!("{ca}{alice}"));
    let (code, err) = run(&by_host, &["runners", "list"]);
    assert_eq!(code, 2, "the certificate does not carry 127.0.0.1: {err}");
    assert!(err.contains(&url), "{err}");

    for wrong in ["other.internal.test", "localhost"] {
        let d = tempfile::tempdir().unwrap();
        let c = config(d.path(), &url, &named(wrong));
        let (code, err) = run(&c, &["runners", "list"]);
        assert_eq!(code, 2, "{wrong}: {err}");
        assert!(err.contains(&url), "{err}");
    }

    let good = config(dir.path(), &url, &named(NAMED));
    let (code, err) = run(&good, &["config", "validate"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&good, &["runners", "list"]);
    assert_eq!(code, 0, "{err}");

    // The connection is made again after the server went away, by the same name.
    let target = runnerctl::store::RedisTarget {
        url: url.clone(),
        ca_pem: Some(pki.ca.clone().into_bytes()),
        username: Some("alice".into()),
        password: Some(runnerctl::config::Secret::new("alice-secret")),
        tls_server_name: Some(NAMED.into()),
        ..Default::default()
    };
    let mut conn = runnerctl::store::connect_to(&target).await.unwrap();
    let key = "runnerctl:tls-name:probe";
    let () = redis::cmd("SET")
        .arg(key)
        .arg("before")
        .query_async(&mut conn)
        .await
        .unwrap();
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key)
            .arg("after")
            .query_async(&mut conn)
            .await;
        match r {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "never reconnected: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, "after");
}

#[test]
fn tls_server_name_is_checked_by_config_validate() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "rediss://127.0.0.1:6380/0",
            "  tls_server_name: \"not a name!\"\n",
            "is not a DNS name or an IP address",
        ),
        (
            "redis://127.0.0.1:6379/0",
            "  tls_server_name: redis.internal.test\n",
            "`rediss://`",
        ),
        (
            "rediss://127.0.0.1:6380/0",
            "  tls_server_name: redis.internal.test\n  cluster: [127.0.0.1:7000]\n",
            "does not apply to a Redis Cluster",
        ),
    ];
    for (url, extra, says) in cases {
        let c = config(dir.path(), url, extra);
        let (code, err) = run(&c, &["config", "validate"]);
        assert_eq!(code, 2, "{extra}: {err}");
        assert!(
            err.contains("redis.tls_server_name") && err.contains(says),
            "{extra}: {err}"
        );
    }
}

/// A sentinel on TLS only, with a password of its own (`sentinel-secret`), monitoring the TLS
/// master on `master` (whose default user's password it is given).
fn tls_sentinel(pki: &Pki, master: u16) -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let port = support::free_port();
    let (cert, key, ca) = (
        write(&d, "sentinel.pem", &pki.server.0),
        write(&d, "sentinel.key", &pki.server.1),
        write(&d, "ca.pem", &pki.ca),
    );
    let conf = write(
        &d,
        "sentinel.conf",
        &format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\ndir {}\ntls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\ntls-auth-clients no\ntls-replication yes\nrequirepass sentinel-secret\nsentinel monitor mymaster 127.0.0.1 {master} 1\nsentinel auth-pass mymaster default-secret\n",
            d.display()
        ),
    );
    let args = vec![conf, "--sentinel".to_string()];
    TlsRedis::start(args, port, dir)
}

#[test]
fn a_tls_sentinel_with_a_password_names_a_master_verified_by_tls_server_name() {
    let pki = make_pki();
    let master = tls_redis_with(&pki, &pki.named_server, false);
    let sentinel = tls_sentinel(&pki, master.port);
    let ca = format!("  ca_file: {}\n", master.files.join("ca.pem").display());
    let alice = "  username: alice\n  password_env: REDIS_PASSWORD\n";
    // The sentinel's part, and the name the master's certificate carries when `named`.
    let watched = |password: &str, named: bool| {
        let name = if named {
            format!("  tls_server_name: {NAMED}\n")
        } else {
            String::new()
        };
        format!(
            "{ca}{alice}{name}  sentinel:\n    master: mymaster\n    addresses: [127.0.0.1:{}]\n    tls: true\n    password: {password}\n",
            sentinel.port
        )
    };
    let url = "rediss://redis/0";
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), url, &watched("sentinel-secret", true));
    let (code, err) = run(&good, &["config", "validate"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&good, &["runners", "list"]);
    assert_eq!(code, 0, "{err}");

    // The sentinel names the master by its address, which its certificate does not carry.
    let d = tempfile::tempdir().unwrap();
    let by_address = config(d.path(), url, &watched("sentinel-secret", false));
    let (code, err) = run(&by_address, &["runners", "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}", master.port)), "{err}");

    // A sentinel that refuses the password: exit 2 at once, naming the sentinels.
    let d = tempfile::tempdir().unwrap();
    let refused = config(d.path(), url, &watched("wrong", true));
    for args in [&["runners", "list"][..], &["worker"][..], &["serve"][..]] {
        let started = Instant::now();
        let out = runnerctl(&refused, args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("sentinels 127.0.0.1:{}", sentinel.port)),
            "{args:?}: {err}"
        );
        assert!(!err.contains("sentinel-secret"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} waited"
        );
    }
}
