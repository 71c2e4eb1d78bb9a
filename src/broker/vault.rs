//! Sealing credentials for Redis: AES-256-GCM (RustCrypto's `aes-gcm`), a fresh random nonce per
//! value, the record's id and runner as associated data (a sealed value moved to another record
//! does not open). A key ring: the first key seals, every key opens, so a key is rotated by
//! putting the new one first and keeping the old one until what it sealed has expired
//! (`time_to_start` at most).

use crate::config::Secret;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Why a key or a sealed value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("a broker key must be 32 bytes, written in base64 (`openssl rand -base64 32`); key {index} is not")]
    BadKey { index: usize },
    #[error("no broker key is configured")]
    NoKey,
    #[error("a sealed credential cannot be opened: {0}")]
    Open(String),
}

/// The keys that seal (the first) and open (all) credentials.
pub struct Vault {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Vault(keys {ids:?})")
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Vault {
    /// From base64 keys, the sealing one first.
    pub fn new(keys: &[Secret]) -> Result<Vault, VaultError> {
        if keys.is_empty() {
            return Err(VaultError::NoKey);
        }
        let mut out = Vec::new();
        for (index, k) in keys.iter().enumerate() {
            let bytes = B64
                .decode(k.expose().trim())
                .map_err(|_| VaultError::BadKey { index })?;
            if bytes.len() != 32 {
                return Err(VaultError::BadKey { index });
            }
            // The id names the key in sealed values without revealing it.
            let id: String = Sha256::digest(&bytes)[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            out.push((id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes))));
        }
        Ok(Vault { keys: out })
    }

    /// Keys from a secret holding one or more base64 keys, separated by spaces, commas or lines.
    pub fn parse_ring(text: &Secret) -> Vec<Secret> {
        text.expose()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.to_string()))
            .collect()
    }

    /// Seals `plain` for the record `aad`: `v1:<key id>:<nonce>:<ciphertext>` (base64).
    pub fn seal(&self, plain: &Secret, aad: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.expose().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        format!("v1:{id}:{}:{}", B64.encode(nonce), B64.encode(sealed))
    }

    /// Opens what [`seal`](Vault::seal) made for the same record.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Secret, VaultError> {
        let bad = |why: &str| VaultError::Open(why.to_string());
        let mut parts = sealed.splitn(4, ':');
        let (Some("v1"), Some(id), Some(nonce), Some(ct)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("unknown format"));
        };
        let Some((_, cipher)) = self.keys.iter().find(|(k, _)| k == id) else {
            return Err(bad("sealed with a key that is no longer configured"));
        };
        let nonce = B64.decode(nonce).map_err(|_| bad("bad nonce"))?;
        if nonce.len() != 12 {
            return Err(bad("bad nonce"));
        }
        let ct = B64.decode(ct).map_err(|_| bad("bad ciphertext"))?;
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| bad("authentication failed"))?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| bad("not text"))
    }
}

/// `n` bytes from the operating system's random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use aes_gcm::aead::rand_core::RngCore;
    let mut out = vec![0u8; n];
    OsRng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Secret {
        Secret::new(B64.encode([b; 32]))
    }

    #[test]
    fn seals_and_opens_only_for_its_record_and_keys() {
        let v = Vault::new(&[key(1)]).unwrap();
        let s = v.seal(&Secret::new("JIT"), "rec-1");
        assert!(!s.contains("JIT"));
        assert_eq!(v.open(&s, "rec-1").unwrap().expose(), "JIT");
        assert!(v.open(&s, "rec-2").is_err(), "another record's");
        assert_ne!(s, v.seal(&Secret::new("JIT"), "rec-1"), "fresh nonces");
        // Rotation: the new key seals, the old one still opens.
        let rotated = Vault::new(&[key(2), key(1)]).unwrap();
        assert_eq!(rotated.open(&s, "rec-1").unwrap().expose(), "JIT");
        let s2 = rotated.seal(&Secret::new("JIT2"), "r");
        assert!(v.open(&s2, "r").is_err(), "the old ring lacks the new key");
        assert!(Vault::new(&[Secret::new("short")]).is_err());
        assert!(Vault::new(&[]).is_err());
    }
}
