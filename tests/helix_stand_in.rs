//! The stand-in Helix against the stand-in Wolf (its real API on a Unix socket) and the stand-in
//! moonlight-web, or a small WebSocket server of the test's own where the proxy's exact bytes
//! matter. Every check here is one a wrong Helix would fail.

use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use futures::{SinkExt, StreamExt};
use helix_e2e::refstack::helix::{self, HelixConfig};
use helix_e2e::refstack::logfile::{LogFile, Style};
use helix_e2e::refstack::moonlight_web::{self, MlwConfig};
use helix_e2e::refstack::wolf::api as wolf_api;
use helix_e2e::refstack::wolf::state::{PairedClient, WolfState};
use helix_e2e::sut::wolf::WolfClient;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const EMAIL: &str = "dev@helix.local";
const PASSWORD: &str = "correct horse";
const MLW_SECRET: &str = "mlw-secret-credentials";
const RUNNER: &str = "oh-hallo-insecure-token";
const WAIT: Duration = Duration::from_secs(5);

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("helix-standin-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Stack {
    _dir: TempDir,
    wolf_state: Arc<WolfState>,
    wolf: WolfClient,
    mlw_url: String,
    url: String,
    http: reqwest::Client,
}

/// What moonlight-web is, for one test.
enum Mlw {
    /// The stand-in moonlight-web (no streamer can start: `/nonexistent`).
    StandIn,
    /// Any base URL, e.g. a test's own WebSocket server.
    At(String),
}

/// `store` holds login tokens: it lives in the test's own temp dir, which goes with the test.
async fn start_helix(wolf_socket: std::path::PathBuf, moonlight_web: String, credentials: Option<String>, store: std::path::PathBuf) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cfg = HelixConfig {
        wolf_socket,
        moonlight_web,
        moonlight_credentials: credentials,
        user_email: EMAIL.into(),
        user_password: PASSWORD.into(),
        runner_token: RUNNER.into(),
        store,
        faults: Default::default(),
    };
    tokio::spawn(helix::serve(listener, cfg));
    url
}

async fn start_mlw() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = MlwConfig {
        credentials: Some(MLW_SECRET.into()),
        bind_address: addr.to_string(),
        webrtc_ice_servers: Vec::new(),
        webrtc_port_range: None,
        pair_device_name: "test".into(),
        streamer_path: "/nonexistent/streamer".into(),
        wolf_http: "127.0.0.1:9".into(),
        faults: Default::default(),
    };
    tokio::spawn(moonlight_web::serve(listener, cfg, LogFile::new(Box::new(std::io::sink()), Style::EnvLogger("moonlight_web"))));
    format!("http://{addr}")
}

async fn stack(mlw: Mlw) -> Stack {
    let dir = TempDir::new();
    let socket = dir.0.join("wolf.sock");
    let wolf_state = Arc::new(WolfState::new(LogFile::new(Box::new(std::io::sink()), Style::Wolf)));
    tokio::spawn(wolf_api::serve(wolf_api::bind(&socket).unwrap(), wolf_state.clone()));
    let mlw_url = match mlw {
        Mlw::StandIn => start_mlw().await,
        Mlw::At(u) => u,
    };
    let url = start_helix(socket.clone(), mlw_url.clone(), Some(MLW_SECRET.into()), dir.0.join("helix-store.json")).await;
    let http = reqwest::Client::builder().no_proxy().timeout(WAIT).build().unwrap();
    Stack { _dir: dir, wolf_state, wolf: WolfClient::new(socket), mlw_url, url, http }
}

impl Stack {
    async fn login(&self) -> String {
        let r = self.http.post(format!("{}/api/v1/auth/login", self.url)).json(&json!({"email": EMAIL, "password": PASSWORD})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> (u16, String) {
        let r = self.http.request(method, format!("{}{}", self.url, path)).bearer_auth(token).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn json(&self, method: reqwest::Method, path: &str, token: &str) -> Value {
        let (status, body) = self.call(method, path, token).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn create_agent(&self, token: &str) -> Value {
        let body = json!({"agent_type": "zed_external", "type": "text", "stream": false, "session_id": "",
                          "messages": [{"role": "user", "content": {"content_type": "text", "parts": ["fix the bug"]}}]});
        let r = self.http.post(format!("{}/api/v1/sessions/chat", self.url)).bearer_auth(token).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// A Moonlight client of Wolf with this `client_unique_id`, as a streamer's launch makes it.
    fn moonlight_session(&self, client_unique_id: &str) -> String {
        let cert = uuid::Uuid::new_v4().as_bytes().to_vec();
        let client = PairedClient { client_id: self.wolf_state.pair(cert.clone()), cert_der: cert };
        self.wolf_state.launch(&client, client_unique_id, "127.0.0.1", 320, 180, 30).unwrap().id.to_string()
    }
}

#[tokio::test]
async fn login_returns_the_user_and_sets_http_only_cookies() {
    let s = stack(Mlw::StandIn).await;
    let r = s.http.post(format!("{}/api/v1/auth/login", s.url)).json(&json!({"email": EMAIL, "password": PASSWORD})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["email"], EMAIL);
    assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()) && body["name"].is_string(), "{body}");
    let access = cookies.iter().find(|c| c.starts_with("access_token=")).expect("access_token cookie");
    assert!(access.starts_with(&format!("access_token={token};")) && access.contains("HttpOnly"), "{access}");
    let refresh = cookies.iter().find(|c| c.starts_with("refresh_token=")).expect("refresh_token cookie");
    assert!(refresh.contains("HttpOnly"));

    let wrong = s.http.post(format!("{}/api/v1/auth/login", s.url)).json(&json!({"email": EMAIL, "password": "nope"})).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn api_routes_take_a_token_from_header_cookie_or_query_and_refuse_others() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let routes = [
        (reqwest::Method::GET, "/api/v1/auth/user".to_string()),
        (reqwest::Method::GET, "/api/v1/external-agents/ses_x/clipboard".to_string()),
        (reqwest::Method::GET, "/api/v1/wolf/ui-app-id".to_string()),
        (reqwest::Method::GET, "/api/v1/wolf/health".to_string()),
        (reqwest::Method::GET, "/api/v1/moonlight/status".to_string()),
        (reqwest::Method::GET, "/api/v1/admin/agent-sandboxes/debug".to_string()),
        (reqwest::Method::POST, "/api/v1/sessions/chat".to_string()),
        (reqwest::Method::POST, "/api/v1/external-agents".to_string()),
        (reqwest::Method::GET, "/api/v1/admin/agent-sandboxes/events".to_string()),
        (reqwest::Method::DELETE, "/api/v1/sessions/ses_x/stop-external-agent".to_string()),
        (reqwest::Method::GET, "/api/v1/sessions/ses_x/wolf-app-state".to_string()),
        (reqwest::Method::POST, "/api/v1/external-agents/ses_x/auto-join-lobby".to_string()),
    ];
    for (method, path) in &routes {
        let none = s.http.request(method.clone(), format!("{}{}", s.url, path)).send().await.unwrap();
        assert_eq!(none.status(), 401, "{method} {path} without a token");
        assert!(none.json::<Value>().await.unwrap()["error"].is_string(), "{path}: 401 body must be a JSON error");
        let (status, _) = s.call(method.clone(), path, "forged.jwt.token").await;
        assert_eq!(status, 401, "{method} {path} with a forged token");
    }
    let config = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap() };
    let url = format!("{}/api/v1/wolf/ui-app-id", s.url);
    for (how, resp) in [
        ("bearer", config(s.http.get(&url).bearer_auth(&token)).await),
        ("cookie", config(s.http.get(&url).header("cookie", format!("theme=dark; access_token={token}"))).await),
        ("query", config(s.http.get(format!("{url}?access_token={token}"))).await),
        ("runner token", config(s.http.get(&url).bearer_auth(RUNNER)).await),
    ] {
        assert_eq!(resp.status(), 200, "{how}");
        assert!(resp.json::<Value>().await.unwrap()["wolf_ui_app_id"].is_string(), "{how}");
    }
    // Real Helix serves its config to anyone (the app reads it before login).
    let open = s.http.get(format!("{}/api/v1/config", s.url)).send().await.unwrap();
    assert_eq!(open.status(), 200);
    assert_eq!(open.json::<Value>().await.unwrap(), json!({"moonlight_web_mode": "single", "streaming_bitrate_mbps": 40}));
    // The header is looked at first: a bad Bearer is not rescued by a good cookie.
    let r = s.http.get(&url).bearer_auth("forged").header("cookie", format!("access_token={token}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// The app's account context, as the real viewer gets its token: `auth/authenticated` from the
/// cookie (always 200), then `auth/user` with the token; and the clipboard route every connected
/// viewer polls.
#[tokio::test]
async fn account_routes_give_the_app_its_token_and_the_clipboard_answers() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let authenticated = |cookie: Option<String>| {
        let mut r = s.http.get(format!("{}/api/v1/auth/authenticated", s.url));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(authenticated(None).await, (200, json!({"authenticated": false})));
    assert_eq!(authenticated(Some("access_token=forged.jwt.token".into())).await, (200, json!({"authenticated": false})));
    assert_eq!(authenticated(Some(format!("access_token={token}"))).await, (200, json!({"authenticated": true})));
    let user: Value =
        s.http.get(format!("{}/api/v1/auth/user", s.url)).header("cookie", format!("access_token={token}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["token"], token);
    assert!(user["email"].is_string() && user["id"].is_string(), "{user}");

    let ses = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    let clip = s.json(reqwest::Method::GET, &format!("/api/v1/external-agents/{ses}/clipboard"), &token).await;
    assert_eq!(clip, json!({"type": "text", "data": ""}));
    let (status, _) = s.call(reqwest::Method::GET, "/api/v1/external-agents/ses_nope/clipboard", &token).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ui_app_id_and_health_come_from_wolf() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let v = s.json(reqwest::Method::GET, "/api/v1/wolf/ui-app-id", &token).await;
    assert_eq!(v, json!({"wolf_ui_app_id": s.wolf_state.app_id}));
    let health = s.json(reqwest::Method::GET, "/api/v1/wolf/health", &token).await;
    assert_eq!(health["overall_status"], "healthy");
    assert!(health["process_uptime_seconds"].is_u64());
}

#[tokio::test]
async fn an_agent_session_owns_a_lobby_built_as_helix_builds_it_and_stops_cleanly() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let agent = s.create_agent(&token).await;
    let ses = agent["id"].as_str().unwrap().to_string();
    let rest = ses.strip_prefix("ses_").expect("ses_ id");
    assert_eq!(rest.len(), 26);
    assert!(rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()), "{ses}");

    let lobbies = s.wolf.lobbies().await.unwrap();
    assert_eq!(lobbies.len(), 1);
    let lobby = &lobbies[0];
    assert_eq!(lobby.helix_session(), Some(ses.as_str()));
    assert_eq!(lobby.name, format!("Agent {}", &ses[ses.len() - 4..]));
    assert!(lobby.multi_user && lobby.pin_required && !lobby.stop_when_everyone_leaves);
    assert_eq!(lobby.runner["name"], format!("zed-external-{rest}"));
    assert_eq!(lobby.runner["image"], "helix-sway:latest");
    assert_eq!(agent["config"]["wolf_lobby_id"], lobby.id);
    let state = s.wolf_state.lobbies();
    assert_eq!(state[0].profile_id, "helix-sessions");
    assert_eq!(state[0].video_settings["width"], 3840);
    let pin = state[0].pin.clone().expect("a PIN");
    assert_eq!(pin.len(), 4);
    assert!(pin.iter().all(|d| *d < 10));

    let app_state = s.json(reqwest::Method::GET, &format!("/api/v1/sessions/{ses}/wolf-app-state"), &token).await;
    assert_eq!(app_state["state"], "running");

    let mine_a = s.moonlight_session(&format!("helix-agent-{ses}-{}-u1", lobby.id));
    let mine_b = s.moonlight_session(&format!("helix-agent-{ses}-{}-u2", lobby.id));
    let foreign = s.moonlight_session("helix-agent-ses_someoneelse0000000000000000-l-u3");
    let stopped = s.json(reqwest::Method::DELETE, &format!("/api/v1/sessions/{ses}/stop-external-agent"), &token).await;
    let mut ids: Vec<String> = serde_json::from_value(stopped["stopped_wolf_sessions"].clone()).unwrap();
    ids.sort();
    let mut want = vec![mine_a, mine_b];
    want.sort();
    assert_eq!(ids, want);
    let left: Vec<String> = s.wolf.sessions().await.unwrap().into_iter().map(|x| x.client_id).collect();
    assert_eq!(left, vec![foreign], "only the agent's own Moonlight sessions are stopped");
    assert!(s.wolf.lobbies().await.unwrap().is_empty(), "the lobby is stopped with its PIN");
    let app_state = s.json(reqwest::Method::GET, &format!("/api/v1/sessions/{ses}/wolf-app-state"), &token).await;
    assert_eq!(app_state["state"], "absent");

    let (status, _) = s.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{ses}/stop-external-agent"), &token).await;
    assert_eq!(status, 404, "a stopped agent is unknown");

    // The other way in: POST /external-agents answers with a req_ id that stops nothing.
    let r = s.http.post(format!("{}/api/v1/external-agents", s.url)).bearer_auth(&token).json(&json!({"input": "hello"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let req_id = v["session_id"].as_str().unwrap().to_string();
    assert!(req_id.starts_with("req_"), "{v}");
    let lobbies = s.wolf.lobbies().await.unwrap();
    assert_eq!(lobbies.len(), 1);
    assert_eq!(v["wolf_lobby_id"], lobbies[0].id);
    assert_eq!(v["container_name"], lobbies[0].runner["name"]);
    assert_eq!(v["wolf_lobby_pin"].as_str().map(str::len), Some(4));
    let (status, _) = s.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{req_id}/stop-external-agent"), &token).await;
    assert_eq!(status, 404, "the req_ id of POST /external-agents cannot stop anything");
    assert_eq!(s.wolf.lobbies().await.unwrap().len(), 1, "the agent keeps running");
    let r = s.http.post(format!("{}/api/v1/external-agents", s.url)).bearer_auth(&token).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 400, "input is required");
}

#[tokio::test]
async fn auto_join_takes_the_last_wolf_ui_session_and_reports_wolf_refusals() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let ses = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    let other = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/external-agents/{ses}/auto-join-lobby");

    let (status, body) = s.call(reqwest::Method::POST, &path, &token).await;
    assert_eq!(status, 500);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "failed to join lobby: Wolf UI session not found - client may not have connected yet");

    let lobby = s.wolf.lobbies().await.unwrap().into_iter().find(|l| l.helix_session() == Some(ses.as_str())).unwrap();
    s.moonlight_session(&format!("helix-agent-{ses}-{}-u1", lobby.id));
    s.moonlight_session(&format!("helix-agent-{ses}-{}-u2", lobby.id));
    // Another agent's browser must never be picked.
    s.moonlight_session(&format!("helix-agent-{other}-x-u3"));
    // "Last" is in the order Wolf lists its sessions.
    let mine: Vec<String> =
        s.wolf.sessions().await.unwrap().into_iter().filter(|x| x.client_unique_id.starts_with(&format!("helix-agent-{ses}"))).map(|x| x.client_id).collect();
    let (first, last) = (mine[0].clone(), mine[1].clone());
    let v = s.json(reqwest::Method::POST, &path, &token).await;
    assert_eq!(v, json!({"success": true, "lobby_id": lobby.id, "message": "Successfully auto-joined lobby"}));
    let lobby_now = s.wolf.lobbies().await.unwrap().into_iter().find(|l| l.id == lobby.id).unwrap();
    assert_eq!(lobby_now.connected_sessions, vec![last.clone()], "the last matching session joins, not {first}");
    let mem = s.wolf.memory().await.unwrap();
    assert_eq!(mem.lobbies.iter().find(|l| l.lobby_id == lobby.id).unwrap().client_count, 1);

    // The lobby is gone behind Helix's back (as after a Wolf restart): the join recreates it
    // for the same session and joins the new one; the session now names the new lobby.
    let pin = s.wolf_state.lobbies().into_iter().find(|l| l.id == lobby.id).unwrap().pin.unwrap();
    s.wolf.stop_lobby(&lobby.id, Some(&pin)).await.unwrap();
    let v = s.json(reqwest::Method::POST, &path, &token).await;
    let new_lobby = v["lobby_id"].as_str().unwrap().to_string();
    assert_ne!(new_lobby, lobby.id);
    let recreated = s.wolf.lobbies().await.unwrap().into_iter().find(|l| l.id == new_lobby).unwrap();
    assert_eq!(recreated.helix_session(), Some(ses.as_str()));
    assert_eq!(recreated.connected_sessions, vec![last.clone()]);
    let session = s.json(reqwest::Method::GET, &format!("/api/v1/sessions/{ses}"), &token).await;
    assert_eq!(session["config"]["wolf_lobby_id"], json!(new_lobby));

    let (status, _) = s.call(reqwest::Method::POST, "/api/v1/external-agents/ses_unknown/auto-join-lobby", &token).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_sixth_lobby_is_refused() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    for _ in 0..5 {
        s.create_agent(&token).await;
    }
    let r = s.http.post(format!("{}/api/v1/sessions/chat", s.url)).bearer_auth(&token).json(&json!({"agent_type": "zed_external"})).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let err = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert!(err.starts_with("GPU resource limit reached (5/5 lobbies active)"), "{err}");
    assert_eq!(s.wolf.lobbies().await.unwrap().len(), 5);

    let r = s.http.post(format!("{}/api/v1/sessions/chat", s.url)).bearer_auth(&token).json(&json!({"agent_type": "chat"})).send().await.unwrap();
    assert_eq!(r.status(), 400, "only zed_external agents start a desktop");
}

#[tokio::test]
async fn debug_view_joins_wolf_and_moonlight_web_without_stream_keys() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let ses = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    s.moonlight_session(&format!("helix-agent-{ses}-l-u1"));
    let raw = s.wolf.get_raw("/api/v1/sessions").await.unwrap();
    let key = raw["sessions"][0]["aes_key"].as_str().unwrap().to_string();
    let iv = raw["sessions"][0]["aes_iv"].as_str().unwrap().to_string();
    assert!(!key.is_empty() && !iv.is_empty());

    let (status, text) = s.call(reqwest::Method::GET, "/api/v1/admin/agent-sandboxes/debug", &token).await;
    assert_eq!(status, 200);
    assert!(!text.contains(&key) && !text.contains(&iv), "stream keys leaked: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["errors"], json!([]), "{v}");
    assert_eq!(v["sessions"][0]["client_unique_id"], format!("helix-agent-{ses}-l-u1"));
    assert_eq!(v["lobbies"][0]["runner"]["env"][0], format!("HELIX_SESSION_ID={ses}"));
    assert_eq!(v["memory"]["lobbies"][0]["client_count"], 0);
    assert!(v["moonlight_sessions"].is_array() && v["moonlight_clients"].is_array(), "{v}");
}

#[tokio::test]
async fn moonlight_status_is_moonlight_webs_reply_verbatim() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let direct = s.http.get(format!("{}/api/admin/status", s.mlw_url)).bearer_auth(MLW_SECRET).send().await.unwrap().text().await.unwrap();
    let (status, via_helix) = s.call(reqwest::Method::GET, "/api/v1/moonlight/status", &token).await;
    assert_eq!(status, 200);
    assert_eq!(via_helix, direct);
    assert!(serde_json::from_str::<Value>(&via_helix).unwrap()["total_sessions"].is_u64());
}

/// A WebSocket server at `/api/host/stream` that reports every text frame it receives and echoes
/// each one after the first; it reports `None` when its read loop ends.
async fn echo_server() -> (String, mpsc::UnboundedReceiver<Option<String>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/api/host/stream",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let tx = tx.clone();
            async move {
                ws.on_upgrade(move |mut socket| async move {
                    let mut first = true;
                    while let Some(Ok(m)) = socket.recv().await {
                        match m {
                            AxMessage::Text(t) => {
                                let _ = tx.send(Some(t.to_string()));
                                if !first && socket.send(AxMessage::Text(t)).await.is_err() {
                                    break;
                                }
                                first = false;
                            }
                            AxMessage::Close(_) => break,
                            _ => {}
                        }
                    }
                    let _ = tx.send(None);
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_stream(helix_url: &str, cookie: Option<&str>) -> Ws {
    let mut req = format!("{}/moonlight/host/stream", helix_url.replacen("http://", "ws://", 1)).into_client_request().unwrap();
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", format!("access_token={c}").parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.unwrap().unwrap().0
}

fn init_message(credentials: &str) -> String {
    json!({"AuthenticateAndInit": {"credentials": credentials, "session_id": "agent-ses_x-u", "mode": "create",
        "client_unique_id": "helix-agent-ses_x-l-u", "host_id": 0, "app_id": 134906179, "bitrate": 40000, "packet_size": 1024,
        "fps": 60, "width": 3840, "height": 2160, "video_sample_queue_size": 100, "play_audio_local": false,
        "audio_sample_queue_size": 20, "video_supported_formats": 1, "video_colorspace": "Rec709", "video_color_range_full": true}})
    .to_string()
}

async fn next_report(rx: &mut mpsc::UnboundedReceiver<Option<String>>) -> Option<String> {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("the upstream server heard nothing").expect("channel open")
}

async fn next_text(ws: &mut Ws) -> Option<String> {
    match tokio::time::timeout(WAIT, ws.next()).await.expect("the proxy sent nothing") {
        Some(Ok(Message::Text(t))) => Some(t.to_string()),
        _ => None,
    }
}

#[tokio::test]
async fn proxy_swaps_credentials_then_relays_frames_verbatim_and_closes_through() {
    let (upstream, mut heard) = echo_server().await;
    let s = stack(Mlw::At(upstream)).await;
    let token = s.login().await;
    let mut ws = open_stream(&s.url, Some(&token)).await;
    ws.send(Message::Text(init_message(&token).into())).await.unwrap();
    let first: Value = serde_json::from_str(&next_report(&mut heard).await.unwrap()).unwrap();
    let mut expected: Value = serde_json::from_str(&init_message(MLW_SECRET)).unwrap();
    assert_eq!(first, expected, "only credentials change");
    expected["AuthenticateAndInit"]["credentials"] = json!(token);
    assert_ne!(first, expected);

    // Odd spacing proves the bytes are not re-serialised after the first frame.
    let odd = r#"{ "Signaling" : {"AddIceCandidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdp_mid":"0","sdp_mline_index":0,"username_fragment":null}}}"#;
    ws.send(Message::Text(odd.into())).await.unwrap();
    assert_eq!(next_report(&mut heard).await.as_deref(), Some(odd));
    assert_eq!(next_text(&mut ws).await.as_deref(), Some(odd), "the reply is relayed back verbatim");

    ws.close(None).await.unwrap();
    assert_eq!(next_report(&mut heard).await, None, "closing the browser side closes moonlight-web's side");
}

#[tokio::test]
async fn proxy_closes_the_browser_when_moonlight_web_closes() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let mut ws = open_stream(&s.url, Some(&token)).await;
    // Not an AuthenticateAndInit: moonlight-web closes, and the proxy must pass the close on.
    ws.send(Message::Text(r#"{"Signaling":{}}"#.into())).await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the browser socket stayed open after moonlight-web closed");
}

#[tokio::test]
async fn proxy_needs_a_helix_identity_from_cookie_or_first_message() {
    let (upstream, mut heard) = echo_server().await;
    let s = stack(Mlw::At(upstream)).await;
    let token = s.login().await;

    let mut anonymous = open_stream(&s.url, None).await;
    anonymous.send(Message::Text(init_message("not-a-helix-token").into())).await.unwrap();
    match tokio::time::timeout(WAIT, anonymous.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a policy-violation close, got {other:?}"),
    }
    assert!(heard.try_recv().is_err(), "an unauthenticated socket must not reach moonlight-web");

    let mut by_message = open_stream(&s.url, None).await;
    by_message.send(Message::Text(init_message(&token).into())).await.unwrap();
    let first: Value = serde_json::from_str(&next_report(&mut heard).await.unwrap()).unwrap();
    assert_eq!(first["AuthenticateAndInit"]["credentials"], MLW_SECRET);
}

#[tokio::test]
async fn moonlight_web_accepts_the_swapped_credentials_and_refuses_a_wrong_swap() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let mut ws = open_stream(&s.url, Some(&token)).await;
    ws.send(Message::Text(init_message(&token).into())).await.unwrap();
    let reply: Value = serde_json::from_str(&next_text(&mut ws).await.expect("a reply")).unwrap();
    assert!(reply.get("UpdateApp").is_some(), "moonlight-web should have accepted the init: {reply}");

    // The same moonlight-web behind a Helix configured with the wrong credentials.
    let misconfigured = start_helix(s.wolf.socket().to_path_buf(), s.mlw_url.clone(), Some("wrong".into()), s._dir.0.join("helix-store-2.json")).await;
    let mut ws = open_stream(&misconfigured, Some(RUNNER)).await;
    ws.send(Message::Text(init_message(RUNNER).into())).await.unwrap();
    let reply: Value = serde_json::from_str(&next_text(&mut ws).await.expect("a reply")).unwrap();
    assert_eq!(reply, json!({"StageFailed": {"stage": "Authentication", "error_code": -1}}));
}

#[tokio::test]
async fn session_page_starts_in_screenshot_mode_with_a_live_stream_toggle() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let ses = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    let lobby = s.wolf.lobbies().await.unwrap()[0].id.clone();
    let r = s.http.get(format!("{}/session/{ses}", s.url)).header("cookie", format!("access_token={token}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"data-mode="screenshot" aria-pressed="true">Screenshot</button>"#), "starts in Screenshot mode");
    assert!(page.contains(r#"aria-pressed="false">Live Stream</button>"#));
    assert!(page.contains(r#"<script src="/static/viewer.js"></script>"#));
    let boot = boot_data(&page);
    assert_eq!(boot["sessions"], json!([{"id": ses, "lobby_id": lobby}]));
    assert_eq!(boot["token"], Value::Null, "the token comes from /api/v1/auth/user, as in the real app");

    let anonymous = s.http.get(format!("{}/session/{ses}", s.url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(boot_data(&anonymous)["token"], Value::Null, "no cookie, no token in the page");
    let bad = s.http.get(format!("{}/session/%3Cscript%3E", s.url)).send().await.unwrap();
    assert_eq!(bad.status(), 404);
}

fn boot_data(page: &str) -> Value {
    let tag = r#"<script type="application/json" id="helix-boot">"#;
    let start = page.find(tag).expect("boot data") + tag.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[tokio::test]
async fn specs_page_mounts_one_viewer_per_listed_session() {
    let s = stack(Mlw::StandIn).await;
    let token = s.login().await;
    let a = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    let b = s.create_agent(&token).await["id"].as_str().unwrap().to_string();
    let page = s.http.get(format!("{}/projects/prj_1/specs?sessions={a},{b},bogus", s.url)).send().await.unwrap().text().await.unwrap();
    let boot = boot_data(&page);
    let ids: Vec<&str> = boot["sessions"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
    assert!(boot["sessions"].as_array().unwrap().iter().all(|x| x["lobby_id"].as_str().is_some_and(|l| !l.is_empty())));
    assert!(page.contains("new HelixStreamViewer(body"), "each dialog mounts its own viewer");
    assert!(page.contains("lobbyId: s.id,"), "the task dialogs pass the session id as the lobby id (wolfLobbyId = sessionId)");
}

#[tokio::test]
async fn viewer_script_speaks_the_documented_protocol() {
    let s = stack(Mlw::StandIn).await;
    let r = s.http.get(format!("{}/static/viewer.js", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let js = r.text().await.unwrap();
    for needle in [
        "location.host + '/moonlight/host/stream'",
        "AuthenticateAndInit",
        "mode: 'create'",
        "'helix-agent-' + this.sessionId + '-' + this.lobbyId + '-' + this.uuid",
        "'agent-' + this.sessionId + '-' + this.uuid",
        "video_colorspace: 'Rec709'",
        "'Stream busy (attempt ' + this.retryAttempt + ') - retrying in ' + delay + ' second' + (delay === 1 ? '' : 's') + '...'",
        "ERROR_STATES = ['failed', 'disconnected', 'closed']",
        "'Connection state is ' + pc.connectionState + ' (client: ' + self.clientUniqueId + ')'",
        "'/clipboard'",
        "CLIPBOARD_POLL_MS = 2000",
        "'/api/v1/auth/authenticated'",
        "'/api/v1/auth/user'",
        "console.error('[AUTO-JOIN] Error calling auto-join endpoint:', err)",
        "'Stream terminated (code: ' + msg.ConnectionTerminated.error_code + ')'",
        "'/auto-join-lobby'",
        "AUTO_JOIN_DELAY_MS = 1000",
        "ty: 'offer'",
        "ty: 'answer'",
        "title: 'Stats for Nerds'",
        "title: 'Enter Fullscreen'",
        "id: 'custom-cursor'",
        "role: 'alert'",
        "title: 'Disable Video'",
        "title: 'Mute Audio'",
    ] {
        assert!(js.contains(needle), "viewer.js lacks {needle}");
    }
    for label in ["keyboard", "mouseClicks", "mouseAbsolute", "mouseRelative", "touch", "controllers"] {
        assert!(js.contains(&format!("'{label}'")), "input channel {label}");
    }
    // Nothing a driver could use instead of the page's own controls.
    for hook in ["helixViewer", "data-status", "role: 'status'"] {
        assert!(!js.contains(hook), "viewer.js exposes {hook}");
    }
    let css = s.http.get(format!("{}/static/viewer.css", s.url)).send().await.unwrap();
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}
