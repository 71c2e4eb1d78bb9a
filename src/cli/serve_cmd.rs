//! `runnerctl serve`.

use super::queue_cmd::shutdown_on_signals;
use super::{runtime, Context};
use crate::error::{Error, Result};
use crate::server::{self, State};
use std::sync::Arc;

pub fn serve(cx: &Context) -> Result<()> {
    let config = cx.load()?.config;
    let Some(source) = config.webhook.secret_source() else {
        return Err(Error::Usage(
            "`serve` refuses to start without a webhook secret: set `webhook.secret_env` or `webhook.secret_file`".into(),
        ));
    };
    let secret = source
        .resolve()
        .map_err(|e| Error::Usage(format!("webhook secret: {e}")))?;
    crate::config::webhook_secret_strength(&secret)
        .map_err(|why| Error::Usage(format!("webhook.secret: {why}")))?;
    let metrics_token = match config.webhook.metrics_token_source() {
        Some(s) => Some(
            s.resolve()
                .map_err(|e| Error::Usage(format!("webhook.metrics_token: {e}")))?,
        ),
        None => None,
    };
    let url = cx.redis_url(&config)?;
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
                secret,
                &config.name,
                config.runner_groups.clone(),
                &url,
                config.queue.options(),
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
