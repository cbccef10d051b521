//! The `/api/host/stream` WebSocket: authentication, session modes, and the relay between the
//! browser and the session's streamer.

use super::sessions::{spawn_streamer, Attached, Entry, TearingDown, WsOut};
use super::Mlw;
use crate::faults::Zombie;
use crate::streamer::ipc::{ServerToStreamer, StreamerFaults, StreamerInit};
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a fresh socket may stay silent before its `AuthenticateAndInit`.
const INIT_DEADLINE: Duration = Duration::from_secs(15);
/// How long a client's new streamer waits for that client's previous streamer to end its stop
/// cascade. Each step of a cascade is bounded (5 s), and a healthy one takes milliseconds to
/// half a second; past this the previous streamer is stuck and waiting longer would not help.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);
/// F14 (`reconnect-teardown-race`): how long the previous streamer's teardown is held up at most
/// while its successor connects.
const RACE_STALL_MAX: Duration = Duration::from_secs(3);
/// The stand-in streams at this size whatever the browser asks: small frames keep CI cheap.
pub const STREAM_WIDTH: u32 = 320;
pub const STREAM_HEIGHT: u32 = 180;

#[derive(Debug, Deserialize)]
struct AuthenticateAndInit {
    credentials: Option<String>,
    session_id: String,
    mode: String,
    client_unique_id: Option<String>,
    #[serde(default)]
    host_id: u32,
    #[serde(default)]
    app_id: Value,
    #[serde(default = "default_bitrate")]
    bitrate: u32,
    #[serde(default = "default_fps")]
    fps: u32,
}
fn default_bitrate() -> u32 {
    10_000
}
fn default_fps() -> u32 {
    60
}

fn text(v: Value) -> WsOut {
    WsOut::Text(v.to_string())
}

pub async fn handle(socket: WebSocket, mlw: Arc<Mlw>) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<WsOut>();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            match m {
                WsOut::Text(t) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                WsOut::Close => {
                    let _ = sink.close().await;
                    break;
                }
            }
        }
    });

    let first = match tokio::time::timeout(INIT_DEADLINE, stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        _ => {
            let _ = out_tx.send(WsOut::Close);
            let _ = writer.await;
            return;
        }
    };
    let init = serde_json::from_str::<Value>(&first)
        .ok()
        .and_then(|v| v.get("AuthenticateAndInit").cloned())
        .and_then(|v| serde_json::from_value::<AuthenticateAndInit>(v).ok());
    let Some(init) = init else {
        mlw.log.warn("[Stream] First message was not AuthenticateAndInit");
        let _ = out_tx.send(WsOut::Close);
        let _ = writer.await;
        return;
    };
    if mlw.config.credentials.is_some() && init.credentials != mlw.config.credentials {
        mlw.log.warn("[Stream] Authentication failed");
        let _ = out_tx.send(text(json!({"StageFailed": {"stage": "Authentication", "error_code": -1}})));
        let _ = out_tx.send(WsOut::Close);
        let _ = writer.await;
        return;
    }

    // A new streamer for a client whose previous streamer is still tearing down would find the
    // client's Wolf session still there and resume it, and the previous streamer's `/cancel`
    // would then end it under the new one (F14). The previous one goes first.
    let racing = match init.client_unique_id.as_deref() {
        Some(client) if init.mode == "create" || init.mode == "keepalive" => after_previous_teardown(&mlw, client).await,
        _ => Vec::new(),
    };
    let generation = mlw.sessions.generation();
    let attached = Attached { generation, tx: out_tx.clone() };
    let sid = init.session_id.clone();
    let attached_to = attach(&mlw, &init, attached);
    if let Ok(successor) = &attached_to {
        stall_while_successor_connects(&mlw, racing, successor);
    }
    let streamer = match attached_to {
        Ok(s) => s,
        Err(reply) => {
            if let Some(r) = reply {
                let _ = out_tx.send(WsOut::Text(format!("\"{r}\"")));
            }
            let _ = out_tx.send(WsOut::Close);
            let _ = writer.await;
            return;
        }
    };

    // Relay: every text frame goes to the streamer; anything else ends the read loop, as in
    // moonlight-web (a ping counts as a disconnect).
    let mut frame_ended_it = false;
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(t)) => match serde_json::from_str::<Value>(&t) {
                Ok(v) => {
                    let _ = streamer.send(ServerToStreamer::WebSocket(v));
                }
                Err(e) => mlw.log.warn(format!("[Stream] Unparseable client message on {sid}: {e}")),
            },
            Ok(_) => {
                frame_ended_it = true;
                break;
            }
            Err(_) => break,
        }
    }
    if !frame_ended_it && mlw.faults.now().no_silent_close_detection {
        // F18: only a frame (a close frame, or any other non-text one) ends the session; a
        // socket that ended without one — its tab's renderer crashed, the network dropped — goes
        // unnoticed. The entry keeps this socket as if connected, its streamer keeps streaming,
        // and nothing is logged, as in the real server, until TCP keepalive would tell (~2 h).
        tracing::debug!("socket of session {sid} ended without a frame: not noticed (no-silent-close-detection)");
        writer.abort();
        return;
    }
    detach(&mlw, &sid, generation);
    let _ = out_tx.send(WsOut::Close);
    let _ = writer.await;
}

/// Apply the session-mode table; `Err(Some(text))` is the bare-string reply to send.
fn attach(mlw: &Arc<Mlw>, init: &AuthenticateAndInit, attached: Attached) -> Result<mpsc::UnboundedSender<ServerToStreamer>, Option<&'static str>> {
    let mut map = mlw.sessions.lock();
    if let Some(entry) = map.get_mut(&init.session_id) {
        return match init.mode.as_str() {
            "create" => Err(Some("AlreadyStreaming")),
            "keepalive" => Err(None),
            _ => {
                if let Some(old) = entry.ws.replace(attached) {
                    let _ = old.tx.send(WsOut::Text("\"ClientKicked\"".into()));
                    let _ = old.tx.send(WsOut::Close);
                }
                let _ = entry.streamer.send(ServerToStreamer::ClientJoined);
                mlw.log.info(format!("[Stream] Client joined session {}", init.session_id));
                Ok(entry.streamer.clone())
            }
        };
    }
    if init.mode == "join" {
        return Err(Some("SessionNotFound"));
    }
    if init.mode != "create" && init.mode != "keepalive" {
        return Err(Some("InternalServerError"));
    }
    let app_id = match &init.app_id {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let _ = attached.tx.send(text(json!({"UpdateApp": {"app": {"app_id": init.app_id, "title": "Wolf UI", "is_hdr_supported": false}}})));
    let _ = attached.tx.send(text(json!({"StageStarting": {"stage": "Launch Streamer"}})));
    let cert = mlw.certs.get_or_create(init.client_unique_id.as_deref()).map_err(|e| {
        mlw.log.error(format!("[Stream] {e}"));
        Some("InternalServerError")
    })?;
    let streamer_init = StreamerInit {
        session_id: init.session_id.clone(),
        client_unique_id: init.client_unique_id.clone(),
        mode: init.mode.clone(),
        wolf_http: mlw.config.wolf_http.clone(),
        app_id,
        cert_pem: cert.cert_pem,
        key_pem: cert.key_pem,
        width: STREAM_WIDTH,
        height: STREAM_HEIGHT,
        fps: init.fps.min(30),
        bitrate: init.bitrate,
        ice_servers: mlw.config.webrtc_ice_servers.clone(),
        port_range: mlw.config.webrtc_port_range,
        faults: StreamerFaults {
            linger: mlw.faults.now().stuck_session || mlw.faults.now().zombie_streamer == Some(Zombie::Unlisted),
            sctp_errors: mlw.faults.now().sctp_errors,
            slow_teardown: mlw.faults.now().reconnect_teardown_race,
            outlive_peer: mlw.faults.now().no_silent_close_detection,
        },
    };
    let _ = init.host_id;
    let keep_dead = mlw.faults.now().zombie_streamer == Some(Zombie::Listed);
    let (tx, pid) = spawn_streamer(&mlw.config.streamer_path, streamer_init, mlw.sessions.clone(), mlw.log.clone(), keep_dead).map_err(|e| {
        mlw.log.error(format!("[Stream] Failed to start streamer: {e}"));
        Some("InternalServerError")
    })?;
    mlw.log.info(format!(
        "[Stream] New {} session {} for client {} (streamer pid {})",
        init.mode,
        init.session_id,
        init.client_unique_id.as_deref().unwrap_or("-"),
        pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
    ));
    map.insert(
        init.session_id.clone(),
        Entry {
            client_unique_id: init.client_unique_id.clone(),
            mode: init.mode.clone(),
            ws: Some(attached.clone()),
            streamer: tx.clone(),
            streamer_pid: pid,
            streamer_alive: true,
        },
    );
    let _ = attached.tx.send(text(json!({"StageComplete": {"stage": "Launch Streamer"}})));
    Ok(tx)
}

/// Wait until the streamers of `client` that are still tearing down have ended their stop
/// cascade (at most [`TEARDOWN_WAIT`]). Under F14 nothing is waited for: the streamers still
/// tearing down are returned, racing the one about to start.
async fn after_previous_teardown(mlw: &Mlw, client: &str) -> Vec<TearingDown> {
    let previous = mlw.sessions.tearing_down(client);
    if previous.is_empty() || mlw.faults.now().reconnect_teardown_race {
        return previous;
    }
    let pids = previous.iter().map(|p| p.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join(", ");
    mlw.log.info(format!("[Stream] Client {client} reconnects while its previous streamer (pid {pids}) tears down; waiting for it"));
    let t0 = tokio::time::Instant::now();
    let deadline = t0 + TEARDOWN_WAIT;
    let mut done = true;
    for mut p in previous {
        done &= matches!(tokio::time::timeout_at(deadline, p.done.wait_for(|d| *d)).await, Ok(Ok(_)));
    }
    if done {
        mlw.log.info(format!("[Stream] Previous streamer of client {client} done after {:.2} s", t0.elapsed().as_secs_f64()));
    } else {
        mlw.log.warn(format!(
            "[Stream] Previous streamer of client {client} still tearing down after {:.0} s; starting the new one anyway",
            TEARDOWN_WAIT.as_secs_f64()
        ));
    }
    Vec::new()
}

/// F14: the previous streamers of a reconnecting client get no CPU until their successor has
/// connected (or [`RACE_STALL_MAX`] passed), as on the loaded host where the real race was
/// seen. Their stop cascade then goes on from where it was: its `/cancel` ends the Wolf session
/// the successor has resumed meanwhile. A healthy teardown takes milliseconds to half a second,
/// less than a successor needs to connect, so without the stall the race is hit only sometimes.
fn stall_while_successor_connects(mlw: &Arc<Mlw>, racing: Vec<TearingDown>, successor: &mpsc::UnboundedSender<ServerToStreamer>) {
    let pids: Vec<u32> = racing.iter().filter_map(|p| p.pid).filter(|pid| mlw.sessions.signal(*pid, libc::SIGSTOP)).collect();
    if pids.is_empty() {
        return;
    }
    tracing::debug!("reconnect-teardown-race: previous streamers {pids:?} held while their successor connects");
    let connected = mlw.sessions.connected(successor);
    let sessions = mlw.sessions.clone();
    tokio::spawn(async move {
        if let Some(mut c) = connected {
            let _ = tokio::time::timeout(RACE_STALL_MAX, c.wait_for(|c| *c)).await;
        }
        for pid in pids {
            sessions.signal(pid, libc::SIGCONT);
        }
    });
}

/// The socket of generation `generation` closed: create sessions end, others lose their socket.
fn detach(mlw: &Arc<Mlw>, session_id: &str, generation: u64) {
    let mode = {
        let mut map = mlw.sessions.lock();
        let Some(entry) = map.get_mut(session_id) else { return };
        if entry.ws.as_ref().map(|w| w.generation) != Some(generation) {
            return;
        }
        entry.ws = None;
        entry.mode.clone()
    };
    mlw.log.info(format!("[Stream] WebSocket of session {session_id} closed"));
    if mode != "create" {
        return;
    }
    let faults = mlw.faults.now();
    if faults.stuck_session {
        // F5: the removal never happens; the streamer is not told either and keeps streaming.
        tracing::debug!("session {session_id} kept without a socket (stuck-session)");
    } else if faults.zombie_streamer == Some(Zombie::Listed) {
        // F6 (listed): the streamer is stopped, but its entry is never dropped.
        mlw.sessions.stop_streamer(session_id);
    } else {
        mlw.sessions.remove(session_id);
    }
}
