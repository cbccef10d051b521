//! The stand-in speaks moonlight-web's protocol: a scripted WebSocket client (no browser) gets
//! the documented stage sequence, the session-mode results, and the HTTP session views.

use futures::{SinkExt, StreamExt};
use helix_e2e::refstack;
use helix_e2e::sut::control::processes::ProcessStack;
use helix_e2e::sut::moonlight_web::MoonlightWebClient;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn stack() -> ProcessStack {
    ProcessStack::start_temp(env!("CARGO_BIN_EXE_helix-e2e").as_ref(), Vec::new()).await.unwrap()
}

fn init(credentials: &str, session_id: &str, mode: &str) -> String {
    json!({"AuthenticateAndInit": {"credentials": credentials, "session_id": session_id, "mode": mode,
        "client_unique_id": format!("helix-agent-ses_test-lobby-{session_id}"), "host_id": 0, "app_id": 134906179,
        "bitrate": 40000, "packet_size": 1024, "fps": 60, "width": 3840, "height": 2160,
        "video_sample_queue_size": 100, "play_audio_local": false, "audio_sample_queue_size": 20,
        "video_supported_formats": 1, "video_colorspace": "Rec709", "video_color_range_full": true}})
    .to_string()
}

async fn connect(e: &refstack::Endpoints) -> Ws {
    let url = format!("{}/api/host/stream", e.moonlight_web_url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text message as JSON; `None` when the server closed.
async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("server answered in time") {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn create_mode_follows_the_documented_stage_sequence() {
    let stack = stack().await;
    let e = stack.endpoints();
    let mut ws = connect(&e).await;
    ws.send(Message::text(init(&e.moonlight_credentials, "agent-ses_test-1", "create"))).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 7 {
        got.push(next(&mut ws).await.expect("stream continues"));
    }
    assert_eq!(got[0]["UpdateApp"]["app"]["title"], "Wolf UI", "{got:?}");
    assert_eq!(got[1], json!({"StageStarting": {"stage": "Launch Streamer"}}));
    assert_eq!(got[2], json!({"StageComplete": {"stage": "Launch Streamer"}}));
    assert_eq!(got[3], json!({"StageStarting": {"stage": "Setup WebRTC Peer"}}));
    assert!(got[4]["WebRtcConfig"]["ice_servers"].is_array(), "{:?}", got[4]);
    assert_eq!(got[5], json!({"StageComplete": {"stage": "Setup WebRTC Peer"}}));
    assert_eq!(got[6], json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}}));

    let mlw = MoonlightWebClient::new(&e.moonlight_web_url, Some(e.moonlight_credentials.clone()));
    let sessions = mlw.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, "agent-ses_test-1");
    assert_eq!(sessions[0].mode, "create");
    assert!(sessions[0].has_websocket && sessions[0].streamer_alive);
    let pid = sessions[0].streamer_pid.expect("a streamer pid");

    // The same session_id again in create mode is refused.
    let mut second = connect(&e).await;
    second.send(Message::text(init(&e.moonlight_credentials, "agent-ses_test-1", "create"))).await.unwrap();
    assert_eq!(next(&mut second).await, Some(json!("AlreadyStreaming")));

    // Closing the create socket ends the session and its streamer process.
    ws.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let gone = mlw.sessions().await.unwrap().is_empty();
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
        if gone && !alive {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "session or streamer {pid} still there after the socket closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bad_credentials_join_without_session_and_http_auth() {
    let stack = stack().await;
    let e = stack.endpoints();
    let mut ws = connect(&e).await;
    ws.send(Message::text(init("wrong", "agent-ses_test-2", "create"))).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(json!({"StageFailed": {"stage": "Authentication", "error_code": -1}})));
    assert_eq!(next(&mut ws).await, None, "socket closed after a failed authentication");

    let mut ws = connect(&e).await;
    ws.send(Message::text(init(&e.moonlight_credentials, "agent-ses_test-3", "join"))).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(json!("SessionNotFound")));

    let http = reqwest::Client::new();
    let url = format!("{}/api/sessions", e.moonlight_web_url);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).header("authorization", "Bearer-no-space").send().await.unwrap().status(), 400);
    assert_eq!(http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let status = MoonlightWebClient::new(&e.moonlight_web_url, Some(e.moonlight_credentials.clone())).status().await.unwrap();
    assert_eq!(status.total_sessions, 0);
}
