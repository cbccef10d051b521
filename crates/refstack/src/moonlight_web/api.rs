//! moonlight-web's HTTP routes: Bearer auth, `/api/sessions`, `/api/admin/status`, and the
//! stream WebSocket (which authenticates by its first message instead).

use super::Mlw;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// moonlight-web limits WebSocket frames to 64 KiB.
const MAX_FRAME: usize = 64 * 1024;

pub async fn serve(listener: tokio::net::TcpListener, mlw: Arc<Mlw>) -> std::io::Result<()> {
    let app =
        Router::new().route("/api/host/stream", get(stream)).route("/api/sessions", get(sessions)).route("/api/admin/status", get(status)).with_state(mlw);
    axum::serve(listener, app).await
}

async fn stream(State(mlw): State<Arc<Mlw>>, ws: WebSocketUpgrade) -> Response {
    ws.max_frame_size(MAX_FRAME).max_message_size(MAX_FRAME).on_upgrade(move |socket| super::stream::handle(socket, mlw))
}

/// The status a request without the right credentials gets.
fn authorize(mlw: &Mlw, headers: &HeaderMap) -> Result<(), StatusCode> {
    let Some(expected) = &mlw.config.credentials else { return Ok(()) };
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(StatusCode::UNAUTHORIZED);
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(StatusCode::BAD_REQUEST);
    };
    if scheme == "Bearer" && token == expected {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

async fn sessions(State(mlw): State<Arc<Mlw>>, headers: HeaderMap) -> Response {
    if let Err(status) = authorize(&mlw, &headers) {
        return status.into_response();
    }
    Json(json!({"sessions": mlw.sessions.list()})).into_response()
}

async fn status(State(mlw): State<Arc<Mlw>>, headers: HeaderMap) -> Response {
    if let Err(status) = authorize(&mlw, &headers) {
        return status.into_response();
    }
    let sessions = mlw.sessions.list();
    let zombies = sessions.iter().filter(|s| s["streamer_alive"] == false).count();
    if zombies > 0 {
        mlw.log.warn(format!("[Admin Status] {zombies} zombie sessions detected (dead process but not cleaned up)"));
    }
    let clients: Vec<_> = mlw.certs.clients().into_iter().map(|c| json!({"client_unique_id": c, "has_certificate": true})).collect();
    Json(json!({
        "total_clients": clients.len(),
        "total_sessions": sessions.len(),
        "active_websockets": sessions.iter().filter(|s| s["has_websocket"] == true).count(),
        "clients": clients,
        "sessions": sessions,
    }))
    .into_response()
}
