//! The Wolf client against a server that answers exactly as Wolf does (the stand-in's API on a
//! real Unix socket: HTTP/1.0, one request per connection, string ids), and against servers
//! that misbehave.

use helix_e2e::refstack::logfile::{LogFile, Style};
use helix_e2e::refstack::wolf::{api, state::WolfState};
use helix_e2e::sut::wolf::WolfClient;
use helix_e2e::sut::SutError;
use serde_json::json;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lobby_body(ses: &str, pin: [u8; 4]) -> serde_json::Value {
    json!({"profile_id":"helix-sessions","name":"Agent 2301","multi_user":true,"stop_when_everyone_leaves":false,"pin":pin,
           "video_settings":{"width":3840,"height":2160,"refresh_rate":60},"audio_settings":{"channel_count":2},
           "runner_state_folder":"/wolf-state/agent-x","runner":{"type":"docker","name":"zed-external-x","image":"helix-sway:latest","env":[format!("HELIX_SESSION_ID={ses}")],"mounts":[],"devices":[],"ports":[]}})
}

async fn start() -> (tempdir::Dir, Arc<WolfState>, WolfClient) {
    let dir = tempdir::Dir::new();
    let sock = dir.path.join("wolf.sock");
    let state = Arc::new(WolfState::new(LogFile::new(Box::new(std::io::sink()), Style::Wolf)));
    let listener = api::bind(&sock).unwrap();
    tokio::spawn(api::serve(listener, state.clone()));
    (dir, state, WolfClient::new(sock))
}

mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("helix-e2e-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Self { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn raw(sock: &std::path::Path, request: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    // Wolf closes after one reply: read_to_string ends only if the server closed.
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_string(&mut out)).await.expect("server closed the connection").unwrap();
    out
}

#[tokio::test]
async fn lobby_lifecycle_counts_clients_and_speaks_wolf_json() {
    let (_dir, state, wolf) = start().await;
    let apps = wolf.apps().await.unwrap();
    assert_eq!(apps[0]["title"], "Wolf UI");
    assert!(apps[0]["id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()), "app id must be a digit string");

    let mut events = wolf.events().await.unwrap();
    let lobby = wolf.create_lobby(&lobby_body("ses_abc", [1, 2, 3, 4])).await.unwrap();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert_eq!(ev.name, "wolf::core::events::CreateLobbyEvent");

    // A Moonlight session, as the streamer's launch creates it.
    let client = helix_e2e::refstack::wolf::state::PairedClient { client_id: state.pair(b"cert-1".to_vec()), cert_der: b"cert-1".to_vec() };
    let session = state.launch(&client, "helix-agent-ses_abc-l-u", "127.0.0.1", 320, 180, 30).unwrap();
    let sid = session.id.to_string();
    let sessions = wolf.sessions().await.unwrap();
    assert_eq!(sessions[0].client_id, sid);

    let err = wolf.join_lobby(&lobby, &sid, Some(&[9, 9, 9, 9])).await.unwrap_err();
    assert!(matches!(&err, SutError::Refused { error, .. } if error == "Invalid PIN"), "{err}");
    wolf.join_lobby(&lobby, &sid, Some(&[1, 2, 3, 4])).await.unwrap();
    let mem = wolf.memory().await.unwrap();
    assert_eq!(mem.lobbies[0].client_count, 1);
    let lobbies = wolf.lobbies().await.unwrap();
    assert_eq!(lobbies[0].connected_sessions, vec![sid.clone()]);
    assert_eq!(lobbies[0].helix_session(), Some("ses_abc"));

    wolf.stop_session(&sid).await.unwrap();
    assert_eq!(wolf.memory().await.unwrap().lobbies[0].client_count, 0);
    let err = wolf.stop_lobby(&lobby, None).await.unwrap_err();
    assert!(err.to_string().contains("Invalid PIN"), "{err}");
    wolf.stop_lobby(&lobby, Some(&[1, 2, 3, 4])).await.unwrap();
    assert!(wolf.lobbies().await.unwrap().is_empty());
}

#[tokio::test]
async fn framing_is_wolfs_http_1_0_one_request_per_connection() {
    let (dir, _state, _wolf) = start().await;
    let sock = dir.path.join("wolf.sock");
    let reply = raw(&sock, "GET /api/v1/nope HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.0 404 OK\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n"), "404 has an empty body: {reply:?}");
    let reply = raw(&sock, "GET /api/v1/lobbies HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.0 200 OK\r\n") && !reply.to_ascii_lowercase().contains("content-type"), "{reply}");
    let reply = raw(&sock, "POST /api/v1/lobbies/join HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.0 500 OK\r\n") && reply.contains("\"success\":false"), "{reply}");
}

/// A socket server that answers every request with `reply` and closes.
async fn fake_server(reply: &'static str) -> (tempdir::Dir, WolfClient) {
    let dir = tempdir::Dir::new();
    let sock = dir.path.join("bad.sock");
    let l = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    (dir, WolfClient::new(sock))
}

#[tokio::test]
async fn bad_servers_give_specific_errors() {
    let (_d, wolf) = fake_server("HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nnot json!").await;
    let err = wolf.lobbies().await.unwrap_err();
    assert!(matches!(err, SutError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("not json!"), "{err}");

    let (_d, wolf) = fake_server("HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\n{\"lobbies\":1}").await;
    let err = wolf.lobbies().await.unwrap_err();
    assert!(err.to_string().contains("no \"success\" field"), "{err}");

    let wolf = WolfClient::new("/nonexistent/wolf.sock");
    let err = wolf.apps().await.unwrap_err();
    assert!(matches!(err, SutError::Unreachable { .. }) && err.to_string().contains("/nonexistent/wolf.sock"), "{err}");
}
