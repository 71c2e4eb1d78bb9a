//! Job traces: what `runnerctl simulate` replays and `--write-trace` writes. One job per line
//! as JSON Lines, or CSV with a header. A job is compact in memory (labels, repositories,
//! groups and conclusions are interned) so that a million fit in tens of megabytes.

use std::collections::HashMap;
use std::fmt::Write as _;

/// A trace, jobs in the order they were queued (ties in file order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub jobs: Vec<Job>,
    /// Interned label lists, repositories, groups and conclusions; jobs refer to them by index.
    pub label_sets: Vec<Vec<String>>,
    pub repositories: Vec<String>,
    pub groups: Vec<String>,
    pub conclusions: Vec<String>,
    /// The unix time of the trace's start, when its times were absolute (RFC 3339).
    pub start_unix: Option<u64>,
}

/// One job of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Milliseconds from the trace's start.
    pub queued_ms: u64,
    pub duration_ms: u64,
    pub labels: u32,
    pub repository: u32,
    pub group: Option<u32>,
    pub conclusion: Option<u32>,
    /// Its line in the file (1-based), for messages.
    pub line: u32,
}

/// Why a trace cannot be read: the line and field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}{message}")]
pub struct TraceError {
    pub file: String,
    pub line: usize,
    /// `field `x`: ` or empty for the whole line.
    pub field: String,
    pub message: String,
}

const FIELDS: [&str; 6] = [
    "queued_at",
    "labels",
    "repository",
    "duration_s",
    "group",
    "conclusion",
];

/// When a job was queued, as written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// Seconds from the trace's start.
    Offset(f64),
    /// Unix seconds (RFC 3339), with milliseconds.
    Absolute(u64),
}

/// A job as read from a line, before interning.
struct Line {
    when: When,
    labels: Vec<String>,
    repository: String,
    duration_s: f64,
    group: Option<String>,
    conclusion: Option<String>,
}

#[derive(Default)]
struct Interner {
    index: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, key: String, all: &mut Vec<String>) -> u32 {
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        let i = all.len() as u32;
        all.push(key.clone());
        self.index.insert(key, i);
        i
    }
}

/// Builds a trace job by job.
#[derive(Default)]
pub struct Builder {
    trace: Trace,
    labels: HashMap<Vec<String>, u32>,
    repos: Interner,
    groups: Interner,
    conclusions: Interner,
}

impl Builder {
    /// Adds a job queued `queued_ms` after the start.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        queued_ms: u64,
        duration_ms: u64,
        labels: &[String],
        repository: &str,
        group: Option<&str>,
        conclusion: Option<&str>,
        line: u32,
    ) {
        let t = &mut self.trace;
        let labels = match self.labels.get(labels) {
            Some(i) => *i,
            None => {
                let i = t.label_sets.len() as u32;
                t.label_sets.push(labels.to_vec());
                self.labels.insert(labels.to_vec(), i);
                i
            }
        };
        let repository = self.repos.id(repository.to_string(), &mut t.repositories);
        let group = group.map(|g| self.groups.id(g.to_string(), &mut t.groups));
        let conclusion = conclusion.map(|c| self.conclusions.id(c.to_string(), &mut t.conclusions));
        t.jobs.push(Job {
            queued_ms,
            duration_ms,
            labels,
            repository,
            group,
            conclusion,
            line,
        });
    }

    /// The trace, its jobs in queued order (ties in the order they were added).
    pub fn finish(mut self) -> Trace {
        self.trace.jobs.sort_by_key(|j| j.queued_ms);
        self.trace
    }
}

impl Trace {
    /// Reads a trace: CSV when the file name ends in `.csv` or its first line is a header
    /// (starts with a letter), JSON Lines otherwise. Nothing is returned from a file with an
    /// error.
    pub fn parse(text: &str, file: &str) -> Result<Trace, TraceError> {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let csv = file.ends_with(".csv")
            || first
                .trim_start()
                .starts_with(|c: char| c.is_ascii_alphabetic());
        let lines = if csv {
            parse_csv(text, file)?
        } else {
            parse_jsonl(text, file)?
        };
        if lines.is_empty() {
            return Err(TraceError {
                file: file.into(),
                line: 1,
                field: String::new(),
                message: "no jobs in the trace".into(),
            });
        }
        let mut absolute = None;
        let mut offset = None;
        for (n, l) in &lines {
            match l.when {
                When::Absolute(_) => absolute = absolute.or(Some(*n)),
                When::Offset(_) => offset = offset.or(Some(*n)),
            }
        }
        if let (Some(a), Some(o)) = (absolute, offset) {
            return Err(TraceError {
                file: file.into(),
                line: a.max(o),
                field: "field `queued_at`: ".into(),
                message: format!(
                    "mixes RFC 3339 times (line {a}) with seconds from the start (line {o}); use one form"
                ),
            });
        }
        let start = lines
            .iter()
            .filter_map(|(_, l)| match l.when {
                When::Absolute(ms) => Some(ms),
                When::Offset(_) => None,
            })
            .min();
        let mut b = Builder::default();
        for (n, l) in &lines {
            let queued_ms = match l.when {
                When::Absolute(ms) => ms - start.unwrap_or(ms),
                When::Offset(s) => (s * 1000.0).round() as u64,
            };
            b.push(
                queued_ms,
                (l.duration_s * 1000.0).round() as u64,
                &l.labels,
                &l.repository,
                l.group.as_deref(),
                l.conclusion.as_deref(),
                *n as u32,
            );
        }
        let mut t = b.finish();
        t.start_unix = start.map(|ms| ms / 1000);
        Ok(t)
    }

    /// The trace as JSON Lines, times in seconds from its start.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for j in &self.jobs {
            let mut o = serde_json::Map::new();
            o.insert("queued_at".into(), secs(j.queued_ms));
            o.insert(
                "labels".into(),
                serde_json::json!(self.label_sets[j.labels as usize]),
            );
            o.insert(
                "repository".into(),
                serde_json::json!(self.repositories[j.repository as usize]),
            );
            o.insert("duration_s".into(), secs(j.duration_ms));
            if let Some(g) = j.group {
                o.insert("group".into(), serde_json::json!(self.groups[g as usize]));
            }
            if let Some(c) = j.conclusion {
                o.insert(
                    "conclusion".into(),
                    serde_json::json!(self.conclusions[c as usize]),
                );
            }
            let _ = writeln!(out, "{}", serde_json::Value::Object(o));
        }
        out
    }
}

/// Milliseconds as seconds: an integer when whole.
fn secs(ms: u64) -> serde_json::Value {
    if ms.is_multiple_of(1000) {
        serde_json::json!(ms / 1000)
    } else {
        serde_json::json!(ms as f64 / 1000.0)
    }
}

fn parse_jsonl(text: &str, file: &str) -> Result<Vec<(usize, Line)>, TraceError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |field: &str, message: String| TraceError {
            file: file.into(),
            line: n,
            field: if field.is_empty() {
                String::new()
            } else {
                format!("field `{field}`: ")
            },
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| err("", format!("not a JSON object: {e}")))?;
        let serde_json::Value::Object(o) = v else {
            return Err(err("", "not a JSON object".into()));
        };
        if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(err(
                k,
                format!("unknown field (known: {})", FIELDS.join(", ")),
            ));
        }
        let text_of = |k: &str| -> Result<Option<String>, TraceError> {
            match o.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(err(k, format!("expected a string, found {other}"))),
            }
        };
        let when = match o.get("queued_at") {
            None => return Err(err("queued_at", "missing".into())),
            Some(serde_json::Value::Number(x)) => {
                offset(x.as_f64()).map_err(|m| err("queued_at", m))?
            }
            Some(serde_json::Value::String(s)) => absolute(s).map_err(|m| err("queued_at", m))?,
            Some(other) => {
                return Err(err(
                    "queued_at",
                    format!("expected an RFC 3339 time or seconds from the start, found {other}"),
                ))
            }
        };
        let labels = match o.get("labels") {
            Some(serde_json::Value::Array(a)) => {
                let mut l = Vec::new();
                for x in a {
                    match x.as_str() {
                        Some(s) => l.push(s.to_string()),
                        None => return Err(err("labels", format!("expected strings, found {x}"))),
                    }
                }
                l
            }
            None => return Err(err("labels", "missing".into())),
            Some(other) => {
                return Err(err(
                    "labels",
                    format!("expected a list of labels, found {other}"),
                ))
            }
        };
        let duration_s = match o.get("duration_s") {
            Some(serde_json::Value::Number(x)) => x.as_f64().unwrap_or(-1.0),
            None => return Err(err("duration_s", "missing".into())),
            Some(other) => {
                return Err(err(
                    "duration_s",
                    format!("expected a number of seconds, found {other}"),
                ))
            }
        };
        let line = Line {
            when,
            labels,
            repository: text_of("repository")?
                .ok_or_else(|| err("repository", "missing".into()))?,
            duration_s,
            group: text_of("group")?,
            conclusion: text_of("conclusion")?,
        };
        check(&line).map_err(|(f, m)| err(f, m))?;
        out.push((n, line));
    }
    Ok(out)
}

fn offset(x: Option<f64>) -> Result<When, String> {
    match x {
        Some(s) if s.is_finite() && s >= 0.0 => Ok(When::Offset(s)),
        _ => Err("seconds from the start must be zero or more".into()),
    }
}

fn absolute(s: &str) -> Result<When, String> {
    let secs = crate::model::parse_rfc3339(s)
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time like 2026-12-01T09:30:00Z"))?;
    // Fractions of a second, when written (`…:00.250Z`).
    let frac = s
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|r| {
            r.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .filter(|d| !d.is_empty())
        .and_then(|d| format!("0.{d}").parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(When::Absolute(secs * 1000 + (frac * 1000.0).round() as u64))
}

/// Checks what the types do not: labels, repository, duration. `(field, message)`.
fn check(l: &Line) -> Result<(), (&'static str, String)> {
    if l.labels.is_empty() {
        return Err(("labels", "a job asks for at least one label".into()));
    }
    if let Some(bad) = l.labels.iter().find(|x| !crate::config::valid_label(x)) {
        return Err((
            "labels",
            format!("`{}` is not a valid label", bad.escape_default()),
        ));
    }
    let ok_repo = l
        .repository
        .split_once('/')
        .is_some_and(|(o, r)| crate::config::valid_login(o) && crate::config::valid_repository(r));
    if !ok_repo {
        return Err((
            "repository",
            format!("`{}` is not `owner/name`", l.repository.escape_default()),
        ));
    }
    if !(l.duration_s.is_finite() && l.duration_s >= 0.0) {
        return Err(("duration_s", "must be zero or more seconds".into()));
    }
    Ok(())
}

fn parse_csv(text: &str, file: &str) -> Result<Vec<(usize, Line)>, TraceError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let err = |line: usize, field: &str, message: String| TraceError {
        file: file.into(),
        line,
        field: if field.is_empty() {
            String::new()
        } else {
            format!("field `{field}`: ")
        },
        message,
    };
    let headers = r
        .headers()
        .map_err(|e| err(1, "", format!("cannot read the CSV header: {e}")))?
        .clone();
    let mut col = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !FIELDS.contains(&h) {
            return Err(err(
                1,
                h,
                format!("unknown column (known: {})", FIELDS.join(", ")),
            ));
        }
        col.insert(h.to_string(), i);
    }
    for needed in ["queued_at", "labels", "repository", "duration_s"] {
        if !col.contains_key(needed) {
            return Err(err(1, needed, "missing column".into()));
        }
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            err(line, "", format!("not a CSV record: {e}"))
        })?;
        let n = rec.position().map_or(0, |p| p.line() as usize);
        let get = |k: &str| col.get(k).and_then(|i| rec.get(*i)).unwrap_or("");
        let opt = |k: &str| Some(get(k).to_string()).filter(|s| !s.is_empty());
        let q = get("queued_at");
        let when = match q.parse::<f64>() {
            Ok(x) => offset(Some(x)),
            Err(_) => absolute(q),
        }
        .map_err(|m| err(n, "queued_at", m))?;
        let labels: Vec<String> = get("labels")
            .split([';', ' '])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let d = get("duration_s");
        let duration_s = d.parse::<f64>().map_err(|_| {
            err(
                n,
                "duration_s",
                format!(
                    "expected a number of seconds, found `{}`",
                    d.escape_default()
                ),
            )
        })?;
        let line = Line {
            when,
            labels,
            repository: get("repository").to_string(),
            duration_s,
            group: opt("group"),
            conclusion: opt("conclusion"),
        };
        check(&line).map_err(|(f, m)| err(n, f, m))?;
        out.push((n, line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jsonl_trace_is_read_sorted_and_interned() {
        let text = r#"{"queued_at": 10, "labels": ["self-hosted","linux"], "repository": "octo/app", "duration_s": 60}
{"queued_at": 2.5, "labels": ["self-hosted","linux"], "repository": "octo/web", "duration_s": 30, "group": "linux", "conclusion": "success"}
"#;
        let t = Trace::parse(text, "t.jsonl").unwrap();
        assert_eq!(t.jobs.len(), 2);
        assert_eq!(t.jobs[0].queued_ms, 2_500);
        assert_eq!(t.jobs[0].line, 2);
        assert_eq!(t.label_sets.len(), 1);
        assert_eq!(t.repositories, ["octo/app", "octo/web"]);
        assert_eq!(t.groups, ["linux"]);
        // And back.
        let again = Trace::parse(&t.to_jsonl(), "again.jsonl").unwrap();
        assert_eq!(again.jobs.len(), 2);
        assert_eq!(again.jobs[0].queued_ms, 2_500);
        assert_eq!(again.jobs[1].duration_ms, 60_000);
    }

    #[test]
    fn rfc3339_times_count_from_the_earliest() {
        let text = "{\"queued_at\": \"2026-12-01T09:00:10Z\", \"labels\": [\"a\"], \"repository\": \"o/r\", \"duration_s\": 1}\n{\"queued_at\": \"2026-12-01T09:00:00.500Z\", \"labels\": [\"a\"], \"repository\": \"o/r\", \"duration_s\": 1}\n";
        let t = Trace::parse(text, "t.jsonl").unwrap();
        assert_eq!(t.jobs[0].queued_ms, 0);
        assert_eq!(t.jobs[1].queued_ms, 9_500);
    }

    #[test]
    fn a_bad_line_names_its_number_and_field() {
        let good = r#"{"queued_at": 1, "labels": ["a"], "repository": "o/r", "duration_s": 5}"#;
        let cases = [
            (
                r#"{"queued_at": 1, "labels": ["a"], "repository": "o/r", "duration_s": "5m"}"#,
                "field `duration_s`",
            ),
            (
                r#"{"queued_at": 1, "labels": [], "repository": "o/r", "duration_s": 5}"#,
                "field `labels`",
            ),
            (
                r#"{"queued_at": 1, "labels": ["a"], "repository": "nope", "duration_s": 5}"#,
                "field `repository`",
            ),
            (
                r#"{"queued_at": -4, "labels": ["a"], "repository": "o/r", "duration_s": 5}"#,
                "field `queued_at`",
            ),
            (
                r#"{"queued_at": "yesterday", "labels": ["a"], "repository": "o/r", "duration_s": 5}"#,
                "field `queued_at`",
            ),
            (
                r#"{"queued_at": 1, "labels": ["a"], "repo": "o/r", "duration_s": 5}"#,
                "field `repo`",
            ),
            (
                r#"{"queued_at": 1, "labels": ["a"], "duration_s": 5}"#,
                "field `repository`: missing",
            ),
            ("not json", "not a JSON object"),
        ];
        for (bad, want) in cases {
            let text = format!("{good}\n\n{bad}\n{good}\n");
            let e = Trace::parse(&text, "t.jsonl").unwrap_err();
            assert_eq!(e.line, 3, "{bad}");
            assert!(e.to_string().starts_with("t.jsonl:3: "), "{e}");
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn a_csv_trace_is_read_with_its_header() {
        let text = "queued_at,labels,repository,duration_s,group\n0,self-hosted;linux,octo/app,60,\n5,self-hosted;linux,octo/app,30,linux\n";
        let t = Trace::parse(text, "t.csv").unwrap();
        assert_eq!(t.jobs.len(), 2);
        assert_eq!(t.label_sets[0], ["self-hosted", "linux"]);
        assert_eq!(t.jobs[0].group, None);
        assert_eq!(t.jobs[1].group, Some(0));
        let bad = "queued_at,labels,repository,duration_s\n0,a,o/r,60\n1,a,o/r,soon\n";
        let e = Trace::parse(bad, "t.csv").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_str()),
            (3, "field `duration_s`: "),
            "{e}"
        );
        let e = Trace::parse("queued_at,labels,repo,duration_s\n", "t.csv").unwrap_err();
        assert!(e.to_string().contains("unknown column"), "{e}");
    }

    #[test]
    fn an_empty_trace_is_refused() {
        let e = Trace::parse("\n\n", "t.jsonl").unwrap_err();
        assert!(e.to_string().contains("no jobs"), "{e}");
    }

    #[test]
    fn mixed_time_forms_are_refused() {
        let text = "{\"queued_at\": \"2026-12-01T09:00:10Z\", \"labels\": [\"a\"], \"repository\": \"o/r\", \"duration_s\": 1}\n{\"queued_at\": 3, \"labels\": [\"a\"], \"repository\": \"o/r\", \"duration_s\": 1}\n";
        let e = Trace::parse(text, "t.jsonl").unwrap_err();
        assert!(e.to_string().contains("mixes"), "{e}");
    }
}
