//! Wiring: the one place that builds the system from a configuration, for every command. It
//! resolves secrets, connects to Redis, picks the forge and the backends (through
//! `backend::kinds`, never by listing kinds here) and hands the domain what it needs. Commands
//! (`cli`, `demo`) call it; nothing below it does.

use crate::backend::{self, Backend, BuildContext, StandIn};
use crate::broker::endpoint::Endpoint;
use crate::broker::{Broker, Link, Vault};
use crate::budget::{Budget, Limits, RedisBudget};
use crate::config::{self, Config, ConfigError, Loaded, Problem, QueueConfig, Secret, Severity};
use crate::error::{Error, Result};
use crate::forge::gitea::Gitea;
use crate::forge::github::actions::ActionsService;
use crate::forge::github::{Auth, GitHub};
use crate::forge::scaleset::{Routed, ScaleSetForge, ScaleSetSpec, ScaleSets};
use crate::forge::Forge;
use crate::manager::Manager;
use crate::queue::{Queue, QueueOptions};
use crate::store::Conn;
use crate::store::{self, RedisStore};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Reads and validates a configuration file against the backend kinds of this build.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    config::load_file(path, &backend::schemas())
}

/// Validates configuration text against the backend kinds of this build.
pub fn parse(text: &str, file: &str) -> Result<Loaded, ConfigError> {
    config::parse(text, file, &backend::schemas())
}

/// The queue's options from the `queue:` section.
pub fn queue_options(q: &QueueConfig) -> QueueOptions {
    QueueOptions {
        visibility_timeout: q.visibility_timeout.as_std(),
        max_attempts: q.max_attempts,
        retry_base: q.retry_base.as_std(),
        retry_max: q.retry_max.as_std(),
        handler_deadline: q.handler_deadline.as_std(),
        ..QueueOptions::default()
    }
}

/// The key the Redis URL comes from, for messages.
fn redis_url_key(config: &Config) -> &'static str {
    if config.redis.url_env.is_some() {
        "redis.url_env"
    } else {
        "redis.url"
    }
}

/// The Redis URL of the configuration, its secret resolved.
pub fn redis_url(config: &Config) -> Result<String> {
    let key = redis_url_key(config);
    let url = config
        .redis
        .url_source()
        .resolve()
        .map(|s| s.expose().to_string())
        .map_err(|e| Error::Usage(format!("{key}: {e}")))?;
    check_redis_url(&url).map_err(|why| Error::Usage(format!("{key}: {why}")))?;
    Ok(url)
}

/// Whether a Redis URL parses and this build can connect to it (a `rediss://` URL needs TLS).
pub fn check_redis_url(url: &str) -> std::result::Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("`{}` cannot be used: {e}", config::redact_url(url)))
}

/// The configuration's Redis: its URL, TLS files and ACL password, read.
pub fn redis_target(config: &Config) -> Result<store::RedisTarget> {
    let r = &config.redis;
    let read = |key: &str, p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>> {
        p.as_ref()
            .map(|p| {
                std::fs::read(p).map_err(|e| {
                    Error::Usage(format!("redis.{key}: cannot read `{}`: {e}", p.display()))
                })
            })
            .transpose()
    };
    let client_pem = match (
        read("client_cert_file", &r.client_cert_file)?,
        read("client_key_file", &r.client_key_file)?,
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let resolve = |key: &str, source: Option<config::SecretSource>| {
        source
            .map(|s| s.resolve().map_err(|e| Error::Usage(format!("{key}: {e}"))))
            .transpose()
    };
    let password = resolve("redis.password", r.password_source())?;
    let sentinel_password = resolve(
        "redis.sentinel.password",
        r.sentinel.as_ref().and_then(|s| s.password_source()),
    )?;
    Ok(store::RedisTarget {
        url: redis_url(config)?,
        ca_pem: read("ca_file", &r.ca_file)?,
        client_pem,
        username: r.username.clone(),
        password,
        sentinel: r.sentinel.as_ref().map(|s| store::SentinelTarget {
            sentinels: s
                .addresses
                .iter()
                .map(|a| {
                    if a.contains(':') {
                        a.clone()
                    } else {
                        format!("{a}:26379")
                    }
                })
                .collect(),
            master: s.master.clone(),
            username: s.username.clone(),
            password: sentinel_password,
            tls: s.tls,
        }),
        cluster: (!r.cluster.is_empty()).then(|| r.cluster.clone()),
        tls_server_name: r.tls_server_name.clone(),
    })
}

/// A connection to the configuration's Redis, its keys in today's layout.
pub async fn connect(config: &Config) -> Result<Conn> {
    let conn = store::connect_to(&redis_target(config)?).await?;
    store::migrate_layout(&conn, &config.name).await?;
    Ok(conn)
}

/// The forge of the configuration (GitHub, Gitea or Forgejo), its credentials resolved, its
/// calls on the shared API budget in the configuration's Redis (connected on first call).
pub fn forge(config: &Config) -> Result<Arc<dyn Forge>> {
    let budget = redis_target(config)
        .ok()
        .map(|t| Arc::new(RedisBudget::lazy(t)) as Arc<dyn Budget>);
    forge_with(config, budget)
}

/// The forge of the configuration on a given budget (`None`: none).
pub fn forge_with(config: &Config, budget: Option<Arc<dyn Budget>>) -> Result<Arc<dyn Forge>> {
    match config.forge {
        config::ForgeKind::Github => {
            let gh = Arc::new(github_with(config, budget)?);
            let routes = scale_set_routes_on(config, &gh)?;
            if routes.is_empty() {
                return Ok(gh);
            }
            Ok(Arc::new(ScaleSetForge::new(gh, routes)))
        }
        kind => {
            let token = config
                .gitea
                .token_source()
                .ok_or_else(|| Error::Usage("gitea.token: required".into()))?
                .resolve()
                .map_err(|e| Error::Usage(format!("gitea.token: {e}")))?;
            let name = if kind == config::ForgeKind::Forgejo {
                "Forgejo"
            } else {
                "Gitea"
            };
            let mut g = Gitea::new(&config.gitea.url, token, name)?;
            if let Some(b) = budget.filter(|_| config.gitea.budget.enabled) {
                g = g.with_budget(b, limits(&config.gitea.budget, kind));
            }
            Ok(Arc::new(g))
        }
    }
}

/// The scale sets of the configuration's `mode: scale_set` groups (none for other forges),
/// each with its scope's Actions service, on a GitHub client of its own.
pub fn scale_set_routes(config: &Config) -> Result<Vec<Arc<Routed>>> {
    if config.forge != config::ForgeKind::Github
        || !config.runner_groups.iter().any(|g| g.scale_set_mode())
    {
        return Ok(Vec::new());
    }
    let budget = redis_target(config)
        .ok()
        .map(|t| Arc::new(RedisBudget::lazy(t)) as Arc<dyn Budget>);
    scale_set_routes_on(config, &Arc::new(github_with(config, budget)?))
}

/// The scale sets over a given GitHub client: one Actions service per organization or
/// repository.
fn scale_set_routes_on(config: &Config, gh: &Arc<GitHub>) -> Result<Vec<Arc<Routed>>> {
    let mut services: Vec<(crate::forge::Scope, Arc<dyn ScaleSets>)> = Vec::new();
    let mut routes = Vec::new();
    for g in config.runner_groups.iter().filter(|g| g.scale_set_mode()) {
        let parent = Manager::base_scope(g);
        let service = match services.iter().find(|(s, _)| *s == parent) {
            Some((_, svc)) => svc.clone(),
            None => {
                let svc: Arc<dyn ScaleSets> =
                    Arc::new(ActionsService::new(gh.clone(), parent.clone())?);
                services.push((parent.clone(), svc.clone()));
                svc
            }
        };
        let spec = ScaleSetSpec {
            name: g.scale_set_name().to_string(),
            runner_group: g.scale_set_runner_group(),
            labels: g.labels.clone(),
        };
        routes.push(Arc::new(Routed::new(&g.name, parent, spec, service)));
    }
    Ok(routes)
}

/// One listener per `mode: scale_set` group, for a worker named `holder`.
pub fn listeners(
    config: &Config,
    conn: Conn,
    queue: &Queue,
    holder: &str,
) -> Result<Vec<crate::listener::Listener>> {
    let routes = scale_set_routes(config)?;
    let groups = Arc::new(config.runner_groups.clone());
    Ok(routes
        .into_iter()
        .filter_map(|r| {
            let group = config.group(&r.group)?.clone();
            Some(crate::listener::Listener {
                group,
                manager: config.name.clone(),
                groups: groups.clone(),
                routed: r,
                store: RedisStore::new(conn.clone(), &config.name),
                queue: queue.clone(),
                holder: holder.to_string(),
                lease: config.worker.scale_set_lease.as_std(),
            })
        })
        .collect())
}

/// A budget section's limits, the forge's defaults filled in.
pub fn limits(b: &config::ApiBudget, kind: config::ForgeKind) -> Limits {
    let l = b.limits(kind);
    Limits {
        points_per_minute: l.points_per_minute,
        write_points: l.write_points,
        read_points: l.read_points,
        max_concurrent: l.max_concurrent,
    }
}

/// The GitHub forge of a `forge: github` configuration, without a budget.
pub fn github(config: &Config) -> Result<GitHub> {
    github_with(config, None)
}

fn github_with(config: &Config, budget: Option<Arc<dyn Budget>>) -> Result<GitHub> {
    let key = |path: String, src: config::SecretSource| {
        src.resolve()
            .map_err(|e| Error::Usage(format!("{path}: {e}")))
    };
    let auths = if config.github.apps.is_empty() {
        let auth = match config.github.auth() {
            Some(config::GithubAuth::Token(src)) => Auth::Token(key("github.token".into(), src)?),
            Some(config::GithubAuth::App {
                app_id,
                installation_id,
                private_key,
            }) => Auth::App {
                app_id,
                installation_id,
                private_key: key("github.private_key".into(), private_key)?,
            },
            None => return Err(Error::Usage("github: no authentication configured".into())),
        };
        vec![("default".to_string(), auth)]
    } else {
        let mut v = Vec::new();
        for (i, a) in config.github.apps.iter().enumerate() {
            let src = a
                .key_source()
                .ok_or_else(|| Error::Usage(format!("github.apps[{i}].private_key: required")))?;
            v.push((
                a.name.clone(),
                Auth::App {
                    app_id: a.app_id,
                    installation_id: a.installation_id,
                    private_key: key(format!("github.apps[{i}].private_key"), src)?,
                },
            ));
        }
        v
    };
    let gh = GitHub::with_apps(&config.github.base_url, auths)?;
    Ok(match budget.filter(|_| config.github.budget.enabled) {
        Some(b) => gh.with_budget(b, limits(&config.github.budget, config.forge)),
        None => gh,
    })
}

/// How the configuration's forge signs and shapes its webhooks.
pub fn webhook_scheme(config: &Config) -> &'static dyn crate::forge::WebhookScheme {
    match config.forge {
        config::ForgeKind::Github => &crate::forge::github::webhook::GITHUB,
        config::ForgeKind::Gitea | config::ForgeKind::Forgejo => {
            &crate::forge::gitea::webhook::GITEA
        }
    }
}

/// The runner store of the configuration, on a connection to its Redis.
pub fn store(config: &Config, conn: Conn) -> RedisStore {
    RedisStore::new(conn, &config.name)
}

/// The task queue of the configuration.
pub fn queue(config: &Config, conn: Conn) -> Queue {
    Queue::new(conn, &config.name, queue_options(&config.queue))
}

/// What builds each backend of a configuration: its kind and its context, secrets resolved.
fn backend_context(
    config: &Config,
    b: &config::BackendConfig,
    redis: Option<Conn>,
    stand_in: Option<Arc<dyn StandIn>>,
) -> Result<(&'static dyn backend::Kind, BuildContext)> {
    let kind = backend::kind(b.kind()).ok_or_else(|| {
        Error::Usage(format!(
            "backends.{}.kind: `{}` is not built into this binary",
            b.name,
            b.kind()
        ))
    })?;
    let mut secrets = BTreeMap::new();
    for (key, source) in kind.schema().secrets(&b.settings) {
        let value = source
            .resolve()
            .map_err(|e| Error::Usage(format!("backends.{}.{key}: {e}", b.name)))?;
        secrets.insert(key.to_string(), value);
    }
    Ok((
        kind,
        BuildContext {
            name: b.name.clone(),
            manager: config.name.clone(),
            settings: b.settings.clone(),
            secrets,
            redis,
            stand_in,
        },
    ))
}

/// Every backend some group uses. One that cannot be reached now is reported and connected
/// again on its next use (its groups' tasks wait meanwhile).
pub async fn backends(
    config: &Config,
    conn: &Conn,
    stand_in: Option<Arc<dyn StandIn>>,
) -> Result<HashMap<String, Arc<dyn Backend>>> {
    let mut out: HashMap<String, Arc<dyn Backend>> = HashMap::new();
    for b in &config.backends {
        if !config.runner_groups.iter().any(|g| g.backend == b.name) {
            continue;
        }
        let (kind, cx) = backend_context(config, b, Some(conn.clone()), stand_in.clone())?;
        let built = match kind.build(cx.clone()).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(backend = %b.name, error = %e, "backend unavailable; will connect again when it is needed");
                Arc::new(backend::Reconnecting::new(kind, cx))
            }
        };
        out.insert(b.name.clone(), Arc::new(backend::Metered::new(built)));
    }
    Ok(out)
}

/// Every backend some group uses (for `doctor`): each with its build's result, so one that
/// cannot be reached is reported by name. Redis is used when it answers within 5 s (the fake
/// backend keeps its instances there; without it, it would list none).
pub async fn probe_backends(config: &Config) -> Vec<(String, Result<Arc<dyn Backend>>)> {
    let redis = tokio::time::timeout(std::time::Duration::from_secs(5), connect(config))
        .await
        .ok()
        .and_then(Result::ok);
    let mut out = Vec::new();
    for b in &config.backends {
        if !config.runner_groups.iter().any(|g| g.backend == b.name) {
            continue;
        }
        let built = match backend_context(config, b, redis.clone(), None) {
            Ok((kind, cx)) => kind.build(cx).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        out.push((b.name.clone(), built));
    }
    out
}

/// The manager of a configuration: Redis, the forge and every backend of its groups.
pub async fn manager(config: Arc<Config>) -> Result<Manager> {
    let conn = connect(&config).await?;
    let forge = forge_with(&config, Some(Arc::new(RedisBudget::on(conn.clone()))))?;
    // A fake backend's runners are played by the stand-in when the forge is the fake GitHub;
    // against a real forge the stand-in does nothing.
    manager_with(config, conn, forge, Some(Arc::new(StandInRunner))).await
}

/// The manager over given parts (the demo brings its fake GitHub and a stand-in runner).
pub async fn manager_with(
    config: Arc<Config>,
    conn: Conn,
    forge: Arc<dyn Forge>,
    stand_in: Option<Arc<dyn StandIn>>,
) -> Result<Manager> {
    let backends = backends(&config, &conn, stand_in).await?;
    let broker = broker_link(&config, &conn).await?;
    let mut m = Manager::new(
        config.clone(),
        RedisStore::new(conn, &config.name),
        forge,
        backends,
    );
    m.broker = broker;
    Ok(m)
}

/// The broker's key ring: `broker.key` first (it seals), then `broker.old_keys`.
pub fn broker_vault(config: &Config) -> Result<Vault> {
    let b = &config.broker;
    let mut keys = Vec::new();
    for (key, source) in [("key", b.key_source()), ("old_keys", b.old_keys_source())] {
        if let Some(s) = source {
            let text = s
                .resolve()
                .map_err(|e| Error::Usage(format!("broker.{key}: {e}")))?;
            keys.extend(Vault::parse_ring(&text));
        }
    }
    Vault::new(&keys).map_err(|e| Error::Usage(format!("broker.key: {e}")))
}

/// The broker as the manager uses it, when the configuration has one.
pub async fn broker_link(config: &Config, conn: &Conn) -> Result<Option<Link>> {
    let b = &config.broker;
    let Some(url) = &b.url else {
        return Ok(None);
    };
    let vault = broker_vault(config)?;
    let ca = b.ca_file.as_ref().or(b.tls_cert_file.as_ref());
    let ca_pem = match ca {
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            Error::Usage(format!(
                "broker.ca_file: cannot read `{}`: {e}",
                p.display()
            ))
        })?,
        // No certificate of the operator's: instances pin the one runnerctl made.
        None => managed_tls(config, conn, &vault).await?.cert,
    };
    Ok(Some(Link {
        broker: Broker::new(conn.clone(), &config.name, vault)
            .with_identity_checks(identity_checks(config)?),
        url: url.clone(),
        ca_pem,
    }))
}

/// The broker's managed certificate (no `tls_cert_file`): from Redis, or made now.
async fn managed_tls(
    config: &Config,
    conn: &Conn,
    vault: &Vault,
) -> Result<crate::broker::tls::Pem> {
    let url = config.broker.url.as_deref().unwrap_or_default();
    let host = crate::broker::tls::url_host(url)
        .ok_or_else(|| Error::Usage(format!("broker.url: `{url}` names no host")))?;
    crate::broker::tls::managed(conn, &config.name, vault, &host)
        .await
        .map_err(|e| match e {
            crate::broker::BrokerError::Redis(r) => Error::Store(crate::store::StoreError::from(r)),
            other => Error::Problem(other.to_string()),
        })
}

/// What `serve` runs the broker's endpoint with.
pub struct BrokerServer {
    pub tls: Arc<rustls::ServerConfig>,
    pub endpoint: Arc<Endpoint>,
}

/// The broker's endpoint for `serve`: its TLS (the operator's files, or the managed
/// certificate) and state; `None` when the configuration has no broker.
pub async fn broker_endpoint(config: &Config, conn: &Conn) -> Result<Option<BrokerServer>> {
    let b = &config.broker;
    if !b.enabled() {
        return Ok(None);
    }
    let vault = broker_vault(config)?;
    let tls = match (&b.tls_cert_file, &b.tls_key_file) {
        (Some(cert), Some(key)) => {
            crate::broker::endpoint::tls_config(cert, key).map_err(Error::Usage)?
        }
        _ => {
            let pem = managed_tls(config, conn, &vault).await?;
            crate::broker::tls::server_config(&pem, "the broker's managed certificate")
                .map_err(Error::Problem)?
        }
    };
    let broker = Broker::new(conn.clone(), &config.name, vault)
        .with_identity_checks(identity_checks(config)?);
    Ok(Some(BrokerServer {
        tls,
        endpoint: Arc::new(Endpoint::new(broker)),
    }))
}

/// What checks signed instance identities at the broker: one per cloud this build has.
#[allow(unused_variables)] // without the clouds' features
fn identity_checks(config: &Config) -> Result<Vec<Arc<dyn crate::broker::IdentityCheck>>> {
    #[allow(unused_mut)]
    let mut checks: Vec<Arc<dyn crate::broker::IdentityCheck>> = Vec::new();
    #[cfg(feature = "gcp")]
    if let Some(url) = &config.broker.url {
        checks.push(Arc::new(crate::broker::identity::GceIdentity::new(
            url,
            config.broker.gce_jwks_url.as_deref(),
        )));
    }
    #[cfg(feature = "aws")]
    if let Some(path) = &config.broker.aws_identity_certs_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "broker.aws_identity_certs_file: cannot read `{}`: {e}",
                path.display()
            ))
        })?;
        let check = crate::broker::identity::Ec2Identity::from_pem(&text).map_err(|e| {
            Error::Usage(format!(
                "broker.aws_identity_certs_file: `{}`: {e}",
                path.display()
            ))
        })?;
        checks.push(Arc::new(check));
    }
    Ok(checks)
}

/// The webhook secret `serve` verifies deliveries with, resolved and checked.
pub fn webhook_secret(config: &Config) -> Result<Secret> {
    let Some(source) = config.webhook.secret_source() else {
        return Err(Error::Usage(
            "`serve` refuses to start without a webhook secret: set `webhook.secret_env` or `webhook.secret_file`".into(),
        ));
    };
    let secret = source
        .resolve()
        .map_err(|e| Error::Usage(format!("webhook secret: {e}")))?;
    config::webhook_secret_strength(&secret)
        .map_err(|why| Error::Usage(format!("webhook.secret: {why}")))?;
    Ok(secret)
}

/// The bearer token of `/metrics` on the webhook listener, when one is configured.
pub fn metrics_token(config: &Config) -> Result<Option<Secret>> {
    match config.webhook.metrics_token_source() {
        Some(s) => {
            Ok(Some(s.resolve().map_err(|e| {
                Error::Usage(format!("webhook.metrics_token: {e}"))
            })?))
        }
        None => Ok(None),
    }
}

/// What fails at run time though the file is valid: secrets whose variable is unset or whose
/// file cannot be read, a Redis URL that will not parse or needs what this build lacks. Each
/// problem names the key that says where the value comes from (`github.token_env`). Reads the
/// environment and the file system, never the network.
pub fn preflight(config: &Config) -> Vec<Problem> {
    let mut secrets: Vec<(String, Option<config::SecretSource>)> = Vec::new();
    match config.github.auth() {
        _ if config.forge.is_gitea() => {
            secrets.push(("gitea.token".into(), config.gitea.token_source()))
        }
        Some(config::GithubAuth::Token(s)) => secrets.push(("github.token".into(), Some(s))),
        Some(config::GithubAuth::App { private_key, .. }) => {
            secrets.push(("github.private_key".into(), Some(private_key)))
        }
        None => {
            for (i, a) in config.github.apps.iter().enumerate() {
                secrets.push((format!("github.apps[{i}].private_key"), a.key_source()));
            }
        }
    }
    secrets.push(("redis.password".into(), config.redis.password_source()));
    secrets.push(("webhook.secret".into(), config.webhook.secret_source()));
    secrets.push((
        "webhook.metrics_token".into(),
        config.webhook.metrics_token_source(),
    ));
    for b in &config.backends {
        if let Some(kind) = backend::kind(b.kind()) {
            for (k, source) in kind.schema().secrets(&b.settings) {
                secrets.push((format!("backends.{}.{k}", b.name), Some(source)));
            }
        }
    }
    let mut out = Vec::new();
    let mut problem = |path: String, message: String| {
        out.push(Problem {
            severity: Severity::Error,
            path,
            message,
            line: None,
            column: None,
        })
    };
    for (key, source) in secrets {
        let Some(source) = source else { continue };
        let key = match &source {
            config::SecretSource::Inline(_) => key,
            config::SecretSource::Env(_) => format!("{key}_env"),
            config::SecretSource::File(_) => format!("{key}_file"),
        };
        match source.resolve() {
            Err(e) => problem(key, e.to_string()),
            Ok(s) if key.starts_with("webhook.secret") => {
                if let Err(why) = config::webhook_secret_strength(&s) {
                    problem(key, why);
                }
            }
            Ok(_) => {}
        }
    }
    if config.broker.enabled() {
        if let Err(e) = broker_vault(config) {
            let why = e.to_string();
            let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w);
            problem("broker.key".into(), why.to_string());
        }
        if let (Some(cert), Some(key)) = (&config.broker.tls_cert_file, &config.broker.tls_key_file)
        {
            if let Err(why) = crate::broker::endpoint::tls_config(cert, key) {
                problem("broker.tls_cert_file".into(), why);
            }
        }
    }
    let key = redis_url_key(config);
    let url = config.redis.url_source().resolve();
    if let Err(why) = url
        .map_err(|e| e.to_string())
        .and_then(|u| check_redis_url(u.expose()))
    {
        problem(key.into(), why);
    }
    out
}

/// The demo's stand-in runner: on the fake backend, a runner whose credential is the fake
/// GitHub's comes online there, as a real runner process would. With the credential broker it
/// first plays the VM's part: it runs the instance's own fetch hook (curl, the CA pinned) to
/// redeem its one-time token. Against a real forge it does nothing.
pub struct StandInRunner;

impl StandInRunner {
    /// Runs the bootstrap's fetch hook as the instance would, its files in a directory of its
    /// own; the credential it fetched.
    async fn fetch(runner: &str, boot: &crate::bootstrap::BootData) -> Option<Secret> {
        use crate::bootstrap::{BROKER_CA, BROKER_TOKEN, FETCH_CREDENTIAL_HOOK, JITCONFIG, TOKEN};
        let file = |p: &str| {
            boot.files
                .iter()
                .find(|f| f.path == p)
                .map(|f| f.content.clone())
        };
        if let Some(credential) = file(JITCONFIG).or_else(|| file(TOKEN)) {
            return Some(credential);
        }
        let (hook, token, ca) = (
            file(FETCH_CREDENTIAL_HOOK)?,
            file(BROKER_TOKEN)?,
            file(BROKER_CA)?,
        );
        let dir = std::env::temp_dir().join(format!(
            "runnerctl-stand-in-{runner}-{:08x}",
            fastrand::u32(..)
        ));
        let prepared = dir.clone();
        let script = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::PermissionsExt;
            let dir = prepared;
            std::fs::create_dir_all(dir.join("run")).ok()?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
            let (ca_path, token_path) = (dir.join("broker-ca.pem"), dir.join("broker-token"));
            std::fs::write(&ca_path, ca.expose()).ok()?;
            std::fs::write(&token_path, token.expose()).ok()?;
            let hook = hook
                .expose()
                .replace(BROKER_CA, ca_path.to_str()?)
                .replace(BROKER_TOKEN, token_path.to_str()?);
            let script = dir.join("fetch-credential");
            std::fs::write(&script, hook).ok()?;
            Some(script)
        })
        .await
        .ok()
        .flatten();
        // The hook runs as long as the instance would wait (`time_to_start`): it dies with this
        // process (a one-shot command that made the runner exits without waiting for it), and
        // holds none of its output.
        let ok = match script {
            Some(script) => tokio::process::Command::new("sh")
                .arg(&script)
                .arg(dir.join("run"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .is_ok_and(|s| s.success()),
            None => false,
        };
        tokio::task::spawn_blocking(move || {
            let run = dir.join("run");
            let jit = std::fs::read_to_string(run.join("jitconfig"))
                .or_else(|_| std::fs::read_to_string(run.join("token")))
                .ok();
            let _ = std::fs::remove_dir_all(&dir);
            ok.then_some(jit).flatten().map(Secret::new)
        })
        .await
        .ok()
        .flatten()
    }
}

/// A value of the runner settings an instance receives (`RUNNER_URL`), from the container's
/// settings file or the VM's user-data.
fn boot_setting(boot: &crate::bootstrap::BootData, key: &str) -> Option<String> {
    let text = match boot
        .files
        .iter()
        .find(|f| f.path == crate::bootstrap::SETTINGS)
    {
        Some(f) => f.content.expose().to_string(),
        None => {
            let doc: serde_yaml::Value = serde_yaml::from_str(
                boot.user_data
                    .as_ref()?
                    .expose()
                    .trim_start_matches("#cloud-config"),
            )
            .ok()?;
            doc.get("write_files")?
                .as_sequence()?
                .iter()
                .find(|e| {
                    e.get("path").and_then(|p| p.as_str()) == Some("/etc/runnerctl/runner.env")
                })
                .and_then(crate::bootstrap::file_content)?
        }
    };
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(crate::bootstrap::shell_unquote(v))
    })
}

#[async_trait::async_trait]
impl StandIn for StandInRunner {
    async fn start(&self, runner: &str, boot: &crate::bootstrap::BootData) -> bool {
        let Some(jit) = Self::fetch(runner, boot).await else {
            return boot
                .files
                .iter()
                .all(|f| !crate::bootstrap::is_secret(&f.path))
                && !boot
                    .files
                    .iter()
                    .any(|f| f.path == crate::bootstrap::BROKER_TOKEN);
        };
        let credential = jit.expose();
        if boot_setting(boot, "RUNNER_AGENT").as_deref() == Some("act_runner") {
            // A Gitea registration token: register as `act_runner register --ephemeral` would,
            // at the instance the settings name (the fake Gitea's side door).
            let (Some(url), Some(labels)) = (
                boot_setting(boot, "RUNNER_URL"),
                boot_setting(boot, "RUNNER_LABELS"),
            ) else {
                return false;
            };
            return crate::forge::gitea::fake::register_stand_in(&url, credential, runner, &labels)
                .await;
        }
        crate::forge::fake::sim_connect_url(credential).is_none()
            || crate::forge::fake::connect_stand_in_runner(credential).await
    }
}
