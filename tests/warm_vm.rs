//! A stopped warm pool end to end on the VM backends, each against its stand-in cloud (moto's
//! EC2, the fake Compute Engine, govmomi's vCenter simulator), with real Redis, the fake GitHub
//! and the credential broker. The test plays the instance: it reads the one-time broker token
//! from the user-data the cloud keeps and asks the broker from the instance's address, as the
//! fetch hook does. What must hold: the instance is stopped only after its first boot asked the
//! broker; nothing is registered while it is warm; a job takes it, it is started, and the
//! credential sealed for it is what the broker hands it; nothing else is made.
#![cfg(any(feature = "aws", feature = "gcp", feature = "vsphere"))]

mod support;

use base64::Engine;
use runnerctl::backend::{Backend, InstanceState};
use runnerctl::broker::{Broker, Redeemed, Refusal, Vault};
use runnerctl::config::{InstanceSpec, Secret};
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::{sync, Manager, TaskHandler};
use runnerctl::model::{Pool, RunnerStatus};
use runnerctl::queue::{Envelope, Task};
use runnerctl::store::{self, RedisStore};
use runnerctl::worker::{Handler, Outcome};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use support::{manager_name, RedisServer};

/// Reads the user-data the cloud keeps for an instance id.
type UserData = Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// The one-time token in a VM's user-data (the broker token file's header).
fn broker_token(user_data: &str) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(user_data).unwrap();
    let entry = doc["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str() == Some(runnerctl::bootstrap::BROKER_TOKEN))
        .expect("the broker token file is in the user-data");
    let header = runnerctl::bootstrap::file_content(entry).unwrap();
    header
        .trim()
        .strip_prefix("Authorization: Bearer ")
        .unwrap()
        .to_string()
}

/// One stopped warm instance made, taken by a job and handed its credential, on `backend`.
async fn stopped_pool_end_to_end(
    test: &str,
    manager: &str,
    backend: Arc<dyn Backend>,
    spec: InstanceSpec,
    user_data: UserData,
) {
    let redis = RedisServer::start();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        rate_limit: 1_000_000,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let text = format!(
        "name: {manager}\ntime_to_start: 60s\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  b:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: b\n    max_runners: 3\n",
        sim.url(),
        redis.url
    );
    let mut config = runnerctl::wiring::parse(&text, test).unwrap().config;
    config.runner_groups[0].spec = spec;
    config.runner_groups[0].warm_pool = Some(serde_yaml::from_str("stopped: 1").unwrap());
    let g = config.runner_groups[0].clone();
    let config = Arc::new(config);
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    sync::sync(&*gh, &[&g], false, &|| {}).await;
    let conn = store::connect(&redis.url).await.unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let broker = Broker::new(
        conn.clone(),
        manager,
        Vault::new(&[Secret::new(key)]).unwrap(),
    );
    let st = RedisStore::new(conn, manager);
    let mut m = Manager::new(
        config,
        st.clone(),
        gh,
        std::collections::HashMap::from([("b".to_string(), backend.clone())]),
    );
    m.broker = Some(runnerctl::broker::Link {
        broker: broker.clone(),
        url: "https://10.0.0.1:8443".into(),
        ca_pem: "-----BEGIN CERTIFICATE-----\n".into(),
    });
    let m = Arc::new(m);

    // A pass makes the instance; it boots.
    let rows = m.warm_pass(&g, None).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| format!("{:?}", r.result).contains("1 made")),
        "{rows:?}"
    );
    let record = st.all_runners().await.unwrap().remove(0);
    assert_eq!(record.status, RunnerStatus::Warming);
    assert_eq!(record.pool, Some(Pool::Stopped));
    let instance = backend
        .get(record.instance_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        instance.state,
        InstanceState::Stopped,
        "not stopped before its first boot"
    );
    // A pass before the instance asked the broker leaves it booting.
    m.warm_pass(&g, None).await.unwrap();
    let still = st.get(&record.name).await.unwrap().unwrap();
    assert_eq!(
        still.status,
        RunnerStatus::Warming,
        "not stopped before it booted"
    );
    assert_ne!(
        backend.get(&instance.id).await.unwrap().unwrap().state,
        InstanceState::Stopped
    );
    let token = broker_token(&user_data(instance.id.clone()).await);
    let address = instance.address.clone().expect("the instance's address");
    // The instance boots and asks: no credential yet, the request held.
    assert_eq!(
        broker.redeem(&token, &address).await.unwrap(),
        Redeemed::Refused(Refusal::Pending)
    );
    // The next pass sees it booted: stopped, warm.
    m.warm_pass(&g, None).await.unwrap();
    let warm = st.get(&record.name).await.unwrap().unwrap();
    assert_eq!(warm.status, RunnerStatus::Warm);
    let id = warm.instance_id.clone().unwrap();
    assert_eq!(
        backend.get(&id).await.unwrap().unwrap().state,
        InstanceState::Stopped,
        "stopped after its first boot"
    );
    assert!(sim.runners().is_empty(), "nothing registered while warm");

    // A job takes it: registered, started, its credential sealed for it.
    let job = sim.queue_job("octo-org/app", &["self-hosted", "g"]);
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
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    let taken = st.get(&record.name).await.unwrap().unwrap();
    assert_eq!(
        taken.status,
        RunnerStatus::Started,
        "the warm instance is the job's runner"
    );
    assert_eq!(taken.instance_id.as_deref(), Some(id.as_str()));
    let state = backend.get(&id).await.unwrap().unwrap().state;
    assert!(
        matches!(state, InstanceState::Running | InstanceState::Pending),
        "started: {state:?}"
    );
    let registered = sim.runners();
    assert_eq!(registered.len(), 1, "one runner registered, for the job");
    match broker.redeem(&token, &address).await.unwrap() {
        Redeemed::Credential { runner, credential } => {
            assert_eq!(runner, record.name);
            assert_eq!(
                credential.expose(),
                registered[0].jit,
                "the JIT configuration GitHub issued"
            );
        }
        other => panic!("the started instance gets its credential: {other:?}"),
    }
    // The pool was replenished after the take: one new stopped-pool instance, booting.
    let others: Vec<_> = st
        .all_runners()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name != record.name)
        .collect();
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(
        (others[0].status, others[0].pool),
        (RunnerStatus::Warming, Some(Pool::Stopped))
    );
    assert_eq!(
        backend.list().await.unwrap().len(),
        2,
        "the taken instance and its replacement, nothing else"
    );
    for i in backend.list().await.unwrap() {
        backend.delete(&i.id).await.unwrap();
    }
}

#[cfg(feature = "aws")]
#[path = "support/moto.rs"]
mod moto;

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_pool_on_ec2_serves_a_job_end_to_end() {
    use runnerctl::backend::aws::{AwsBackend, AwsSettings, AwsSpec};
    let (m, _turn) = moto::moto().await;
    let url = m.url.clone();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let manager = manager_name("warm-ec2");
    let settings = AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: Some(url.clone()),
        max_attempts: Some(1),
        ..Default::default()
    };
    let backend = Arc::new(AwsBackend::from_sdk_config("b", &manager, &settings, &sdk));
    let spec = AwsSpec {
        image_id: image,
        instance_type: "t3.micro".into(),
        subnet_id: None,
        security_group_ids: vec![],
        key_name: None,
        iam_instance_profile: None,
        disk_size_gb: 30,
        disk_type: "gp3".into(),
        disk_iops: None,
        disk_throughput_mbps: None,
        spot: false,
        spot_fallback_on_demand: true,
    };
    let user_data: UserData = Box::new(move |id| {
        let ec2 = ec2.clone();
        Box::pin(async move {
            let attr = ec2
                .describe_instance_attribute()
                .instance_id(id)
                .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
                .send()
                .await
                .unwrap();
            let encoded = attr.user_data().and_then(|u| u.value()).unwrap();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap(),
            )
            .unwrap()
        })
    });
    stopped_pool_end_to_end("warm-ec2", &manager, backend, spec.typed(), user_data).await;
}

#[cfg(feature = "gcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_pool_on_compute_engine_serves_a_job_end_to_end() {
    use runnerctl::backend::gcp::fake::{Discovery, FakeCompute, FakeComputeOptions};
    use runnerctl::backend::gcp::{GcpBackend, GcpSettings, GcpSpec};
    let path = std::env::var("RUNNERCTL_GCE_DISCOVERY")
        .unwrap_or_else(|_| format!("{}/.cache/gce/compute.v1.json", env!("CARGO_MANIFEST_DIR")));
    let discovery = Discovery::load(std::path::Path::new(&path))
        .expect("Compute Engine's discovery document (.ci/run puts it in .cache/gce)");
    let sim = Arc::new(
        FakeCompute::start(discovery, FakeComputeOptions::default())
            .await
            .unwrap(),
    );
    let manager = manager_name("warm-gce");
    let settings = GcpSettings {
        project: sim.options().project.clone(),
        zones: sim.options().zones.clone(),
        endpoint_url: Some(sim.url()),
        anonymous: true,
        operation_timeout: Some("10s".parse().unwrap()),
        ..Default::default()
    };
    let backend = Arc::new(GcpBackend::connect("b", &manager, &settings).await.unwrap());
    let spec: GcpSpec = serde_yaml::from_str(&format!(
        "machine_type: e2-standard-4\nimage_family: {}\n",
        FakeComputeOptions::default().images[0]
    ))
    .unwrap();
    let fake = sim.clone();
    let user_data: UserData = Box::new(move |id| {
        let fake = fake.clone();
        Box::pin(async move {
            let name = id.rsplit('/').next().unwrap().to_string();
            let i = fake
                .instances()
                .into_iter()
                .find(|i| i["name"] == serde_json::json!(name))
                .unwrap();
            i["metadata"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|it| it["key"] == serde_json::json!("user-data"))
                .unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
    });
    stopped_pool_end_to_end("warm-gce", &manager, backend, spec.typed(), user_data).await;
    assert_eq!(sim.calls_of("compute.instances.suspend").len(), 1);
    assert_eq!(sim.calls_of("compute.instances.resume").len(), 1);
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

#[cfg(feature = "vsphere")]
#[path = "support/vcsim.rs"]
mod vcsim;

#[cfg(feature = "vsphere")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_powered_off_pool_on_vsphere_serves_a_job_end_to_end() {
    use runnerctl::backend::vsphere::{VsphereBackend, VsphereSettings, VsphereSpec};
    let sim = vcsim::Vcsim::start();
    let manager = manager_name("warm-vs");
    let settings = VsphereSettings {
        url: sim.url.clone(),
        user: vcsim::USER.into(),
        insecure: true,
        folder: vcsim::FOLDER.into(),
        resource_pool: vcsim::POOL.into(),
        datastore: Some(vcsim::DATASTORE.into()),
        task_timeout: Some("30s".parse().unwrap()),
        address_timeout: Some("30s".parse().unwrap()),
        ..Default::default()
    };
    let backend = Arc::new(
        VsphereBackend::connect("b", &manager, &settings, Secret::new(vcsim::PASSWORD))
            .await
            .unwrap(),
    );
    let spec = VsphereSpec {
        template: vcsim::TEMPLATE.into(),
        snapshot: None,
        cpus: None,
        memory_mb: None,
        network: None,
    };
    let be = backend.clone();
    let user_data: UserData = Box::new(move |_id| {
        let be = be.clone();
        Box::pin(async move {
            // The clone's guestinfo.userdata (base64), as vCenter keeps it in extraConfig.
            let body = be
                .recorded()
                .into_iter()
                .find(|r| r.method == "CloneVM_Task")
                .unwrap()
                .body;
            let at = body.find("<key>guestinfo.userdata</key>").unwrap();
            let rest = &body[at..];
            let start = rest.find('>').unwrap();
            let rest = &rest[start + 1..];
            let value_start = rest.find("<value").unwrap();
            let rest = &rest[value_start..];
            let open_end = rest.find('>').unwrap();
            let rest = &rest[open_end + 1..];
            let encoded = &rest[..rest.find("</value>").unwrap()];
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .unwrap(),
            )
            .unwrap()
        })
    });
    stopped_pool_end_to_end(
        "warm-vs",
        &manager,
        backend.clone(),
        spec.typed(),
        user_data,
    )
    .await;
    assert_eq!(
        backend
            .recorded()
            .iter()
            .filter(|r| r.method == "ShutdownGuest")
            .count(),
        1
    );
}
