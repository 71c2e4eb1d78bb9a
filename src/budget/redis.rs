//! The budget in Redis, shared by every process: one Lua script per step, on Redis's clock.
//! Keys: `runnerctl-budget:{CREDENTIAL}:…`, outside any deployment's namespace on purpose:
//! two deployments that share a Redis and a credential share its budget. The hash tag keeps
//! a credential's keys in one slot of a Redis Cluster.

use super::gcra::Params;
use super::memory::LEASE;
use super::{Ask, Budget, BudgetError, Primary, Short, Status, Take};
use crate::conn::{Conn, RedisTarget};
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

static TAKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/budget_take.lua")));
static DONE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/budget_done.lua")));
static PAUSE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/budget_pause.lua")));
static STATUS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/budget_status.lua")));

/// How long one step may take before the budget is given up on for this call.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// The budget on a Redis, connected on first use (a command that never calls the forge never
/// connects).
pub struct RedisBudget {
    target: Option<RedisTarget>,
    conn: tokio::sync::OnceCell<Conn>,
    /// When connecting last failed (unix s): not tried again for [`RETRY_CONNECT`].
    failed_at: std::sync::atomic::AtomicU64,
}

/// How long a failed connection is not tried again.
const RETRY_CONNECT: u64 = 30;

impl RedisBudget {
    /// A budget on the Redis `target`, connected when first asked.
    pub fn lazy(target: RedisTarget) -> RedisBudget {
        RedisBudget {
            target: Some(target),
            conn: tokio::sync::OnceCell::new(),
            failed_at: Default::default(),
        }
    }

    /// A budget on an open connection.
    pub fn on(conn: Conn) -> RedisBudget {
        RedisBudget {
            target: None,
            conn: tokio::sync::OnceCell::new_with(Some(conn)),
            failed_at: Default::default(),
        }
    }

    async fn conn(&self) -> Result<Conn, BudgetError> {
        use std::sync::atomic::Ordering;
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let now = crate::model::unix_now();
        let failed = self.failed_at.load(Ordering::Relaxed);
        if failed > 0 && now < failed + RETRY_CONNECT {
            return Err(BudgetError::Unreachable(
                "the last attempt failed; trying again shortly".into(),
            ));
        }
        let Some(t) = &self.target else {
            return Err(BudgetError::Unreachable("no connection".into()));
        };
        let connected = self
            .conn
            .get_or_try_init(|| async {
                match tokio::time::timeout(STEP_TIMEOUT, crate::conn::connect_to(t)).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(BudgetError::Unreachable(e.to_string())),
                    Err(_) => Err(BudgetError::Unreachable(format!(
                        "{} did not answer within {}s",
                        t.redacted(),
                        STEP_TIMEOUT.as_secs()
                    ))),
                }
            })
            .await
            .cloned();
        if connected.is_err() {
            self.failed_at.store(now, Ordering::Relaxed);
        }
        connected
    }

    fn key(credential: &str, what: &str) -> String {
        format!("runnerctl-budget:{{{credential}}}:{what}")
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, BudgetError> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(STEP_TIMEOUT, inv.invoke_async(&mut c)).await {
            Ok(r) => r.map_err(|e| BudgetError::Store(e.to_string())),
            Err(_) => Err(BudgetError::Store(format!(
                "no answer within {}s",
                STEP_TIMEOUT.as_secs()
            ))),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

#[async_trait::async_trait]
impl Budget for RedisBudget {
    async fn take(&self, ask: &Ask<'_>) -> Result<Take, BudgetError> {
        let p = Params::of(ask);
        let lease = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let mut inv = TAKE.prepare_invoke();
        inv.key(Self::key(ask.credential, &format!("tat:{}", ask.class)))
            .key(Self::key(ask.credential, "leases"))
            .key(Self::key(ask.credential, "primary"))
            .key(Self::key(ask.credential, "pauses"))
            .arg(p.cost)
            .arg(p.interval_us)
            .arg(p.tolerance_us)
            .arg(p.max_in_flight)
            .arg(p.primary_reserve_permille)
            .arg(&lease)
            .arg(LEASE.as_millis() as u64)
            .arg(ask.class);
        let v: Vec<Value> = self.run(inv).await?;
        match v.as_slice() {
            [Value::Int(1), l] => Ok(Take::Granted { lease: text(l) }),
            [Value::Int(0), Value::Int(wait), why] => Ok(Take::Wait {
                wait: Duration::from_millis((*wait).max(1) as u64),
                why: Short::parse(&text(why)).unwrap_or(Short::Rate),
            }),
            other => Err(BudgetError::Store(format!(
                "unexpected answer from budget_take.lua: {other:?}"
            ))),
        }
    }

    async fn done(
        &self,
        credential: &str,
        lease: &str,
        primary: Option<Primary>,
    ) -> Result<(), BudgetError> {
        let mut inv = DONE.prepare_invoke();
        inv.key(Self::key(credential, "leases"))
            .key(Self::key(credential, "primary"))
            .arg(lease);
        match primary {
            Some(p) => inv
                .arg(p.limit)
                .arg(p.remaining)
                .arg(p.resets_in.as_millis() as u64),
            None => inv.arg("").arg("").arg(""),
        };
        let _: i64 = self.run(inv).await?;
        Ok(())
    }

    async fn pause(
        &self,
        credential: &str,
        class: &str,
        wait: Duration,
    ) -> Result<(), BudgetError> {
        let mut inv = PAUSE.prepare_invoke();
        inv.key(Self::key(credential, "pauses"))
            .arg(class)
            .arg(wait.as_millis() as u64);
        let _: i64 = self.run(inv).await?;
        Ok(())
    }

    async fn status(&self, credential: &str) -> Result<Status, BudgetError> {
        let mut inv = STATUS.prepare_invoke();
        inv.key(Self::key(credential, "leases"))
            .key(Self::key(credential, "primary"))
            .key(Self::key(credential, "pauses"));
        let v: Vec<Value> = self.run(inv).await?;
        let bad = || BudgetError::Store("unexpected answer from budget_status.lua".into());
        let in_flight = match v.first() {
            Some(Value::Int(n)) => *n as u32,
            _ => return Err(bad()),
        };
        let num = |i: usize| v.get(i).map(text).and_then(|s| s.parse::<u64>().ok());
        let primary = match (num(1), num(2)) {
            (Some(l), Some(r)) => Some((l, r)),
            _ => None,
        };
        let mut pauses = Vec::new();
        let mut i = 4;
        while i + 1 < v.len() {
            let ms = num(i + 1).ok_or_else(bad)?;
            pauses.push((text(&v[i]), Duration::from_millis(ms)));
            i += 2;
        }
        pauses.sort();
        Ok(Status {
            pauses,
            in_flight,
            primary,
        })
    }
}
