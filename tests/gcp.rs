//! The Compute Engine backend against the project's fake Compute Engine, which routes and checks
//! every request (and its own answers) by Google's published discovery document
//! (`compute.v1.json` from PyPI's google-api-python-client; `.ci/run` puts it in `.cache/gce`).
#![cfg(feature = "gcp")]

mod support;

#[path = "support/conformance.rs"]
mod conformance;

use runnerctl::backend::gcp::fake::{Call, Discovery, FakeCompute, FakeComputeOptions, Fault};
use runnerctl::backend::gcp::{instance_name, GcpBackend, GcpSettings, GcpSpec, Gpu};
use runnerctl::backend::{Backend, BackendError, BootData, TAG_MANAGER, TAG_RUNNER};
use runnerctl::bootstrap::{self, BootStyle, Credential, RunnerSetup};
use runnerctl::config::Secret;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::manager_name;

const SECRET: &str = "JIT-SECRET-gce+7w==";
const IMAGE: &str = "projects/debian-cloud/global/images/family/debian-12";

fn discovery() -> Discovery {
    let path = std::env::var("RUNNERCTL_GCE_DISCOVERY")
        .unwrap_or_else(|_| format!("{}/.cache/gce/compute.v1.json", env!("CARGO_MANIFEST_DIR")));
    Discovery::load(std::path::Path::new(&path))
        .expect("Compute Engine's discovery document (.ci/run puts it in .cache/gce)")
}

async fn sim() -> FakeCompute {
    FakeCompute::start(discovery(), FakeComputeOptions::default())
        .await
        .unwrap()
}

fn settings(sim: &FakeCompute) -> GcpSettings {
    GcpSettings {
        project: sim.options().project.clone(),
        zones: sim.options().zones.clone(),
        endpoint_url: Some(sim.url()),
        anonymous: true,
        operation_timeout: Some("10s".parse().unwrap()),
        ..Default::default()
    }
}

async fn backend(sim: &FakeCompute, manager: &str) -> GcpBackend {
    GcpBackend::connect("gce", manager, &settings(sim))
        .await
        .unwrap()
}

fn spec() -> GcpSpec {
    GcpSpec {
        machine_type: "e2-standard-4".into(),
        image: None,
        image_family: Some(IMAGE.into()),
        disk_size_gb: 50,
        disk_type: "pd-ssd".into(),
        network: None,
        subnetwork: None,
        external_ip: true,
        tags: vec![],
        service_account: None,
        scopes: vec![],
        gpus: vec![],
        labels: Default::default(),
        spot: false,
        spot_fallback_standard: true,
        warm_stop: Default::default(),
    }
}

/// A VM's boot data as it is with the broker: the one-time token, no credential.
fn boot(runner: &str) -> BootData {
    conformance::vm_boot(runner, SECRET, Some("one-time-token-gce"))
}

fn request(manager: &str, runner: &str, spec: &GcpSpec) -> runnerctl::backend::CreateRequest {
    conformance::request(manager, "g", runner, &spec.clone().typed(), boot(runner))
}

fn assert_clean(sim: &FakeCompute) {
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

#[tokio::test]
async fn the_gcp_backend_conforms() {
    let sim = sim().await;
    let (one, two) = (manager_name("gce-one"), manager_name("gce-two"));
    let spec = spec().typed();
    conformance::run(
        Arc::new(backend(&sim, &one).await),
        &one,
        Arc::new(backend(&sim, &two).await),
        &two,
        &spec,
        boot(&format!("{one}-g-1")),
    )
    .await;
    assert_clean(&sim);
    assert!(sim.instances().is_empty() && sim.disks().is_empty());
}

/// A stopped warm pool's instance is suspended (the default) and resumed, each once; the
/// fake checks both calls against the discovery document.
#[tokio::test]
async fn a_stopped_warm_instance_is_suspended_and_resumed() {
    let sim = sim().await;
    let (one, two) = (manager_name("gce-warm-a"), manager_name("gce-warm-b"));
    conformance::stop_start(
        Arc::new(backend(&sim, &one).await),
        &one,
        Arc::new(backend(&sim, &two).await),
        &spec().typed(),
        boot(&format!("{one}-g-warm")),
    )
    .await;
    assert_eq!(
        sim.calls_of("compute.instances.suspend").len(),
        1,
        "suspended once"
    );
    assert_eq!(
        sim.calls_of("compute.instances.resume").len(),
        1,
        "resumed once"
    );
    assert!(sim.calls_of("compute.instances.stop").is_empty());
    let insert = &sim.calls_of("compute.instances.insert")[0];
    assert_eq!(
        insert.field("labels.runnerctl-warm-stop"),
        Some(&serde_json::json!("suspend")),
        "the instance says how it is stopped"
    );
    assert_clean(&sim);
}

/// `warm_stop: stop` stops and starts instead (a GPU instance cannot be suspended).
#[tokio::test]
async fn a_stopped_warm_instance_with_warm_stop_stop_is_stopped_and_started() {
    let sim = sim().await;
    let (one, two) = (manager_name("gce-warm-c"), manager_name("gce-warm-d"));
    let spec = GcpSpec {
        warm_stop: runnerctl::backend::gcp::WarmStop::Stop,
        ..spec()
    };
    conformance::stop_start(
        Arc::new(backend(&sim, &one).await),
        &one,
        Arc::new(backend(&sim, &two).await),
        &spec.typed(),
        boot(&format!("{one}-g-warm")),
    )
    .await;
    assert_eq!(sim.calls_of("compute.instances.stop").len(), 1);
    assert_eq!(sim.calls_of("compute.instances.start").len(), 1);
    assert!(sim.calls_of("compute.instances.suspend").is_empty());
    assert_clean(&sim);
}

/// The insert carries the spec with machine, disk and accelerator types as zonal URLs, GCE's
/// labels and the exact owner tags in metadata, the bootstrap as user-data (the broker's token,
/// never the credential), Spot scheduling, and a request id that is the same on every retry.
#[tokio::test]
async fn the_insert_carries_the_spec_labels_metadata_and_a_stable_request_id() {
    let sim = sim().await;
    let mgr = manager_name("gce-insert");
    let be = backend(&sim, &mgr).await;
    let mut s = spec();
    s.spot = true;
    s.tags = vec!["ci-runner".into()];
    s.service_account = Some("runner@p.iam.gserviceaccount.com".into());
    s.gpus = vec![Gpu {
        kind: "nvidia-tesla-t4".into(),
        count: 1,
    }];
    s.subnetwork = Some("runners".into());
    s.labels.insert("team".into(), "ci".into());
    let runner = format!("{mgr}-g-a");
    let made = be.create(&request(&mgr, &runner, &s)).await.unwrap();
    assert_eq!(
        made.id,
        format!("europe-west1-b/{}", instance_name(&runner))
    );
    assert!(made.address.as_deref().unwrap().starts_with("10.128."));
    let inserts = sim.calls_of("compute.instances.insert");
    assert_eq!(inserts.len(), 1);
    let c = &inserts[0];
    let z = "europe-west1-b";
    assert_eq!(
        c.field("machineType"),
        Some(&json!(format!("zones/{z}/machineTypes/e2-standard-4")))
    );
    let init = &c.body["disks"][0]["initializeParams"];
    assert_eq!(
        init["diskType"],
        json!(format!("zones/{z}/diskTypes/pd-ssd"))
    );
    assert_eq!(init["sourceImage"], json!(IMAGE));
    assert_eq!(init["diskSizeGb"], json!("50"), "int64 travels as a string");
    assert_eq!(c.body["disks"][0]["autoDelete"], json!(true));
    assert_eq!(
        c.body["guestAccelerators"][0]["acceleratorType"],
        json!(format!("zones/{z}/acceleratorTypes/nvidia-tesla-t4"))
    );
    assert_eq!(
        c.field("scheduling.provisioningModel"),
        Some(&json!("SPOT"))
    );
    assert_eq!(
        c.field("scheduling.instanceTerminationAction"),
        Some(&json!("DELETE"))
    );
    assert_eq!(
        c.field("scheduling.onHostMaintenance"),
        Some(&json!("TERMINATE"))
    );
    assert_eq!(
        c.body["networkInterfaces"][0]["subnetwork"],
        json!("regions/europe-west1/subnetworks/runners")
    );
    assert_eq!(c.body["tags"]["items"], json!(["ci-runner"]));
    assert_eq!(
        c.body["serviceAccounts"][0]["scopes"],
        json!(["https://www.googleapis.com/auth/cloud-platform"])
    );
    assert_eq!(c.body["labels"]["team"], json!("ci"));
    assert_eq!(c.body["labels"][TAG_MANAGER], json!(mgr));
    let items = c.body["metadata"]["items"].as_array().unwrap();
    let item = |k: &str| {
        items
            .iter()
            .find(|i| i["key"] == k)
            .and_then(|i| i["value"].as_str())
            .map(str::to_string)
    };
    assert_eq!(item(TAG_RUNNER).as_deref(), Some(runner.as_str()));
    let user_data = item("user-data").unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&user_data).unwrap();
    let files = doc["write_files"].as_sequence().unwrap();
    let token = files
        .iter()
        .find(|f| f["path"] == bootstrap::BROKER_TOKEN)
        .map(|f| bootstrap::file_content(f).unwrap())
        .unwrap();
    assert!(token.contains("one-time-token-gce"));
    for f in files {
        assert!(!bootstrap::file_content(f).unwrap().contains(SECRET));
    }
    assert!(
        !c.body.to_string().contains(SECRET),
        "no credential in the insert"
    );
    let rid = c.query("requestId").unwrap().to_string();
    assert_eq!(rid.len(), 36);
    assert_eq!(be.request_id(&runner, z, true), rid, "stable");
    assert_ne!(be.request_id(&runner, z, false), rid);
    be.delete(&made.id).await.unwrap();
    assert_clean(&sim);
}

/// A create whose answer was lost (the operation poll fails; a 503 the client retries itself, a
/// 500 it does not) is retried: the instance the first attempt made is found and returned, and one whose lookup missed it meets `alreadyExists` and
/// returns it too. Never a second instance.
#[tokio::test]
async fn a_retried_create_makes_no_second_instance() {
    let sim = sim().await;
    let mgr = manager_name("gce-retry");
    let be = backend(&sim, &mgr).await;
    let runner = format!("{mgr}-g-r");
    let req = request(&mgr, &runner, &spec());
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    sim.inject(move |c: &Call| {
        (c.method == "compute.zoneOperations.get" && p.fetch_add(1, Ordering::SeqCst) == 0).then(
            || Fault::Http {
                status: 500,
                reason: "backendError".into(),
                message: "Internal error. Please try again.".into(),
            },
        )
    });
    let err = be.create(&req).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    sim.clear_faults();
    let first = be.create(&req).await.unwrap();
    // The lookup misses (a stale read): the insert meets the instance by its name.
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    sim.inject(move |c: &Call| {
        (c.method == "compute.instances.get" && g.fetch_add(1, Ordering::SeqCst) < 2).then(|| {
            Fault::Http {
                status: 404,
                reason: "notFound".into(),
                message: "The resource was not found".into(),
            }
        })
    });
    let again = be.create(&req).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(sim.instances().len(), 1);
    sim.clear_faults();
    be.delete(&first.id).await.unwrap();
    assert_clean(&sim);
}

fn capacity(zone: &'static str, spot_only: bool) -> impl Fn(&Call) -> Option<Fault> {
    move |c: &Call| {
        let spot = c.field("scheduling.provisioningModel") == Some(&json!("SPOT"));
        (c.method == "compute.instances.insert"
            && (zone == "*" || c.params.get("zone").map(String::as_str) == Some(zone))
            && (spot || !spot_only))
            .then(|| Fault::Operation {
                code: "ZONE_RESOURCE_POOL_EXHAUSTED".into(),
                message:
                    "The zone does not have enough resources available to fulfill the request."
                        .into(),
            })
    }
}

#[tokio::test]
async fn a_capacity_refusal_moves_to_the_next_zone_then_to_standard() {
    let sim = sim().await;
    let mgr = manager_name("gce-spot");
    let be = backend(&sim, &mgr).await;
    let mut s = spec();
    s.spot = true;

    // No Spot capacity in the first zone: the second zone has it.
    sim.inject(capacity("europe-west1-b", true));
    let a = be
        .create(&request(&mgr, &format!("{mgr}-g-a"), &s))
        .await
        .unwrap();
    assert!(a.id.starts_with("europe-west1-c/"), "{}", a.id);
    assert!(!a.spot_fallback);
    assert_eq!(sim.instances().len(), 1, "the refused insert left nothing");

    // No Spot capacity anywhere: standard capacity in the first zone, counted.
    sim.inject(capacity("*", true));
    let b = be
        .create(&request(&mgr, &format!("{mgr}-g-b"), &s))
        .await
        .unwrap();
    assert!(
        b.spot_fallback && b.id.starts_with("europe-west1-b/"),
        "{b:?}"
    );
    assert_eq!(be.spot_fallbacks(), 1);
    let last = sim.calls_of("compute.instances.insert").pop().unwrap();
    assert_eq!(
        last.field("scheduling.provisioningModel"),
        Some(&json!("STANDARD"))
    );

    // Not allowed to fall back: a transient error naming the reason and the group.
    s.spot_fallback_standard = false;
    let err = be
        .create(&request(&mgr, &format!("{mgr}-g-c"), &s))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), "ZONE_RESOURCE_POOL_EXHAUSTED");
    assert!(err.to_string().contains("group `g`"), "{err}");
    sim.clear_faults();
    for i in be.list().await.unwrap() {
        be.delete(&i.id).await.unwrap();
    }
    assert!(sim.instances().is_empty() && sim.disks().is_empty());
    assert_clean(&sim);
}

fn http(status: u16, reason: &'static str) -> impl Fn(&Call) -> Option<Fault> {
    move |c: &Call| {
        (c.method == "compute.instances.insert").then(|| Fault::Http {
            status,
            reason: reason.into(),
            message: format!("injected {reason}"),
        })
    }
}

#[tokio::test]
async fn errors_are_classified() {
    let sim = sim().await;
    let mgr = manager_name("gce-errors");
    let be = backend(&sim, &mgr).await;
    let req = |s: &GcpSpec, n: &str| request(&mgr, &format!("{mgr}-g-{n}"), s);
    let transient = [
        (429, "rateLimitExceeded"),
        (403, "rateLimitExceeded"),
        (403, "userRateLimitExceeded"),
        (503, "backendError"),
        (500, "internalError"),
    ];
    for (status, reason) in transient {
        sim.inject(http(status, reason));
        let e = be.create(&req(&spec(), "t")).await.unwrap_err();
        assert!(e.is_transient(), "{status} {reason}: {e}");
        assert_eq!(e.code(), reason);
    }
    for (status, reason) in [(403, "forbidden"), (400, "invalid"), (404, "notFound")] {
        sim.inject(http(status, reason));
        let e = be.create(&req(&spec(), "p")).await.unwrap_err();
        assert!(
            matches!(e, BackendError::Permanent { .. }),
            "{status} {reason}: {e}"
        );
        assert_eq!(e.code(), reason);
        assert!(e.to_string().contains("group `g`"), "{e}");
    }
    sim.clear_faults();

    // What the fake itself refuses, as GCE does.
    let mut bad = spec();
    bad.image_family = Some("projects/nope/global/images/family/gone".into());
    let e = be.create(&req(&bad, "img")).await.unwrap_err();
    assert_eq!(e.code(), "notFound");
    assert!(matches!(e, BackendError::Permanent { .. }));
    assert!(
        e.to_string()
            .contains("projects/nope/global/images/family/gone"),
        "{e}"
    );
    let mut bad = spec();
    bad.machine_type = "e2-nonexistent".into();
    // The fake knows no machine type list; a bare name would be refused, a zonal URL passes.
    let made = be.create(&req(&bad, "mt")).await.unwrap();
    be.delete(&made.id).await.unwrap();

    // A project we may not use.
    let mut other = settings(&sim);
    other.project = "someone-elses".into();
    let be2 = GcpBackend::connect("gce", &mgr, &other).await.unwrap();
    let e = be2.list().await.unwrap_err();
    assert_eq!(e.code(), "forbidden");

    // Nobody answers: transient.
    let mut gone = settings(&sim);
    gone.endpoint_url = Some("http://127.0.0.1:9".into());
    let be3 = GcpBackend::connect("gce", &mgr, &gone).await.unwrap();
    let e = be3.list().await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(sim.instances().is_empty());
    assert_clean(&sim);
}

#[tokio::test]
async fn an_operation_that_never_finishes_times_out_as_transient() {
    let sim = sim().await;
    let mgr = manager_name("gce-slow");
    let mut s = settings(&sim);
    s.operation_timeout = Some("1s".parse().unwrap());
    let be = GcpBackend::connect("gce", &mgr, &s).await.unwrap();
    sim.inject(|c: &Call| (c.method == "compute.zoneOperations.get").then_some(Fault::Stuck));
    let e = be
        .create(&request(&mgr, &format!("{mgr}-g-s"), &spec()))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(e.code(), "OperationTimeout");
    let polls = sim.calls_of("compute.zoneOperations.get").len();
    assert!(polls >= 2, "polled {polls} times");
    sim.clear_faults();
    assert_clean(&sim);
}

#[tokio::test]
async fn without_the_broker_a_credential_is_refused_and_nothing_is_made() {
    let sim = sim().await;
    let mgr = manager_name("gce-nobroker");
    let be = backend(&sim, &mgr).await;
    let runner = format!("{mgr}-g-n");
    let plain = bootstrap::render(
        BootStyle::Vm,
        &RunnerSetup {
            runner_name: runner.clone(),
            labels: vec!["self-hosted".into()],
            url: "https://github.com/octo-org".into(),
            runner_group: None,
            agent: runnerctl::forge::Agent::ActionsRunner,
            container_jobs: None,
            credential: Credential::Jit(Secret::new(SECRET)),
        },
        None,
    )
    .unwrap();
    let req = conformance::request(&mgr, "g", &runner, &spec().typed(), plain);
    let e = be.create(&req).await.unwrap_err();
    assert_eq!(e.code(), "NeedsBroker");
    assert!(sim.calls_of("compute.instances.insert").is_empty());
}

/// List reads every page of the aggregated list, every zone, only this manager's instances.
#[tokio::test]
async fn list_reads_every_page_and_every_zone() {
    let sim = sim().await;
    let mgr = manager_name("gce-list");
    let be = backend(&sim, &mgr).await;
    for i in 0..1_100 {
        let zone = if i % 2 == 0 {
            "europe-west1-b"
        } else {
            "europe-west1-c"
        };
        let runner = format!("{mgr}-g-{i}");
        sim.put_instance(
            zone,
            &instance_name(&runner),
            json!({TAG_MANAGER: mgr.clone()}),
            &[
                (TAG_MANAGER, &mgr),
                ("runnerctl-group", "g"),
                (TAG_RUNNER, &runner),
            ],
        );
    }
    sim.put_instance(
        "europe-west1-b",
        "someone-else",
        json!({TAG_MANAGER: "other"}),
        &[(TAG_MANAGER, "other")],
    );
    let listed = be.list().await.unwrap();
    assert_eq!(listed.len(), 1_100);
    assert!(sim.calls_of("compute.instances.aggregatedList").len() >= 3);
    assert!(listed.iter().any(|i| i.id.starts_with("europe-west1-c/")));
    assert!(listed
        .iter()
        .all(|i| i.runner().is_some_and(|r| r.starts_with(&mgr))));
    // Someone else's instance is neither listed, got nor deleted.
    assert!(be
        .get("europe-west1-b/someone-else")
        .await
        .unwrap()
        .is_none());
    be.delete("europe-west1-b/someone-else").await.unwrap();
    assert_eq!(sim.instances().len(), 1_101);
    // What is not an id of ours is neither asked about nor deleted.
    let calls = sim.calls().len();
    for bad in ["i-0123", "europe-west1-b/../x", "Zone/Name", "a/b/c"] {
        assert!(be.get(bad).await.unwrap().is_none());
        be.delete(bad).await.unwrap();
    }
    assert_eq!(sim.calls().len(), calls);
    assert_clean(&sim);
}

/// The operator's view: `runnerctl` with a GCP group (and the broker) against the fake Compute
/// Engine, the fake GitHub and a real Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnerctl_creates_lists_and_deletes_gce_runners() {
    let sim = sim().await;
    let redis = support::RedisServer::start();
    let gh = runnerctl::forge::fake::FakeGitHub::start(runnerctl::forge::fake::FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("ghp_gce".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let name = manager_name("gce-cli");
    let dir = tempfile::tempdir().unwrap();
    let (broker, _) = support::broker_section(dir.path());
    let config = dir.path().join("c.yaml");
    let zones = sim.options().zones.join(", ");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ncleanup_grace: 0s\ngithub:\n  base_url: {}\n  token_env: GCE_CLI_GH_TOKEN\nredis:\n  url: {}\n{broker}backends:\n  gce:\n    kind: gcp\n    project: {}\n    zones: [{zones}]\n    endpoint_url: {}\n    anonymous: true\nrunner_groups:\n  - name: vm\n    organization: octo-org\n    labels: [self-hosted, vm]\n    backend: gce\n    max_runners: 3\n    spec:\n      machine_type: e2-standard-2\n      image_family: {IMAGE}\n      spot: true\n      service_account: runner@{}.iam.gserviceaccount.com\n  - name: broken\n    organization: octo-org\n    labels: [self-hosted, broken]\n    backend: gce\n    spec:\n      machine_type: e2-standard-2\n      image: projects/debian-cloud/global/images/debian-9-gone\n",
            gh.url(),
            redis.url,
            sim.options().project,
            sim.url(),
            sim.options().project,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("GCE_CLI_GH_TOKEN", "ghp_gce")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&["config", "validate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(run(&["groups", "sync"]).0, Some(0));

    // Spot capacity is refused in every zone once: that runner comes up standard.
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    let spot_refusal = capacity("*", true);
    sim.inject(move |c: &Call| spot_refusal(c).filter(|_| r.fetch_add(1, Ordering::SeqCst) < 2));
    // One after the other: the first runner meets both refusals.
    let (code, out, err) = run(&[
        "-vvvv",
        "runners",
        "create",
        "--group",
        "vm",
        "--count",
        "2",
        "--parallel",
        "1",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.matches("created ").count(), 2, "{out}");
    let runners = gh.runners();
    assert_eq!(runners.len(), 2);
    let everything = serde_json::to_string(&sim.instances()).unwrap();
    for r in &runners {
        assert!(!err.contains(&r.jit) && !out.contains(&r.jit));
        assert!(
            !everything.contains(&r.jit),
            "no JIT configuration in any instance"
        );
    }
    assert!(
        everything.contains(bootstrap::BROKER_TOKEN),
        "the broker's token travels instead"
    );
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    // Each credential waits at the broker bound to its instance's address and, the VMs having
    // a service account, to their signed identity.
    let mut c = conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}broker:cred:*",
            runnerctl::model::key_prefix(&name)
        ))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        let (addr, ident): (String, String) = redis::cmd("HMGET")
            .arg(k)
            .arg("addr")
            .arg("ident")
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(addr.starts_with("10.128."), "{addr}");
        let project = &sim.options().project;
        assert!(
            ident.starts_with(&format!("gce:{project}/europe-west1-")),
            "{ident}"
        );
    }
    let store = runnerctl::store::RedisStore::new(conn, &name);
    assert_eq!(
        store
            .mark(&runnerctl::store::spot_fallback_mark("vm"))
            .await
            .unwrap(),
        1
    );
    sim.clear_faults();

    let (code, out, _) = run(&["-o", "json", "runners", "list"]);
    assert_eq!(code, Some(0));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let be = backend(&sim, &name).await;
    conformance::assert_records_name_instances(&rows, &be).await;

    // A bad image: a clear, permanent error naming GCP's reason and the group; nothing left.
    let (code, out, err) = run(&["runners", "create", "--group", "broken"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("notFound") && err.contains("group `broken`"),
        "{err}"
    );
    assert_eq!(sim.instances().len(), 2);

    // A leaked VM (labelled as ours, no record): the health check deletes it.
    let leaked = format!("{name}-vm-leaked");
    sim.put_instance(
        "europe-west1-c",
        &instance_name(&leaked),
        json!({TAG_MANAGER: name.clone()}),
        &[
            (TAG_MANAGER, &name),
            ("runnerctl-group", "vm"),
            (TAG_RUNNER, &leaked),
        ],
    );
    let (code, out, err) = run(&["healthcheck", "--group", "vm"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("has no record"), "{out}");
    let leaked_id = format!("europe-west1-c/{}", instance_name(&leaked));
    assert!(be.get(&leaked_id).await.unwrap().is_none(), "deleted");
    assert_eq!(be.list().await.unwrap().len(), 2, "the two runners stay");

    let (code, out, err) = run(&["runners", "delete", "--group", "vm", "--all", "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(sim.instances().is_empty(), "{:?}", sim.instances());
    assert!(sim.disks().is_empty(), "boot disks go with their instances");
    assert_clean(&sim);
}

/// The fake is strict: what the discovery document does not describe is answered 400 (404 for
/// an unknown method) and recorded, so a backend request of that kind fails its test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_the_discovery_document_does_not_describe() {
    let sim = sim().await;
    let addr: std::net::SocketAddr = sim.url().trim_start_matches("http://").parse().unwrap();
    let p = sim.options().project.clone();
    let zone = "europe-west1-b";
    let good = json!({
        "name": "ok-1",
        "machineType": format!("zones/{zone}/machineTypes/e2-small"),
        "disks": [{"boot": true, "autoDelete": true, "initializeParams": {"sourceImage": IMAGE, "diskSizeGb": "10"}}],
    });
    let mut unknown_field = good.clone();
    unknown_field["name"] = json!("bad-1");
    unknown_field["cpuCount"] = json!(4);
    let mut wrong_type = good.clone();
    wrong_type["name"] = json!("bad-2");
    wrong_type["disks"][0]["initializeParams"]["diskSizeGb"] = json!(true);
    let mut bad_enum = good.clone();
    bad_enum["name"] = json!("bad-3");
    bad_enum["scheduling"] = json!({"provisioningModel": "CHEAP"});
    let insert = format!("/compute/v1/projects/{p}/zones/{zone}/instances");
    let cases: Vec<(String, String, Option<serde_json::Value>, u16, &str)> = vec![
        ("POST".into(), insert.clone(), Some(good.clone()), 200, ""),
        (
            "POST".into(),
            insert.clone(),
            Some(unknown_field),
            400,
            "unknown field `cpuCount`",
        ),
        (
            "POST".into(),
            insert.clone(),
            Some(wrong_type),
            400,
            "diskSizeGb: expected string int64",
        ),
        (
            "POST".into(),
            insert.clone(),
            Some(bad_enum),
            400,
            "not one of the enum's values",
        ),
        (
            "POST".into(),
            insert.clone(),
            None,
            400,
            "request body (Instance) is missing",
        ),
        (
            "GET".into(),
            format!("{insert}?maxResults=many"),
            None,
            400,
            "parameter `maxResults` must be integer",
        ),
        (
            "GET".into(),
            format!("{insert}?colour=blue"),
            None,
            400,
            "unknown query parameter `colour`",
        ),
        (
            "GET".into(),
            format!("{insert}/Bad_Name"),
            None,
            400,
            "does not match",
        ),
        (
            "POST".into(),
            format!("{insert}/ok-1/addAccessConfig"),
            Some(json!({"name": "nat"})),
            400,
            "missing required parameter `networkInterface`",
        ),
        (
            "GET".into(),
            format!("/compute/v1/projects/{p}/teleport"),
            None,
            404,
            "no method",
        ),
    ];
    for (verb, path, body, want, says) in cases {
        let before = sim.violations().len();
        let raw = body.map(|b| b.to_string()).unwrap_or_default();
        let (v, pa) = (verb.clone(), path.clone());
        let (status, _, answer) = tokio::task::spawn_blocking(move || {
            support::http(
                addr,
                &v,
                &pa,
                &[("content-type", "application/json")],
                raw.as_bytes(),
            )
        })
        .await
        .unwrap();
        assert_eq!(status, want, "{verb} {path}: {answer}");
        let new = sim.violations()[before..].join("\n");
        if want == 200 {
            assert!(new.is_empty(), "{new}");
        } else {
            assert!(new.contains(says), "{verb} {path}: {new}");
        }
    }
}
