//! The Moonlight host side of the stand-in Wolf: pairing, `serverinfo`, `launch`, `resume`,
//! `cancel`. The client certificate identifies the client, as with Wolf's TLS client auth; here
//! it travels in the `X-Client-Cert` header (base64 DER) over loopback HTTP.
//!
//! Wolf's HTTPS server does one thing at a time: a handler that blocks holds the server, and
//! the connections that arrive meanwhile are accepted by the kernel but never read — not even
//! their TLS handshake. The stand-in keeps that shape with one gate ([`Gate`]): every handler
//! holds it while it runs, and every new connection passes it before it is read. So a handler
//! that never returns (F15) leaves the port accepting TCP and answering nothing, as Wolf's did.

use super::state::WolfState;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

pub const CERT_HEADER: &str = "x-client-cert";

#[derive(Clone)]
struct Ctx {
    state: Arc<WolfState>,
    stream_port: u16,
}

/// The HTTPS server's one worker: held by a running handler, passed by each new connection.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// The listener behind the [`Gate`]: a connection the kernel accepted is handed to the server
/// only once the worker is free.
struct GatedListener {
    inner: tokio::net::TcpListener,
    gate: Gate,
}

impl axum::serve::Listener for GatedListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = axum::serve::Listener::accept(&mut self.inner).await;
        drop(self.gate.lock().await);
        accepted
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The client's address (axum's `ConnectInfo` for the gated listener).
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GatedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, GatedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

pub async fn serve(listener: tokio::net::TcpListener, state: Arc<WolfState>, stream_port: u16) -> std::io::Result<()> {
    let gate = Gate::default();
    let app = Router::new()
        .route("/pair", post(pair))
        .route("/serverinfo", get(serverinfo))
        .route("/launch", get(launch))
        .route("/resume", get(resume))
        .route("/cancel", get(cancel))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), one_at_a_time))
        .layer(axum::middleware::from_fn_with_state(state.clone(), slow_tls))
        .with_state(Ctx { state, stream_port });
    axum::serve(GatedListener { inner: listener, gate }, app.into_make_service_with_connect_info::<Peer>()).await
}

/// Every handler runs holding the [`Gate`], to its end: Wolf's handler thread does not stop
/// when its client gives up, so a client's dropped request must not free the worker either.
async fn one_at_a_time(State(gate): State<Gate>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let worker = gate.lock_owned().await;
    let handler = tokio::spawn(async move {
        let _worker = worker;
        next.run(req).await
    });
    handler.await.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &format!("handler failed: {e}")))
}

/// F12: the connection is accepted, then nothing comes back for a while — what a client sees of
/// a TLS handshake Wolf does not get round to under load.
async fn slow_tls(State(state): State<Arc<WolfState>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if let Some(delay) = state.faults.now().slow_tls {
        tokio::time::sleep(delay).await;
    }
    next.run(req).await
}

fn error(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"error": text}))).into_response()
}

/// The client's certificate (DER), or the status and text it is refused with.
fn cert(headers: &HeaderMap) -> Result<Vec<u8>, (StatusCode, &'static str)> {
    let b64 = headers.get(CERT_HEADER).and_then(|v| v.to_str().ok()).ok_or((StatusCode::UNAUTHORIZED, "no client certificate"))?;
    base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| (StatusCode::BAD_REQUEST, "bad client certificate"))
}

async fn pair(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    match cert(&headers) {
        Ok(der) => Json(json!({"paired": true, "client_id": ctx.state.pair(der).to_string()})).into_response(),
        Err((status, text)) => error(status, text),
    }
}

async fn serverinfo(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let der = match cert(&headers) {
        Ok(d) => d,
        Err((status, text)) => return error(status, text),
    };
    let current = ctx.state.identify(&der).and_then(|c| ctx.state.session(c.client_id));
    Json(json!({
        "hostname": "Wolf",
        "currentgame": if current.is_some() { ctx.state.app_id.clone() } else { "0".into() },
        "state": if current.is_some() { "SUNSHINE_SERVER_BUSY" } else { "SUNSHINE_SERVER_FREE" },
        "PairStatus": if ctx.state.identify(&der).is_some() { 1 } else { 0 },
    }))
    .into_response()
}

#[derive(Deserialize)]
struct LaunchQuery {
    #[serde(default)]
    uniqueid: String,
    #[serde(default = "default_w")]
    width: u32,
    #[serde(default = "default_h")]
    height: u32,
    #[serde(default = "default_fps")]
    fps: u32,
}
fn default_w() -> u32 {
    320
}
fn default_h() -> u32 {
    180
}
fn default_fps() -> u32 {
    30
}

async fn launch(State(ctx): State<Ctx>, ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap, Query(q): Query<LaunchQuery>) -> Response {
    let der = match cert(&headers) {
        Ok(d) => d,
        Err((status, text)) => return error(status, text),
    };
    let Some(client) = ctx.state.identify(&der) else { return error(StatusCode::UNAUTHORIZED, "client not paired") };
    match ctx.state.launch(&client, &q.uniqueid, &peer.ip().to_string(), q.width, q.height, q.fps) {
        Some(s) => Json(json!({"session_id": s.id.to_string(), "stream_port": ctx.stream_port})).into_response(),
        None => error(StatusCode::CONFLICT, "AlreadyStreaming"),
    }
}

async fn resume(State(ctx): State<Ctx>, ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap) -> Response {
    let der = match cert(&headers) {
        Ok(d) => d,
        Err((status, text)) => return error(status, text),
    };
    if ctx.state.identify(&der).is_none() {
        return error(StatusCode::UNAUTHORIZED, "client not paired");
    }
    match ctx.state.session_of_certificate(&der) {
        Some(s) => Json(json!({"session_id": s.id.to_string(), "stream_port": ctx.stream_port})).into_response(),
        None => unregistered(&ctx, peer),
    }
}

async fn cancel(State(ctx): State<Ctx>, ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap) -> Response {
    let der = match cert(&headers) {
        Ok(d) => d,
        Err((status, text)) => return error(status, text),
    };
    // A cancel waits for a teardown of the session that is under way (its control peer left a
    // moment before): with F15 that teardown's thread died holding the lock, and this wait —
    // holding the server's gate — never ends.
    let _teardown = ctx.state.teardown_lock.lock().await;
    match ctx.state.session_of_certificate(&der) {
        // F7: the cancel is acknowledged and nothing stops.
        Some(_) if ctx.state.faults.now().orphan_wolf_session => Json(json!({"cancel": 1})).into_response(),
        Some(s) => {
            ctx.state.stop_session(s.id);
            Json(json!({"cancel": 1})).into_response()
        }
        // Wolf logs the resume text for /cancel too (a copy-paste in Wolf).
        None => unregistered(&ctx, peer),
    }
}

fn unregistered(ctx: &Ctx, peer: SocketAddr) -> Response {
    ctx.state.log.warn(format!("[HTTPS] Received resume event from an unregistered session, ip: {}", peer.ip()));
    error(StatusCode::BAD_REQUEST, "unregistered session")
}
