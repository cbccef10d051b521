//! The `/api/v1` handlers: agent sessions and their Wolf lobbies, the lobby auto-join, and the
//! read-only views (config, Wolf UI app id, moonlight-web status, sandbox debug, Wolf health).
//!
//! Why one file of over 400 lines: it is under 400 lines without its tests.

use super::store::{self, AgentSession};
use super::wolf::WolfCallError;
use super::{Helix, HelixError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Helix's GPU guard: it refuses a sixth concurrent lobby.
const MAX_LOBBIES: usize = 5;
/// How often Helix asks Wolf for an agent's lobby before it gives up: a lobby setup Wolf refused
/// is tried again (a desktop container that did not come up often does the next time).
const LOBBY_CREATE_ATTEMPTS: usize = 3;
const WOLF_UI_TITLE: &str = "Wolf UI";
/// Helix's exact words when the browser's Wolf-UI session is not (yet) in Wolf's list.
pub const UI_SESSION_NOT_FOUND: &str = "failed to join lobby: Wolf UI session not found - client may not have connected yet";

/// A Wolf failure, keeping Wolf's own error text when Wolf refused.
fn wolf_err(context: &str, e: WolfCallError) -> HelixError {
    match e {
        WolfCallError::Refused { error, .. } => HelixError::Wolf(format!("{context}: {error}")),
        other => HelixError::Wolf(format!("{context}: {other}")),
    }
}

fn known_agent(helix: &Helix, ses_id: &str) -> Result<AgentSession, HelixError> {
    if !store::is_session_id(ses_id) {
        return Err(HelixError::NotFound(format!("session {ses_id} not found")));
    }
    helix.store.agent(ses_id).ok_or_else(|| HelixError::NotFound(format!("session {ses_id} not found")))
}

pub async fn config() -> Json<Value> {
    Json(json!({"moonlight_web_mode": "single", "streaming_bitrate_mbps": 40}))
}

/// `GET /external-agents/<ses>/clipboard`: the desktop's clipboard, polled by every connected
/// viewer every 2 s. The stand-in's desktops never copy anything.
pub async fn clipboard(State(helix): State<Arc<Helix>>, Path(ses_id): Path<String>) -> Result<Json<Value>, HelixError> {
    known_agent(&helix, &ses_id)?;
    Ok(Json(json!({"type": "text", "data": ""})))
}

async fn wolf_ui_app_id(helix: &Helix) -> Result<String, HelixError> {
    let apps = helix.wolf.apps().await.map_err(|e| wolf_err("failed to list Wolf apps", e))?;
    apps.iter()
        .find(|a| a.get("title").and_then(Value::as_str) == Some(WOLF_UI_TITLE))
        .and_then(|a| match a.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| HelixError::Wolf("Wolf UI app not found in Wolf's app list".into()))
}

pub async fn ui_app_id(State(helix): State<Arc<Helix>>) -> Result<Json<Value>, HelixError> {
    Ok(Json(json!({"wolf_ui_app_id": wolf_ui_app_id(&helix).await?})))
}

pub async fn wolf_health(State(helix): State<Arc<Helix>>) -> Result<Json<Value>, HelixError> {
    helix.wolf.health().await.map(Json).map_err(|e| wolf_err("failed to get Wolf health", e))
}

/// The create-lobby body Helix sends for a zed_external agent (wolf.md).
pub(super) fn lobby_request(ses_id: &str, pin: [u8; 4]) -> Value {
    let bare = ses_id.trim_start_matches("ses_");
    let last4 = &ses_id[ses_id.len().saturating_sub(4)..];
    json!({
        "profile_id": "helix-sessions",
        "name": format!("Agent {last4}"),
        "multi_user": true,
        "stop_when_everyone_leaves": false,
        "pin": pin,
        "video_settings": {
            "width": 3840, "height": 2160, "refresh_rate": 60,
            "wayland_render_node": "/dev/dri/renderD128",
            "runner_render_node": "/dev/dri/renderD128",
            "video_producer_buffer_caps": "video/x-raw(memory:CUDAMemory)",
        },
        "audio_settings": {"channel_count": 2},
        "runner_state_folder": format!("/wolf-state/agent-{ses_id}"),
        "runner": {
            "type": "docker",
            "name": format!("zed-external-{bare}"),
            "image": "helix-sway:latest",
            "env": [
                format!("HELIX_SESSION_ID={ses_id}"),
                "HELIX_API_URL=http://api:8080",
                "GOW_REQUIRED_DEVICES=/dev/input/* /dev/dri/* /dev/nvidia*",
                "XDG_RUNTIME_DIR=/tmp/sockets",
            ],
            "mounts": [format!("/opt/helix/workspaces/{ses_id}:/home/retro/work:rw")],
            "devices": [],
            "ports": [],
        },
    })
}

/// The session name the UI derives from the first message, as in Helix's chat request.
fn session_name(body: &Value) -> String {
    body.pointer("/messages/0/content/parts/0")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(80).collect::<String>())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "New Agent Session".into())
}

/// Start an agent's desktop: a Wolf lobby under Helix's limit, remembered in the agent map.
async fn start_agent(helix: &Helix, name: String) -> Result<AgentSession, HelixError> {
    let _guard = helix.create_lock.lock().await;
    let active = helix.wolf.lobbies().await.map_err(|e| wolf_err("failed to list Wolf lobbies", e))?.len();
    if active >= MAX_LOBBIES {
        tracing::warn!(active, "refusing a new agent: lobby limit");
        return Err(HelixError::Internal(format!(
            "GPU resource limit reached ({active}/{MAX_LOBBIES} lobbies active). Please stop an existing session before starting a new one."
        )));
    }
    let ses_id = store::new_session_id();
    let pin = store::new_pin();
    let request = lobby_request(&ses_id, pin);
    let lobby_id = create_lobby(helix, &request).await.map_err(|e| wolf_err("failed to create Wolf lobby", e))?;
    let agent = AgentSession {
        id: ses_id.clone(),
        name,
        lobby_id: lobby_id.clone(),
        pin,
        container_name: request["runner"]["name"].as_str().unwrap_or_default().to_string(),
        created: chrono::Utc::now().to_rfc3339(),
    };
    tracing::info!(ses_id = %ses_id, lobby_id = %lobby_id, "agent session started");
    helix.store.insert_agent(agent.clone());
    Ok(agent)
}

/// Ask Wolf for a lobby; a refused setup is tried again, up to [`LOBBY_CREATE_ATTEMPTS`] in all
/// (each attempt has the Wolf client's own deadline). Wolf's last answer is the error.
async fn create_lobby(helix: &Helix, request: &Value) -> Result<String, WolfCallError> {
    let mut attempt = 1;
    loop {
        match helix.wolf.create_lobby(request).await {
            Err(WolfCallError::Refused { error, .. }) if attempt < LOBBY_CREATE_ATTEMPTS => {
                tracing::warn!(attempt, %error, "Wolf refused a lobby setup; trying again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

pub async fn create_session(State(helix): State<Arc<Helix>>, Json(body): Json<Value>) -> Result<Json<Value>, HelixError> {
    let agent_type = body.get("agent_type").and_then(Value::as_str).unwrap_or("");
    if agent_type != "zed_external" {
        return Err(HelixError::BadRequest(format!("the stand-in only starts zed_external agents, not {agent_type:?}")));
    }
    let agent = start_agent(&helix, session_name(&body)).await?;
    Ok(Json(session_json(&helix, &agent)))
}

/// `GET /sessions/<ses_id>`: the session as Helix stores it, with the lobby it believes in.
pub async fn get_session(State(helix): State<Arc<Helix>>, Path(ses_id): Path<String>) -> Result<Json<Value>, HelixError> {
    Ok(Json(session_json(&helix, &known_agent(&helix, &ses_id)?)))
}

fn session_json(helix: &Helix, agent: &AgentSession) -> Value {
    json!({
        "id": agent.id,
        "name": agent.name,
        "created": agent.created,
        "updated": agent.created,
        "owner": helix.user_id,
        "owner_type": "user",
        "type": "text",
        "mode": "inference",
        "model_name": "external_agent",
        "config": {
            "agent_type": "zed_external",
            "external_agent_config": {"resolution": "4k", "desktop_type": "sway"},
            "wolf_lobby_id": agent.lobby_id,
            "wolf_lobby_pin": agent.pin_string(),
            "external_agent_status": "running",
        },
        "interactions": [],
    })
}

/// `POST /external-agents`: the other way to start an agent. Its `session_id` is a `req_` id
/// that names the request, not the session, so it cannot stop the agent (the Nov 10 trap).
pub async fn create_external_agent(State(helix): State<Arc<Helix>>, Json(body): Json<Value>) -> Result<Json<Value>, HelixError> {
    let input = body.get("input").and_then(Value::as_str).unwrap_or("");
    if input.trim().is_empty() {
        return Err(HelixError::BadRequest("input is required".into()));
    }
    let agent = start_agent(&helix, input.chars().take(80).collect()).await?;
    let request_id = format!("req_{}", &store::new_session_id()["ses_".len()..]);
    Ok(Json(json!({
        "session_id": request_id,
        "wolf_lobby_id": agent.lobby_id,
        "wolf_lobby_pin": agent.pin_string(),
        "container_name": agent.container_name,
        "status": "running",
    })))
}

pub async fn stop_agent(State(helix): State<Arc<Helix>>, Path(ses_id): Path<String>) -> Result<Json<Value>, HelixError> {
    let agent = known_agent(&helix, &ses_id)?;
    // The trailing dash keeps ses_ab from matching ses_abc's clients.
    let prefix = format!("helix-agent-{ses_id}-");
    let sessions = helix.wolf.sessions().await.map_err(|e| wolf_err("failed to list Wolf sessions", e))?;
    let mut stopped = Vec::new();
    for s in sessions.iter().filter(|s| s.client_unique_id.starts_with(&prefix)) {
        match helix.wolf.stop_session(&s.client_id).await {
            Ok(()) => stopped.push(s.client_id.clone()),
            // Helix goes on to the lobby whatever happened to one client.
            Err(e) => tracing::warn!(ses_id = %ses_id, wolf_session = %s.client_id, "stopping Wolf session failed: {e}"),
        }
    }
    // Held until the agent is gone from the store, so the lobby watch cannot take the stopped
    // lobby for a lost one and recreate it.
    let _no_recreate = helix.create_lock.lock().await;
    match helix.wolf.stop_lobby(&agent.lobby_id, &agent.pin).await {
        Ok(()) => {}
        // Wolf already forgot the lobby (a restart): the agent is stopped as far as Wolf goes.
        Err(WolfCallError::Refused { error, .. }) if error == "Invalid lobby ID" => {
            tracing::warn!(ses_id = %ses_id, lobby_id = %agent.lobby_id, "lobby was already gone")
        }
        Err(e) => return Err(wolf_err("failed to stop lobby", e)),
    }
    helix.store.remove_agent(&ses_id);
    tracing::info!(ses_id = %ses_id, lobby_id = %agent.lobby_id, stopped = stopped.len(), "agent session stopped");
    Ok(Json(json!({
        "success": true,
        "session_id": ses_id,
        "lobby_id": agent.lobby_id,
        "stopped_wolf_sessions": stopped,
        "message": "External agent stopped",
    })))
}

pub async fn auto_join_lobby(State(helix): State<Arc<Helix>>, Path(ses_id): Path<String>) -> Result<Json<Value>, HelixError> {
    let agent = super::lobbies::ensure(&helix, known_agent(&helix, &ses_id)?).await?;
    let ui_app = wolf_ui_app_id(&helix).await?;
    let sessions = helix.wolf.sessions().await.map_err(|e| wolf_err("failed to join lobby", e))?;
    // Helix's rule, including its weakness: the *last* matching session wins, whichever
    // browser it belongs to, and the prefix has no trailing dash.
    let prefix = format!("helix-agent-{ses_id}");
    let Some(session) = sessions.iter().rfind(|s| s.app_id == ui_app && s.client_unique_id.starts_with(&prefix)) else {
        tracing::warn!(ses_id = %ses_id, "auto-join: no Wolf UI session yet");
        return Err(HelixError::Wolf(UI_SESSION_NOT_FOUND.into()));
    };
    helix.wolf.join_lobby(&agent.lobby_id, &session.client_id, &agent.pin).await.map_err(|e| wolf_err("failed to join lobby", e))?;
    tracing::info!(ses_id = %ses_id, lobby_id = %agent.lobby_id, wolf_session = %session.client_id, "auto-joined lobby");
    Ok(Json(json!({"success": true, "lobby_id": agent.lobby_id, "message": "Successfully auto-joined lobby"})))
}

pub async fn wolf_app_state(State(helix): State<Arc<Helix>>, Path(ses_id): Path<String>) -> Result<Json<Value>, HelixError> {
    let lobbies = helix.wolf.lobbies().await.map_err(|e| wolf_err("failed to list Wolf lobbies", e))?;
    // Lobbies mode has no resumable state: the lobby either runs or is gone.
    Ok(Json(match lobbies.iter().find(|l| l.helix_session() == Some(ses_id.as_str())) {
        Some(l) => json!({"state": "running", "session_id": ses_id, "lobby_id": l.id}),
        None => json!({"state": "absent", "session_id": ses_id}),
    }))
}

/// moonlight-web's `/api/admin/status`, body as text, or why it could not be had.
async fn mlw_admin_status(helix: &Helix) -> Result<(u16, Option<String>, String), HelixError> {
    let url = format!("{}/api/admin/status", helix.cfg.moonlight_web.trim_end_matches('/'));
    let mut req = helix.http.get(&url);
    if let Some(c) = &helix.cfg.moonlight_credentials {
        req = req.bearer_auth(c);
    }
    let resp = req.send().await.map_err(|e| HelixError::Upstream(format!("moonlight-web unreachable at {url}: {e}")))?;
    let status = resp.status().as_u16();
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.text().await.map_err(|e| HelixError::Upstream(format!("moonlight-web reply cut short: {e}")))?;
    Ok((status, content_type, body))
}

pub async fn moonlight_status(State(helix): State<Arc<Helix>>) -> Result<Response, HelixError> {
    let (status, content_type, body) = mlw_admin_status(&helix).await?;
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let ct = content_type.unwrap_or_else(|| "application/json".into());
    if let Ok(v) = ct.parse() {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// Replace Wolf's stream keys wherever they occur: they must never leave the stand-in.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if k == "aes_key" || k == "aes_iv" {
                    *val = Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

pub async fn sandboxes_debug(State(helix): State<Arc<Helix>>) -> Json<Value> {
    let (memory, lobbies, sessions, mlw) =
        tokio::join!(helix.wolf.get("/api/v1/system/memory"), helix.wolf.get("/api/v1/lobbies"), helix.wolf.get("/api/v1/sessions"), mlw_admin_status(&helix),);
    // One view even when a part is down: that is when the dashboard matters most.
    let mut errors = Vec::new();
    let mut take = |r: Result<Value, WolfCallError>, what: &str| -> Value {
        r.map(|mut v| {
            if let Some(m) = v.as_object_mut() {
                m.remove("success");
            }
            v
        })
        .unwrap_or_else(|e| {
            errors.push(format!("{what}: {e}"));
            Value::Null
        })
    };
    let memory = take(memory, "wolf memory");
    let lobbies = take(lobbies, "wolf lobbies").get("lobbies").cloned().unwrap_or(json!([]));
    let sessions = take(sessions, "wolf sessions").get("sessions").cloned().unwrap_or(json!([]));
    let mlw = match mlw {
        Ok((200, _, body)) => serde_json::from_str::<Value>(&body).unwrap_or_else(|e| {
            errors.push(format!("moonlight-web status: malformed JSON: {e}"));
            Value::Null
        }),
        Ok((status, _, body)) => {
            errors.push(format!("moonlight-web status: HTTP {status}: {}", body.chars().take(200).collect::<String>()));
            Value::Null
        }
        Err(e) => {
            errors.push(format!("moonlight-web status: {e}"));
            Value::Null
        }
    };
    let agents: Vec<Value> = helix
        .store
        .agents()
        .iter()
        .map(|a| json!({"session_id": a.id, "lobby_id": a.lobby_id, "container_name": a.container_name, "created": a.created}))
        .collect();
    let mut out = json!({
        "wolf_mode": "lobbies",
        "memory": memory,
        "lobbies": lobbies,
        "sessions": sessions,
        "moonlight_clients": mlw.get("clients").cloned().unwrap_or(json!([])),
        "moonlight_sessions": mlw.get("sessions").cloned().unwrap_or(json!([])),
        "agents": agents,
        "errors": errors,
    });
    redact(&mut out);
    Json(out)
}

pub async fn sandboxes_events(State(helix): State<Arc<Helix>>) -> Result<impl IntoResponse, HelixError> {
    let rx = helix.wolf.events().await.map_err(|e| wolf_err("failed to subscribe to Wolf events", e))?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let ev = rx.recv().await?;
        let data = match serde_json::from_str::<Value>(&ev.data) {
            Ok(mut v) => {
                redact(&mut v);
                v.to_string()
            }
            // Unparseable and possibly secret-bearing: pass on nothing of it.
            Err(_) if ev.data.contains("aes_") => "{}".to_string(),
            Err(_) => ev.data,
        };
        Some((Ok::<_, Infallible>(Event::default().event(ev.name).data(data)), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keepalive")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lobby_request_matches_what_helix_sends() {
        let ses = "ses_01k9g7cx800pd7p3m5sw9r2301";
        let r = lobby_request(ses, [1, 2, 3, 4]);
        assert_eq!(r["name"], "Agent 2301");
        assert_eq!(r["profile_id"], "helix-sessions");
        assert_eq!(r["multi_user"], true);
        assert_eq!(r["stop_when_everyone_leaves"], false);
        assert_eq!(r["pin"], json!([1, 2, 3, 4]));
        assert_eq!(r["runner"]["name"], "zed-external-01k9g7cx800pd7p3m5sw9r2301");
        assert_eq!(r["runner"]["image"], "helix-sway:latest");
        assert!(r["runner"]["env"].as_array().unwrap().contains(&json!(format!("HELIX_SESSION_ID={ses}"))));
        assert_eq!(r["video_settings"]["width"], 3840);
        assert_eq!(r["audio_settings"]["channel_count"], 2);
    }

    #[test]
    fn redaction_reaches_nested_keys() {
        let mut v = json!({"sessions": [{"aes_key": "k", "aes_iv": "i", "x": {"aes_key": "k2"}, "client_id": "1"}]});
        redact(&mut v);
        let s = v.to_string();
        assert!(!s.contains("\"k\"") && !s.contains("\"i\"") && !s.contains("k2"), "{s}");
        assert_eq!(v["sessions"][0]["client_id"], "1");
    }
}
