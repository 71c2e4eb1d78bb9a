//! Configuration: one YAML file, read once at start-up, validated strictly.
//!
//! The types here serve both as the parsed file and as the effective configuration that
//! `config show` prints: every default is filled in by serde, secrets print redacted. Loading
//! ([`load_file`], [`parse`]) collects every problem with its path and, where the YAML parser
//! knows it, its line and column; nothing is read from the process environment here except by
//! [`SecretSource::resolve`], which commands call when they need a secret.

mod duration;
pub mod floor;
mod load;
mod locate;
mod schema;
mod secret;
pub mod simulation;
pub mod warm;

pub use duration::Duration;
pub use load::{
    covered, load_file, locate, parse, redact_url, sort as sort_problems, valid_label, valid_login,
    valid_repository, ConfigError, Loaded, Problem, Reader, Severity, DURATION_BOUNDS,
};
pub use locate::Location;
pub use schema::{BackendSettings, InstanceSpec, Schema, Typed};
pub use secret::{Secret, SecretError, SecretSource};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the configuration is read from when neither `--config` nor `RUNNERCTL_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/runnerctl/config.yaml";

/// The documented example configuration, shipped in the binary for `runnerctl config example`.
pub const EXAMPLE: &str = include_str!("../../config.example.yaml");

/// The documented example for Gitea and Forgejo (`runnerctl config example --forge gitea`).
pub const GITEA_EXAMPLE: &str = include_str!("../../contrib/gitea.example.yaml");

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
    /// The forge the runners serve: `github` (the default), `gitea` or `forgejo`.
    pub forge: ForgeKind,
    pub github: GithubConfig,
    /// Where Gitea (or Forgejo) is, with `forge: gitea` or `forge: forgejo`.
    pub gitea: GiteaConfig,
    pub redis: RedisConfig,
    pub webhook: WebhookConfig,
    pub healthcheck_interval: Duration,
    pub time_to_start: Duration,
    pub time_to_live: Duration,
    /// An instance or GitHub runner of ours with no record is deleted only after it has been
    /// seen so for this long (and never while it runs a job).
    pub cleanup_grace: Duration,
    pub queue: QueueConfig,
    /// `worker:`: what `runnerctl worker` serves besides its work.
    pub worker: WorkerConfig,
    /// The credential broker of VM backends (off without `broker.url`).
    pub broker: BrokerConfig,
    pub backends: Vec<BackendConfig>,
    pub runner_groups: Vec<RunnerGroup>,
    /// `simulation:`: the models `runnerctl simulate` runs against; no other command reads it
    /// (`config show` prints it only when it is not all defaults).
    #[serde(skip_serializing_if = "simulation::SimulationConfig::is_default")]
    pub simulation: simulation::SimulationConfig,
}

impl Config {
    pub fn group(&self, name: &str) -> Option<&RunnerGroup> {
        self.runner_groups.iter().find(|g| g.name == name)
    }
    pub fn backend(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// The forges runnerctl speaks to; each has its section (`github:`, `gitea:`; Forgejo, a fork
/// of Gitea, uses `gitea:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    #[default]
    Github,
    Gitea,
    Forgejo,
}

impl ForgeKind {
    pub const NAMES: [&'static str; 3] = ["github", "gitea", "forgejo"];

    pub fn parse(s: &str) -> Option<ForgeKind> {
        match s {
            "github" => Some(ForgeKind::Github),
            "gitea" => Some(ForgeKind::Gitea),
            "forgejo" => Some(ForgeKind::Forgejo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
        }
    }

    /// Whether it is Gitea or its fork.
    pub fn is_gitea(self) -> bool {
        matches!(self, ForgeKind::Gitea | ForgeKind::Forgejo)
    }
}

/// `gitea:`: where Gitea (or Forgejo) is and the token runnerctl uses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GiteaConfig {
    /// The instance's web root (`https://gitea.example.com`); the API is under `/api/v1`.
    pub url: String,
    /// An access token with the rights of the groups' scopes: `write:admin` for `instance`,
    /// `write:organization` for `organization`, `write:user` for `user`, `write:repository` for
    /// `repository`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// A scope's registration token is replaced after it was handed out (once no instance is
    /// mid-registration) and at least this often (Gitea 1.24 and later).
    pub token_rotation: Duration,
    /// The API budget every process shares for this token.
    #[serde(skip_serializing_if = "ApiBudget::is_default")]
    pub budget: ApiBudget,
}

impl Default for GiteaConfig {
    fn default() -> Self {
        GiteaConfig {
            url: String::new(),
            token: None,
            token_env: None,
            token_file: None,
            token_rotation: Duration::from_secs(24 * 3600),
            budget: ApiBudget::default(),
        }
    }
}

impl GiteaConfig {
    pub fn token_source(&self) -> Option<SecretSource> {
        secret_source(&self.token, &self.token_env, &self.token_file)
            .ok()
            .flatten()
    }

    /// The API root: `URL/api/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1", self.url.trim_end_matches('/'))
    }
}

/// The runner program an instance starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agent {
    /// GitHub's `actions/runner` (`config.sh`, `run.sh`).
    ActionsRunner,
    /// Gitea's `act_runner` (`act_runner register --ephemeral`, `act_runner daemon`).
    ActRunner,
}

/// Where a group's runners register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupScope {
    /// The organization (GitHub's and Gitea's).
    #[default]
    Organization,
    /// One repository (`repository:`).
    Repository,
    /// The user `organization` names, whose token runnerctl holds (Gitea only).
    User,
    /// The whole instance (Gitea only; an administrator's token).
    Instance,
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
    /// Several GitHub Apps instead of one (`app_id`, …): runners are registered with
    /// whichever has budget left, or with the one a group pins (`github_app`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<GithubApp>,
    /// The API budget every process shares per credential (`config show` prints it only when
    /// it is not all defaults).
    #[serde(skip_serializing_if = "ApiBudget::is_default")]
    pub budget: ApiBudget,
    /// GitHub's minimum runner version and the day it takes effect: a group whose
    /// `runner_version` is below it is refused from that day, and warned about before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_runner_version: Option<floor::RunnerFloor>,
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
            apps: Vec::new(),
            budget: ApiBudget::default(),
            min_runner_version: None,
        }
    }
}

/// One GitHub App of `github.apps`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GithubApp {
    /// What groups pin it by (`github_app`) and errors name it by.
    pub name: String,
    pub app_id: u64,
    pub installation_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
}

impl GithubApp {
    pub fn key_source(&self) -> Option<SecretSource> {
        secret_source(
            &self.private_key,
            &self.private_key_env,
            &self.private_key_file,
        )
        .ok()
        .flatten()
    }
}

/// `github.budget` and `gitea.budget`: the limits every process's calls share per credential
/// (a token, an App installation), kept in Redis. A field left out takes the forge's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ApiBudget {
    /// Ask the shared budget before each call (`false`: call at once, react to limits only).
    pub enabled: bool,
    /// Points per minute per endpoint class (GitHub: 900; Gitea: 6000). runnerctl spends at
    /// most 95% of it in any minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_per_minute: Option<u32>,
    /// Points a write (POST, PATCH, PUT, DELETE) costs (GitHub: 5; Gitea: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_points: Option<u32>,
    /// Points a read (GET) costs (1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_points: Option<u32>,
    /// Requests in flight at once, over every process (GitHub: 100; Gitea: 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

impl Default for ApiBudget {
    fn default() -> Self {
        ApiBudget {
            enabled: true,
            points_per_minute: None,
            write_points: None,
            read_points: None,
            max_concurrent: None,
        }
    }
}

/// An [`ApiBudget`] with its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    pub points_per_minute: u32,
    pub write_points: u32,
    pub read_points: u32,
    pub max_concurrent: u32,
}

impl ApiBudget {
    pub fn is_default(&self) -> bool {
        *self == ApiBudget::default()
    }

    /// The limits, with the forge's defaults for what is not set: GitHub's published
    /// secondary limits, or (Gitea has none of its own) generous ones that keep a proxy's at bay.
    pub fn limits(&self, forge: ForgeKind) -> ApiLimits {
        let (ppm, write, conc) = if forge.is_gitea() {
            (6000, 1, 50)
        } else {
            (900, 5, 100)
        };
        ApiLimits {
            points_per_minute: self.points_per_minute.unwrap_or(ppm),
            write_points: self.write_points.unwrap_or(write),
            read_points: self.read_points.unwrap_or(1),
            max_concurrent: self.max_concurrent.unwrap_or(conc),
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
    /// With `rediss://`: the CA (PEM) that signed the server's certificate, instead of the
    /// system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// With `rediss://`: a client certificate and its key (PEM), for mutual TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// With `rediss://`: the name the server's certificate carries, when runnerctl connects
    /// by another (an address, a tunnel, the master a sentinel names by its address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// An ACL user (Redis 6+); its password below. Both override the URL's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Sentinel: the master is whichever server these sentinels name; `url` then gives the
    /// scheme, credentials and database, its host and port being ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    /// Redis Cluster: some of its nodes (`host:port`); `url` then gives the scheme and
    /// credentials only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// Replicas that must have a delivery `serve` queued before it answers 202 (Redis `WAIT`);
    /// 0: answered once the master has it.
    pub wait_replicas: u32,
    /// How long `serve` waits for them; short of them it answers 503 (the forge redelivers or
    /// the health check finds the job).
    pub wait_timeout: Duration,
}

/// Whether `name` can be a TLS server name: a DNS name or an IP address.
pub fn is_tls_server_name(name: &str) -> bool {
    rustls::pki_types::ServerName::try_from(name).is_ok()
}

/// Why a Redis Cluster takes no TLS server name.
pub const CLUSTER_SERVER_NAME: &str = "tls_server_name does not apply to a Redis Cluster: each node is verified by the name it announces (set `cluster-announce-hostname` and `cluster-preferred-endpoint-type hostname` on the nodes)";

/// `redis.sentinel:`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the master under (`sentinel monitor NAME …`).
    pub master: String,
    /// The sentinels, `host:port` each (default port 26379).
    pub addresses: Vec<String>,
    /// The sentinels' own user and password (`requirepass` in their configuration), when they
    /// have one; the master's are `redis.username` and `redis.password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// TLS to the sentinels (their `tls-port`), with `redis.ca_file` and the client
    /// certificate. Default: plain TCP.
    #[serde(default)]
    pub tls: bool,
}

impl SentinelConfig {
    pub fn password_source(&self) -> Option<SecretSource> {
        secret_source(&self.password, &self.password_env, &self.password_file)
            .ok()
            .flatten()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            url_env: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            tls_server_name: None,
            username: None,
            password: None,
            password_env: None,
            password_file: None,
            sentinel: None,
            cluster: Vec::new(),
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }
}

impl RedisConfig {
    pub fn password_source(&self) -> Option<SecretSource> {
        secret_source(&self.password, &self.password_env, &self.password_file)
            .ok()
            .flatten()
    }

    /// Where the URL comes from: `url_env` when set, else `url`.
    pub fn url_source(&self) -> SecretSource {
        match &self.url_env {
            Some(name) => SecretSource::Env(name.clone()),
            None => SecretSource::Inline(Secret::new(self.url.clone())),
        }
    }
}

/// `worker:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Where `runnerctl worker` serves `/metrics` (Prometheus); off without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// How long a worker holds a scale set's session lease without renewing it (renewed every
    /// third of it); a dead holder's scale set is taken over within twice this.
    pub scale_set_lease: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            metrics_listen: None,
            scale_set_lease: Duration::from_secs(30),
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
    /// Connections open at once from one address (IPv6: one /64); past it, 503 and closed.
    pub max_connections_per_address: u32,
    /// Deliveries verified and queued at once (each once its body has arrived); one past it
    /// waits up to 5 s for a slot, then gets 503. Bodies arriving at once share a budget of
    /// `max_in_flight` × `max_body_kib`.
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
            max_connections: 2048,
            max_connections_per_address: 64,
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

/// `broker:`: where VM instances redeem their one-time token for their runner's credential.
/// Every key but `listen` is required once `url` is set; without `url` the broker is off and a
/// VM backend delivers credentials its own way (EC2: SSM Parameter Store).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct BrokerConfig {
    /// The address `serve` listens on for the broker (TLS). Default: `0.0.0.0:8443`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The URL instances fetch from, `https://HOST:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The endpoint's certificate (PEM, chain) and key; both or neither. Without them runnerctl
    /// makes a self-signed certificate for the URL's host, kept in Redis (its key sealed with
    /// the broker's key) and pinned by the instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// The CA instances pin (PEM). Default: the certificate itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The AES-256 key sealing credentials in Redis: 32 bytes in base64. The first key of
    /// the ring seals; `old_keys` still open, during a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_keys: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_keys_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_keys_file: Option<PathBuf>,
    /// Where Google's keys for Compute Engine identity tokens are. Default:
    /// `https://www.googleapis.com/oauth2/v3/certs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gce_jwks_url: Option<String>,
    /// AWS's public certificates (PEM) of the regions in use, to check EC2 instances' signed
    /// identity documents. Without it EC2 credentials are bound to the address only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_identity_certs_file: Option<PathBuf>,
}

impl BrokerConfig {
    pub const DEFAULT_LISTEN: &'static str = "0.0.0.0:8443";

    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or(Self::DEFAULT_LISTEN)
    }

    pub fn key_source(&self) -> Option<SecretSource> {
        secret_source(&self.key, &self.key_env, &self.key_file)
            .ok()
            .flatten()
    }

    pub fn old_keys_source(&self) -> Option<SecretSource> {
        secret_source(&self.old_keys, &self.old_keys_env, &self.old_keys_file)
            .ok()
            .flatten()
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
    /// Its kind (`fake`, `docker`, `aws`).
    pub fn kind(&self) -> &'static str {
        self.settings.kind()
    }
}

/// One entry of `runner_groups:`.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerGroup {
    pub name: String,
    /// Where its runners register (`organization` unless `repository` is set).
    pub scope: GroupScope,
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
    /// Jobs' containers (`container:`, `services:`, container steps) run as systemd-nspawn
    /// guests through runnerctl's container hooks on the runner VM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_jobs: Option<ContainerJobs>,
    /// The GitHub App (a `github.apps` name) its runners are registered with; `None`:
    /// whichever has budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_app: Option<String>,
    /// Instances kept ready before any job asks (see `config::warm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<warm::WarmPool>,
    /// Where its jobs come from: webhooks, or a GitHub runner scale set's message queue.
    pub mode: GroupMode,
    /// The scale set (`mode: scale_set`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_set: Option<ScaleSetConfig>,
    /// Its backends in the order runners are made on them (one: `backend` with `spec`,
    /// which is all `config show` prints then).
    #[serde(skip_serializing_if = "one_backend")]
    pub backends: Vec<BackendChoice>,
    /// When a backend is left out after failing (`failover:`).
    #[serde(skip_serializing_if = "Failover::is_default")]
    pub failover: Failover,
    /// The runner version its image (or template) carries, checked against
    /// `github.min_runner_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner_version: Option<String>,
}

fn one_backend(b: &[BackendChoice]) -> bool {
    b.len() <= 1
}

/// One of a group's backends, in order (`backends:`).
#[derive(Debug, Clone, Serialize)]
pub struct BackendChoice {
    /// A name under `backends`.
    pub name: String,
    /// At most this many of the group's runners on it; the group's `max_runners` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_runners: Option<u32>,
    pub spec: InstanceSpec,
}

/// `failover:` of a group: a backend's circuit breaker. `failures` create failures within
/// `window` open it for `cool_down`, then one create probes it; a permanent failure (bad
/// template, no permission) opens it until the configuration changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Failover {
    pub failures: u32,
    pub window: Duration,
    pub cool_down: Duration,
}

impl Failover {
    pub fn is_default(&self) -> bool {
        *self == Failover::default()
    }
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            failures: 3,
            window: Duration::from_secs(300),
            cool_down: Duration::from_secs(120),
        }
    }
}

/// `mode:` of a runner group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// `workflow_job` webhooks to `serve` (GitHub gives a job to any idle runner that fits).
    #[default]
    Webhook,
    /// A GitHub runner scale set: a worker long-polls its message queue; GitHub assigns each
    /// job to the scale set and a runner is made for it. No webhook endpoint needed.
    ScaleSet,
}

/// `scale_set:` of a runner group in `mode: scale_set`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSetConfig {
    /// The scale set's name, the label workflows ask for (`runs-on: NAME`); default: the
    /// group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The GitHub runner group it belongs to; default: the runner group of the group's name
    /// for an organization's group (`groups sync` makes it), `Default` for a repository's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_group: Option<String>,
}

/// `container_jobs:` of a runner group: the VM's runner gets runnerctl's container hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerJobs {
    /// Sets `ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER`: a job without `container:` is refused.
    #[serde(default)]
    pub require_job_container: bool,
    /// An OCI layout of preloaded images on the VM image, looked in before any registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<String>,
}

impl RunnerGroup {
    /// Whether its jobs come from a scale set.
    pub fn scale_set_mode(&self) -> bool {
        self.mode == GroupMode::ScaleSet
    }

    /// Its scale set's name (`mode: scale_set`).
    pub fn scale_set_name(&self) -> &str {
        self.scale_set
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .unwrap_or(&self.name)
    }

    /// The GitHub runner group its scale set belongs to.
    pub fn scale_set_runner_group(&self) -> String {
        match self.scale_set.as_ref().and_then(|s| s.runner_group.clone()) {
            Some(g) => g,
            None if self.repository.is_some() => "Default".into(),
            None => self.name.clone(),
        }
    }

    /// Whether jobs of repositories owned by `owner` may go to this group: its organization's,
    /// or any owner's for an instance-wide group that names no organization.
    pub fn serves_owner(&self, owner: &str) -> bool {
        (self.scope == GroupScope::Instance && self.organization.is_empty())
            || self.organization.eq_ignore_ascii_case(owner)
    }

    /// Its organization (or user) in listings; `*` for an instance-wide group serving any.
    pub fn owner_label(&self) -> &str {
        if self.organization.is_empty() {
            "*"
        } else {
            &self.organization
        }
    }
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
