//! govmomi's vCenter simulator (`tests/vcsim/main.go`, built by `.ci/run` from Debian's
//! `golang-github-vmware-govmomi-dev` into the ignored `.cache/vcsim`), one process per test.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

pub const USER: &str = "runnerctl";
pub const PASSWORD: &str = "vcsim-pass";
/// The simulator's VPX inventory, as the tests use it.
pub const TEMPLATE: &str = "/DC0/vm/DC0_H0_VM0";
pub const FOLDER: &str = "/DC0/vm/runners";
pub const POOL: &str = "/DC0/host/DC0_C0/Resources";
pub const DATASTORE: &str = "/DC0/datastore/LocalDS_0";
pub const NETWORK: &str = "/DC0/network/VM Network";
pub const PORTGROUP: &str = "/DC0/network/DC0_DVPG0";

pub struct Vcsim {
    /// The SDK URL without the user and password.
    pub url: String,
    /// With `-tls`, the SHA-256 of its certificate (hex).
    pub thumbprint: Option<String>,
    child: Child,
    _stdin: ChildStdin,
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNERCTL_VCSIM") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/vcsim/vcsim")
}

impl Vcsim {
    pub fn start() -> Vcsim {
        Vcsim::with_args(&[])
    }

    /// A simulator with flags: `-idle 1s` (sessions expire), `-tls`, `-ip-delay 2s`.
    pub fn with_args(args: &[&str]) -> Vcsim {
        let mut child = Command::new(binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("RUNNERCTL_VCSIM_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the vCenter simulator must be built in .cache/vcsim (.ci/run does it)");
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line.trim().replacen(&format!("{USER}:{PASSWORD}@"), "", 1);
        assert!(url.ends_with("/sdk"), "the simulator printed {line:?}");
        let thumbprint = args.contains(&"-tls").then(|| {
            let mut t = String::new();
            out.read_line(&mut t).unwrap();
            t.trim().to_string()
        });
        Vcsim {
            url,
            thumbprint,
            child,
            _stdin: stdin,
        }
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers a request (by its SOAP body) instead of the simulator: `(status, body)`.
pub type Rule = Box<dyn Fn(&str) -> Option<(u16, String)> + Send + Sync>;

/// A proxy in front of the simulator that answers what the simulator cannot produce (a fault
/// of vCenter's, a task that never ends, an HTTP error) for requests a rule picks.
pub struct FaultProxy {
    pub url: String,
    rule: Arc<Mutex<Option<Rule>>>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sdk", listener.local_addr().unwrap());
        let rule: Arc<Mutex<Option<Rule>>> = Arc::default();
        let (r, upstream) = (rule.clone(), upstream.to_string());
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, upstream, client) = (r.clone(), upstream.clone(), client.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        forward(req, upstream.clone(), client.clone(), r.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FaultProxy { url, rule }
    }

    pub fn set(&self, rule: impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Some(Box::new(rule));
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: String,
    client: reqwest::Client,
    rule: Arc<Mutex<Option<Rule>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).to_string();
    let canned = rule.lock().unwrap().as_ref().and_then(|r| r(&text));
    if let Some((status, answer)) = canned {
        return Ok(Response::builder()
            .status(status)
            .header("content-type", "text/xml; charset=utf-8")
            .body(Full::new(Bytes::from(answer)))
            .unwrap());
    }
    let mut up = client.post(&upstream).body(body.to_vec());
    for name in ["content-type", "soapaction", "cookie"] {
        if let Some(v) = parts.headers.get(name) {
            up = up.header(name, v.as_bytes());
        }
    }
    let Ok(answer) = up.send().await else {
        return Ok(Response::builder()
            .status(502)
            .body(Full::new(Bytes::new()))
            .unwrap());
    };
    let mut out = Response::builder().status(answer.status().as_u16());
    for v in answer.headers().get_all("set-cookie") {
        out = out.header("set-cookie", v.as_bytes());
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok(out.body(Full::new(bytes)).unwrap())
}

/// A SOAP fault of that type, as vCenter answers it.
pub fn fault(name: &str, message: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{message}</faultstring><detail><{name}Fault xmlns="urn:vim25" xsi:type="{name}"></{name}Fault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
    )
}

/// An answer of a `…_Task` method: the task `task-fake`.
pub fn task_answer(method: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><{method}Response xmlns="urn:vim25"><returnval type="Task">task-fake</returnval></{method}Response></soapenv:Body></soapenv:Envelope>"#
    )
}

/// The property collector's answer about `task-fake`: running, or failed with that fault.
pub fn task_info(failed_with: Option<&str>) -> String {
    let info = match failed_with {
        None => "<propSet><name>info.state</name><val xsi:type=\"TaskInfoState\">running</val></propSet>".to_string(),
        Some(f) => format!("<propSet><name>info.state</name><val xsi:type=\"TaskInfoState\">error</val></propSet><propSet><name>info.error</name><val xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"{f}\"></fault><localizedMessage>{f}: not enough of it on the host</localizedMessage></val></propSet>"),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="Task">task-fake</obj>{info}</objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#
    )
}

/// A property collector page of VMs known as `manager`'s by their extraConfig (`vm-N` ids), as
/// the answer of `method` (`RetrievePropertiesEx` or `ContinueRetrievePropertiesEx`), with a
/// `token` to the next page or none.
pub fn vm_page(method: &str, manager: &str, ids: &[u32], token: Option<&str>) -> String {
    let objects: String = ids
        .iter()
        .map(|id| {
            let extra = |k: &str, v: &str| {
                format!("<OptionValue xsi:type=\"OptionValue\"><key>{k}</key><value xsi:type=\"xsd:string\">{v}</value></OptionValue>")
            };
            format!(
                "<objects><obj type=\"VirtualMachine\">vm-{id}</obj><propSet><name>name</name><val xsi:type=\"xsd:string\">{manager}-g-{id}</val></propSet><propSet><name>config.extraConfig</name><val xsi:type=\"ArrayOfOptionValue\">{}{}{}</val></propSet><propSet><name>runtime.powerState</name><val xsi:type=\"VirtualMachinePowerState\">poweredOn</val></propSet></objects>",
                extra("runnerctl.manager", manager),
                extra("runnerctl.group", "g"),
                extra("runnerctl.runner", &format!("{manager}-g-{id}")),
            )
        })
        .collect();
    let token = token
        .map(|t| format!("<token>{t}</token>"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Body><{method}Response xmlns="urn:vim25"><returnval>{token}{objects}</returnval></{method}Response></soapenv:Body></soapenv:Envelope>"#
    )
}
