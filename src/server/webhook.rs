//! What a webhook delivery means, decided without any I/O: the signature check and the payload
//! (both the forge's [`WebhookScheme`]), and the task it becomes. The HTTP layer (`server`)
//! only moves bytes.

use crate::config::RunnerGroup;
use crate::forge::{JobAction, JobEvent, WebhookEvent, WebhookScheme};
use crate::manager::matching;
use crate::queue::Task;

/// The parts of a delivery the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The event header (GitHub's `X-GitHub-Event`).
    pub event: Option<&'a str>,
    /// The delivery header (`X-GitHub-Delivery`): unique per delivery, kept by a redelivery.
    pub id: Option<&'a str>,
    /// The signature header (`X-Hub-Signature-256`).
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

/// Decides what a delivery means under the forge's webhook scheme. Never panics, whatever the
/// bytes.
pub fn decide(
    scheme: &dyn WebhookScheme,
    secret: &[u8],
    manager: &str,
    groups: &[RunnerGroup],
    d: Delivery,
) -> Decision {
    let answer = |o: Outcome, why: String| Decision::Answer(o, why);
    if !scheme.verify(secret, d.body, d.signature) {
        let why = match d.signature {
            None => format!("missing {}", scheme.signature_header()),
            Some(_) => "bad signature".into(),
        };
        return answer(Outcome::Unauthorized, why);
    }
    let Some(event) = d.event else {
        return answer(
            Outcome::BadRequest,
            format!("missing {}", scheme.event_header()),
        );
    };
    let job = match scheme.parse(event, d.body) {
        Ok(WebhookEvent::Ping) => return answer(Outcome::Ping, "pong".into()),
        Ok(WebhookEvent::Other) => return answer(Outcome::Ignored, "event not handled".into()),
        Ok(WebhookEvent::Job(job)) => job,
        // An unreadable payload without a delivery id is refused for the id first.
        Err(_) if !d.id.is_some_and(valid_delivery_id) => {
            return answer(Outcome::BadRequest, missing_id(scheme));
        }
        Err(why) => return answer(Outcome::BadRequest, why),
    };
    let Some(id) = d.id.filter(|id| valid_delivery_id(id)) else {
        return answer(Outcome::BadRequest, missing_id(scheme));
    };
    let key = format!("delivery:{id}");
    match job.action {
        JobAction::Queued => queued(groups, job, key),
        JobAction::InProgress | JobAction::Completed => started_or_done(manager, groups, job, key),
        JobAction::Other => answer(Outcome::Ignored, "action not handled".into()),
    }
}

fn missing_id(scheme: &dyn WebhookScheme) -> String {
    format!("missing or invalid {}", scheme.delivery_header())
}

fn job_key(job: &JobEvent, action: &str) -> String {
    format!("job:{}:{action}", job.job_id)
}

fn queued(groups: &[RunnerGroup], job: JobEvent, key: String) -> Decision {
    match matching::admitted_group(groups, &job.repository, &job.labels, job.public) {
        Err(matching::NoGroup::Labels) => Decision::Answer(
            Outcome::Unmatched,
            "no runner group has these labels".into(),
        ),
        Err(matching::NoGroup::NotAdmitted(why)) => {
            tracing::info!(repository = %job.repository, job = job.job_id, "{why}");
            Decision::Answer(Outcome::NotAdmitted, why)
        }
        Ok(g) => Decision::Enqueue {
            job_key: job_key(&job, "queued"),
            task: Task::JobQueued {
                job_id: job.job_id,
                run_id: job.run_id,
                repository: job.repository,
                labels: job.labels,
                group: g.name.clone(),
                queued_at: job.queued_at,
            },
            key,
        },
    }
}

fn started_or_done(manager: &str, groups: &[RunnerGroup], job: JobEvent, key: String) -> Decision {
    let ours = |name: &str| matching::group_of_runner(manager, groups, name).is_some();
    match (job.action, job.runner_name.clone()) {
        (JobAction::InProgress, Some(name)) if ours(&name) => Decision::Enqueue {
            job_key: job_key(&job, "in_progress"),
            task: Task::JobInProgress {
                job_id: job.job_id,
                runner_name: name,
                runner_id: job.runner_id,
                runner_group_id: job.runner_group_id,
                waited_secs: job.waited_secs,
            },
            key,
        },
        (JobAction::InProgress, _) => Decision::Answer(
            Outcome::NotOurs,
            "the job runs on a runner that is not ours".into(),
        ),
        // Completed before any runner took it (cancelled): the runner made for it may go.
        (_, None) => Decision::Enqueue {
            job_key: job_key(&job, "completed"),
            task: Task::JobCompleted {
                job_id: job.job_id,
                runner_name: None,
                runner_id: None,
                runner_group_id: None,
                conclusion: job.conclusion,
            },
            key,
        },
        (_, Some(name)) if ours(&name) => Decision::Enqueue {
            job_key: job_key(&job, "completed"),
            task: Task::JobCompleted {
                job_id: job.job_id,
                runner_name: Some(name),
                runner_id: job.runner_id,
                runner_group_id: job.runner_group_id,
                conclusion: job.conclusion,
            },
            key,
        },
        (_, Some(_)) => Decision::Answer(
            Outcome::NotOurs,
            "the job ran on a runner that is not ours".into(),
        ),
    }
}
