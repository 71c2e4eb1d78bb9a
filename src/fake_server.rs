//! What the project's fake servers share (the fake GitHub, Gitea and Compute Engine): the
//! accept loop, with shutdown injected, a request's query, and RFC 3339 times for their
//! answers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

/// A fake's answer body.
pub type Body = Full<Bytes>;

/// A request's query as key-value pairs (as written: the fakes' clients send no escapes).
pub fn query(uri: &hyper::Uri) -> std::collections::BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

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

pub use crate::model::rfc3339;
