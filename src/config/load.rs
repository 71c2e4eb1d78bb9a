//! Reading and validating the configuration file. Every problem is collected (not only the
//! first), each with its path (`runner_groups[1].min_runners`) and position in the file.

use super::locate::{Location, Locations};
use super::*;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong (or doubtful) in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// Where in the document, e.g. `runner_groups[1].min_runners`; empty for the whole file.
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Problem {
    /// `path: message`, the part of the report that does not depend on the file's layout.
    pub fn summary(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }

    /// One line in the style of a compiler: `file:line:column: path: message`.
    pub fn render(&self, file: &str) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}: {}", self.summary()),
            _ => format!("{file}: {}", self.summary()),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(file, problems))]
    Invalid {
        file: String,
        /// Errors first, then warnings.
        problems: Vec<Problem>,
        /// What could be read in spite of them (wrong values at their defaults), so that
        /// `config validate` can check its secrets in the same run; never used to run.
        partial: Option<Box<Config>>,
    },
}

fn render_invalid(file: &str, problems: &[Problem]) -> String {
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let mut out = format!(
        "invalid configuration `{file}`: {errors} problem{}",
        if errors == 1 { "" } else { "s" }
    );
    for p in problems.iter().filter(|p| p.severity == Severity::Error) {
        out.push_str("\n  ");
        out.push_str(&p.render(file));
    }
    out
}

/// A configuration that passed validation, with the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// Reads and validates the file at `path`, its backends read by `schemas` (one per kind this
/// build offers: `backend::schemas()`).
pub fn load_file(path: &Path, schemas: &[&dyn Schema]) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &path.display().to_string(), schemas)
}

/// Validates configuration text; `file` names it in messages.
pub fn parse(text: &str, file: &str, schemas: &[&dyn Schema]) -> Result<Loaded, ConfigError> {
    let locations = Locations::index(text);
    let mut cx = Cx {
        forge: ForgeKind::Github,
        locations: &locations,
        problems: Vec::new(),
        schemas,
        patched: Vec::new(),
        partial: None,
    };
    let config = cx.config(text);
    let mut problems = cx.problems;
    sort(&mut problems);
    match config {
        Some(config) if !problems.iter().any(|p| p.severity == Severity::Error) => Ok(Loaded {
            config,
            warnings: problems,
        }),
        whole => Err(ConfigError::Invalid {
            file: file.to_string(),
            problems,
            partial: whole.map(Box::new).or(cx.partial),
        }),
    }
}

/// Errors before warnings, each in the order of the file; problems without a position last.
pub fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(|p| {
        (
            p.severity == Severity::Warning,
            p.line.unwrap_or(usize::MAX),
            p.column.unwrap_or(0),
        )
    });
}

/// Gives each problem found outside the parse (a secret that does not resolve) the position of
/// its key in `text`.
pub fn locate(text: &str, problems: &mut [Problem]) {
    let locations = Locations::index(text);
    for p in problems.iter_mut().filter(|p| p.line.is_none()) {
        if let Some(at) = locations
            .key(&p.path)
            .or_else(|| locations.nearest(&p.path))
        {
            p.line = Some(at.line);
            p.column = Some(at.column);
        }
    }
}

/// Whether a problem at `path` follows from one of `errors` (the same key, or one above or
/// below it): it is not reported twice.
pub fn covered(path: &str, errors: &[Problem]) -> bool {
    errors
        .iter()
        .filter(|e| e.severity == Severity::Error)
        .any(|e| under(path, &e.path) || under(&e.path, path))
}

/// Prints a Redis URL with its password hidden.
pub(crate) fn serialize_url_redacted<S: serde::Serializer>(
    url: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

/// A URL with its password (or a lone credential in the user part) replaced by `<redacted>`,
/// and so the value of every query parameter that may carry a credential (`pass`, `password`,
/// `token`, …: redis-rs reads `?user=` and `?pass=` on Unix-socket URLs). The credentials of
/// the user part end at the *last* `@`: a password may contain `@`, `/` or `:`. A Unix-socket
/// URL has no user part, so there an `@` is the query's own.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let unix = scheme.ends_with("unix");
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) if !unix => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:<redacted>@{host}"),
            // `scheme://token@host`: the user part alone may be the credential.
            None if !userinfo.is_empty() => format!("<redacted>@{host}"),
            None => rest.to_string(),
        },
        _ => rest.to_string(),
    };
    format!("{scheme}://{}", redact_query(&rest))
}

/// The query of `rest` (after its first `?`, up to a `#`) with the values of credential-like
/// parameters replaced.
fn redact_query(rest: &str) -> String {
    let Some((before, query)) = rest.split_once('?') else {
        return rest.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let secret_name = |name: &str| {
        let n = name.to_ascii_lowercase();
        [
            "pass",
            "pwd",
            "token",
            "secret",
            "auth",
            "key",
            "credential",
        ]
        .iter()
        .any(|w| n.contains(w))
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret_name(name) => format!("{name}=<redacted>"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{before}?{}", pairs.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Every duration of the configuration with its bounds in seconds, inclusive (the README lists
/// them). The upper bounds keep every sum of times far from overflowing.
pub const DURATION_BOUNDS: &[(&str, u64, u64)] = &[
    ("healthcheck_interval", 10, 7 * 86_400),
    ("time_to_start", 30, 86_400),
    ("time_to_live", 60, 30 * 86_400),
    ("cleanup_grace", 0, 86_400),
    ("queue.visibility_timeout", 2, 3_600),
    ("queue.retry_base", 1, 3_600),
    ("queue.retry_max", 1, 86_400),
    ("queue.drain_timeout", 0, 3_600),
    ("queue.handler_deadline", 10, 86_400),
];

/// Whether `s` is a GitHub login (an organization or user): 1 to 39 letters, digits and single
/// dashes, not starting or ending with one.
pub fn valid_login(s: &str) -> bool {
    (1..=39).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Whether `s` is a GitHub repository name: 1 to 100 letters, digits, `.`, `-` and `_`, and
/// not `.` or `..`.
pub fn valid_repository(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && s != "."
        && s != ".."
}

/// Whether `s` is a runner label runnerctl accepts: 1 to 100 printable ASCII characters, no
/// spaces, commas, quotes or backslashes (a label reaches the runner's configuration and
/// cloud-init, where a control character or a Unicode line break would change its meaning).
pub fn valid_label(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b',' | b'"' | b'\'' | b'\\' | b'`' | b'$')
        })
}

const TOP_LEVEL: &[&str] = &[
    "name",
    "forge",
    "github",
    "gitea",
    "redis",
    "webhook",
    "healthcheck_interval",
    "time_to_start",
    "time_to_live",
    "cleanup_grace",
    "queue",
    "worker",
    "broker",
    "backends",
    "runner_groups",
    "simulation",
];

/// A runner group as written, before its `spec` is read against its backend's kind.
#[derive(Deserialize)]
struct RawGroup {
    name: Option<String>,
    scope: Option<String>,
    organization: Option<String>,
    repository: Option<String>,
    selected_repositories: Option<Vec<String>>,
    #[serde(default = "default_true")]
    allow_public_repositories: bool,
    #[serde(default)]
    selected_workflows: Vec<String>,
    #[serde(default = "default_max_runners")]
    max_runners: u32,
    #[serde(default)]
    min_runners: u32,
    labels: Option<Vec<String>>,
    backend: Option<String>,
    spec: Option<Value>,
    bootstrap_template: Option<std::path::PathBuf>,
    container_jobs: Option<super::ContainerJobs>,
    github_app: Option<String>,
    warm_pool: Option<super::warm::WarmPool>,
    #[serde(default)]
    mode: super::GroupMode,
    scale_set: Option<super::ScaleSetConfig>,
    backends: Option<Vec<RawChoice>>,
    failover: Option<super::Failover>,
    runner_version: Option<String>,
}

/// An entry of a group's `backends:`: a backend's name, or the name with its own limit and
/// spec.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawChoice {
    Name(String),
    Entry(RawChoiceEntry),
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawChoiceEntry {
    name: String,
    max_runners: Option<u32>,
    spec: Option<Value>,
}

impl RawChoice {
    fn parts(&self) -> (String, Option<u32>, Option<Value>) {
        match self {
            RawChoice::Name(n) => (n.clone(), None, None),
            RawChoice::Entry(e) => (e.name.clone(), e.max_runners, e.spec.clone()),
        }
    }
}

fn default_max_runners() -> u32 {
    20
}

/// The `backends:` section as far as it could be read.
#[derive(Default)]
struct Backends {
    valid: Vec<BackendConfig>,
    broken: Vec<String>,
    section_broken: bool,
}

impl Backends {
    fn complete(&self) -> bool {
        self.broken.is_empty() && !self.section_broken && !self.valid.is_empty()
    }
}

struct Cx<'a> {
    /// The forge the document names (groups are checked against it).
    forge: ForgeKind,
    locations: &'a Locations,
    problems: Vec<Problem>,
    schemas: &'a [&'a dyn Schema],
    /// Paths whose value was wrong or missing and was taken out (or stood in for) so that the
    /// rest of the file is still checked: problems under them follow from the one reported.
    patched: Vec<String>,
    /// What could be read of a file that does not validate.
    partial: Option<Box<Config>>,
}

/// What a backend kind's [`Schema`] reads with: values under one path of the document, every
/// problem recorded with its position.
pub struct Reader<'c, 'a> {
    cx: &'c mut Cx<'a>,
    base: String,
}

impl Reader<'_, '_> {
    /// The full path of `field` (`backends.ec2.region`).
    pub fn path(&self, field: &str) -> String {
        join(&self.base, field)
    }

    /// Deserializes the value at this path, recording unknown keys and type errors.
    pub fn de<T: DeserializeOwned>(&mut self, value: Value) -> Option<T> {
        let base = self.base.clone();
        self.cx.de(value, &base)
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let p = self.path(field);
        self.cx.error(&p, message);
    }

    /// An error when a required text field is empty.
    pub fn required(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(field, "required field is missing");
        }
    }

    /// An error when `v` is outside `lo..=hi`.
    pub fn range(&mut self, field: &str, v: u64, lo: u64, hi: u64) {
        let p = self.path(field);
        self.cx.range(&p, v, lo, hi);
    }

    /// The one source of the secret `key` (`key`, `key_env`, `key_file`), checked; `None` when
    /// none is set or several are (reported).
    pub fn secret(
        &mut self,
        key: &str,
        inline: &Option<Secret>,
        env: &Option<String>,
        file: &Option<PathBuf>,
    ) -> Option<SecretSource> {
        let base = self.base.clone();
        self.cx.secret(&base, key, secret_source(inline, env, file))
    }

    /// Whether a problem was recorded at a path under this one ending with `suffix`.
    pub fn has_problem(&self, suffix: &str) -> bool {
        self.cx
            .problems
            .iter()
            .any(|p| p.path.starts_with(&self.base) && p.path.ends_with(suffix))
    }
}

fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ if child.starts_with('[') => format!("{parent}{child}"),
        _ => format!("{parent}.{child}"),
    }
}

/// A name usable in instance names, container names, tags and Redis keys.
fn is_simple_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !s.ends_with('-')
}

impl<'a> Cx<'a> {
    fn push(&mut self, severity: Severity, path: &str, message: String, at: Option<Location>) {
        if self.patched.iter().any(|p| under(path, p)) {
            return;
        }
        let problem = Problem {
            severity,
            path: path.to_string(),
            message,
            line: at.map(|l| l.line),
            column: at.map(|l| l.column),
        };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let at = self.locations.nearest(path);
        self.push(Severity::Error, path, message.into(), at);
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let at = self.locations.nearest(path);
        self.push(Severity::Warning, path, message.into(), at);
    }

    /// Deserializes `value` as a `T`, recording every unknown key and every type error or
    /// missing field: a wrong value is taken out (its default applies) and a missing one stood
    /// in for, and the value read again, so one run reports all of them, and the checks after
    /// it run on what was read (a problem under a patched path is not reported again: it
    /// follows from the one that was). `None` for a problem that cannot be stepped over.
    fn de<T: DeserializeOwned>(&mut self, mut value: Value, path: &str) -> Option<T> {
        // Stand-ins for a missing field, tried in turn until one has the field's type.
        let stand_ins = || {
            [
                Value::String(String::new()),
                Value::Number(0.into()),
                Value::Bool(false),
                Value::Sequence(Vec::new()),
                Value::Mapping(Mapping::new()),
            ]
        };
        let mut trying: HashMap<String, usize> = HashMap::new();
        for _ in 0..200 {
            let mut unknown: Vec<String> = Vec::new();
            let result = {
                let mut record = |p: serde_ignored::Path| unknown.push(ignored_path(&p));
                let de = serde_ignored::Deserializer::new(value.clone(), &mut record);
                serde_path_to_error::deserialize::<_, T>(de)
            };
            for u in unknown {
                let p = join(path, &u);
                let at = self.locations.key(&p);
                let message = match did_you_mean(&u, fields_of::<T>()) {
                    Some(known) => format!("unknown field; did you mean `{known}`?"),
                    None => "unknown field".into(),
                };
                self.push(Severity::Error, &p, message, at);
            }
            let e = match result {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let mut segs = segments(e.path())?;
            let inner = join(path, &error_path(e.path()));
            let message = e.inner().to_string();
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
                .map(str::to_string);
            if let Some(field) = missing {
                let full = join(&inner, &field);
                if !self.patched.iter().any(|p| under(&full, p)) {
                    // Point at the field that is missing, reported on its parent's position.
                    let at = self.locations.nearest(&inner);
                    self.push(
                        Severity::Error,
                        &full,
                        "required field is missing".into(),
                        at,
                    );
                    self.patched.push(full.clone());
                }
                segs.push(Seg::Key(field));
                trying.insert(full, 0);
                let (map, key) = holder(&mut value, &segs)?;
                map.insert(Value::String(key), stand_ins()[0].clone());
                continue;
            }
            if let Some(n) = trying.get_mut(&inner) {
                // The stand-in has not the field's type: the next one.
                *n += 1;
                let next = stand_ins().get(*n).cloned()?;
                let (map, key) = holder(&mut value, &segs)?;
                map.insert(Value::String(key), next);
                continue;
            }
            if !self.patched.iter().any(|p| under(&inner, p)) {
                self.error(&inner, message);
            }
            let (map, key) = holder(&mut value, &segs)?;
            let taken = join(path, &segs_path(&segs, &key));
            self.patched.push(taken);
            map.remove(key.as_str());
        }
        None
    }

    /// The forge a configuration names (`github` when it names none).
    fn forge(&mut self, value: Option<Value>) -> Option<ForgeKind> {
        let Some(value) = value else {
            return Some(ForgeKind::default());
        };
        let name: String = self.de(value, "forge")?;
        if let Some(f) = ForgeKind::parse(&name) {
            return Some(f);
        }
        self.error(
            "forge",
            format!(
                "unknown forge `{}` (one of: {})",
                name.escape_default(),
                ForgeKind::NAMES.join(", ")
            ),
        );
        None
    }

    /// Every top-level key is one runnerctl knows.
    fn check_top_level(&mut self, root: &Mapping) {
        for key in root.keys() {
            match key.as_str() {
                Some(k) if TOP_LEVEL.contains(&k) => {}
                Some(k) => {
                    let at = self.locations.key(k);
                    let message = match did_you_mean(k, TOP_LEVEL) {
                        Some(known) => format!("unknown field; did you mean `{known}`?"),
                        None => "unknown field".into(),
                    };
                    self.push(Severity::Error, k, message, at);
                }
                None => self.error("", format!("top-level keys must be strings, got {key:?}")),
            }
        }
    }

    /// A backend whose instances' metadata others can read needs the broker: without one its
    /// creates are refused, which `validate` says ahead.
    fn check_broker_needed(&mut self, backends: &Backends) {
        for b in &backends.valid {
            let needs = self
                .schemas
                .iter()
                .find(|s| s.kind() == b.settings.kind())
                .and_then(|s| s.needs_broker());
            if let Some(why) = needs {
                self.warn(
                    &format!("backends.{}", b.name),
                    format!("needs the credential broker (`broker:` with `url`): {why}; until then its runners cannot be created"),
                );
            }
        }
    }

    /// A warm pool on a kind whose warm instances get their credential only through the
    /// broker (VMs) needs `broker.url`.
    fn check_warm_broker(
        &mut self,
        groups: Option<&[RunnerGroup]>,
        b: Option<&BrokerConfig>,
        backends: &Backends,
    ) {
        if b.is_some_and(|b| b.url.is_some()) {
            return;
        }
        for (i, g) in groups.unwrap_or_default().iter().enumerate() {
            let Some(w) = &g.warm_pool else { continue };
            let kind = backends
                .valid
                .iter()
                .find(|b| b.name == g.backend)
                .map(|b| b.settings.kind());
            let needs = kind
                .and_then(|k| self.schemas.iter().find(|s| s.kind() == k))
                .is_some_and(|s| s.warm_needs_broker());
            if needs && w.asks() != (false, false) {
                self.error(
                    &format!("runner_groups[{i}].warm_pool"),
                    format!(
                        "a warm pool on backend `{}` (kind {}) needs the credential broker (`broker:` with `url`): a warm instance gets its credential from it when a job takes it",
                        g.backend,
                        kind.unwrap_or_default()
                    ),
                );
            }
        }
    }

    fn check_broker(&mut self, b: Option<&BrokerConfig>, backends: &Backends) {
        match b {
            Some(b) if b.url.is_none() => {
                self.check_broker_section(b);
                self.check_broker_needed(backends);
            }
            Some(b) => self.check_broker_section(b),
            None => {}
        }
    }

    fn check_broker_section(&mut self, b: &BrokerConfig) {
        if let Some(p) = &b.aws_identity_certs_file {
            if let Err(e) = std::fs::metadata(p) {
                self.error(
                    "broker.aws_identity_certs_file",
                    format!("cannot read `{}`: {e}", p.display()),
                );
            }
        }
        if let Some(u) = &b.gce_jwks_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                self.error(
                    "broker.gce_jwks_url",
                    format!("`{u}` is not an http(s):// URL"),
                );
            }
        }
        let key = self.secret(
            "broker",
            "key",
            secret_source(&b.key, &b.key_env, &b.key_file),
        );
        self.secret(
            "broker",
            "old_keys",
            secret_source(&b.old_keys, &b.old_keys_env, &b.old_keys_file),
        );
        let Some(url) = &b.url else {
            if b.listen.is_some() || b.tls_cert_file.is_some() || key.is_some() {
                self.error("broker.url", "required field is missing (the URL instances fetch their credential from; without it the broker is off)");
            }
            return;
        };
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            self.error(
                "broker.url",
                format!("`{url}` is not an https:// URL (instances fetch over TLS, the CA pinned)"),
            );
        }
        // Both files, or neither (then runnerctl makes and keeps the certificate).
        let files = [
            ("tls_cert_file", &b.tls_cert_file),
            ("tls_key_file", &b.tls_key_file),
        ];
        let given = files.iter().filter(|(_, v)| v.is_some()).count();
        for (k, v) in files {
            match v {
                None if given == 1 => self.error(
                    &format!("broker.{k}"),
                    "required with the other TLS file (or leave both out: runnerctl then makes a self-signed certificate)",
                ),
                None => {}
                Some(p) => {
                    if let Err(e) = std::fs::metadata(p) {
                        self.error(
                            &format!("broker.{k}"),
                            format!("cannot read `{}`: {e}", p.display()),
                        );
                    }
                }
            }
        }
        if key.is_none()
            && !self
                .problems
                .iter()
                .any(|p| p.path.starts_with("broker.key"))
        {
            self.error(
                "broker.key_env",
                "a key is required (`key_env` or `key_file`: 32 bytes in base64)",
            );
        }
        if let Some(l) = &b.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                self.error(
                    "broker.listen",
                    format!("`{l}` is not an address like 0.0.0.0:8443"),
                );
            }
        }
    }

    fn check_queue(&mut self, q: &QueueConfig) {
        for (key, d) in [
            ("queue.visibility_timeout", q.visibility_timeout),
            ("queue.retry_base", q.retry_base),
            ("queue.retry_max", q.retry_max),
            ("queue.drain_timeout", q.drain_timeout),
            ("queue.handler_deadline", q.handler_deadline),
        ] {
            self.bounded(key, d);
        }
        if !(1..=100).contains(&q.max_attempts) {
            self.error(
                "queue.max_attempts",
                format!("must be between 1 and 100 (is {})", q.max_attempts),
            );
        }
        if q.retry_base > q.retry_max {
            self.error(
                "queue.retry_base",
                format!(
                    "must not exceed retry_max ({} > {})",
                    q.retry_base, q.retry_max
                ),
            );
        }
    }

    /// The top-level durations: each within its bounds, and a runner's start shorter than its
    /// life.
    fn check_times(&mut self, times: &[(&str, Option<Duration>)]) {
        for (key, d) in times {
            if let Some(d) = d {
                self.bounded(key, *d);
            }
        }
        let get = |k: &str| {
            times
                .iter()
                .find(|(key, _)| *key == k)
                .and_then(|(_, d)| *d)
        };
        if let (Some(start), Some(live)) = (get("time_to_start"), get("time_to_live")) {
            if start >= live && live.as_secs() > 0 {
                self.error(
                    "time_to_start",
                    format!("must be shorter than time_to_live ({start} >= {live})"),
                );
            }
        }
    }

    /// The document's top-level mapping, or `None` (reported) for text that is no YAML
    /// mapping.
    fn root(&mut self, text: &str) -> Option<Mapping> {
        let root: Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let at = e.location().map(|l| Location {
                    line: l.line(),
                    column: l.column(),
                });
                let message = e.to_string();
                let message = match message.find(" at line ") {
                    Some(i) => message[..i].to_string(),
                    None => message,
                };
                self.push(
                    Severity::Error,
                    "",
                    format!("not valid YAML: {message}"),
                    at,
                );
                return None;
            }
        };
        match root {
            Value::Mapping(m) => Some(m),
            Value::Null => {
                self.error("", "the file is empty; see `runnerctl config example`");
                None
            }
            _ => {
                self.error("", "the top level must be a mapping of settings");
                None
            }
        }
    }

    fn config(&mut self, text: &str) -> Option<Config> {
        let mut root = self.root(text)?;
        self.check_top_level(&root);
        let mut take = |k: &str| root.remove(k);

        let name = match take("name") {
            None => default_name(),
            Some(v) => self.de::<String>(v, "name").unwrap_or_default(),
        };
        if !is_simple_name(&name) {
            self.error("name", format!("`{name}` is not a valid manager name: use 1 to 32 lowercase letters, digits and dashes, starting with a letter (it prefixes instance names and tags)"));
        }
        let forge = self.forge(take("forge"));
        self.forge = forge.unwrap_or_default();
        let github_given = root.contains_key("github");
        let gitea_given = root.contains_key("gitea");
        let mut take = |k: &str| root.remove(k);
        let github = self.section::<GithubConfig>(take("github"), "github");
        let gitea = self.section::<GiteaConfig>(take("gitea"), "gitea");
        let redis = self.section::<RedisConfig>(take("redis"), "redis");
        let webhook = self.section::<WebhookConfig>(take("webhook"), "webhook");
        let queue = self.section::<QueueConfig>(take("queue"), "queue");
        let worker = self.section::<WorkerConfig>(take("worker"), "worker");
        worker.as_ref().inspect(|w| self.check_worker(w));
        let broker = self.section::<BrokerConfig>(take("broker"), "broker");
        let simulation =
            self.section::<simulation::SimulationConfig>(take("simulation"), "simulation");
        if let Some(s) = &simulation {
            for (path, message) in s.problems() {
                self.error(&path, message);
            }
        }
        let mut duration = |cx: &mut Self, key: &str, default: Duration| match take(key) {
            None => Some(default),
            Some(v) => cx.de::<Duration>(v, key),
        };
        let healthcheck_interval =
            duration(self, "healthcheck_interval", default_healthcheck_interval());
        let time_to_start = duration(self, "time_to_start", default_time_to_start());
        let time_to_live = duration(self, "time_to_live", default_time_to_live());
        let cleanup_grace = duration(self, "cleanup_grace", default_cleanup_grace());
        let backends = self.backends(take("backends"));
        let groups = self.groups(take("runner_groups"), &backends);

        self.check_forge_sections(forge, &github, &gitea, github_given, gitea_given);
        self.check_pins(&github, &groups);
        self.check_floor(&github, &groups);
        redis.as_ref().inspect(|r| self.check_redis(r));
        // Groups in scale-set mode need no webhook: without others, no secret is missed.
        let hooked = groups
            .as_ref()
            .is_none_or(|g| g.iter().any(|g| !g.scale_set_mode()));
        webhook.as_ref().inspect(|w| self.check_webhook(w, hooked));
        queue.as_ref().inspect(|q| self.check_queue(q));
        self.check_broker(broker.as_ref(), &backends);
        self.check_warm_broker(groups.as_deref(), broker.as_ref(), &backends);
        self.check_times(&[
            ("healthcheck_interval", healthcheck_interval),
            ("time_to_start", time_to_start),
            ("time_to_live", time_to_live),
            ("cleanup_grace", cleanup_grace),
        ]);

        let mut whole = backends.complete();
        let config = Config {
            name,
            forge: read(&mut whole, forge, ForgeKind::default),
            github: read(&mut whole, github, Default::default),
            gitea: read(&mut whole, gitea, Default::default),
            redis: read(&mut whole, redis, Default::default),
            webhook: read(&mut whole, webhook, Default::default),
            healthcheck_interval: read(
                &mut whole,
                healthcheck_interval,
                default_healthcheck_interval,
            ),
            time_to_start: read(&mut whole, time_to_start, default_time_to_start),
            time_to_live: read(&mut whole, time_to_live, default_time_to_live),
            cleanup_grace: read(&mut whole, cleanup_grace, default_cleanup_grace),
            queue: read(&mut whole, queue, Default::default),
            worker: read(&mut whole, worker, Default::default),
            broker: read(&mut whole, broker, Default::default),
            backends: backends.valid,
            runner_groups: read(&mut whole, groups, Vec::new),
            simulation: read(&mut whole, simulation, Default::default),
        };
        // Incomplete, it is only what could be read: `config validate` checks its secrets.
        if whole {
            return Some(config);
        }
        self.partial = Some(Box::new(config));
        None
    }

    /// Checks a number against its bounds, inclusive.
    fn range(&mut self, path: &str, v: u64, lo: u64, hi: u64) {
        if !(lo..=hi).contains(&v) {
            self.error(path, format!("must be between {lo} and {hi} (is {v})"));
        }
    }

    /// Checks a duration against its documented bounds ([`DURATION_BOUNDS`]).
    fn bounded(&mut self, key: &str, d: Duration) {
        let Some((_, lo, hi)) = DURATION_BOUNDS.iter().find(|(k, _, _)| *k == key) else {
            return;
        };
        let (lo, hi) = (Duration::from_secs(*lo), Duration::from_secs(*hi));
        if d < lo || d > hi {
            self.error(key, format!("must be between {lo} and {hi} (is {d})"));
        }
    }

    /// A section that may be left out entirely (then all its defaults apply).
    fn section<T: DeserializeOwned + Default>(
        &mut self,
        value: Option<Value>,
        path: &str,
    ) -> Option<T> {
        match value {
            None | Some(Value::Null) => Some(T::default()),
            Some(v) => self.de(v, path),
        }
    }

    fn secret(
        &mut self,
        path: &str,
        key: &str,
        source: Result<Option<SecretSource>, ()>,
    ) -> Option<SecretSource> {
        let p = join(path, key);
        match source {
            Err(()) => {
                self.error(
                    &p,
                    format!("set only one of `{key}`, `{key}_env` and `{key}_file`"),
                );
                None
            }
            Ok(Some(SecretSource::Inline(s))) => {
                self.warn(
                    &p,
                    format!(
                        "secret written inline in the file; prefer `{key}_env` or `{key}_file`"
                    ),
                );
                Some(SecretSource::Inline(s))
            }
            Ok(other) => other,
        }
    }

    fn check_github(&mut self, g: &GithubConfig) {
        if !(g.base_url.starts_with("https://") || g.base_url.starts_with("http://")) {
            self.error(
                "github.base_url",
                format!("`{}` is not an http(s) URL", g.base_url),
            );
        }
        let token = self.secret(
            "github",
            "token",
            secret_source(&g.token, &g.token_env, &g.token_file),
        );
        let key = self.secret(
            "github",
            "private_key",
            secret_source(&g.private_key, &g.private_key_env, &g.private_key_file),
        );
        // A secret given twice was reported above; it still counts as given here.
        let token_given =
            token.is_some() || g.token.is_some() || g.token_env.is_some() || g.token_file.is_some();
        let key_given = key.is_some()
            || g.private_key.is_some()
            || g.private_key_env.is_some()
            || g.private_key_file.is_some();
        let app = g.app_id.is_some() || g.installation_id.is_some() || key_given;
        self.check_budget("github.budget", &g.budget);
        if !g.apps.is_empty() {
            if app || token_given {
                self.error(
                    "github.apps",
                    "set with `app_id`/`token`: keep exactly one authentication method (move the App into `apps`)",
                );
            }
            self.check_apps(&g.apps);
            return;
        }
        match (app, token_given) {
            (false, false) => self.error(
                "github",
                "no authentication configured: set `app_id`, `installation_id` and `private_key_file` (GitHub App) or `token_env` (personal access token)",
            ),
            (true, true) => self.error(
                "github",
                "both a GitHub App and a token are configured; keep exactly one authentication method",
            ),
            (true, false) => {
                for (field, missing) in [
                    ("app_id", g.app_id.is_none()),
                    ("installation_id", g.installation_id.is_none()),
                    ("private_key", !key_given),
                ] {
                    if missing {
                        self.error(
                            &format!("github.{field}"),
                            "required for GitHub App authentication",
                        );
                    }
                }
            }
            (false, true) => {}
        }
    }

    fn check_apps(&mut self, apps: &[super::GithubApp]) {
        let mut names = std::collections::BTreeSet::new();
        for (i, a) in apps.iter().enumerate() {
            let path = format!("github.apps[{i}]");
            if !is_simple_name(&a.name) {
                self.error(
                    &join(&path, "name"),
                    format!("`{}` is not a valid App name: use 1 to 32 lowercase letters, digits and dashes, starting with a letter", a.name.escape_default()),
                );
            } else if !names.insert(a.name.as_str()) {
                self.error(&join(&path, "name"), format!("`{}` names two Apps", a.name));
            }
            let key = self.secret(
                &path,
                "private_key",
                secret_source(&a.private_key, &a.private_key_env, &a.private_key_file),
            );
            let given = key.is_some()
                || a.private_key.is_some()
                || a.private_key_env.is_some()
                || a.private_key_file.is_some();
            if !given {
                self.error(
                    &join(&path, "private_key"),
                    "required field is missing: set `private_key_file` or `private_key_env`",
                );
            }
        }
    }

    fn check_budget(&mut self, path: &str, b: &super::ApiBudget) {
        for (field, v, lo, hi) in [
            ("points_per_minute", b.points_per_minute, 1, 1_000_000),
            ("write_points", b.write_points, 1, 1000),
            ("read_points", b.read_points, 1, 1000),
            ("max_concurrent", b.max_concurrent, 1, 10_000),
        ] {
            if let Some(v) = v {
                self.range(&join(path, field), v as u64, lo, hi);
            }
        }
    }

    /// `github.min_runner_version` and each group's `runner_version` are versions (and the
    /// floor's day a day); a group below a floor in effect today is refused: GitHub would
    /// register none of its runners. (One below a floor still to come is `doctor`'s warning.)
    fn check_floor(&mut self, github: &Option<GithubConfig>, groups: &Option<Vec<RunnerGroup>>) {
        use super::floor::{parse_day, parse_version, standing, Standing};
        let floor = github.as_ref().and_then(|g| g.min_runner_version.as_ref());
        if let Some(f) = floor {
            if parse_version(&f.version).is_none() {
                self.error(
                    "github.min_runner_version.version",
                    format!(
                        "`{}` is not a version like 2.329.0",
                        f.version.escape_default()
                    ),
                );
            }
            if parse_day(&f.from).is_none() {
                self.error(
                    "github.min_runner_version.from",
                    format!("`{}` is not a day like 2026-09-25", f.from.escape_default()),
                );
            }
        }
        let now = crate::model::unix_now();
        for (i, g) in groups.iter().flatten().enumerate() {
            let Some(v) = &g.runner_version else { continue };
            let path = format!("runner_groups[{i}].runner_version");
            if parse_version(v).is_none() {
                self.error(
                    &path,
                    format!("`{}` is not a version like 2.329.0", v.escape_default()),
                );
                continue;
            }
            if let Some(f) = floor {
                if standing(v, f, now) == Some(Standing::Refused) {
                    self.error(&path, format!("{v} is below GitHub's minimum runner version {} (in effect since {}): GitHub registers none of its runners; update the image", f.version, f.from));
                }
            }
        }
    }

    /// A group's `github_app` names an App of `github.apps`.
    fn check_pins(&mut self, github: &Option<GithubConfig>, groups: &Option<Vec<RunnerGroup>>) {
        let (Some(g), Some(groups)) = (github, groups) else {
            return;
        };
        for (i, group) in groups.iter().enumerate() {
            let Some(pin) = &group.github_app else {
                continue;
            };
            let path = format!("runner_groups[{i}].github_app");
            if self.forge != ForgeKind::Github {
                self.error(&path, "GitHub Apps are GitHub's; remove it");
            } else if !g.apps.iter().any(|a| &a.name == pin) {
                let known: Vec<&str> = g.apps.iter().map(|a| a.name.as_str()).collect();
                self.error(
                    &path,
                    if known.is_empty() {
                        format!("`{pin}` is not an App of `github.apps` (there is none)")
                    } else {
                        format!(
                            "`{pin}` is not an App of `github.apps` ({})",
                            known.join(", ")
                        )
                    },
                );
            }
        }
    }

    /// The section of the configured forge is checked; the other forge's may not be set.
    fn check_forge_sections(
        &mut self,
        forge: Option<ForgeKind>,
        github: &Option<GithubConfig>,
        gitea: &Option<GiteaConfig>,
        github_given: bool,
        gitea_given: bool,
    ) {
        match forge {
            Some(ForgeKind::Github) => {
                if let Some(g) = github {
                    self.check_github(g);
                }
                if gitea_given {
                    self.error(
                        "gitea",
                        "set for `forge: github`; remove it, or set `forge: gitea`",
                    );
                }
            }
            Some(kind) => {
                if let Some(g) = gitea {
                    self.check_gitea(g, kind);
                }
                if github_given {
                    self.error(
                        "github",
                        format!("set for `forge: {}`; remove it (the forge is configured under `gitea:`)", kind.as_str()),
                    );
                }
            }
            None => {}
        }
    }

    fn check_worker(&mut self, w: &WorkerConfig) {
        let lease = w.scale_set_lease.as_std();
        if lease < std::time::Duration::from_secs(2) || lease > std::time::Duration::from_secs(600)
        {
            self.error(
                "worker.scale_set_lease",
                format!("must be between 2s and 10m (is {}s)", lease.as_secs_f64()),
            );
        }
        if let Some(a) = &w.metrics_listen {
            if a.parse::<std::net::SocketAddr>().is_err() {
                self.error(
                    "worker.metrics_listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:9101",
                        a.escape_default()
                    ),
                );
            }
        }
    }

    fn check_gitea(&mut self, g: &GiteaConfig, kind: ForgeKind) {
        let url = g.url.trim_end_matches('/');
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty())
            && !url.ends_with("/api/v1");
        if g.url.is_empty() {
            self.error(
                "gitea.url",
                format!(
                    "required field is missing (the web root of the {} instance, `https://gitea.example.com`)",
                    kind.as_str()
                ),
            );
        } else if !ok {
            self.error(
                "gitea.url",
                format!(
                    "`{}` is not the instance's web root (an http(s) URL without `/api/v1`)",
                    g.url.escape_default()
                ),
            );
        }
        let token = self.secret(
            "gitea",
            "token",
            secret_source(&g.token, &g.token_env, &g.token_file),
        );
        let given =
            token.is_some() || g.token.is_some() || g.token_env.is_some() || g.token_file.is_some();
        if !given {
            self.error(
                "gitea.token",
                "required field is missing: set `token_env` or `token_file` (an access token)",
            );
        }
        self.check_budget("gitea.budget", &g.budget);
        let (lo, hi) = (Duration::from_secs(60), Duration::from_secs(90 * 86400));
        if g.token_rotation < lo || g.token_rotation > hi {
            self.error(
                "gitea.token_rotation",
                format!("must be between {lo} and {hi} (is {})", g.token_rotation),
            );
        }
    }

    /// Sentinel, Cluster and the replicas `serve` waits for.
    fn check_redis_topology(&mut self, r: &RedisConfig) {
        if let Some(sn) = &r.sentinel {
            self.secret(
                "redis.sentinel",
                "password",
                secret_source(&sn.password, &sn.password_env, &sn.password_file),
            );
            if sn.master.trim().is_empty() {
                self.error(
                    "redis.sentinel.master",
                    "required: the name the sentinels monitor",
                );
            }
            if sn.addresses.is_empty() {
                self.error(
                    "redis.sentinel.addresses",
                    "at least one sentinel (`host:port`) is required",
                );
            }
            for (i, a) in sn.addresses.iter().enumerate() {
                let port_ok = a
                    .rsplit_once(':')
                    .is_none_or(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if a.trim().is_empty() || a.contains('/') || !port_ok {
                    self.error(
                        &format!("redis.sentinel.addresses[{i}]"),
                        format!("`{}` is not `host:port`", a.escape_default()),
                    );
                }
            }
        }
        for (i, a) in r.cluster.iter().enumerate() {
            let ok = a.rsplit_once(':').is_some_and(|(h, p)| {
                !h.is_empty() && !h.contains('/') && p.parse::<u16>().is_ok()
            });
            if !ok {
                self.error(
                    &format!("redis.cluster[{i}]"),
                    format!("`{}` is not `host:port`", a.escape_default()),
                );
            }
        }
        if !r.cluster.is_empty() && r.sentinel.is_some() {
            self.error("redis.cluster", "set `cluster` or `sentinel`, not both");
        }
        if !r.cluster.is_empty() && r.wait_replicas > 0 {
            self.error(
                "redis.wait_replicas",
                "not with `cluster`: WAIT counts one node's replicas",
            );
        }
        if r.wait_timeout.as_secs() > 60 {
            self.error(
                "redis.wait_timeout",
                format!("must be at most 60s (is {})", r.wait_timeout),
            );
        }
    }

    fn check_redis(&mut self, r: &RedisConfig) {
        let ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|s| r.url.starts_with(s));
        if !ok {
            self.error(
                "redis.url",
                format!(
                    "`{}` is not a Redis URL (redis://host:port/db, rediss://…, unix:///path)",
                    redact_url(&r.url)
                ),
            );
        }
        self.secret(
            "redis",
            "password",
            secret_source(&r.password, &r.password_env, &r.password_file),
        );
        let tls_files = [
            ("ca_file", &r.ca_file),
            ("client_cert_file", &r.client_cert_file),
            ("client_key_file", &r.client_key_file),
        ];
        for (k, v) in tls_files {
            if let Some(p) = v {
                if let Err(e) = std::fs::metadata(p) {
                    self.error(
                        &format!("redis.{k}"),
                        format!("cannot read `{}`: {e}", p.display()),
                    );
                }
                if r.url_env.is_none() && !r.url.starts_with("rediss://") {
                    self.error(&format!("redis.{k}"), "TLS settings need a `rediss://` URL");
                }
            }
        }
        if let Some(name) = &r.tls_server_name {
            if !is_tls_server_name(name) {
                self.error(
                    "redis.tls_server_name",
                    format!(
                        "`{}` is not a DNS name or an IP address",
                        name.escape_default()
                    ),
                );
            }
            if r.url_env.is_none() && !r.url.starts_with("rediss://") {
                self.error(
                    "redis.tls_server_name",
                    "TLS settings need a `rediss://` URL",
                );
            }
            if !r.cluster.is_empty() {
                self.error("redis.tls_server_name", CLUSTER_SERVER_NAME);
            }
        }
        self.check_redis_topology(r);
        if r.client_cert_file.is_some() != r.client_key_file.is_some() {
            let missing = if r.client_cert_file.is_none() {
                "client_cert_file"
            } else {
                "client_key_file"
            };
            self.error(
                &format!("redis.{missing}"),
                "mutual TLS needs both `client_cert_file` and `client_key_file`",
            );
        }
        if r.url_env.is_none() && redact_url(&r.url) != r.url {
            self.warn(
                "redis.url",
                "the URL carries a credential written inline (in its user part or its query); prefer `url_env`, or `password_env`/`password_file`",
            );
        }
    }

    fn check_webhook(&mut self, w: &WebhookConfig, hooked: bool) {
        if w.listen.parse::<std::net::SocketAddr>().is_err() {
            self.error(
                "webhook.listen",
                format!("`{}` is not an address like 0.0.0.0:8080", w.listen),
            );
        }
        if let Some(m) = &w.metrics_listen {
            if m.parse::<std::net::SocketAddr>().is_err() {
                self.error(
                    "webhook.metrics_listen",
                    format!("`{m}` is not an address like 127.0.0.1:9090"),
                );
            }
        }
        let secret = self.secret(
            "webhook",
            "secret",
            secret_source(&w.secret, &w.secret_env, &w.secret_file),
        );
        if let Some(SecretSource::Inline(s)) = &secret {
            if let Err(why) = webhook_secret_strength(s) {
                self.error("webhook.secret", why);
            }
        }
        self.secret(
            "webhook",
            "metrics_token",
            secret_source(
                &w.metrics_token,
                &w.metrics_token_env,
                &w.metrics_token_file,
            ),
        );
        for (key, v, lo, hi) in [
            (
                "webhook.max_body_kib",
                u64::from(w.max_body_kib),
                1,
                25 * 1024,
            ),
            (
                "webhook.max_connections",
                u64::from(w.max_connections),
                1,
                65_536,
            ),
            (
                "webhook.max_connections_per_address",
                u64::from(w.max_connections_per_address),
                1,
                65_536,
            ),
            (
                "webhook.max_in_flight",
                u64::from(w.max_in_flight),
                1,
                4_096,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                self.error(key, format!("must be between {lo} and {hi} (is {v})"));
            }
        }
        if hooked && secret.is_none() && !self.problems.iter().any(|p| p.path == "webhook.secret") {
            self.warn(
                "webhook",
                "no webhook secret (`secret_env` or `secret_file`): `runnerctl serve` will refuse to start",
            );
        }
    }

    /// The backends that are valid, and the names of those that are not (already reported).
    fn backends(&mut self, value: Option<Value>) -> Backends {
        let mut found = Backends::default();
        let map = match value {
            None | Some(Value::Null) => {
                self.error("backends", "at least one backend is required");
                found.section_broken = true;
                return found;
            }
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                self.error(
                    "backends",
                    "must be a mapping of backend names to their settings",
                );
                found.section_broken = true;
                return found;
            }
        };
        if map.is_empty() {
            self.error("backends", "at least one backend is required");
        }
        for (key, value) in map {
            let Some(name) = key.as_str().map(str::to_string) else {
                self.error(
                    "backends",
                    format!("backend names must be strings, got {key:?}"),
                );
                found.section_broken = true;
                continue;
            };
            let path = format!("backends.{name}");
            if !is_simple_name(&name) {
                self.error(&path, format!("`{name}` is not a valid backend name: use lowercase letters, digits and dashes, starting with a letter"));
            }
            match self.backend(value, &path) {
                Some(settings) => found.valid.push(BackendConfig { name, settings }),
                None => found.broken.push(name),
            }
        }
        found
    }

    fn kind_of(&mut self, map: &mut Mapping, path: &str) -> Option<&'a dyn Schema> {
        let kind_path = join(path, "kind");
        let Some(kind) = map.remove("kind") else {
            let at = self.locations.nearest(path);
            let names = self.kind_names();
            self.push(
                Severity::Error,
                &kind_path,
                format!("required field is missing (one of: {names})"),
                at,
            );
            return None;
        };
        let text = kind.as_str().unwrap_or_default().to_string();
        let found = self.schemas.iter().find(|k| k.kind() == text).copied();
        if found.is_none() {
            let names = self.kind_names();
            let why = if FEATURES.contains(&text.as_str()) {
                format!("backend kind `{text}` is not built into this binary (this build has: {names}; rebuild with `--features {text}`)")
            } else {
                format!("unknown backend kind `{text}` (one of: {names})")
            };
            self.error(&kind_path, why);
        }
        found
    }

    fn kind_names(&self) -> String {
        let names: Vec<&str> = self.schemas.iter().map(|k| k.kind()).collect();
        names.join(", ")
    }

    fn backend(&mut self, value: Value, path: &str) -> Option<BackendSettings> {
        let mut map = match value {
            Value::Mapping(m) => m,
            _ => {
                self.error(path, "must be a mapping with at least `kind`");
                return None;
            }
        };
        let schema = self.kind_of(&mut map, path)?;
        let mut r = Reader {
            cx: self,
            base: path.to_string(),
        };
        schema.settings(&mut r, Value::Mapping(map))
    }

    fn groups(&mut self, value: Option<Value>, backends: &Backends) -> Option<Vec<RunnerGroup>> {
        let items = match value {
            None | Some(Value::Null) => {
                self.error("runner_groups", "at least one runner group is required");
                return None;
            }
            Some(Value::Sequence(s)) if s.is_empty() => {
                self.error("runner_groups", "at least one runner group is required");
                return None;
            }
            Some(Value::Sequence(s)) => s,
            Some(_) => {
                self.error("runner_groups", "must be a list of runner groups");
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut label_sets: Vec<(Vec<String>, String)> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("runner_groups[{i}]");
            let Some(raw) = self.de::<RawGroup>(item, &path) else {
                ok = false;
                continue;
            };
            if let Some(name) = raw.name.clone().filter(|n| !n.is_empty()) {
                if let Some(first) = names.get(&name) {
                    self.error(
                        &join(&path, "name"),
                        format!("duplicate group name `{name}` (first used by {first})"),
                    );
                } else {
                    names.insert(name, path.clone());
                }
            }
            if let Some(labels) = raw.labels.as_ref().filter(|l| !l.is_empty()) {
                let mut set: Vec<String> = labels.iter().map(|l| l.to_lowercase()).collect();
                set.sort();
                set.dedup();
                if let Some((_, first)) = label_sets.iter().find(|(s, _)| *s == set) {
                    self.error(
                        &join(&path, "labels"),
                        format!(
                            "same labels as {first}: a job could not tell the two groups apart"
                        ),
                    );
                } else {
                    label_sets.push((set, path.clone()));
                }
            }
            match self.group(raw, &path, backends) {
                Some(g) => out.push(g),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The schema of the backend a group names; `None` (reported) when it names none.
    fn schema_of(
        &mut self,
        backend_name: &str,
        path: &str,
        backends: &Backends,
    ) -> Option<&'a dyn Schema> {
        match backends.valid.iter().find(|b| b.name == backend_name) {
            Some(b) => self.schemas.iter().find(|k| k.kind() == b.kind()).copied(),
            // A broken backend or section was reported already.
            None if backends.section_broken
                || backends.broken.iter().any(|b| b == backend_name) =>
            {
                None
            }
            None => {
                if !backend_name.is_empty() {
                    let defined: Vec<&str> = backends
                        .valid
                        .iter()
                        .map(|b| b.name.as_str())
                        .chain(backends.broken.iter().map(String::as_str))
                        .collect();
                    self.error(
                        path,
                        format!(
                            "unknown backend `{backend_name}` (defined: {})",
                            if defined.is_empty() {
                                "none".to_string()
                            } else {
                                defined.join(", ")
                            }
                        ),
                    );
                }
                None
            }
        }
    }

    /// A group's labels: required, at least one, each well formed. False when unusable.
    fn check_labels(&mut self, labels: &Option<Vec<String>>, path: &str) -> bool {
        match labels {
            None => {
                let at = self.locations.nearest(path);
                self.push(
                    Severity::Error,
                    path,
                    "required field is missing (the labels jobs ask for in `runs-on`)".into(),
                    at,
                );
                return false;
            }
            Some(l) if l.is_empty() => {
                self.error(path, "must list at least one label");
                return false;
            }
            Some(l) => {
                for (j, label) in l.iter().enumerate() {
                    let p = format!("{}[{j}]", path);
                    if label.trim().is_empty() {
                        self.error(&p, "a label must not be empty");
                    } else if !valid_label(label) {
                        self.error(
                            &p,
                            format!(
                                "`{}` is not a valid label (1 to 100 printable ASCII characters; no spaces, commas, quotes, backslashes, `$` or backticks)",
                                label.escape_default()
                            ),
                        );
                    }
                }
            }
        }
        true
    }

    /// Where a group's runners register: `scope` as written, else `repository` when a
    /// repository is named, else `organization`. `instance` and `user` are Gitea's.
    fn group_scope(&mut self, raw: &RawGroup, path: &str) -> Option<GroupScope> {
        let field = join(path, "scope");
        let scope = match raw.scope.as_deref() {
            None if raw.repository.is_some() => GroupScope::Repository,
            None => GroupScope::Organization,
            Some("organization") => GroupScope::Organization,
            Some("repository") => GroupScope::Repository,
            Some("user") => GroupScope::User,
            Some("instance") => GroupScope::Instance,
            Some(other) => {
                self.error(
                    &field,
                    format!(
                        "unknown scope `{}` (one of: organization, repository, user, instance)",
                        other.escape_default()
                    ),
                );
                return None;
            }
        };
        let gitea = self.forge.is_gitea();
        if matches!(scope, GroupScope::User | GroupScope::Instance) && !gitea {
            self.error(
                &field,
                "`user` and `instance` scopes are Gitea's and Forgejo's; on GitHub a group registers on its organization or `repository`",
            );
            return None;
        }
        if (scope == GroupScope::Repository) != raw.repository.is_some() {
            let why = if raw.repository.is_some() {
                "a group with a `repository` has scope `repository`"
            } else {
                "scope `repository` needs `repository` (the repository's name)"
            };
            self.error(&field, why);
            return None;
        }
        if gitea && !raw.selected_workflows.is_empty() {
            self.error(
                &join(path, "selected_workflows"),
                "Gitea has no runner groups to restrict to workflows; remove it",
            );
        }
        Some(scope)
    }

    /// A group's repository scope and access lists.
    fn check_access(&mut self, raw: &RawGroup, path: &str) {
        let field = |f: &str| join(path, f);
        if let Some(repo) = &raw.repository {
            if !valid_repository(repo) {
                self.error(&field("repository"), format!("`{repo}` is not a repository name (write the name alone; the organization is `organization`)"));
            }
            if raw.selected_repositories.is_some() {
                self.error(&field("selected_repositories"), "a group scoped to one `repository` has no repository access list; remove one of the two");
            }
        }
        if let Some(repos) = &raw.selected_repositories {
            for (j, r) in repos.iter().enumerate() {
                if !valid_repository(r) {
                    self.error(
                        &format!("{}[{j}]", field("selected_repositories")),
                        format!("`{r}` is not a repository name of the organization"),
                    );
                }
            }
        }
        for (j, w) in raw.selected_workflows.iter().enumerate() {
            let ok = w.contains("/.github/workflows/")
                && w.rsplit_once('@').is_some_and(|(_, r)| !r.is_empty())
                && w.split('/').count() >= 5;
            if !ok {
                self.error(
                    &format!("{}[{j}]", field("selected_workflows")),
                    format!("`{w}` is not a workflow reference like `octo-org/octo-repo/.github/workflows/build.yml@main`"),
                );
            }
        }
    }

    fn group(&mut self, mut raw: RawGroup, path: &str, backends: &Backends) -> Option<RunnerGroup> {
        self.first_backend(&mut raw, path);
        let field = |f: &str| join(path, f);
        let mut valid = true;
        let mut required = |cx: &mut Self, f: &str, v: &Option<String>| {
            if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
                let at = cx.locations.nearest(&field(f));
                cx.push(
                    Severity::Error,
                    &field(f),
                    "required field is missing".into(),
                    at,
                );
                valid = false;
            }
        };
        required(self, "name", &raw.name);
        let scope = self.group_scope(&raw, path);
        // An instance-wide group may serve every owner: then it names none.
        if scope != Some(GroupScope::Instance) || raw.selected_repositories.is_some() {
            required(self, "organization", &raw.organization);
        }
        if raw.backends.is_none() {
            required(self, "backend", &raw.backend);
        }
        if let Some(name) = &raw.name {
            if !name.is_empty() && !is_simple_name(name) {
                self.error(&field("name"), format!("`{name}` is not a valid group name: use 1 to 32 lowercase letters, digits and dashes, starting with a letter (it is part of runner names)"));
            }
        }
        valid &= self.check_labels(&raw.labels, &field("labels"));
        if raw.max_runners == 0 || raw.max_runners > 10_000 {
            self.error(
                &field("max_runners"),
                format!("must be between 1 and 10000 (is {})", raw.max_runners),
            );
        }
        if let Some(org) = raw.organization.as_deref().filter(|o| !o.trim().is_empty()) {
            if !valid_login(org) {
                self.error(&field("organization"), format!("`{}` is not a GitHub organization name (1 to 39 letters, digits and single dashes)", org.escape_default()));
            }
        }
        if raw.min_runners > raw.max_runners {
            self.error(
                &field("min_runners"),
                format!(
                    "must not exceed max_runners ({} > {})",
                    raw.min_runners, raw.max_runners
                ),
            );
        }
        self.check_access(&raw, path);
        self.check_scale_set(&raw, path);
        self.check_template(&raw, path);
        // The spec is read against the kind of the backend the group names.
        let backend_name = raw.backend.clone().unwrap_or_default();
        let schema = self.schema_of(&backend_name, &field("backend"), backends);
        if let Some(w) = &raw.warm_pool {
            let can = schema.map(|s| (s.kind(), s.warm_pools()));
            self.check_warm_pool(w, &field("warm_pool"), raw.max_runners, can, &backend_name);
        }
        self.check_container_jobs(&raw, path, backends);
        let choices = self.backend_choices(&raw, path, backends);
        let spec = choices
            .first()
            .and_then(|c| c.as_ref().map(|c| c.spec.clone()));
        if let (Some(w), Some(schema), Some(spec)) = (&raw.warm_pool, schema, &spec) {
            self.check_stopped(w, schema, spec, &field("warm_pool"));
        }
        if !valid || choices.iter().any(Option::is_none) {
            return None;
        }
        let choices: Vec<super::BackendChoice> = choices.into_iter().flatten().collect();
        Some(RunnerGroup {
            name: raw.name?,
            scope: scope?,
            organization: raw.organization.unwrap_or_default(),
            repository: raw.repository,
            selected_repositories: raw.selected_repositories,
            allow_public_repositories: raw.allow_public_repositories,
            selected_workflows: raw.selected_workflows,
            max_runners: raw.max_runners,
            min_runners: raw.min_runners,
            labels: raw.labels?,
            backend: backend_name,
            spec: spec?,
            bootstrap_template: raw.bootstrap_template,
            container_jobs: raw.container_jobs,
            github_app: raw.github_app,
            warm_pool: raw.warm_pool,
            mode: raw.mode,
            scale_set: raw.scale_set,
            backends: choices,
            failover: raw.failover.unwrap_or_default(),
            runner_version: raw.runner_version,
        })
    }

    /// With `backends:`, the group's `backend` is its first entry's (for what reads one
    /// backend: warm pools, container jobs); `backend` and `backends` together, an empty list,
    /// or a backend named twice is refused.
    fn first_backend(&mut self, raw: &mut RawGroup, path: &str) {
        if let Some(f) = &raw.failover {
            let at = join(path, "failover");
            if f.failures == 0 {
                self.error(&format!("{at}.failures"), "must be at least 1".to_string());
            }
            for (key, d) in [("window", f.window), ("cool_down", f.cool_down)] {
                if d.as_std() < std::time::Duration::from_secs(1) {
                    self.error(&format!("{at}.{key}"), "must be at least 1s".to_string());
                }
            }
        }
        let Some(list) = &raw.backends else { return };
        let field = |f: &str| join(path, f);
        if raw.backend.is_some() {
            self.error(
                &field("backends"),
                "`backend` and `backends` together: keep one (`backends` lists the group's backends in order)".to_string(),
            );
        }
        if list.is_empty() {
            self.error(&field("backends"), "names no backend".to_string());
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let (name, max, _) = c.parts();
            if seen.contains(&name) {
                self.error(
                    &format!("{}[{i}]", field("backends")),
                    format!("backend `{name}` is named twice"),
                );
            }
            if max.is_some_and(|m| m == 0 || m > raw.max_runners) {
                self.error(
                    &format!("{}[{i}].max_runners", field("backends")),
                    format!(
                        "must be between 1 and the group's max_runners ({})",
                        raw.max_runners
                    ),
                );
            }
            seen.push(name);
        }
        if raw.backend.is_none() {
            raw.backend = seen.first().cloned();
        }
    }

    /// The group's backends in order, each with its spec read against its kind (its own
    /// `spec`, else the group's); `None` for an entry whose backend or spec is wrong.
    fn backend_choices(
        &mut self,
        raw: &RawGroup,
        path: &str,
        backends: &Backends,
    ) -> Vec<Option<super::BackendChoice>> {
        let field = |f: &str| join(path, f);
        let entries: Vec<(String, Option<u32>, Option<Value>, String)> = match &raw.backends {
            None => vec![(
                raw.backend.clone().unwrap_or_default(),
                None,
                None,
                field("backend"),
            )],
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (name, max, spec) = c.parts();
                    let at = match c {
                        RawChoice::Name(_) => format!("{}[{i}]", field("backends")),
                        RawChoice::Entry(_) => format!("{}[{i}].name", field("backends")),
                    };
                    (name, max, spec, at)
                })
                .collect(),
        };
        let mut out = Vec::new();
        for (i, (name, max, own_spec, at)) in entries.into_iter().enumerate() {
            // The first backend's unknown name was reported with the group's other checks.
            let schema = match (i, &raw.backends) {
                (0, _) => self.schemas_quiet(&name, backends),
                _ => self.schema_of(&name, &at, backends),
            };
            let Some(schema) = schema else {
                out.push(None);
                continue;
            };
            let (value, base) = match own_spec {
                Some(v) => (v, format!("{}[{i}].spec", field("backends"))),
                None => (raw.spec.clone().unwrap_or(Value::Null), field("spec")),
            };
            let mut r = Reader { cx: self, base };
            out.push(schema.spec(&mut r, value).map(|spec| super::BackendChoice {
                name,
                max_runners: max,
                spec,
            }));
        }
        out
    }

    /// The schema of a backend by name, reporting nothing (the caller did).
    fn schemas_quiet(&self, name: &str, backends: &Backends) -> Option<&'a dyn Schema> {
        let b = backends.valid.iter().find(|b| b.name == name)?;
        self.schemas.iter().find(|k| k.kind() == b.kind()).copied()
    }

    /// `bootstrap_template`: a file that can be read.
    fn check_template(&mut self, raw: &RawGroup, path: &str) {
        if let Some(t) = &raw.bootstrap_template {
            if let Err(e) = std::fs::metadata(t) {
                self.error(
                    &join(path, "bootstrap_template"),
                    format!("cannot read `{}`: {e}", t.display()),
                );
            }
        }
    }

    /// `mode: scale_set` needs GitHub; `scale_set:` needs that mode and a usable name.
    fn check_scale_set(&mut self, raw: &RawGroup, path: &str) {
        let field = |f: &str| join(path, f);
        let scale = raw.mode == super::GroupMode::ScaleSet;
        if scale && self.forge != ForgeKind::Github {
            self.error(
                &field("mode"),
                "scale_set needs forge: github (Gitea and Forgejo have no runner scale sets)"
                    .to_string(),
            );
        }
        let Some(s) = &raw.scale_set else { return };
        if !scale {
            self.error(
                &field("scale_set"),
                "is read only with `mode: scale_set`".to_string(),
            );
        }
        for (key, v) in [("name", &s.name), ("runner_group", &s.runner_group)] {
            let Some(v) = v else { continue };
            let ok = !v.trim().is_empty()
                && v.len() <= 100
                && !v.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || c == ','
                        || c == '&'
                        || c == '?'
                        || c == '/'
                });
            if !ok {
                self.error(
                    &field(&format!("scale_set.{key}")),
                    format!("`{}` is not a usable name: 1 to 100 characters, no spaces, commas, `/`, `?` or `&`", v.escape_default()),
                );
            }
        }
    }

    /// A stopped pool the group's spec cannot keep (an EC2 spot group, a GPU suspended).
    fn check_stopped(
        &mut self,
        w: &super::warm::WarmPool,
        schema: &dyn Schema,
        spec: &Typed,
        path: &str,
    ) {
        if let Some(why) = schema.stopped_refusal(spec).filter(|_| w.asks().1) {
            self.error(path, format!("cannot keep stopped instances: {why}"));
        }
    }

    /// `warm_pool`: pools its backend's kind can keep (`can`: the kind and its (hot, stopped)),
    /// each window's cron expression and time zone readable, every size within `max_runners`
    /// (warm instances hold its slots).
    fn check_warm_pool(
        &mut self,
        w: &super::warm::WarmPool,
        path: &str,
        max: u32,
        can: Option<(&str, (bool, bool))>,
        backend: &str,
    ) {
        if let Some((kind, (hot, stopped))) = can {
            let asks = |pick: fn(u32, u32) -> u32| {
                w.schedule
                    .iter()
                    .map(|e| pick(e.hot, e.stopped))
                    .chain([pick(w.hot, w.stopped)])
                    .any(|n| n > 0)
            };
            for (pool, able, asked) in [
                ("hot", hot, asks(|h, _| h)),
                ("stopped", stopped, asks(|_, s| s)),
            ] {
                if asked && !able {
                    self.error(
                        path,
                        format!("backend `{backend}` (kind {kind}) cannot keep {pool} instances"),
                    );
                }
            }
        }
        let within = |n: u32| n <= max;
        if !within(w.hot + w.stopped) {
            self.error(
                path,
                format!(
                    "hot + stopped ({}) exceeds max_runners ({max}): warm instances count against it",
                    w.hot + w.stopped
                ),
            );
        }
        if w.max_idle_age.as_secs() < 60 {
            self.error(
                &join(path, "max_idle_age"),
                format!("must be at least 1m (is {})", w.max_idle_age),
            );
        }
        for (i, e) in w.schedule.iter().enumerate() {
            let at = format!("{}[{i}]", join(path, "schedule"));
            for problem in [e.parsed().err(), e.zone().err()].into_iter().flatten() {
                self.error(&join(&at, problem.field), problem.message);
            }
            if e.duration.as_secs() == 0 {
                self.error(&join(&at, "duration"), "must be longer than 0s");
            }
            if !within(e.hot + e.stopped) {
                self.error(
                    &at,
                    format!(
                        "hot + stopped ({}) exceeds max_runners ({max}): warm instances count against it",
                        e.hot + e.stopped
                    ),
                );
            }
        }
    }

    /// `container_jobs` needs GitHub's runner (act_runner runs containers its own way) on a VM
    /// (a Docker backend's runners are containers already).
    fn check_container_jobs(&mut self, raw: &RawGroup, path: &str, backends: &Backends) {
        let Some(c) = &raw.container_jobs else { return };
        let at = join(path, "container_jobs");
        if self.forge != ForgeKind::Github {
            self.error(&at, "container hooks are GitHub's runner's; Gitea's act_runner runs job containers itself");
        }
        let kind = backends
            .valid
            .iter()
            .find(|b| Some(&b.name) == raw.backend.as_ref())
            .map(|b| b.kind());
        if kind == Some("docker") {
            self.error(&at, "the runners of a Docker backend are containers already: container_jobs is for runner VMs");
        }
        if let Some(i) = &c.images {
            if !i.starts_with('/') {
                self.error(
                    &join(&at, "images"),
                    format!("`{i}` must be an absolute path on the VM"),
                );
            }
        }
    }
}

/// Backend kinds a build may leave out, each behind the cargo feature of its name.
const FEATURES: &[&str] = &["aws", "docker", "gcp", "vsphere"];

/// The fields a struct `T` reads, as its `Deserialize` names them to the deserializer (empty
/// for anything that is not a plain struct).
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'c>(&'c std::cell::Cell<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(serde::de::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let seen = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(Fields(&seen));
    seen.get()
}

/// The known key closest to a misspelled one (`tokn_env` → `token_env`), if one is close.
fn did_you_mean(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    // A key nested deeper than the struct's own fields is not compared with them.
    if unknown.contains(['.', '[']) {
        return None;
    }
    let key = unknown;
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// A part of the configuration as read, or its default when it could not be (and then the
/// configuration is not `whole`).
fn read<T>(whole: &mut bool, value: Option<T>, default: impl FnOnce() -> T) -> T {
    *whole &= value.is_some();
    value.unwrap_or_else(default)
}

/// Whether `path` is `at` or lies under it.
fn under(path: &str, at: &str) -> bool {
    !at.is_empty()
        && path
            .strip_prefix(at)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// One step of a path into a YAML value.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The steps of a deserializer's error path; `None` for one through an enum or unknown step,
/// which cannot be walked in the value.
fn segments(path: &serde_path_to_error::Path) -> Option<Vec<Seg>> {
    path.iter()
        .map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            _ => None,
        })
        .collect()
}

/// The mapping that holds the last key of `segs` in `value`, and that key: a path ending in a
/// list's element names the list.
fn holder<'v>(value: &'v mut Value, segs: &[Seg]) -> Option<(&'v mut Mapping, String)> {
    let last = segs.iter().rposition(|s| matches!(s, Seg::Key(_)))?;
    let mut at = value;
    for seg in &segs[..last] {
        at = match seg {
            Seg::Key(k) => at.as_mapping_mut()?.get_mut(k.as_str())?,
            Seg::Index(i) => at.as_sequence_mut()?.get_mut(*i)?,
        };
    }
    let Seg::Key(key) = &segs[last] else {
        return None;
    };
    Some((at.as_mapping_mut()?, key.clone()))
}

/// The path of `segs` up to and including `key`, their last key.
fn segs_path(segs: &[Seg], key: &str) -> String {
    let last = segs
        .iter()
        .rposition(|s| matches!(s, Seg::Key(_)))
        .unwrap_or(0);
    let mut out = String::new();
    for seg in &segs[..last] {
        match seg {
            Seg::Key(k) => out = join(&out, k),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    join(&out, key)
}

fn error_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => out = join(&out, key),
            serde_path_to_error::Segment::Enum { variant } => out = join(&out, variant),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => join(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

fn default_true() -> bool {
    true
}
