//! The vSphere backend against govmomi's vCenter simulator (a real SOAP server: `.ci/run`
//! builds `tests/vcsim/main.go` from Debian's packages into `.cache/vcsim`). What that
//! simulator release cannot show (it keeps the template's CPUs and memory, ignores linked
//! clones and the clone spec's `powerOn`) is checked in the requests the backend sent.
#![cfg(feature = "vsphere")]

mod support;

#[path = "support/conformance.rs"]
mod conformance;

#[path = "support/vcsim.rs"]
mod vcsim;

use base64::Engine;
use runnerctl::backend::vsphere::soap::{MoRef, Session, Trust};
use runnerctl::backend::vsphere::{VsphereBackend, VsphereSettings, VsphereSpec};
use runnerctl::backend::{Backend, BackendError, BootData, InstanceState};
use runnerctl::bootstrap::{self, BootStyle, Credential, RunnerSetup};
use runnerctl::config::Secret;
use std::sync::Arc;
use support::manager_name;
use vcsim::Vcsim;

const SECRET: &str = "JIT-SECRET-vsphere+7w==";

fn settings(sim: &Vcsim) -> VsphereSettings {
    VsphereSettings {
        url: sim.url.clone(),
        user: vcsim::USER.into(),
        insecure: true,
        folder: vcsim::FOLDER.into(),
        resource_pool: vcsim::POOL.into(),
        datastore: Some(vcsim::DATASTORE.into()),
        task_timeout: Some("30s".parse().unwrap()),
        address_timeout: Some("30s".parse().unwrap()),
        ..Default::default()
    }
}

async fn backend(sim: &Vcsim, manager: &str) -> VsphereBackend {
    VsphereBackend::connect(
        "vsphere",
        manager,
        &settings(sim),
        Secret::new(vcsim::PASSWORD),
    )
    .await
    .unwrap()
}

fn spec() -> VsphereSpec {
    VsphereSpec {
        template: vcsim::TEMPLATE.into(),
        snapshot: None,
        cpus: None,
        memory_mb: None,
        network: None,
    }
}

/// A VM's boot data as it is with the broker: the one-time token, no credential.
fn boot(runner: &str) -> BootData {
    conformance::vm_boot(runner, SECRET, Some("one-time-token-vsphere"))
}

fn request(manager: &str, runner: &str, spec: &VsphereSpec) -> runnerctl::backend::CreateRequest {
    conformance::request(manager, "g", runner, &spec.clone().typed(), boot(runner))
}

fn calls(be: &VsphereBackend, method: &str) -> Vec<String> {
    be.recorded()
        .into_iter()
        .filter(|r| r.method == method)
        .map(|r| r.body)
        .collect()
}

/// The value of `<key>K</key><value …>V</value>` in a request body.
fn extra_config<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let at = body.find(&format!("<key>{key}</key>"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1; // past <key>
    let rest = &rest[start..];
    let v = rest.find("<value")?;
    let rest = &rest[v..];
    let open = rest.find('>')? + 1;
    let close = rest.find("</value>")?;
    Some(&rest[open..close])
}

fn permanent(e: &BackendError, code: &str, group: &str) {
    match e {
        BackendError::Permanent {
            code: c, message, ..
        } => {
            assert_eq!(c, code, "{e}");
            assert!(message.contains(&format!("group `{group}`")), "{e}");
        }
        other => panic!("expected a permanent {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_vsphere_backend_conforms() {
    let sim = Vcsim::start();
    let (one, two) = (manager_name("vs-one"), manager_name("vs-two"));
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
}

/// A stopped warm pool's VM is shut down (the guest first, then powered off only if it does
/// not stop) and powered on again, by the simulator's own power state.
#[tokio::test]
async fn a_stopped_warm_vm_is_shut_down_and_powered_on() {
    let sim = Vcsim::start();
    let (one, two) = (manager_name("vs-warm-a"), manager_name("vs-warm-b"));
    let be = Arc::new(backend(&sim, &one).await);
    conformance::stop_start(
        be.clone(),
        &one,
        Arc::new(backend(&sim, &two).await),
        &spec().typed(),
        boot(&format!("{one}-g-warm")),
    )
    .await;
    assert_eq!(calls(&be, "ShutdownGuest").len(), 1, "shut down once");
    assert!(
        calls(&be, "PowerOnVM_Task").len() >= 2,
        "powered on at create and at start"
    );
}

/// The clone carries the spec (CPUs, memory, network, a linked clone from the snapshot, the
/// datastore and pool), the bootstrap as base64 guestinfo with its encodings, the owner; the VM
/// is powered on by its own task and returned with the address VMware Tools reports. The
/// credential is in no request.
#[tokio::test]
async fn the_clone_carries_the_spec_the_guestinfo_and_the_owner() {
    let sim = Vcsim::start();
    let mgr = manager_name("vs-clone");
    let be = backend(&sim, &mgr).await;
    let spec = VsphereSpec {
        snapshot: Some("base".into()),
        cpus: Some(4),
        memory_mb: Some(8192),
        network: Some(vcsim::NETWORK.into()),
        ..spec()
    };
    let runner = format!("{mgr}-g-1");
    let req = request(&mgr, &runner, &spec);
    let made = be.create(&req).await.unwrap();
    assert_eq!(made.state, InstanceState::Running);
    assert!(
        made.address.as_deref().unwrap().starts_with("10.20."),
        "{made:?}"
    );
    assert_eq!(made.runner(), Some(runner.as_str()));

    let clones = calls(&be, "CloneVM_Task");
    assert_eq!(clones.len(), 1);
    let body = &clones[0];
    for part in [
        "<numCPUs>4</numCPUs>",
        "<memoryMB>8192</memoryMB>",
        "<diskMoveType>createNewChildDiskBacking</diskMoveType>",
        "<snapshot type=\"VirtualMachineSnapshot\">",
        "<powerOn>false</powerOn>",
        "<template>false</template>",
        "<operation>edit</operation>",
        "<deviceName>VM Network</deviceName>",
        "<datastore type=\"Datastore\">",
        "<pool type=\"ResourcePool\">",
        &format!("<name>{runner}</name>"),
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    let b64 = |s: &str| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
    };
    let user_data = b64(extra_config(body, "guestinfo.userdata").unwrap());
    assert_eq!(user_data, req.boot.user_data.as_ref().unwrap().expose());
    assert_eq!(
        extra_config(body, "guestinfo.userdata.encoding"),
        Some("base64")
    );
    let meta = b64(extra_config(body, "guestinfo.metadata").unwrap());
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["local-hostname"], runner.as_str());
    assert_eq!(
        extra_config(body, "guestinfo.metadata.encoding"),
        Some("base64")
    );
    assert_eq!(extra_config(body, "runnerctl.manager"), Some(mgr.as_str()));
    // Powered on by PowerOnVM_Task, after the clone.
    let order: Vec<String> = be.recorded().into_iter().map(|r| r.method).collect();
    let clone_at = order.iter().position(|m| m == "CloneVM_Task").unwrap();
    let on_at = order.iter().position(|m| m == "PowerOnVM_Task").unwrap();
    assert!(on_at > clone_at, "{order:?}");
    assert_eq!(
        calls(&be, "SetField").len(),
        3,
        "the three owner attributes"
    );
    for r in be.recorded() {
        assert!(!r.body.contains(SECRET), "no credential in {}", r.method);
        assert!(
            !r.body.contains(vcsim::PASSWORD),
            "no password in {}",
            r.method
        );
    }
    assert!(user_data.contains(bootstrap::BROKER_TOKEN));
    be.delete(&made.id).await.unwrap();
    assert!(be.list().await.unwrap().is_empty());

    // On a distributed port group: the card is backed by the switch's port group.
    let runner = format!("{mgr}-g-2");
    let spec = VsphereSpec {
        network: Some(vcsim::PORTGROUP.into()),
        ..spec
    };
    let made = be.create(&request(&mgr, &runner, &spec)).await.unwrap();
    let body = calls(&be, "CloneVM_Task").pop().unwrap();
    assert!(
        body.contains("VirtualEthernetCardDistributedVirtualPortBackingInfo"),
        "{body}"
    );
    let s = Session::connect(
        &sim.url,
        vcsim::USER,
        Secret::new(vcsim::PASSWORD),
        &Trust::Insecure,
    )
    .await
    .unwrap();
    let answer = s
        .call(
            "RetrievePropertiesEx",
            &s.content().property_collector,
            &format!(
                "<specSet><propSet><type>VirtualMachine</type><pathSet>config.hardware.device</pathSet></propSet><objectSet>{}</objectSet></specSet><options/>",
                MoRef::new("VirtualMachine", &made.id).xml("obj")
            ),
        )
        .await
        .unwrap();
    let devices = answer
        .at(&["returnval", "objects", "propSet", "val"])
        .unwrap();
    let port_group = devices
        .children
        .iter()
        .find_map(|d| d.text_at(&["backing", "port", "portgroupKey"]));
    assert!(port_group.is_some_and(|k| !k.is_empty()), "{devices:?}");
    be.delete(&made.id).await.unwrap();
}

#[tokio::test]
async fn a_retried_create_makes_no_second_vm_and_another_managers_name_is_refused() {
    let sim = Vcsim::start();
    let mgr = manager_name("vs-retry");
    let be = backend(&sim, &mgr).await;
    let runner = format!("{mgr}-g-1");
    let first = be.create(&request(&mgr, &runner, &spec())).await.unwrap();
    let again = be.create(&request(&mgr, &runner, &spec())).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(calls(&be, "CloneVM_Task").len(), 1);
    assert_eq!(be.list().await.unwrap().len(), 1);

    let other = manager_name("vs-other");
    let theirs = backend(&sim, &other).await;
    let e = theirs
        .create(&request(&other, &runner, &spec()))
        .await
        .unwrap_err();
    permanent(&e, "NameTaken", "g");
    assert!(calls(&theirs, "CloneVM_Task").is_empty());
    be.delete(&first.id).await.unwrap();
}

/// A missing template, folder, pool, datastore or snapshot: a permanent error naming what is
/// missing and the group, and nothing is cloned. A bad password fails the connection for good.
#[tokio::test]
async fn missing_inventory_is_a_permanent_error_naming_it_and_the_group() {
    let sim = Vcsim::start();
    let mgr = manager_name("vs-missing");
    let be = backend(&sim, &mgr).await;
    let runner = format!("{mgr}-g-1");
    let e = be
        .create(&request(
            &mgr,
            &runner,
            &VsphereSpec {
                template: "/DC0/vm/no-such-template".into(),
                ..spec()
            },
        ))
        .await
        .unwrap_err();
    permanent(&e, "TemplateNotFound", "g");
    assert!(e.to_string().contains("/DC0/vm/no-such-template"), "{e}");
    let e = be
        .create(&request(
            &mgr,
            &runner,
            &VsphereSpec {
                snapshot: Some("gone".into()),
                ..spec()
            },
        ))
        .await
        .unwrap_err();
    permanent(&e, "SnapshotNotFound", "g");
    for (field, code) in [
        ("folder", "FolderNotFound"),
        ("resource_pool", "ResourcePoolNotFound"),
        ("datastore", "DatastoreNotFound"),
    ] {
        let mut s = settings(&sim);
        match field {
            "folder" => s.folder = "/DC0/vm/nowhere".into(),
            "resource_pool" => s.resource_pool = "/DC0/host/nowhere".into(),
            _ => s.datastore = Some("/DC0/datastore/nowhere".into()),
        }
        let be = VsphereBackend::connect("vsphere", &mgr, &s, Secret::new(vcsim::PASSWORD))
            .await
            .unwrap();
        let e = be
            .create(&request(&mgr, &runner, &spec()))
            .await
            .unwrap_err();
        permanent(&e, code, "g");
        assert!(calls(&be, "CloneVM_Task").is_empty());
    }
    assert!(calls(&be, "CloneVM_Task").is_empty());
    assert!(be.list().await.unwrap().is_empty());

    let Err(e) =
        VsphereBackend::connect("vsphere", &mgr, &settings(&sim), Secret::new("wrong")).await
    else {
        panic!("a wrong password must not connect");
    };
    assert_eq!(e.code(), "InvalidLogin", "{e}");
    assert!(!e.is_transient());
    assert!(!e.to_string().contains("wrong"), "{e}");
}

/// What the simulator cannot produce, through a proxy that answers it: a missing privilege is
/// permanent; a task failing for want of resources, a task that never ends and a 503 are
/// transient; each names the fault and the group, and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_task_deadlines_are_classified() {
    let sim = Vcsim::start();
    let proxy = vcsim::FaultProxy::start(&sim.url).await;
    let mgr = manager_name("vs-faults");
    let s = VsphereSettings {
        url: proxy.url.clone(),
        task_timeout: Some("2s".parse().unwrap()),
        ..settings(&sim)
    };
    let be = VsphereBackend::connect("vsphere", &mgr, &s, Secret::new(vcsim::PASSWORD))
        .await
        .unwrap();
    let runner = format!("{mgr}-g-1");
    let req = request(&mgr, &runner, &spec());

    proxy.set(|body| {
        body.contains("<CloneVM_Task").then(|| {
            (
                500,
                vcsim::fault(
                    "NoPermission",
                    "Permission to perform this operation was denied.",
                ),
            )
        })
    });
    let e = be.create(&req).await.unwrap_err();
    permanent(&e, "NoPermission", "g");

    proxy.set(|body| {
        if body.contains("<CloneVM_Task") {
            Some((200, vcsim::task_answer("CloneVM_Task")))
        } else if body.contains("task-fake") {
            Some((
                200,
                vcsim::task_info(Some("InsufficientMemoryResourcesFault")),
            ))
        } else {
            None
        }
    });
    let e = be.create(&req).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.code(), "InsufficientMemoryResourcesFault");
    assert!(e.to_string().contains("group `g`"), "{e}");

    proxy.set(|body| {
        if body.contains("<CloneVM_Task") {
            Some((200, vcsim::task_answer("CloneVM_Task")))
        } else if body.contains("task-fake") {
            Some((200, vcsim::task_info(None)))
        } else {
            None
        }
    });
    let started = std::time::Instant::now();
    let e = be.create(&req).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.code(), "Timedout");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    proxy.set(|body| {
        body.contains("<FindByInventoryPath")
            .then(|| (503, "<html>Service Unavailable</html>".to_string()))
    });
    let e = be.create(&req).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.code(), "HTTP_503");

    proxy.set(|_| None);
    assert!(be.list().await.unwrap().is_empty(), "nothing was made");
    let made = be.create(&req).await.unwrap();
    be.delete(&made.id).await.unwrap();
}

/// List follows the property collector's pages (`token` → `ContinueRetrievePropertiesEx`),
/// which the simulator never splits: a proxy answers the folder's listing in two pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reads_every_page_of_the_property_collector() {
    let sim = Vcsim::start();
    let proxy = vcsim::FaultProxy::start(&sim.url).await;
    let mgr = manager_name("vs-pages");
    let s = VsphereSettings {
        url: proxy.url.clone(),
        ..settings(&sim)
    };
    let be = VsphereBackend::connect("vsphere", &mgr, &s, Secret::new(vcsim::PASSWORD))
        .await
        .unwrap();
    let m = mgr.clone();
    proxy.set(move |body| {
        if body.contains("<RetrievePropertiesEx") && body.contains("<path>childEntity</path>") {
            Some((
                200,
                vcsim::vm_page("RetrievePropertiesEx", &m, &[9001, 9002], Some("page-2")),
            ))
        } else if body.contains("<ContinueRetrievePropertiesEx")
            && body.contains("<token>page-2</token>")
        {
            Some((
                200,
                vcsim::vm_page("ContinueRetrievePropertiesEx", &m, &[9003], None),
            ))
        } else {
            None
        }
    });
    let ids: Vec<String> = be.list().await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, ["vm-9001", "vm-9002", "vm-9003"]);
    assert_eq!(calls(&be, "ContinueRetrievePropertiesEx").len(), 1);
}

/// vCenter forgets idle sessions: the backend logs in again and the call succeeds.
#[tokio::test]
async fn an_expired_session_is_renewed() {
    let sim = Vcsim::with_args(&["-idle", "1s"]);
    let mgr = manager_name("vs-idle");
    let be = backend(&sim, &mgr).await;
    assert!(be.list().await.unwrap().is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert!(be.list().await.unwrap().is_empty());
    assert_eq!(calls(&be, "Login").len(), 2, "logged in again once");
}

/// A clone whose owner attributes were never set (the process died right after the clone)
/// is still known as ours by its extraConfig, listed, and marked.
#[tokio::test]
async fn a_clone_never_marked_is_still_ours_and_gets_marked() {
    let sim = Vcsim::start();
    let mgr = manager_name("vs-unmarked");
    let be = backend(&sim, &mgr).await;
    let s = Session::connect(
        &sim.url,
        vcsim::USER,
        Secret::new(vcsim::PASSWORD),
        &Trust::Insecure,
    )
    .await
    .unwrap();
    let find = |path: &str| {
        let s = &s;
        let path = path.to_string();
        async move {
            s.call(
                "FindByInventoryPath",
                &s.content().search_index,
                &format!("<inventoryPath>{path}</inventoryPath>"),
            )
            .await
            .unwrap()
            .child("returnval")
            .and_then(|r| r.moref())
            .unwrap()
        }
    };
    let (template, folder, pool) = (
        find(vcsim::TEMPLATE).await,
        find(vcsim::FOLDER).await,
        find(vcsim::POOL).await,
    );
    let runner = format!("{mgr}-g-lost");
    let extra = |k: &str, v: &str| {
        format!(
            "<extraConfig><key>{k}</key><value xsi:type=\"xsd:string\">{v}</value></extraConfig>"
        )
    };
    let args = format!(
        "{}<name>{runner}</name><spec><location>{}</location><template>false</template><config>{}{}{}</config><powerOn>false</powerOn></spec>",
        folder.xml("folder"),
        pool.xml("pool"),
        extra("runnerctl.manager", &mgr),
        extra("runnerctl.group", "g"),
        extra("runnerctl.runner", &runner),
    );
    let task = s
        .call("CloneVM_Task", &template, &args)
        .await
        .unwrap()
        .child("returnval")
        .and_then(|r| r.moref())
        .unwrap();
    assert_eq!(task.kind, "Task");
    // The simulator runs the clone before answering; the VM is there.
    let listed = be.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].runner(), Some(runner.as_str()));
    assert_eq!(listed[0].group(), Some("g"));
    assert_eq!(calls(&be, "SetField").len(), 3, "marked when seen");
    // Another manager does not see it.
    let other = backend(&sim, &manager_name("vs-unmarked-other")).await;
    assert!(other.list().await.unwrap().is_empty());
    be.delete(&listed[0].id).await.unwrap();
    assert!(be.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_the_broker_a_credential_is_refused_and_nothing_is_made() {
    let sim = Vcsim::start();
    let mgr = manager_name("vs-nobroker");
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
    assert!(calls(&be, "CloneVM_Task").is_empty());
}

/// Over HTTPS: the pinned certificate is accepted, another thumbprint or the system's roots
/// (which never signed the simulator's certificate) are refused before any password is sent.
#[tokio::test]
async fn the_certificate_is_checked_or_pinned() {
    let sim = Vcsim::with_args(&["-tls"]);
    let mgr = manager_name("vs-tls");
    let pinned = VsphereSettings {
        insecure: false,
        thumbprint: sim.thumbprint.clone(),
        ..settings(&sim)
    };
    let be = VsphereBackend::connect("vsphere", &mgr, &pinned, Secret::new(vcsim::PASSWORD))
        .await
        .unwrap();
    assert!(be.list().await.unwrap().is_empty());
    for other in [
        VsphereSettings {
            thumbprint: Some("ab".repeat(32)),
            ..pinned.clone()
        },
        VsphereSettings {
            thumbprint: None,
            ..pinned.clone()
        },
    ] {
        let Err(e) =
            VsphereBackend::connect("vsphere", &mgr, &other, Secret::new(vcsim::PASSWORD)).await
        else {
            panic!("an unknown certificate must be refused");
        };
        assert_eq!(e.code(), "Unreachable", "{e}");
        assert!(e.to_string().contains(&sim.url), "names the URL: {e}");
    }
}

/// The operator's view: `runnerctl` with a vSphere group (and the broker) against the
/// simulator, the fake GitHub and a real Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnerctl_creates_lists_and_deletes_vsphere_runners() {
    let sim = Vcsim::start();
    let redis = support::RedisServer::start();
    let gh = runnerctl::forge::fake::FakeGitHub::start(runnerctl::forge::fake::FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("ghp_vs".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let name = manager_name("vs-cli");
    let dir = tempfile::tempdir().unwrap();
    let (broker, _) = support::broker_section(dir.path());
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ncleanup_grace: 0s\ngithub:\n  base_url: {}\n  token_env: VS_CLI_GH_TOKEN\nredis:\n  url: {}\n{broker}backends:\n  vcenter:\n    kind: vsphere\n    url: {}\n    user: {}\n    password_env: VS_CLI_PASSWORD\n    insecure: true\n    folder: {}\n    resource_pool: {}\n    address_timeout: 30s\nrunner_groups:\n  - name: vm\n    organization: octo-org\n    labels: [self-hosted, vm]\n    backend: vcenter\n    max_runners: 3\n    spec:\n      template: {}\n      snapshot: base\n      cpus: 2\n      memory_mb: 4096\n  - name: broken\n    organization: octo-org\n    labels: [self-hosted, broken]\n    backend: vcenter\n    spec:\n      template: /DC0/vm/gone\n",
            gh.url(),
            redis.url,
            sim.url,
            vcsim::USER,
            vcsim::FOLDER,
            vcsim::POOL,
            vcsim::TEMPLATE,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("VS_CLI_GH_TOKEN", "ghp_vs")
            .env("VS_CLI_PASSWORD", vcsim::PASSWORD)
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

    let (code, out, err) = run(&["runners", "create", "--group", "vm", "--count", "2"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.matches("created ").count(), 2, "{out}");
    let runners = gh.runners();
    assert_eq!(runners.len(), 2);
    for r in &runners {
        assert!(!err.contains(&r.jit) && !out.contains(&r.jit));
    }
    // Each credential waits at the broker bound to the address VMware Tools reported.
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
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
        let addr: String = redis::cmd("HGET")
            .arg(k)
            .arg("addr")
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(addr.starts_with("10.20."), "{addr}");
    }

    let (code, out, _) = run(&["-o", "json", "runners", "list"]);
    assert_eq!(code, Some(0));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let be = backend(&sim, &name).await;
    conformance::assert_records_name_instances(&rows, &be).await;

    // A missing template: a clear, permanent error naming the fault and the group.
    let (code, out, err) = run(&["runners", "create", "--group", "broken"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("TemplateNotFound") && err.contains("group `broken`"),
        "{err}"
    );
    assert_eq!(be.list().await.unwrap().len(), 2);

    // A leaked VM (ours, no record): the health check deletes it.
    let leaked = format!("{name}-vm-leaked");
    let made = be
        .create(&conformance::request(
            &name,
            "vm",
            &leaked,
            &spec().typed(),
            boot(&leaked),
        ))
        .await
        .unwrap();
    let (code, out, err) = run(&["healthcheck", "--group", "vm"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("has no record"), "{out}");
    assert!(be.get(&made.id).await.unwrap().is_none(), "deleted");
    assert_eq!(be.list().await.unwrap().len(), 2, "the two runners stay");

    let (code, out, err) = run(&["runners", "delete", "--group", "vm", "--all", "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(be.list().await.unwrap().is_empty());
}
