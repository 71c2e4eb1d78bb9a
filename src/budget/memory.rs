//! The budget in one process's memory, on a [`Clock`]: for the simulator and the tests.

use super::gcra::{decide, Decision, Params, State};
use super::{Ask, Budget, BudgetError, Primary, Status, Take, ALL_CLASSES};
use crate::clock::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a lease holds its place when its request never reports back (a killed process).
pub(super) const LEASE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Credential {
    /// Each class's theoretical arrival time (µs).
    tat: HashMap<String, u64>,
    /// Lease → its expiry (ms).
    leases: HashMap<String, u64>,
    /// Class (or `*`) → end of its pause (ms).
    pauses: HashMap<String, u64>,
    /// (limit, remaining, reset ms).
    primary: Option<(u64, u64, u64)>,
}

pub struct MemoryBudget {
    clock: Arc<dyn Clock>,
    credentials: Mutex<HashMap<String, Credential>>,
    next: std::sync::atomic::AtomicU64,
}

impl MemoryBudget {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryBudget {
        MemoryBudget {
            clock,
            credentials: Mutex::default(),
            next: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Budget for MemoryBudget {
    async fn take(&self, ask: &Ask<'_>) -> Result<Take, BudgetError> {
        let now_ms = self.clock.now_ms();
        let mut all = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        let c = all.entry(ask.credential.to_string()).or_default();
        c.leases.retain(|_, exp| *exp > now_ms);
        let paused = |k: &str| c.pauses.get(k).copied().unwrap_or(0);
        let state = State {
            paused_until_ms: paused(ask.class).max(paused(ALL_CLASSES)),
            primary: c.primary,
            in_flight: c.leases.len() as u64,
            tat_us: c.tat.get(ask.class).copied().unwrap_or(0),
        };
        match decide(&state, &Params::of(ask), now_ms * 1000) {
            Decision::Go { tat_us } => {
                c.tat.insert(ask.class.to_string(), tat_us);
                let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let lease = format!("m{n}");
                c.leases
                    .insert(lease.clone(), now_ms + LEASE.as_millis() as u64);
                Ok(Take::Granted { lease })
            }
            Decision::Wait { wait_ms, why } => Ok(Take::Wait {
                wait: Duration::from_millis(wait_ms),
                why,
            }),
        }
    }

    async fn done(
        &self,
        credential: &str,
        lease: &str,
        primary: Option<Primary>,
    ) -> Result<(), BudgetError> {
        let now_ms = self.clock.now_ms();
        let mut all = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        let c = all.entry(credential.to_string()).or_default();
        c.leases.remove(lease);
        if let Some(p) = primary {
            c.primary = Some((
                p.limit,
                p.remaining,
                now_ms + p.resets_in.as_millis() as u64,
            ));
        }
        Ok(())
    }

    async fn pause(
        &self,
        credential: &str,
        class: &str,
        wait: Duration,
    ) -> Result<(), BudgetError> {
        let until = self.clock.now_ms() + wait.as_millis() as u64;
        let mut all = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        let c = all.entry(credential.to_string()).or_default();
        let e = c.pauses.entry(class.to_string()).or_default();
        *e = (*e).max(until);
        Ok(())
    }

    async fn status(&self, credential: &str) -> Result<Status, BudgetError> {
        let now_ms = self.clock.now_ms();
        let all = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = all.get(credential) else {
            return Ok(Status::default());
        };
        let mut pauses: Vec<(String, Duration)> = c
            .pauses
            .iter()
            .filter(|(_, until)| **until > now_ms)
            .map(|(k, until)| (k.clone(), Duration::from_millis(until - now_ms)))
            .collect();
        pauses.sort();
        Ok(Status {
            pauses,
            in_flight: c.leases.values().filter(|e| **e > now_ms).count() as u32,
            primary: c
                .primary
                .filter(|(_, _, reset)| *reset > now_ms)
                .map(|(l, r, _)| (l, r)),
        })
    }
}
