//! The GitHub forge over REST. octocrab carries the requests and the authentication (a personal
//! access token, or a GitHub App whose installation token it caches and renews before it
//! expires); the routes are raw (`_get`, `_post`, …) so that every answer's status and
//! `x-ratelimit-*` headers are seen here, and pagination is explicit, 100 per page.
//!
//! Rate limits: a 429, or a 403 with `retry-after`, with no requests remaining or with GitHub's
//! "rate limit" message (a secondary limit answers 403 with requests still remaining), is
//! waited out when the wait is short, else returned as [`ForgeError::RateLimited`] with how long
//! to wait: `retry-after`; else until `x-ratelimit-reset` by GitHub's own `Date`; else (a
//! secondary limit without either) a minute, as GitHub's documentation asks. A
//! rate-limited request was not performed by GitHub, so waiting and sending it again cannot make
//! a second runner; a JIT request repeated after a lost answer gets 409, which the caller handles
//! by looking the runner up by name.

pub mod actions;
pub mod webhook;

use super::meter::{self, Meter};
use super::*;
use http::StatusCode;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use std::time::Duration;

/// How runnerctl authenticates, with its secrets read.
#[derive(Debug, Clone)]
pub enum Auth {
    Token(Secret),
    App {
        app_id: u64,
        installation_id: u64,
        private_key: Secret,
    },
}

impl Auth {
    /// The credential's name in the shared API budget and the metrics: the installation for
    /// an App, a digest for a token (never the token).
    pub fn credential(&self) -> String {
        match self {
            Auth::Token(t) => crate::budget::credential_id("token", t.expose()),
            Auth::App {
                app_id,
                installation_id,
                ..
            } => format!("app-{app_id}-installation-{installation_id}"),
        }
    }
}

/// One credential's client: a token's, or one GitHub App installation's.
struct Client {
    /// The App's name in `github.apps` (`default` for the one of `github:`).
    name: String,
    octo: Octocrab,
    meter: Meter,
    rate: Mutex<Option<RateLimit>>,
    /// With several Apps: until when (unix s) this one is left out, its credentials refused.
    refused_until: std::sync::atomic::AtomicU64,
}

pub struct GitHub {
    /// One client per credential; several with `github.apps`.
    clients: Vec<Client>,
    /// The API root, named in errors.
    base: String,
    /// Where the next call's choice of client starts, so that the Apps share the work.
    next: std::sync::atomic::AtomicUsize,
    /// The longest rate-limit wait done in place; longer ones are returned as errors.
    pub max_wait: Duration,
}

/// How long an App whose credentials GitHub refused is left out, when there are others.
const REFUSED_FOR: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
enum Verb {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

impl GitHub {
    /// Registers a runner and returns its just-in-time configuration, with the App `app` (of
    /// `github.apps`) when given, else with whichever has budget.
    pub async fn generate_jit_config(
        &self,
        scope: &Scope,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
        work_folder: &str,
    ) -> Result<JitConfig> {
        self.jit_with(None, scope, name, runner_group_id, labels, work_folder)
            .await
    }

    async fn jit_with(
        &self,
        app: Option<&str>,
        scope: &Scope,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
        work_folder: &str,
    ) -> Result<JitConfig> {
        #[derive(Deserialize)]
        struct Answer {
            runner: RawRunner,
            encoded_jit_config: String,
        }
        let body = serde_json::json!({
            "name": name,
            "runner_group_id": runner_group_id,
            "labels": labels,
            "work_folder": work_folder,
        });
        let path = format!("{}/actions/runners/generate-jitconfig", scope.path());
        let (status, text) = self.call_with(app, Verb::Post, &path, Some(&body)).await?;
        if !status.is_success() {
            return Err(error_for(status, &text, &path));
        }
        let a: Answer =
            serde_json::from_str(&text).map_err(|e| ForgeError::Decode(format!("{path}: {e}")))?;
        Ok(JitConfig {
            runner: a.runner.into(),
            encoded: Secret::new(a.encoded_jit_config),
        })
    }

    /// A registration token of `scope` (about an hour; the scale-set registration exchange
    /// turns it into the Actions service's URL and admin token).
    pub async fn registration_token(&self, scope: &Scope) -> Result<Secret> {
        #[derive(Deserialize)]
        struct Answer {
            token: String,
        }
        let path = format!("{}/actions/runners/registration-token", scope.path());
        let (status, text) = self.call(Verb::Post, &path, None).await?;
        if status != StatusCode::CREATED {
            return Err(error_for(status, &text, &path));
        }
        let a: Answer =
            serde_json::from_str(&text).map_err(|e| ForgeError::Decode(format!("{path}: {e}")))?;
        Ok(Secret::new(a.token))
    }

    /// The API root (`https://api.github.com`, GHES's `…/api/v3`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A client for the API at `base_url` (`https://api.github.com`, or GHES's `…/api/v3`).
    pub fn new(base_url: &str, auth: Auth) -> Result<GitHub> {
        GitHub::with_apps(base_url, vec![("default".into(), auth)])
    }

    /// A client with several credentials (`github.apps`), each named; calls go to whichever
    /// has budget, a runner group's JIT configurations to the App it pins.
    pub fn with_apps(base_url: &str, auths: Vec<(String, Auth)>) -> Result<GitHub> {
        if auths.is_empty() {
            return Err(ForgeError::Config("no GitHub credential".into()));
        }
        let mut clients = Vec::with_capacity(auths.len());
        for (name, auth) in auths {
            let credential = auth.credential();
            let octo = octocrab_for(base_url, auth).map_err(|e| match e {
                ForgeError::Config(why) if name != "default" => {
                    ForgeError::Config(format!("github.apps `{name}`: {why}"))
                }
                other => other,
            })?;
            clients.push(Client {
                name,
                octo,
                meter: Meter::new(credential, crate::budget::Limits::GITHUB),
                rate: Mutex::new(None),
                refused_until: Default::default(),
            });
        }
        Ok(GitHub {
            clients,
            base: base_url.trim_end_matches('/').to_string(),
            next: Default::default(),
            max_wait: Duration::from_secs(10),
        })
    }

    /// Every call asks the shared API budget first, with these limits.
    pub fn with_budget(
        mut self,
        budget: std::sync::Arc<dyn crate::budget::Budget>,
        limits: crate::budget::Limits,
    ) -> GitHub {
        for c in &mut self.clients {
            c.meter.set_budget(budget.clone(), limits);
        }
        self
    }

    /// Lists one runner of `scope` with each App in turn (`doctor`): which of them GitHub
    /// accepts there.
    pub async fn probe_apps(&self, scope: &Scope) -> Vec<(String, Result<()>)> {
        let path = format!("{}/actions/runners?per_page=1", scope.path());
        let mut out = Vec::new();
        for c in &self.clients {
            let r = match self.call_with(Some(&c.name), Verb::Get, &path, None).await {
                Ok((status, _)) if status.is_success() => Ok(()),
                Ok((status, text)) => Err(self.named(c, error_for(status, &text, &path))),
                Err(e) => Err(e),
            };
            out.push((c.name.clone(), r));
        }
        out
    }

    /// The clients a call may use, in the order to try them: the one named, else all,
    /// starting with the next in turn.
    fn candidates(&self, app: Option<&str>) -> Result<Vec<&Client>> {
        if let Some(name) = app {
            return self
                .clients
                .iter()
                .find(|c| c.name == name)
                .map(|c| vec![c])
                .ok_or_else(|| {
                    ForgeError::Config(format!("no GitHub App named `{name}` in github.apps"))
                });
        }
        let n = self.clients.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        let now = crate::model::unix_now();
        let all: Vec<&Client> = (0..n).map(|i| &self.clients[(start + i) % n]).collect();
        // An App whose credentials GitHub refused lately is left out while others remain.
        let usable: Vec<&Client> = all
            .iter()
            .copied()
            .filter(|c| c.refused_until.load(std::sync::atomic::Ordering::Relaxed) <= now)
            .collect();
        Ok(if usable.is_empty() { all } else { usable })
    }

    /// Whether a failed call is worth making again with another App: this one's credentials
    /// were refused (a wrong key, an installation gone), and there are others.
    fn refused(&self, client: &Client, e: &ForgeError, tried: usize, of: usize) -> bool {
        if !matches!(e, ForgeError::Unauthorized(_) | ForgeError::Config(_)) || of < 2 {
            return false;
        }
        client.refused_until.store(
            crate::model::unix_now() + REFUSED_FOR.as_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::error!(
            app = %client.name,
            error = %e,
            "GitHub refused this App's credentials; using the other Apps for {}s",
            REFUSED_FOR.as_secs()
        );
        tried < of
    }

    async fn call(
        &self,
        verb: Verb,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, String)> {
        self.call_with(None, verb, path, body).await
    }

    /// Sends one request with a client that has budget; returns the status and body. Waits
    /// out short rate limits (trying another App, when there are several).
    async fn call_with(
        &self,
        app: Option<&str>,
        verb: Verb,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, String)> {
        let uri = format!("/{path}");
        let class = crate::budget::endpoint_class(verb.as_str(), path);
        let write = !matches!(verb, Verb::Get);
        let mut clients = self.candidates(app)?;
        let of = clients.len();
        let mut attempts = 0;
        while attempts < 3 {
            attempts += 1;
            let meters: Vec<&Meter> = clients.iter().map(|c| &c.meter).collect();
            let (i, permit) = meter::take_any(&meters, &class, write, self.max_wait).await?;
            let client = clients[i];
            let sent = match verb {
                Verb::Get => client.octo._get(uri.as_str()).await,
                Verb::Post => client.octo._post(uri.as_str(), body).await,
                Verb::Patch => client.octo._patch(uri.as_str(), body).await,
                Verb::Put => client.octo._put(uri.as_str(), body).await,
                Verb::Delete => client.octo._delete(uri.as_str(), body).await,
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    client.meter.done(permit, None).await;
                    let e = match classify_transport(&e) {
                        // Say where: the operator must know which URL could not be reached.
                        ForgeError::Unavailable(why) => {
                            ForgeError::Unavailable(format!("{}{uri}: {why}", self.base))
                        }
                        other => self.named(client, other),
                    };
                    if self.refused(client, &e, of - clients.len() + 1, of) {
                        clients.remove(i);
                        attempts -= 1;
                        continue;
                    }
                    // Its installation token was refused for a limit: the others go on.
                    if let (ForgeError::RateLimited { wait, .. }, true) = (&e, clients.len() > 1) {
                        client.meter.pause(crate::budget::ALL_CLASSES, *wait).await;
                        clients.remove(i);
                        continue;
                    }
                    return Err(e);
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let rate = client.record_rate(&headers);
            client.meter.done(permit, meter::primary_of(&headers)).await;
            let text = client
                .octo
                .body_to_string(resp)
                .await
                .map_err(|e| ForgeError::Unavailable(e.to_string()))?;
            let Some(wait) = rate_limit_wait(status, &headers, rate, &text) else {
                return Ok((status, text));
            };
            // A spent hourly budget stops every endpoint; a secondary limit this class.
            let spent = rate.is_some_and(|r| r.remaining == 0);
            let paused = if spent {
                crate::budget::ALL_CLASSES
            } else {
                class.as_str()
            };
            let kept = client.meter.pause(paused, wait).await;
            tracing::warn!(
                path,
                wait_secs = wait.as_secs(),
                credential = %client.meter.credential,
                "GitHub rate limit"
            );
            if kept {
                // The pause is in the budget: the next ask waits for it, or takes another App.
                continue;
            }
            if clients.len() > 1 {
                // Nothing keeps the pause: this call goes on with the other Apps.
                clients.remove(i);
                continue;
            }
            if wait > self.max_wait {
                let reset_at = crate::model::unix_now() + wait.as_secs();
                return Err(ForgeError::RateLimited { reset_at, wait });
            }
            tokio::time::sleep(wait).await;
        }
        Err(ForgeError::RateLimited {
            reset_at: crate::model::unix_now() + 60,
            wait: Duration::from_secs(60),
        })
    }

    /// An error of one App's, named after it when there are several.
    fn named(&self, client: &Client, e: ForgeError) -> ForgeError {
        if self.clients.len() < 2 {
            return e;
        }
        match e {
            ForgeError::Unauthorized(m) => {
                ForgeError::Unauthorized(format!("GitHub App `{}`: {m}", client.name))
            }
            ForgeError::Config(m) => {
                ForgeError::Config(format!("GitHub App `{}`: {m}", client.name))
            }
            other => other,
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        verb: Verb,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let (status, text) = self.call(verb, path, body).await?;
        if !status.is_success() {
            return Err(error_for(status, &text, path));
        }
        serde_json::from_str(&text).map_err(|e| ForgeError::Decode(format!("{path}: {e}")))
    }

    /// Every page of a listing whose answer is a plain array (`per_page=100`).
    async fn pages_array<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        let mut out: Vec<T> = Vec::new();
        for page in 1.. {
            let items: Vec<T> = self
                .json(Verb::Get, &format!("{path}?per_page=100&page={page}"), None)
                .await?;
            let n = items.len();
            out.extend(items);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Every page of a listing (`per_page=100`), following the item count GitHub reports.
    async fn pages<T: DeserializeOwned>(&self, path: &str, field: &str) -> Result<Vec<T>> {
        let mut out: Vec<T> = Vec::new();
        for page in 1.. {
            let sep = if path.contains('?') { '&' } else { '?' };
            let v: serde_json::Value = self
                .json(
                    Verb::Get,
                    &format!("{path}{sep}per_page=100&page={page}"),
                    None,
                )
                .await?;
            let items = v
                .get(field)
                .cloned()
                .ok_or_else(|| ForgeError::Decode(format!("{path}: no `{field}` in the answer")))?;
            let items: Vec<T> = serde_json::from_value(items)
                .map_err(|e| ForgeError::Decode(format!("{path}: {e}")))?;
            let total = v.get("total_count").and_then(|t| t.as_u64());
            let n = items.len();
            out.extend(items);
            if n < 100 || total.is_some_and(|t| out.len() as u64 >= t) {
                break;
            }
        }
        Ok(out)
    }
}

/// The web root of an API root: `https://github.com` for `https://api.github.com`, the host
/// for GHES's `…/api/v3`.
pub fn web_url(api_base: &str) -> String {
    let base = api_base.trim_end_matches('/');
    if base == "https://api.github.com" {
        "https://github.com".into()
    } else if let Some(host) = base.strip_suffix("/api/v3") {
        host.into()
    } else {
        base.into()
    }
}

/// How long GitHub asks us to wait, when its answer is a rate limit (primary or secondary);
/// `None` when it is not one.
pub fn rate_limit_wait(
    status: StatusCode,
    headers: &http::HeaderMap,
    rate: Option<RateLimit>,
    body: &str,
) -> Option<Duration> {
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let exhausted = rate.is_some_and(|r| r.remaining == 0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (retry_after.is_some()
                || exhausted
                || message_of(body).to_lowercase().contains("rate limit")));
    if !limited {
        return None;
    }
    if let Some(secs) = retry_after {
        return Some(Duration::from_secs(secs.max(1)));
    }
    if let (true, Some(r)) = (exhausted, rate) {
        // GitHub's clock, from its own answer, when it says; ours otherwise.
        let now = meter::forge_now(headers);
        return Some(Duration::from_secs(r.reset.saturating_sub(now).max(1)));
    }
    Some(Duration::from_secs(60))
}

/// An error octocrab raised before an answer reached us: a network failure, or GitHub refusing
/// the installation token request (bad app id, key or installation).
pub(super) fn classify_transport(e: &octocrab::Error) -> ForgeError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code;
            let message = format!("{} (installation token)", source.message);
            match status.as_u16() {
                401 | 403 | 404 => ForgeError::Unauthorized(message),
                429 => {
                    let now = crate::model::unix_now();
                    let reset_at = source.rate_limit_reset.unwrap_or(now + 60);
                    ForgeError::RateLimited {
                        reset_at,
                        wait: Duration::from_secs(reset_at.saturating_sub(now).max(1)),
                    }
                }
                500..=599 => ForgeError::Unavailable(message),
                s => ForgeError::Api { status: s, message },
            }
        }
        other => {
            // Display of a transport error is short; keep the first line only.
            let text = other.to_string();
            ForgeError::Unavailable(text.lines().next().unwrap_or_default().to_string())
        }
    }
}

fn message_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_else(|| text.chars().take(2000).collect())
}

pub(super) fn error_for(status: StatusCode, text: &str, path: &str) -> ForgeError {
    let message = format!("{} ({path})", message_of(text));
    match status.as_u16() {
        401 | 403 => ForgeError::Unauthorized(message),
        404 => ForgeError::NotFound(message),
        409 => ForgeError::Conflict(message),
        500..=599 => ForgeError::Unavailable(message),
        s => ForgeError::Api { status: s, message },
    }
}

impl Client {
    fn record_rate(&self, headers: &http::HeaderMap) -> Option<RateLimit> {
        let num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let rl = RateLimit {
            limit: num("x-ratelimit-limit")?,
            remaining: num("x-ratelimit-remaining")?,
            used: num("x-ratelimit-used").unwrap_or(0),
            reset: num("x-ratelimit-reset").unwrap_or(0),
        };
        *self.rate.lock().unwrap_or_else(|p| p.into_inner()) = Some(rl);
        Some(rl)
    }
}

/// The octocrab client of one credential.
fn octocrab_for(base_url: &str, auth: Auth) -> Result<Octocrab> {
    let mut b = Octocrab::builder()
        .base_uri(base_url)
        .map_err(|e| ForgeError::Config(format!("base_url `{base_url}`: {e}")))?
        .add_header(http::header::ACCEPT, "application/json".into())
        .add_header(
            http::header::HeaderName::from_static("x-github-api-version"),
            "2022-11-28".into(),
        )
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)));
    match auth {
        Auth::Token(t) => {
            b = b.personal_token(t.expose().to_string());
            b.build().map_err(|e| ForgeError::Config(e.to_string()))
        }
        Auth::App {
            app_id,
            installation_id,
            private_key,
        } => {
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
                .map_err(|e| {
                    ForgeError::Config(format!(
                        "the GitHub App private key is not an RSA PEM key: {e}"
                    ))
                })?;
            let app = b
                .app(app_id.into(), key)
                .build()
                .map_err(|e| ForgeError::Config(e.to_string()))?;
            app.installation(installation_id.into())
                .map_err(|e| ForgeError::Config(e.to_string()))
        }
    }
}

#[derive(Deserialize)]
struct RawRunner {
    id: u64,
    name: String,
    status: String,
    #[serde(default)]
    busy: bool,
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    runner_group_id: Option<u64>,
}

#[derive(Deserialize)]
struct RawLabel {
    name: String,
}

impl From<RawRunner> for ForgeRunner {
    fn from(r: RawRunner) -> Self {
        ForgeRunner {
            id: r.id,
            name: r.name,
            state: if r.status == "online" {
                RunnerState::Online
            } else {
                RunnerState::Offline
            },
            busy: r.busy,
            labels: r.labels.into_iter().map(|l| l.name).collect(),
            runner_group_id: r.runner_group_id,
        }
    }
}

#[derive(Deserialize)]
struct RawRepo {
    id: u64,
}

#[async_trait::async_trait]
impl RunnerGroups for GitHub {
    async fn list_runner_groups(&self, org: &str) -> Result<Vec<RunnerGroupInfo>> {
        self.pages(
            &format!("orgs/{org}/actions/runner-groups"),
            "runner_groups",
        )
        .await
    }

    async fn create_runner_group(&self, org: &str, s: &GroupSettings) -> Result<RunnerGroupInfo> {
        let mut body = serde_json::json!({
            "name": s.name,
            "visibility": s.visibility,
            "allows_public_repositories": s.allows_public_repositories,
            "restricted_to_workflows": s.restricted_to_workflows,
            "selected_workflows": s.selected_workflows,
        });
        if s.visibility == "selected" {
            body["selected_repository_ids"] = serde_json::json!(s.selected_repository_ids);
        }
        self.json(
            Verb::Post,
            &format!("orgs/{org}/actions/runner-groups"),
            Some(&body),
        )
        .await
    }

    async fn update_runner_group(
        &self,
        org: &str,
        id: u64,
        s: &GroupSettings,
    ) -> Result<RunnerGroupInfo> {
        let body = serde_json::json!({
            "name": s.name,
            "visibility": s.visibility,
            "allows_public_repositories": s.allows_public_repositories,
            "restricted_to_workflows": s.restricted_to_workflows,
            "selected_workflows": s.selected_workflows,
        });
        let g: RunnerGroupInfo = self
            .json(
                Verb::Patch,
                &format!("orgs/{org}/actions/runner-groups/{id}"),
                Some(&body),
            )
            .await?;
        if s.visibility == "selected" {
            let path = format!("orgs/{org}/actions/runner-groups/{id}/repositories");
            let body = serde_json::json!({ "selected_repository_ids": s.selected_repository_ids });
            let (status, text) = self.call(Verb::Put, &path, Some(&body)).await?;
            if !status.is_success() {
                return Err(error_for(status, &text, &path));
            }
        }
        Ok(g)
    }

    async fn runner_group_repository_ids(&self, org: &str, id: u64) -> Result<Vec<u64>> {
        let repos: Vec<RawRepo> = self
            .pages(
                &format!("orgs/{org}/actions/runner-groups/{id}/repositories"),
                "repositories",
            )
            .await?;
        Ok(repos.into_iter().map(|r| r.id).collect())
    }

    async fn repository_id(&self, owner: &str, repo: &str) -> Result<u64> {
        let r: RawRepo = self
            .json(Verb::Get, &format!("repos/{owner}/{repo}"), None)
            .await?;
        Ok(r.id)
    }
}

#[async_trait::async_trait]
impl RunnerRegistry for GitHub {
    async fn list_runners(&self, scope: &Scope) -> Result<Vec<ForgeRunner>> {
        let raw: Vec<RawRunner> = self
            .pages(&format!("{}/actions/runners", scope.path()), "runners")
            .await?;
        Ok(raw.into_iter().map(ForgeRunner::from).collect())
    }

    async fn get_runner(&self, scope: &Scope, id: u64) -> Result<Option<ForgeRunner>> {
        match self
            .json::<RawRunner>(
                Verb::Get,
                &format!("{}/actions/runners/{id}", scope.path()),
                None,
            )
            .await
        {
            Ok(r) => Ok(Some(r.into())),
            Err(ForgeError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_runner(&self, scope: &Scope, id: u64) -> Result<Deleted> {
        let path = format!("{}/actions/runners/{id}", scope.path());
        let (status, text) = self.call(Verb::Delete, &path, None).await?;
        match status.as_u16() {
            200..=299 => Ok(Deleted::Deleted),
            404 => Ok(Deleted::NotFound),
            422 => Ok(Deleted::Busy),
            _ => Err(error_for(status, &text, &path)),
        }
    }

    async fn register(&self, scope: &Scope, req: &RunnerRequest<'_>) -> Result<Registration> {
        // Org-scoped runners need a group; a repository's runners use the default one (1).
        let group = req.runner_group_id.unwrap_or(1);
        self.jit_with(req.app, scope, req.name, group, req.labels, req.work_folder)
            .await
            .map(Registration::Jit)
    }
}

#[async_trait::async_trait]
impl JobSource for GitHub {
    async fn repositories(&self, org: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Repo {
            name: String,
        }
        let v: Vec<Repo> = self.pages_array(&format!("orgs/{org}/repos")).await?;
        Ok(v.into_iter().map(|r| r.name).collect())
    }

    async fn queued_jobs(
        &self,
        owner: &str,
        repo: &str,
        max_runs: usize,
    ) -> Result<Vec<QueuedJob>> {
        #[derive(Deserialize)]
        struct Run {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Runs {
            workflow_runs: Vec<Run>,
        }
        #[derive(Deserialize)]
        struct Job {
            id: u64,
            run_id: u64,
            status: String,
            #[serde(default)]
            labels: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Jobs {
            jobs: Vec<Job>,
        }
        let runs: Runs = self
            .json(
                Verb::Get,
                &format!("repos/{owner}/{repo}/actions/runs?status=queued&per_page=100"),
                None,
            )
            .await?;
        let mut out = Vec::new();
        for run in runs.workflow_runs.into_iter().take(max_runs) {
            let jobs: Jobs = self
                .json(
                    Verb::Get,
                    &format!(
                        "repos/{owner}/{repo}/actions/runs/{}/jobs?filter=latest&per_page=100",
                        run.id
                    ),
                    None,
                )
                .await?;
            out.extend(
                jobs.jobs
                    .into_iter()
                    .filter(|j| j.status == "queued")
                    .map(|j| QueuedJob {
                        id: j.id,
                        run_id: j.run_id,
                        repository: format!("{owner}/{repo}"),
                        labels: j.labels,
                    }),
            );
        }
        Ok(out)
    }

    async fn past_jobs(
        &self,
        owner: &str,
        repo: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<crate::forge::PastJob>> {
        #[derive(Deserialize)]
        struct Run {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Job {
            id: u64,
            #[serde(default)]
            labels: Vec<String>,
            created_at: Option<String>,
            started_at: Option<String>,
            completed_at: Option<String>,
            conclusion: Option<String>,
        }
        let created = format!(
            "{}..{}",
            crate::model::rfc3339(since),
            crate::model::rfc3339(until)
        );
        let runs: Vec<Run> = self
            .pages(
                &format!("repos/{owner}/{repo}/actions/runs?created={created}"),
                "workflow_runs",
            )
            .await?;
        let time = |t: &Option<String>| t.as_deref().and_then(crate::model::parse_rfc3339);
        let mut out = Vec::new();
        for run in runs {
            let jobs: Vec<Job> = self
                .pages(
                    &format!(
                        "repos/{owner}/{repo}/actions/runs/{}/jobs?filter=all",
                        run.id
                    ),
                    "jobs",
                )
                .await?;
            out.extend(jobs.into_iter().filter_map(|j| {
                Some(crate::forge::PastJob {
                    id: j.id,
                    repository: format!("{owner}/{repo}"),
                    created_at: time(&j.created_at)?,
                    started_at: time(&j.started_at),
                    completed_at: time(&j.completed_at),
                    labels: j.labels,
                    conclusion: j.conclusion,
                })
            }));
        }
        Ok(out)
    }

    async fn workflow_run(&self, owner: &str, repo: &str, run_id: u64) -> Result<WorkflowRun> {
        #[derive(Deserialize)]
        struct Run {
            path: String,
            #[serde(default)]
            head_branch: Option<String>,
        }
        let run: Run = self
            .json(
                Verb::Get,
                &format!("repos/{owner}/{repo}/actions/runs/{run_id}"),
                None,
            )
            .await?;
        Ok(WorkflowRun {
            path: run.path,
            head_branch: run.head_branch,
        })
    }
}

/// A webhook as GitHub lists it (`config.url` moved up).
#[derive(serde::Deserialize)]
struct RawHook {
    id: u64,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    config: RawHookConfig,
}

#[derive(Default, serde::Deserialize)]
struct RawHookConfig {
    #[serde(default)]
    url: Option<String>,
}

#[async_trait::async_trait]
impl super::Webhooks for GitHub {
    async fn hooks(&self, scope: &Scope) -> Result<Vec<super::Hook>> {
        let raw: Vec<RawHook> = self.pages_array(&format!("{}/hooks", scope.path())).await?;
        Ok(raw
            .into_iter()
            .map(|h| super::Hook {
                id: h.id,
                active: h.active,
                events: h.events,
                url: h.config.url,
            })
            .collect())
    }

    async fn hook_deliveries(
        &self,
        scope: &Scope,
        hook: u64,
        count: u32,
    ) -> Result<Vec<super::HookDelivery>> {
        self.json(
            Verb::Get,
            &format!(
                "{}/hooks/{hook}/deliveries?per_page={}",
                scope.path(),
                count.clamp(1, 100)
            ),
            None,
        )
        .await
    }
}

impl Forge for GitHub {
    fn name(&self) -> &'static str {
        "GitHub"
    }
    fn webhook_api(&self) -> Option<&dyn super::Webhooks> {
        Some(self)
    }
    fn runner_url(&self, scope: &Scope) -> String {
        scope.html_url(&web_url(&self.base))
    }
    fn groups(&self) -> Option<&dyn RunnerGroups> {
        Some(self)
    }
    fn webhooks(&self) -> &'static dyn WebhookScheme {
        &webhook::GITHUB
    }
    fn rate_limit(&self) -> Option<RateLimit> {
        // With several Apps: the one with the most left.
        self.clients
            .iter()
            .filter_map(|c| *c.rate.lock().unwrap_or_else(|p| p.into_inner()))
            .max_by_key(|r| r.remaining)
    }
    fn meters(&self) -> Vec<&Meter> {
        self.clients.iter().map(|c| &c.meter).collect()
    }
}
