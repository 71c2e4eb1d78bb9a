//! Secrets: where they come from, and a type that never prints them.

use std::fmt;
use std::path::PathBuf;

/// A secret value. `Debug` and `Display` redact it; only [`Secret::expose`] gives it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself. Call it only where the value is handed to the system that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret is read from, as written in the configuration: `<key>` (inline, discouraged),
/// `<key>_env` (an environment variable) or `<key>_file` (a file).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(Secret),
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Env(name) => write!(f, "Env({name})"),
            SecretSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// Why a secret could not be read. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    #[error("environment variable `{0}` is empty")]
    EnvEmpty(String),
    #[error("cannot read secret file `{}`: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file `{}` is empty", .0.display())]
    FileEmpty(PathBuf),
}

impl SecretSource {
    /// Reads the secret. Environment lookups go through `env` so that callers (and tests)
    /// decide what the environment is; the domain never reads the process environment itself.
    pub fn resolve_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env(name) => match env(name) {
                None => Err(SecretError::EnvMissing(name.clone())),
                Some(v) if v.trim().is_empty() => Err(SecretError::EnvEmpty(name.clone())),
                Some(v) => Ok(Secret(v)),
            },
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                // A trailing newline written by an editor is not part of a token.
                let trimmed = text.trim_end_matches(['\n', '\r']);
                if trimmed.trim().is_empty() {
                    return Err(SecretError::FileEmpty(path.clone()));
                }
                Ok(Secret(trimmed.to_string()))
            }
        }
    }

    /// Reads the secret from the process environment or its file.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }
}

impl serde::Serialize for SecretSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SecretSource::Inline(_) => s.serialize_str("<redacted>"),
            SecretSource::Env(name) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("env", name)?;
                m.end()
            }
            SecretSource::File(path) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("file", path)?;
                m.end()
            }
        }
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("ghp_supersecret");
        assert!(!format!("{s:?}").contains("supersecret"));
        assert!(!format!("{s}").contains("supersecret"));
        let src = SecretSource::Inline(s);
        assert!(!format!("{src:?}").contains("supersecret"));
        assert!(!serde_json::to_string(&src).unwrap().contains("supersecret"));
    }

    #[test]
    fn resolves_from_env_and_file() {
        let env = |k: &str| (k == "TOKEN").then(|| "abc".to_string());
        let got = SecretSource::Env("TOKEN".into())
            .resolve_with(&env)
            .unwrap();
        assert_eq!(got.expose(), "abc");
        assert!(matches!(
            SecretSource::Env("NOPE".into()).resolve_with(&env),
            Err(SecretError::EnvMissing(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "line1\nline2\n").unwrap();
        let got = SecretSource::File(path).resolve_with(&env).unwrap();
        assert_eq!(got.expose(), "line1\nline2");
    }
}
