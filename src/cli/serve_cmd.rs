//! `runnerctl serve`.

use super::{runtime, shutdown_on_signals, Context};
use crate::error::{Error, Result};
use crate::server::{self, State};
use crate::wiring;
use std::sync::Arc;

pub fn serve(cx: &Context) -> Result<()> {
    let config = cx.load()?.config;
    let secret = wiring::webhook_secret(&config)?;
    let metrics_token = wiring::metrics_token(&config)?;
    let target = wiring::redis_target(&config)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let bind = |addr: String| async move {
            tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| Error::Problem(format!("cannot listen on {addr}: {e}")))
        };
        let main = bind(config.webhook.listen.clone()).await?;
        let metrics = match &config.webhook.metrics_listen {
            Some(a) => Some(bind(a.clone()).await?),
            None => None,
        };
        tracing::info!(
            listen = %main.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            metrics = %metrics
                .as_ref()
                .and_then(|m| m.local_addr().ok())
                .map_or_else(|| "off".to_string(), |a| a.to_string()),
            "serving webhooks"
        );
        let state = Arc::new(
            State::new(
                wiring::webhook_scheme(&config),
                secret,
                &config.name,
                config.runner_groups.clone(),
                target.clone(),
                wiring::queue_options(&config.queue),
            )
            .with_limits(server::Limits::from_config(&config.webhook))
            .with_durability(
                config.redis.wait_replicas,
                config.redis.wait_timeout.as_std(),
            )
            .with_metrics_token(metrics_token),
        );
        // A refused password, database or certificate: serving would only answer 503.
        match crate::store::connect_to(&target).await {
            Ok(conn) => {
                crate::store::migrate_layout(&conn, &config.name).await?;
            }
            Err(e) if e.is_refused() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "Redis unreachable; deliveries are answered 503 until it is back")
            }
        }
        let stop = shutdown_on_signals();
        let state = match broker(&config, stop.clone()).await? {
            Some(endpoint) => Arc::new(
                Arc::try_unwrap(state)
                    .unwrap_or_else(|_| unreachable!("not shared yet"))
                    .with_broker(endpoint),
            ),
            None => state,
        };
        let mut stop_serving = stop.clone();
        server::serve(main, metrics, state, async move {
            let _ = stop_serving.wait_for(|s| *s).await;
        })
        .await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Starts the credential broker's endpoint on its own listener when the configuration has one.
/// Redis down at start does not hold the webhooks up: the broker then connects in the
/// background (instances retry meanwhile) and its counters are not shown.
async fn broker(
    config: &crate::config::Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Arc<crate::broker::endpoint::Endpoint>>> {
    if !config.broker.enabled() {
        return Ok(None);
    }
    // What cannot work is refused now, not after Redis is back.
    wiring::broker_vault(config)?;
    if let (Some(cert), Some(key)) = (&config.broker.tls_cert_file, &config.broker.tls_key_file) {
        crate::broker::endpoint::tls_config(cert, key).map_err(Error::Usage)?;
    }
    let listen = config.broker.listen().to_string();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Error::Problem(format!("broker.listen: cannot listen on {listen}: {e}")))?;
    tracing::info!(listen = %listen, "serving the credential broker");
    if let Ok(conn) = wiring::connect(config).await {
        let endpoint = start_broker(config, &conn, listener, stop).await?;
        return Ok(Some(endpoint));
    }
    let config = config.clone();
    tokio::spawn(async move {
        loop {
            match wiring::connect(&config).await {
                Ok(conn) => {
                    if let Err(e) = start_broker(&config, &conn, listener, stop).await {
                        tracing::error!(error = %e, "the credential broker cannot start");
                    }
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "the credential broker waits for Redis"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if *stop.borrow() {
                return;
            }
        }
    });
    Ok(None)
}

async fn start_broker(
    config: &crate::config::Config,
    conn: &crate::store::Conn,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Arc<crate::broker::endpoint::Endpoint>> {
    let Some(wiring::BrokerServer { tls, endpoint }) =
        wiring::broker_endpoint(config, conn).await?
    else {
        return Err(Error::Usage("broker: not configured".into()));
    };
    tokio::spawn(crate::broker::endpoint::serve(
        listener,
        tls,
        endpoint.clone(),
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    ));
    Ok(endpoint)
}
