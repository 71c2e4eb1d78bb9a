//! The backend contract as one test function that takes any backend.

use runnerctl::backend::{
    Backend, BootData, CreateRequest, OwnerTags, TAG_GROUP, TAG_MANAGER, TAG_RUNNER,
};
use runnerctl::bootstrap::{self, BootStyle, Credential, RunnerSetup};
use runnerctl::config::{InstanceSpec, Secret};
use std::sync::Arc;

pub fn request(
    manager: &str,
    group: &str,
    runner: &str,
    spec: &InstanceSpec,
    boot: BootData,
) -> CreateRequest {
    CreateRequest {
        runner_name: runner.to_string(),
        spec: spec.clone(),
        boot,
        tags: OwnerTags {
            manager: manager.to_string(),
            group: group.to_string(),
            runner: runner.to_string(),
        },
        warm: None,
    }
}

/// A VM's boot data for a runner of group `g` whose JIT configuration is `secret`; with
/// `broker_token`, as it is with the credential broker: that one-time token instead of the
/// credential.
#[allow(dead_code)] // not every backend's tests use the broker
pub fn vm_boot(runner: &str, secret: &str, broker_token: Option<&str>) -> BootData {
    let mut boot = bootstrap::render(
        BootStyle::Vm,
        &RunnerSetup {
            runner_name: runner.to_string(),
            labels: vec!["self-hosted".into(), "linux".into()],
            url: "https://github.com/octo-org".into(),
            runner_group: Some("g".into()),
            agent: runnerctl::forge::Agent::ActionsRunner,
            container_jobs: None,
            credential: Credential::Jit(Secret::new(secret)),
        },
        None,
    )
    .unwrap();
    if let Some(token) = broker_token {
        bootstrap::through_broker(
            &mut boot,
            "https://10.0.0.1:8443",
            "-----BEGIN CERTIFICATE-----\n",
            &Secret::new(token),
            600,
        )
        .unwrap();
    }
    boot
}

/// `one` and `two` are the same backend seen by two different managers.
pub async fn run(
    one: Arc<dyn Backend>,
    one_manager: &str,
    two: Arc<dyn Backend>,
    two_manager: &str,
    spec: &InstanceSpec,
    boot: BootData,
) {
    let runner = format!("{one_manager}-g-1");
    let req = request(one_manager, "g", &runner, spec, boot.clone());

    // create, then list shows it, get finds it, the owner tags are there.
    let made = one.create(&req).await.expect("create");
    let listed = one.list().await.expect("list");
    assert!(
        listed.iter().any(|i| i.id == made.id),
        "list shows the new instance: {listed:?}"
    );
    let got = one.get(&made.id).await.expect("get").expect("get finds it");
    assert_eq!(got.id, made.id);
    for i in [&made, &got] {
        assert_eq!(
            i.tags.get(TAG_MANAGER).map(String::as_str),
            Some(one_manager)
        );
        assert_eq!(i.tags.get(TAG_GROUP).map(String::as_str), Some("g"));
        assert_eq!(
            i.tags.get(TAG_RUNNER).map(String::as_str),
            Some(runner.as_str())
        );
        assert_eq!(i.runner(), Some(runner.as_str()));
        assert_eq!(i.group(), Some("g"));
    }

    // The same runner name twice yields one instance.
    let again = one.create(&req).await.expect("second create");
    assert_eq!(
        again.id, made.id,
        "a retried create returns the first instance"
    );
    let mine: Vec<_> = one
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.runner() == Some(runner.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");

    // Two managers' instances never mix.
    let other_runner = format!("{two_manager}-g-1");
    let theirs = two
        .create(&request(
            two_manager,
            "g",
            &other_runner,
            spec,
            boot.clone(),
        ))
        .await
        .expect("other manager's create");
    assert!(one.list().await.unwrap().iter().all(|i| i.id != theirs.id));
    assert!(two.list().await.unwrap().iter().all(|i| i.id != made.id));
    assert!(one.get(&theirs.id).await.unwrap().is_none(), "not ours");
    one.delete(&theirs.id)
        .await
        .expect("deleting another's instance is a no-op");
    assert!(
        two.get(&theirs.id).await.unwrap().is_some(),
        "and leaves it alone"
    );

    // delete, delete again, gone from list and get.
    one.delete(&made.id).await.expect("delete");
    one.delete(&made.id).await.expect("delete again succeeds");
    assert!(one.list().await.unwrap().iter().all(|i| i.id != made.id));
    assert!(one.get(&made.id).await.unwrap().is_none());

    two.delete(&theirs.id).await.unwrap();
    assert!(two.list().await.unwrap().is_empty());
}

/// `runners list -o json`'s rows name exactly the instances the backend lists.
#[allow(dead_code)] // the Docker tests do not compare
pub async fn assert_records_name_instances(rows: &[serde_json::Value], backend: &dyn Backend) {
    let mut listed: Vec<String> = backend
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut recorded: Vec<String> = rows
        .iter()
        .map(|r| r["instance"].as_str().unwrap_or_default().to_string())
        .collect();
    listed.sort();
    recorded.sort();
    assert_eq!(listed, recorded, "each record names its instance");
}

/// A stopped warm pool's instance, as the manager drives it: made for the pool, stopped (still
/// listed, as stopped), stopped again (no error), started (running or booting again), deleted.
/// Another manager's instance is neither stopped nor started. `boot`: a warm instance's (its
/// credential at the broker).
#[allow(dead_code)] // the backends without a stopped pool do not run it
pub async fn stop_start(
    one: Arc<dyn Backend>,
    one_manager: &str,
    two: Arc<dyn Backend>,
    spec: &InstanceSpec,
    boot: BootData,
) {
    use runnerctl::backend::InstanceState;
    let runner = format!("{one_manager}-g-warm");
    let mut req = request(one_manager, "g", &runner, spec, boot);
    req.warm = Some(runnerctl::model::Pool::Stopped);
    assert!(
        one.warm_support().stopped,
        "{} keeps stopped instances",
        one.name()
    );
    let made = one.create(&req).await.expect("create");
    one.stop(&made.id).await.expect("stop");
    let got = one
        .get(&made.id)
        .await
        .expect("get")
        .expect("a stopped instance is still there");
    assert_eq!(got.state, InstanceState::Stopped, "{got:?}");
    assert!(
        one.list()
            .await
            .unwrap()
            .iter()
            .any(|i| i.id == made.id && i.state == InstanceState::Stopped),
        "list shows it, stopped"
    );
    one.stop(&made.id)
        .await
        .expect("stopping a stopped instance succeeds");
    let err = two
        .start(&made.id)
        .await
        .expect_err("another manager cannot start it");
    assert!(
        matches!(err, runnerctl::backend::BackendError::NotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        one.get(&made.id).await.unwrap().unwrap().state,
        InstanceState::Stopped
    );

    one.start(&made.id).await.expect("start");
    let state = one.get(&made.id).await.unwrap().expect("started").state;
    assert!(
        matches!(state, InstanceState::Running | InstanceState::Pending),
        "started: {state:?}"
    );
    one.delete(&made.id).await.expect("delete");
    assert!(one.get(&made.id).await.unwrap().is_none(), "deleted");
    let err = one
        .start(&made.id)
        .await
        .expect_err("a deleted instance cannot start");
    assert!(
        matches!(err, runnerctl::backend::BackendError::NotFound { .. }),
        "{err:?}"
    );
}
