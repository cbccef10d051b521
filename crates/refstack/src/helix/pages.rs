//! The pages that mount the stream viewer, and the viewer's static files. Plain HTML/JS/CSS
//! compiled into the binary: no build step, nothing fetched from outside.
//!
//! Each page gets its boot data (sessions with their lobby ids) embedded as JSON, the way
//! Helix's frontend knows them from its session query; the token comes from the account routes
//! (`/api/v1/auth/authenticated`, `/api/v1/auth/user`), as in the real app.

use super::{store, Helix};
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const SESSION_HTML: &str = include_str!("session.html");
const SPECS_HTML: &str = include_str!("specs.html");
const VIEWER_JS: &str = include_str!("viewer.js");
const VIEWER_CSS: &str = include_str!("viewer.css");
/// More dialogs than this would not fit a screen; the driver opens two.
const MAX_DIALOGS: usize = 8;

fn boot_json(helix: &Helix, ids: &[&str]) -> String {
    let sessions: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut s = json!({"id": id, "lobby_id": helix.store.agent(id).map(|a| a.lobby_id).unwrap_or_default()});
            if helix.cfg.faults.session_id_reuse {
                s["moonlight_session_id"] = json!(reused_session_id(id));
            }
            s
        })
        .collect();
    // `<` escaped so no value can close the surrounding <script> element. No token here: the
    // page asks `/api/v1/auth/user` for it, as Helix's app does.
    json!({"sessions": sessions}).to_string().replace('<', "\\u003c")
}

/// F13: one moonlight-web `session_id` per agent session, the same for every viewer and every
/// page load, so a second viewer (or a reconnect while the old one lives) collides with the first.
pub(crate) fn reused_session_id(ses_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(ses_id.as_bytes());
    let bytes: [u8; 16] = d[..16].try_into().expect("16 bytes");
    format!("agent-{ses_id}-{}", uuid::Builder::from_random_bytes(bytes).into_uuid())
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(format!("<!doctype html><title>Not found</title><p>{what} not found</p>"))).into_response()
}

fn is_project_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub async fn session(State(helix): State<Arc<Helix>>, Path(ses_id): Path<String>) -> Response {
    if !store::is_session_id(&ses_id) {
        return not_found("Session");
    }
    let page = SESSION_HTML.replace("{{SES_ID}}", &ses_id).replace("{{BOOT}}", &boot_json(&helix, &[&ses_id]));
    ([(CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

#[derive(Deserialize)]
pub struct SpecsQuery {
    #[serde(default)]
    sessions: String,
}

pub async fn specs(State(helix): State<Arc<Helix>>, Path(project_id): Path<String>, Query(q): Query<SpecsQuery>) -> Response {
    if !is_project_id(&project_id) {
        return not_found("Project");
    }
    let ids: Vec<&str> = q.sessions.split(',').map(str::trim).filter(|s| store::is_session_id(s)).take(MAX_DIALOGS).collect();
    let page = SPECS_HTML.replace("{{PROJECT_ID}}", &project_id).replace("{{BOOT}}", &boot_json(&helix, &ids));
    ([(CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

pub async fn viewer_js() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, "no-store")], VIEWER_JS).into_response()
}

pub async fn viewer_css() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, "no-store")], VIEWER_CSS).into_response()
}
