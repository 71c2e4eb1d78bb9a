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
//! Backends never call each other, and only `build` chooses an implementation.

pub mod fake;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "docker")]
pub mod docker;

use crate::config::{BackendConfig, BackendKind, BackendSettings, InstanceSpec, Secret};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// A file an instance receives at a path, with its mode. Secret contents never print.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub mode: u32,
    pub content: Secret,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({}, {:o}, <redacted>)", self.path, self.mode)
    }
}

/// What an instance receives to become a runner (rendered by `bootstrap`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootData {
    /// Command a container runs (containers only).
    pub command: Vec<String>,
    /// Environment variables; never secrets.
    pub env: Vec<(String, String)>,
    /// Files written before the instance starts (containers) or by cloud-init (VMs).
    pub files: Vec<File>,
    /// cloud-init user-data (VMs only).
    pub user_data: Option<Secret>,
}

/// Everything a backend needs to create the instance of one runner.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub runner_name: String,
    pub spec: InstanceSpec,
    pub boot: BootData,
    pub tags: OwnerTags,
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
    fn kind(&self) -> BackendKind;
    /// Creates the runner's instance, or returns the one that exists for that runner name.
    async fn create(&self, req: &CreateRequest) -> Result<Instance>;
    /// Deletes an instance; one that is already gone is success.
    async fn delete(&self, id: &str) -> Result<()>;
    async fn get(&self, id: &str) -> Result<Option<Instance>>;
    /// Every instance this manager owns on this backend.
    async fn list(&self) -> Result<Vec<Instance>>;
}

/// The code of a [`Reconnecting`] backend's error while it cannot connect.
pub const NOT_CONNECTED: &str = "NotConnected";

/// A backend whose connection is made on first use and retried on every use until it succeeds:
/// one that cannot be reached when a worker starts (the engine or the cloud endpoint down) is
/// not dropped for the life of the process; its tasks fail as transient and are retried.
pub struct Reconnecting {
    config: BackendConfig,
    manager: String,
    redis: Option<redis::aio::ConnectionManager>,
    inner: tokio::sync::Mutex<Option<Arc<dyn Backend>>>,
}

impl Reconnecting {
    pub fn new(
        config: &BackendConfig,
        manager: &str,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Reconnecting {
        Reconnecting {
            config: config.clone(),
            manager: manager.to_string(),
            redis,
            inner: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<Arc<dyn Backend>> {
        let mut inner = self.inner.lock().await;
        if let Some(b) = inner.as_ref() {
            return Ok(b.clone());
        }
        match build(&self.config, &self.manager, self.redis.clone()).await {
            Ok(b) => {
                tracing::info!(backend = %self.config.name, "backend reachable");
                *inner = Some(b.clone());
                Ok(b)
            }
            // Not built into this binary: that will not change by waiting.
            Err(e) if e.code() == "NotAvailable" => Err(e),
            Err(e) => Err(BackendError::Transient {
                backend: self.config.name.clone(),
                code: NOT_CONNECTED.into(),
                message: format!("cannot connect yet: {e}"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Reconnecting {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> BackendKind {
        self.config.kind()
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
}

/// Builds the backend a configuration entry describes, for the manager `manager`.
/// `redis` serves the fake backend, which keeps its instances there so that every runnerctl
/// process of the manager sees the same ones.
pub async fn build(
    config: &BackendConfig,
    manager: &str,
    redis: Option<redis::aio::ConnectionManager>,
) -> Result<Arc<dyn Backend>> {
    let unavailable = |what: &str| BackendError::Permanent {
        backend: config.name.clone(),
        code: "NotAvailable".into(),
        message: format!("the {what} backend is not available in this version"),
    };
    match &config.settings {
        BackendSettings::Fake(s) => Ok(Arc::new(fake::FakeBackend::new(
            &config.name,
            manager,
            s.create_latency.map(|d| d.as_std()),
            redis,
        ))),
        #[cfg(feature = "docker")]
        BackendSettings::Docker(s) => Ok(Arc::new(
            docker::DockerBackend::connect(&config.name, manager, s).await?,
        )),
        #[cfg(not(feature = "docker"))]
        BackendSettings::Docker(_) => Err(unavailable("docker")),
        #[cfg(feature = "aws")]
        BackendSettings::Aws(s) => Ok(Arc::new(
            aws::AwsBackend::connect(&config.name, manager, s).await?,
        )),
        #[cfg(not(feature = "aws"))]
        BackendSettings::Aws(_) => Err(unavailable("aws")),
        BackendSettings::Gcp(_) => Err(unavailable("gcp")),
        BackendSettings::Vsphere(_) => Err(unavailable("vsphere")),
    }
}
