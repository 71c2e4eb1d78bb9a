//! A fake Compute Engine for tests: stateful (instances, their boot disks, zonal operations that
//! go PENDING → RUNNING → DONE), with injected errors, and strict: every request is routed and
//! checked by Google's published discovery document (`compute.v1.json`, shipped by PyPI's
//! `google-api-python-client`). A request with an unknown method, query parameter or body field,
//! a value of the wrong type, or a missing required parameter is answered 400 and recorded as a
//! violation; so is an answer of the fake's own that does not match the document.

use crate::fake_server::{rfc3339, serve_fake, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One method of the discovery document.
#[derive(Debug, Clone)]
pub struct Method {
    /// `compute.instances.insert`.
    pub id: String,
    pub http_method: String,
    segments: Vec<String>,
    parameters: Map<String, Value>,
    request: Option<String>,
    response: Option<String>,
}

/// Google's description of the Compute Engine API, as its discovery document gives it.
pub struct Discovery {
    service_path: String,
    methods: Vec<Method>,
    schemas: Map<String, Value>,
    globals: Map<String, Value>,
}

/// Query parameters every Google API takes under a `$` name besides the document's globals
/// (the Rust client sends `$alt` and `$apiVersion`).
const SYSTEM_PARAMETERS: [&str; 2] = ["apiVersion", "alt"];

impl Discovery {
    pub fn load(path: &Path) -> Result<Discovery, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut methods = Vec::new();
        collect_methods(doc.get("resources"), &mut methods);
        let obj = |k: &str| {
            doc.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        Ok(Discovery {
            service_path: format!(
                "/{}",
                doc.get("servicePath").and_then(Value::as_str).unwrap_or("")
            ),
            methods,
            schemas: obj("schemas"),
            globals: obj("parameters"),
        })
    }

    /// The method a request names, with its path parameters.
    pub fn route(&self, verb: &str, path: &str) -> Option<(&Method, BTreeMap<String, String>)> {
        let rest = path.strip_prefix(&self.service_path)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let mut best: Option<(&Method, BTreeMap<String, String>, usize)> = None;
        for m in self.methods.iter().filter(|m| m.http_method == verb) {
            if m.segments.len() != parts.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let mut literal = 0;
            let fits = m.segments.iter().zip(&parts).all(|(s, p)| {
                match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if !p.is_empty() => {
                        params.insert(name.to_string(), p.to_string());
                        true
                    }
                    Some(_) => false,
                    None => {
                        literal += 1;
                        s == p
                    }
                }
            });
            if fits && best.as_ref().is_none_or(|b| literal > b.2) {
                best = Some((m, params, literal));
            }
        }
        best.map(|(m, p, _)| (m, p))
    }

    /// What is wrong with a request to `m`: its path and query parameters, and its body.
    pub fn check_request(
        &self,
        m: &Method,
        path: &BTreeMap<String, String>,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (name, p) in &m.parameters {
            let location = p.get("location").and_then(Value::as_str).unwrap_or("");
            let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let value = if location == "path" {
                path.get(name).cloned()
            } else {
                query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            match value {
                None if required => {
                    out.push(format!("{}: missing required parameter `{name}`", m.id))
                }
                None => {}
                Some(v) => check_parameter(&m.id, name, p, &v, &mut out),
            }
        }
        for (k, v) in query {
            if m.parameters
                .get(k)
                .is_some_and(|p| p.get("location").and_then(Value::as_str) == Some("query"))
            {
                continue;
            }
            let global = k.strip_prefix('$').unwrap_or(k);
            match self.globals.get(global) {
                Some(p) => check_parameter(&m.id, k, p, v, &mut out),
                None if k.starts_with('$') && SYSTEM_PARAMETERS.contains(&global) => {}
                None => out.push(format!("{}: unknown query parameter `{k}`", m.id)),
            }
        }
        match (&m.request, body) {
            (Some(schema), Some(b)) => self.check_value(
                &format!("{}:{schema}", m.id),
                &json!({"$ref": schema}),
                b,
                &mut out,
            ),
            (Some(schema), None) => {
                out.push(format!("{}: the request body ({schema}) is missing", m.id))
            }
            (None, Some(b)) if !b.is_null() && b != &json!({}) => {
                out.push(format!("{}: takes no request body", m.id))
            }
            (None, _) => {}
        }
        out
    }

    /// What is wrong with an answer of `m`.
    pub fn check_response(&self, m: &Method, body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(schema) = &m.response {
            self.check_value(
                &format!("{} answer:{schema}", m.id),
                &json!({"$ref": schema}),
                body,
                &mut out,
            );
        }
        out
    }

    /// Checks a JSON value against a schema of the document, recording every mismatch.
    fn check_value(&self, at: &str, schema: &Value, v: &Value, out: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match self.schemas.get(r) {
                Some(s) => return self.check_value(at, s, v, out),
                None => return out.push(format!("{at}: the document has no schema `{r}`")),
            }
        }
        let ty = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        let wrong = |out: &mut Vec<String>| {
            out.push(format!(
                "{at}: expected {ty}{}{}, got {v}",
                if format.is_empty() { "" } else { " " },
                format
            ))
        };
        match ty {
            "object" => {
                let Some(o) = v.as_object() else {
                    return wrong(out);
                };
                let props = schema.get("properties").and_then(Value::as_object);
                let extra = schema.get("additionalProperties");
                for (k, val) in o {
                    match (props.and_then(|p| p.get(k)), extra) {
                        (Some(s), _) => self.check_value(&format!("{at}.{k}"), s, val, out),
                        (None, Some(s)) => self.check_value(&format!("{at}.{k}"), s, val, out),
                        (None, None) => out.push(format!("{at}: unknown field `{k}`")),
                    }
                }
            }
            "array" => {
                let Some(a) = v.as_array() else {
                    return wrong(out);
                };
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                for (i, val) in a.iter().enumerate() {
                    self.check_value(&format!("{at}[{i}]"), &items, val, out);
                }
            }
            "string" => {
                let ok = match format {
                    "int64" | "uint64" => {
                        v.as_str().is_some_and(|s| s.parse::<i128>().is_ok())
                            || v.is_i64()
                            || v.is_u64()
                    }
                    _ => v.is_string(),
                };
                if !ok {
                    return wrong(out);
                }
                if let (Some(allowed), Some(s)) =
                    (schema.get("enum").and_then(Value::as_array), v.as_str())
                {
                    if !allowed.iter().any(|a| a.as_str() == Some(s)) {
                        out.push(format!("{at}: `{s}` is not one of the enum's values"));
                    }
                }
            }
            "integer" | "number" | "boolean" => {
                let ok = match ty {
                    "integer" => {
                        v.is_i64()
                            || v.is_u64()
                            || v.as_str().is_some_and(|s| s.parse::<i64>().is_ok())
                    }
                    "number" => v.is_number(),
                    _ => v.is_boolean(),
                };
                if !ok {
                    wrong(out)
                }
            }
            _ => {}
        }
    }
}

fn collect_methods(resources: Option<&Value>, out: &mut Vec<Method>) {
    let Some(resources) = resources.and_then(Value::as_object) else {
        return;
    };
    for r in resources.values() {
        for m in r
            .get("methods")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let path = m
                .get("flatPath")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| s("path"));
            let reference = |k: &str| {
                m.get(k)
                    .and_then(|r| r.get("$ref"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            out.push(Method {
                id: s("id"),
                http_method: s("httpMethod"),
                segments: path.split('/').map(str::to_string).collect(),
                parameters: m
                    .get("parameters")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                request: reference("request"),
                response: reference("response"),
            });
        }
        collect_methods(r.get("resources"), out);
    }
}

fn check_parameter(method: &str, name: &str, p: &Value, v: &str, out: &mut Vec<String>) {
    let ty = p.get("type").and_then(Value::as_str).unwrap_or("string");
    let ok = match ty {
        "integer" => v.parse::<i64>().is_ok(),
        "boolean" => v == "true" || v == "false",
        _ => true,
    };
    if !ok {
        out.push(format!(
            "{method}: parameter `{name}` must be {ty}, got `{v}`"
        ));
    }
    if let Some(pattern) = p.get("pattern").and_then(Value::as_str) {
        let full = format!("^(?:{pattern})$");
        if regex::Regex::new(&full).is_ok_and(|re| !re.is_match(v)) {
            out.push(format!(
                "{method}: parameter `{name}` = `{v}` does not match {pattern}"
            ));
        }
    }
    if let Some(allowed) = p.get("enum").and_then(Value::as_array) {
        if !allowed.iter().any(|a| a.as_str() == Some(v)) {
            out.push(format!(
                "{method}: parameter `{name}` = `{v}` is not one of its values"
            ));
        }
    }
}

/// A call the fake received, for tests to look at and for injected faults to match.
#[derive(Debug, Clone)]
pub struct Call {
    /// The discovery method id, e.g. `compute.instances.insert`.
    pub method: String,
    pub params: BTreeMap<String, String>,
    pub query: Vec<(String, String)>,
    pub body: Value,
}

impl Call {
    pub fn query(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
    }
    /// A field of the body by a dotted path (`scheduling.provisioningModel`).
    pub fn field(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.body, |v, k| v.get(k))
    }
}

/// What an injected fault does to a call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The call is answered with this HTTP error (GCE's body, `errors[].reason`).
    Http {
        status: u16,
        reason: String,
        message: String,
    },
    /// The call starts an operation that ends with this error code (e.g.
    /// `ZONE_RESOURCE_POOL_EXHAUSTED`) and leaves nothing.
    Operation { code: String, message: String },
    /// An operation poll answers without moving the operation on (it never finishes).
    Stuck,
}

type Injector = Arc<dyn Fn(&Call) -> Option<Fault> + Send + Sync>;

#[derive(Clone)]
pub struct FakeComputeOptions {
    pub project: String,
    pub zones: Vec<String>,
    /// Source images (or image families) that exist; others are answered 404.
    pub images: Vec<String>,
}

impl Default for FakeComputeOptions {
    fn default() -> Self {
        FakeComputeOptions {
            project: "runnerctl-test".into(),
            zones: vec!["europe-west1-b".into(), "europe-west1-c".into()],
            images: vec!["projects/debian-cloud/global/images/family/debian-12".into()],
        }
    }
}

#[derive(Debug, Clone)]
struct Op {
    zone: String,
    kind: &'static str,
    target: String,
    /// 0 PENDING, 1 RUNNING, 2 DONE.
    step: u8,
    error: Option<(String, String)>,
    id: u64,
}

#[derive(Default)]
struct World {
    instances: BTreeMap<(String, String), Value>,
    disks: BTreeMap<(String, String), Value>,
    operations: BTreeMap<String, Op>,
    request_ids: HashMap<String, String>,
    calls: Vec<Call>,
    violations: Vec<String>,
    next: u64,
    injector: Option<Injector>,
}

pub struct FakeCompute {
    addr: SocketAddr,
    opts: FakeComputeOptions,
    world: Arc<Mutex<World>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Shared {
    world: Arc<Mutex<World>>,
    opts: FakeComputeOptions,
    discovery: Arc<Discovery>,
    base: String,
}

impl FakeCompute {
    /// Starts the fake on 127.0.0.1 with an ephemeral port, checking by `discovery`.
    pub async fn start(
        discovery: Discovery,
        opts: FakeComputeOptions,
    ) -> std::io::Result<FakeCompute> {
        let world = Arc::new(Mutex::new(World {
            next: 1_000,
            ..World::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            world: world.clone(),
            opts: opts.clone(),
            discovery: Arc::new(discovery),
            base: format!(
                "https://www.googleapis.com/compute/v1/projects/{}",
                opts.project
            ),
        });
        let stop = serve_fake(
            listener,
            shared,
            |s, req| async move { handle(&s, req).await },
        );
        Ok(FakeCompute {
            addr,
            opts,
            world,
            stop: Some(stop),
        })
    }

    /// The endpoint to give the client (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn options(&self) -> &FakeComputeOptions {
        &self.opts
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Faults for the calls `f` picks (replacing any earlier injector).
    pub fn inject(&self, f: impl Fn(&Call) -> Option<Fault> + Send + Sync + 'static) {
        self.world().injector = Some(Arc::new(f));
    }

    pub fn clear_faults(&self) {
        self.world().injector = None;
    }

    /// Every call received, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The calls of one method (`compute.instances.insert`).
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// What did not match the discovery document, requests and answers.
    pub fn violations(&self) -> Vec<String> {
        self.world().violations.clone()
    }

    /// Every instance as GCE's JSON.
    pub fn instances(&self) -> Vec<Value> {
        self.world().instances.values().cloned().collect()
    }

    /// Every disk as GCE's JSON.
    pub fn disks(&self) -> Vec<Value> {
        self.world().disks.values().cloned().collect()
    }

    /// Puts an instance there as if someone else made it (with these labels and metadata).
    pub fn put_instance(&self, zone: &str, name: &str, labels: Value, metadata: &[(&str, &str)]) {
        let items: Vec<Value> = metadata
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let mut w = self.world();
        w.next += 1;
        let id = w.next;
        let body = json!({
            "name": name,
            "labels": labels,
            "metadata": {"items": items},
            "machineType": format!("zones/{zone}/machineTypes/e2-small"),
        });
        let base = format!(
            "https://www.googleapis.com/compute/v1/projects/{}",
            self.opts.project
        );
        let instance = materialize(&base, zone, id, body, "RUNNING");
        w.instances
            .insert((zone.to_string(), name.to_string()), instance);
    }
}

impl Drop for FakeCompute {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn reply(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// GCE's error body: no `status` field, the reason under `errors[]`.
fn gce_error(status: u16, reason: &str, message: &str) -> Response<Body> {
    reply(
        status,
        &json!({"error": {"code": status, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}]}}),
    )
}

async fn handle(s: &Shared, req: Request<Incoming>) -> Response<Body> {
    let verb = req.method().to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut w = s.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some((method, params)) = s.discovery.route(&verb, &path) else {
        w.violations.push(format!(
            "{verb} {path}: no method of the discovery document"
        ));
        return gce_error(404, "notFound", &format!("{verb} {path}: no such method"));
    };
    let body: Option<Value> = if raw.is_empty() {
        None
    } else {
        match serde_json::from_slice(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                w.violations
                    .push(format!("{}: the body is not JSON: {e}", method.id));
                return gce_error(
                    400,
                    "parseError",
                    "This API does not support parsing form-encoded input.",
                );
            }
        }
    };
    let problems = s
        .discovery
        .check_request(method, &params, &query, body.as_ref());
    if !problems.is_empty() {
        let message = problems.join("; ");
        w.violations.extend(problems);
        return gce_error(400, "invalid", &message);
    }
    let call = Call {
        method: method.id.clone(),
        params: params.clone(),
        query,
        body: body.unwrap_or(Value::Null),
    };
    w.calls.push(call.clone());
    if params.get("project") != Some(&s.opts.project) {
        return gce_error(
            403,
            "forbidden",
            &format!(
                "Required 'compute.instances.list' permission for 'projects/{}'",
                params.get("project").cloned().unwrap_or_default()
            ),
        );
    }
    let fault = w.injector.clone().and_then(|f| f(&call));
    if let Some(Fault::Http {
        status,
        reason,
        message,
    }) = &fault
    {
        return gce_error(*status, reason, message);
    }
    let stuck = matches!(fault, Some(Fault::Stuck));
    let op_fault = match fault {
        Some(Fault::Operation { code, message }) => Some((code, message)),
        _ => None,
    };
    let (status, answer) = dispatch(s, &mut w, &call, op_fault, stuck);
    if status == 200 {
        let problems = s.discovery.check_response(method, &answer);
        w.violations.extend(problems);
    }
    reply(status, &answer)
}

type Answer = (u16, Value);

fn error_answer(status: u16, reason: &str, message: &str) -> Answer {
    (
        status,
        json!({"error": {"code": status, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}]}}),
    )
}

fn dispatch(
    s: &Shared,
    w: &mut World,
    call: &Call,
    fault: Option<(String, String)>,
    stuck: bool,
) -> Answer {
    let p = |k: &str| call.params.get(k).cloned().unwrap_or_default();
    let zone = p("zone");
    if !zone.is_empty() && !s.opts.zones.contains(&zone) {
        return error_answer(
            400,
            "invalid",
            &format!("Invalid value for field 'zone': '{zone}'. Unknown zone."),
        );
    }
    match call.method.as_str() {
        "compute.instances.insert" => insert(s, w, call, fault),
        "compute.instances.get" => match w.instances.get(&(zone.clone(), p("instance"))) {
            Some(i) => (200, i.clone()),
            None => not_found(s, &zone, "instances", &p("instance")),
        },
        "compute.instances.delete" => delete(s, w, call, fault),
        "compute.instances.suspend"
        | "compute.instances.resume"
        | "compute.instances.stop"
        | "compute.instances.start" => power(s, w, call, fault),
        "compute.instances.list" => list_zone(s, w, call, &zone),
        "compute.instances.aggregatedList" => aggregated(s, w, call),
        "compute.zoneOperations.get" | "compute.zoneOperations.wait" => {
            let name = p("operation");
            match w.operations.get(&name).cloned() {
                Some(op) if op.zone == zone => {
                    let until = if call.method.ends_with("wait") {
                        2
                    } else {
                        op.step + 1
                    };
                    if !stuck {
                        advance(w, &name, until.min(2));
                    }
                    (200, operation_json(s, &name, &w.operations[&name]))
                }
                _ => not_found(s, &zone, "operations", &name),
            }
        }
        other => error_answer(
            501,
            "notImplemented",
            &format!("the fake Compute Engine does not implement {other}"),
        ),
    }
}

fn not_found(s: &Shared, zone: &str, what: &str, name: &str) -> Answer {
    error_answer(
        404,
        "notFound",
        &format!(
            "The resource 'projects/{}/zones/{zone}/{what}/{name}' was not found",
            s.opts.project
        ),
    )
}

fn new_op(
    w: &mut World,
    zone: &str,
    kind: &'static str,
    target: &str,
    error: Option<(String, String)>,
) -> String {
    w.next += 1;
    let name = format!("operation-{}-{:08x}", w.next, fastrand::u32(..));
    w.operations.insert(
        name.clone(),
        Op {
            zone: zone.to_string(),
            kind,
            target: target.to_string(),
            step: 0,
            error,
            id: w.next,
        },
    );
    name
}

fn operation_json(s: &Shared, name: &str, op: &Op) -> Value {
    let status = ["PENDING", "RUNNING", "DONE"][usize::from(op.step.min(2))];
    let zone_url = format!("{}/zones/{}", s.base, op.zone);
    let mut v = json!({
        "kind": "compute#operation",
        "id": op.id.to_string(),
        "name": name,
        "zone": zone_url,
        "operationType": op.kind,
        "targetLink": format!("{zone_url}/instances/{}", op.target),
        "status": status,
        "progress": if op.step >= 2 { 100 } else { 0 },
        "insertTime": rfc3339(crate::model::unix_now()),
        "selfLink": format!("{zone_url}/operations/{name}"),
    });
    if let (Some((code, message)), 2) = (&op.error, op.step) {
        v["error"] = json!({"errors": [{"code": code, "message": message}]});
        v["httpErrorStatusCode"] = json!(503);
        v["httpErrorMessage"] = json!("SERVICE UNAVAILABLE");
    }
    v
}

/// Moves an operation on to `until`, applying its effect when it is DONE.
fn advance(w: &mut World, name: &str, until: u8) {
    let Some(op) = w.operations.get_mut(name) else {
        return;
    };
    if op.step >= until {
        return;
    }
    op.step = until;
    let op = op.clone();
    if op.step < 2 {
        return;
    }
    let key = (op.zone.clone(), op.target.clone());
    match (op.kind, &op.error) {
        ("insert", None) => {
            if let Some(i) = w.instances.get_mut(&key) {
                i["status"] = json!("RUNNING");
            }
        }
        ("suspend", None) => set_status(w, &key, "SUSPENDED"),
        ("stop", None) => set_status(w, &key, "TERMINATED"),
        ("resume" | "start", None) => set_status(w, &key, "RUNNING"),
        // A failed power operation leaves the instance as it was before it.
        ("suspend" | "stop", Some(_)) => set_status(w, &key, "RUNNING"),
        ("resume", Some(_)) => set_status(w, &key, "SUSPENDED"),
        ("start", Some(_)) => set_status(w, &key, "TERMINATED"),
        ("insert", Some(_)) | ("delete", None) => {
            if let Some(i) = w.instances.remove(&key) {
                for d in i["disks"].as_array().into_iter().flatten() {
                    if d["autoDelete"] == json!(true) {
                        let disk = d["source"]
                            .as_str()
                            .unwrap_or("")
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        w.disks.remove(&(op.zone.clone(), disk));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Checks what GCE itself would refuse in an insert: names, zonal URLs, images.
fn refuse_insert(s: &Shared, zone: &str, b: &Value) -> Option<Answer> {
    let name = b["name"].as_str().unwrap_or("");
    if !super::is_resource_name(name) {
        return Some(error_answer(400, "invalid", &format!("Invalid value for field 'resource.name': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'")));
    }
    let zonal = |v: &Value, kind: &str| {
        let t = v.as_str().unwrap_or("");
        t.starts_with(&format!("zones/{zone}/{kind}/"))
            || t.contains(&format!("/zones/{zone}/{kind}/"))
    };
    if !zonal(&b["machineType"], "machineTypes") {
        return Some(error_answer(400, "invalid", &format!("Invalid value for field 'resource.machineType': '{}'. Machine type with name '{}' does not exist in zone '{zone}'.", b["machineType"].as_str().unwrap_or(""), b["machineType"].as_str().unwrap_or(""))));
    }
    let disks = b["disks"].as_array().cloned().unwrap_or_default();
    if disks.len() != 1 || disks[0]["boot"] != json!(true) {
        return Some(error_answer(400, "invalid", "Invalid value for field 'resource.disks': exactly one boot disk is expected by this fake"));
    }
    let init = &disks[0]["initializeParams"];
    // GCE takes pd-standard when none is given; a given one is a zonal URL.
    if !init["diskType"].is_null() && !zonal(&init["diskType"], "diskTypes") {
        return Some(error_answer(
            400,
            "invalid",
            &format!(
                "Invalid value for field 'resource.disks[0].initializeParams.diskType': '{}'.",
                init["diskType"].as_str().unwrap_or("")
            ),
        ));
    }
    let image = init["sourceImage"].as_str().unwrap_or("");
    if !s.opts.images.iter().any(|i| i == image) {
        return Some(error_answer(
            404,
            "notFound",
            &format!("The resource '{image}' was not found"),
        ));
    }
    for g in b["guestAccelerators"].as_array().into_iter().flatten() {
        if !zonal(&g["acceleratorType"], "acceleratorTypes") {
            return Some(error_answer(
                400,
                "invalid",
                "Invalid value for field 'resource.guestAccelerators[0].acceleratorType'",
            ));
        }
        if b["scheduling"]["onHostMaintenance"] != json!("TERMINATE") {
            return Some(error_answer(
                400,
                "invalid",
                "Instances with guest accelerators do not support live migration.",
            ));
        }
    }
    None
}

/// An instance as GCE answers it, from the body of its insert.
fn materialize(base: &str, zone: &str, id: u64, mut b: Value, status: &str) -> Value {
    let name = b["name"].as_str().unwrap_or("").to_string();
    let zone_url = format!("{base}/zones/{zone}");
    b["kind"] = json!("compute#instance");
    b["id"] = json!(id.to_string());
    b["status"] = json!(status);
    b["zone"] = json!(zone_url);
    b["selfLink"] = json!(format!("{zone_url}/instances/{name}"));
    b["creationTimestamp"] = json!(rfc3339(crate::model::unix_now()));
    if let Some(mt) = b["machineType"].as_str().map(str::to_string) {
        if !mt.starts_with("https://") {
            b["machineType"] = json!(format!("{base}/{mt}"));
        }
    }
    let ip = format!("10.128.{}.{}", (id / 250) % 250, id % 250 + 2);
    let mut nics = b["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![json!({})]);
    for (i, n) in nics.iter_mut().enumerate() {
        n["name"] = json!(format!("nic{i}"));
        n["networkIP"] = json!(ip);
    }
    b["networkInterfaces"] = json!(nics);
    let mut disks = b["disks"].as_array().cloned().unwrap_or_default();
    for d in disks.iter_mut() {
        d["source"] = json!(format!("{zone_url}/disks/{name}"));
        d["deviceName"] = json!("persistent-disk-0");
        if let Some(o) = d.as_object_mut() {
            o.remove("initializeParams");
        }
    }
    b["disks"] = json!(disks);
    b
}

fn insert(s: &Shared, w: &mut World, call: &Call, fault: Option<(String, String)>) -> Answer {
    let zone = call.params.get("zone").cloned().unwrap_or_default();
    if let Some(rid) = call.query("requestId") {
        if let Some(op) = w.request_ids.get(rid).cloned() {
            return (200, operation_json(s, &op, &w.operations[&op]));
        }
    }
    if let Some(refused) = refuse_insert(s, &zone, &call.body) {
        return refused;
    }
    let name = call.body["name"].as_str().unwrap_or("").to_string();
    let key = (zone.clone(), name.clone());
    if w.instances.contains_key(&key) {
        return error_answer(
            409,
            "alreadyExists",
            &format!(
                "The resource 'projects/{}/zones/{zone}/instances/{name}' already exists",
                s.opts.project
            ),
        );
    }
    w.next += 1;
    let id = w.next;
    let instance = materialize(&s.base, &zone, id, call.body.clone(), "PROVISIONING");
    let disk_size = call.body["disks"][0]["initializeParams"]["diskSizeGb"].clone();
    w.disks.insert(
        key.clone(),
        json!({"kind": "compute#disk", "name": name, "zone": format!("{}/zones/{zone}", s.base), "sizeGb": disk_size, "users": [instance["selfLink"].clone()]}),
    );
    w.instances.insert(key, instance);
    let op = new_op(w, &zone, "insert", &name, fault);
    if let Some(rid) = call.query("requestId") {
        w.request_ids.insert(rid.to_string(), op.clone());
    }
    (200, operation_json(s, &op, &w.operations[&op]))
}

fn delete(s: &Shared, w: &mut World, call: &Call, fault: Option<(String, String)>) -> Answer {
    let zone = call.params.get("zone").cloned().unwrap_or_default();
    let name = call.params.get("instance").cloned().unwrap_or_default();
    let Some(i) = w.instances.get_mut(&(zone.clone(), name.clone())) else {
        return not_found(s, &zone, "instances", &name);
    };
    i["status"] = json!("STOPPING");
    let op = new_op(w, &zone, "delete", &name, fault);
    (200, operation_json(s, &op, &w.operations[&op]))
}

fn set_status(w: &mut World, key: &(String, String), status: &str) {
    if let Some(i) = w.instances.get_mut(key) {
        i["status"] = json!(status);
    }
}

/// `suspend`, `resume`, `stop`, `start`, with Compute Engine's rules: only a RUNNING instance
/// is suspended (and never one with GPUs), only a SUSPENDED one resumed; stopping a stopped
/// (TERMINATED) instance and starting a running one change nothing.
fn power(s: &Shared, w: &mut World, call: &Call, fault: Option<(String, String)>) -> Answer {
    let zone = call.params.get("zone").cloned().unwrap_or_default();
    let name = call.params.get("instance").cloned().unwrap_or_default();
    let verb: &'static str = match call.method.rsplit('.').next() {
        Some("suspend") => "suspend",
        Some("resume") => "resume",
        Some("stop") => "stop",
        _ => "start",
    };
    let Some(i) = w.instances.get_mut(&(zone.clone(), name.clone())) else {
        return not_found(s, &zone, "instances", &name);
    };
    let status = i["status"].as_str().unwrap_or("").to_string();
    let unsupported = |m: &str| error_answer(400, "UNSUPPORTED_OPERATION", m);
    let (next, effect) = match (verb, status.as_str()) {
        ("suspend", "RUNNING")
            if i["guestAccelerators"]
                .as_array()
                .is_some_and(|a| !a.is_empty()) =>
        {
            return unsupported("You cannot suspend an instance with guest accelerators.")
        }
        ("suspend", "RUNNING") => ("SUSPENDING", true),
        ("suspend", "SUSPENDED" | "SUSPENDING") => {
            return unsupported("You cannot suspend an already suspended instance.")
        }
        ("suspend", _) => {
            return unsupported("You cannot suspend an instance that is stopped or terminated.")
        }
        ("resume", "SUSPENDED") => ("RUNNING", true),
        ("resume", _) => {
            return error_answer(
                400,
                "resourceNotReady",
                &format!(
                    "The resource '{name}' is not ready: only a SUSPENDED instance can be resumed"
                ),
            )
        }
        ("stop", "TERMINATED") => ("TERMINATED", false),
        ("stop", _) => ("STOPPING", true),
        ("start", "TERMINATED") => ("STAGING", true),
        ("start", "SUSPENDED") => {
            return error_answer(
                400,
                "resourceNotReady",
                "A SUSPENDED instance is resumed, not started",
            )
        }
        _ => ("", false),
    };
    if effect {
        i["status"] = json!(next);
    }
    let op = new_op(w, &zone, verb, &name, fault);
    (200, operation_json(s, &op, &w.operations[&op]))
}

/// The filters the backend sends: `FIELD = "VALUE"` terms joined by AND, on `name`, `status`
/// and `labels.KEY`. Anything else is refused, so that a test notices.
fn matches(filter: &str, i: &Value) -> Result<bool, String> {
    if filter.trim().is_empty() {
        return Ok(true);
    }
    for term in filter.split(" AND ") {
        let term = term
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        let Some((field, value)) = term.split_once('=') else {
            return Err(format!("Invalid list filter expression '{filter}'."));
        };
        let (field, value) = (field.trim(), value.trim().trim_matches('"'));
        let actual = if let Some(k) = field.strip_prefix("labels.") {
            i["labels"][k].as_str()
        } else if field == "name" || field == "status" {
            i[field].as_str()
        } else {
            return Err(format!("Invalid list filter expression '{filter}'."));
        };
        if actual != Some(value) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One page of `items` by `maxResults` and `pageToken` (an offset, as the fake writes it).
fn page<T: Clone>(call: &Call, items: &[T]) -> Result<(Vec<T>, Option<String>), Answer> {
    let max = call
        .query("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(500)
        .clamp(1, 500);
    let start = match call.query("pageToken") {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| error_answer(400, "invalid", "Invalid value for field 'pageToken'"))?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items.get(start..end).unwrap_or_default().to_vec(), next))
}

/// Instances by (zone, name).
type Found = Vec<((String, String), Value)>;

fn filtered(w: &World, call: &Call, zone: Option<&str>) -> Result<Found, Answer> {
    let filter = call.query("filter").unwrap_or("");
    let mut out = Vec::new();
    for (k, i) in &w.instances {
        if zone.is_some_and(|z| z != k.0) {
            continue;
        }
        if matches(filter, i).map_err(|m| error_answer(400, "invalid", &m))? {
            out.push((k.clone(), i.clone()));
        }
    }
    Ok(out)
}

fn list_zone(s: &Shared, w: &World, call: &Call, zone: &str) -> Answer {
    let all = match filtered(w, call, Some(zone)) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (items, next) = match page(call, &all) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut v = json!({
        "kind": "compute#instanceList",
        "id": format!("projects/{}/zones/{zone}/instances", s.opts.project),
        "items": items.into_iter().map(|(_, i)| i).collect::<Vec<_>>(),
        "selfLink": format!("{}/zones/{zone}/instances", s.base),
    });
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    (200, v)
}

fn aggregated(s: &Shared, w: &World, call: &Call) -> Answer {
    let all = match filtered(w, call, None) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (items, next) = match page(call, &all) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut scopes = Map::new();
    for z in &s.opts.zones {
        let here: Vec<Value> = items
            .iter()
            .filter(|(k, _)| &k.0 == z)
            .map(|(_, i)| i.clone())
            .collect();
        let scoped = if here.is_empty() {
            json!({"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope 'zones/' on this page.", "data": [{"key": "scope", "value": format!("zones/{z}")}]}})
        } else {
            json!({"instances": here})
        };
        scopes.insert(format!("zones/{z}"), scoped);
    }
    let mut v = json!({
        "kind": "compute#instanceAggregatedList",
        "id": format!("projects/{}/aggregated/instances", s.opts.project),
        "items": scopes,
        "selfLink": format!("{}/aggregated/instances", s.base),
    });
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    (200, v)
}
