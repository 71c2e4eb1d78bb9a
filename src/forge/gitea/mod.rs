//! The Gitea (and Forgejo) forge over REST (`/api/v1`), with octocrab as the HTTP transport (an
//! access token as `Authorization: Bearer`; every route is raw, so every answer's status is seen
//! here). Pagination is Gitea's: `page` and `limit`, 50 a page.
//!
//! Versions: `GET /version` is read once. Gitea 1.24 added the runner API modelled on GitHub's
//! (`…/actions/runners`, `…/actions/runners/{id}`, `POST …/registration-token` that replaces the
//! token) and job listings (`/repos/{owner}/{repo}/actions/jobs`). Before it only the
//! registration token can be read (the repository's and the instance's under older paths): then
//! listing runners answers [`ForgeError::Unsupported`] (a health check does nothing it cannot
//! see, and says so), lost jobs cannot be found, and tokens are never replaced. Forgejo reports
//! its Gitea compatibility as `…+gitea-1.22.0`, which is what counts.
//!
//! Registration: a token the runner registers itself with (`act_runner register --ephemeral`).
//! It is reusable until replaced, so it reaches instances only through the credential broker,
//! and the manager replaces it once used ([`RegistrationTokens`]).
//!
//! Rate limits: Gitea has none of its own, but a proxy in front may answer 429 (or 403 with
//! `retry-after`); those are waited out when short and returned as
//! [`ForgeError::RateLimited`] otherwise, as for GitHub.

pub mod fake;
pub mod webhook;

use super::github::{classify_transport, error_for, rate_limit_wait};
use super::meter::{self, Meter};
use super::*;
use http::StatusCode;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The release the runner API arrived in.
pub const RUNNER_API: (u64, u64) = (1, 24);

/// What the server's version allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// As the server reports it (`1.24.2`, `10.0.1+gitea-1.22.0`).
    pub text: String,
    /// The Gitea release it is, or is compatible with.
    pub gitea: (u64, u64),
}

impl Version {
    /// Reads `/version`'s `version`: Gitea's own, or Forgejo's with its `+gitea-X.Y.Z`.
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim().trim_start_matches('v');
        let core = match t.split_once("+gitea-") {
            Some((_, g)) => g,
            None => t,
        };
        let mut parts = core.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(Version {
            text: text.to_string(),
            gitea: (major, minor),
        })
    }

    /// Whether it has the runner API (list, get, delete runners; replace tokens; list jobs).
    pub fn has_runner_api(&self) -> bool {
        self.gitea >= RUNNER_API
    }
}

/// A Gitea or Forgejo instance.
pub struct Gitea {
    octo: Octocrab,
    /// The API root (`https://gitea.example.com/api/v1`), named in errors.
    api: String,
    /// The web root runners register against.
    web: String,
    name: &'static str,
    version: tokio::sync::OnceCell<Version>,
    /// The token's side of the shared API budget.
    meter: Meter,
    /// The longest rate-limit wait done in place; longer ones are returned as errors.
    pub max_wait: Duration,
}

#[derive(Clone, Copy)]
enum Verb {
    Get,
    Post,
    Delete,
}

/// A label's name: `ubuntu-22.04:docker://node:20` is `ubuntu-22.04` (the rest says how the
/// runner runs it).
pub fn label_name(label: &str) -> &str {
    label.split(':').next().unwrap_or(label)
}

impl Gitea {
    /// A client for the instance at `web_url` (`https://gitea.example.com`), `name` being
    /// `Gitea` or `Forgejo` in messages.
    pub fn new(web_url: &str, token: Secret, name: &'static str) -> Result<Gitea> {
        let web = web_url.trim_end_matches('/');
        Self::with_api_root(&format!("{web}/api/v1"), web, token, name)
    }

    /// Every call asks the shared API budget first, with these limits.
    pub fn with_budget(
        mut self,
        budget: std::sync::Arc<dyn crate::budget::Budget>,
        limits: crate::budget::Limits,
    ) -> Gitea {
        self.meter.set_budget(budget, limits);
        self
    }

    /// A client whose API root is not `WEB/api/v1` (a proxy in front, as in the contract test).
    pub fn with_api_root(
        api_root: &str,
        web_url: &str,
        token: Secret,
        name: &'static str,
    ) -> Result<Gitea> {
        let web = web_url.trim_end_matches('/').to_string();
        let api = api_root.trim_end_matches('/').to_string();
        let credential =
            crate::budget::credential_id("gitea", &format!("{api} {}", token.expose()));
        let octo = Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(|e| ForgeError::Config(format!("gitea.url `{web}`: {e}")))?
            .add_header(http::header::ACCEPT, "application/json".into())
            .personal_token(token.expose().to_string())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| ForgeError::Config(e.to_string()))?;
        Ok(Gitea {
            octo,
            api,
            web,
            name,
            version: tokio::sync::OnceCell::new(),
            meter: Meter::new(credential, crate::budget::Limits::GITHUB),
            max_wait: Duration::from_secs(10),
        })
    }

    /// The server's version, read once.
    pub async fn version(&self) -> Result<&Version> {
        self.version
            .get_or_try_init(|| async {
                #[derive(Deserialize)]
                struct V {
                    version: String,
                }
                let v: V = self.json(Verb::Get, "version").await?;
                Version::parse(&v.version).ok_or_else(|| {
                    ForgeError::Decode(format!(
                        "{}/version: `{}` is not a version",
                        self.api,
                        v.version.escape_default()
                    ))
                })
            })
            .await
    }

    async fn runner_api(&self, what: &str) -> Result<()> {
        let v = self.version().await?;
        if v.has_runner_api() {
            return Ok(());
        }
        Err(ForgeError::Unsupported(format!(
            "{what} needs Gitea {}.{} or later; {} at {} is {}",
            RUNNER_API.0, RUNNER_API.1, self.name, self.web, v.text
        )))
    }

    /// Sends one request; returns the status and body. Waits out short rate limits.
    async fn call(&self, verb: Verb, path: &str) -> Result<(StatusCode, String)> {
        let uri = format!("/{path}");
        let (method, write) = match verb {
            Verb::Get => ("GET", false),
            Verb::Post => ("POST", true),
            Verb::Delete => ("DELETE", true),
        };
        let class = crate::budget::endpoint_class(method, path);
        for _ in 0..3 {
            let (_, permit) = meter::take_any(&[&self.meter], &class, write, self.max_wait).await?;
            let body: Option<&serde_json::Value> = None;
            let sent = match verb {
                Verb::Get => self.octo._get(uri.as_str()).await,
                Verb::Post => self.octo._post(uri.as_str(), body).await,
                Verb::Delete => self.octo._delete(uri.as_str(), body).await,
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.meter.done(permit, None).await;
                    return Err(match classify_transport(&e) {
                        ForgeError::Unavailable(why) => {
                            ForgeError::Unavailable(format!("{}{uri}: {why}", self.api))
                        }
                        other => other,
                    });
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            self.meter.done(permit, meter::primary_of(&headers)).await;
            let text = self
                .octo
                .body_to_string(resp)
                .await
                .map_err(|e| ForgeError::Unavailable(format!("{}{uri}: {e}", self.api)))?;
            let Some(wait) = rate_limit_wait(status, &headers, None, &text) else {
                return Ok((status, text));
            };
            let kept = self.meter.pause(&class, wait).await;
            let reset_at = crate::model::unix_now() + wait.as_secs();
            if wait > self.max_wait {
                return Err(ForgeError::RateLimited { reset_at, wait });
            }
            tracing::warn!(
                path,
                wait_secs = wait.as_secs(),
                "{} rate limit; waiting",
                self.name
            );
            // A pause the budget keeps is waited for by the next ask.
            if !kept {
                tokio::time::sleep(wait).await;
            }
        }
        Err(ForgeError::RateLimited {
            reset_at: crate::model::unix_now() + 60,
            wait: Duration::from_secs(60),
        })
    }

    async fn json<T: DeserializeOwned>(&self, verb: Verb, path: &str) -> Result<T> {
        let (status, text) = self.call(verb, path).await?;
        if !status.is_success() {
            return Err(error_for(status, &text, &format!("{}/{path}", self.api)));
        }
        serde_json::from_str(&text)
            .map_err(|e| ForgeError::Decode(format!("{}/{path}: {e}", self.api)))
    }

    /// Every page of a listing, `field` naming the array in each answer (`None`: the answer is
    /// the array).
    async fn pages<T: DeserializeOwned>(&self, path: &str, field: Option<&str>) -> Result<Vec<T>> {
        const LIMIT: usize = 50;
        let mut out: Vec<T> = Vec::new();
        for page in 1..=1000 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let v: serde_json::Value = self
                .json(Verb::Get, &format!("{path}{sep}page={page}&limit={LIMIT}"))
                .await?;
            let (items, total) = match field {
                None => (v, None),
                Some(f) => (
                    v.get(f).cloned().unwrap_or(serde_json::Value::Null),
                    v.get("total_count").and_then(|t| t.as_u64()),
                ),
            };
            // Gitea answers `null` for an empty list.
            let items: Vec<T> = match items {
                serde_json::Value::Null => Vec::new(),
                items => serde_json::from_value(items)
                    .map_err(|e| ForgeError::Decode(format!("{}/{path}: {e}", self.api)))?,
            };
            let n = items.len();
            out.extend(items);
            if n < LIMIT || total.is_some_and(|t| out.len() as u64 >= t) {
                break;
            }
        }
        Ok(out)
    }

    /// Where a scope's registration token is read (and, from 1.24, replaced).
    async fn token_path(&self, scope: &Scope) -> Result<String> {
        let modern = self.version().await?.has_runner_api();
        Ok(match scope {
            Scope::Instance if !modern => "admin/runners/registration-token".into(),
            Scope::Repo { owner, repo } if !modern => {
                format!("repos/{owner}/{repo}/runners/registration-token")
            }
            s => format!("{}/actions/runners/registration-token", s.path()),
        })
    }
}

#[derive(Deserialize)]
struct RawRunner {
    id: u64,
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    busy: bool,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawLabel {
    Named { name: String },
    Bare(String),
}

impl From<RawRunner> for ForgeRunner {
    fn from(r: RawRunner) -> Self {
        // Gitea's status model: offline when last seen over a minute ago; idle; active (busy).
        let status = r.status.to_ascii_lowercase();
        let online = matches!(status.as_str(), "online" | "idle" | "active");
        ForgeRunner {
            id: r.id,
            name: r.name,
            state: if online {
                RunnerState::Online
            } else {
                RunnerState::Offline
            },
            busy: r.busy || status == "active",
            labels: r
                .labels
                .into_iter()
                .map(|l| match l {
                    RawLabel::Named { name } | RawLabel::Bare(name) => name,
                })
                .map(|l| label_name(&l).to_string())
                .collect(),
            runner_group_id: None,
        }
    }
}

#[async_trait::async_trait]
impl RunnerRegistry for Gitea {
    async fn list_runners(&self, scope: &Scope) -> Result<Vec<ForgeRunner>> {
        self.runner_api("listing runners").await?;
        let raw: Vec<RawRunner> = self
            .pages(
                &format!("{}/actions/runners", scope.path()),
                Some("runners"),
            )
            .await?;
        Ok(raw.into_iter().map(ForgeRunner::from).collect())
    }

    async fn get_runner(&self, scope: &Scope, id: u64) -> Result<Option<ForgeRunner>> {
        self.runner_api("reading a runner").await?;
        match self
            .json::<RawRunner>(Verb::Get, &format!("{}/actions/runners/{id}", scope.path()))
            .await
        {
            Ok(r) => Ok(Some(r.into())),
            Err(ForgeError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_runner(&self, scope: &Scope, id: u64) -> Result<Deleted> {
        self.runner_api("deleting a runner").await?;
        let path = format!("{}/actions/runners/{id}", scope.path());
        let (status, text) = self.call(Verb::Delete, &path).await?;
        match status.as_u16() {
            200..=299 => Ok(Deleted::Deleted),
            404 => Ok(Deleted::NotFound),
            409 | 422 => Ok(Deleted::Busy),
            _ => Err(error_for(status, &text, &format!("{}/{path}", self.api))),
        }
    }

    async fn register(&self, scope: &Scope, _req: &RunnerRequest<'_>) -> Result<Registration> {
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let path = self.token_path(scope).await?;
        let t: Token = self.json(Verb::Get, &path).await?;
        if t.token.is_empty() {
            return Err(ForgeError::Decode(format!(
                "{}/{path}: an empty registration token",
                self.api
            )));
        }
        Ok(Registration::Token(Secret::new(t.token)))
    }
}

#[async_trait::async_trait]
impl RegistrationTokens for Gitea {
    async fn replace_registration_token(&self, scope: &Scope) -> Result<bool> {
        if !self.version().await?.has_runner_api() {
            return Ok(false);
        }
        let path = self.token_path(scope).await?;
        let (status, text) = self.call(Verb::Post, &path).await?;
        if !status.is_success() {
            return Err(error_for(status, &text, &format!("{}/{path}", self.api)));
        }
        Ok(true)
    }
}

#[async_trait::async_trait]
impl JobSource for Gitea {
    async fn repositories(&self, owner: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Repo {
            name: String,
        }
        // An organization's, else a user's.
        let v: Vec<Repo> = match self.pages(&format!("orgs/{owner}/repos"), None).await {
            Err(ForgeError::NotFound(_)) => {
                self.pages(&format!("users/{owner}/repos"), None).await?
            }
            other => other?,
        };
        Ok(v.into_iter().map(|r| r.name).collect())
    }

    async fn queued_jobs(
        &self,
        owner: &str,
        repo: &str,
        max_runs: usize,
    ) -> Result<Vec<QueuedJob>> {
        if !self.version().await?.has_runner_api() {
            // `actions/tasks` of older releases has no labels: lost jobs cannot be matched.
            return Ok(Vec::new());
        }
        #[derive(Deserialize)]
        struct Job {
            id: u64,
            run_id: u64,
            status: String,
            #[serde(default)]
            labels: Vec<String>,
        }
        let jobs: Vec<Job> = self
            .pages(
                &format!("repos/{owner}/{repo}/actions/jobs?status=waiting"),
                Some("jobs"),
            )
            .await?;
        let mut runs = std::collections::BTreeSet::new();
        Ok(jobs
            .into_iter()
            .filter(|j| matches!(j.status.as_str(), "waiting" | "queued"))
            .filter(|j| {
                runs.insert(j.run_id);
                runs.len() <= max_runs
            })
            .map(|j| QueuedJob {
                id: j.id,
                run_id: j.run_id,
                repository: format!("{owner}/{repo}"),
                labels: j.labels.iter().map(|l| label_name(l).to_string()).collect(),
            })
            .collect())
    }

    async fn past_jobs(
        &self,
        owner: &str,
        repo: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<crate::forge::PastJob>> {
        if !self.version().await?.has_runner_api() {
            return Err(ForgeError::Unsupported(format!(
                "listing the jobs of {owner}/{repo} needs Gitea 1.24 or later"
            )));
        }
        #[derive(Deserialize)]
        struct Job {
            id: u64,
            status: String,
            #[serde(default)]
            labels: Vec<String>,
            created_at: Option<String>,
            started_at: Option<String>,
            completed_at: Option<String>,
            conclusion: Option<String>,
        }
        let jobs: Vec<Job> = self
            .pages(&format!("repos/{owner}/{repo}/actions/jobs"), Some("jobs"))
            .await?;
        let time = |t: &Option<String>| t.as_deref().and_then(crate::model::parse_rfc3339);
        Ok(jobs
            .into_iter()
            .filter_map(|j| {
                let created = time(&j.created_at)?;
                let ended = matches!(
                    j.status.as_str(),
                    "success" | "failure" | "cancelled" | "skipped"
                );
                Some(crate::forge::PastJob {
                    id: j.id,
                    repository: format!("{owner}/{repo}"),
                    created_at: created,
                    started_at: time(&j.started_at),
                    completed_at: time(&j.completed_at),
                    labels: j.labels.iter().map(|l| label_name(l).to_string()).collect(),
                    conclusion: j.conclusion.or(ended.then_some(j.status)),
                })
            })
            .filter(|j| (since..=until).contains(&j.created_at))
            .collect())
    }

    async fn workflow_run(&self, owner: &str, repo: &str, run_id: u64) -> Result<WorkflowRun> {
        Err(ForgeError::Unsupported(format!(
            "workflow restrictions are GitHub's (run {run_id} of {owner}/{repo})"
        )))
    }
}

impl Forge for Gitea {
    fn name(&self) -> &'static str {
        self.name
    }
    fn runner_url(&self, _scope: &Scope) -> String {
        self.web.clone()
    }
    fn agent(&self) -> Agent {
        Agent::ActRunner
    }
    fn groups(&self) -> Option<&dyn RunnerGroups> {
        None
    }
    fn tokens(&self) -> Option<&dyn RegistrationTokens> {
        Some(self)
    }
    fn webhooks(&self) -> &'static dyn WebhookScheme {
        &webhook::GITEA
    }
    fn meters(&self) -> Vec<&Meter> {
        vec![&self.meter]
    }
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }
}
