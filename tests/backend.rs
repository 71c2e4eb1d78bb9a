//! Every backend passes the same conformance suite: the fake one always, Docker against the
//! real engine (`.ci/run` installs and starts it).

mod support;

#[path = "support/conformance.rs"]
mod conformance;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::fake::FakeSpec;
use runnerctl::backend::{Backend, BootData};
use std::sync::Arc;
use support::{manager_name, RedisServer};

#[tokio::test]
async fn the_fake_backend_in_memory_conforms() {
    let one = FakeBackend::new("fake", "one", None, None);
    let two = one.seen_by("two");
    let spec = FakeSpec::default().typed();
    conformance::run(
        Arc::new(one),
        "one",
        Arc::new(two),
        "two",
        &spec,
        BootData::default(),
    )
    .await;
}

#[tokio::test]
async fn the_fake_backend_in_redis_conforms() {
    let redis = RedisServer::start();
    let (a, b) = (manager_name("fake-a"), manager_name("fake-b"));
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    let one: Arc<dyn Backend> = Arc::new(FakeBackend::new("fake", &a, None, Some(conn.clone())));
    let two: Arc<dyn Backend> = Arc::new(FakeBackend::new("fake", &b, None, Some(conn)));
    let spec = FakeSpec::default().typed();
    conformance::run(one, &a, two, &b, &spec, BootData::default()).await;
}

#[cfg(feature = "docker")]
mod docker {
    use super::*;
    use runnerctl::backend::docker::DockerBackend;
    use runnerctl::backend::docker::{DockerSettings, DockerSpec};
    use runnerctl::backend::File;
    use runnerctl::config::Secret;

    fn spec() -> runnerctl::config::InstanceSpec {
        DockerSpec {
            image: support::docker_test_image().to_string(),
            cpus: Some(0.5),
            memory_mb: Some(64),
            network: Some("none".into()),
        }
        .typed()
    }

    fn boot() -> BootData {
        BootData {
            command: vec!["/bin/sh".into(), "-c".into(), "sleep 300".into()],
            env: vec![("RUNNER_NAME".into(), "x".into())],
            files: vec![File {
                path: "/run/runnerctl/jitconfig".into(),
                mode: 0o600,
                content: Secret::new("JIT-SECRET-abc123"),
            }],
            user_data: None,
        }
    }

    async fn backend(manager: &str) -> DockerBackend {
        DockerBackend::connect("docker", manager, &DockerSettings::default())
            .await
            .expect("a Docker engine must run (.ci/run starts one)")
    }

    #[tokio::test]
    async fn the_docker_backend_conforms() {
        let (a, b) = (manager_name("dock-a"), manager_name("dock-b"));
        conformance::run(
            Arc::new(backend(&a).await),
            &a,
            Arc::new(backend(&b).await),
            &b,
            &spec(),
            boot(),
        )
        .await;
    }

    #[tokio::test]
    async fn containers_get_files_limits_and_no_secret_in_their_metadata() {
        let m = manager_name("dock-files");
        let d = backend(&m).await;
        let runner = format!("{m}-g-files");
        let made = d
            .create(&conformance::request(&m, "g", &runner, &spec(), boot()))
            .await
            .unwrap();
        let seen = support::docker(&["exec", &made.id, "cat", "/run/runnerctl/jitconfig"]);
        assert_eq!(seen, "JIT-SECRET-abc123", "the secret file is inside");
        let mode = support::docker(&["exec", &made.id, "ls", "-l", "/run/runnerctl/jitconfig"]);
        assert!(mode.starts_with("-rw------- "), "{mode}");
        let inspect = support::docker(&["inspect", &made.id]);
        assert!(
            !inspect.contains("JIT-SECRET"),
            "no secret in container metadata"
        );
        assert!(inspect.contains("\"RUNNER_NAME=x\""), "{inspect}");
        assert!(inspect.contains("\"NanoCpus\": 500000000"), "CPU limit");
        assert!(inspect.contains("\"Memory\": 67108864"), "memory limit");
        assert!(inspect.contains("\"NetworkMode\": \"none\""));
        d.delete(&made.id).await.unwrap();
        assert_eq!(
            support::docker(&["ps", "-aq", "--filter", &format!("id={}", made.id)]),
            ""
        );
    }

    #[tokio::test]
    async fn a_missing_image_is_a_permanent_error_and_leaves_nothing() {
        let m = manager_name("dock-noimg");
        let d = backend(&m).await;
        let bad = DockerSpec {
            image: "runnerctl-no-such-image:1".into(),
            cpus: None,
            memory_mb: None,
            network: None,
        }
        .typed();
        let err = d
            .create(&conformance::request(
                &m,
                "g",
                &format!("{m}-g-x"),
                &bad,
                boot(),
            ))
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains("NoSuchImage"), "{err}");
        assert!(d.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_a_transient_error() {
        let r = DockerBackend::connect(
            "docker",
            "x",
            &DockerSettings {
                host: Some("tcp://127.0.0.1:1".into()),
                network: None,
                broker: false,
            },
        )
        .await;
        let err = r.err().expect("nothing listens on port 1");
        assert!(err.is_transient(), "{err}");
    }
}

#[cfg(feature = "docker")]
mod bootstrap_in_a_container {
    use super::*;
    use runnerctl::backend::docker::DockerBackend;
    use runnerctl::backend::docker::{DockerSettings, DockerSpec};
    use runnerctl::bootstrap::BootStyle;
    use runnerctl::bootstrap::{self, Credential, RunnerSetup};
    use runnerctl::config::Secret;
    use std::time::Duration;

    #[tokio::test]
    async fn the_default_bootstrap_starts_the_runner_once_without_leaking_the_secret() {
        let m = manager_name("boot");
        let runner = format!("{m}-g-boot");
        let setup = RunnerSetup {
            runner_name: runner.clone(),
            labels: vec!["self-hosted".into(), "linux".into()],
            url: "https://github.com/octo-org".into(),
            runner_group: Some("g".into()),
            agent: runnerctl::forge::Agent::ActionsRunner,
            container_jobs: None,
            credential: Credential::Jit(Secret::new("eyJKSVQiOiJzZWNyZXQifQ==")),
        };
        let boot = bootstrap::render(BootStyle::Container, &setup, None).unwrap();
        let d = DockerBackend::connect("docker", &m, &DockerSettings::default())
            .await
            .unwrap();
        let spec = DockerSpec {
            image: support::docker_test_image().to_string(),
            cpus: None,
            memory_mb: None,
            network: Some("none".into()),
        }
        .typed();
        let made = d
            .create(&conformance::request(&m, "g", &runner, &spec, boot))
            .await
            .unwrap();
        let mut started = false;
        for _ in 0..100 {
            if support::docker(&["exec", &made.id, "cat", "/tmp/runner-state"]) == "started" {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = std::process::Command::new("docker")
            .args(["logs", &made.id])
            .output()
            .unwrap();
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        assert!(started, "the stand-in runner started: {logs}");
        assert_eq!(
            support::docker(&["exec", &made.id, "cat", "/tmp/jit-received"]),
            "eyJKSVQiOiJzZWNyZXQifQ==",
            "the runner got its JIT configuration"
        );
        assert!(
            logs.contains(&format!("starting runner {runner}")),
            "{logs}"
        );
        assert!(!logs.contains("eyJKSVQi"), "no secret in the logs: {logs}");
        assert!(!support::docker(&["inspect", &made.id]).contains("eyJKSVQi"));
        assert_eq!(
            support::docker(&["exec", &made.id, "ls", "/run/runnerctl"]),
            "bootstrap.sh\nrunner.env",
            "the credential file is gone once read"
        );
        assert_eq!(
            support::docker(&["exec", &made.id, "ls", "/var/lib/runnerctl"]),
            "installed"
        );
        // Running it a second time does no harm.
        let again = support::docker(&["exec", &made.id, "sh", "/run/runnerctl/bootstrap.sh"]);
        assert!(
            again.contains("was started already; nothing to do"),
            "{again}"
        );
        d.delete(&made.id).await.unwrap();
    }
}
