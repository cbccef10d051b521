//! Wolf's REST API on a Unix socket, with Wolf's framing quirks reproduced on purpose:
//! `HTTP/1.0 <code> OK` whatever the code, `Content-Length` and no `Content-Type`, one request
//! per connection, exact method+path routing, empty 404s, chunked request bodies refused.
//! A client that survives this server survives Wolf.

use super::state::{session_json, LobbySetupError, WolfState, LOBBY_SETUP_DEADLINE, WOLF_UI_TITLE};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Comment frames that keep idle SSE connections alive, as Wolf sends them.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);
const MAX_BODY: usize = 1 << 20;

pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    UnixListener::bind(path)
}

pub async fn serve(listener: UnixListener, state: Arc<WolfState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, state).await {
                tracing::debug!("wolf api connection: {e}");
            }
        });
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(stream: &mut BufReader<UnixStream>) -> std::io::Result<Result<Request, &'static str>> {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request line"))??;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if stream.read_line(&mut h).await? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "transfer-encoding" if v.to_ascii_lowercase().contains("chunked") => chunked = true,
                _ => {}
            }
        }
    }
    if chunked {
        return Ok(Err("chunked request bodies are not supported"));
    }
    if length > MAX_BODY {
        return Ok(Err("request body too large"));
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok(Ok(Request { method, path, body }))
}

async fn handle(stream: UnixStream, state: Arc<WolfState>) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let req = match read_request(&mut stream).await? {
        Ok(r) => r,
        Err(why) => return respond(stream.get_mut(), 500, &json!({"success": false, "error": why}).to_string()).await,
    };
    if req.method == "GET" && req.path == "/api/v1/events" {
        return stream_events(stream.into_inner(), state).await;
    }
    let answer = if req.method == "POST" && req.path == "/api/v1/lobbies/create" { Some(create_lobby(&req, &state).await) } else { route(&req, &state) };
    let (status, body) = match answer {
        Some(Ok(v)) => (200, v.to_string()),
        Some(Err(e)) => (500, json!({"success": false, "error": e}).to_string()),
        None => (404, String::new()),
    };
    respond(stream.get_mut(), status, &body).await
}

async fn respond(stream: &mut UnixStream, status: u16, body: &str) -> std::io::Result<()> {
    // Wolf's reason phrase is always "OK", and it sets no Content-Type.
    let head = format!("HTTP/1.0 {status} OK\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn parse_body(req: &Request) -> Result<Value, String> {
    serde_json::from_slice(&req.body).map_err(|e| format!("Invalid JSON body: {e}"))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| format!("Missing field: {key}"))
}

fn session_id_field(v: &Value, key: &str) -> Result<u64, String> {
    str_field(v, key)?.parse().map_err(|_| format!("Invalid {key}"))
}

/// `lobbies/create`: apart from the routes of [`route`] because a setup that gets no display
/// answers only after waiting for it (F19).
async fn create_lobby(req: &Request, state: &WolfState) -> Result<Value, String> {
    let body = parse_body(req)?;
    str_field(&body, "name")?;
    str_field(&body, "profile_id")?;
    if body.get("runner").is_none() || body.get("video_settings").is_none() || body.get("audio_settings").is_none() {
        return Err("Missing field: runner, video_settings or audio_settings".into());
    }
    match state.create_lobby(&body) {
        Ok(id) => Ok(json!({"success": true, "lobby_id": id})),
        Err(e @ LobbySetupError::TimedOut) => {
            tokio::time::sleep(LOBBY_SETUP_DEADLINE).await;
            state.log.error(format!("[LOBBY] {e} after {} s", LOBBY_SETUP_DEADLINE.as_secs()));
            Err(e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn route(req: &Request, state: &WolfState) -> Option<Result<Value, String>> {
    let ok = |mut v: Value| {
        v["success"] = json!(true);
        Ok(v)
    };
    Some(match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/v1/apps") => ok(json!({"apps": [{
            "title": WOLF_UI_TITLE, "id": state.app_id, "support_hdr": false,
            "icon_png_path": null, "h264_gst_pipeline": "", "hevc_gst_pipeline": "", "av1_gst_pipeline": "",
            "opus_gst_pipeline": "", "render_node": "/dev/dri/renderD128", "start_virtual_compositor": true,
            "runner": {"type": "docker", "name": "Wolf-UI", "image": "ghcr.io/games-on-whales/wolf-ui:main", "env": [], "mounts": [], "devices": [], "ports": []}
        }]})),
        ("GET", "/api/v1/clients") => ok(json!({"clients": state.paired_clients().iter().map(|c| json!({
            "client_id": c.client_id.to_string(), "app_state_folder": format!("/wolf-state/{}", c.client_id),
            "settings": {"run_uid": 1000, "run_gid": 1000, "controllers_override": [], "mouse_acceleration": 1.0, "v_scroll_acceleration": 1.0, "h_scroll_acceleration": 1.0}
        })).collect::<Vec<_>>()})),
        ("GET", "/api/v1/sessions") => ok(json!({"sessions": state.sessions().iter().map(|s| session_json(s, true)).collect::<Vec<_>>()})),
        ("POST", "/api/v1/sessions/stop") | ("POST", "/api/v1/sessions/pause") => (|| {
            let body = parse_body(req)?;
            let id = session_id_field(&body, "session_id")?;
            if req.path.ends_with("pause") {
                state.fire("PauseStreamEvent", json!({"session_id": id.to_string()}));
            }
            if !state.stop_session(id) {
                return Err(format!("Session {id} not found"));
            }
            ok(json!({}))
        })(),
        ("GET", "/api/v1/lobbies") => ok(json!({"lobbies": state.lobbies().iter().map(|l| {
            let mut v = json!({
                "id": l.id, "name": l.name, "multi_user": l.multi_user, "started_by_profile_id": l.profile_id,
                "pin_required": l.pin.is_some(), "stop_when_everyone_leaves": l.stop_when_everyone_leaves,
                "runner": l.runner, "connected_sessions": l.connected_sessions.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            });
            if let Some(icon) = l.runner.get("icon_png_path") { v["icon_png_path"] = icon.clone(); }
            v
        }).collect::<Vec<_>>()})),
        ("POST", "/api/v1/lobbies/join") => (|| {
            let body = parse_body(req)?;
            let lobby = str_field(&body, "lobby_id")?;
            let sid = session_id_field(&body, "moonlight_session_id")?;
            state.join_lobby(lobby, sid, body.get("pin")).map_err(|e| e.to_string())?;
            ok(json!({}))
        })(),
        ("POST", "/api/v1/lobbies/leave") => (|| {
            let body = parse_body(req)?;
            let lobby = str_field(&body, "lobby_id")?;
            let sid = session_id_field(&body, "moonlight_session_id")?;
            state.leave_lobby(lobby, sid).map_err(|e| e.to_string())?;
            ok(json!({}))
        })(),
        ("POST", "/api/v1/lobbies/stop") => (|| {
            let body = parse_body(req)?;
            let lobby = str_field(&body, "lobby_id")?;
            state.stop_lobby(lobby, body.get("pin")).map_err(|e| e.to_string())?;
            ok(json!({}))
        })(),
        ("GET", "/api/v1/system/memory") => {
            let sessions = state.sessions();
            let lobbies = state.lobbies();
            ok(json!({
                "process_rss_bytes": rss_bytes(),
                "gstreamer_buffer_bytes": 0,
                "total_memory_bytes": rss_bytes(),
                "apps": [{"app_id": state.app_id, "app_name": WOLF_UI_TITLE, "resolution": "320x180",
                          "client_count": sessions.iter().filter(|s| s.lobby.is_none()).count(), "memory_bytes": 0}],
                "lobbies": lobbies.iter().map(|l| json!({"lobby_id": l.id, "lobby_name": l.name, "resolution": "320x180",
                          "client_count": l.connected_sessions.len(), "memory_bytes": 0})).collect::<Vec<_>>(),
                "clients": sessions.iter().map(|s| {
                    let mut c = json!({"session_id": s.id.to_string(), "client_ip": s.client_ip, "resolution": format!("{}x{}", s.width, s.height), "memory_bytes": 0});
                    match &s.lobby { Some(l) => c["lobby_id"] = json!(l), None => c["app_id"] = json!(state.app_id) }
                    c
                }).collect::<Vec<_>>(),
            }))
        }
        ("GET", "/api/v1/system/health") => {
            let h = state.health();
            ok(json!({
                "process_uptime_seconds": state.started.elapsed().as_secs(),
                "threads": h.threads.iter().map(|t| json!({"tid": t.tid, "name": t.name,
                    "seconds_since_heartbeat": t.seconds_since_heartbeat, "is_stuck": t.is_stuck})).collect::<Vec<_>>(),
                "stuck_thread_count": h.stuck, "total_thread_count": h.threads.len(),
                "can_create_new_pipelines": h.can_create_pipelines, "overall_status": h.overall_status(),
            }))
        }
        _ => return None,
    })
}

async fn stream_events(mut stream: UnixStream, state: Arc<WolfState>) -> std::io::Result<()> {
    let mut rx = state.subscribe();
    stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").await?;
    let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
    keepalive.tick().await;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok((name, data)) => stream.write_all(format!("event: {name}\ndata: {data}\n\n").as_bytes()).await?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return Ok(()),
            },
            _ = keepalive.tick() => stream.write_all(b":keepalive\n\n").await?,
        }
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
