//! The fake backend: instances are records, nothing boots. It is a real, selectable backend for
//! demos, dry runs and tests. With a Redis connection its instances live in Redis (every process
//! of the manager sees them); without, in memory (unit tests).

use super::{Backend, BackendError, CreateRequest, Instance, InstanceState, Result, TAG_MANAGER};
use crate::config::BackendKind;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FakeBackend {
    name: String,
    manager: String,
    latency: Option<Duration>,
    store: Store,
}

enum Store {
    Memory(Arc<Mutex<HashMap<String, String>>>),
    Redis {
        conn: ConnectionManager,
        key: String,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    id: String,
    tags: BTreeMap<String, String>,
    created_at: u64,
}

impl FakeBackend {
    pub fn new(
        name: &str,
        manager: &str,
        latency: Option<Duration>,
        redis: Option<ConnectionManager>,
    ) -> FakeBackend {
        let store = match redis {
            Some(conn) => Store::Redis {
                conn,
                key: format!("{}fake:{name}:instances", crate::store::prefix(manager)),
            },
            None => Store::Memory(Arc::default()),
        };
        FakeBackend {
            name: name.to_string(),
            manager: manager.to_string(),
            latency,
            store,
        }
    }

    /// The same in-memory instances seen by another manager, as two managers would share one
    /// cloud account. (With Redis, managers share by connecting to the same server.)
    pub fn seen_by(&self, manager: &str) -> FakeBackend {
        let store = match &self.store {
            Store::Memory(m) => Store::Memory(m.clone()),
            Store::Redis { conn, .. } => Store::Redis {
                conn: conn.clone(),
                key: format!(
                    "{}fake:{}:instances",
                    crate::store::prefix(manager),
                    self.name
                ),
            },
        };
        FakeBackend {
            name: self.name.clone(),
            manager: manager.to_string(),
            latency: self.latency,
            store,
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
            state: InstanceState::Running,
            tags: r.tags,
            created_at: Some(r.created_at),
            spot_fallback: false,
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
                let _: bool = c.hset_nx(key, id, &text).await.map_err(|e| self.err(e))?;
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
}

#[async_trait::async_trait]
impl Backend for FakeBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Fake
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
        };
        let text = serde_json::to_string(&record).map_err(|e| self.err(e))?;
        let stored = self.put_if_absent(&id, text).await?;
        // "Boot": when the credential is the fake GitHub's, the runner comes online there, as a
        // real runner process would. Against real GitHub nothing boots.
        if let Some(jit) = req
            .boot
            .files
            .iter()
            .find(|f| f.path == crate::bootstrap::JITCONFIG)
        {
            // Awaited, not spawned: a one-shot `runnerctl runners create` would otherwise exit
            // before its runner connected, and that runner would never come online.
            let jit = jit.content.expose();
            if crate::forge::sim::sim_connect_url(jit).is_some()
                && !crate::forge::sim::connect_stand_in_runner(jit).await
            {
                tracing::warn!(runner = %req.runner_name, "fake runner could not connect to the fake GitHub");
            }
        }
        self.to_instance(&stored)
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
