//! The fake backend: instances are records, nothing boots. It is a real, selectable backend for
//! demos, dry runs and tests. With a Redis connection its instances live in Redis (every process
//! of the manager sees them); without, in memory (unit tests).

use super::{
    Backend, BackendError, BackendSettings, BootStyle, BuildContext, CreateRequest, Instance,
    InstanceState, Kind, Result, StandIn, TAG_MANAGER,
};
use crate::config::{Duration as ConfigDuration, Reader, Schema, Typed};
use crate::conn::Conn;
use crate::model::key_prefix;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `kind: fake`: instances kept in Redis, nothing boots.
pub struct FakeKind;
pub static KIND: FakeKind = FakeKind;

/// The fake backend keeps its instances in memory (or in Redis) and boots nothing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FakeSettings {
    /// How long a create call takes, to imitate a slow cloud.
    pub create_latency: Option<ConfigDuration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FakeSpec {
    /// Free-form size shown in listings, for demos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

impl FakeSpec {
    pub fn typed(self) -> Typed {
        Typed::new("fake", self)
    }
}

impl Schema for FakeKind {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn settings(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        let s: FakeSettings = r.de(value)?;
        Some(Typed::new("fake", s))
    }
    /// Both: a hot instance's stand-in waits at the broker (or for `deliver`); a stopped one
    /// is only marked stopped (its stand-in, with a broker, waits there all the same).
    fn warm_pools(&self) -> (bool, bool) {
        (true, true)
    }
    fn spec(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        let value = match value {
            serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
            v => v,
        };
        let s: FakeSpec = r.de(value)?;
        Some(s.typed())
    }
}

#[async_trait::async_trait]
impl Kind for FakeKind {
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn boot_style(&self) -> BootStyle {
        BootStyle::Container
    }
    /// Its stand-in plays a VM: with a broker, it redeems the runner's token as one would.
    fn brokered(&self) -> bool {
        true
    }
    fn credential_delivery(&self, _: &BackendSettings, _: &str, _: &str) -> String {
        "kept by the fake backend; nothing boots".into()
    }

    async fn build(&self, cx: BuildContext) -> Result<Arc<dyn Backend>> {
        let latency = cx
            .settings
            .get::<FakeSettings>()
            .and_then(|s| s.create_latency)
            .map(|d| d.as_std());
        let mut b = FakeBackend::new(&cx.name, &cx.manager, latency, cx.redis);
        b.stand_in = cx.stand_in;
        Ok(Arc::new(b))
    }
}

pub struct FakeBackend {
    name: String,
    manager: String,
    latency: Option<Duration>,
    store: Store,
    stand_in: Option<Arc<dyn StandIn>>,
}

enum Store {
    Memory(Arc<Mutex<HashMap<String, String>>>),
    Redis { conn: Conn, key: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    id: String,
    tags: BTreeMap<String, String>,
    created_at: u64,
    /// Stopped (a stopped warm pool's instance); running otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    stopped: bool,
}

impl FakeBackend {
    pub fn new(
        name: &str,
        manager: &str,
        latency: Option<Duration>,
        redis: Option<Conn>,
    ) -> FakeBackend {
        let store = match redis {
            Some(conn) => Store::Redis {
                conn,
                key: format!("{}fake:{name}:instances", key_prefix(manager)),
            },
            None => Store::Memory(Arc::default()),
        };
        FakeBackend {
            name: name.to_string(),
            manager: manager.to_string(),
            latency,
            store,
            stand_in: None,
        }
    }

    /// With a stand-in playing each runner whose instance is made.
    pub fn with_stand_in(mut self, stand_in: Arc<dyn StandIn>) -> FakeBackend {
        self.stand_in = Some(stand_in);
        self
    }

    /// The same in-memory instances seen by another manager, as two managers would share one
    /// cloud account. (With Redis, managers share by connecting to the same server.)
    pub fn seen_by(&self, manager: &str) -> FakeBackend {
        let store = match &self.store {
            Store::Memory(m) => Store::Memory(m.clone()),
            Store::Redis { conn, .. } => Store::Redis {
                conn: conn.clone(),
                key: format!("{}fake:{}:instances", key_prefix(manager), self.name),
            },
        };
        FakeBackend {
            name: self.name.clone(),
            manager: manager.to_string(),
            latency: self.latency,
            store,
            stand_in: self.stand_in.clone(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> BackendError {
        BackendError::Transient {
            backend: self.name.clone(),
            code: "Redis".into(),
            message: e.to_string(),
        }
    }

    fn to_instance(&self, text: &str) -> Result<Instance> {
        let r: Record = serde_json::from_str(text).map_err(|e| BackendError::Permanent {
            backend: self.name.clone(),
            code: "Corrupt".into(),
            message: e.to_string(),
        })?;
        Ok(Instance {
            id: r.id,
            state: match r.stopped {
                true => InstanceState::Stopped,
                false => InstanceState::Running,
            },
            tags: r.tags,
            created_at: Some(r.created_at),
            spot_fallback: false,
            identity: None,
            address: None,
        })
    }

    /// Stores `text` under `id` unless something is there; returns what is stored.
    async fn put_if_absent(&self, id: &str, text: String) -> Result<String> {
        match &self.store {
            Store::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                Ok(m.entry(id.to_string()).or_insert(text).clone())
            }
            Store::Redis { conn, key } => {
                let mut c = conn.clone();
                let new: bool = c.hset_nx(key, id, &text).await.map_err(|e| self.err(e))?;
                if new {
                    return Ok(text);
                }
                let stored: String = c.hget(key, id).await.map_err(|e| self.err(e))?;
                Ok(stored)
            }
        }
    }

    async fn fetch(&self, id: &str) -> Result<Option<String>> {
        match &self.store {
            Store::Memory(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()),
            Store::Redis { conn, key } => {
                let mut c = conn.clone();
                c.hget(key, id).await.map_err(|e| self.err(e))
            }
        }
    }

    async fn all(&self) -> Result<Vec<String>> {
        match &self.store {
            Store::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect()),
            Store::Redis { conn, key } => {
                let mut c = conn.clone();
                c.hvals(key).await.map_err(|e| self.err(e))
            }
        }
    }

    /// "Boots" the instance of `runner`: its stand-in, when one is injected, plays the runner
    /// with `boot`, spawned (`spawn`, or a detached stand-in) or awaited.
    async fn play(&self, runner: &str, boot: &crate::bootstrap::BootData, spawn: bool) {
        // "Boot": a stand-in, when one is injected, plays the runner (the demo's comes online on
        // the fake GitHub, as a real runner process would). Otherwise nothing boots.
        if let Some(stand_in) = &self.stand_in {
            let detached = stand_in.detached();
            let (stand_in, runner, boot) = (stand_in.clone(), runner.to_string(), boot.clone());
            let play = async move {
                if !stand_in.start(&runner, &boot).await {
                    tracing::warn!(runner = %runner, "the stand-in runner could not start");
                }
            };
            if detached || spawn {
                // Its credential is bound to it once this create has answered: it fetches
                // meanwhile, as a booting VM would (and a long-running process's stand-in
                // boots after the answer, as a VM does).
                tokio::spawn(play);
            } else {
                // Awaited, not spawned: a one-shot `runnerctl runners create` would otherwise
                // exit before its runner connected, and that runner would never come online.
                play.await;
            }
        }
    }

    async fn set_stopped(&self, id: &str, stopped: bool) -> Result<()> {
        let Some(text) = self.fetch(id).await? else {
            return Err(BackendError::NotFound {
                backend: self.name.clone(),
                id: id.to_string(),
            });
        };
        let mut r: Record = serde_json::from_str(&text).map_err(|e| self.err(e))?;
        r.stopped = stopped;
        let text = serde_json::to_string(&r).map_err(|e| self.err(e))?;
        match &self.store {
            Store::Memory(m) => {
                m.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), text);
            }
            Store::Redis { conn, key } => {
                let mut c = conn.clone();
                let _: i64 = c.hset(key, id, &text).await.map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for FakeBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static dyn Kind {
        &KIND
    }

    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        if let Some(d) = self.latency {
            tokio::time::sleep(d).await;
        }
        // The runner name is the instance id: a second create finds the first instance.
        let id = format!("fake-{}", req.runner_name);
        let tags = req
            .tags
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let record = Record {
            id: id.clone(),
            tags,
            created_at: crate::model::unix_now(),
            stopped: false,
        };
        let text = serde_json::to_string(&record).map_err(|e| self.err(e))?;
        let stored = self.put_if_absent(&id, text).await?;
        let brokered = req
            .boot
            .files
            .iter()
            .any(|f| f.path == crate::bootstrap::BROKER_TOKEN);
        // A warm instance without a broker has no credential to play with yet: its stand-in
        // starts when `deliver` brings one.
        if req.warm.is_none() || brokered {
            self.play(&req.runner_name, &req.boot, brokered).await;
        }
        let mut instance = self.to_instance(&stored)?;
        // Its stand-in calls from this host.
        instance.address = Some("127.0.0.1".into());
        Ok(instance)
    }

    async fn stop(&self, id: &str) -> Result<()> {
        self.set_stopped(id, true).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.set_stopped(id, false).await
    }

    async fn deliver(&self, id: &str, boot: &crate::bootstrap::BootData) -> Result<()> {
        let Some(i) = self.get(id).await? else {
            return Err(BackendError::NotFound {
                backend: self.name.clone(),
                id: id.to_string(),
            });
        };
        let runner = i.runner().unwrap_or_default().to_string();
        self.play(&runner, boot, true).await;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        // Only ever delete our own instances.
        if self.get(id).await?.is_none() {
            return Ok(());
        }
        match &self.store {
            Store::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            }
            Store::Redis { conn, key } => {
                let mut c = conn.clone();
                let _: i64 = c.hdel(key, id).await.map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        Ok(self
            .fetch(id)
            .await?
            .map(|t| self.to_instance(&t))
            .transpose()?
            .filter(|i| i.tags.get(TAG_MANAGER) == Some(&self.manager)))
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        for t in self.all().await? {
            let i = self.to_instance(&t)?;
            if i.tags.get(TAG_MANAGER) == Some(&self.manager) {
                out.push(i);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
