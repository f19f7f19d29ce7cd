//! Operating the daemon: systemd notifications, health, Prometheus metrics and their HTTP
//! listener.

pub mod health;
pub mod metrics;
pub mod notify;
pub mod systemd;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use health::{Health, Role};

/// What the listener needs: the database, the live health, and the client's quota figures.
#[derive(Clone)]
pub struct OpsState {
    pub store: crate::store::Store,
    pub health: Arc<Health>,
    pub client: Arc<crate::ecs::EcsClient>,
    pub schedule: crate::domain::Schedule,
    /// "Now" for states, next windows and health (the system clock in the daemon).
    pub clock: Arc<dyn crate::engine::Clock>,
}

/// Serves `/metrics` and `/healthz` until the returned handle is aborted.
pub async fn serve(
    listen: SocketAddr,
    state: OpsState,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(health_handler))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok((addr, task))
}

async fn metrics_handler(State(s): State<OpsState>) -> Response {
    match metrics::render(&s).await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the database: {e}\n"),
        )
            .into_response(),
    }
}

async fn health_handler(State(s): State<OpsState>) -> Response {
    let report = s.health.report(&s.store, &s.schedule, s.clock.now()).await;
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}
