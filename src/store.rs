//! State in Redis: runner records, their indexes, and group capacity.
//!
//! Keys, all under `runnerctl:{manager}:` so that managers sharing a Redis never meet:
//! - `runner:{name}`: a hash, one field per [`Runner`] attribute;
//! - `group:{group}:runners`: the set of runners of a group. A runner holds its group's slot from
//!   its reservation until its record is removed, so the size of this set is the group's usage
//!   and reserving a slot is one atomic script that checks it against `max_runners`;
//! - `status:{status}`: the set of runners in a status; `runners`: every runner;
//! - `group:{group}`: the group's record (its GitHub id); `groups`: every group record.
//!
//! Every change that touches a record and its indexes is one Lua script, so indexes never
//! disagree with records, whatever process dies when.

use crate::model::{Runner, RunnerStatus};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis is unreachable: {0}")]
    Unavailable(#[source] redis::RedisError),
    #[error("Redis error: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("corrupt record `{key}` in Redis: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if is_connection_error(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Redis(e)
        }
    }
}

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

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens a Redis connection that reconnects by itself after an outage.
pub async fn connect(url: &str) -> Result<ConnectionManager> {
    let client = redis::Client::open(url).map_err(StoreError::Redis)?;
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
        .map_err(StoreError::Unavailable)
}

/// The key prefix of a manager.
pub fn prefix(manager: &str) -> String {
    format!("runnerctl:{manager}:")
}

/// The result of asking for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The slot is held; `held` runners of the group exist now, this one included.
    Reserved { held: u32 },
    /// The group has `max_runners` runners already.
    Full { held: u32 },
    /// A runner of this name exists already (a retried reservation): nothing changed.
    Exists,
}

/// The result of a conditional status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Changed; the status it had before.
    Done(RunnerStatus),
    /// Not changed: the runner's status was not one of those expected.
    Refused(RunnerStatus),
    /// No such runner.
    Missing,
}

/// Attributes to change on a runner record. `Some(None)` clears an attribute.
#[derive(Debug, Clone, Default)]
pub struct RunnerPatch {
    pub instance_id: Option<Option<String>>,
    pub forge_id: Option<Option<u64>>,
    pub job_id: Option<Option<u64>>,
    pub started_at: Option<u64>,
    pub online_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub error: Option<Option<String>>,
}

impl RunnerPatch {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let num = |v: &Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        if let Some(v) = &self.instance_id {
            out.push(("instance_id", opt(v)));
        }
        if let Some(v) = &self.forge_id {
            out.push(("forge_id", num(v)));
        }
        if let Some(v) = &self.job_id {
            out.push(("job_id", num(v)));
        }
        if let Some(v) = self.started_at {
            out.push(("started_at", v.to_string()));
        }
        if let Some(v) = self.online_at {
            out.push(("online_at", v.to_string()));
        }
        if let Some(v) = self.ended_at {
            out.push(("ended_at", v.to_string()));
        }
        if let Some(v) = &self.error {
            out.push(("error", opt(v)));
        }
        out
    }
}

/// What runnerctl remembers of a runner group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupRecord {
    pub name: String,
    /// GitHub's runner group id (None for a repository-scoped group).
    pub forge_group_id: Option<u64>,
    /// Whether runnerctl created the GitHub group (only then may it ever remove it).
    pub created_by_us: bool,
    pub synced_at: Option<u64>,
}

/// Reserve: KEYS group set, runner hash, reserved-status set, all-runners set.
/// ARGV max, name, then field/value pairs of the record.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, redis.call('SCARD', KEYS[1])} end
local held = redis.call('SCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return {0, held} end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
return {1, held + 1}
"#,
    )
});

/// Update: KEYS runner hash. ARGV status-key prefix, new status ('' keeps it), expected statuses
/// (comma separated, '' for any), then field/value pairs ('' value deletes the field).
/// Returns {'missing'} or {'refused', current} or {'done', previous}.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing'} end
if ARGV[3] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[3], '[^,]+') do if s == cur then ok = true end end
  if not ok then return {'refused', cur} end
end
local name = redis.call('HGET', KEYS[1], 'name')
if ARGV[2] ~= '' and ARGV[2] ~= cur then
  redis.call('SREM', ARGV[1] .. cur, name)
  redis.call('SADD', ARGV[1] .. ARGV[2], name)
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return {'done', cur}
"#,
    )
});

/// Remove: KEYS runner hash, all-runners set. ARGV key prefix. Releases the group slot.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local rec = redis.call('HMGET', KEYS[1], 'name', 'group', 'status')
if not rec[1] then return 0 end
redis.call('SREM', ARGV[1] .. 'group:' .. rec[2] .. ':runners', rec[1])
redis.call('SREM', ARGV[1] .. 'status:' .. rec[3], rec[1])
redis.call('SREM', KEYS[2], rec[1])
redis.call('DEL', KEYS[1])
return 1
"#,
    )
});

/// Runner records and group capacity in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisStore {
    pub fn new(conn: ConnectionManager, manager: &str) -> RedisStore {
        RedisStore {
            conn,
            prefix: prefix(manager),
        }
    }

    pub async fn connect(url: &str, manager: &str) -> Result<RedisStore> {
        Ok(RedisStore::new(connect(url).await?, manager))
    }

    fn runner_key(&self, name: &str) -> String {
        format!("{}runner:{name}", self.prefix)
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

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }

    /// Takes a slot of `runner.group` for `runner` when fewer than `max` runners hold one, and
    /// records it, in one atomic step.
    pub async fn reserve(&self, runner: &Runner, max: u32) -> Result<Reservation> {
        let mut inv = RESERVE.prepare_invoke();
        inv.key(self.group_runners_key(&runner.group))
            .key(self.runner_key(&runner.name))
            .key(self.status_key(runner.status))
            .key(self.all_key())
            .arg(max)
            .arg(&runner.name);
        for (k, v) in to_fields(runner) {
            inv.arg(k).arg(v);
        }
        let mut c = self.conn.clone();
        let (code, held): (i64, u32) = inv.invoke_async(&mut c).await?;
        Ok(match code {
            1 => Reservation::Reserved { held },
            0 => Reservation::Full { held },
            _ => Reservation::Exists,
        })
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
        let mut inv = UPDATE.prepare_invoke();
        inv.key(self.runner_key(name))
            .arg(format!("{}status:", self.prefix))
            .arg(status.map(|s| s.as_str()).unwrap_or(""))
            .arg(
                expect
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
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
            Some("done") => Ok(Transition::Done(parse(reply.get(1))?)),
            Some("refused") => Ok(Transition::Refused(parse(reply.get(1))?)),
            _ => Ok(Transition::Missing),
        }
    }

    /// Removes a runner's record and releases its slot. Returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool> {
        let mut inv = REMOVE.prepare_invoke();
        inv.key(self.runner_key(name))
            .key(self.all_key())
            .arg(&self.prefix);
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok(n == 1)
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

    pub async fn put_group(&self, g: &GroupRecord) -> Result<()> {
        let mut c = self.conn.clone();
        let key = format!("{}group:{}", self.prefix, g.name);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .hset_multiple(
                &key,
                &[
                    ("name", g.name.clone()),
                    ("created_by_us", g.created_by_us.to_string()),
                ],
            )
            .sadd(format!("{}groups", self.prefix), &g.name);
        if let Some(id) = g.forge_group_id {
            pipe.hset(&key, "forge_group_id", id);
        }
        if let Some(t) = g.synced_at {
            pipe.hset(&key, "synced_at", t);
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    pub async fn get_group(&self, name: &str) -> Result<Option<GroupRecord>> {
        let mut c = self.conn.clone();
        let key = format!("{}group:{name}", self.prefix);
        let f: HashMap<String, String> = c.hgetall(&key).await?;
        if f.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| -> Result<Option<u64>> {
            f.get(k)
                .map(|v| {
                    v.parse().map_err(|_| StoreError::Corrupt {
                        key: key.clone(),
                        reason: format!("`{k}` is not a number"),
                    })
                })
                .transpose()
        };
        Ok(Some(GroupRecord {
            name: f.get("name").cloned().unwrap_or_else(|| name.to_string()),
            forge_group_id: num("forge_group_id")?,
            created_by_us: f.get("created_by_us").is_some_and(|v| v == "true"),
            synced_at: num("synced_at")?,
        }))
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupRecord>> {
        let mut c = self.conn.clone();
        let mut names: Vec<String> = c.smembers(format!("{}groups", self.prefix)).await?;
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(g) = self.get_group(&n).await? {
                out.push(g);
            }
        }
        Ok(out)
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
    opt("started_at", r.started_at.map(|v| v.to_string()));
    opt("online_at", r.online_at.map(|v| v.to_string()));
    opt("ended_at", r.ended_at.map(|v| v.to_string()));
    opt("error", r.error.clone());
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
        started_at: num("started_at")?,
        online_at: num("online_at")?,
        ended_at: num("ended_at")?,
        error: f.get("error").cloned(),
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

    /// The counter `mark`.
    pub async fn mark(&self, mark: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.hget(format!("{}marks", self.prefix), mark).await?;
        Ok(v.unwrap_or(0))
    }
}

/// Extends a lock only if this holder still has it.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#,
    )
});

/// Releases a lock only if this holder still has it.
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

impl RedisStore {
    fn waiting_key(&self, group: &str) -> String {
        format!("{}group:{group}:waiting", self.prefix)
    }

    /// Notes a job of `group` queued on GitHub and not started yet.
    pub async fn add_waiting(&self, group: &str, job_id: u64, now: u64) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = c.zadd(self.waiting_key(group), job_id, now).await?;
        Ok(())
    }

    /// The job started or ended: it no longer waits, whatever its group.
    pub async fn remove_waiting(&self, groups: &[String], job_id: u64) -> Result<()> {
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for g in groups {
            pipe.zrem(self.waiting_key(g), job_id);
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Jobs of a group waiting, queued after `since` (older entries are forgotten).
    pub async fn waiting(&self, group: &str, since: u64) -> Result<u32> {
        let mut c = self.conn.clone();
        let key = self.waiting_key(group);
        let _: i64 = c.zrembyscore(&key, "-inf", format!("({since}")).await?;
        Ok(c.zcard(&key).await?)
    }

    /// Takes the lock `name` for `ttl` unless someone holds it; returns the holder's token.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        let token = format!("{:016x}", fastrand::u64(..));
        let ok: Option<String> = redis::cmd("SET")
            .arg(format!("{}lock:{name}", self.prefix))
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
}

impl RedisStore {
    /// Advances a round-robin cursor by one and returns its previous value.
    pub async fn next_cursor(&self, name: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: u64 = c.incr(format!("{}cursor:{name}", self.prefix), 1).await?;
        Ok(v - 1)
    }

    /// Whether a runner record was made for `job_id` in `group`.
    pub async fn has_runner_for_job(&self, group: &str, job_id: u64) -> Result<bool> {
        Ok(self
            .runners_of_group(group)
            .await?
            .iter()
            .any(|r| r.created_for_job == Some(job_id) || r.job_id == Some(job_id)))
    }
}

impl RedisStore {
    /// Remembers that a job started (or ended), for a day.
    pub async fn mark_job_started(&self, job_id: u64, now: u64) -> Result<()> {
        let mut c = self.conn.clone();
        let key = format!("{}jobs:started", self.prefix);
        let mut pipe = redis::pipe();
        pipe.zadd(&key, job_id, now).zrembyscore(
            &key,
            "-inf",
            format!("({}", now.saturating_sub(86_400)),
        );
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Whether a job has started already.
    pub async fn job_started(&self, job_id: u64) -> Result<bool> {
        let mut c = self.conn.clone();
        let score: Option<f64> = c
            .zscore(format!("{}jobs:started", self.prefix), job_id)
            .await?;
        Ok(score.is_some())
    }
}
