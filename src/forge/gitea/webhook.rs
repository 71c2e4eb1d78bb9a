//! Gitea's (and Forgejo's) webhooks: `X-Gitea-Event`, `X-Gitea-Delivery` and
//! `X-Gitea-Signature` (the bare hex HMAC-SHA256 of the raw body), besides GitHub's headers
//! (`X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256` with `sha256=`), which Gitea
//! sends too and which are read when its own are absent. `workflow_job` payloads (Gitea 1.24)
//! follow GitHub's shape; labels may carry a scheme (`ubuntu-22.04:docker://node:20`), of which
//! the name counts.

use crate::forge::{WebhookEvent, WebhookScheme};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Gitea's webhook scheme.
pub struct GiteaWebhooks;
pub static GITEA: GiteaWebhooks = GiteaWebhooks;

impl WebhookScheme for GiteaWebhooks {
    fn event_header(&self) -> &'static str {
        "X-Gitea-Event"
    }
    fn delivery_header(&self) -> &'static str {
        "X-Gitea-Delivery"
    }
    fn signature_header(&self) -> &'static str {
        "X-Gitea-Signature"
    }
    fn alternate_headers(&self) -> Option<[&'static str; 3]> {
        Some(["X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"])
    }
    fn verify(&self, secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
        signature_valid(secret, body, signature)
    }
    fn parse(&self, event: &str, body: &[u8]) -> Result<WebhookEvent, String> {
        let parsed = crate::forge::github::webhook::GITHUB.parse(event, body)?;
        Ok(match parsed {
            WebhookEvent::Job(mut job) => {
                job.labels = job
                    .labels
                    .iter()
                    .map(|l| super::label_name(l).to_string())
                    .collect();
                WebhookEvent::Job(job)
            }
            other => other,
        })
    }
}

/// Checks a Gitea signature (bare hex, or GitHub's `sha256=` form) against the HMAC-SHA256 of
/// the raw body, in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(h) = header.map(str::trim) else {
        return false;
    };
    let hex = h.strip_prefix("sha256=").unwrap_or(h);
    crate::forge::github::webhook::signature_valid(secret, body, Some(&format!("sha256={hex}")))
}

/// The `X-Gitea-Signature` Gitea would send for `body` (bare hex).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_hex_and_github_form_both_verify() {
        let (secret, body) = (b"It's a Secret to Everybody", b"Hello, World!");
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, body), hex);
        assert!(signature_valid(secret, body, Some(hex)));
        assert!(signature_valid(
            secret,
            body,
            Some(&format!("sha256={hex}"))
        ));
        assert!(!signature_valid(secret, b"Hello, World?", Some(hex)));
        assert!(!signature_valid(b"other", body, Some(hex)));
        assert!(!signature_valid(secret, body, None));
        assert!(!signature_valid(secret, body, Some("")));
        assert!(!signature_valid(secret, body, Some(&hex[..62])));
    }
}
