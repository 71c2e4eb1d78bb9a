//! GitHub's webhooks: `X-GitHub-Event`, `X-GitHub-Delivery`, and `X-Hub-Signature-256`
//! (`sha256=` and the hex HMAC-SHA256 of the raw body); `workflow_job` payloads.

use crate::forge::{JobAction, JobEvent, WebhookEvent, WebhookScheme};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// GitHub's webhook scheme.
pub struct GitHubWebhooks;
pub static GITHUB: GitHubWebhooks = GitHubWebhooks;

impl WebhookScheme for GitHubWebhooks {
    fn event_header(&self) -> &'static str {
        "X-GitHub-Event"
    }
    fn delivery_header(&self) -> &'static str {
        "X-GitHub-Delivery"
    }
    fn signature_header(&self) -> &'static str {
        "X-Hub-Signature-256"
    }
    fn verify(&self, secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
        signature_valid(secret, body, signature)
    }
    fn parse(&self, event: &str, body: &[u8]) -> Result<WebhookEvent, String> {
        match event {
            "ping" => Ok(WebhookEvent::Ping),
            "workflow_job" => parse_job(body).map(WebhookEvent::Job),
            _ => Ok(WebhookEvent::Other),
        }
    }
}

/// Checks `X-Hub-Signature-256` against the HMAC-SHA256 of the raw body, in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `sha256=…` signature GitHub would send for `body` (for the fake GitHub, tests and load
/// generators).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[derive(Deserialize)]
struct WorkflowJobEvent {
    action: String,
    workflow_job: WorkflowJob,
    repository: Repository,
}

#[derive(Deserialize)]
struct WorkflowJob {
    id: u64,
    run_id: u64,
    labels: Vec<String>,
    #[serde(default)]
    runner_id: Option<u64>,
    #[serde(default)]
    runner_name: Option<String>,
    #[serde(default)]
    runner_group_id: Option<u64>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    visibility: Option<String>,
}

impl Repository {
    /// Whether it is public, when the payload says.
    fn public(&self) -> Option<bool> {
        match self.visibility.as_deref() {
            Some(v) => Some(v == "public"),
            None => self.private.map(|p| !p),
        }
    }
}

fn parse_job(body: &[u8]) -> Result<JobEvent, String> {
    // The plain parser first; only a payload it refuses is parsed again to name the path.
    let ev: WorkflowJobEvent = match serde_json::from_slice(body) {
        Ok(ev) => ev,
        Err(_) => return Err(located_error(body)),
    };
    job_event(ev)
}

/// Why `body` is not a `workflow_job` payload, naming where in it.
fn located_error(body: &[u8]) -> String {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, WorkflowJobEvent>(de) {
        Ok(_) => "invalid payload".to_string(),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() && path != "." {
                format!("invalid payload at `{path}`: {inner}")
            } else {
                format!("invalid payload: {inner}")
            }
        }
    }
}

fn job_event(ev: WorkflowJobEvent) -> Result<JobEvent, String> {
    let public = ev.repository.public();
    let job = ev.workflow_job;
    let at = |t: &Option<String>| t.as_deref().and_then(crate::model::parse_rfc3339);
    let waited_secs = match (
        action_waits(&ev.action),
        at(&job.created_at),
        at(&job.started_at),
    ) {
        (true, Some(created), Some(started)) if started >= created => Some(started - created),
        _ => None,
    };
    // The state machine follows `action`; `workflow_job.status` may disagree with it.
    let action = match ev.action.as_str() {
        "queued" | "waiting" => JobAction::Queued,
        "in_progress" => JobAction::InProgress,
        "completed" => JobAction::Completed,
        _ => JobAction::Other,
    };
    Ok(JobEvent {
        action,
        job_id: job.id,
        run_id: job.run_id,
        repository: ev.repository.full_name,
        public,
        labels: job.labels,
        runner_name: job.runner_name,
        // GitHub sends 0 for no runner in some payloads.
        runner_id: job.runner_id.filter(|id| *id != 0),
        runner_group_id: job.runner_group_id.filter(|id| *id != 0),
        conclusion: job.conclusion,
        waited_secs,
        queued_at: at(&job.created_at),
    })
}

/// Whether a job's wait is over at this action (it has started).
fn action_waits(action: &str) -> bool {
    action == "in_progress"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's wait comes from the payload's own times (GitHub's clock): `started_at` minus
    /// `created_at` on `in_progress`, none when a time is missing (older payloads) or on other
    /// actions.
    #[test]
    fn the_wait_of_a_started_job_is_read_off_its_payload() {
        let read = |name: &str| {
            let path = format!(
                "{}/tests/fixtures/webhooks/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            parse_job(&std::fs::read(path).unwrap()).unwrap()
        };
        assert_eq!(read("workflow_job.in_progress.3").waited_secs, Some(7));
        assert_eq!(read("workflow_job.in_progress.2").waited_secs, Some(0));
        assert_eq!(read("workflow_job.in_progress.1").waited_secs, None);
        assert_eq!(read("workflow_job.completed.1").waited_secs, None);
    }

    /// GitHub's published example: docs.github.com, "Validating webhook deliveries".
    #[test]
    fn githubs_published_signature_example() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(secret, body, Some(header)));
        assert_eq!(sign(secret, body), header);
        assert!(!signature_valid(secret, b"Hello, World?", Some(header)));
        assert!(!signature_valid(b"other", body, Some(header)));
        assert!(!signature_valid(secret, body, None));
        assert!(!signature_valid(secret, body, Some("sha1=757107ea")));
        assert!(!signature_valid(
            secret,
            body,
            Some(&header[..header.len() - 2])
        ));
        assert!(!signature_valid(
            secret,
            body,
            Some("sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        ));
        assert!(!signature_valid(
            secret,
            body,
            Some("sha256=é57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1")
        ));
    }
}
