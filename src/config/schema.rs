//! The part of the configuration a backend kind owns: its `backends:` settings and its groups'
//! `spec`. The loader knows no kind; each kind brings a [`Schema`] (registered in
//! `backend::kinds`, passed in by the wiring), which reads its values with a [`Reader`] that
//! records every problem at its path and position. What a schema reads is kept as [`Typed`]:
//! the kind's own type, and the same value as JSON for `config show`.

use super::load::Reader;
use super::SecretSource;
use serde::Serialize;
use serde_yaml::Value;
use std::any::Any;
use std::sync::Arc;

/// How a backend kind reads its part of the configuration. Pure: no I/O, no environment.
pub trait Schema: Sync {
    /// The `kind:` that selects it.
    fn kind(&self) -> &'static str;
    /// Reads a `backends:` entry (`kind` already taken out). Problems go to the reader; `None`
    /// when the settings cannot be used.
    fn settings(&self, r: &mut Reader<'_, '_>, value: Value) -> Option<Typed>;
    /// Reads a group's `spec` (`Value::Null` when the group has none).
    fn spec(&self, r: &mut Reader<'_, '_>, value: Value) -> Option<Typed>;
    /// The secrets of a backend's settings, by key, for the wiring to resolve before the
    /// backend is built (and `config validate` to check).
    fn secrets(&self, _settings: &Typed) -> Vec<(&'static str, SecretSource)> {
        Vec::new()
    }
    /// Why a runner's credential may reach this kind's instances only through the credential
    /// broker, when that is so.
    fn needs_broker(&self) -> Option<&'static str> {
        None
    }
    /// Which warm pools its instances can be kept in: (hot, stopped). A group's `warm_pool`
    /// asking for another is refused when the file is read.
    fn warm_pools(&self) -> (bool, bool) {
        (false, false)
    }
    /// Why instances of this group spec cannot be kept stopped, when they cannot (an EC2 spot
    /// instance).
    fn stopped_refusal(&self, _spec: &Typed) -> Option<&'static str> {
        None
    }
    /// Whether its warm instances get their credential only through the credential broker
    /// (VMs: nothing else reaches a booted instance later).
    fn warm_needs_broker(&self) -> bool {
        false
    }
}

/// A value of a kind's own type (settings or spec), kept with its JSON form for printing.
#[derive(Clone)]
pub struct Typed {
    kind: &'static str,
    shown: serde_json::Value,
    value: Arc<dyn Any + Send + Sync>,
}

impl Typed {
    pub fn new<T: Serialize + Send + Sync + 'static>(kind: &'static str, value: T) -> Typed {
        Typed {
            kind,
            shown: serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
            value: Arc::new(value),
        }
    }

    /// The kind it belongs to.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The value, when it is a `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }

    /// One field as the configuration shows it (secrets redacted), by its key.
    pub fn field(&self, key: &str) -> Option<&serde_json::Value> {
        self.shown.get(key)
    }
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets serialize redacted, so the JSON form is safe to print.
        write!(f, "{}({})", self.kind, self.shown)
    }
}

impl Serialize for Typed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.shown.as_object();
        let mut m = s.serialize_map(Some(1 + fields.map_or(0, |f| f.len())))?;
        m.serialize_entry("kind", self.kind)?;
        for (k, v) in fields.into_iter().flatten() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The settings of a `backends:` entry, of its kind's type.
pub type BackendSettings = Typed;
/// What an instance of a group looks like, of its backend kind's type.
pub type InstanceSpec = Typed;
