//! State in Redis: runner records, their indexes, and group capacity.
//!
//! Keys, all under `runnerctl:{manager}:` so that managers sharing a Redis never meet:
//! - `runner:{name}`: a hash, one field per [`Runner`] attribute;
//! - `group:{group}:runners`: the set of runners of a group. A runner holds its group's slot from
//!   its reservation until its record is removed, so the size of this set is the group's usage
//!   and reserving a slot is one atomic script that checks it against `max_runners`;
//! - `status:{status}`: the set of runners in a status; `runners`: every runner;
//!
//! Every change that touches a record and its indexes is one Lua script, so indexes never
//! disagree with records, whatever process dies when.

mod scaleset;

pub use scaleset::{Lease, SessionState};

use crate::model::{Runner, RunnerStatus, FRESH_CREATION_SECS};
pub use crate::records::{
    Also, Event, Marker, Reservation, Result, RunnerPatch, RunnerStore, StoreError, Transition,
    Want, HISTORY_LEN,
};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if is_connection_error(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Redis(e)
        }
    }
}

pub use crate::conn::{
    is_connection_error, is_permanent_connect_error, sentinel_master, Conn, RedisTarget,
    SentinelTarget,
};

impl From<crate::conn::ConnectError> for StoreError {
    fn from(e: crate::conn::ConnectError) -> Self {
        match e {
            crate::conn::ConnectError::Refused { url, source } => {
                StoreError::Refused { url, source }
            }
            crate::conn::ConnectError::NotConnected { url, source } => {
                StoreError::NotConnected { url, source }
            }
        }
    }
}

/// Opens a Redis connection that reconnects by itself after an outage.
pub async fn connect(url: &str) -> Result<Conn> {
    Ok(crate::conn::connect(url).await?)
}

/// Opens a connection to `target` (see [`crate::conn::connect_to`]).
pub async fn connect_to(target: &RedisTarget) -> Result<Conn> {
    Ok(crate::conn::connect_to(target).await?)
}

/// Moves a manager's keys from the layout before hash tags (`runnerctl:NAME:…`) to today's
/// (`runnerctl:{NAME}:…`), once: a `layout` key records it. Streams keep their consumer
/// groups and pending entries (`RENAME`); a key that exists in both layouts is left where it is
/// and said. Every process of a manager runs it at start, so upgrading means stopping the old
/// version's processes and starting the new ones. How many keys moved.
pub async fn migrate_layout(conn: &Conn, manager: &str) -> Result<u64> {
    if conn.is_cluster() {
        // The old layout never ran on a cluster (its scripts' keys spanned slots).
        return Ok(0);
    }
    let new = crate::model::key_prefix(manager);
    let old = crate::model::old_key_prefix(manager);
    let mut c = conn.clone();
    let marker = format!("{new}layout");
    if c.exists::<_, bool>(&marker).await? {
        return Ok(0);
    }
    let mut moved = 0;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{old}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await?;
        for key in keys {
            let Some(rest) = key.strip_prefix(&old) else {
                continue;
            };
            let target = format!("{new}{rest}");
            match redis::cmd("RENAMENX")
                .arg(&key)
                .arg(&target)
                .query_async::<i64>(&mut c)
                .await
            {
                Ok(1) => moved += 1,
                Ok(_) => {
                    tracing::warn!(key = %key, "a key exists in both layouts; the old one is left")
                }
                // Moved meanwhile by another process.
                Err(e) if e.to_string().contains("no such key") => {}
                Err(e) => return Err(e.into()),
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let _: () = c.set(&marker, 2).await?;
    if moved > 0 {
        tracing::info!(manager, moved, "Redis keys moved to the hash-tagged layout");
    }
    Ok(moved)
}

/// The counter (in the store's marks) of a group's queued jobs refused by its access rules.
pub fn not_admitted_mark(group: &str) -> String {
    format!("not_admitted:{group}")
}

/// The counter (in the store's marks) of a group's creates that fell back from spot to
/// on-demand.
pub fn spot_fallback_mark(group: &str) -> String {
    format!("spot_fallback:{group}")
}

/// The key prefix of a manager.
pub fn prefix(manager: &str) -> String {
    crate::model::key_prefix(manager)
}

/// Reserve: KEYS group set, runner hash, reserved-status set, all-runners set, waiting zset,
/// data marker (written with the first record, see [`Marker`]), the runner's history list,
/// then the members' keys. ARGV max, name, mode ('explicit' or 'demand'), min_free, the members
/// (comma separated), the history entry's detail, the history's length and time to live
/// (seconds), then field/value pairs of the record. A reservation is appended to the history
/// in the same step. -2: the members changed meanwhile.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_reserve.lua")
    ))
});

/// Gives up a reservation made for demand that others now cover. KEYS group set, runner hash,
/// waiting zset, all-runners set, the status sets (in the order of ARGV 4), then the members'
/// keys. ARGV the members, name, min_free, the statuses. Only a runner not registered yet
/// (reserved or creating, no forge id) is given up. Returns 1 when it was, -2 when the members
/// changed meanwhile.
static ABANDON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_abandon.lua")
    ))
});

/// Counts a group's waiting jobs and free runners: KEYS waiting zset, group set, then the
/// members' keys. ARGV the members. {-2, -2}: the members changed meanwhile.
static SUPPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_supply.lua")
    ))
});

/// Remembers that a job started (or ended), for a day, by Redis's clock, that it waits in no
/// group, and reads a runner's record: KEYS started zset, the runner's hash, each group's
/// waiting zset. ARGV job.
static JOB_STARTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_job_started.lua")
    ))
});

/// A runner's history: KEYS the history list. ARGV event, detail, entries kept, TTL seconds.
/// Appends `{"at": Redis seconds, "event", "detail"}`.
static HISTORY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/store_history.lua")));

/// How long a runner's history is kept after its last entry.
const HISTORY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Update: KEYS runner hash, then the status sets in the order of ARGV 1, then the runner's
/// history list. ARGV the statuses (comma separated), new status ('' keeps it), expected
/// statuses (comma separated, '' for any), the history entry's detail, the history's length
/// and time to live (seconds), then field/value pairs ('' value deletes the field). A change of
/// status is appended to the history in the same step (no second round trip).
/// Returns {'missing'} or {'refused', current} or {'done', previous}.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_update.lua")
    ))
});

/// Remove: KEYS runner hash, all-runners set, the group set of ARGV 2, the status sets in the
/// order of ARGV 1, the history list. ARGV the statuses, the record's group, the history's
/// length and TTL. Releases the group slot and appends `removed` to the history.
/// Returns 1 when removed, 0 when there was no record, -2 when its group is another.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_remove.lua")
    ))
});

/// How often a script whose group members changed while it was prepared is tried again.
const MEMBER_RETRIES: usize = 20;

/// Every runner status, comma separated, in the order their sets are declared to scripts.
static STATUS_NAMES: LazyLock<String> = LazyLock::new(|| {
    RunnerStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
});

/// Runner records and group capacity in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    clock: std::sync::Arc<crate::clock::Sampled>,
}

impl RedisStore {
    pub fn new(conn: Conn, manager: &str) -> RedisStore {
        RedisStore {
            conn,
            prefix: prefix(manager),
            clock: Default::default(),
        }
    }

    pub async fn connect(url: &str, manager: &str) -> Result<RedisStore> {
        Ok(RedisStore::new(connect(url).await?, manager))
    }

    fn lock_key(&self, name: &str) -> String {
        format!("{}lock:{name}", self.prefix)
    }
    fn runner_key(&self, name: &str) -> String {
        format!("{}runner:{name}", self.prefix)
    }
    fn history_key(&self, name: &str) -> String {
        format!("{}history:{name}", self.prefix)
    }
    fn group_runners_key(&self, group: &str) -> String {
        format!("{}group:{group}:runners", self.prefix)
    }
    fn status_key(&self, status: RunnerStatus) -> String {
        format!("{}status:{status}", self.prefix)
    }
    fn all_key(&self) -> String {
        format!("{}runners", self.prefix)
    }

    /// Round trips this store's connection (and its clones) made so far.
    pub fn round_trips(&self) -> u64 {
        self.conn.round_trips()
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }

    /// Takes a slot of `runner.group` for `runner` when fewer than `max` runners hold one (and,
    /// for demand, while free runners do not cover the waiting jobs), and records it, in one
    /// atomic step. The manager gives records Redis's clock (`now`) as `created_at`.
    pub async fn reserve(&self, runner: &Runner, max: u32, want: Want) -> Result<Reservation> {
        Ok(self
            .reserve_noting(runner, max, want, Also::default())
            .await?
            .0)
    }

    /// [`RedisStore::reserve`] with what goes with it in the same step (see [`Also`]); the
    /// lock's token when it was taken.
    pub async fn reserve_noting(
        &self,
        runner: &Runner,
        max: u32,
        want: Want,
        also: Also<'_>,
    ) -> Result<(Reservation, Option<String>)> {
        let Also {
            detail,
            lock,
            waiting,
        } = also;
        let (mode, min_free) = match want {
            Want::Explicit => ("explicit", 0),
            Want::Demand { min_free } => ("demand", min_free),
        };
        let token = lock.map(|_| format!("{:016x}", fastrand::u64(..)));
        let mut attempt = 0;
        let (code, a, b) = loop {
            let members = self.members(&runner.group).await?;
            let mut inv = RESERVE.prepare_invoke();
            inv.key(self.group_runners_key(&runner.group))
                .key(self.runner_key(&runner.name))
                .key(self.status_key(runner.status))
                .key(self.all_key())
                .key(self.waiting_key(&runner.group))
                .key(self.marker_key())
                .key(self.history_key(&runner.name))
                .key(self.lock_key(lock.map_or("", |l| l.0)))
                .key(self.started_key());
            self.member_keys(&mut inv, &members);
            inv.key(self.status_key(RunnerStatus::Warm))
                .key(self.status_key(RunnerStatus::Creating));
            inv.arg(max)
                .arg(&runner.name)
                .arg(mode)
                .arg(min_free)
                .arg(members.join(","))
                .arg(detail)
                .arg(HISTORY_LEN)
                .arg(HISTORY_TTL.as_secs())
                .arg(token.as_deref().unwrap_or(""))
                .arg(lock.map_or(0, |l| l.1.as_millis() as u64))
                .arg(waiting.map_or(String::new(), |w| w.0.to_string()))
                .arg(waiting.map_or(0, |w| w.1.as_secs().max(1)))
                .arg(FRESH_CREATION_SECS);
            for (k, v) in to_fields(runner) {
                inv.arg(k).arg(v);
            }
            let mut c = self.conn.clone();
            let got: (i64, u32, u32) = inv.invoke_async(&mut c).await?;
            attempt += 1;
            if got.0 == 3 {
                let Some(name) = members.get((got.1 as usize).wrapping_sub(1)) else {
                    return Err(StoreError::Corrupt {
                        key: self.group_runners_key(&runner.group),
                        reason: format!("a warm member {} that is not one", got.1),
                    });
                };
                self.record_event(name, "taken", detail).await;
                let reservation = Reservation::Warm { name: name.clone() };
                return Ok((reservation, token.filter(|_| got.2 == 1)));
            }
            if got.0 != -2 || attempt >= MEMBER_RETRIES {
                break got;
            }
        };
        if code == -2 {
            return Err(StoreError::Corrupt {
                key: self.group_runners_key(&runner.group),
                reason: "its members kept changing while a slot was reserved".into(),
            });
        }
        Ok(match code {
            1 => (Reservation::Reserved { held: a }, token.filter(|_| b == 1)),
            0 => (Reservation::Full { held: a }, None),
            2 => (
                Reservation::Covered {
                    free: a,
                    waiting: b,
                },
                None,
            ),
            _ => (Reservation::Exists, None),
        })
    }

    /// Gives up the reservation `name` (not registered yet) when the group's other free runners
    /// cover its waiting jobs and `min_free`. Atomic, so two runners never both give up a job.
    pub async fn abandon_if_covered(&self, group: &str, name: &str, min_free: u32) -> Result<bool> {
        for _ in 0..MEMBER_RETRIES {
            let members = self.members(group).await?;
            let mut inv = ABANDON.prepare_invoke();
            inv.key(self.group_runners_key(group))
                .key(self.runner_key(name))
                .key(self.waiting_key(group))
                .key(self.all_key());
            self.status_keys(&mut inv);
            self.member_keys(&mut inv, &members);
            inv.arg(members.join(","))
                .arg(name)
                .arg(min_free)
                .arg(STATUS_NAMES.as_str())
                .arg(FRESH_CREATION_SECS);
            let mut c = self.conn.clone();
            let n: i64 = inv.invoke_async(&mut c).await?;
            if n != -2 {
                return Ok(n == 1);
            }
        }
        Ok(false)
    }

    /// A group's waiting jobs and free runners, as the reservation counts them.
    pub async fn supply(&self, group: &str) -> Result<(u32, u32)> {
        for _ in 0..MEMBER_RETRIES {
            let members = self.members(group).await?;
            let mut inv = SUPPLY.prepare_invoke();
            inv.key(self.waiting_key(group))
                .key(self.group_runners_key(group));
            self.member_keys(&mut inv, &members);
            inv.arg(members.join(",")).arg(FRESH_CREATION_SECS);
            let mut c = self.conn.clone();
            let (waiting, free): (i64, i64) = inv.invoke_async(&mut c).await?;
            if waiting != -2 {
                return Ok((waiting.max(0) as u32, free.max(0) as u32));
            }
        }
        Err(StoreError::Corrupt {
            key: self.group_runners_key(group),
            reason: "its members kept changing while counted".into(),
        })
    }

    /// A group's members (runner names), for scripts that declare their keys.
    async fn members(&self, group: &str) -> Result<Vec<String>> {
        let mut c = self.conn.clone();
        Ok(c.smembers(self.group_runners_key(group)).await?)
    }

    /// Declares each member's runner hash and lock key, in order.
    fn member_keys(&self, inv: &mut redis::ScriptInvocation<'_>, members: &[String]) {
        for m in members {
            inv.key(self.runner_key(m))
                .key(format!("{}lock:runner:{m}", self.prefix));
        }
    }

    /// Declares the status sets, in the order of [`STATUS_NAMES`].
    fn status_keys(&self, inv: &mut redis::ScriptInvocation<'_>) {
        for s in RunnerStatus::ALL {
            inv.key(self.status_key(s));
        }
    }

    /// Redis's clock in unix milliseconds. Every age, due time and time to live is measured on
    /// it, so hosts whose clocks differ agree. Sampled at most every [`crate::clock::SAMPLE_FOR`]
    /// (shared by this store's clones), extrapolated in between.
    pub async fn now_ms(&self) -> Result<u64> {
        let sent = std::time::Instant::now();
        if let Some(ms) = self.clock.now_ms(sent) {
            return Ok(ms);
        }
        let mut c = self.conn.clone();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
        let ms = secs * 1000 + micros / 1000;
        self.clock.record(ms, sent, std::time::Instant::now());
        Ok(ms)
    }

    /// Redis's clock in unix seconds.
    pub async fn now(&self) -> Result<u64> {
        Ok(self.now_ms().await? / 1000)
    }

    /// Changes a runner's status (when `status` is given) and attributes, only if its current
    /// status is one of `expect` (any, when empty).
    pub async fn update(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        expect: &[RunnerStatus],
        patch: &RunnerPatch,
    ) -> Result<Transition> {
        Ok(self.update_reading(name, status, expect, patch).await?.0)
    }

    /// [`RedisStore::update`], and the record as the change left it (when it was made), read in
    /// the same round trip.
    pub async fn update_reading(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        expect: &[RunnerStatus],
        patch: &RunnerPatch,
    ) -> Result<(Transition, Option<Runner>)> {
        // The history entry's detail, used only when the status changes.
        let detail: Vec<String> = patch
            .pairs()
            .into_iter()
            .filter(|(k, v)| {
                !v.is_empty() && matches!(*k, "instance_id" | "forge_id" | "job_id" | "error")
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut inv = UPDATE.prepare_invoke();
        inv.key(self.runner_key(name));
        self.status_keys(&mut inv);
        inv.key(self.history_key(name));
        inv.arg(STATUS_NAMES.as_str())
            .arg(status.map(|s| s.as_str()).unwrap_or(""))
            .arg(
                expect
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg(detail.join(" "))
            .arg(HISTORY_LEN)
            .arg(HISTORY_TTL.as_secs());
        for (k, v) in patch.pairs() {
            inv.arg(k).arg(v);
        }
        let mut c = self.conn.clone();
        let reply: Vec<String> = inv.invoke_async(&mut c).await?;
        let parse = |s: Option<&String>| {
            s.and_then(|s| RunnerStatus::parse(s))
                .ok_or_else(|| StoreError::Corrupt {
                    key: self.runner_key(name),
                    reason: format!("unexpected update reply {reply:?}"),
                })
        };
        match reply.first().map(String::as_str) {
            Some("done") => {
                let previous = parse(reply.get(1))?;
                let fields: HashMap<String, String> = reply[2..]
                    .chunks_exact(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                let key = self.runner_key(name);
                Ok((
                    Transition::Done(previous),
                    Some(from_fields(&key, &fields)?),
                ))
            }
            Some("refused") => Ok((Transition::Refused(parse(reply.get(1))?), None)),
            _ => Ok((Transition::Missing, None)),
        }
    }

    /// Removes a runner's record and releases its slot. Returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool> {
        self.remove_of(name, None).await
    }

    /// [`RedisStore::remove`] of a runner whose group the caller read: one round trip when
    /// the record still names that group.
    pub async fn remove_of(&self, name: &str, group: Option<&str>) -> Result<bool> {
        let mut group = group.map(str::to_string);
        for _ in 0..MEMBER_RETRIES {
            let mut c = self.conn.clone();
            let g = match group.take() {
                Some(g) => g,
                None => {
                    let read: Option<String> = c.hget(self.runner_key(name), "group").await?;
                    let Some(g) = read else {
                        return Ok(false);
                    };
                    g
                }
            };
            let mut inv = REMOVE.prepare_invoke();
            inv.key(self.runner_key(name))
                .key(self.all_key())
                .key(self.group_runners_key(&g));
            self.status_keys(&mut inv);
            inv.key(self.history_key(name));
            inv.arg(STATUS_NAMES.as_str())
                .arg(&g)
                .arg(HISTORY_LEN)
                .arg(HISTORY_TTL.as_secs());
            let n: i64 = inv.invoke_async(&mut c).await?;
            if n != -2 {
                return Ok(n == 1);
            }
        }
        Ok(false)
    }

    /// Notes steps of a job's timeline (`RunnerStore::note_job`): each field set only when
    /// absent, the timeline kept [`crate::records::TIMELINE_TTL`] after its last note.
    pub async fn note_job(
        &self,
        job_id: u64,
        times: &[(&str, u64)],
        texts: &[(&str, &str)],
    ) -> Result<()> {
        let now_ms = match times.iter().any(|(_, at)| *at == 0) {
            true => self.now_ms().await?,
            false => 0,
        };
        let key = crate::records::timeline_key(&self.prefix, job_id);
        let ttl = crate::records::TIMELINE_TTL.as_secs() as i64;
        let mut pipe = redis::pipe();
        for (step, at) in times {
            let at = if *at == 0 { now_ms } else { *at };
            pipe.hset_nx(&key, *step, at).ignore();
        }
        for (k, v) in texts {
            pipe.hset_nx(&key, *k, *v).ignore();
        }
        pipe.expire(&key, ttl).ignore();
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// A job's timeline as noted, with its runner's steps.
    pub async fn job_timeline(
        &self,
        job_id: u64,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let mut c = self.conn.clone();
        let mut t: std::collections::BTreeMap<String, String> = c
            .hgetall(crate::records::timeline_key(&self.prefix, job_id))
            .await?;
        if let Some(runner) = t.get("runner").cloned() {
            let key = crate::records::timeline_runner_key(&self.prefix, &runner);
            let more: std::collections::BTreeMap<String, String> = c.hgetall(key).await?;
            for (k, v) in more {
                t.entry(k).or_insert(v);
            }
        }
        Ok(t)
    }

    /// Appends to a runner's history; best effort (a failure is logged, never the caller's).
    pub async fn record_event(&self, name: &str, event: &str, detail: &str) {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<i64> = HISTORY
            .key(self.history_key(name))
            .arg(event)
            .arg(detail)
            .arg(HISTORY_LEN)
            .arg(HISTORY_TTL.as_secs())
            .invoke_async(&mut c)
            .await;
        if let Err(e) = r {
            tracing::warn!(runner = name, error = %e, "could not record the runner's history");
        }
    }

    /// A runner's history, oldest first (kept 7 days after its last entry).
    pub async fn history(&self, name: &str) -> Result<Vec<Event>> {
        let mut c = self.conn.clone();
        let key = self.history_key(name);
        let raw: Vec<String> = c.lrange(&key, 0, -1).await?;
        raw.iter()
            .map(|e| {
                serde_json::from_str(e).map_err(|err| StoreError::Corrupt {
                    key: key.clone(),
                    reason: format!("a history entry is not JSON: {err}"),
                })
            })
            .collect()
    }

    pub async fn get(&self, name: &str) -> Result<Option<Runner>> {
        let mut c = self.conn.clone();
        let key = self.runner_key(name);
        let fields: HashMap<String, String> = c.hgetall(&key).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        from_fields(&key, &fields).map(Some)
    }

    /// The runners named in a set, read in one round trip.
    async fn runners_in(&self, set: &str) -> Result<Vec<Runner>> {
        let mut c = self.conn.clone();
        let mut names: Vec<String> = c.smembers(set).await?;
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.hgetall(self.runner_key(n));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (name, fields) in names.iter().zip(rows) {
            // A name whose record vanished between the two reads is simply gone.
            if !fields.is_empty() {
                out.push(from_fields(&self.runner_key(name), &fields)?);
            }
        }
        Ok(out)
    }

    pub async fn runners_of_group(&self, group: &str) -> Result<Vec<Runner>> {
        self.runners_in(&self.group_runners_key(group)).await
    }

    pub async fn runners_with_status(&self, status: RunnerStatus) -> Result<Vec<Runner>> {
        self.runners_in(&self.status_key(status)).await
    }

    pub async fn all_runners(&self) -> Result<Vec<Runner>> {
        self.runners_in(&self.all_key()).await
    }

    /// How many slots of the group are held.
    pub async fn held(&self, group: &str) -> Result<u32> {
        let mut c = self.conn.clone();
        Ok(c.scard(self.group_runners_key(group)).await?)
    }
}

fn to_fields(r: &Runner) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("name", r.name.clone()),
        ("group", r.group.clone()),
        ("backend", r.backend.clone()),
        ("labels", r.labels.join(",")),
        ("status", r.status.as_str().to_string()),
        ("created_at", r.created_at.to_string()),
    ];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            f.push((k, v));
        }
    };
    opt("instance_id", r.instance_id.clone());
    opt("forge_id", r.forge_id.map(|v| v.to_string()));
    opt("created_for_job", r.created_for_job.map(|v| v.to_string()));
    opt("job_id", r.job_id.map(|v| v.to_string()));
    opt("requested_at", r.requested_at.map(|v| v.to_string()));
    opt("started_at", r.started_at.map(|v| v.to_string()));
    opt("online_at", r.online_at.map(|v| v.to_string()));
    opt("ended_at", r.ended_at.map(|v| v.to_string()));
    opt("error", r.error.clone());
    opt("pool", r.pool.map(|p| p.as_str().to_string()));
    f
}

fn from_fields(key: &str, f: &HashMap<String, String>) -> Result<Runner> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let req = |k: &str| {
        f.get(k)
            .cloned()
            .ok_or_else(|| corrupt(format!("missing field `{k}`")))
    };
    let num = |k: &str| -> Result<Option<u64>> {
        f.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| corrupt(format!("field `{k}` is not a number: {v:?}")))
            })
            .transpose()
    };
    let status = req("status")?;
    Ok(Runner {
        name: req("name")?,
        group: req("group")?,
        backend: req("backend")?,
        instance_id: f.get("instance_id").cloned(),
        forge_id: num("forge_id")?,
        labels: f
            .get("labels")
            .map(|l| {
                l.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        status: RunnerStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?,
        created_for_job: num("created_for_job")?,
        job_id: num("job_id")?,
        created_at: num("created_at")?.unwrap_or(0),
        requested_at: num("requested_at")?,
        started_at: num("started_at")?,
        online_at: num("online_at")?,
        ended_at: num("ended_at")?,
        error: f.get("error").cloned(),
        pool: match f.get("pool") {
            None => None,
            Some(p) => Some(
                crate::model::Pool::parse(p)
                    .ok_or_else(|| corrupt(format!("unknown pool {p:?}")))?,
            ),
        },
    })
}

impl RedisStore {
    /// Adds one to the counter `mark` (used by the no-op task that tests and benchmarks the
    /// queue) and returns the new count.
    pub async fn count_mark(&self, mark: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(c.hincr(format!("{}marks", self.prefix), mark, 1).await?)
    }

    /// Every counter whose name starts with `prefix`, by the rest of its name.
    pub async fn marks_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let mut c = self.conn.clone();
        let all: std::collections::BTreeMap<String, u64> =
            c.hgetall(format!("{}marks", self.prefix)).await?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v)))
            .collect())
    }

    /// Notes that a scope's (`orgs/ORG`) reusable registration token was handed out.
    pub async fn note_token_use(&self, scope: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: u64 = c
            .hincr(
                format!("{}forge-tokens", self.prefix),
                format!("{scope}:uses"),
                1,
            )
            .await?;
        Ok(())
    }

    /// How often a scope's token was handed out since it was last replaced, and when that was
    /// (Redis seconds; `None`: never by runnerctl).
    pub async fn token_state(&self, scope: &str) -> Result<(u64, Option<u64>)> {
        let mut c = self.conn.clone();
        let (uses, at): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(format!("{}forge-tokens", self.prefix))
            .arg(format!("{scope}:uses"))
            .arg(format!("{scope}:replaced_at"))
            .query_async(&mut c)
            .await?;
        Ok((uses.unwrap_or(0), at))
    }

    /// Records a replacement of the scope's token at `at`, the `uses` seen before it counted.
    pub async fn token_replaced(&self, scope: &str, uses: u64, at: u64) -> Result<()> {
        let mut c = self.conn.clone();
        let key = format!("{}forge-tokens", self.prefix);
        let _: () = redis::pipe()
            .atomic()
            .hincr(&key, format!("{scope}:uses"), -(uses as i64))
            .ignore()
            .hset(&key, format!("{scope}:replaced_at"), at)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// The counter `mark`.
    pub async fn mark(&self, mark: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.hget(format!("{}marks", self.prefix), mark).await?;
        Ok(v.unwrap_or(0))
    }
}

/// Extends a lock only if this holder still has it.
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/store_renew.lua")));

/// Releases a lock only if this holder still has it.
static UNLOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/store_unlock.lua")));

/// A shared hold on a lock unless it is held exclusively: KEYS the lock, its shared holds. ARGV
/// token, time to live (ms).
static LOCK_SHARED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/store_lock_shared.lua")));

/// A lock taken exclusively when nobody holds it, shared or not: KEYS the lock, its shared
/// holds. ARGV token, time to live (ms).
static LOCK_EXCLUSIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/store_lock_exclusive.lua")));

impl RedisStore {
    fn waiting_key(&self, group: &str) -> String {
        format!("{}group:{group}:waiting", self.prefix)
    }

    /// The ids of a group's waiting jobs (not expired).
    pub async fn waiting_jobs(&self, group: &str) -> Result<Vec<u64>> {
        let now = self.now().await?;
        let mut c = self.conn.clone();
        Ok(c.zrangebyscore(self.waiting_key(group), now, "+inf")
            .await?)
    }

    /// Jobs of a group waiting and not expired.
    /// How long the group's oldest waiting job has waited, in Redis seconds (0 when none
    /// waits). A job's score is when it stops counting, `ttl` after it was queued.
    pub async fn oldest_waiting_secs(&self, group: &str, ttl: Duration) -> Result<u64> {
        let mut c = self.conn.clone();
        let (now, _): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
        let first: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.waiting_key(group))
            .arg(now)
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut c)
            .await?;
        Ok(first.first().map_or(0, |(_, expires)| {
            now.saturating_sub((*expires as u64).saturating_sub(ttl.as_secs()))
        }))
    }

    pub async fn waiting(&self, group: &str) -> Result<u32> {
        Ok(self.supply(group).await?.0)
    }

    /// Takes the lock `name` for `ttl` unless someone holds it; returns the holder's token.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        let token = format!("{:016x}", fastrand::u64(..));
        let ok: Option<String> = redis::cmd("SET")
            .arg(self.lock_key(name))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(ok.map(|_| token))
    }

    /// Extends the lock `name` by `ttl` if this holder still has it; false when it was lost.
    pub async fn renew_lock(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        let mut inv = RENEW.prepare_invoke();
        inv.key(format!("{}lock:{name}", self.prefix))
            .arg(token)
            .arg(ttl.as_millis() as u64);
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok(n == 1)
    }

    pub async fn unlock(&self, name: &str, token: &str) -> Result<()> {
        let mut inv = UNLOCK.prepare_invoke();
        inv.key(format!("{}lock:{name}", self.prefix)).arg(token);
        let mut c = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut c).await?;
        Ok(())
    }

    fn shared_key(&self, name: &str) -> String {
        format!("{}lock:{name}:shared", self.prefix)
    }

    /// A shared hold on the lock `name` for `ttl`, which any number of holders may have at
    /// once, unless someone holds it with [`RedisStore::try_lock_exclusive`]: the hold's token.
    pub async fn try_lock_shared(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        self.lock_by(&LOCK_SHARED, name, ttl).await
    }

    /// Gives up a shared hold.
    pub async fn unlock_shared(&self, name: &str, token: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = c.zrem(self.shared_key(name), token).await?;
        Ok(())
    }

    /// The lock `name` for `ttl`, when nobody holds it, shared or exclusively; released with
    /// [`RedisStore::unlock`].
    pub async fn try_lock_exclusive(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        self.lock_by(&LOCK_EXCLUSIVE, name, ttl).await
    }

    /// Runs a lock script (KEYS the lock, its shared holds; ARGV token, ttl ms; 1 when held)
    /// with a new token: the token when it holds.
    async fn lock_by(&self, script: &Script, name: &str, ttl: Duration) -> Result<Option<String>> {
        let token = format!("{:016x}", fastrand::u64(..));
        let mut inv = script.prepare_invoke();
        inv.key(self.lock_key(name))
            .key(self.shared_key(name))
            .arg(&token)
            .arg(ttl.as_millis() as u64);
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok((n == 1).then_some(token))
    }
}

impl RedisStore {
    /// Advances a round-robin cursor by one and returns its previous value.
    pub async fn next_cursor(&self, name: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: u64 = c.incr(format!("{}cursor:{name}", self.prefix), 1).await?;
        Ok(v - 1)
    }

    /// What [`RedisStore::next_cursor`] would answer next, moving nothing (a dry run).
    pub async fn peek_cursor(&self, name: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.get(format!("{}cursor:{name}", self.prefix)).await?;
        Ok(v.unwrap_or(0))
    }
}

impl RedisStore {
    fn started_key(&self) -> String {
        format!("{}jobs:started", self.prefix)
    }

    /// Remembers that a job started (or ended), for a day by Redis's clock, and removes it
    /// from the waiting jobs of `groups`; the record of `runner` (the one the event names), read
    /// in the same round trip.
    pub async fn mark_job_started(
        &self,
        groups: &[String],
        job_id: u64,
        runner: Option<&str>,
    ) -> Result<Option<Runner>> {
        let key = self.runner_key(runner.unwrap_or(""));
        let mut inv = JOB_STARTED.prepare_invoke();
        inv.key(self.started_key()).key(&key);
        for g in groups {
            inv.key(self.waiting_key(g));
        }
        inv.arg(job_id);
        let mut c = self.conn.clone();
        let fields: HashMap<String, String> = inv.invoke_async(&mut c).await?;
        if runner.is_none() || fields.is_empty() {
            return Ok(None);
        }
        from_fields(&key, &fields).map(Some)
    }

    /// Whether a job has started already.
    pub async fn job_started(&self, job_id: u64) -> Result<bool> {
        let mut c = self.conn.clone();
        let score: Option<f64> = c.zscore(self.started_key(), job_id).await?;
        Ok(score.is_some())
    }
}

/// Records when each suspect was first seen (Redis seconds) and forgets the ones no longer
/// suspected. KEYS suspects zset. ARGV members. Returns their first-seen times, in order.
static FIRST_SEEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_first_seen.lua")
    ))
});

/// Reads the marker, writing it when missing: KEYS marker. ARGV hold secs when written now.
/// Returns {created_at, hold_until, written_now}.
static MARKER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/supply.lua"),
        include_str!("lua/store_marker.lua")
    ))
});

impl RedisStore {
    fn marker_key(&self) -> String {
        format!("{}marker", self.prefix)
    }

    /// The data marker, and whether it was missing (and written now with a hold of `hold`, which
    /// is zero when nothing suggests data was lost).
    pub async fn marker(&self, hold_if_missing: Duration) -> Result<(Marker, bool)> {
        let mut inv = MARKER.prepare_invoke();
        inv.key(self.marker_key()).arg(hold_if_missing.as_secs());
        let mut c = self.conn.clone();
        let (created_at, hold_until, written): (u64, u64, i64) = inv.invoke_async(&mut c).await?;
        Ok((
            Marker {
                created_at,
                hold_until,
            },
            written == 1,
        ))
    }

    /// The data marker as [`RedisStore::marker`] would answer, written by nobody (a dry run):
    /// when missing, as if it were written at `now`.
    pub async fn peek_marker(&self, hold_if_missing: Duration, now: u64) -> Result<(Marker, bool)> {
        let mut c = self.conn.clone();
        let (created_at, hold_until): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.marker_key())
            .arg("created_at")
            .arg("hold_until")
            .query_async(&mut c)
            .await?;
        Ok(match created_at {
            Some(created_at) => (
                Marker {
                    created_at,
                    hold_until: hold_until.unwrap_or(0),
                },
                false,
            ),
            None => (Marker::written_at(now, hold_if_missing), true),
        })
    }

    /// When each suspect was first seen, as [`RedisStore::first_seen`] would answer, remembering
    /// nothing (a dry run): one not seen before is seen at `now`.
    pub async fn peek_first_seen(
        &self,
        group: &str,
        suspects: &[String],
        now: u64,
    ) -> Result<Vec<u64>> {
        if suspects.is_empty() {
            return Ok(Vec::new());
        }
        let key = format!("{}group:{group}:suspects", self.prefix);
        let mut pipe = redis::pipe();
        for s in suspects {
            pipe.cmd("ZSCORE").arg(&key).arg(s);
        }
        let mut c = self.conn.clone();
        let scores: Vec<Option<f64>> = pipe.query_async(&mut c).await?;
        Ok(scores
            .into_iter()
            .map(|s| s.map_or(now, |v| v as u64))
            .collect())
    }

    /// When each of a group's suspects (instances or forge runners with no record, by a key of the
    /// caller's) was first seen, in Redis seconds. Suspects not listed are forgotten.
    pub async fn first_seen(&self, group: &str, suspects: &[String]) -> Result<Vec<u64>> {
        let mut inv = FIRST_SEEN.prepare_invoke();
        inv.key(format!("{}group:{group}:suspects", self.prefix));
        for s in suspects {
            inv.arg(s);
        }
        let mut c = self.conn.clone();
        let out: Vec<u64> = inv.invoke_async(&mut c).await?;
        Ok(out)
    }
}

/// The port, by the inherent methods above.
#[async_trait::async_trait]
impl RunnerStore for RedisStore {
    async fn now(&self) -> Result<u64> {
        RedisStore::now(self).await
    }
    async fn now_ms(&self) -> Result<u64> {
        RedisStore::now_ms(self).await
    }
    async fn get(&self, name: &str) -> Result<Option<Runner>> {
        RedisStore::get(self, name).await
    }
    async fn all_runners(&self) -> Result<Vec<Runner>> {
        RedisStore::all_runners(self).await
    }
    async fn runners_of_group(&self, group: &str) -> Result<Vec<Runner>> {
        RedisStore::runners_of_group(self, group).await
    }
    async fn history(&self, name: &str) -> Result<Vec<Event>> {
        RedisStore::history(self, name).await
    }
    async fn reserve_noting(
        &self,
        runner: &Runner,
        max: u32,
        want: Want,
        also: Also<'_>,
    ) -> Result<(Reservation, Option<String>)> {
        RedisStore::reserve_noting(self, runner, max, want, also).await
    }
    async fn update_reading(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        expect: &[RunnerStatus],
        patch: &RunnerPatch,
    ) -> Result<(Transition, Option<Runner>)> {
        RedisStore::update_reading(self, name, status, expect, patch).await
    }
    async fn abandon_if_covered(&self, group: &str, name: &str, min_free: u32) -> Result<bool> {
        RedisStore::abandon_if_covered(self, group, name, min_free).await
    }
    async fn remove_of(&self, name: &str, group: Option<&str>) -> Result<bool> {
        RedisStore::remove_of(self, name, group).await
    }
    async fn mark_job_started(
        &self,
        groups: &[String],
        job_id: u64,
        runner: Option<&str>,
    ) -> Result<Option<Runner>> {
        RedisStore::mark_job_started(self, groups, job_id, runner).await
    }
    async fn job_started(&self, job_id: u64) -> Result<bool> {
        RedisStore::job_started(self, job_id).await
    }
    async fn waiting_jobs(&self, group: &str) -> Result<Vec<u64>> {
        RedisStore::waiting_jobs(self, group).await
    }
    async fn waiting(&self, group: &str) -> Result<u32> {
        RedisStore::waiting(self, group).await
    }
    async fn oldest_waiting_secs(&self, group: &str, ttl: Duration) -> Result<u64> {
        RedisStore::oldest_waiting_secs(self, group, ttl).await
    }
    async fn supply(&self, group: &str) -> Result<(u32, u32)> {
        RedisStore::supply(self, group).await
    }
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        RedisStore::try_lock(self, name, ttl).await
    }
    async fn renew_lock(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        RedisStore::renew_lock(self, name, token, ttl).await
    }
    async fn unlock(&self, name: &str, token: &str) -> Result<()> {
        RedisStore::unlock(self, name, token).await
    }
    async fn try_lock_shared(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        RedisStore::try_lock_shared(self, name, ttl).await
    }
    async fn unlock_shared(&self, name: &str, token: &str) -> Result<()> {
        RedisStore::unlock_shared(self, name, token).await
    }
    async fn try_lock_exclusive(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        RedisStore::try_lock_exclusive(self, name, ttl).await
    }
    async fn count_mark(&self, mark: &str) -> Result<u64> {
        RedisStore::count_mark(self, mark).await
    }
    async fn marks_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        RedisStore::marks_with_prefix(self, prefix).await
    }
    async fn note_token_use(&self, scope: &str) -> Result<()> {
        RedisStore::note_token_use(self, scope).await
    }
    async fn token_state(&self, scope: &str) -> Result<(u64, Option<u64>)> {
        RedisStore::token_state(self, scope).await
    }
    async fn token_replaced(&self, scope: &str, uses: u64, at: u64) -> Result<()> {
        RedisStore::token_replaced(self, scope, uses, at).await
    }
    async fn next_cursor(&self, name: &str) -> Result<u64> {
        RedisStore::next_cursor(self, name).await
    }
    async fn peek_cursor(&self, name: &str) -> Result<u64> {
        RedisStore::peek_cursor(self, name).await
    }
    async fn breaker(&self, key: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(c.get(format!("{}breaker:{key}", self.prefix)).await?)
    }
    async fn set_breaker(&self, key: &str, value: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c
            .set(format!("{}breaker:{key}", self.prefix), value)
            .await?;
        Ok(())
    }
    async fn marker(&self, hold_if_missing: Duration) -> Result<(Marker, bool)> {
        RedisStore::marker(self, hold_if_missing).await
    }
    async fn peek_marker(&self, hold_if_missing: Duration, now: u64) -> Result<(Marker, bool)> {
        RedisStore::peek_marker(self, hold_if_missing, now).await
    }
    async fn first_seen(&self, group: &str, suspects: &[String]) -> Result<Vec<u64>> {
        RedisStore::first_seen(self, group, suspects).await
    }
    async fn note_job(
        &self,
        job_id: u64,
        times: &[(&str, u64)],
        texts: &[(&str, &str)],
    ) -> Result<()> {
        RedisStore::note_job(self, job_id, times, texts).await
    }
    async fn job_timeline(
        &self,
        job_id: u64,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        RedisStore::job_timeline(self, job_id).await
    }
    async fn peek_first_seen(
        &self,
        group: &str,
        suspects: &[String],
        now: u64,
    ) -> Result<Vec<u64>> {
        RedisStore::peek_first_seen(self, group, suspects, now).await
    }
}
