//! GitHub's Actions service for runner scale sets ([`ScaleSets`]) of one scope.
//!
//! Bootstrap as the contract describes: a registration token from the REST API (through the
//! GitHub client, so it spends the shared budget), exchanged at `/actions/runner-registration`
//! (`RemoteAuth`) for the service's URL and an admin token (a JWT whose `exp` is read
//! unverified); redone before any call when the admin token expires within 60 s, and once
//! when the service answers 401. Service calls carry `api-version=6.0-preview`; the message
//! queue takes the session's own token. Errors are the service's `typeName`s mapped onto
//! [`ForgeError`] and [`SessionError`]. Nothing here logs a token: only URLs.

use super::GitHub;
use crate::config::Secret;
use crate::forge::scaleset::*;
use crate::forge::{Deleted, ForgeError, Result, Scope};
use octocrab::Octocrab;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The API version every service call names.
const API_VERSION: &str = "6.0-preview";

/// Further tries of a request after a connection error, a 429 or a 5xx.
const RETRIES: u32 = 4;

/// How long before its expiry the admin token is renewed.
const RENEW_BEFORE: u64 = 60;

struct Admin {
    url: String,
    token: Secret,
    exp: u64,
}

/// The Actions service of one scope (an organization or a repository).
pub struct ActionsService {
    github: Arc<GitHub>,
    scope: Scope,
    /// The scope's web URL, sent in the exchange (`https://github.com/ORG`).
    config_url: String,
    http: Octocrab,
    admin: tokio::sync::Mutex<Option<Admin>>,
    owner_agent: String,
}

/// An answer: status and body (a UTF-8 BOM stripped).
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The service's error type (`typeName`, or `typeKey`) and message.
    fn error(&self) -> (String, String) {
        let v: Value = serde_json::from_str(&self.text).unwrap_or(Value::Null);
        let kind = v
            .get("typeName")
            .or_else(|| v.get("typeKey"))
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        let message = v
            .get("message")
            .and_then(|m| m.as_str())
            .map(String::from)
            .unwrap_or_else(|| self.text.chars().take(500).collect());
        (kind, message)
    }

    fn forge_error(&self, what: &str) -> ForgeError {
        let (kind, message) = self.error();
        let message = format!("{what}: {message}");
        if kind.contains("AgentExistsException") || kind.contains("ExistsException") {
            return ForgeError::Conflict(message);
        }
        match self.status {
            401 | 403 => ForgeError::Unauthorized(message),
            404 => ForgeError::NotFound(message),
            409 => ForgeError::Conflict(message),
            429 | 500..=599 => ForgeError::Unavailable(message),
            s => ForgeError::Api { status: s, message },
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_str(&self.text).map_err(|e| ForgeError::Decode(format!("{what}: {e}")))
    }
}

/// The `exp` claim of a JWT, read without verifying it.
pub fn jwt_expiry(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("exp")?.as_u64()
}

/// A query value, percent-encoded (all but RFC 3986's unreserved characters).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `url` with `key=value` added to its query (replacing the key if there).
fn with_query(url: &str, key: &str, value: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(key))
        .map(String::from)
        .collect();
    parts.push(format!("{key}={value}"));
    format!("{path}?{}", parts.join("&"))
}

/// `url` with `/segment` appended to its path, its query kept.
fn with_segment(url: &str, segment: &str) -> String {
    match url.split_once('?') {
        Some((path, query)) => format!("{}/{segment}?{query}", path.trim_end_matches('/')),
        None => format!("{}/{segment}", url.trim_end_matches('/')),
    }
}

impl ActionsService {
    pub fn new(github: Arc<GitHub>, scope: Scope) -> Result<ActionsService> {
        let config_url = scope.html_url(&super::web_url(github.base()));
        let http = Octocrab::builder()
            .set_connect_timeout(Some(Duration::from_secs(10)))
            // The long poll holds up to about 50 s.
            .set_read_timeout(Some(Duration::from_secs(90)))
            .build()
            .map_err(|e| ForgeError::Config(e.to_string()))?;
        Ok(ActionsService {
            github,
            scope,
            config_url,
            http,
            admin: tokio::sync::Mutex::new(None),
            owner_agent: format!("runnerctl/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// One request, tried again (up to 4 more times, 1 s doubling, or the `Retry-After` it
    /// was given, at most 30 s) after a connection error, a 429 or a 5xx other than 501, as
    /// GitHub's own client does.
    async fn send(
        &self,
        method: http::Method,
        url: &str,
        auth: &str,
        body: Option<&Value>,
        extra: &[(&str, String)],
    ) -> Result<Answer> {
        let mut attempt = 0u32;
        loop {
            let (answer, retry_after) = match self.send_once(&method, url, auth, body, extra).await
            {
                Ok((a, retry_after)) => (Ok(a), retry_after),
                Err(e) => (Err(e), None),
            };
            let again = match &answer {
                Err(ForgeError::Unavailable(_)) => true,
                Ok(a) => a.status == 429 || (a.status >= 500 && a.status != 501),
                Err(_) => false,
            };
            if !again || attempt >= RETRIES {
                return answer;
            }
            let wait = retry_after
                .unwrap_or_else(|| Duration::from_secs(1 << attempt))
                .min(Duration::from_secs(30));
            tracing::debug!(
                url,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Actions service: trying again"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        auth: &str,
        body: Option<&Value>,
        extra: &[(&str, String)],
    ) -> Result<(Answer, Option<Duration>)> {
        let mut b = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .header(http::header::USER_AGENT, &self.owner_agent)
            .header(http::header::AUTHORIZATION, auth);
        for (k, v) in extra {
            b = b.header(*k, v);
        }
        let body = match body {
            Some(v) => {
                b = b.header(http::header::CONTENT_TYPE, "application/json");
                v.to_string()
            }
            None => String::new(),
        };
        let req = b
            .body(body)
            .map_err(|e| ForgeError::Config(format!("{url}: {e}")))?;
        let resp = self.http.execute(req).await.map_err(|e| {
            let why = e.to_string();
            ForgeError::Unavailable(format!("{url}: {}", why.lines().next().unwrap_or("")))
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = self
            .http
            .body_to_string(resp)
            .await
            .map_err(|e| ForgeError::Unavailable(format!("{url}: {e}")))?;
        Ok((
            Answer {
                status,
                text: text.trim_start_matches('\u{feff}').to_string(),
            },
            retry_after,
        ))
    }

    /// The registration exchange: the service's URL and a new admin token. A 401 or 403 is
    /// tried again (a new registration token takes a moment to be valid).
    async fn exchange(&self) -> Result<Admin> {
        let mut last = None;
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            let reg = self.github.registration_token(&self.scope).await?;
            let url = format!("{}/actions/runner-registration", self.github.base());
            let body = json!({ "url": self.config_url, "runner_event": "register" });
            let auth = format!("RemoteAuth {}", reg.expose());
            let a = self
                .send(http::Method::POST, &url, &auth, Some(&body), &[])
                .await?;
            if a.ok() {
                #[derive(serde::Deserialize)]
                struct Exchanged {
                    url: String,
                    token: String,
                }
                let e: Exchanged = a.json(&url)?;
                if e.url.is_empty() || e.token.is_empty() {
                    return Err(ForgeError::Decode(format!(
                        "{url}: the exchange answered no service URL or token"
                    )));
                }
                let exp = jwt_expiry(&e.token).unwrap_or(crate::model::unix_now() + 600);
                return Ok(Admin {
                    url: e.url,
                    token: Secret::new(e.token),
                    exp,
                });
            }
            let err = a.forge_error(&url);
            if !matches!(a.status, 401 | 403) {
                return Err(err);
            }
            last = Some(err);
        }
        Err(last.unwrap_or_else(|| ForgeError::Unauthorized("registration exchange".into())))
    }

    /// The service's URL and a valid admin token (exchanged again when it expires within a
    /// minute, or when `renew`).
    async fn admin(&self, renew: bool) -> Result<(String, String)> {
        let mut held = self.admin.lock().await;
        let stale = held
            .as_ref()
            .is_none_or(|a| a.exp <= crate::model::unix_now() + RENEW_BEFORE);
        if renew || stale {
            *held = Some(self.exchange().await?);
        }
        let a = held.as_ref().expect("set above");
        Ok((a.url.clone(), format!("Bearer {}", a.token.expose())))
    }

    /// A service call: its path relative to the service URL (`_apis/…`); a 401 renews the
    /// admin token once.
    async fn call(&self, method: http::Method, path: &str, body: Option<&Value>) -> Result<Answer> {
        let mut renew = false;
        loop {
            let (base, auth) = self.admin(renew).await?;
            let url = with_query(&format!("{base}{path}"), "api-version", API_VERSION);
            let a = self.send(method.clone(), &url, &auth, body, &[]).await?;
            if a.status == 401 && !renew {
                renew = true;
                continue;
            }
            return Ok(a);
        }
    }

    async fn runner_group_id(&self, name: &str) -> Result<u64> {
        if name.eq_ignore_ascii_case("default") {
            return Ok(1);
        }
        let path = format!("_apis/runtime/runnergroups/?groupName={}", encode(name));
        let a = self.call(http::Method::GET, &path, None).await?;
        if !a.ok() {
            return Err(a.forge_error(&path));
        }
        let v: Value = a.json(&path)?;
        let ids: Vec<u64> = v
            .get("value")
            .and_then(|x| x.as_array())
            .map(|x| x.iter().filter_map(|g| g.get("id")?.as_u64()).collect())
            .unwrap_or_default();
        match ids.as_slice() {
            [id] => Ok(*id),
            [] => Err(ForgeError::NotFound(format!(
                "runner group `{name}` of {} (run `runnerctl groups sync`, or set scale_set.runner_group)",
                self.scope
            ))),
            _ => Err(ForgeError::Conflict(format!("runner group `{name}` is ambiguous"))),
        }
    }

    fn session_error(a: &Answer, what: &str) -> SessionError {
        let (kind, message) = a.error();
        match a.status {
            409 => SessionError::Conflict(message),
            401 => SessionError::Expired,
            404 => SessionError::Gone(message),
            _ if kind.contains("TaskAgentSessionConflictException") => {
                SessionError::Conflict(message)
            }
            _ => SessionError::Forge(a.forge_error(what)),
        }
    }

    fn labels(spec: &ScaleSetSpec) -> Vec<Label> {
        std::iter::once(&spec.name)
            .chain(spec.labels.iter().filter(|l| **l != spec.name))
            .map(|n| Label {
                kind: "System".into(),
                name: n.clone(),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl ScaleSets for ActionsService {
    async fn ensure_scale_set(&self, spec: &ScaleSetSpec) -> Result<(ScaleSet, Ensured)> {
        let group = self.runner_group_id(&spec.runner_group).await?;
        let setting = json!({ "ephemeral": true, "isElastic": true, "disableUpdate": true });
        let labels = Self::labels(spec);
        let found = self.find_in_group(&spec.name, group).await?;
        let path = "_apis/runtime/runnerscalesets";
        let Some(have) = found else {
            let body = json!({
                "name": spec.name,
                "runnerGroupId": group,
                "labels": labels,
                "RunnerSetting": setting,
            });
            let a = self.call(http::Method::POST, path, Some(&body)).await?;
            if !a.ok() {
                return Err(a.forge_error(path));
            }
            return Ok((a.json(path)?, Ensured::Created));
        };
        if have.label_change(spec).is_none() && have.runner_group_id == group {
            return Ok((have, Ensured::Unchanged));
        }
        let path = format!("{path}/{}", have.id);
        let body = json!({ "labels": labels, "runnerGroupId": group, "RunnerSetting": setting });
        let a = self.call(http::Method::PATCH, &path, Some(&body)).await?;
        if !a.ok() {
            return Err(a.forge_error(&path));
        }
        Ok((a.json(&path)?, Ensured::Updated))
    }

    async fn find_scale_set(&self, name: &str, runner_group: &str) -> Result<Option<ScaleSet>> {
        let group = self.runner_group_id(runner_group).await?;
        self.find_in_group(name, group).await
    }

    async fn create_session(
        &self,
        scale_set: u64,
        owner: &str,
    ) -> std::result::Result<Session, SessionError> {
        let path = format!("_apis/runtime/runnerscalesets/{scale_set}/sessions");
        let body =
            json!({ "sessionId": "00000000-0000-0000-0000-000000000000", "ownerName": owner });
        let a = self.call(http::Method::POST, &path, Some(&body)).await?;
        if !a.ok() {
            return Err(Self::session_error(&a, &path));
        }
        Ok(a.json::<RawSession>(&path)?.into_session()?)
    }

    async fn refresh_session(
        &self,
        scale_set: u64,
        session: &Session,
    ) -> std::result::Result<Session, SessionError> {
        let path = format!(
            "_apis/runtime/runnerscalesets/{scale_set}/sessions/{}",
            session.id
        );
        let a = self.call(http::Method::PATCH, &path, None).await?;
        if !a.ok() {
            return Err(Self::session_error(&a, &path));
        }
        Ok(a.json::<RawSession>(&path)?.into_session()?)
    }

    async fn delete_session(&self, scale_set: u64, session_id: &str) -> Result<()> {
        let path = format!("_apis/runtime/runnerscalesets/{scale_set}/sessions/{session_id}");
        let a = self.call(http::Method::DELETE, &path, None).await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            _ => Err(a.forge_error(&path)),
        }
    }

    async fn poll(
        &self,
        session: &Session,
        last_id: u64,
        max: u32,
    ) -> std::result::Result<Polled, SessionError> {
        let mut url = session.queue_url.clone();
        if last_id > 0 {
            url = with_query(&url, "lastMessageId", &last_id.to_string());
        }
        let auth = format!("Bearer {}", session.queue_token.expose());
        let extra = [
            (
                "Accept",
                format!("application/json; api-version={API_VERSION}"),
            ),
            ("X-ScaleSetMaxCapacity", max.to_string()),
        ];
        // The queue's URL is its own: its query is kept, the API version goes in `Accept`.
        let a = self
            .send(http::Method::GET, &url, &auth, None, &extra)
            .await?;
        match a.status {
            202 | 204 => Ok(Polled::Empty),
            200 => {
                let m: RawMessage = a.json("the message queue")?;
                Ok(Polled::Message(Message {
                    id: m.message_id,
                    kind: m.message_type,
                    body: m.body,
                    statistics: m.statistics,
                }))
            }
            _ => Err(Self::session_error(&a, "the message queue")),
        }
    }

    async fn ack(&self, session: &Session, id: u64) -> std::result::Result<(), SessionError> {
        let url = with_segment(&session.queue_url, &id.to_string());
        let auth = format!("Bearer {}", session.queue_token.expose());
        let extra = [("Content-Type", "application/json".to_string())];
        let a = self
            .send(http::Method::DELETE, &url, &auth, None, &extra)
            .await?;
        if a.ok() {
            return Ok(());
        }
        Err(Self::session_error(&a, "deleting a message"))
    }

    async fn acquire(
        &self,
        scale_set: u64,
        session: &Session,
        ids: &[u64],
    ) -> std::result::Result<Vec<u64>, SessionError> {
        let (base, _) = self.admin(false).await?;
        let path = format!("_apis/runtime/runnerscalesets/{scale_set}/acquirejobs");
        let url = with_query(&format!("{base}{path}"), "api-version", API_VERSION);
        let auth = format!("Bearer {}", session.queue_token.expose());
        let a = self
            .send(http::Method::POST, &url, &auth, Some(&json!(ids)), &[])
            .await?;
        if !a.ok() {
            return Err(Self::session_error(&a, &path));
        }
        let v: Value = a.json(&path)?;
        Ok(v.get("value")
            .and_then(|x| x.as_array())
            .map(|x| x.iter().filter_map(|i| i.as_u64()).collect())
            .unwrap_or_default())
    }

    async fn generate_jit(
        &self,
        scale_set: u64,
        name: &str,
        work_folder: &str,
    ) -> Result<ScaleSetJit> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Jit {
            runner: Agent,
            #[serde(rename = "encodedJITConfig")]
            encoded: String,
        }
        let path = format!("_apis/runtime/runnerscalesets/{scale_set}/generatejitconfig");
        let body = json!({ "name": name, "workFolder": work_folder });
        let a = self.call(http::Method::POST, &path, Some(&body)).await?;
        if !a.ok() {
            return Err(a.forge_error(&path));
        }
        let j: Jit = a.json(&path)?;
        Ok(ScaleSetJit {
            runner: j.runner,
            encoded: Secret::new(j.encoded),
        })
    }

    async fn agents(&self, scale_set: u64) -> Result<Vec<Agent>> {
        let path = "_apis/distributedtask/pools/0/agents";
        let a = self.call(http::Method::GET, path, None).await?;
        if !a.ok() {
            return Err(a.forge_error(path));
        }
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            value: Vec<Agent>,
        }
        let l: List = a.json(path)?;
        Ok(l.value
            .into_iter()
            .filter(|x| x.runner_scale_set_id == scale_set)
            .collect())
    }

    async fn delete_agent(&self, id: u64) -> Result<Deleted> {
        let path = format!("_apis/distributedtask/pools/0/agents/{id}");
        let a = self.call(http::Method::DELETE, &path, None).await?;
        if a.ok() {
            return Ok(Deleted::Deleted);
        }
        let (kind, _) = a.error();
        if kind.contains("JobStillRunningException") {
            return Ok(Deleted::Busy);
        }
        if kind.contains("AgentNotFoundException") || a.status == 404 {
            return Ok(Deleted::NotFound);
        }
        Err(a.forge_error(&path))
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl ActionsService {
    async fn find_in_group(&self, name: &str, group: u64) -> Result<Option<ScaleSet>> {
        let path = format!(
            "_apis/runtime/runnerscalesets?runnerGroupId={group}&name={}",
            encode(name)
        );
        let a = self.call(http::Method::GET, &path, None).await?;
        if !a.ok() {
            return Err(a.forge_error(&path));
        }
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            value: Vec<ScaleSet>,
        }
        let l: List = a.json(&path)?;
        match l.value.len() {
            0 => Ok(None),
            1 => Ok(l.value.into_iter().next()),
            n => Err(ForgeError::Conflict(format!(
                "{n} scale sets are named `{name}` in runner group {group}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_merged_and_segments_appended_before_the_query() {
        assert_eq!(
            with_query("https://q/rss/7/messages?sessionId=s", "lastMessageId", "4"),
            "https://q/rss/7/messages?sessionId=s&lastMessageId=4"
        );
        assert_eq!(
            with_query("https://s/_apis/x", "api-version", "6.0-preview"),
            "https://s/_apis/x?api-version=6.0-preview"
        );
        assert_eq!(
            with_query(
                "https://s/x?api-version=5&a=1",
                "api-version",
                "6.0-preview"
            ),
            "https://s/x?a=1&api-version=6.0-preview"
        );
        assert_eq!(encode("linux x64+gpu/é"), "linux%20x64%2Bgpu%2F%C3%A9");
        assert_eq!(
            with_segment("https://q/rss/7/messages?sessionId=s", "42"),
            "https://q/rss/7/messages/42?sessionId=s"
        );
    }

    #[test]
    fn a_jwt_s_expiry_is_read_unverified() {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = format!(
            "{}.{}.sig",
            b.encode("{}"),
            b.encode(r#"{"exp":1700000000}"#)
        );
        assert_eq!(jwt_expiry(&t), Some(1_700_000_000));
        assert_eq!(jwt_expiry("not a jwt"), None);
    }
}
