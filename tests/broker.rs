//! The credential broker against a real Redis, its TLS endpoint, and the VM fetch hook run by
//! the real `curl`.

mod support;

use base64::Engine;
use runnerctl::bootstrap::{self, BootStyle, Credential, RunnerSetup};
use runnerctl::broker::endpoint::{self, Endpoint};
use runnerctl::broker::{Broker, Redeemed, Refusal, Vault};
use runnerctl::config::Secret;
use runnerctl::store;
use std::sync::Arc;
use std::time::Duration;
use support::{manager_name, RedisServer};

const JIT: &str = "JIT-SECRET-7c1e0f";

fn vault() -> Vault {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    Vault::new(&[Secret::new(key)]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_redeemed_once_only_from_its_instance_before_it_expires() {
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let b = Broker::new(conn.clone(), &manager_name("broker"), vault());
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    let token = issued.token.expose().to_string();
    let refused = |r: Refusal| Redeemed::Refused(r);

    // Nothing in clear in Redis: neither the credential nor the token.
    let seen = support::redis_dump(&redis.url, "*").await;
    assert!(!seen.contains(JIT) && !seen.contains(&token), "{seen}");

    // Before the backend reported the instance's address: not yet.
    assert_eq!(
        b.redeem(&token, "10.0.0.5").await.unwrap(),
        refused(Refusal::NotBound)
    );
    assert!(b.bind(&issued.id, "10.0.0.5").await.unwrap());
    assert!(
        !b.bind(&issued.id, "10.0.0.9").await.unwrap(),
        "bound once, to one address"
    );
    // Another address, a wrong token: refused, and the instance's token still works.
    assert_eq!(
        b.redeem(&token, "10.0.0.6").await.unwrap(),
        refused(Refusal::WrongAddress)
    );
    assert_eq!(
        b.redeem("not-the-token", "10.0.0.5").await.unwrap(),
        refused(Refusal::Unknown)
    );
    assert_eq!(
        b.redeem("", "10.0.0.5").await.unwrap(),
        refused(Refusal::BadRequest)
    );
    assert_eq!(
        b.redeem(&token, "10.0.0.5").await.unwrap(),
        Redeemed::Credential {
            runner: "r1".into(),
            credential: Secret::new(JIT),
        }
    );
    // A second redemption finds nothing.
    assert_eq!(
        b.redeem(&token, "10.0.0.5").await.unwrap(),
        refused(Refusal::Unknown)
    );

    // Expired at its time to live.
    let short = b
        .issue("r2", &Secret::new(JIT), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(b.bind(&short.id, "10.0.0.7").await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        b.redeem(short.token.expose(), "10.0.0.7").await.unwrap(),
        refused(Refusal::Unknown)
    );
    // Revoked with its runner; a new credential for a runner replaces the old one.
    let old = b
        .issue("r3", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    let new = b
        .issue("r3", &Secret::new("JIT-2"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!b.bind(&old.id, "10.0.0.8").await.unwrap(), "replaced");
    assert!(b.bind(&new.id, "10.0.0.8").await.unwrap());
    b.revoke("r3").await.unwrap();
    assert_eq!(
        b.redeem(new.token.expose(), "10.0.0.8").await.unwrap(),
        refused(Refusal::Unknown)
    );
    // Nothing is left behind.
    let left = support::redis_dump(&redis.url, "*").await;
    assert!(!left.contains("broker:"), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_sealed_under_another_key_or_moved_does_not_open() {
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let name = manager_name("broker-keys");
    let b = Broker::new(conn.clone(), &name, vault());
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(b.bind(&issued.id, "10.0.0.5").await.unwrap());
    // After a rotation that dropped the old key, its records cannot be opened: an error, not
    // a credential.
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let rotated = Broker::new(
        conn.clone(),
        &name,
        Vault::new(&[Secret::new(other)]).unwrap(),
    );
    assert!(rotated
        .redeem(issued.token.expose(), "10.0.0.5")
        .await
        .is_err());
}

/// What cloud-init would write: each `path` of the user-data with its decoded content.
fn files_of(user_data: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut path = None;
    for line in user_data.lines() {
        if let Some(p) = line.trim().strip_prefix("- path: ") {
            path = Some(p.to_string());
        }
        if let (Some(p), Some(c)) = (&path, line.trim().strip_prefix("content: ")) {
            let bytes = base64::engine::general_purpose::STANDARD.decode(c).unwrap();
            out.push((p.clone(), String::from_utf8(bytes).unwrap()));
            path = None;
        }
    }
    out
}

fn self_signed() -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

/// A VM's bootstrap for `runner` with the JIT configuration as its credential.
fn vm_boot(runner: &str) -> bootstrap::BootData {
    let setup = RunnerSetup {
        runner_name: runner.into(),
        labels: vec!["self-hosted".into()],
        url: "https://github.com/octo-org".into(),
        runner_group: Some("g".into()),
        agent: runnerctl::forge::Agent::ActionsRunner,
        container_jobs: None,
        credential: Credential::Jit(Secret::new(JIT)),
    };
    bootstrap::render(BootStyle::Vm, &setup, None).unwrap()
}

/// Runs the fetch hook as the VM's runner unit would, its fixed paths moved into `dir`.
fn run_hook(dir: &std::path::Path, hook: &str, token: &str, ca: &str) -> (bool, Option<String>) {
    let ca_path = dir.join("broker-ca.pem");
    let token_path = dir.join("broker-token");
    std::fs::write(&ca_path, ca).unwrap();
    std::fs::write(&token_path, token).unwrap();
    let hook = hook
        .replace(bootstrap::BROKER_CA, ca_path.to_str().unwrap())
        .replace(bootstrap::BROKER_TOKEN, token_path.to_str().unwrap());
    let script = dir.join("fetch-credential");
    std::fs::write(&script, hook).unwrap();
    let out_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let ok = std::process::Command::new("sh")
        .arg(&script)
        .arg(&out_dir)
        .status()
        .unwrap()
        .success();
    (ok, std::fs::read_to_string(out_dir.join("jitconfig")).ok())
}

/// The broker's endpoint on a loopback port, TLS from a fresh self-signed certificate, as
/// `serve` runs it: its URL, its state, the certificate (the CA to pin), and the directory of
/// its files.
struct Tls {
    url: String,
    endpoint: Arc<Endpoint>,
    cert: String,
    dir: tempfile::TempDir,
}

async fn tls_endpoint(broker: &Broker) -> Tls {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tls_endpoint_on(broker, listener).await
}

async fn tls_endpoint_on(broker: &Broker, listener: tokio::net::TcpListener) -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let tls =
        endpoint::tls_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap();
    let ep = Arc::new(Endpoint::new(broker.clone()));
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(endpoint::serve(
        listener,
        tls,
        ep.clone(),
        std::future::pending(),
    ));
    Tls {
        url,
        endpoint: ep,
        cert,
        dir,
    }
}

/// A manager over the fake GitHub whose group `g` uses `backend` (named `backend_name` in the
/// configuration), with the broker's endpoint running and linked.
struct World {
    redis: RedisServer,
    sim: runnerctl::forge::fake::FakeGitHub,
    m: runnerctl::manager::Manager,
    g: runnerctl::config::RunnerGroup,
    tls: Tls,
}

async fn world(
    test: &str,
    job_duration: Duration,
    backend: impl FnOnce(&str, runnerctl::store::Conn) -> Arc<dyn runnerctl::backend::Backend>,
) -> World {
    use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
    use runnerctl::forge::github::{Auth, GitHub};
    use runnerctl::forge::prelude::*;
    use runnerctl::manager::{sync, Manager};
    let redis = RedisServer::start();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        job_duration,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let name = manager_name(test);
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  b:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: b\n",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let g = config.runner_groups[0].clone();
    sync::sync(&*gh, &[&g], false, &|| {}).await;
    let conn = store::connect(&redis.url).await.unwrap();
    let mut m = Manager::new(
        config.clone(),
        store::RedisStore::new(conn.clone(), &name),
        gh,
        std::collections::HashMap::from([("b".to_string(), backend(&name, conn.clone()))]),
    );
    let broker = Broker::new(conn, &name, vault());
    let tls = tls_endpoint(&broker).await;
    m.broker = Some(runnerctl::broker::Link {
        broker,
        url: tls.url.clone(),
        ca_pem: tls.cert.clone(),
    });
    World {
        redis,
        sim,
        m,
        g,
        tls,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vm_fetch_hook_redeems_its_credential_at_the_tls_endpoint_with_the_ca_pinned() {
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let b = Broker::new(conn.clone(), &manager_name("broker-tls"), vault());
    let Tls {
        url,
        endpoint: ep,
        cert,
        dir,
    } = tls_endpoint(&b).await;

    // The VM's bootstrap with its credential sent through the broker.
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    let mut boot = vm_boot("r1");
    bootstrap::through_broker(&mut boot, &url, &cert, &issued.token, 20).unwrap();
    assert!(
        boot.files.iter().all(|f| !bootstrap::is_secret(&f.path)),
        "no backend delivers the credential"
    );
    let user_data = boot.user_data.as_ref().unwrap().expose().to_string();
    let files = files_of(&user_data);
    assert!(
        files.iter().all(|(_, c)| !c.contains(JIT)),
        "never the credential"
    );
    let file = |p: &str| {
        files
            .iter()
            .find(|(path, _)| path == p)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    let (hook, token) = (
        file(bootstrap::FETCH_CREDENTIAL_HOOK),
        file(bootstrap::BROKER_TOKEN),
    );
    assert_eq!(file(bootstrap::BROKER_CA), cert);

    // Not bound yet: the hook retries (409) until the backend reports the address.
    let binder = {
        let b = b.clone();
        let id = issued.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            b.bind(&id, "127.0.0.1").await.unwrap()
        })
    };
    let (d, h, t, c) = (
        dir.path().to_path_buf(),
        hook.clone(),
        token.clone(),
        cert.clone(),
    );
    let (ok, got) = tokio::task::spawn_blocking(move || run_hook(&d, &h, &t, &c))
        .await
        .unwrap();
    assert!(binder.await.unwrap());
    assert!(ok, "the hook fetched the credential");
    assert_eq!(got.as_deref(), Some(JIT));
    assert!(
        !dir.path().join("broker-token").exists(),
        "the token file goes once redeemed"
    );

    // The same token again: refused at once (403), no credential.
    let (d, h, t, c) = (
        dir.path().to_path_buf(),
        hook.clone(),
        token.clone(),
        cert.clone(),
    );
    let (ok, got) = tokio::task::spawn_blocking(move || run_hook(&d, &h, &t, &c))
        .await
        .unwrap();
    assert!(!ok && got.is_none());

    // Another CA pinned (a man in the middle's certificate): curl refuses the endpoint.
    let again = b
        .issue("r2", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(b.bind(&again.id, "127.0.0.1").await.unwrap());
    let mut boot = vm_boot("r1");
    bootstrap::through_broker(&mut boot, &url, &cert, &again.token, 3).unwrap();
    let files = files_of(boot.user_data.as_ref().unwrap().expose());
    let hook = files
        .iter()
        .find(|(p, _)| p == bootstrap::FETCH_CREDENTIAL_HOOK)
        .unwrap()
        .1
        .clone();
    let token = files
        .iter()
        .find(|(p, _)| p == bootstrap::BROKER_TOKEN)
        .unwrap()
        .1
        .clone();
    let (wrong_ca, _) = self_signed();
    let d = dir.path().to_path_buf();
    let (ok, got) = tokio::task::spawn_blocking(move || run_hook(&d, &hook, &token, &wrong_ca))
        .await
        .unwrap();
    assert!(
        !ok && got.is_none(),
        "no credential past an unpinned certificate"
    );

    let metrics = ep.render_metrics();
    assert!(
        metrics.contains("runnerctl_broker_redemptions_total{outcome=\"redeemed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runnerctl_broker_redemptions_total{outcome=\"unknown_token\"} 1"),
        "{metrics}"
    );
    assert!(!support::redis_dump(&redis.url, "*").await.contains(JIT));
}

/// A VM backend that boots nothing: it keeps what it was asked to create and reports the
/// instance on the loopback address, where the test plays the VM.
struct LoopbackVm {
    made: std::sync::Mutex<Vec<runnerctl::backend::CreateRequest>>,
}

struct VmKind;

impl runnerctl::config::Schema for VmKind {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn settings(
        &self,
        _: &mut runnerctl::config::Reader<'_, '_>,
        _: serde_yaml::Value,
    ) -> Option<runnerctl::config::Typed> {
        None
    }
    fn spec(
        &self,
        _: &mut runnerctl::config::Reader<'_, '_>,
        _: serde_yaml::Value,
    ) -> Option<runnerctl::config::Typed> {
        None
    }
}

#[async_trait::async_trait]
impl runnerctl::backend::Kind for VmKind {
    fn name(&self) -> &'static str {
        "loopback-vm"
    }
    fn schema(&self) -> &dyn runnerctl::config::Schema {
        self
    }
    fn boot_style(&self) -> BootStyle {
        BootStyle::Vm
    }
    fn credential_delivery(&self, _: &runnerctl::config::Typed, _: &str, _: &str) -> String {
        String::new()
    }
    async fn build(
        &self,
        _: runnerctl::backend::BuildContext,
    ) -> runnerctl::backend::Result<Arc<dyn runnerctl::backend::Backend>> {
        unreachable!("built by the test")
    }
}

static VM_KIND: VmKind = VmKind;

#[async_trait::async_trait]
impl runnerctl::backend::Backend for LoopbackVm {
    fn name(&self) -> &str {
        "vm"
    }
    fn kind(&self) -> &'static dyn runnerctl::backend::Kind {
        &VM_KIND
    }
    async fn create(
        &self,
        req: &runnerctl::backend::CreateRequest,
    ) -> runnerctl::backend::Result<runnerctl::backend::Instance> {
        self.made.lock().unwrap().push(req.clone());
        Ok(runnerctl::backend::Instance {
            id: format!("vm-{}", req.runner_name),
            state: runnerctl::backend::InstanceState::Running,
            tags: req
                .tags
                .pairs()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: None,
            spot_fallback: false,
            identity: None,
            address: Some("127.0.0.1".into()),
        })
    }
    async fn delete(&self, _: &str) -> runnerctl::backend::Result<()> {
        Ok(())
    }
    async fn get(
        &self,
        _: &str,
    ) -> runnerctl::backend::Result<Option<runnerctl::backend::Instance>> {
        Ok(None)
    }
    async fn list(&self) -> runnerctl::backend::Result<Vec<runnerctl::backend::Instance>> {
        Ok(vec![])
    }
}

/// The manager's whole path for a VM: its JIT configuration from the fake GitHub sealed at the
/// broker, the instance given only a one-time token, bound to the instance's address, fetched by
/// the real hook over TLS, and the runner coming online with it; deleting the runner revokes
/// what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_runner_made_by_the_manager_gets_its_credential_only_through_the_broker() {
    use runnerctl::manager::Created;
    let vm = Arc::new(LoopbackVm {
        made: Default::default(),
    });
    let backend = vm.clone();
    let World {
        redis,
        sim,
        m,
        g,
        tls,
    } = world("broker-vm", Duration::from_secs(10), move |_, _| backend).await;
    let (cert, dir) = (tls.cert.clone(), &tls.dir);
    let Created::New(runner) = m.create_runner(&g, "job:7", Some(7)).await.unwrap() else {
        panic!("a new runner")
    };
    let req = vm
        .made
        .lock()
        .unwrap()
        .pop()
        .expect("the instance was asked for");
    assert!(req
        .boot
        .files
        .iter()
        .all(|f| !bootstrap::is_secret(&f.path)));
    let user_data = req.boot.user_data.as_ref().unwrap().expose().to_string();
    let jit = sim.runners()[0].jit.clone();
    assert!(
        !user_data.contains(&jit),
        "the JIT configuration is not in the metadata"
    );
    let files = files_of(&user_data);
    assert!(files.iter().all(|(_, c)| !c.contains(&jit)));
    assert!(
        !support::redis_dump(&redis.url, "*").await.contains(&jit),
        "nor in Redis in clear"
    );
    let get = |p: &str| files.iter().find(|(x, _)| x == p).unwrap().1.clone();
    let (hook, token) = (
        get(bootstrap::FETCH_CREDENTIAL_HOOK),
        get(bootstrap::BROKER_TOKEN),
    );

    // The VM's hook fetches it (the record is bound to 127.0.0.1 already), the runner connects.
    let d = dir.path().to_path_buf();
    let (ok, got) = tokio::task::spawn_blocking(move || run_hook(&d, &hook, &token, &cert))
        .await
        .unwrap();
    assert!(ok);
    let got = got.unwrap();
    assert_eq!(got, jit);
    assert!(sim.connect_runner(&got).is_some());
    assert!(sim.runners()[0].online);

    // Deleting a runner whose credential still waits revokes it.
    let Created::New(second) = m.create_runner(&g, "job:8", Some(8)).await.unwrap() else {
        panic!("a second runner")
    };
    assert!(support::redis_dump(&redis.url, "*")
        .await
        .contains("broker:cred:"));
    m.delete_runner(&second, true).await.unwrap();
    let left = support::redis_dump(&redis.url, "*").await;
    assert!(!left.contains("broker:"), "{left}");
    let _ = runner;
}

/// `runnerctl --config CONFIG ARGS…` with the secrets of the broker tests' configurations.
fn runnerctl(config: &std::path::Path, broker_key: &str, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(support::bin());
    c.arg("--config")
        .arg(config)
        .args(args)
        .env("GITHUB_TOKEN", "ghp_x")
        .env("WEBHOOK_SECRET", "0123456789abcdef0123")
        .env("BROKER_KEY", broker_key);
    c
}

/// An instance's redemption with the real curl, the CA `ca` pinned: the body, a newline and the
/// HTTP status.
async fn redeem(ca: std::path::PathBuf, port: u16, token: String) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(["-X", "POST", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("https://127.0.0.1:{port}/v1/credential"))
            .args(["-w", "\n%{http_code}"])
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// As an operator runs it: `config validate` and `serve` with a `broker:` section, the endpoint
/// on its own TLS listener, `/metrics` counting, and `runners bootstrap` showing the hook with
/// the token redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_broker_from_the_configuration() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let (web, metrics, brk) = (
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
    );
    let name = manager_name("broker-serve");
    let broker_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ngithub:\n  token_env: GITHUB_TOKEN\nredis:\n  url: {}\nwebhook:\n  listen: 127.0.0.1:{web}\n  metrics_listen: 127.0.0.1:{metrics}\n  secret_env: WEBHOOK_SECRET\nbroker:\n  listen: 127.0.0.1:{brk}\n  url: https://127.0.0.1:{brk}\n  tls_cert_file: {}\n  tls_key_file: {}\n  key_env: BROKER_KEY\nbackends:\n  fake:\n    kind: fake\n  ec2:\n    kind: aws\n    region: eu-west-1\nrunner_groups:\n  - name: demo\n    organization: octo-org\n    labels: [self-hosted, demo]\n    backend: fake\n  - name: vm\n    organization: octo-org\n    labels: [self-hosted, vm]\n    backend: ec2\n    spec:\n      image_id: ami-1\n      instance_type: t3.micro\n",
            redis.url,
            cert_path.display(),
            key_path.display()
        ),
    )
    .unwrap();
    let cmd = |args: &[&str]| runnerctl(&config, &broker_key, args);
    let out = cmd(&["config", "validate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A key that is not 32 bytes is refused by `config validate`, under its key.
    let bad = cmd(&["-o", "json", "config", "validate"])
        .env("BROKER_KEY", "c2hvcnQ=")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["errors"][0]["path"], "broker.key", "{v}");

    // `runners bootstrap` on the VM group: the hook, the token redacted.
    let out = cmd(&["runners", "bootstrap", "--group", "vm"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("credential broker"), "{text}");
    let ud = text
        .split("# ---- cloud-init user-data ----\n")
        .nth(1)
        .unwrap_or_default();
    let files = files_of(ud);
    let token = &files
        .iter()
        .find(|(p, _)| p == bootstrap::BROKER_TOKEN)
        .expect("the token file")
        .1;
    assert!(token.contains("<redacted"), "{token}");

    let mut serve = cmd(&["-q", "serve"]).spawn().unwrap();
    let up = support::eventually(Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", brk))
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(up.is_some(), "the broker listens");
    // A credential issued by a worker (same Redis, same key), bound to this host.
    let conn = store::connect(&redis.url).await.unwrap();
    let b = Broker::new(conn, &name, vault());
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(b.bind(&issued.id, "127.0.0.1").await.unwrap());
    let curl = |token: String| redeem(cert_path.clone(), brk, token);
    let first =
        String::from_utf8_lossy(&curl(issued.token.expose().to_string()).await.stdout).to_string();
    assert_eq!(first, format!("{JIT}\n200"));
    let second =
        String::from_utf8_lossy(&curl(issued.token.expose().to_string()).await.stdout).to_string();
    assert!(second.ends_with("403"), "{second}");
    let (status, _, body) = support::http(
        format!("127.0.0.1:{metrics}").parse().unwrap(),
        "GET",
        "/metrics",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("runnerctl_broker_redemptions_total{outcome=\"redeemed\"} 1"),
        "{body}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    assert!(serve.wait().unwrap().success());
}

/// End to end on the fake backend: each runner's stand-in redeems its token at the TLS endpoint
/// with the instance's own fetch hook (curl, CA pinned), then comes online on the fake GitHub
/// and runs its job; no JIT configuration is ever in Redis in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fake_backend_runners_get_their_credentials_through_the_broker_and_run_jobs() {
    use runnerctl::backend::fake::FakeBackend;
    use runnerctl::forge::fake::JobStatus;
    let World {
        redis,
        sim,
        m,
        g,
        tls,
    } = world("broker-fake", Duration::from_millis(200), |name, conn| {
        Arc::new(
            FakeBackend::new("fake", name, None, Some(conn))
                .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
        )
    })
    .await;
    let ep = tls.endpoint.clone();
    let m = Arc::new(m);

    // Five queued jobs, one runner each, made concurrently as workers would.
    let jobs: Vec<u64> = (0..5)
        .map(|_| sim.queue_job("octo-org/app", &["self-hosted", "g"]))
        .collect();
    let mut made = Vec::new();
    for job in &jobs {
        let (m, g, job) = (m.clone(), g.clone(), *job);
        made.push(tokio::spawn(async move {
            m.create_runner(&g, &format!("job:{job}"), Some(job)).await
        }));
    }
    for h in made {
        h.await.unwrap().unwrap();
    }
    let done = support::eventually(Duration::from_secs(60), || async {
        let all = sim.jobs();
        all.iter()
            .all(|j| j.status == JobStatus::Completed)
            .then_some(())
    })
    .await;
    assert!(done.is_some(), "every job ran: {:?}", sim.jobs());
    let seen = support::redis_dump(&redis.url, "*").await;
    for r in sim.runners() {
        assert!(
            !seen.contains(&r.jit),
            "a JIT configuration in clear in Redis"
        );
    }
    let metrics = ep.render_metrics();
    assert!(
        metrics.contains("runnerctl_broker_redemptions_total{outcome=\"redeemed\"} 5"),
        "{metrics}"
    );
}

/// A hot warm-pool instance boots with no credential: its fetch hook (the real one, run by the
/// stand-in) asks the broker and is held, then answered 425, again and again; nothing is
/// registered. When a job takes it, the credential sealed for it reaches the waiting hook,
/// the runner comes online and runs the job; no JIT configuration is in Redis in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_instance_waits_at_the_broker_until_a_job_takes_it() {
    use runnerctl::backend::fake::FakeBackend;
    use runnerctl::forge::fake::JobStatus;
    use runnerctl::manager::TaskHandler;
    use runnerctl::queue::{Envelope, Task};
    use runnerctl::worker::Handler;
    let World {
        redis,
        sim,
        m,
        g,
        tls,
    } = world("broker-warm", Duration::from_millis(200), |name, conn| {
        Arc::new(
            FakeBackend::new("fake", name, None, Some(conn))
                .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
        )
    })
    .await;
    let ep = tls.endpoint.clone();
    let mut g = g;
    g.warm_pool = Some(serde_yaml::from_str("hot: 1").unwrap());
    let mut config = (*m.config).clone();
    config.runner_groups[0] = g.clone();
    let mut m = m;
    m.config = Arc::new(config);
    let m = Arc::new(m);
    m.warm_pass(&g, None).await.unwrap();
    let held = support::eventually(Duration::from_secs(30), || async {
        (!ep.render_metrics().contains("outcome=\"pending\"} 0\n")).then_some(())
    })
    .await;
    assert!(
        held.is_some(),
        "the hook asked and was held: {}",
        ep.render_metrics()
    );
    assert!(sim.runners().is_empty(), "nothing registered while warm");

    let job = sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    let taken = std::time::Instant::now();
    let task = Task::JobQueued {
        job_id: job,
        run_id: 1,
        repository: "octo-org/app".into(),
        labels: vec!["self-hosted".into(), "g".into()],
        group: "g".into(),
        queued_at: None,
    };
    let outcome = TaskHandler::with_manager(m.clone())
        .handle(&Envelope::new(task, None))
        .await;
    assert!(
        matches!(outcome, runnerctl::worker::Outcome::Done),
        "{outcome:?}"
    );
    let started = support::eventually(Duration::from_secs(30), || async {
        sim.jobs()
            .iter()
            .any(|j| j.id == job && j.status != JobStatus::Queued)
            .then_some(())
    })
    .await;
    assert!(started.is_some(), "the warm instance's runner took the job");
    eprintln!("take to job start: {:?}", taken.elapsed());
    // The job's timeline has the moment the instance fetched its credential, after the take.
    let timeline = m.store.job_timeline(job).await.unwrap();
    let at = |k: &str| timeline.get(k).and_then(|v| v.parse::<u64>().ok());
    assert!(
        at("credential") >= at("decided") && at("decided").is_some(),
        "{timeline:?}"
    );
    let seen = support::redis_dump(&redis.url, "*").await;
    for r in sim.runners() {
        assert!(
            !seen.contains(&r.jit),
            "a JIT configuration in clear in Redis"
        );
    }
    assert!(
        ep.render_metrics()
            .contains("runnerctl_broker_redemptions_total{outcome=\"redeemed\"} 1"),
        "{}",
        ep.render_metrics()
    );
}

/// Google's side of GCE identity tokens, played on loopback: the published key set (a test key
/// pair from `tests/fixtures/gce`), tokens signed with it as the metadata server hands them out,
/// and the metadata server itself for the fetch hook.
/// Issues r1's credential bound to 127.0.0.1 and `identity`, renders a VM bootstrap whose hook
/// proves the instance with `proof`, and runs that hook (the metadata service's address `from`
/// replaced by `to`) against the endpoint: whether it succeeded and what it fetched.
#[cfg(any(feature = "gcp", feature = "aws"))]
async fn run_proving_hook(
    b: &Broker,
    tls: &Tls,
    identity: &str,
    proof: bootstrap::Proof,
    (from, to): (&str, &str),
) -> (bool, Option<String>) {
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(b
        .bind_to(&issued.id, "127.0.0.1", Some(identity))
        .await
        .unwrap());
    let mut boot = vm_boot("r1");
    bootstrap::through_broker_proving(&mut boot, &tls.url, &tls.cert, &issued.token, 20, proof)
        .unwrap();
    let files = files_of(boot.user_data.as_ref().unwrap().expose());
    let file = |p: &str| files.iter().find(|(path, _)| path == p).unwrap().1.clone();
    let hook = file(bootstrap::FETCH_CREDENTIAL_HOOK).replace(from, to);
    let (d, t, c) = (
        tls.dir.path().to_path_buf(),
        file(bootstrap::BROKER_TOKEN),
        tls.cert.clone(),
    );
    tokio::task::spawn_blocking(move || run_hook(&d, &hook, &t, &c))
        .await
        .unwrap()
}

/// A file of `tests/fixtures/identity` (test-only keys).
#[cfg(any(feature = "gcp", feature = "aws"))]
fn identity_fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/identity/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[cfg(feature = "gcp")]
mod gce {
    use bytes::Bytes;
    use http_body_util::Full;
    use runnerctl::fake_server::{serve_fake, Body};
    use serde_json::json;

    pub const PROJECT: &str = "ci-project";
    pub const ZONE: &str = "europe-west1-b";

    use super::identity_fixture as fixture;

    /// An identity token as GCE's metadata server makes it (`format=full`), signed by `key`.
    pub fn token(key: &str, audience: &str, name: &str, id: u64, expires_in: i64) -> String {
        let now = runnerctl::model::unix_now() as i64;
        let claims = json!({
            "iss": "https://accounts.google.com",
            "aud": audience,
            "azp": "1234567890",
            "sub": "1234567890",
            "iat": now,
            "exp": now + expires_in,
            "google": {"compute_engine": {
                "project_id": PROJECT,
                "project_number": 424242,
                "zone": ZONE,
                "instance_id": id.to_string(),
                "instance_name": name,
                "instance_creation_timestamp": now - 60,
            }},
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("test-key-1".into());
        let pem = fixture(&format!("{key}-key.pem"));
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    /// Serves the key set at `/certs` and, as the metadata server, `token` at the identity path
    /// to requests with `Metadata-Flavor: Google` and the expected audience. Its URL.
    pub async fn google(token: String, audience: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = fixture("jwks.json");
        let stop = serve_fake(
            listener,
            (jwks, token, audience),
            |(jwks, token, audience), req| async move {
                let reply = |status: u16, body: String| {
                    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    r
                };
                let r: hyper::Response<Body> = match req.uri().path() {
                    "/certs" => reply(200, jwks),
                    "/computeMetadata/v1/instance/service-accounts/default/identity" => {
                        let flavor = req
                            .headers()
                            .get("metadata-flavor")
                            .and_then(|v| v.to_str().ok());
                        let query: Vec<(String, String)> =
                            url_pairs(req.uri().query().unwrap_or(""));
                        let asked = |k: &str| {
                            query
                                .iter()
                                .any(|(q, v)| q == k && (k != "audience" || *v == audience))
                        };
                        if flavor == Some("Google")
                            && asked("audience")
                            && query.iter().any(|(k, v)| k == "format" && v == "full")
                        {
                            reply(200, token)
                        } else {
                            reply(
                                403,
                                "Missing Metadata-Flavor:Google header or audience".into(),
                            )
                        }
                    }
                    _ => reply(404, String::new()),
                };
                r
            },
        );
        std::mem::forget(stop); // serves until the test process ends
        url
    }

    fn url_pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%2F", "/")))
            .collect()
    }
}

/// A credential bound to a GCE instance's identity is handed over only with that instance's
/// identity token, signed by Google's key, for the broker's audience, not expired; and still
/// only once and only from the instance's address.
#[cfg(feature = "gcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gce_identity_bound_credential_needs_the_instance_s_signed_token() {
    use runnerctl::broker::identity::{gce_identity, GceIdentity};
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let audience = "https://10.0.0.1:8443";
    let google = gce::google(String::new(), audience.into()).await;
    let b = Broker::new(conn, &manager_name("broker-gce"), vault()).with_identity_checks(vec![
        Arc::new(GceIdentity::new(audience, Some(&format!("{google}/certs")))),
    ]);
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    let me = gce_identity(gce::PROJECT, gce::ZONE, "r1", "42");
    assert!(b.bind_to(&issued.id, "10.0.0.5", Some(&me)).await.unwrap());
    let token = issued.token.expose().to_string();
    let redeem = |proof: Option<String>, from: &'static str| {
        let (b, token) = (b.clone(), token.clone());
        async move { b.redeem_with(&token, from, proof.as_deref()).await.unwrap() }
    };
    let refused = |r| Redeemed::Refused(r);
    let signed = |key: &str, aud: &str, name: &str, id: u64, exp: i64| {
        Some(gce::token(key, aud, name, id, exp))
    };
    // No proof: ask again with one (401), nothing spent.
    assert_eq!(redeem(None, "10.0.0.5").await, refused(Refusal::NoIdentity));
    // Another instance's token, one for another audience, an expired one, a forged one (signed
    // by another key under Google's key id), garbage: refused.
    for proof in [
        signed("google", audience, "r2", 42, 600),
        signed("google", audience, "r1", 43, 600),
        signed("google", "https://elsewhere:8443", "r1", 42, 600),
        signed("google", audience, "r1", 42, -600),
        signed("forger", audience, "r1", 42, 600),
        Some("not.a.jwt".into()),
    ] {
        assert_eq!(
            redeem(proof, "10.0.0.5").await,
            refused(Refusal::WrongIdentity)
        );
    }
    // The right token from another address: refused.
    let right = signed("google", audience, "r1", 42, 600);
    assert_eq!(
        redeem(right.clone(), "10.0.0.6").await,
        refused(Refusal::WrongAddress)
    );
    // The right one: the credential, once.
    assert_eq!(
        redeem(right.clone(), "10.0.0.5").await,
        Redeemed::Credential {
            runner: "r1".into(),
            credential: Secret::new(JIT)
        }
    );
    assert_eq!(redeem(right, "10.0.0.5").await, refused(Refusal::Unknown));
}

/// The fetch hook of a GCE instance asks its metadata server for its identity token (audience
/// the broker) and sends it with the one-time token: the real hook, curl, the TLS endpoint.
#[cfg(feature = "gcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gce_fetch_hook_proves_the_instance_s_identity() {
    use runnerctl::broker::identity::{gce_identity, GceIdentity};
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let plain = Broker::new(conn, &manager_name("broker-gce-hook"), vault());
    // The endpoint's URL (the tokens' audience) is known once it listens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let token = gce::token("google", &url, "r1", 42, 600);
    let google = gce::google(token, url.clone()).await;
    let b = plain.with_identity_checks(vec![Arc::new(GceIdentity::new(
        &url,
        Some(&format!("{google}/certs")),
    ))]);
    let tls = tls_endpoint_on(&b, listener).await;
    assert_eq!(tls.url, url);
    let me = gce_identity(gce::PROJECT, gce::ZONE, "r1", "42");
    let metadata = (
        "${RUNNERCTL_METADATA_URL:-http://metadata.google.internal}",
        google.as_str(),
    );
    let (ok, got) =
        run_proving_hook(&b, &tls, &me, bootstrap::Proof::GceIdentityToken, metadata).await;
    assert!(
        ok,
        "the hook proved the instance and fetched the credential"
    );
    assert_eq!(got.as_deref(), Some(JIT));
    assert!(
        tls.endpoint
            .render_metrics()
            .contains("outcome=\"redeemed\"} 1"),
        "{}",
        tls.endpoint.render_metrics()
    );
}

/// AWS's side of EC2 identity documents, played on loopback: documents signed with a test key
/// whose certificate the broker is given, and IMDSv2 serving them to the fetch hook.
#[cfg(feature = "aws")]
mod ec2 {
    use base64::Engine;
    use bytes::Bytes;
    use http_body_util::Full;
    use runnerctl::fake_server::{serve_fake, Body};
    use serde_json::json;

    pub const ACCOUNT: &str = "123456789012";
    pub const REGION: &str = "eu-west-1";

    pub fn document(instance: &str) -> Vec<u8> {
        serde_json::to_vec_pretty(&json!({
            "accountId": ACCOUNT,
            "architecture": "x86_64",
            "availabilityZone": "eu-west-1a",
            "imageId": "ami-0123456789abcdef0",
            "instanceId": instance,
            "instanceType": "c6i.large",
            "pendingTime": "2026-12-02T06:00:00Z",
            "privateIp": "10.0.0.5",
            "region": REGION,
            "version": "2017-09-30",
        }))
        .unwrap()
    }

    /// The document's RSA-SHA256 signature by `key`, base64, as IMDS serves it.
    pub fn signature(key: &str, doc: &[u8]) -> String {
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::signature::{SignatureEncoding, Signer};
        let pem = super::identity_fixture(&format!("{key}-key.pem"));
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let sig = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k).sign(doc);
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    }

    /// The proof the hook sends: the document in base64, a `.`, the signature.
    pub fn proof(doc: &[u8], signature: &str) -> String {
        format!(
            "{}.{signature}",
            base64::engine::general_purpose::STANDARD.encode(doc)
        )
    }

    /// IMDSv2 on loopback: a session token from PUT, then the document and its signature to
    /// requests bearing it. Its URL.
    pub async fn imds(doc: Vec<u8>, signature: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = serve_fake(
            listener,
            (doc, signature),
            |(doc, signature), req| async move {
                let reply = |status: u16, body: Vec<u8>| {
                    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    r
                };
                let session = req
                    .headers()
                    .get("x-aws-ec2-metadata-token")
                    .and_then(|v| v.to_str().ok())
                    == Some("imds-session");
                let r: hyper::Response<Body> =
                    match (req.method().as_str(), req.uri().path(), session) {
                        ("PUT", "/latest/api/token", _)
                            if req
                                .headers()
                                .contains_key("x-aws-ec2-metadata-token-ttl-seconds") =>
                        {
                            reply(200, b"imds-session".to_vec())
                        }
                        ("GET", "/latest/dynamic/instance-identity/document", true) => {
                            reply(200, doc)
                        }
                        ("GET", "/latest/dynamic/instance-identity/signature", true) => {
                            // IMDS wraps the signature over several lines.
                            let wrapped: Vec<String> = signature
                                .as_bytes()
                                .chunks(64)
                                .map(|c| String::from_utf8_lossy(c).to_string())
                                .collect();
                            reply(200, wrapped.join("\n").into_bytes())
                        }
                        (_, _, false) => reply(401, Vec::new()),
                        _ => reply(404, Vec::new()),
                    };
                r
            },
        );
        std::mem::forget(stop);
        url
    }
}

/// A credential bound to an EC2 instance's identity is handed over only with that instance's
/// identity document signed by AWS's key (its certificate given to the broker).
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec2_identity_bound_credential_needs_the_instance_s_signed_document() {
    use runnerctl::broker::identity::Ec2Identity;
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let check = Ec2Identity::from_pem(&identity_fixture("aws-cert.pem")).unwrap();
    let name = manager_name("broker-ec2");
    let b = Broker::new(conn.clone(), &name, vault()).with_identity_checks(vec![Arc::new(check)]);
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    let me = runnerctl::model::ec2_identity(ec2::ACCOUNT, ec2::REGION, "i-0aaa");
    assert!(b.bind_to(&issued.id, "10.0.0.5", Some(&me)).await.unwrap());
    // A binding never loosens: binding again without the identity keeps it.
    assert!(b.bind(&issued.id, "10.0.0.5").await.unwrap());
    let token = issued.token.expose().to_string();
    let redeem = |proof: Option<String>| {
        let (b, token) = (b.clone(), token.clone());
        async move {
            b.redeem_with(&token, "10.0.0.5", proof.as_deref())
                .await
                .unwrap()
        }
    };
    let refused = |r| Redeemed::Refused(r);
    assert_eq!(redeem(None).await, refused(Refusal::NoIdentity));
    let mine = ec2::document("i-0aaa");
    let theirs = ec2::document("i-0bbb");
    let mut tampered = mine.clone();
    tampered.extend_from_slice(b" ");
    for proof in [
        ec2::proof(&theirs, &ec2::signature("aws", &theirs)),
        ec2::proof(&tampered, &ec2::signature("aws", &mine)),
        ec2::proof(&mine, &ec2::signature("aws-forger", &mine)),
        "bm90IGEgZG9j.bm90IGEgc2ln".into(),
        "garbage".into(),
    ] {
        assert_eq!(redeem(Some(proof)).await, refused(Refusal::WrongIdentity));
    }
    let right = ec2::proof(&mine, &ec2::signature("aws", &mine));
    assert_eq!(
        redeem(Some(right.clone())).await,
        Redeemed::Credential {
            runner: "r1".into(),
            credential: Secret::new(JIT)
        }
    );
    assert_eq!(redeem(Some(right)).await, refused(Refusal::Unknown));

    // A broker that cannot check a kind of identity binds the address only.
    let plain = Broker::new(conn, &name, vault());
    let issued = plain
        .issue("r2", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(plain
        .bind_to(&issued.id, "10.0.0.5", Some(&me))
        .await
        .unwrap());
    assert!(matches!(
        plain
            .redeem(issued.token.expose(), "10.0.0.5")
            .await
            .unwrap(),
        Redeemed::Credential { .. }
    ));
}

/// The fetch hook of an EC2 instance reads its identity document and signature from IMDSv2 and
/// sends them with the one-time token: the real hook, curl, the TLS endpoint.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ec2_fetch_hook_proves_the_instance_s_identity() {
    use runnerctl::broker::identity::Ec2Identity;
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let check = Ec2Identity::from_pem(&identity_fixture("aws-cert.pem")).unwrap();
    let b = Broker::new(conn, &manager_name("broker-ec2-hook"), vault())
        .with_identity_checks(vec![Arc::new(check)]);
    let tls = tls_endpoint(&b).await;
    let doc = ec2::document("i-0aaa");
    let imds = ec2::imds(doc.clone(), ec2::signature("aws", &doc)).await;
    let me = runnerctl::model::ec2_identity(ec2::ACCOUNT, ec2::REGION, "i-0aaa");
    let metadata = (
        "${RUNNERCTL_IMDS_URL:-http://169.254.169.254}",
        imds.as_str(),
    );
    let (ok, got) = run_proving_hook(
        &b,
        &tls,
        &me,
        bootstrap::Proof::Ec2IdentityDocument,
        metadata,
    )
    .await;
    assert!(
        ok,
        "the hook proved the instance and fetched the credential"
    );
    assert_eq!(got.as_deref(), Some(JIT));
}

/// One runner VM opening 400 idle connections (no TLS handshake) filled the broker's 256
/// connections for 10 s each: every other instance went without its credential. Now one
/// address holds at most its share, and a silent handshake is dropped within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_silence_the_broker_for_the_others() {
    let redis = RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let b = Broker::new(conn.clone(), &manager_name("broker-flood"), vault());
    let tls = tls_endpoint(&b).await;
    let port: u16 = tls.url.rsplit(':').next().unwrap().parse().unwrap();
    let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..400 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.5:0".parse().unwrap()).unwrap();
        if let Ok(c) = socket.connect(target).await {
            idle.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another instance asks (a token the broker does not know: refused, but answered).
    let ca = tls.dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.cert).unwrap();
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "3",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["-X", "POST", "-H", "Authorization: Bearer not-a-token"])
            .arg(format!("https://localhost:{port}/v1/credential"))
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        code.starts_with('4'),
        "answered while one address floods: {code} after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The flood's silent connections are dropped after the handshake deadline.
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let first = &mut idle[0];
    let closed = tokio::time::timeout(
        endpoint::HANDSHAKE_TIMEOUT + Duration::from_secs(2),
        first.read(&mut buf),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed after the handshake deadline: {closed:?}"
    );
    drop(idle);
}

/// Without `tls_cert_file` and `tls_key_file`, `serve` presents a certificate runnerctl made for
/// the URL's host and keeps in Redis (its key sealed); a worker (another process, the same
/// Redis) pins that same certificate in the instances' bootstrap, and the instance's curl
/// redeems through it. Redis holds no private key in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_certificate_files_the_broker_makes_one_every_process_shares() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let brk = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = manager_name("broker-managed");
    let broker_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let text = format!(
        "name: {name}\ngithub:\n  token_env: GITHUB_TOKEN\nredis:\n  url: {}\nwebhook:\n  listen: 127.0.0.1:{web}\n  secret_env: WEBHOOK_SECRET\nbroker:\n  listen: 127.0.0.1:{brk}\n  url: https://127.0.0.1:{brk}\n  key_env: BROKER_KEY\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: demo\n    organization: octo-org\n    labels: [self-hosted, demo]\n    backend: fake\n",
        redis.url
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, &text).unwrap();
    let cmd = |args: &[&str]| runnerctl(&config, &broker_key, args);
    let out = cmd(&["config", "validate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut serve = cmd(&["-q", "serve"]).spawn().unwrap();
    let up = support::eventually(Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", brk))
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(up.is_some(), "the broker listens");

    // The worker's side: the same certificate, from Redis, for the instances to pin.
    let inline = text.replace("  key_env: BROKER_KEY\n", &format!("  key: {broker_key}\n"));
    let parsed = runnerctl::wiring::parse(&inline, "x.yaml").unwrap().config;
    let conn = store::connect(&redis.url).await.unwrap();
    let link = runnerctl::wiring::broker_link(&parsed, &conn)
        .await
        .unwrap()
        .expect("a broker");
    assert!(link.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let stored = support::redis_dump(&redis.url, "*broker:tls*").await;
    assert!(stored.contains("BEGIN CERTIFICATE"), "{stored}");
    assert!(!stored.contains("PRIVATE KEY"), "a key in clear: {stored}");

    let b = Broker::new(conn, &name, vault());
    let issued = b
        .issue("r1", &Secret::new(JIT), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(b.bind(&issued.id, "127.0.0.1").await.unwrap());
    let ca_path = dir.path().join("pinned.pem");
    std::fs::write(&ca_path, &link.ca_pem).unwrap();
    let out = redeem(ca_path, brk, issued.token.expose().to_string()).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{JIT}\n200"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    assert!(serve.wait().unwrap().success());
}
