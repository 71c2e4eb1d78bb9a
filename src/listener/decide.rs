//! What one scale-set message means: the tasks to record (the same tasks a webhook delivery
//! becomes, so the runner life cycle is the one of webhook mode), the jobs to acquire, and the
//! message's counts by type. Pure: no I/O, never panics, whatever the message holds.
//!
//! - `JobAvailable`: acquire its `runnerRequestId`.
//! - `JobAssigned`: a job waits for a runner of the group (`Task::JobQueued`, the job's id
//!   being the request id: a reassigned job is a new request, its earlier one completed).
//! - `JobStarted`: a runner of ours took it (`Task::JobInProgress`).
//! - `JobCompleted`: it finished, or was taken back with no runner (`Task::JobCompleted`).
//! - anything else: counted, ignored.
//!
//! Each task is keyed by the message id and its place (a message handled twice records its
//! tasks once) and by the request id and action (a request seen in two messages, once).

use crate::config::RunnerGroup;
use crate::forge::scaleset::{job_messages, JobMessage, Message, JOB_MESSAGES};
use crate::queue::Task;
use std::collections::BTreeMap;

/// A task to record, with its idempotency keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub task: Task,
    /// The message and the task's place in it.
    pub key: String,
    /// The request and the action: `job:ID:queued|in_progress|completed`.
    pub job_key: String,
}

/// What a message asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decided {
    pub tasks: Vec<Recorded>,
    pub acquire: Vec<u64>,
    /// Job messages by `messageType`.
    pub counts: BTreeMap<String, u64>,
}

fn time(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with("0001-") {
        return None;
    }
    crate::model::parse_rfc3339(s)
}

fn repository(m: &JobMessage) -> String {
    format!("{}/{}", m.owner_name, m.repository_name)
}

/// Decides what message `msg` of `group`'s scale set (`scale_set`: its name) means.
/// `ours(name)`: whether a runner of this name is one of ours. `Err` says why the message
/// cannot be read (it is dead-lettered with its id; the session goes on).
pub fn decide(
    group: &RunnerGroup,
    scale_set: &str,
    msg: &Message,
    ours: &dyn Fn(&str) -> bool,
) -> Result<Decided, String> {
    if msg.kind != JOB_MESSAGES {
        return Err(format!("message type `{}` is not supported", msg.kind));
    }
    let jobs = job_messages(&msg.body)?;
    let mut d = Decided::default();
    for (i, m) in jobs.iter().enumerate() {
        *d.counts.entry(m.message_type.clone()).or_default() += 1;
        let key = format!("scaleset:{scale_set}:message:{}:{i}", msg.id);
        let id = m.runner_request_id;
        let recorded = |task: Task, action: &str| Recorded {
            task,
            key: key.clone(),
            job_key: format!("job:{id}:{action}"),
        };
        match m.message_type.as_str() {
            "JobAvailable" if !d.acquire.contains(&id) => d.acquire.push(id),
            "JobAvailable" => {}
            "JobAssigned" => d.tasks.push(recorded(
                Task::JobQueued {
                    job_id: id,
                    run_id: m.workflow_run_id,
                    repository: repository(m),
                    labels: m.request_labels.clone(),
                    group: group.name.clone(),
                    queued_at: time(&m.queue_time),
                },
                "queued",
            )),
            "JobStarted" => {
                let Some(name) = m.runner_name.clone().filter(|n| !n.is_empty()) else {
                    return Err(format!("JobStarted of request {id} names no runner"));
                };
                if !ours(&name) {
                    continue;
                }
                let waited = match (time(&m.queue_time), time(&m.runner_assign_time)) {
                    (Some(q), Some(a)) => Some(a.saturating_sub(q)),
                    _ => None,
                };
                d.tasks.push(recorded(
                    Task::JobInProgress {
                        job_id: id,
                        runner_name: name,
                        runner_id: m.runner_id.filter(|r| *r > 0),
                        runner_group_id: None,
                        waited_secs: waited,
                    },
                    "in_progress",
                ))
            }
            "JobCompleted" => {
                let name = m.runner_name.clone().filter(|n| !n.is_empty());
                if name.as_deref().is_some_and(|n| !ours(n)) {
                    continue;
                }
                d.tasks.push(recorded(
                    Task::JobCompleted {
                        job_id: id,
                        runner_id: m.runner_id.filter(|r| *r > 0 && name.is_some()),
                        runner_name: name,
                        runner_group_id: None,
                        conclusion: m.result.clone(),
                    },
                    "completed",
                ))
            }
            _ => {}
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The unset time in job messages.
    const UNSET: &str = "0001-01-01T00:00:00Z";

    fn group() -> RunnerGroup {
        crate::config::RunnerGroup {
            name: "linux".into(),
            scope: crate::config::GroupScope::Organization,
            organization: "octo-org".into(),
            repository: None,
            selected_repositories: None,
            allow_public_repositories: true,
            selected_workflows: vec![],
            max_runners: 5,
            min_runners: 0,
            labels: vec!["linux".into()],
            backend: "fake".into(),
            spec: crate::config::Typed::new("fake", json!({})),
            bootstrap_template: None,
            container_jobs: None,
            github_app: None,
            warm_pool: None,
            mode: crate::config::GroupMode::ScaleSet,
            scale_set: None,
            backends: vec![],
            failover: Default::default(),
            runner_version: None,
        }
    }

    fn job(kind: &str, id: u64, extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({
            "messageType": kind, "runnerRequestId": id, "repositoryName": "app",
            "ownerName": "octo-org", "jobId": "j", "workflowRunId": 9,
            "requestLabels": ["linux"], "queueTime": "2026-05-01T10:00:00Z",
            "scaleSetAssignTime": UNSET, "runnerAssignTime": UNSET, "finishTime": UNSET,
        });
        for (k, x) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = x;
        }
        v
    }

    fn message(id: u64, jobs: Vec<serde_json::Value>) -> Message {
        Message {
            id,
            kind: JOB_MESSAGES.into(),
            body: serde_json::Value::Array(jobs).to_string(),
            statistics: None,
        }
    }

    fn ours(n: &str) -> bool {
        n.starts_with("rc-")
    }

    #[test]
    fn each_job_message_becomes_the_task_a_webhook_would() {
        let m = message(
            7,
            vec![
                job("JobAvailable", 1, json!({"acquireJobUrl": "x"})),
                job("JobAssigned", 1, json!({})),
                job(
                    "JobStarted",
                    1,
                    json!({"runnerId": 5, "runnerName": "rc-linux-a", "runnerAssignTime": "2026-05-01T10:00:12Z"}),
                ),
                job(
                    "JobCompleted",
                    1,
                    json!({"runnerId": 5, "runnerName": "rc-linux-a", "result": "succeeded"}),
                ),
                job("SomethingNew", 1, json!({})),
            ],
        );
        let d = decide(&group(), "linux", &m, &ours).unwrap();
        assert_eq!(d.acquire, vec![1]);
        assert_eq!(d.tasks.len(), 3);
        assert!(
            matches!(&d.tasks[0].task, Task::JobQueued { job_id: 1, group, repository, queued_at: Some(_), .. } if group == "linux" && repository == "octo-org/app")
        );
        assert!(matches!(
            &d.tasks[1].task,
            Task::JobInProgress {
                job_id: 1,
                runner_id: Some(5),
                waited_secs: Some(12),
                ..
            }
        ));
        assert!(
            matches!(&d.tasks[2].task, Task::JobCompleted { job_id: 1, runner_id: Some(5), conclusion: Some(c), .. } if c == "succeeded")
        );
        assert_eq!(d.tasks[0].key, "scaleset:linux:message:7:1");
        assert_eq!(d.tasks[0].job_key, "job:1:queued");
        assert_eq!(d.counts.get("SomethingNew"), Some(&1));
    }

    #[test]
    fn a_job_taken_back_with_no_runner_completes_its_request_only() {
        let m = message(
            8,
            vec![job(
                "JobCompleted",
                3,
                json!({"runnerId": 0, "runnerName": "", "result": "canceled"}),
            )],
        );
        let d = decide(&group(), "linux", &m, &ours).unwrap();
        assert!(matches!(
            &d.tasks[0].task,
            Task::JobCompleted {
                job_id: 3,
                runner_name: None,
                runner_id: None,
                ..
            }
        ));
    }

    #[test]
    fn events_of_runners_not_ours_change_nothing() {
        let m = message(
            9,
            vec![
                job(
                    "JobStarted",
                    4,
                    json!({"runnerId": 2, "runnerName": "someone-else"}),
                ),
                job(
                    "JobCompleted",
                    4,
                    json!({"runnerId": 2, "runnerName": "someone-else", "result": "failed"}),
                ),
            ],
        );
        assert!(decide(&group(), "linux", &m, &ours)
            .unwrap()
            .tasks
            .is_empty());
    }

    #[test]
    fn a_malformed_message_is_an_error_naming_what_is_wrong() {
        let mut m = message(10, vec![]);
        m.body = "{not json".into();
        assert!(decide(&group(), "linux", &m, &ours)
            .unwrap_err()
            .contains("not job messages"));
        m.body = "[]".into();
        m.kind = "Other".into();
        assert!(decide(&group(), "linux", &m, &ours)
            .unwrap_err()
            .contains("Other"));
        let m = message(11, vec![json!({"messageType": "JobAssigned"})]);
        assert!(
            decide(&group(), "linux", &m, &ours).is_err(),
            "no runnerRequestId"
        );
        let m = message(12, vec![job("JobStarted", 4, json!({"runnerId": 2}))]);
        assert!(decide(&group(), "linux", &m, &ours)
            .unwrap_err()
            .contains("names no runner"));
    }

    #[test]
    fn an_empty_message_asks_nothing() {
        let d = decide(&group(), "linux", &message(13, vec![]), &ours).unwrap();
        assert_eq!(d, Decided::default());
    }
}
