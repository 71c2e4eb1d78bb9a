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
    let url = wiring::redis_url(&config)?;
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
            metrics = ?metrics.as_ref().and_then(|m| m.local_addr().ok()),
            "serving webhooks"
        );
        let state = Arc::new(
            State::new(
                wiring::webhook_scheme(&config),
                secret,
                &config.name,
                config.runner_groups.clone(),
                &url,
                wiring::queue_options(&config.queue),
            )
            .with_limits(server::Limits::from_config(&config.webhook))
            .with_metrics_token(metrics_token),
        );
        let mut stop = shutdown_on_signals();
        server::serve(main, metrics, state, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
        tracing::info!("stopped");
        Ok(())
    })
}
