//! The runner store in one process's memory, on a clock it is given: what simulations and the
//! domain's tests run on. Each method holds one mutex for its whole step, so every step is
//! atomic as a Lua script is in Redis; the contract suite (`tests/store_contract.rs`) holds it
//! to the Redis store's behaviour.

use crate::clock::Clock;
use crate::model::{counts_as_free, Runner, RunnerStatus};
use crate::records::{
    Also, Event, Marker, Reservation, Result, RunnerPatch, RunnerStore, Transition, Want,
    HISTORY_LEN,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a started job is remembered.
const STARTED_FOR: u64 = 86_400;

/// The runner store in memory.
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    runners: BTreeMap<String, Runner>,
    /// Each group's runners: its slots.
    groups: HashMap<String, BTreeSet<String>>,
    /// Each group's waiting jobs, with when each stops counting (seconds).
    waiting: HashMap<String, BTreeMap<u64, u64>>,
    /// Jobs that started or ended, and when (seconds).
    started: HashMap<u64, u64>,
    /// The same marks in the order they were made, to forget the old ones without a scan.
    started_order: std::collections::VecDeque<(u64, u64)>,
    /// Exclusive holds: token and expiry (ms).
    locks: HashMap<String, (String, u64)>,
    /// Shared holds: token to expiry (ms).
    shared: HashMap<String, HashMap<String, u64>>,
    history: HashMap<String, Vec<Event>>,
    /// Runners' histories are kept (not by a simulation: a million runners' would not fit).
    keep_history: bool,
    marks: BTreeMap<String, u64>,
    /// Each scope's token uses and last replacement.
    tokens: HashMap<String, (u64, Option<u64>)>,
    cursors: HashMap<String, u64>,
    breakers: HashMap<String, String>,
    marker: Option<Marker>,
    /// Each group's suspects, with when each was first seen.
    suspects: HashMap<String, HashMap<String, u64>>,
    /// Jobs' timelines (kept with the history).
    timelines: HashMap<u64, BTreeMap<String, String>>,
}

impl State {
    fn held(&self, lock: &str, now_ms: u64) -> bool {
        self.locks
            .get(lock)
            .is_some_and(|(_, until)| *until > now_ms)
    }

    fn shared_held(&mut self, lock: &str, now_ms: u64) -> bool {
        match self.shared.get_mut(lock) {
            Some(holds) => {
                holds.retain(|_, until| *until > now_ms);
                !holds.is_empty()
            }
            None => false,
        }
    }

    /// The group's waiting jobs, expired ones forgotten.
    fn waiting_count(&mut self, group: &str, now: u64) -> u32 {
        let jobs = self.waiting.entry(group.to_string()).or_default();
        jobs.retain(|_, until| *until >= now);
        jobs.len() as u32
    }

    /// The group's free runners but `except`.
    fn free_count(&self, group: &str, except: &str, now: u64, now_ms: u64) -> u32 {
        let Some(members) = self.groups.get(group) else {
            return 0;
        };
        members
            .iter()
            .filter(|m| m.as_str() != except)
            .filter_map(|m| self.runners.get(m))
            .filter(|r| counts_as_free(r, now, self.held(&format!("runner:{}", r.name), now_ms)))
            .count() as u32
    }

    /// The group's warm-pool instance a demand takes: a hot one before a stopped one, the
    /// oldest of each first (the Redis store's reservation script keeps the same order).
    fn warm_to_take(&self, group: &str) -> Option<String> {
        let members = self.groups.get(group)?;
        members
            .iter()
            .filter_map(|m| self.runners.get(m))
            .filter(|r| r.status == RunnerStatus::Warm)
            .min_by_key(|r| {
                (
                    r.pool != Some(crate::model::Pool::Hot),
                    r.created_at,
                    &r.name,
                )
            })
            .map(|r| r.name.clone())
    }

    fn note(&mut self, name: &str, at: u64, event: &str, detail: String) {
        if !self.keep_history {
            return;
        }
        let h = self.history.entry(name.to_string()).or_default();
        h.push(Event {
            at,
            event: event.to_string(),
            detail,
        });
        let keep = HISTORY_LEN as usize;
        if h.len() > keep {
            h.drain(..h.len() - keep);
        }
    }

    fn take(&mut self, lock: &str, ttl: Duration, now_ms: u64) -> Option<String> {
        if self.held(lock, now_ms) {
            return None;
        }
        let token = format!("{:016x}", fastrand::u64(..));
        self.locks.insert(
            lock.to_string(),
            (token.clone(), now_ms + ttl.as_millis() as u64),
        );
        Some(token)
    }
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            clock,
            state: Mutex::new(State {
                keep_history: true,
                ..State::default()
            }),
        }
    }

    /// A store that keeps no runner history (`history` answers empty): a simulation's, whose
    /// millions of runners' histories nothing reads.
    pub fn without_history(clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            clock,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn times(&self) -> (u64, u64) {
        let ms = self.clock.now_ms();
        (ms / 1000, ms)
    }
}

/// The record with `patch` applied, as the Redis store applies it to its hash.
fn patched(r: &Runner, patch: &RunnerPatch) -> Runner {
    let mut r = r.clone();
    let num = |v: &str| v.parse::<u64>().ok();
    for (k, v) in patch.pairs() {
        let text = (!v.is_empty()).then(|| v.clone());
        match k {
            "instance_id" => r.instance_id = text,
            "forge_id" => r.forge_id = num(&v),
            "job_id" => r.job_id = num(&v),
            "requested_at" => r.requested_at = num(&v),
            "started_at" => r.started_at = num(&v),
            "online_at" => r.online_at = num(&v),
            "ended_at" => r.ended_at = num(&v),
            "error" => r.error = text,
            "backend" => r.backend = v.clone(),
            _ => {}
        }
    }
    r
}

/// The history entry's detail of a change of status, as the Redis store writes it.
fn detail_of(patch: &RunnerPatch) -> String {
    patch
        .pairs()
        .into_iter()
        .filter(|(k, v)| {
            !v.is_empty() && matches!(*k, "instance_id" | "forge_id" | "job_id" | "error")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait::async_trait]
impl RunnerStore for MemoryStore {
    async fn now(&self) -> Result<u64> {
        Ok(self.times().0)
    }

    async fn now_ms(&self) -> Result<u64> {
        Ok(self.times().1)
    }

    async fn get(&self, name: &str) -> Result<Option<Runner>> {
        Ok(self.state().runners.get(name).cloned())
    }

    async fn all_runners(&self) -> Result<Vec<Runner>> {
        Ok(self.state().runners.values().cloned().collect())
    }

    async fn runners_of_group(&self, group: &str) -> Result<Vec<Runner>> {
        let st = self.state();
        Ok(st
            .groups
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|n| st.runners.get(n).cloned())
            .collect())
    }

    async fn history(&self, name: &str) -> Result<Vec<Event>> {
        Ok(self.state().history.get(name).cloned().unwrap_or_default())
    }

    async fn reserve_noting(
        &self,
        runner: &Runner,
        max: u32,
        want: Want,
        also: Also<'_>,
    ) -> Result<(Reservation, Option<String>)> {
        let (now, now_ms) = self.times();
        let mut st = self.state();
        let group = runner.group.as_str();
        if let Some((job, ttl)) = also.waiting {
            if !st.started.contains_key(&job) {
                st.waiting
                    .entry(group.to_string())
                    .or_default()
                    .insert(job, now + ttl.as_secs().max(1));
            }
        }
        let held = st.groups.get(group).map_or(0, |m| m.len()) as u32;
        if st.runners.contains_key(&runner.name) {
            return Ok((Reservation::Exists, None));
        }
        if let Want::Demand { min_free } = want {
            let free = st.free_count(group, "", now, now_ms);
            let waiting = st.waiting_count(group, now).max(min_free);
            if free >= waiting {
                return Ok((Reservation::Covered { free, waiting }, None));
            }
            if let Some(name) = st.warm_to_take(group) {
                let r = st.runners.get_mut(&name).expect("a member");
                r.status = RunnerStatus::Creating;
                r.created_at = now;
                if runner.created_for_job.is_some() {
                    r.created_for_job = runner.created_for_job;
                }
                st.note(&name, now, "taken", also.detail.to_string());
                let lock = also.lock.map(|(_, ttl)| (format!("runner:{name}"), ttl));
                let token = lock.and_then(|(lock, ttl)| st.take(&lock, ttl, now_ms));
                return Ok((Reservation::Warm { name }, token));
            }
        }
        if held >= max {
            return Ok((Reservation::Full { held }, None));
        }
        st.marker.get_or_insert(Marker {
            created_at: now,
            hold_until: 0,
        });
        st.groups
            .entry(group.to_string())
            .or_default()
            .insert(runner.name.clone());
        st.runners.insert(runner.name.clone(), runner.clone());
        st.note(&runner.name, now, "reserved", also.detail.to_string());
        let token = also.lock.and_then(|(lock, ttl)| st.take(lock, ttl, now_ms));
        Ok((Reservation::Reserved { held: held + 1 }, token))
    }

    async fn update_reading(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        expect: &[RunnerStatus],
        patch: &RunnerPatch,
    ) -> Result<(Transition, Option<Runner>)> {
        let now = self.times().0;
        let mut st = self.state();
        let Some(current) = st.runners.get(name) else {
            return Ok((Transition::Missing, None));
        };
        let before = current.status;
        if !expect.is_empty() && !expect.contains(&before) {
            return Ok((Transition::Refused(before), None));
        }
        let mut after = patched(current, patch);
        let moved = status.filter(|s| *s != before);
        if let Some(s) = moved {
            after.status = s;
        }
        st.runners.insert(name.to_string(), after.clone());
        if let Some(s) = moved {
            st.note(name, now, s.as_str(), detail_of(patch));
        }
        Ok((Transition::Done(before), Some(after)))
    }

    async fn abandon_if_covered(&self, group: &str, name: &str, min_free: u32) -> Result<bool> {
        let (now, now_ms) = self.times();
        let mut st = self.state();
        let Some(r) = st.runners.get(name) else {
            return Ok(false);
        };
        let unmade = r.forge_id.is_none()
            && r.instance_id.is_none()
            && matches!(r.status, RunnerStatus::Reserved | RunnerStatus::Creating);
        if !unmade {
            return Ok(false);
        }
        let free = st.free_count(group, name, now, now_ms);
        if free < st.waiting_count(group, now).max(min_free) {
            return Ok(false);
        }
        if let Some(m) = st.groups.get_mut(group) {
            m.remove(name);
        }
        st.runners.remove(name);
        Ok(true)
    }

    async fn remove_of(&self, name: &str, _group: Option<&str>) -> Result<bool> {
        let now = self.times().0;
        let mut st = self.state();
        let Some(r) = st.runners.remove(name) else {
            return Ok(false);
        };
        if let Some(m) = st.groups.get_mut(&r.group) {
            m.remove(name);
        }
        st.note(name, now, "removed", "its slot released".into());
        Ok(true)
    }

    async fn mark_job_started(
        &self,
        groups: &[String],
        job_id: u64,
        runner: Option<&str>,
    ) -> Result<Option<Runner>> {
        let now = self.times().0;
        let mut st = self.state();
        st.started.insert(job_id, now);
        st.started_order.push_back((now, job_id));
        // Forget marks older than STARTED_FOR (a job marked again keeps its newer mark).
        while let Some(&(at, job)) = st.started_order.front() {
            if at + STARTED_FOR >= now {
                break;
            }
            st.started_order.pop_front();
            if st.started.get(&job) == Some(&at) {
                st.started.remove(&job);
            }
        }
        for g in groups {
            if let Some(w) = st.waiting.get_mut(g) {
                w.remove(&job_id);
            }
        }
        Ok(runner.and_then(|n| st.runners.get(n).cloned()))
    }

    async fn job_started(&self, job_id: u64) -> Result<bool> {
        Ok(self.state().started.contains_key(&job_id))
    }

    async fn waiting_jobs(&self, group: &str) -> Result<Vec<u64>> {
        let now = self.times().0;
        let st = self.state();
        Ok(st
            .waiting
            .get(group)
            .into_iter()
            .flatten()
            .filter(|(_, until)| **until >= now)
            .map(|(job, _)| *job)
            .collect())
    }

    async fn waiting(&self, group: &str) -> Result<u32> {
        let now = self.times().0;
        Ok(self.state().waiting_count(group, now))
    }

    async fn oldest_waiting_secs(&self, group: &str, ttl: Duration) -> Result<u64> {
        let now = self.times().0;
        let st = self.state();
        let first = st
            .waiting
            .get(group)
            .into_iter()
            .flatten()
            .map(|(_, until)| *until)
            .filter(|until| *until >= now)
            .min();
        Ok(first.map_or(0, |until| {
            now.saturating_sub(until.saturating_sub(ttl.as_secs()))
        }))
    }

    async fn supply(&self, group: &str) -> Result<(u32, u32)> {
        let (now, now_ms) = self.times();
        let mut st = self.state();
        let waiting = st.waiting_count(group, now);
        Ok((waiting, st.free_count(group, "", now, now_ms)))
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let now_ms = self.times().1;
        Ok(self.state().take(name, ttl, now_ms))
    }

    async fn renew_lock(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        let now_ms = self.times().1;
        let mut st = self.state();
        match st.locks.get_mut(name) {
            Some((t, until)) if t == token && *until > now_ms => {
                *until = now_ms + ttl.as_millis() as u64;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unlock(&self, name: &str, token: &str) -> Result<()> {
        let mut st = self.state();
        if st.locks.get(name).is_some_and(|(t, _)| t == token) {
            st.locks.remove(name);
        }
        Ok(())
    }

    async fn try_lock_shared(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let now_ms = self.times().1;
        let mut st = self.state();
        if st.held(name, now_ms) {
            return Ok(None);
        }
        let token = format!("{:016x}", fastrand::u64(..));
        st.shared
            .entry(name.to_string())
            .or_default()
            .insert(token.clone(), now_ms + ttl.as_millis() as u64);
        Ok(Some(token))
    }

    async fn unlock_shared(&self, name: &str, token: &str) -> Result<()> {
        if let Some(holds) = self.state().shared.get_mut(name) {
            holds.remove(token);
        }
        Ok(())
    }

    async fn try_lock_exclusive(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let now_ms = self.times().1;
        let mut st = self.state();
        if st.shared_held(name, now_ms) {
            return Ok(None);
        }
        Ok(st.take(name, ttl, now_ms))
    }

    async fn count_mark(&self, mark: &str) -> Result<u64> {
        let mut st = self.state();
        let n = st.marks.entry(mark.to_string()).or_default();
        *n += 1;
        Ok(*n)
    }

    async fn marks_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .state()
            .marks
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), *v)))
            .collect())
    }

    async fn note_token_use(&self, scope: &str) -> Result<()> {
        self.state().tokens.entry(scope.to_string()).or_default().0 += 1;
        Ok(())
    }

    async fn token_state(&self, scope: &str) -> Result<(u64, Option<u64>)> {
        Ok(self.state().tokens.get(scope).copied().unwrap_or_default())
    }

    async fn token_replaced(&self, scope: &str, uses: u64, at: u64) -> Result<()> {
        let mut st = self.state();
        let t = st.tokens.entry(scope.to_string()).or_default();
        t.0 = t.0.saturating_sub(uses);
        t.1 = Some(at);
        Ok(())
    }

    async fn next_cursor(&self, name: &str) -> Result<u64> {
        let mut st = self.state();
        let c = st.cursors.entry(name.to_string()).or_default();
        *c += 1;
        Ok(*c - 1)
    }

    async fn peek_cursor(&self, name: &str) -> Result<u64> {
        Ok(self.state().cursors.get(name).copied().unwrap_or(0))
    }
    async fn breaker(&self, key: &str) -> Result<Option<String>> {
        Ok(self.state().breakers.get(key).cloned())
    }
    async fn set_breaker(&self, key: &str, value: &str) -> Result<()> {
        self.state()
            .breakers
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn marker(&self, hold_if_missing: Duration) -> Result<(Marker, bool)> {
        let now = self.times().0;
        let mut st = self.state();
        if let Some(m) = st.marker {
            return Ok((m, false));
        }
        let m = Marker::written_at(now, hold_if_missing);
        st.marker = Some(m);
        Ok((m, true))
    }

    async fn peek_marker(&self, hold_if_missing: Duration, now: u64) -> Result<(Marker, bool)> {
        Ok(match self.state().marker {
            Some(m) => (m, false),
            None => (Marker::written_at(now, hold_if_missing), true),
        })
    }

    async fn note_job(
        &self,
        job_id: u64,
        times: &[(&str, u64)],
        texts: &[(&str, &str)],
    ) -> Result<()> {
        let now_ms = self.times().1;
        let mut st = self.state();
        if !st.keep_history {
            return Ok(());
        }
        let t = st.timelines.entry(job_id).or_default();
        for (step, at) in times {
            let at = if *at == 0 { now_ms } else { *at };
            t.entry(step.to_string()).or_insert_with(|| at.to_string());
        }
        for (k, v) in texts {
            t.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
        Ok(())
    }

    async fn job_timeline(&self, job_id: u64) -> Result<BTreeMap<String, String>> {
        Ok(self
            .state()
            .timelines
            .get(&job_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn first_seen(&self, group: &str, suspects: &[String]) -> Result<Vec<u64>> {
        let now = self.times().0;
        let mut st = self.state();
        let seen = st.suspects.entry(group.to_string()).or_default();
        seen.retain(|s, _| suspects.contains(s));
        Ok(suspects
            .iter()
            .map(|s| *seen.entry(s.clone()).or_insert(now))
            .collect())
    }

    async fn peek_first_seen(
        &self,
        group: &str,
        suspects: &[String],
        now: u64,
    ) -> Result<Vec<u64>> {
        let st = self.state();
        let seen = st.suspects.get(group);
        Ok(suspects
            .iter()
            .map(|s| seen.and_then(|m| m.get(s)).copied().unwrap_or(now))
            .collect())
    }
}
