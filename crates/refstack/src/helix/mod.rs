//! The stand-in Helix: the API routes the viewer and the driver use, the WebSocket proxy to
//! moonlight-web with its credential swap, and the pages that mount the stream viewer
//! (`/session/<ses_id>` and the multi-dialog `/projects/<id>/specs`).
//!
//! It talks to Wolf only through its own Wolf client ([`wolf`]) and to moonlight-web only over
//! HTTP/WebSocket, exactly as Helix does, so a fault in either shows up here as it would in
//! Helix. Wire formats and texts follow `reference/helix.md`.

mod api;
mod auth;
mod lobbies;
mod pages;
mod proxy;
mod store;
mod wolf;

pub use store::{is_session_id, new_session_id};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::Digest;
use std::path::PathBuf;
use std::sync::Arc;

/// Helix's dev default for `RUNNER_TOKEN`.
pub const DEFAULT_RUNNER_TOKEN: &str = "oh-hallo-insecure-token";

/// How Helix reaches the rest of the stack, and who may log in.
#[derive(Clone)]
pub struct HelixConfig {
    /// Wolf's API socket (`WOLF_SOCKET_PATH`).
    pub wolf_socket: PathBuf,
    /// moonlight-web's base URL, like `http://127.0.0.1:8081`.
    pub moonlight_web: String,
    /// What the proxy puts into `AuthenticateAndInit.credentials` (`MOONLIGHT_CREDENTIALS`).
    pub moonlight_credentials: Option<String>,
    pub user_email: String,
    pub user_password: String,
    /// Accepted as a token on every route (`RUNNER_TOKEN`), see [`DEFAULT_RUNNER_TOKEN`].
    pub runner_token: String,
    /// The store file: what survives a restart of the API.
    pub store: PathBuf,
    /// F13 (`session_id_reuse`) and F10 (`no_lobby_recreate`) are the API's own switches.
    pub faults: crate::faults::FaultSet,
}

impl std::fmt::Debug for HelixConfig {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelixConfig")
            .field("wolf_socket", &self.wolf_socket)
            .field("moonlight_web", &self.moonlight_web)
            .field("moonlight_credentials", &self.moonlight_credentials.as_ref().map(|_| "<redacted>"))
            .field("user_email", &self.user_email)
            .finish_non_exhaustive()
    }
}

/// What a handler can fail with; each maps to the status Helix answers with. Bodies are
/// `{"error":"<text>"}`.
#[derive(Debug, thiserror::Error)]
pub enum HelixError {
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Wolf refused or failed; the text carries Wolf's own error.
    #[error("{0}")]
    Wolf(String),
    /// moonlight-web could not be reached or answered badly.
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Internal(String),
}

impl HelixError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Wolf(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for HelixError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// Shared state of one running stand-in.
pub(crate) struct Helix {
    cfg: HelixConfig,
    wolf: wolf::Wolf,
    http: reqwest::Client,
    store: store::Store,
    user_id: String,
    /// Serialises lobby creation so two concurrent requests cannot both pass the 5-lobby limit.
    create_lock: tokio::sync::Mutex<()>,
}

impl Helix {
    fn new(cfg: HelixConfig) -> Result<Self, HelixError> {
        let http = reqwest::Client::builder().timeout(wolf::CALL_TIMEOUT).no_proxy().build().map_err(|e| HelixError::Internal(format!("HTTP client: {e}")))?;
        let store = store::Store::load(&cfg.store).map_err(HelixError::Internal)?;
        Ok(Self {
            wolf: wolf::Wolf::new(cfg.wolf_socket.clone()),
            http,
            store,
            // Stable across restarts, like a user row in Helix's database.
            user_id: uuid::Uuid::from_bytes(sha2::Sha256::digest(cfg.user_email.as_bytes())[..16].try_into().unwrap_or([0; 16])).to_string(),
            create_lock: tokio::sync::Mutex::new(()),
            cfg,
        })
    }

    fn user_name(&self) -> String {
        self.cfg.user_email.split('@').next().unwrap_or("user").to_string()
    }
}

fn router(helix: Arc<Helix>) -> Router {
    let api = Router::new()
        .route("/auth/user", get(auth::user))
        .route("/wolf/ui-app-id", get(api::ui_app_id))
        .route("/wolf/health", get(api::wolf_health))
        .route("/sessions/chat", post(api::create_session))
        .route("/external-agents", post(api::create_external_agent))
        .route("/sessions/{ses_id}", get(api::get_session))
        .route("/sessions/{ses_id}/stop-external-agent", delete(api::stop_agent))
        .route("/sessions/{ses_id}/wolf-app-state", get(api::wolf_app_state))
        .route("/external-agents/{ses_id}/auto-join-lobby", post(api::auto_join_lobby))
        .route("/external-agents/{ses_id}/clipboard", get(api::clipboard))
        .route("/moonlight/status", get(api::moonlight_status))
        .route("/admin/agent-sandboxes/debug", get(api::sandboxes_debug))
        .route("/admin/agent-sandboxes/events", get(api::sandboxes_events))
        .route_layer(axum::middleware::from_fn_with_state(helix.clone(), auth::require))
        // Added after the layer: the routes real Helix serves without a token.
        .route("/auth/login", post(auth::login))
        .route("/auth/authenticated", get(auth::authenticated))
        .route("/config", get(api::config));
    Router::new()
        .nest("/api/v1", api)
        .route("/moonlight/host/stream", get(proxy::stream))
        .route("/session/{ses_id}", get(pages::session))
        .route("/projects/{project_id}/specs", get(pages::specs))
        .route("/static/viewer.js", get(pages::viewer_js))
        .route("/static/viewer.css", get(pages::viewer_css))
        .with_state(helix)
}

/// Serve the stand-in on `listener` until the listener fails, watching Wolf for lost lobbies.
pub async fn serve(listener: tokio::net::TcpListener, cfg: HelixConfig) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), config = ?cfg, "helix stand-in listening");
    let helix = Arc::new(Helix::new(cfg).map_err(std::io::Error::other)?);
    tokio::spawn(lobbies::watch(helix.clone()));
    axum::serve(listener, router(helix)).await
}
