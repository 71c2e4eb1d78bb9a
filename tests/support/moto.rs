//! moto's server (PyPI `moto[ec2,ssm,server]`, in the ignored `.cache/moto` virtual environment
//! that `.ci/run` makes), one per test binary, and a proxy in front of it that records requests
//! and injects the AWS errors moto cannot produce (throttling, capacity, permissions).
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Moto {
    pub port: u16,
    pub url: String,
    _child: Child,
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNERCTL_MOTO_PYTHON") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/moto/bin/python")
}

/// The AWS CLI of the same virtual environment (it runs the credential hook in a test).
pub fn aws_cli() -> PathBuf {
    python().with_file_name("aws")
}

static MOTO: OnceLock<Moto> = OnceLock::new();
static SERIAL: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();

/// The shared moto server, reset for the caller, which holds it until the guard drops: tests
/// of one binary take turns, each starting from an empty account.
pub async fn moto() -> (&'static Moto, tokio::sync::MutexGuard<'static, ()>) {
    let guard = SERIAL
        .get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await;
    let m = MOTO.get_or_init(Moto::start);
    m.reset();
    (m, guard)
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The server exits when this test process does: it watches its stdin, a pipe that
        // closes with us.
        let program = format!(
            "import os, sys, threading\n\
             threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
             from moto.server import main\n\
             main(['-H', '127.0.0.1', '-p', '{port}'])\n"
        );
        let child = Command::new(python())
            .args(["-c", &program])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto must be installed in .cache/moto (.ci/run does it)");
        let m = Moto {
            port,
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if m.post("/moto-api/reset").is_ok() {
                return m;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("moto's server did not start on port {port}");
    }

    fn post(&self, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        if out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200") {
            Ok(out)
        } else {
            Err(std::io::Error::other(out))
        }
    }

    /// Empties every account and region (`POST /moto-api/reset`).
    pub fn reset(&self) {
        self.post("/moto-api/reset").expect("moto reset");
    }
}

/// A request the proxy saw: the AWS action and the body (EC2's is form-encoded).
#[derive(Debug, Clone)]
pub struct Seen {
    pub action: String,
    pub body: String,
}

impl Seen {
    /// The value of a form field of an EC2 request.
    pub fn field(&self, name: &str) -> Option<String> {
        self.body.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| decode(v))
        })
    }
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(n)) => {
                out.push(n);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body of a chunked answer, unchunked.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

/// Answers a request with an AWS error instead of moto: `(status, code)`.
pub type Inject = Box<dyn Fn(&Seen) -> Option<(u16, &'static str)> + Send + Sync>;
/// Answers a request with a whole answer instead of moto: `(status, body)`.
pub type Answer = Box<dyn Fn(&Seen) -> Option<(u16, String)> + Send + Sync>;

/// A recording, error-injecting proxy in front of moto.
pub struct Proxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    inject: Arc<Mutex<Option<Inject>>>,
    answer: Arc<Mutex<Option<Answer>>>,
}

impl Proxy {
    pub async fn start(moto: &Moto) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let inject: Arc<Mutex<Option<Inject>>> = Arc::default();
        let answer: Arc<Mutex<Option<Answer>>> = Arc::default();
        let (s, i, a, port) = (seen.clone(), inject.clone(), answer.clone(), moto.port);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, i, a) = (s.clone(), i.clone(), a.clone());
                tokio::spawn(async move {
                    let svc =
                        service_fn(move |req| forward(req, port, s.clone(), i.clone(), a.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Proxy {
            url,
            seen,
            inject,
            answer,
        }
    }

    /// Answers matching requests with the given status and body instead of moto.
    pub fn answer(&self, f: impl Fn(&Seen) -> Option<(u16, String)> + Send + Sync + 'static) {
        *self.answer.lock().unwrap() = Some(Box::new(f));
    }

    /// Every request seen so far of `action` (`RunInstances`, `PutParameter`, ...).
    pub fn seen(&self, action: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.action == action)
            .cloned()
            .collect()
    }

    pub fn inject(&self, f: impl Fn(&Seen) -> Option<(u16, &'static str)> + Send + Sync + 'static) {
        *self.inject.lock().unwrap() = Some(Box::new(f));
    }

    pub fn stop_injecting(&self) {
        *self.inject.lock().unwrap() = None;
    }
}

async fn forward(
    req: Request<hyper::body::Incoming>,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    inject: Arc<Mutex<Option<Inject>>>,
    answer: Arc<Mutex<Option<Answer>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    // EC2 names the action in the form; SSM in the X-Amz-Target header.
    let action = match parts.headers.get("x-amz-target") {
        Some(t) => t
            .to_str()
            .unwrap_or("")
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_string(),
        None => Seen {
            action: String::new(),
            body: text.clone(),
        }
        .field("Action")
        .unwrap_or_default(),
    };
    let s = Seen { action, body: text };
    seen.lock().unwrap().push(s.clone());
    let answered = answer.lock().unwrap().as_ref().and_then(|f| f(&s));
    if let Some((status, body)) = answered {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        return Ok(r);
    }
    let injected = inject.lock().unwrap().as_ref().and_then(|f| f(&s));
    if let Some((status, code)) = injected {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error></Errors><RequestID>test</RequestID></Response>"
        );
        let mut r = Response::new(Full::new(Bytes::from(xml)));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        return Ok(r);
    }
    // Forward over a fresh connection, one request each.
    let mut head = format!(
        "{} {} HTTP/1.1\r\n",
        parts.method,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    for (k, v) in &parts.headers {
        if k == "connection" || k == "content-length" || k == "transfer-encoding" {
            continue;
        }
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut up = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("moto is up");
    up.write_all(head.as_bytes()).await.unwrap();
    up.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(&raw[split + 4..])
    } else {
        raw[split + 4..].to_vec()
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" || k == "connection" || k == "transfer-encoding" {
                continue;
            }
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                hyper::header::HeaderValue::from_str(v.trim()),
            ) {
                r.headers_mut().append(k, v);
            }
        }
    }
    Ok(r)
}
