//! Configuration: one YAML file, read once at start-up, validated strictly.
//!
//! The types here serve both as the parsed file and as the effective configuration that
//! `config show` prints: every default is filled in by serde, secrets print redacted. Loading
//! ([`load_file`], [`parse`]) collects every problem with its path and, where the YAML parser
//! knows it, its line and column; nothing is read from the process environment here except by
//! [`SecretSource::resolve`], which commands call when they need a secret.

mod duration;
mod load;
mod locate;
mod secret;

pub use duration::Duration;
pub use load::{
    load_file, parse, redact_url, valid_label, valid_login, valid_repository, ConfigError, Loaded,
    Problem, Severity, DURATION_BOUNDS,
};
pub use locate::Location;
pub use secret::{Secret, SecretError, SecretSource};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the configuration is read from when neither `--config` nor `RUNNERCTL_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/runnerctl/config.yaml";

/// The documented example configuration, shipped in the binary for `runnerctl config example`.
pub const EXAMPLE: &str = include_str!("../../config.example.yaml");

fn default_name() -> String {
    "runner-manager".into()
}
fn default_healthcheck_interval() -> Duration {
    Duration::from_secs(600)
}
fn default_time_to_start() -> Duration {
    Duration::from_secs(600)
}
fn default_time_to_live() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_cleanup_grace() -> Duration {
    Duration::from_secs(300)
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Names and tags everything this manager owns (instances, Redis keys, GitHub runners).
    pub name: String,
    pub github: GithubConfig,
    pub redis: RedisConfig,
    pub webhook: WebhookConfig,
    pub healthcheck_interval: Duration,
    pub time_to_start: Duration,
    pub time_to_live: Duration,
    /// An instance or GitHub runner of ours with no record is deleted only after it has been
    /// seen so for this long (and never while it runs a job).
    pub cleanup_grace: Duration,
    pub queue: QueueConfig,
    pub backends: Vec<BackendConfig>,
    pub runner_groups: Vec<RunnerGroup>,
}

impl Config {
    pub fn group(&self, name: &str) -> Option<&RunnerGroup> {
        self.runner_groups.iter().find(|g| g.name == name)
    }
    pub fn backend(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// `github:`: where GitHub is and how runnerctl authenticates to it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GithubConfig {
    /// API root; set it for GitHub Enterprise Server (`https://ghe.example.com/api/v3`).
    pub base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            base_url: "https://api.github.com".into(),
            app_id: None,
            installation_id: None,
            private_key: None,
            private_key_env: None,
            private_key_file: None,
            token: None,
            token_env: None,
            token_file: None,
        }
    }
}

/// How runnerctl authenticates to GitHub. Exactly one method is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubAuth {
    App {
        app_id: u64,
        installation_id: u64,
        private_key: SecretSource,
    },
    Token(SecretSource),
}

impl GithubConfig {
    /// The authentication method. Only call it on a validated configuration.
    pub fn auth(&self) -> Option<GithubAuth> {
        let token = secret_source(&self.token, &self.token_env, &self.token_file)
            .ok()
            .flatten();
        let key = secret_source(
            &self.private_key,
            &self.private_key_env,
            &self.private_key_file,
        )
        .ok()
        .flatten();
        match (self.app_id, self.installation_id, key, token) {
            (Some(app_id), Some(installation_id), Some(private_key), None) => {
                Some(GithubAuth::App {
                    app_id,
                    installation_id,
                    private_key,
                })
            }
            (None, None, None, Some(token)) => Some(GithubAuth::Token(token)),
            _ => None,
        }
    }
}

/// `redis:`: the one Redis server that holds all state and the task queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, `rediss://…` or `unix:///path`.
    #[serde(serialize_with = "load::serialize_url_redacted")]
    pub url: String,
    /// An environment variable holding the URL instead (when it carries a password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            url_env: None,
        }
    }
}

impl RedisConfig {
    /// Where the URL comes from: `url_env` when set, else `url`.
    pub fn url_source(&self) -> SecretSource {
        match &self.url_env {
            Some(name) => SecretSource::Env(name.clone()),
            None => SecretSource::Inline(Secret::new(self.url.clone())),
        }
    }
}

/// `queue:`: how the task queue retries and hands over tasks. Every key has a default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct QueueConfig {
    /// A task held this long by a worker that stopped renewing it goes to another worker.
    pub visibility_timeout: Duration,
    /// Attempts before a failing task moves to the dead-letter stream.
    pub max_attempts: u32,
    /// The first retry delay; it doubles with each attempt (with jitter) up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// On SIGTERM, how long a worker lets tasks in flight finish before handing them back.
    pub drain_timeout: Duration,
    /// How long one handling of a task may take before it is stopped and retried.
    pub handler_deadline: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_timeout: Duration::from_secs(60),
            max_attempts: 10,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(30),
            handler_deadline: Duration::from_secs(900),
        }
    }
}

impl QueueConfig {
    pub fn options(&self) -> crate::queue::QueueOptions {
        crate::queue::QueueOptions {
            visibility_timeout: self.visibility_timeout.as_std(),
            max_attempts: self.max_attempts,
            retry_base: self.retry_base.as_std(),
            retry_max: self.retry_max.as_std(),
            handler_deadline: self.handler_deadline.as_std(),
            ..crate::queue::QueueOptions::default()
        }
    }
}

/// `webhook:`: the endpoint GitHub delivers `workflow_job` events to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Address `serve` listens on.
    pub listen: String,
    /// The address `/metrics` is served on. On `listen` it needs `metrics_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// The largest delivery accepted, in KiB (GitHub's cap is 25 MiB; `workflow_job` payloads
    /// are a few KiB). Enforced while reading.
    pub max_body_kib: u32,
    /// Connections open at once; past it, a new one is answered 503 and closed.
    pub max_connections: u32,
    /// Deliveries being read and handled at once; one past it waits up to 5 s for a slot, unread,
    /// then gets 503.
    pub max_in_flight: u32,
    /// With a token, `/metrics` is also served on `listen` to requests that carry it as
    /// `Authorization: Bearer …`; without one, only on `metrics_listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token_file: Option<PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: None,
            secret: None,
            secret_env: None,
            secret_file: None,
            max_body_kib: 1024,
            max_connections: 1024,
            max_in_flight: 32,
            metrics_token: None,
            metrics_token_env: None,
            metrics_token_file: None,
        }
    }
}

/// Why a webhook secret is too weak to sign deliveries with: empty, or shorter than 16 bytes
/// (anyone could forge a delivery).
pub fn webhook_secret_strength(s: &Secret) -> Result<(), String> {
    let n = s.expose().len();
    if n < 16 {
        return Err(format!(
            "the webhook secret must be at least 16 bytes (it has {n}): with a short one anyone can forge deliveries"
        ));
    }
    Ok(())
}

impl WebhookConfig {
    pub fn metrics_token_source(&self) -> Option<SecretSource> {
        secret_source(
            &self.metrics_token,
            &self.metrics_token_env,
            &self.metrics_token_file,
        )
        .ok()
        .flatten()
    }

    pub fn secret_source(&self) -> Option<SecretSource> {
        secret_source(&self.secret, &self.secret_env, &self.secret_file)
            .ok()
            .flatten()
    }
}

/// The kinds of backend runnerctl knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Fake,
    Docker,
    Aws,
    Gcp,
    Vsphere,
}

impl BackendKind {
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Fake,
        BackendKind::Docker,
        BackendKind::Aws,
        BackendKind::Gcp,
        BackendKind::Vsphere,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Fake => "fake",
            BackendKind::Docker => "docker",
            BackendKind::Aws => "aws",
            BackendKind::Gcp => "gcp",
            BackendKind::Vsphere => "vsphere",
        }
    }

    /// Whether this build contains the backend (its cargo feature is on).
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Fake => true,
            BackendKind::Docker => cfg!(feature = "docker"),
            BackendKind::Aws => cfg!(feature = "aws"),
            BackendKind::Gcp => cfg!(feature = "gcp"),
            BackendKind::Vsphere => cfg!(feature = "vsphere"),
        }
    }

    fn parse(s: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `backends:`.
#[derive(Debug, Clone, Serialize)]
pub struct BackendConfig {
    pub name: String,
    #[serde(flatten)]
    pub settings: BackendSettings,
}

impl BackendConfig {
    pub fn kind(&self) -> BackendKind {
        self.settings.kind()
    }
}

/// Connection settings of a backend, by kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendSettings {
    Fake(FakeSettings),
    Docker(DockerSettings),
    Aws(AwsSettings),
    Gcp(GcpSettings),
    Vsphere(VsphereSettings),
}

impl BackendSettings {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSettings::Fake(_) => BackendKind::Fake,
            BackendSettings::Docker(_) => BackendKind::Docker,
            BackendSettings::Aws(_) => BackendKind::Aws,
            BackendSettings::Gcp(_) => BackendKind::Gcp,
            BackendSettings::Vsphere(_) => BackendKind::Vsphere,
        }
    }
}

/// The fake backend keeps its instances in memory (or in Redis) and boots nothing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FakeSettings {
    /// How long a create call takes, to imitate a slow cloud.
    pub create_latency: Option<Duration>,
}

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
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AwsSettings {
    pub region: String,
    /// Another EC2 endpoint (for example a local test server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// A named profile of the shared AWS configuration; by default the standard chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Attempts per AWS call, the first included (the SDK's standard retry). Default: 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Where runners' credentials wait in SSM Parameter Store (SecureString) until their
    /// instance fetches them. Default: `/runnerctl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_prefix: Option<String>,
    /// KMS key that encrypts those parameters. Default: the account's `alias/aws/ssm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

impl AwsSettings {
    pub const DEFAULT_PARAMETER_PREFIX: &'static str = "/runnerctl";

    pub fn parameter_prefix(&self) -> &str {
        self.parameter_prefix
            .as_deref()
            .unwrap_or(Self::DEFAULT_PARAMETER_PREFIX)
            .trim_end_matches('/')
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct GcpSettings {
    pub project: String,
    pub zone: String,
    /// A service account key file; by default Application Default Credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VsphereSettings {
    pub url: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub datacenter: String,
    /// Accept a self-signed certificate.
    pub insecure: bool,
}

/// One entry of `runner_groups:`.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerGroup {
    pub name: String,
    pub organization: String,
    /// Scope the group to one repository: its runners register on that repository.
    pub repository: Option<String>,
    /// Repositories of the organization that may use the group; `None` means all of them.
    pub selected_repositories: Option<Vec<String>>,
    pub allow_public_repositories: bool,
    /// Workflows allowed to use the group (`owner/repo/.github/workflows/x.yml@ref`); empty means
    /// any workflow.
    pub selected_workflows: Vec<String>,
    pub max_runners: u32,
    pub min_runners: u32,
    pub labels: Vec<String>,
    pub backend: String,
    pub spec: InstanceSpec,
    /// A script replacing the default bootstrap of this group's instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_template: Option<PathBuf>,
}

/// What an instance of a group looks like, by backend kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InstanceSpec {
    Fake(FakeSpec),
    Docker(DockerSpec),
    Aws(AwsSpec),
    Gcp(GcpSpec),
    Vsphere(VsphereSpec),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FakeSpec {
    /// Free-form size shown in listings, for demos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
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

fn default_disk_gb() -> u32 {
    20
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AwsSpec {
    pub image_id: String,
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_instance_profile: Option<String>,
    #[serde(default = "default_disk_gb")]
    pub disk_size_gb: u32,
    #[serde(default = "default_aws_disk_type")]
    pub disk_type: String,
    /// Provisioned IOPS of the root volume (required by `io1` and `io2`; optional for `gp3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_iops: Option<u32>,
    /// Throughput of a `gp3` root volume in MiB/s (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_throughput_mbps: Option<u32>,
    /// Ask for spot capacity.
    #[serde(default)]
    pub spot: bool,
    /// When spot capacity is refused, take an on-demand instance instead.
    #[serde(default = "default_true")]
    pub spot_fallback_on_demand: bool,
}

fn default_aws_disk_type() -> String {
    "gp3".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GcpSpec {
    pub machine_type: String,
    /// Boot image, e.g. `projects/debian-cloud/global/images/family/debian-12`.
    pub image: String,
    #[serde(default = "default_disk_gb")]
    pub disk_size_gb: u32,
    #[serde(default = "default_gcp_disk_type")]
    pub disk_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnetwork: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default)]
    pub spot: bool,
}

fn default_gcp_disk_type() -> String {
    "pd-balanced".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VsphereSpec {
    /// The VM template to clone.
    pub template: String,
    #[serde(default = "default_vsphere_cpus")]
    pub cpus: u32,
    #[serde(default = "default_vsphere_memory")]
    pub memory_mb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

fn default_vsphere_cpus() -> u32 {
    2
}
fn default_vsphere_memory() -> u64 {
    4096
}

/// The one source of a secret written as `<key>`, `<key>_env` or `<key>_file`.
/// `Ok(None)` when none is set; an error when more than one is.
pub(crate) fn secret_source(
    inline: &Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<SecretSource>, ()> {
    match (inline, env, file) {
        (None, None, None) => Ok(None),
        (Some(s), None, None) => Ok(Some(SecretSource::Inline(s.clone()))),
        (None, Some(e), None) => Ok(Some(SecretSource::Env(e.clone()))),
        (None, None, Some(f)) => Ok(Some(SecretSource::File(f.clone()))),
        _ => Err(()),
    }
}
