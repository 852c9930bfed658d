//! The admin HTTP API, on 127.0.0.1:9470 unless `admin.listen` says otherwise:
//! `/metrics` (Prometheus text), `/healthz` (the process answers), `/readyz` (every enabled
//! component has started) and `/status` (JSON, see [`StatusReport`]).
//!
//! A change of `admin.listen` on reload moves the listener: the new address is bound before
//! the old one is closed, and a failed bind keeps the old one serving.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod report;
mod runtime;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dockline_model::{LiveHealth, LiveMembers, LiveOwners, Published};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use report::*;
pub use runtime::{
    BgpPeerRecord, ComponentState, ConfigHistory, MoreMetrics, MoreStatus, ReloadFailure, Runtime,
};

/// The daemon's live state, each part with one writer: the snapshot (the supervisor),
/// endpoint health (health), members (cluster), VIP owners (l2), the component record (the
/// supervisor) and the metrics recorder. Every component is bound with it; the admin API
/// shows it.
#[derive(Debug, Clone)]
pub struct LiveState {
    /// The snapshot in force, and its changes (which move the listener).
    pub published: Arc<Published>,
    /// Endpoint health verdicts, from the health checker.
    pub health: Arc<LiveHealth>,
    /// Cluster members, from the cluster component.
    pub members: Arc<LiveMembers>,
    /// Owners of the L2-announced VIPs, from the L2 announcer.
    pub owners: Arc<LiveOwners>,
    /// The components, their states and the metrics each keeps outside the recorder.
    pub runtime: Arc<Runtime>,
    /// The Prometheus recorder's handle, rendered by `/metrics`.
    pub metrics: PrometheusHandle,
}

/// The admin routes (`/metrics`, `/healthz`, `/readyz`, `/status`) over `state`.
pub fn router(state: LiveState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(state)
}

/// Serves on `listener` until `shutdown`, following `admin.listen` across reloads.
pub async fn serve(mut listener: TcpListener, state: LiveState, shutdown: CancellationToken) {
    let mut changes = state.published.subscribe();
    loop {
        let bound = listener.local_addr().ok();
        let moved = CancellationToken::new();
        let server = axum::serve(listener, router(state.clone()))
            .with_graceful_shutdown({
                let (shutdown, moved) = (shutdown.clone(), moved.clone());
                async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = moved.cancelled() => {}
                    }
                }
            })
            .into_future();
        tokio::pin!(server);
        // Wait for the server to end or for a config that moves the listener.
        let next = loop {
            tokio::select! {
                result = &mut server => {
                    if let Err(error) = result {
                        tracing::error!(%error, "admin server failed");
                    }
                    return;
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The publisher is gone: the daemon is stopping.
                        if let Err(error) = (&mut server).await {
                            tracing::error!(%error, "admin server failed");
                        }
                        return;
                    }
                    let wanted = state.published.load().config.admin.listen;
                    if Some(wanted) == bound {
                        continue;
                    }
                    match TcpListener::bind(wanted).await {
                        Ok(next) => break next,
                        Err(error) => tracing::error!(
                            listen = %wanted, %error,
                            "admin: cannot move the listener; still serving on the old address"
                        ),
                    }
                }
            }
        };
        moved.cancel();
        if let Err(error) = server.await {
            tracing::error!(%error, "admin server failed");
        }
        tracing::info!(listen = ?next.local_addr().ok(), "admin listener moved");
        listener = next;
    }
}

/// Binds the admin listener, naming the address when that fails.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("admin: cannot listen on {addr}: {e}")))
}

async fn metrics(State(state): State<LiveState>) -> Response {
    let mut text = state.metrics.render();
    for MoreMetrics(render) in state.runtime.more_metrics() {
        render(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn readyz(State(state): State<LiveState>) -> Response {
    if state.runtime.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let waiting: Vec<String> = state
            .runtime
            .components()
            .into_iter()
            .filter(|(_, s)| *s != ComponentState::Running)
            .map(|(name, s)| format!("{name}: {}\n", s.name()))
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}", waiting.concat()),
        )
            .into_response()
    }
}

async fn status(State(state): State<LiveState>) -> Response {
    let snapshot = state.published.load();
    let report = StatusReport::build(&snapshot, &state.health.load(), &state.runtime).with_cluster(
        &state.members.load(),
        &state.owners.load(),
        &snapshot.shared_digest,
    );
    axum::Json(report).into_response()
}
