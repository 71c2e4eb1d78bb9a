//! What a webhook delivery means, decided without any I/O: the signature check, the event and
//! action, and the task it becomes. The HTTP layer (`server::http`) only moves bytes.

use crate::config::RunnerGroup;
use crate::manager::matching;
use crate::queue::Task;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The parts of a delivery the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `X-GitHub-Event`.
    pub event: Option<&'a str>,
    /// `X-GitHub-Delivery`: unique per delivery, kept by a redelivery.
    pub id: Option<&'a str>,
    /// `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the body.
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a delivery was accepted without a task, or refused. Also the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Enqueued,
    Duplicate,
    Ping,
    /// An event or action runnerctl does not act on.
    Ignored,
    /// A queued job whose labels match no group.
    Unmatched,
    /// A queued job whose labels match a group that does not admit its repository
    /// (`selected_repositories`, `allow_public_repositories`).
    NotAdmitted,
    /// Too many deliveries or connections at once: 503, redeliver later.
    Busy,
    /// A job run by a runner that is not ours.
    NotOurs,
    Unauthorized,
    BadRequest,
    TooLarge,
    Unavailable,
    MethodNotAllowed,
    NotFound,
}

impl Outcome {
    pub const ALL: [Outcome; 14] = [
        Outcome::Enqueued,
        Outcome::Duplicate,
        Outcome::Ping,
        Outcome::Ignored,
        Outcome::Unmatched,
        Outcome::NotAdmitted,
        Outcome::Busy,
        Outcome::NotOurs,
        Outcome::Unauthorized,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::Unavailable,
        Outcome::MethodNotAllowed,
        Outcome::NotFound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Enqueued => "enqueued",
            Outcome::Duplicate => "duplicate",
            Outcome::Ping => "ping",
            Outcome::Ignored => "ignored",
            Outcome::Unmatched => "unmatched",
            Outcome::NotAdmitted => "not_admitted",
            Outcome::Busy => "busy",
            Outcome::NotOurs => "not_ours",
            Outcome::Unauthorized => "unauthorized",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::Unavailable => "unavailable",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::NotFound => "not_found",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Outcome::Ping => 200,
            Outcome::Enqueued
            | Outcome::Duplicate
            | Outcome::Ignored
            | Outcome::Unmatched
            | Outcome::NotAdmitted
            | Outcome::NotOurs => 202,
            Outcome::BadRequest => 400,
            Outcome::Unauthorized => 401,
            Outcome::NotFound => 404,
            Outcome::MethodNotAllowed => 405,
            Outcome::TooLarge => 413,
            Outcome::Unavailable | Outcome::Busy => 503,
        }
    }
}

/// The decision on a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer now, with a short reason.
    Answer(Outcome, String),
    /// Enqueue `task` under the idempotency key `key` (the delivery) and `job_key` (the job and
    /// action: a replay under a new delivery id is a duplicate too), then answer 202.
    Enqueue {
        task: Task,
        key: String,
        job_key: String,
    },
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

/// The `sha256=…` signature GitHub would send for `body` (for tests and load generators).
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
    runner_name: Option<String>,
    #[serde(default)]
    runner_group_id: Option<u64>,
    #[serde(default)]
    conclusion: Option<String>,
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

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A delivery id is GitHub's GUID; anything else (empty, huge, odd bytes) is refused.
fn valid_delivery_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decides what a delivery means. Never panics, whatever the bytes.
pub fn decide(secret: &[u8], manager: &str, groups: &[RunnerGroup], d: Delivery) -> Decision {
    let answer = |o: Outcome, why: &str| Decision::Answer(o, why.to_string());
    if !signature_valid(secret, d.body, d.signature) {
        return answer(
            Outcome::Unauthorized,
            if d.signature.is_none() {
                "missing X-Hub-Signature-256"
            } else {
                "bad signature"
            },
        );
    }
    let Some(event) = d.event else {
        return answer(Outcome::BadRequest, "missing X-GitHub-Event");
    };
    match event {
        "ping" => return answer(Outcome::Ping, "pong"),
        "workflow_job" => {}
        _ => return answer(Outcome::Ignored, "event not handled"),
    }
    let Some(id) = d.id.filter(|id| valid_delivery_id(id)) else {
        return answer(Outcome::BadRequest, "missing or invalid X-GitHub-Delivery");
    };
    let de = &mut serde_json::Deserializer::from_slice(d.body);
    let ev: WorkflowJobEvent = match serde_path_to_error::deserialize(de) {
        Ok(ev) => ev,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let reason = if inner.is_data() && path != "." {
                format!("invalid payload at `{path}`: {inner}")
            } else {
                format!("invalid payload: {inner}")
            };
            return Decision::Answer(Outcome::BadRequest, reason);
        }
    };
    let job = ev.workflow_job;
    let key = format!("delivery:{id}");
    let job_key = |action: &str| format!("job:{}:{action}", job.id);
    // The state machine follows `action`; `workflow_job.status` may disagree with it.
    match ev.action.as_str() {
        "queued" | "waiting" => {
            let public = ev.repository.public();
            match matching::admitted_group(groups, &ev.repository.full_name, &job.labels, public) {
                Err(matching::NoGroup::Labels) => {
                    answer(Outcome::Unmatched, "no runner group has these labels")
                }
                Err(matching::NoGroup::NotAdmitted(why)) => {
                    tracing::info!(repository = %ev.repository.full_name, job = job.id, "{why}");
                    Decision::Answer(Outcome::NotAdmitted, why)
                }
                Ok(g) => Decision::Enqueue {
                    job_key: job_key("queued"),
                    task: Task::JobQueued {
                        job_id: job.id,
                        run_id: job.run_id,
                        repository: ev.repository.full_name,
                        labels: job.labels,
                        group: g.name.clone(),
                    },
                    key,
                },
            }
        }
        "in_progress" => match job.runner_name {
            Some(name) if matching::group_of_runner(manager, groups, &name).is_some() => {
                Decision::Enqueue {
                    job_key: job_key("in_progress"),
                    task: Task::JobInProgress {
                        job_id: job.id,
                        runner_name: name,
                        runner_group_id: job.runner_group_id,
                    },
                    key,
                }
            }
            _ => answer(
                Outcome::NotOurs,
                "the job runs on a runner that is not ours",
            ),
        },
        "completed" => match job.runner_name {
            // Completed before any runner took it (cancelled): the runner made for it may go.
            None => Decision::Enqueue {
                job_key: job_key("completed"),
                task: Task::JobCompleted {
                    job_id: job.id,
                    runner_name: None,
                    conclusion: job.conclusion,
                },
                key,
            },
            Some(name) if matching::group_of_runner(manager, groups, &name).is_some() => {
                Decision::Enqueue {
                    job_key: job_key("completed"),
                    task: Task::JobCompleted {
                        job_id: job.id,
                        runner_name: Some(name),
                        conclusion: job.conclusion,
                    },
                    key,
                }
            }
            Some(_) => answer(Outcome::NotOurs, "the job ran on a runner that is not ours"),
        },
        _ => answer(Outcome::Ignored, "action not handled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
