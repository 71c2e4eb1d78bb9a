//! A scale set's session in Redis: the lease one worker holds (with a fencing token that grows
//! with every taking), the session's id and the last message handled, and the statistics the
//! service sent last. Writes of a holder that lost the lease are refused by Redis itself
//! (`scaleset_commit.lua`), so a worker that was paused past its lease changes nothing.
//!
//! Keys: `lock:scaleset:NAME` (the lease: the holder's token) and `scaleset:NAME` (a hash:
//! `fence`, `holder`, `held_since`, `session_id`, `last_message_id`, `last_message_at`, the
//! statistics, `desired`). No token of GitHub's is ever written here.

use super::{RedisStore, Result};
use redis::Script;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/scaleset_acquire.lua")));
static COMMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/scaleset_commit.lua")));

/// A held session lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub token: String,
    /// Grows with every taking: a larger fence is a later holder.
    pub fence: u64,
}

/// What Redis knows of a scale set's session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionState {
    /// The lease's holder (a worker's name) while held.
    pub holder: Option<String>,
    pub fence: u64,
    pub session_id: Option<String>,
    pub last_message_id: u64,
    /// Unix seconds of the last message handled.
    pub last_message_at: Option<u64>,
    /// The last statistics and desired count, by field name.
    pub values: HashMap<String, u64>,
}

impl RedisStore {
    fn scale_set_lock(&self, name: &str) -> String {
        format!("scaleset:{name}")
    }

    fn scale_set_key(&self, name: &str) -> String {
        format!("{}scaleset:{name}", self.prefix)
    }

    /// Takes the lease of scale set `name` for `ttl` when nobody holds it.
    pub async fn scale_set_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let token = format!("{holder}/{:016x}", fastrand::u64(..));
        let mut inv = ACQUIRE.prepare_invoke();
        inv.key(self.lock_key(&self.scale_set_lock(name)))
            .key(self.scale_set_key(name))
            .arg(&token)
            .arg(ttl.as_millis() as u64)
            .arg(holder);
        let mut c = self.conn.clone();
        let fence: u64 = inv.invoke_async(&mut c).await?;
        Ok((fence > 0).then_some(Lease { token, fence }))
    }

    /// Extends the lease; false when it was lost (another holds it, or it lapsed).
    pub async fn scale_set_renew(&self, name: &str, lease: &Lease, ttl: Duration) -> Result<bool> {
        self.renew_lock(&self.scale_set_lock(name), &lease.token, ttl)
            .await
    }

    /// Gives the lease up (nothing when it is no longer ours).
    pub async fn scale_set_release(&self, name: &str, lease: &Lease) -> Result<()> {
        self.unlock(&self.scale_set_lock(name), &lease.token).await
    }

    /// Writes `fields` of the session's state while `lease` is held; false when fenced off.
    pub async fn scale_set_commit(
        &self,
        name: &str,
        lease: &Lease,
        fields: &[(&str, String)],
    ) -> Result<bool> {
        let mut inv = COMMIT.prepare_invoke();
        inv.key(self.lock_key(&self.scale_set_lock(name)))
            .key(self.scale_set_key(name))
            .arg(&lease.token);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok(n == 1)
    }

    /// The session's state as Redis has it.
    pub async fn scale_set_state(&self, name: &str) -> Result<SessionState> {
        let mut c = self.conn.clone();
        let lock: Option<String> = redis::cmd("GET")
            .arg(self.lock_key(&self.scale_set_lock(name)))
            .query_async(&mut c)
            .await?;
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.scale_set_key(name))
            .query_async(&mut c)
            .await?;
        let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
        let values = h
            .iter()
            .filter(|(k, _)| k.starts_with("total") || *k == "desired")
            .filter_map(|(k, v)| Some((k.clone(), v.parse::<u64>().ok()?)))
            .collect();
        Ok(SessionState {
            holder: lock.and(h.get("holder").cloned()),
            fence: num("fence").unwrap_or(0),
            session_id: h.get("session_id").filter(|s| !s.is_empty()).cloned(),
            last_message_id: num("last_message_id").unwrap_or(0),
            last_message_at: num("last_message_at"),
            values,
        })
    }
}
