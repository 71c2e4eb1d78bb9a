//! The broker endpoint's certificate: the operator's files (`broker.tls_cert_file` and
//! `tls_key_file`), or, without them, one runnerctl makes: self-signed for the host of
//! `broker.url`, kept in Redis with its private key sealed by the broker's key, so that every
//! `serve` presents the same certificate and every instance pins it. The first process that
//! needs it makes it (`SET NX`); a change of the URL's host makes a new one.

use super::{BrokerError, Result, Vault};
use crate::config::Secret;
use crate::conn::Conn;
use crate::model::key_prefix;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A certificate chain and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: Secret,
}

/// How the managed certificate is kept in Redis: its key sealed.
#[derive(Serialize, Deserialize)]
struct Stored {
    host: String,
    cert: String,
    key: String,
}

/// What seals the managed certificate's key (the vault's associated data).
const AAD: &str = "broker-tls";

/// The host of an `https://HOST[:PORT]/…` URL (an IPv6 address without its brackets).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// A new self-signed certificate for `host` (a name or an address), valid for ten years.
pub fn self_signed(host: &str) -> std::result::Result<Pem, String> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
        .map_err(|e| format!("a certificate for `{host}`: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "runnerctl credential broker");
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86_400)).into();
    let key = rcgen::KeyPair::generate().map_err(|e| format!("a key pair: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("a certificate for `{host}`: {e}"))?;
    Ok(Pem {
        cert: cert.pem(),
        key: Secret::new(key.serialize_pem()),
    })
}

fn redis_key(manager: &str) -> String {
    format!("{}broker:tls", key_prefix(manager))
}

/// The managed certificate for `host`: the one in Redis, or a new one stored for every process.
pub async fn managed(conn: &Conn, manager: &str, vault: &Vault, host: &str) -> Result<Pem> {
    let key = redis_key(manager);
    let mut c = conn.clone();
    for _ in 0..3 {
        let text: Option<String> = c.get(&key).await?;
        let stored = text.and_then(|t| serde_json::from_str::<Stored>(&t).ok());
        match stored {
            Some(s) if s.host == host => {
                return Ok(Pem {
                    key: vault.open(&s.key, AAD)?,
                    cert: s.cert,
                });
            }
            stale => {
                let made = self_signed(host).map_err(BrokerError::Tls)?;
                let text = serde_json::to_string(&Stored {
                    host: host.to_string(),
                    cert: made.cert.clone(),
                    key: vault.seal(&made.key, AAD),
                })
                .map_err(|e| BrokerError::Tls(e.to_string()))?;
                let written: bool = match stale {
                    // Made for another host (the URL changed): this one replaces it.
                    Some(_) => {
                        tracing::warn!(host, "the broker's URL names another host: a new certificate replaces the managed one");
                        let _: () = c.set(&key, text).await?;
                        true
                    }
                    None => c.set_nx(&key, text).await?,
                };
                if written {
                    tracing::info!(host, "made the broker's self-signed certificate");
                    return Ok(made);
                }
                // Another process made it meanwhile: read theirs.
            }
        }
    }
    Err(BrokerError::Tls(
        "the managed certificate changed under us three times".into(),
    ))
}

/// The TLS configuration of a PEM certificate chain and its key; `what` names their source in
/// errors.
pub fn server_config(
    pem: &Pem,
    what: &str,
) -> std::result::Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_slice(pem.key.expose().as_bytes())
        .map_err(|e| format!("{what}: the key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("broker TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_broker_url() {
        assert_eq!(
            url_host("https://10.0.0.5:8443").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            url_host("https://broker.example.com/x").as_deref(),
            Some("broker.example.com")
        );
        assert_eq!(
            url_host("https://[fd00::5]:8443").as_deref(),
            Some("fd00::5")
        );
        assert_eq!(url_host("http://x"), None);
        assert_eq!(url_host("https://"), None);
    }

    #[test]
    fn a_self_signed_certificate_serves_tls() {
        for host in ["10.0.0.5", "broker.example.com", "fd00::5"] {
            let pem = self_signed(host).unwrap();
            assert!(pem.cert.starts_with("-----BEGIN CERTIFICATE-----"));
            server_config(&pem, "managed").unwrap();
        }
    }
}
