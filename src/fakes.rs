//! What the project's fake servers share (the fake GitHub, Gitea and Compute Engine): the
//! accept loop, with shutdown injected, and RFC 3339 times for their answers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

/// A fake's answer body.
pub type Body = Full<Bytes>;

/// Serves a fake forge on `listener` (HTTP/1.1), each request answered by `handle` with a clone
/// of `state`, until the returned sender is used or dropped.
pub fn serve_fake<S, H, F>(
    listener: tokio::net::TcpListener,
    state: S,
    handle: H,
) -> tokio::sync::oneshot::Sender<()>
where
    S: Clone + Send + Sync + 'static,
    H: Fn(S, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                _ = &mut rx => break,
            };
            let (state, handle) = (state.clone(), handle.clone());
            let service = hyper::service::service_fn(move |req| {
                let fut = handle(state.clone(), req);
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tx
}

/// An RFC 3339 UTC time of seconds since the epoch.
pub fn rfc3339(unix: u64) -> String {
    // Civil-from-days (Howard Hinnant), enough for timestamps in answers.
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}
