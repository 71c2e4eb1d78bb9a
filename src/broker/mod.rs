//! The credential broker: a runner's credential reaches only its own instance.
//!
//! When a VM's runner is made, its credential (a JIT configuration or a registration token) is
//! sealed ([`vault`]) and kept in Redis under the hash of a one-time bootstrap token, for
//! `time_to_start`; only the token travels in the instance's metadata. Once the backend reports
//! the instance's address, the record is bound to it. The instance redeems the token at the
//! broker's endpoint ([`endpoint`], TLS, served by `serve`): one script checks the token, the
//! binding and the source address, and deletes the record as it hands the credential over, so a
//! token is redeemed at most once, only from its instance and only before it expires. A wrong,
//! used or expired token, another address, or a record not bound yet is refused and counted;
//! nothing about the token is logged.
//!
//! Redis holds the token's SHA-256, never the token, and the credential sealed with AES-256-GCM.

pub mod endpoint;
pub mod identity;
pub mod tls;
pub mod vault;

use crate::config::Secret;
use crate::conn::Conn;
use base64::Engine;
pub use identity::IdentityCheck;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
pub use vault::{Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("credential broker: Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("credential broker: {0}")]
    Vault(#[from] VaultError),
    #[error("credential broker: TLS: {0}")]
    Tls(String),
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// A credential handed out: the one-time token for the instance's metadata, and the id of its
/// record (the token's hash: not secret) for binding and revoking.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: Secret,
    pub id: String,
}

/// What a redemption came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The credential, and the runner it is for.
    Credential {
        runner: String,
        credential: Secret,
    },
    Refused(Refusal),
}

/// Why a redemption was refused. Also the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No such token: wrong, used already or expired.
    Unknown,
    /// The instance's address is not known yet: ask again shortly.
    NotBound,
    /// Asked from another address than the instance's.
    WrongAddress,
    /// Not a request the endpoint understands.
    BadRequest,
    /// The record is bound to a signed instance identity and the request proved none: ask
    /// again with the proof (the instance's metadata server may have been slow).
    NoIdentity,
    /// The proof is forged, expired, for another audience or another instance.
    WrongIdentity,
    /// A warm-pool instance's record: no credential is sealed for it yet (no job took it).
    /// Ask again; the endpoint holds the request a while first.
    Pending,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::Unknown,
        Refusal::NotBound,
        Refusal::WrongAddress,
        Refusal::BadRequest,
        Refusal::NoIdentity,
        Refusal::WrongIdentity,
        Refusal::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown_token",
            Refusal::NotBound => "not_bound",
            Refusal::WrongAddress => "wrong_address",
            Refusal::BadRequest => "bad_request",
            Refusal::NoIdentity => "no_identity",
            Refusal::WrongIdentity => "wrong_identity",
            Refusal::Pending => "pending",
        }
    }
}

/// Checks the record, its binding, the caller's address and the identity it proved (ARGV[2],
/// empty for none); hands the sealed credential over and deletes the record in the same step.
/// A refusal leaves the record as it was, so a stranger cannot spend the instance's token.
const REDEEM: &str = include_str!("../lua/broker_redeem.lua");

/// Binds an existing record to an address and, when ARGV[2] is not empty, a signed instance
/// identity, once.
const BIND: &str = include_str!("../lua/broker_bind.lua");

/// Seals a credential into a waiting (warm-pool) record: KEYS the record, the runner's index.
/// ARGV the runner, the sealed credential, the time to live (seconds). 1 when filled.
const FILL: &str = include_str!("../lua/broker_fill.lua");

/// What the manager needs to send a VM's credential through the broker.
#[derive(Clone)]
pub struct Link {
    pub broker: Broker,
    /// The URL instances fetch from.
    pub url: String,
    /// The CA they pin (PEM).
    pub ca_pem: String,
}

/// The broker's side in Redis.
#[derive(Clone)]
pub struct Broker {
    conn: Conn,
    prefix: String,
    /// The manager's key prefix (its jobs' timelines).
    manager_prefix: String,
    vault: Arc<Vault>,
    /// What checks signed instance identities, by scheme (the endpoint's side).
    checks: Arc<Vec<Arc<dyn IdentityCheck>>>,
}

/// The hex SHA-256 of a token: the id of its record.
pub fn token_id(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Broker {
    pub fn new(conn: Conn, manager: &str, vault: Vault) -> Broker {
        Broker {
            conn,
            prefix: format!("{}broker:", crate::model::key_prefix(manager)),
            manager_prefix: crate::model::key_prefix(manager),
            vault: Arc::new(vault),
            checks: Arc::new(Vec::new()),
        }
    }

    /// Whether an identity's kind (`gce:…`) has a check here.
    pub fn can_check(&self, identity: &str) -> bool {
        let scheme = identity.split(':').next().unwrap_or("");
        self.checks.iter().any(|c| c.scheme() == scheme)
    }

    /// The broker checking signed instance identities with `checks` (one per scheme).
    pub fn with_identity_checks(mut self, checks: Vec<Arc<dyn IdentityCheck>>) -> Broker {
        self.checks = Arc::new(checks);
        self
    }

    fn record_key(&self, id: &str) -> String {
        format!("{}cred:{id}", self.prefix)
    }

    fn runner_key(&self, runner: &str) -> String {
        format!("{}runner:{runner}", self.prefix)
    }

    /// Keeps `credential` for `runner` for `ttl`, sealed, under a fresh one-time token. A
    /// credential issued earlier for the runner is revoked.
    pub async fn issue(&self, runner: &str, credential: &Secret, ttl: Duration) -> Result<Issued> {
        self.issue_sealing(runner, Some(credential), ttl).await
    }

    /// A record for `runner` under a fresh one-time token: `credential` sealed in it, or none
    /// yet (a warm instance's). A record issued earlier for the runner is revoked.
    async fn issue_sealing(
        &self,
        runner: &str,
        credential: Option<&Secret>,
        ttl: Duration,
    ) -> Result<Issued> {
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vault::random_bytes(32));
        let id = token_id(&token);
        let sealed = credential
            .map(|c| self.vault.seal(c, &format!("{id}:{runner}")))
            .unwrap_or_default();
        let ttl = ttl.as_secs().max(1);
        self.revoke(runner).await?;
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(
                self.record_key(&id),
                &[
                    ("runner", runner),
                    ("sealed", sealed.as_str()),
                    ("addr", ""),
                ],
            )
            .expire(self.record_key(&id), ttl as i64)
            .set_ex(self.runner_key(runner), &id, ttl)
            .query_async::<()>(&mut c)
            .await?;
        Ok(Issued {
            token: Secret::new(token),
            id,
        })
    }

    /// Keeps a record for a warm-pool instance of `runner` under a fresh one-time token, for
    /// `ttl`, with no credential yet: its redemption is answered `Pending` until [`Broker::fill`]
    /// seals one in. A record issued earlier for the runner is revoked.
    pub async fn issue_pending(&self, runner: &str, ttl: Duration) -> Result<Issued> {
        self.issue_sealing(runner, None, ttl).await
    }

    /// Seals `credential` into the waiting record of `runner` (see [`Broker::issue_pending`]),
    /// which then lives `ttl` more. False when there is none (expired, revoked, filled).
    pub async fn fill(&self, runner: &str, credential: &Secret, ttl: Duration) -> Result<bool> {
        let mut c = self.conn.clone();
        let id = self.record_id(runner).await?;
        let Some(id) = id else { return Ok(false) };
        let sealed = self.vault.seal(credential, &format!("{id}:{runner}"));
        let filled: i64 = redis::Script::new(FILL)
            .key(self.record_key(&id))
            .key(self.runner_key(runner))
            .arg(runner)
            .arg(&sealed)
            .arg(ttl.as_secs().max(1))
            .invoke_async(&mut c)
            .await?;
        Ok(filled == 1)
    }

    /// Whether the instance of `runner`'s waiting record (see [`Broker::issue_pending`]) has
    /// asked for its credential from its bound address: it has booted. False when there is no
    /// such record.
    pub async fn asked(&self, runner: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        let id = self.record_id(runner).await?;
        let Some(id) = id else { return Ok(false) };
        let asked: Option<String> = redis::cmd("HGET")
            .arg(self.record_key(&id))
            .arg("asked")
            .query_async(&mut c)
            .await?;
        Ok(asked.as_deref() == Some("1"))
    }

    /// Binds a record to the address its instance will call from. False when the record is
    /// gone (expired, redeemed) or bound to another address.
    pub async fn bind(&self, id: &str, address: &str) -> Result<bool> {
        self.bind_to(id, address, None).await
    }

    /// Binds a record to its instance's address and, when the backend knows one and this
    /// broker can check its kind, the signed identity the instance must prove at redemption
    /// (`gce:PROJECT/ZONE/NAME/ID`). A binding never loosens: an identity once bound stays.
    pub async fn bind_to(&self, id: &str, address: &str, identity: Option<&str>) -> Result<bool> {
        let identity = identity.filter(|i| self.can_check(i));
        let mut c = self.conn.clone();
        let n: i64 = redis::Script::new(BIND)
            .key(self.record_key(id))
            .arg(address)
            .arg(identity.unwrap_or(""))
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// The id of the record kept for `runner`, when there is one.
    async fn record_id(&self, runner: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("GET")
            .arg(self.runner_key(runner))
            .query_async(&mut c)
            .await?)
    }

    /// Removes what is kept for a runner (it is being deleted, or a new credential replaces it).
    pub async fn revoke(&self, runner: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let id = self.record_id(runner).await?;
        if let Some(id) = id {
            let _: () = redis::cmd("DEL")
                .arg(self.record_key(&id))
                .arg(self.runner_key(runner))
                .query_async(&mut c)
                .await?;
        }
        Ok(())
    }

    /// Redeems a token asked for from `source`: the credential once, or why not.
    pub async fn redeem(&self, token: &str, source: &str) -> Result<Redeemed> {
        self.redeem_with(token, source, None).await
    }

    /// Redeems a token asked for from `source` with a signed proof of the instance's identity:
    /// a record bound to an identity is handed over only when the proof shows that identity.
    pub async fn redeem_with(
        &self,
        token: &str,
        source: &str,
        proof: Option<&str>,
    ) -> Result<Redeemed> {
        if token.is_empty() || token.len() > 128 || proof.is_some_and(|p| p.len() > 16 * 1024) {
            return Ok(Redeemed::Refused(Refusal::BadRequest));
        }
        let id = token_id(token);
        let proven = match self.proven(&id, source, proof).await? {
            Ok(p) => p,
            Err(r) => return Ok(Redeemed::Refused(r)),
        };
        let mut c = self.conn.clone();
        let reply: Vec<Option<String>> = redis::Script::new(REDEEM)
            .key(self.record_key(&id))
            .arg(source)
            .arg(&proven)
            .invoke_async(&mut c)
            .await?;
        let refused = |r| Ok(Redeemed::Refused(r));
        match reply.first().and_then(|s| s.as_deref()) {
            Some("ok") => {
                let runner = reply.get(1).cloned().flatten().unwrap_or_default();
                let sealed = reply.get(2).cloned().flatten().unwrap_or_default();
                // The runner's index of its record (the record itself is gone already).
                let _: () = redis::cmd("DEL")
                    .arg(self.runner_key(&runner))
                    .query_async(&mut c)
                    .await?;
                let credential = self.vault.open(&sealed, &format!("{id}:{runner}"))?;
                self.note_fetched(&runner).await;
                Ok(Redeemed::Credential { runner, credential })
            }
            Some("unbound") => refused(Refusal::NotBound),
            Some("pending") => refused(Refusal::Pending),
            Some("address") => refused(Refusal::WrongAddress),
            Some("identity") => refused(Refusal::WrongIdentity),
            _ => refused(Refusal::Unknown),
        }
    }

    /// Notes under `runner`'s name that its instance fetched its credential now (this host's
    /// clock), for the timeline of its job. Best effort.
    async fn note_fetched(&self, runner: &str) {
        let mut c = self.conn.clone();
        let key = crate::records::timeline_runner_key(&self.manager_prefix, runner);
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let r: redis::RedisResult<()> = redis::pipe()
            .hset_nx(&key, "credential", ms)
            .ignore()
            .expire(&key, crate::records::TIMELINE_TTL.as_secs() as i64)
            .ignore()
            .query_async(&mut c)
            .await;
        if let Err(e) = r {
            tracing::debug!(runner, error = %e, "could not note the job's timeline");
        }
    }

    /// The identity a request proves for record `id`, checked only once its address matched
    /// (the redemption script checks all again): empty when the record asks for none.
    async fn proven(
        &self,
        id: &str,
        source: &str,
        proof: Option<&str>,
    ) -> Result<std::result::Result<String, Refusal>> {
        let mut c = self.conn.clone();
        let (addr, ident): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.record_key(id))
            .arg("addr")
            .arg("ident")
            .query_async(&mut c)
            .await?;
        let ident = ident.unwrap_or_default();
        if addr.as_deref() != Some(source) || ident.is_empty() {
            return Ok(Ok(String::new())); // the script answers (unknown, unbound, address)
        }
        let Some(proof) = proof.filter(|p| !p.is_empty()) else {
            return Ok(Err(Refusal::NoIdentity));
        };
        let scheme = ident.split(':').next().unwrap_or("");
        let Some(check) = self.checks.iter().find(|c| c.scheme() == scheme) else {
            tracing::warn!(scheme, "no check for this kind of instance identity");
            return Ok(Err(Refusal::WrongIdentity));
        };
        match check.identity(proof).await {
            Ok(shown) if shown == ident => Ok(Ok(shown)),
            Ok(shown) => {
                tracing::warn!(peer = %source, expected = %ident, shown = %shown, "the identity proof is another instance's");
                Ok(Err(Refusal::WrongIdentity))
            }
            Err(why) => {
                tracing::warn!(peer = %source, reason = %why, "the identity proof does not hold");
                Ok(Err(Refusal::WrongIdentity))
            }
        }
    }
}
