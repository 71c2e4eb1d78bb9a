//! Backends host runners: one instance (VM or container) per runner. Every backend behaves the
//! same to the rest of runnerctl, and `tests/support/conformance.rs` is that contract as a test
//! suite that each one passes.
//!
//! - `create` is idempotent by runner name: asking twice yields one instance.
//! - `delete` is idempotent: an instance already gone is success.
//! - `list` returns only this manager's instances, found by their owner tags.
//! - Errors are classified: not found, transient (retry with backoff), permanent (surfaced to the
//!   operator with the backend's own error code).
//!
//! Each kind registers here once, in [`kinds`] (the one selection function, like sccache's):
//! a [`Kind`] brings its part of the configuration (a [`Schema`]), how its instances boot, how a
//! runner's credential travels and a constructor that receives its secrets resolved. Backends
//! never call each other, and only [`build`] chooses an implementation.

pub mod fake;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "vsphere")]
pub mod vsphere;

pub use crate::bootstrap::{BootData, BootStyle, File};
use crate::config::{BackendSettings, InstanceSpec, Schema, Secret};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A backend kind, as registered in [`kinds`].
#[async_trait::async_trait]
pub trait Kind: Sync {
    /// Its name, the `kind:` of a `backends:` entry (its schema's).
    fn name(&self) -> &'static str {
        self.schema().kind()
    }
    /// How it reads its settings and its groups' specs.
    fn schema(&self) -> &dyn Schema;
    /// Whether its instances boot with cloud-init (VMs) or run a command (containers).
    fn boot_style(&self) -> BootStyle;
    /// Whether its runners' credentials go through the credential broker when one is
    /// configured: VMs do (their metadata is readable by others); a container backend that
    /// copies files into its container does not need it.
    fn brokered(&self) -> bool {
        self.boot_style() == BootStyle::Vm
    }
    /// [`Kind::brokered`] for a backend of these settings (a kind whose settings choose).
    fn brokered_with(&self, _settings: &BackendSettings) -> bool {
        self.brokered()
    }
    /// What its instances can be kept warm as: its schema says (nothing unless it does).
    fn warm_support(&self) -> WarmSupport {
        let (hot, stopped) = self.schema().warm_pools();
        WarmSupport { hot, stopped }
    }
    /// How its instances prove who they are to the broker, besides their address.
    fn identity_proof(&self) -> crate::bootstrap::Proof {
        crate::bootstrap::Proof::Address
    }
    /// How a runner's credential reaches an instance, for `runners bootstrap`.
    fn credential_delivery(
        &self,
        settings: &BackendSettings,
        manager: &str,
        runner: &str,
    ) -> String;
    /// Builds a backend from its settings, secrets resolved.
    async fn build(&self, cx: BuildContext) -> Result<Arc<dyn Backend>>;
}

/// Every backend kind this build offers. Adding a kind is one line here.
pub fn kinds() -> Vec<&'static dyn Kind> {
    #[allow(unused_mut)] // without the optional kinds
    let mut all: Vec<&'static dyn Kind> = vec![&fake::KIND];
    #[cfg(feature = "docker")]
    all.push(&docker::KIND);
    #[cfg(feature = "aws")]
    all.push(&aws::KIND);
    #[cfg(feature = "gcp")]
    all.push(&gcp::KIND);
    #[cfg(feature = "vsphere")]
    all.push(&vsphere::KIND);
    all
}

/// The schemas of [`kinds`], for the configuration loader.
pub fn schemas() -> Vec<&'static dyn Schema> {
    kinds().into_iter().map(|k| k.schema()).collect()
}

/// The kind of that name, when this build has it.
pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    kinds().into_iter().find(|k| k.name() == name)
}

/// What a runner's instance, on a backend that boots nothing, runs instead of a runner (the
/// demo's stand-in, which connects to the fake GitHub). Injected by the wiring.
#[async_trait::async_trait]
pub trait StandIn: Send + Sync {
    /// Starts a stand-in for the runner with what its instance received; false when it could
    /// not.
    async fn start(&self, runner: &str, boot: &BootData) -> bool;

    /// Whether the backend's create call answers before the stand-in started, as a cloud
    /// answers before its VM boots. Only a long-running process may say so: a one-shot
    /// command would exit before its runner connected. Default: the create call waits.
    fn detached(&self) -> bool {
        false
    }
}

/// A stand-in started after the create call answered (see [`StandIn::detached`]).
pub struct Detached<S>(pub S);

#[async_trait::async_trait]
impl<S: StandIn> StandIn for Detached<S> {
    async fn start(&self, runner: &str, boot: &BootData) -> bool {
        self.0.start(runner, boot).await
    }
    fn detached(&self) -> bool {
        true
    }
}

/// What a kind's constructor receives.
#[derive(Clone)]
pub struct BuildContext {
    /// The backend's name in the configuration.
    pub name: String,
    /// The manager it serves (owner tags, key prefixes).
    pub manager: String,
    pub settings: BackendSettings,
    /// The secrets its schema named, resolved, by key.
    pub secrets: BTreeMap<String, Secret>,
    /// The manager's Redis, for a backend that keeps state there (the fake one).
    pub redis: Option<crate::conn::Conn>,
    pub stand_in: Option<Arc<dyn StandIn>>,
}

/// Tag (or label) keys marking what runnerctl owns.
pub const TAG_MANAGER: &str = "runnerctl-manager";
pub const TAG_GROUP: &str = "runnerctl-group";
pub const TAG_RUNNER: &str = "runnerctl-runner";

/// Who owns an instance: the manager, the group and the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerTags {
    pub manager: String,
    pub group: String,
    pub runner: String,
}

impl OwnerTags {
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (TAG_MANAGER, self.manager.as_str()),
            (TAG_GROUP, self.group.as_str()),
            (TAG_RUNNER, self.runner.as_str()),
        ]
    }
}

/// Everything a backend needs to create the instance of one runner.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub runner_name: String,
    pub spec: InstanceSpec,
    pub boot: BootData,
    pub tags: OwnerTags,
    /// Made for a warm pool: `boot` carries no credential (the instance waits for one at the
    /// broker, or for [`Backend::deliver`]); a hot instance boots and waits, a stopped one is
    /// stopped by [`Backend::stop`] once booted.
    pub warm: Option<crate::model::Pool>,
}

/// What a backend can keep in a warm pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct WarmSupport {
    /// Booted instances that wait for their credential.
    pub hot: bool,
    /// Instances stopped after their first boot and started on demand.
    pub stopped: bool,
}

/// Where an instance is in its life, as the backend reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    Unknown,
}

/// An instance owned by this manager.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// The backend's id for it.
    pub id: String,
    pub state: InstanceState,
    pub tags: BTreeMap<String, String>,
    /// Unix seconds, when the backend says.
    pub created_at: Option<u64>,
    /// Spot capacity was asked for and refused, and this instance is on-demand instead (set by
    /// `create` only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spot_fallback: bool,
    /// The address the instance's traffic comes from, when the backend knows it (the broker
    /// binds the runner's credential to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The signed identity the instance can prove to the broker, when its cloud signs one
    /// (`gce:PROJECT/ZONE/NAME/ID`): the broker binds the runner's credential to it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl Instance {
    pub fn runner(&self) -> Option<&str> {
        self.tags.get(TAG_RUNNER).map(String::as_str)
    }
    pub fn group(&self) -> Option<&str> {
        self.tags.get(TAG_GROUP).map(String::as_str)
    }
}

/// A backend's failure, classified for the caller's retry policy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{backend}: no instance `{id}`")]
    NotFound { backend: String, id: String },
    /// Worth retrying with backoff: throttling, capacity, a network blip.
    #[error("{backend}: temporary failure ({code}): {message}")]
    Transient {
        backend: String,
        code: String,
        message: String,
    },
    /// Will fail again until someone changes something: a bad image, a missing permission.
    #[error("{backend}: {code}: {message}")]
    Permanent {
        backend: String,
        code: String,
        message: String,
    },
}

impl BackendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, BackendError::Transient { .. })
    }

    /// The backend's own error code (`NotFound` for a missing instance).
    pub fn code(&self) -> &str {
        match self {
            BackendError::NotFound { .. } => "NotFound",
            BackendError::Transient { code, .. } | BackendError::Permanent { code, .. } => code,
        }
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// A place that hosts runner instances.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The backend's name in the configuration.
    fn name(&self) -> &str;
    fn kind(&self) -> &'static dyn Kind;
    /// Creates the runner's instance, or returns the one that exists for that runner name.
    async fn create(&self, req: &CreateRequest) -> Result<Instance>;
    /// Deletes an instance; one that is already gone is success.
    async fn delete(&self, id: &str) -> Result<()>;
    async fn get(&self, id: &str) -> Result<Option<Instance>>;
    /// Every instance this manager owns on this backend.
    async fn list(&self) -> Result<Vec<Instance>>;
    /// Whether its runners' credentials go through the broker when one is configured: its
    /// kind's answer unless its settings choose (a Docker backend with `broker: true`).
    fn brokered(&self) -> bool {
        self.kind().brokered()
    }
    /// What it can keep warm: its kind's answer.
    fn warm_support(&self) -> WarmSupport {
        self.kind().warm_support()
    }
    /// Stops a booted warm instance (a stopped pool's): EC2 `StopInstances`, Compute Engine
    /// `suspend`, a vSphere power-off, a stopped container. Waits until it is stopped.
    async fn stop(&self, id: &str) -> Result<()> {
        Err(self.unsupported("stop", id))
    }
    /// Starts a stopped warm instance.
    async fn start(&self, id: &str) -> Result<()> {
        Err(self.unsupported("start", id))
    }
    /// Gives a warm instance that does not fetch its credential from the broker the boot data
    /// with its credential (a container's file, the fake backend's stand-in).
    async fn deliver(&self, id: &str, boot: &BootData) -> Result<()> {
        let _ = boot;
        Err(self.unsupported("deliver", id))
    }
    /// The error of an operation this backend does not have.
    fn unsupported(&self, operation: &str, id: &str) -> BackendError {
        BackendError::Permanent {
            backend: self.name().to_string(),
            code: "Unsupported".into(),
            message: format!(
                "a {} backend cannot {operation} an instance (`{id}`): it keeps no warm pool of that kind",
                self.kind().name()
            ),
        }
    }
}

/// The code of a [`Reconnecting`] backend's error while it cannot connect.
pub const NOT_CONNECTED: &str = "NotConnected";

impl BuildContext {
    /// A context without secrets, Redis or stand-in (tests, tools).
    pub fn new(name: &str, manager: &str, settings: BackendSettings) -> BuildContext {
        BuildContext {
            name: name.to_string(),
            manager: manager.to_string(),
            settings,
            secrets: BTreeMap::new(),
            redis: None,
            stand_in: None,
        }
    }
}

/// A backend whose connection is made on first use and retried on every use until it succeeds:
/// one that cannot be reached when a worker starts (the engine or the cloud endpoint down) is
/// not dropped for the life of the process; its tasks fail as transient and are retried.
pub struct Reconnecting {
    cx: BuildContext,
    kind: &'static dyn Kind,
    inner: tokio::sync::Mutex<Option<Arc<dyn Backend>>>,
}

impl Reconnecting {
    pub fn new(kind: &'static dyn Kind, cx: BuildContext) -> Reconnecting {
        Reconnecting {
            cx,
            kind,
            inner: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<Arc<dyn Backend>> {
        let mut inner = self.inner.lock().await;
        if let Some(b) = inner.as_ref() {
            return Ok(b.clone());
        }
        match self.kind.build(self.cx.clone()).await {
            Ok(b) => {
                tracing::info!(backend = %self.cx.name, "backend reachable");
                *inner = Some(b.clone());
                Ok(b)
            }
            Err(e) => Err(BackendError::Transient {
                backend: self.cx.name.clone(),
                code: NOT_CONNECTED.into(),
                message: format!("cannot connect yet: {e}"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Reconnecting {
    fn name(&self) -> &str {
        &self.cx.name
    }
    fn kind(&self) -> &'static dyn Kind {
        self.kind
    }
    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        self.get().await?.create(req).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.get().await?.delete(id).await
    }
    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        Reconnecting::get(self).await?.get(id).await
    }
    async fn list(&self) -> Result<Vec<Instance>> {
        Reconnecting::get(self).await?.list().await
    }
    fn brokered(&self) -> bool {
        self.kind.brokered_with(&self.cx.settings)
    }
    async fn stop(&self, id: &str) -> Result<()> {
        Reconnecting::get(self).await?.stop(id).await
    }
    async fn start(&self, id: &str) -> Result<()> {
        Reconnecting::get(self).await?.start(id).await
    }
    async fn deliver(&self, id: &str, boot: &BootData) -> Result<()> {
        Reconnecting::get(self).await?.deliver(id, boot).await
    }
}

/// Calls to backends by operation and outcome (`ok`, `not_found`, `transient`, `permanent`),
/// counted by [`Metered`].
pub static CALLS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_backend_calls_total",
    "Calls to backends, by backend, kind, operation and outcome (ok, not_found, transient, permanent).",
    &["backend", "kind", "operation", "outcome"],
);

/// Backend errors by the backend's own code (`InsufficientInstanceCapacity`, `notFound`, …).
pub static ERRORS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_backend_errors_total",
    "Errors backends answered, by backend, kind and the backend's own error code.",
    &["backend", "kind", "code"],
);

/// A backend whose every call is counted in [`CALLS`] and [`ERRORS`] (the wiring wraps each
/// backend it builds in one).
pub struct Metered {
    inner: Arc<dyn Backend>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Backend>) -> Metered {
        Metered { inner }
    }

    fn count<T>(&self, operation: &str, r: &Result<T>) {
        let (name, kind) = (self.inner.name(), self.inner.kind().name());
        let outcome = match r {
            Ok(_) => "ok",
            Err(BackendError::NotFound { .. }) => "not_found",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "permanent",
        };
        CALLS.inc(&[name, kind, operation, outcome]);
        if let Err(e) = r {
            ERRORS.inc(&[name, kind, e.code()]);
        }
    }
}

#[async_trait::async_trait]
impl Backend for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static dyn Kind {
        self.inner.kind()
    }
    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        let r = self.inner.create(req).await;
        self.count("create", &r);
        r
    }
    async fn delete(&self, id: &str) -> Result<()> {
        let r = self.inner.delete(id).await;
        self.count("delete", &r);
        r
    }
    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        let r = self.inner.get(id).await;
        self.count("get", &r);
        r
    }
    async fn list(&self) -> Result<Vec<Instance>> {
        let r = self.inner.list().await;
        self.count("list", &r);
        r
    }
    fn brokered(&self) -> bool {
        self.inner.brokered()
    }
    async fn stop(&self, id: &str) -> Result<()> {
        let r = self.inner.stop(id).await;
        self.count("stop", &r);
        r
    }
    async fn start(&self, id: &str) -> Result<()> {
        let r = self.inner.start(id).await;
        self.count("start", &r);
        r
    }
    async fn deliver(&self, id: &str, boot: &BootData) -> Result<()> {
        let r = self.inner.deliver(id, boot).await;
        self.count("deliver", &r);
        r
    }
}

/// Builds the backend a context describes: the kind of its settings, when this build has it.
pub async fn build(cx: BuildContext) -> Result<Arc<dyn Backend>> {
    let kind = kind(cx.settings.kind()).ok_or_else(|| BackendError::Permanent {
        backend: cx.name.clone(),
        code: "NotAvailable".into(),
        message: format!(
            "the {} backend is not built into this binary",
            cx.settings.kind()
        ),
    })?;
    kind.build(cx).await
}
