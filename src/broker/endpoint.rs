//! The broker's HTTPS endpoint, on a listener of its own (`broker.listen`), TLS by rustls from a
//! certificate and key file. One route: `POST /v1/credential` with `Authorization: Bearer
//! <token>`, answered with the credential as the body (200), or a refusal: 409 while the
//! instance's address is not bound yet (ask again), 425 for a warm-pool instance no job took
//! yet (held up to [`HOLD`] first, then asked again at once), 403 for a wrong, used or expired token or
//! another address, 400 for a request it does not understand. The caller's address is the TCP
//! peer's; no header can claim another.

use super::{Broker, Redeemed, Refusal};

/// The request header an instance proves its identity in (a GCE identity token).
pub const IDENTITY_HEADER: &str = "x-runnerctl-identity";
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The endpoint's state: the broker and its counters.
pub struct Endpoint {
    broker: Broker,
    redeemed: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl Endpoint {
    pub fn new(broker: Broker) -> Endpoint {
        Endpoint {
            broker,
            redeemed: AtomicU64::new(0),
            refused: Default::default(),
        }
    }

    fn refuse(&self, r: Refusal, peer: SocketAddr) -> Response<Full<Bytes>> {
        let i = Refusal::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
        if r == Refusal::Pending {
            // A warm instance waiting for a job: its normal state, asked again at once.
            tracing::debug!(peer = %peer.ip(), "credential request held: no job took the instance yet");
        } else {
            tracing::warn!(peer = %peer.ip(), reason = r.as_str(), "credential request refused");
        }
        let (status, text) = match r {
            Refusal::NotBound => (StatusCode::CONFLICT, "not ready; ask again\n"),
            // 425 Too Early: a warm instance asks again at once (the request was held).
            Refusal::Pending => (
                StatusCode::from_u16(425).unwrap_or(StatusCode::CONFLICT),
                "no credential yet; ask again\n",
            ),
            Refusal::NoIdentity => (StatusCode::UNAUTHORIZED, "prove the instance's identity\n"),
            Refusal::BadRequest => (StatusCode::BAD_REQUEST, "bad request\n"),
            Refusal::Unknown | Refusal::WrongAddress | Refusal::WrongIdentity => {
                (StatusCode::FORBIDDEN, "refused\n")
            }
        };
        reply(status, text.to_string())
    }

    /// Prometheus text: redemptions by outcome.
    pub fn render_metrics(&self) -> String {
        let refused: Vec<u64> = self
            .refused
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        render(self.redeemed.load(Ordering::Relaxed), &refused)
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if req.method() != Method::POST || req.uri().path() != "/v1/credential" {
            return reply(StatusCode::NOT_FOUND, "not found\n".into());
        }
        let token = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        // A signed proof of the instance's identity (a GCE identity token), when it has one.
        let proof = req
            .headers()
            .get(IDENTITY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        // An IPv4 caller on a dual-stack socket appears as ::ffff:a.b.c.d.
        let source = peer.ip().to_canonical().to_string();
        // A warm-pool instance's credential is sealed when a job takes it: the request is held
        // (asked again every POLL) for up to HOLD, so that it arrives within a moment.
        let held_since = std::time::Instant::now();
        let mut answer = self.broker.redeem_with(token, &source, proof).await;
        while matches!(answer, Ok(Redeemed::Refused(Refusal::Pending)))
            && held_since.elapsed() < HOLD
        {
            tokio::time::sleep(POLL).await;
            answer = self.broker.redeem_with(token, &source, proof).await;
        }
        match answer {
            Ok(Redeemed::Credential { runner, credential }) => {
                self.redeemed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(runner = %runner, peer = %source, "credential redeemed");
                reply(StatusCode::OK, credential.expose().to_string())
            }
            Ok(Redeemed::Refused(r)) => self.refuse(r, peer),
            Err(e) => {
                tracing::warn!(error = %e, "credential request failed");
                reply(StatusCode::SERVICE_UNAVAILABLE, "unavailable\n".into())
            }
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// The TLS configuration from a PEM certificate chain and its private key, in files.
pub fn tls_config(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert = std::fs::read_to_string(cert_file)
        .map_err(|e| format!("broker.tls_cert_file `{}`: {e}", cert_file.display()))?;
    let key = std::fs::read_to_string(key_file)
        .map_err(|e| format!("broker.tls_key_file `{}`: {e}", key_file.display()))?;
    let pem = super::tls::Pem {
        cert,
        key: crate::config::Secret::new(key),
    };
    super::tls::server_config(
        &pem,
        &format!(
            "broker.tls_cert_file `{}` with tls_key_file `{}`",
            cert_file.display(),
            key_file.display()
        ),
    )
}

/// How long a warm instance's request is held while no credential is sealed for it.
pub const HOLD: Duration = Duration::from_secs(8);
/// How often a held request looks again.
pub const POLL: Duration = Duration::from_millis(200);

/// Connections the broker holds at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections one address (IPv6: one /64) holds at once: a VM asks for its one credential.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
/// The TLS handshake, and then the request's headers, must each arrive within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection is closed this long after it opened, whatever it is doing.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the endpoint until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    endpoint: Arc<Endpoint>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address = crate::addr_limit::PerAddress::new(MAX_CONNECTIONS_PER_ADDRESS);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            s = listener.accept() => match s {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "broker: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // One address (one VM, compromised or broken) holds at most its share: the others
        // still get their credentials. Past either cap the connection is dropped; the
        // bootstrap retries.
        let Some(address) = per_address.try_acquire(peer.ip()) else {
            tracing::debug!(peer = %peer.ip(), "broker: too many connections from one address");
            continue;
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            continue;
        };
        let (acceptor, endpoint) = (acceptor.clone(), endpoint.clone());
        tokio::spawn(async move {
            let _permits = (permit, address);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                _ => {
                    tracing::debug!(peer = %peer, "broker: TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, std::convert::Infallible>(endpoint.handle(req, peer).await) }
            });
            // One request a connection: a bootstrap asks once (and again on a new connection).
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(tls), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

/// The broker's counters where no broker runs (every outcome 0), so that the dashboard's
/// panels and the alerts read zero instead of "no data".
pub fn render_without_broker() -> String {
    render(0, &[0; Refusal::ALL.len()])
}

fn render(redeemed: u64, refused: &[u64]) -> String {
    let mut s = String::from(
        "# HELP runnerctl_broker_redemptions_total Credential requests at the broker, by outcome.\n# TYPE runnerctl_broker_redemptions_total counter\n",
    );
    s.push_str(&format!(
        "runnerctl_broker_redemptions_total{{outcome=\"redeemed\"}} {redeemed}\n"
    ));
    for (r, n) in Refusal::ALL.iter().zip(refused) {
        s.push_str(&format!(
            "runnerctl_broker_redemptions_total{{outcome=\"{}\"}} {n}\n",
            r.as_str()
        ));
    }
    s
}
