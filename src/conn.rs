//! runnerctl's connection to Redis: where it goes ([`RedisTarget`]: a URL, TLS files, an ACL
//! user and password, sentinels or cluster nodes) and the connection itself ([`Conn`]), which
//! every command, pipeline and script goes through. Below the store and the queue; it knows no
//! key of theirs.

use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// A connection that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Refused in a way waiting will not cure (password, database, TLS, configuration).
    #[error("Redis at {url} refused the connection: {source}")]
    Refused {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    /// Not reached (yet): names the server, its password hidden.
    #[error("Redis is unreachable at {url}: {source}")]
    NotConnected {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

impl ConnectError {
    /// `Refused` when waiting will not cure `source`, else `NotConnected`.
    fn classified(url: String, source: redis::RedisError) -> ConnectError {
        if is_permanent_connect_error(&source) {
            ConnectError::Refused { url, source }
        } else {
            ConnectError::NotConnected { url, source }
        }
    }
}

type Result<T, E = ConnectError> = std::result::Result<T, E>;

/// Whether a Redis error means the server could not be reached (as opposed to a refused command).
pub fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::IoError | redis::ErrorKind::ClientError
        )
        || e.to_string().contains("LOADING")
}

/// Where Redis is and how runnerctl proves itself to it: the URL (`redis://`, `rediss://`,
/// `unix://`), and for TLS a CA to trust instead of the system's roots and a client
/// certificate (mutual TLS); an ACL user and password given apart from the URL.
#[derive(Clone, Default)]
pub struct RedisTarget {
    pub url: String,
    /// PEM of the CA that signed the server's certificate (`None`: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate and its key, for mutual TLS.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub username: Option<String>,
    pub password: Option<crate::config::Secret>,
    /// With Sentinel: the URL's host and port are the master's, asked of the sentinels.
    pub sentinel: Option<SentinelTarget>,
    /// A Redis Cluster's nodes (`host:port`, some of them suffice); the URL gives the scheme
    /// and credentials.
    pub cluster: Option<Vec<String>>,
    /// With `rediss://`: the name the server's certificate must carry (and the name sent as
    /// SNI) when it is not the host runnerctl connects to: an address, a tunnel, a load
    /// balancer, or the master a sentinel names by its address.
    pub tls_server_name: Option<String>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisTarget({})", crate::config::redact_url(&self.url))
    }
}

impl From<&str> for RedisTarget {
    fn from(url: &str) -> Self {
        RedisTarget {
            url: url.to_string(),
            ..RedisTarget::default()
        }
    }
}

impl From<&String> for RedisTarget {
    fn from(url: &String) -> Self {
        RedisTarget::from(url.as_str())
    }
}

impl RedisTarget {
    /// The URL with its password hidden, for messages.
    pub fn redacted(&self) -> String {
        crate::config::redact_url(&self.url)
    }

    /// The same target at another address (`host:port`): the master a sentinel named.
    pub fn at(&self, addr: &str) -> RedisTarget {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("redis", &self.url));
        let (userinfo, hostpath) = match rest.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let path = hostpath.find('/').map(|i| &hostpath[i..]).unwrap_or("");
        RedisTarget {
            url: format!("{scheme}://{userinfo}{addr}{path}"),
            sentinel: None,
            ..self.clone()
        }
    }

    /// The client for this target, and with a TLS server name the resolver that takes that
    /// name to the address the URL gives.
    pub fn client(&self) -> redis::RedisResult<(redis::Client, Option<ServerNameResolver>)> {
        use redis::IntoConnectionInfo;
        let mut info = self.url.as_str().into_connection_info()?;
        if let Some(u) = &self.username {
            info.redis.username = Some(u.clone());
        }
        if let Some(p) = &self.password {
            info.redis.password = Some(p.expose().to_string());
        }
        let resolver = match (&self.tls_server_name, &mut info.addr) {
            (None, _) => None,
            (Some(name), redis::ConnectionAddr::TcpTls { host, .. }) => {
                check_server_name(name)?;
                // The name goes where the URL's host was: it is what rustls verifies and
                // sends; the resolver takes it to the URL's host.
                let address = std::mem::replace(host, name.clone());
                Some(ServerNameResolver {
                    name: name.clone(),
                    address,
                })
            }
            (Some(_), _) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "tls_server_name needs a `rediss://` URL",
                )))
            }
        };
        if self.ca_pem.is_none() && self.client_pem.is_none() {
            return Ok((redis::Client::open(info)?, resolver));
        }
        // rustls needs one process-wide provider when more than one is compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: self
                    .client_pem
                    .as_ref()
                    .map(|(cert, key)| redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }),
                root_cert: self.ca_pem.clone(),
            },
        )?;
        Ok((client, resolver))
    }
}

/// `name` as a TLS server name, or why it cannot be one.
fn check_server_name(name: &str) -> redis::RedisResult<()> {
    if crate::config::is_tls_server_name(name) {
        return Ok(());
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "tls_server_name is not a DNS name or an IP address",
        format!("`{}`", name.escape_default()),
    )))
}

/// Resolves the TLS server name to the address the URL gave (its host resolved as usual), and
/// any other name as usual.
#[derive(Clone)]
pub struct ServerNameResolver {
    name: String,
    address: String,
}

impl redis::io::AsyncDNSResolver for ServerNameResolver {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> redis::RedisFuture<'a, Box<dyn Iterator<Item = std::net::SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            let host = if host == self.name {
                self.address.as_str()
            } else {
                host
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host, port)).await?.collect();
            Ok(Box::new(found.into_iter())
                as Box<dyn Iterator<Item = std::net::SocketAddr> + Send>)
        })
    }
}

/// Whether a failed connection is one that waiting will not cure: a password or user refused,
/// a database that does not exist, a TLS handshake that failed on a certificate, a client that
/// cannot be built from the configuration.
pub fn is_permanent_connect_error(e: &redis::RedisError) -> bool {
    let text = e.to_string().to_lowercase();
    matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
    ) || [
        "wrongpass",
        "noauth",
        "db index is out of range",
        "invalid password",
        "certificate",
        "unknownissuer",
        "handshake",
        "alert",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// Opens a Redis connection that reconnects by itself after an outage.
pub async fn connect(url: &str) -> Result<Conn> {
    connect_to(&RedisTarget::from(url)).await
}

/// Opens a connection to `target` that reconnects by itself after an outage, and with
/// Sentinel follows the master through a failover. A refusal that waiting will not cure is
/// [`ConnectError::Refused`].
pub async fn connect_to(target: &RedisTarget) -> Result<Conn> {
    if let Some(nodes) = &target.cluster {
        return cluster_for(target, nodes).await;
    }
    match &target.sentinel {
        None => Ok(Conn::direct(single_for(target).await?)),
        Some(s) => {
            let addr = sentinel_master(target)
                .await
                .map_err(|e| ConnectError::classified(s.shown(), e))?;
            let first = single_for(&target.at(&addr)).await?;
            Ok(Conn::single(
                first,
                Some(Failover {
                    target: target.clone(),
                    addr: std::sync::Mutex::new(addr),
                    refreshing: tokio::sync::Mutex::new(()),
                }),
            ))
        }
    }
}

/// A cluster-aware connection: commands go to the node serving their keys' slot (one manager's
/// keys share one, by their hash tag), following `MOVED` and `ASK` and the topology's changes.
async fn cluster_for(target: &RedisTarget, nodes: &[String]) -> Result<Conn> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shown = format!("cluster {}", nodes.join(", "));
    if target.tls_server_name.is_some() {
        // The nodes found are those the cluster announces, each verified by its own name.
        return Err(ConnectError::Refused {
            url: shown,
            source: redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                crate::config::CLUSTER_SERVER_NAME,
            )),
        });
    }
    let tls = target.url.starts_with("rediss://");
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}://{n}", if tls { "rediss" } else { "redis" }))
        .collect();
    let mut b = redis::cluster::ClusterClient::builder(urls)
        .connection_timeout(Duration::from_secs(3))
        .response_timeout(Duration::from_secs(20))
        .retries(3);
    if let Some(u) = &target.username {
        b = b.username(u.clone());
    }
    if let Some(p) = &target.password {
        b = b.password(p.expose().to_string());
    }
    if target.ca_pem.is_some() || target.client_pem.is_some() {
        b = b.certs(redis::TlsCertificates {
            client_tls: target
                .client_pem
                .as_ref()
                .map(|(c, k)| redis::ClientTlsConfig {
                    client_cert: c.clone(),
                    client_key: k.clone(),
                }),
            root_cert: target.ca_pem.clone(),
        });
    }
    let client = b.build().map_err(|source| ConnectError::Refused {
        url: shown.clone(),
        source,
    })?;
    let c = client
        .get_async_connection()
        .await
        .map_err(|e| ConnectError::classified(shown, e))?;
    Ok(Conn::clustered(c))
}

/// Sentinel: where to ask for the master, its name, and how to speak to the sentinels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentinelTarget {
    /// `host:port` of each sentinel.
    pub sentinels: Vec<String>,
    pub master: String,
    /// The sentinels' own user and password (`requirepass` in their configuration), not the
    /// master's.
    pub username: Option<String>,
    pub password: Option<crate::config::Secret>,
    /// TLS to the sentinels, with the target's CA and client certificate.
    pub tls: bool,
}

impl SentinelTarget {
    /// How the sentinels are named in messages.
    pub fn shown(&self) -> String {
        format!(
            "sentinels {} (master `{}`)",
            self.sentinels.join(", "),
            self.master
        )
    }
}

/// The address (`host:port`) the sentinels of `target` name master: the first that answers.
/// A sentinel that refuses the password or the TLS handshake is a permanent error if no other
/// sentinel answers.
pub async fn sentinel_master(target: &RedisTarget) -> redis::RedisResult<String> {
    let Some(s) = &target.sentinel else {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "no sentinel configured",
        )));
    };
    let mut last = redis::RedisError::from((redis::ErrorKind::IoError, "no sentinel configured"));
    for addr in &s.sentinels {
        let one = RedisTarget {
            url: format!("{}://{addr}", if s.tls { "rediss" } else { "redis" }),
            ca_pem: target.ca_pem.clone().filter(|_| s.tls),
            client_pem: target.client_pem.clone().filter(|_| s.tls),
            username: s.username.clone(),
            password: s.password.clone(),
            ..RedisTarget::default()
        };
        let asked = async {
            let (client, _) = one.client()?;
            let mut c = client.get_multiplexed_async_connection().await?;
            let (host, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&s.master)
                .query_async(&mut c)
                .await?;
            Ok::<_, redis::RedisError>(format!("{host}:{port}"))
        };
        match tokio::time::timeout(Duration::from_secs(3), asked).await {
            Ok(Ok(master)) => return Ok(master),
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = redis::RedisError::from((redis::ErrorKind::IoError, "sentinel timed out"))
            }
        }
    }
    Err(last)
}

/// A connection to the manager's Redis, cheap to clone, that reconnects by itself: to the same
/// server, or with Sentinel to whichever server the sentinels name master after a failover
/// (asked again when the server is unreachable or answers `READONLY`: it was demoted).
#[derive(Clone)]
pub struct Conn {
    link: Link,
    /// Requests sent (a pipeline counts once), shared by the clones: what a step costs.
    sent: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
enum Link {
    Single {
        current: Arc<std::sync::RwLock<Single>>,
        failover: Option<Arc<Failover>>,
    },
    Cluster(redis::cluster_async::ClusterConnection),
}

struct Failover {
    target: RedisTarget,
    /// The master's address now.
    addr: std::sync::Mutex<String>,
    /// One re-resolution at a time.
    refreshing: tokio::sync::Mutex<()>,
}

impl Conn {
    fn direct(m: Single) -> Conn {
        Conn::single(m, None)
    }

    fn single(m: Single, failover: Option<Failover>) -> Conn {
        Conn {
            sent: Arc::default(),
            link: Link::Single {
                current: Arc::new(std::sync::RwLock::new(m)),
                failover: failover.map(Arc::new),
            },
        }
    }

    fn clustered(c: redis::cluster_async::ClusterConnection) -> Conn {
        Conn {
            link: Link::Cluster(c),
            sent: Arc::default(),
        }
    }

    /// Whether it speaks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    fn failover(&self) -> Option<&Arc<Failover>> {
        match &self.link {
            Link::Single { failover, .. } => failover.as_ref(),
            Link::Cluster(_) => None,
        }
    }

    /// With Sentinel: asks who the master is now and moves there. Whether it moved.
    async fn follow_master(&self) -> bool {
        let Link::Single {
            current,
            failover: Some(f),
        } = &self.link
        else {
            return false;
        };
        let _one = f.refreshing.lock().await;
        let Ok(addr) = sentinel_master(&f.target).await else {
            return false;
        };
        if *f.addr.lock().unwrap_or_else(|p| p.into_inner()) == addr {
            return false;
        }
        match single_for(&f.target.at(&addr)).await {
            Ok(m) => {
                tracing::warn!(master = %addr, "Redis failover: following the new master");
                *current.write().unwrap_or_else(|p| p.into_inner()) = m;
                *f.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr;
                true
            }
            Err(e) => {
                tracing::warn!(master = %addr, error = %e, "the new Redis master is not reachable yet");
                false
            }
        }
    }

    /// After a failed request: a demoted master refused a write (not performed, so it is sent
    /// again to the new one); an unreachable one makes the next request go to the new master.
    async fn after<T>(
        &self,
        r: redis::RedisResult<T>,
        again: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        match &r {
            Err(e) if self.failover().is_some() && e.kind() == redis::ErrorKind::ReadOnly => {
                if self.follow_master().await {
                    return again.await;
                }
                r
            }
            Err(e) if self.failover().is_some() && is_connection_error(e) => {
                self.follow_master().await;
                r
            }
            _ => r,
        }
    }
}

/// The connection a request goes out on now.
enum Current {
    Single(Single),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    /// Round trips to Redis made through this connection and its clones so far (a pipeline
    /// or a script is one; a retry after a failover another).
    pub fn round_trips(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self) {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn current(&self) -> Current {
        match &self.link {
            Link::Single { current, .. } => {
                Current::Single(current.read().unwrap_or_else(|p| p.into_inner()).clone())
            }
            Link::Cluster(c) => Current::Cluster(c.clone()),
        }
    }
}

impl Current {
    async fn send(self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        use redis::aio::ConnectionLike;
        match self {
            Current::Single(Single::Managed(mut m)) => m.req_packed_command(cmd).await,
            Current::Single(Single::Named(r)) => r.send(cmd).await,
            Current::Cluster(mut c) => c.req_packed_command(cmd).await,
        }
    }

    async fn send_many(
        self,
        cmd: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        use redis::aio::ConnectionLike;
        match self {
            Current::Single(Single::Managed(mut m)) => {
                m.req_packed_commands(cmd, offset, count).await
            }
            Current::Single(Single::Named(r)) => r.send_many(cmd, offset, count).await,
            Current::Cluster(mut c) => c.req_packed_commands(cmd, offset, count).await,
        }
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            self.count();
            let r = self.current().send(cmd).await;
            let this = self.clone();
            self.after(r, async move {
                this.count();
                this.current().send(cmd).await
            })
            .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            self.count();
            let r = self.current().send_many(cmd, offset, count).await;
            let this = self.clone();
            self.after(r, async move {
                this.count();
                this.current().send_many(cmd, offset, count).await
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single { current, .. } => {
                match &*current.read().unwrap_or_else(|p| p.into_inner()) {
                    Single::Managed(m) => m.get_db(),
                    Single::Named(r) => r.db,
                }
            }
            Link::Cluster(_) => 0,
        }
    }
}

/// One server's connection: the crate's reconnecting manager, or ours where the manager
/// cannot go (a TLS server name other than the host connected to).
#[derive(Clone)]
enum Single {
    Managed(ConnectionManager),
    Named(Arc<Reconnecting>),
}

/// A multiplexed connection made again once it broke (the server went away, a request hung),
/// as [`ConnectionManager`] does: for a TLS server name other than the host connected to,
/// which needs a resolver that the manager's configuration does not take. A request that finds
/// it broken makes it again (within the connection timeout) or fails, to be retried by its
/// caller as any request to an unreachable server.
struct Reconnecting {
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
    db: i64,
    /// The connection and how many were made: a failure forgets only the one it failed on.
    slot: tokio::sync::Mutex<(u64, Option<redis::aio::MultiplexedConnection>)>,
}

impl Reconnecting {
    async fn open(
        client: redis::Client,
        config: redis::AsyncConnectionConfig,
    ) -> redis::RedisResult<Reconnecting> {
        let r = Reconnecting {
            db: client.get_connection_info().redis.db,
            client,
            config,
            slot: tokio::sync::Mutex::new((0, None)),
        };
        // As the manager is configured: one more try after about a second.
        if let Err(e) = r.get().await {
            if is_permanent_connect_error(&e) {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            r.get().await?;
        }
        Ok(r)
    }

    async fn get(&self) -> redis::RedisResult<(u64, redis::aio::MultiplexedConnection)> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = &slot.1 {
            return Ok((slot.0, c.clone()));
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        slot.0 += 1;
        slot.1 = Some(c.clone());
        Ok((slot.0, c))
    }

    async fn forget_if_broken<T>(&self, made: u64, r: &redis::RedisResult<T>) {
        let Err(e) = r else { return };
        if e.is_unrecoverable_error() || e.is_connection_dropped() || e.is_timeout() {
            let mut slot = self.slot.lock().await;
            if slot.0 == made {
                slot.1 = None;
            }
        }
    }

    async fn send(&self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        use redis::aio::ConnectionLike;
        let (made, mut c) = self.get().await?;
        let r = c.req_packed_command(cmd).await;
        self.forget_if_broken(made, &r).await;
        r
    }

    async fn send_many(
        &self,
        cmd: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        use redis::aio::ConnectionLike;
        let (made, mut c) = self.get().await?;
        let r = c.req_packed_commands(cmd, offset, count).await;
        self.forget_if_broken(made, &r).await;
        r
    }
}

async fn single_for(target: &RedisTarget) -> Result<Single> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = target.redacted();
    let classify = |e| ConnectError::classified(url.clone(), e);
    let (client, resolver) = target.client().map_err(|source| ConnectError::Refused {
        url: url.clone(),
        source,
    })?;
    if let Some(resolver) = resolver {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(3))
            .set_response_timeout(Duration::from_secs(10))
            .set_dns_resolver(resolver);
        return Reconnecting::open(client, config)
            .await
            .map(|r| Single::Named(Arc::new(r)))
            .map_err(classify);
    }
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(3))
        .set_response_timeout(Duration::from_secs(10))
        // Retries while connecting: one more try after about 1 s. (The factor multiplies each delay; the
        // crate's default of 100 would wait minutes before reporting an unreachable server.)
        .set_factor(2)
        .set_max_delay(2000)
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config)
        .await
        .map(Single::Managed)
        .map_err(classify)
}
