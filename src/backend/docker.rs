//! The Docker backend: one container per runner, from the group's image, with owner labels, CPU
//! and memory limits, on the configured network. Secret files (the JIT configuration) are copied
//! into the container before it starts, never passed as environment variables, which
//! `docker inspect` would show. The API version is negotiated with the engine (Debian's
//! `docker.io` speaks 1.41).

use super::{
    Backend, BackendError, BackendSettings, BootStyle, BuildContext, CreateRequest, File, Instance,
    InstanceState, Kind, Result, TAG_MANAGER,
};
use crate::config::{Reader, Schema, Typed};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// `kind: docker`.
pub struct DockerKind;
pub static KIND: DockerKind = DockerKind;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct DockerSettings {
    /// `unix:///var/run/docker.sock` or `tcp://host:2375`; by default `DOCKER_HOST` or the local
    /// socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Network the containers join; by default Docker's `bridge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// With the credential broker configured, containers fetch their credential from it (from
    /// their own address, once, the CA pinned) instead of having it copied in: for an engine
    /// whose containers' files others can read. The image needs curl. Default: false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub broker: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DockerSpec {
    pub image: String,
    /// CPU limit, in CPUs (`1.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Network for this group's containers, overriding the backend's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl DockerSpec {
    pub fn typed(self) -> Typed {
        Typed::new("docker", self)
    }
}

impl Schema for DockerKind {
    fn kind(&self) -> &'static str {
        "docker"
    }
    /// Hot: a started container whose bootstrap waits for its credential (copied in when a job
    /// takes it, or fetched from the broker). Stopped: a created container, started when a job
    /// takes it, its credential copied in first.
    fn warm_pools(&self) -> (bool, bool) {
        (true, true)
    }
    fn settings(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        let s: DockerSettings = r.de(value)?;
        Some(Typed::new("docker", s))
    }
    fn spec(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        if value.is_null() {
            r.error(
                "",
                "required field is missing (the instance spec for a `docker` backend)",
            );
            return None;
        }
        let d: DockerSpec = r.de(value)?;
        if d.image.trim().is_empty() {
            r.error("image", "must not be empty");
        }
        if d.cpus
            .is_some_and(|c| c <= 0.0 || !c.is_finite() || c > 1024.0)
        {
            r.error("cpus", "must be a positive number of CPUs, at most 1024");
        }
        if let Some(m) = d.memory_mb {
            r.range("memory_mb", m, 6, 4 * 1024 * 1024);
        }
        Some(d.typed())
    }
}

#[async_trait::async_trait]
impl Kind for DockerKind {
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn boot_style(&self) -> BootStyle {
        BootStyle::Container
    }
    fn brokered_with(&self, settings: &BackendSettings) -> bool {
        settings.get::<DockerSettings>().is_some_and(|s| s.broker)
    }
    fn credential_delivery(&self, settings: &BackendSettings, _: &str, _: &str) -> String {
        if self.brokered_with(settings) {
            "through the credential broker (with `broker:` configured): the container fetches it once, from its own address, with a one-time token".into()
        } else {
            "copied into the container, root-only, before it starts".into()
        }
    }
    async fn build(&self, cx: BuildContext) -> Result<Arc<dyn Backend>> {
        let settings = cx
            .settings
            .get::<DockerSettings>()
            .cloned()
            .unwrap_or_default();
        Ok(Arc::new(
            DockerBackend::connect(&cx.name, &cx.manager, &settings).await?,
        ))
    }
}

pub struct DockerBackend {
    name: String,
    manager: String,
    network: Option<String>,
    broker: bool,
    docker: Docker,
}

impl DockerBackend {
    /// Connects to the engine at `settings.host`, else `DOCKER_HOST`, else the local socket.
    pub async fn connect(name: &str, manager: &str, settings: &DockerSettings) -> Result<Self> {
        let perm = |e: DockerError| BackendError::Permanent {
            backend: name.to_string(),
            code: "DockerConnect".into(),
            message: e.to_string(),
        };
        let docker = match settings.host.as_deref() {
            Some(h) if h.starts_with("unix://") => {
                Docker::connect_with_unix(h, 120, bollard::API_DEFAULT_VERSION).map_err(perm)?
            }
            Some(h) => {
                Docker::connect_with_http(h, 120, bollard::API_DEFAULT_VERSION).map_err(perm)?
            }
            None => Docker::connect_with_defaults().map_err(perm)?,
        };
        let backend = DockerBackend {
            name: name.to_string(),
            manager: manager.to_string(),
            network: settings.network.clone(),
            broker: settings.broker,
            docker: docker.clone(),
        };
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| backend.classify(e))?;
        Ok(DockerBackend { docker, ..backend })
    }

    /// Copies `files` into the created container `id` and, when `start`, starts it.
    async fn fill_and_start(
        &self,
        id: &str,
        files: &[File],
        start: bool,
    ) -> std::result::Result<(), DockerError> {
        if !files.is_empty() {
            let opts = UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            };
            self.docker
                .upload_to_container(id, Some(opts), bollard::body_full(tar(files).into()))
                .await?;
        }
        if !start {
            return Ok(());
        }
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
    }

    fn classify(&self, e: DockerError) -> BackendError {
        let backend = self.name.clone();
        match e {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => BackendError::NotFound {
                    backend,
                    id: message,
                },
                409 => BackendError::Permanent {
                    backend,
                    code: "Conflict".into(),
                    message,
                },
                429 | 500..=599 => BackendError::Transient {
                    backend,
                    code: format!("HTTP{status_code}"),
                    message,
                },
                _ => BackendError::Permanent {
                    backend,
                    code: format!("HTTP{status_code}"),
                    message,
                },
            },
            other => BackendError::Transient {
                backend,
                code: "DockerUnreachable".into(),
                message: other.to_string(),
            },
        }
    }

    fn ours(&self, labels: &HashMap<String, String>) -> bool {
        labels.get(TAG_MANAGER) == Some(&self.manager)
    }

    async fn inspect(&self, id: &str) -> Result<Option<Instance>> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => {
                let labels = c
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                if !self.ours(&labels) {
                    return Ok(None);
                }
                let state = c
                    .state
                    .as_ref()
                    .and_then(|s| s.status)
                    .map(|s| state_of(s.as_ref()))
                    .unwrap_or(InstanceState::Unknown);
                // The container's address on its network: the broker binds its credential to it.
                let address = c.network_settings.as_ref().and_then(|n| {
                    n.networks
                        .as_ref()
                        .and_then(|all| all.values().find_map(|e| e.ip_address.clone()))
                        .filter(|a| !a.is_empty())
                });
                Ok(Some(Instance {
                    id: c.id.unwrap_or_else(|| id.to_string()),
                    state,
                    tags: labels.into_iter().collect(),
                    created_at: None,
                    spot_fallback: false,
                    identity: None,
                    address,
                }))
            }
            Err(e) => match self.classify(e) {
                BackendError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match self.classify(e) {
                BackendError::NotFound { .. } => Ok(()),
                // Already being removed by someone else: that is what we want.
                BackendError::Permanent { code, message, .. }
                    if code == "Conflict" && message.contains("already in progress") =>
                {
                    Ok(())
                }
                other => Err(other),
            },
        }
    }
}

fn state_of(s: &str) -> InstanceState {
    match s {
        "created" | "restarting" => InstanceState::Pending,
        "running" | "paused" => InstanceState::Running,
        "removing" => InstanceState::Stopping,
        "exited" | "dead" => InstanceState::Stopped,
        _ => InstanceState::Unknown,
    }
}

#[async_trait::async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn brokered(&self) -> bool {
        self.broker
    }
    fn kind(&self) -> &'static dyn Kind {
        &KIND
    }

    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        let Some(spec) = req.spec.get::<DockerSpec>() else {
            return Err(BackendError::Permanent {
                backend: self.name.clone(),
                code: "WrongSpec".into(),
                message: "the group's spec is not a docker spec".into(),
            });
        };
        // The container's name is the runner's: a retried create finds the first container.
        if let Some(existing) = self.inspect(&req.runner_name).await? {
            return Ok(existing);
        }
        let labels: HashMap<String, String> = req
            .tags
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!req.boot.command.is_empty()).then(|| req.boot.command.clone()),
            env: Some(
                req.boot
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(labels),
            hostname: Some(req.runner_name.clone()),
            host_config: Some(HostConfig {
                nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
                memory: spec.memory_mb.map(|m| (m * 1024 * 1024) as i64),
                network_mode: spec.network.clone().or_else(|| self.network.clone()),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(req.runner_name.clone()),
            ..Default::default()
        };
        let id = match self.docker.create_container(Some(opts), body).await {
            Ok(r) => r.id,
            Err(e) => {
                return match self.classify(e) {
                    // Created meanwhile by another worker for the same runner.
                    BackendError::Permanent { code, .. } if code == "Conflict" => self
                        .inspect(&req.runner_name)
                        .await?
                        .ok_or_else(|| BackendError::Transient {
                            backend: self.name.clone(),
                            code: "Conflict".into(),
                            message: format!(
                                "a container named `{}` exists and is not ours",
                                req.runner_name
                            ),
                        }),
                    BackendError::NotFound { id, .. } => Err(BackendError::Permanent {
                        backend: self.name.clone(),
                        code: "NoSuchImage".into(),
                        message: format!("image `{}`: {id}", spec.image),
                    }),
                    other => Err(other),
                };
            }
        };
        let start = req.warm != Some(crate::model::Pool::Stopped);
        let started = self.fill_and_start(&id, &files_of(req), start).await;
        if let Err(e) = started {
            // Never leave a half-made container behind.
            let _ = self.remove(&id).await;
            return Err(self.classify(e));
        }
        self.inspect(&id)
            .await?
            .ok_or_else(|| BackendError::Transient {
                backend: self.name.clone(),
                code: "Vanished".into(),
                message: format!("container `{}` vanished after it started", req.runner_name),
            })
    }

    async fn stop(&self, id: &str) -> Result<()> {
        let opts = StopContainerOptions {
            t: Some(10),
            ..Default::default()
        };
        match self.docker.stop_container(id, Some(opts)).await {
            // 304: stopped already (or created and never started).
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn start(&self, id: &str) -> Result<()> {
        match self
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await
        {
            // 304: started already.
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Copies the credential of `boot` into a warm container, under `incoming/`, with the
    /// `ready` file last: its bootstrap, waiting for that file, moves the credential into place
    /// (a started container's at once, a stopped one's when it starts).
    async fn deliver(&self, id: &str, boot: &crate::bootstrap::BootData) -> Result<()> {
        let mut files: Vec<File> = boot
            .files
            .iter()
            .filter(|f| crate::bootstrap::is_secret(&f.path))
            .map(|f| File {
                path: format!(
                    "{INCOMING}/{}",
                    f.path.rsplit('/').next().unwrap_or("jitconfig")
                ),
                mode: f.mode,
                content: f.content.clone(),
            })
            .collect();
        if files.is_empty() {
            return Err(BackendError::Permanent {
                backend: self.name.clone(),
                code: "NoCredential".into(),
                message: format!("nothing to hand container `{id}`"),
            });
        }
        files.push(File {
            path: format!("{INCOMING}/ready"),
            mode: 0o644,
            content: crate::config::Secret::new("1"),
        });
        let opts = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(opts), bollard::body_full(tar(&files).into()))
            .await
            .map_err(|e| self.classify(e))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        // Only ever remove our own containers.
        match self.inspect(id).await? {
            Some(_) => self.remove(id).await,
            None => Ok(()),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        self.inspect(id).await
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{TAG_MANAGER}={}", self.manager)],
        );
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| self.classify(e))?;
        let mut out: Vec<Instance> = list
            .into_iter()
            .filter(|c| c.labels.as_ref().is_some_and(|l| self.ours(l)))
            .map(|c| Instance {
                id: c.id.unwrap_or_default(),
                state: c
                    .state
                    .map(|s: ContainerSummaryStateEnum| state_of(s.as_ref()))
                    .unwrap_or(InstanceState::Unknown),
                tags: c
                    .labels
                    .unwrap_or_default()
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
                created_at: c.created.map(|t| t.max(0) as u64),
                spot_fallback: false,
                identity: None,
                address: None,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// The files a container gets before it starts: its boot's, and for a warm container whose
/// credential is copied in later (see `deliver`), the marker its bootstrap waits on.
fn files_of(req: &CreateRequest) -> Vec<File> {
    let mut files = req.boot.files.clone();
    let waits = req.warm.is_some()
        && !files.iter().any(|f| {
            crate::bootstrap::is_secret(&f.path) || f.path == crate::bootstrap::BROKER_TOKEN
        });
    if waits {
        files.push(File {
            path: WARM_MARKER.into(),
            mode: 0o644,
            content: crate::config::Secret::new("1"),
        });
    }
    files
}

/// Marks a warm container whose credential comes later, copied in by `deliver`.
pub const WARM_MARKER: &str = "/run/runnerctl/warm";
/// Where `deliver` copies a warm container's credential (then `ready`).
pub const INCOMING: &str = "/run/runnerctl/incoming";

/// A tar archive (ustar) of `files` and their parent directories.
fn tar(files: &[File]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let path = f.path.trim_start_matches('/');
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|x| x.1)
            .unwrap_or(&[])
        {
            parent.push_str(part);
            parent.push('/');
            if !dirs.contains(&parent) {
                dirs.push(parent.clone());
                entry(&mut out, &parent, 0o755, b'5', &[]);
            }
        }
        entry(&mut out, path, f.mode, b'0', f.content.expose().as_bytes());
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn entry(out: &mut Vec<u8>, path: &str, mode: u32, kind: u8, data: &[u8]) {
    let mut h = [0u8; 512];
    let name = path.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{:0width$o}\0", v, width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], crate::model::unix_now());
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}
