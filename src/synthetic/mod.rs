//! Synthetic viewers: Helix's stream viewer without a browser, so one machine can hold many more
//! viewers than it can hold Chromium tabs (issue 16).
//!
//! A synthetic viewer does on the wire what the real `MoonlightStreamViewer` does
//! (`/work/shared/reference/helix-viewer.md`, `helix.md`): it loads the account
//! (`/api/v1/auth/authenticated`, `/api/v1/auth/user`) with the login cookie, reads the session's
//! lobby, `GET /api/v1/config` and `/api/v1/wolf/ui-app-id`, opens Helix's WebSocket proxy
//! (`/moonlight/host/stream`, cookie auth) and sends `AuthenticateAndInit` in `create` mode with a
//! `client_unique_id` of the real form (`helix-agent-<ses>-<lobby>-<uuid>`, a fresh UUID per
//! viewer), offers as soon as `WebRtcConfig` arrives (six input data channels), answers the
//! server's offer, trickles ICE both ways, posts the auto-join 1 s after `ConnectionComplete` and
//! polls the clipboard every 2 s; `AlreadyStreaming` is retried after 2, 3, … 10 s. Its peer is
//! webrtc-rs and its H.264 is decoded by openh264 (`helix_e2e_shared::h264`).
//!
//! It is its own implementation, not the stand-in's: the stand-in's client must not be reused by
//! the tester, or a bug in one would be repeated by the other and cancel out.
//!
//! What it observes goes on the timeline as the in-page probe's events of a tab
//! ([`ProbeEvent`]: the WebSocket's messages, the peer's states and candidates, stats, frame
//! samples with their 64×36 luma grid, the text the viewer would show, the API calls), under a
//! tab id of the run's, marked [`ProbeEvent::Synthetic`]: so the same folds, checks and detectors
//! judge it, and the reports say which viewers were synthetic.

use crate::browser::viewers::TAB_CLOSED;
use crate::timeline::{Direction, Event, ProbeEvent, SyntheticDecode, TabId, Timeline};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

mod connection;
mod peer;
mod sample;

use connection::{Connection, Reaction};

/// Labels of the input channels the real client creates before its offer.
const INPUT_CHANNELS: [&str; 6] = ["keyboard", "mouseClicks", "mouseAbsolute", "mouseRelative", "touch", "controllers"];
const AUTO_JOIN_DELAY: Duration = Duration::from_millis(1000);
const CLIPBOARD_EVERY: Duration = Duration::from_secs(2);
const STATS_EVERY: Duration = Duration::from_secs(1);
const RETRY_MAX_S: u64 = 10;
/// Every HTTP call and the WebSocket's opening have this long, as a browser's fetch would not
/// (but a driver must not wait forever).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long closing may take before the viewer's task is dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("{0}")]
    Http(String),
    #[error("WebSocket: {0}")]
    Ws(String),
    #[error("WebRTC: {0}")]
    Rtc(#[from] webrtc::Error),
    #[error(transparent)]
    Decoder(#[from] helix_e2e_shared::h264::DecoderError),
}

/// What a synthetic viewer needs to mount.
#[derive(Clone)]
pub struct ViewerConfig {
    pub tab: TabId,
    /// Helix's base URL (`http://host:port`).
    pub helix_url: String,
    /// The login token, sent as the `access_token` cookie the way the browser holds it.
    pub token: String,
    pub session: String,
    pub decode: SyntheticDecode,
}

/// A mounted synthetic viewer; [`SyntheticViewer::close`] unmounts it.
pub struct SyntheticViewer {
    pub tab: TabId,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    timeline: Timeline,
}

impl SyntheticViewer {
    /// Mount a viewer: it connects in the background, as a page does once loaded.
    pub fn start(cfg: ViewerConfig, timeline: Timeline) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tab = cfg.tab;
        let view = View::new(cfg, timeline.clone());
        let task = tokio::spawn(async move { view.run(stopped).await });
        SyntheticViewer { tab, stop, task, timeline }
    }

    /// Unmount: the WebSocket gets its close frame, the peer connection is closed, then the tab
    /// is recorded closed (what a browser tab's close records).
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(CLOSE_DEADLINE, &mut task).await.is_err() {
            tracing::warn!(tab = self.tab, "synthetic viewer did not close within {CLOSE_DEADLINE:?}; dropped");
            task.abort();
        }
        self.timeline.push(Event::Browser { tab: Some(self.tab), what: TAB_CLOSED.into() });
    }
}

/// One viewer's state across its connection attempts (the React component's).
struct View {
    cfg: ViewerConfig,
    timeline: Timeline,
    http: reqwest::Client,
    /// Ids as the probe numbers them per page: sockets and peer connections in creation order.
    next_ws: u32,
    next_pc: u32,
    retry_attempt: u64,
}

/// How one connection attempt ended.
enum Attempt {
    Stopped,
    Retry(Duration),
    /// The viewer shows an error and waits (a user would press Reconnect; the driver's scenario
    /// decides whether to).
    Errored,
}

impl View {
    fn new(cfg: ViewerConfig, timeline: Timeline) -> Self {
        let http = reqwest::Client::builder().timeout(REQUEST_DEADLINE).build().unwrap_or_default();
        View { cfg, timeline, http, next_ws: 0, next_pc: 0, retry_attempt: 0 }
    }

    fn emit(&self, probe: ProbeEvent) {
        self.timeline.push(Event::Tab { tab: self.cfg.tab, probe });
    }

    /// Text the viewer shows; `alert` for its error alert, as the page's `role`.
    fn show(&self, text: String, alert: bool) {
        self.emit(ProbeEvent::UiText { text, role: if alert { "alert".into() } else { String::new() } });
    }

    /// One call to Helix's API as the page's `fetch`, recorded as the browser's network events
    /// are (the body only for the auto-join and for errors, never for `/auth/`).
    async fn call(&self, method: reqwest::Method, path: &str, bearer: bool) -> Result<(u16, String), SyntheticError> {
        let url = format!("{}{}", self.cfg.helix_url, path);
        let mut req = self.http.request(method.clone(), &url).header("Cookie", format!("access_token={}", self.cfg.token));
        if bearer {
            req = req.bearer_auth(&self.cfg.token);
        }
        let answer = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            Ok::<_, reqwest::Error>((status, resp.text().await?))
        }
        .await;
        let keep_body = |status: u16| !path.contains("/auth/") && (status >= 400 || path.ends_with("/auto-join-lobby"));
        match answer {
            Ok((status, text)) => {
                let body = keep_body(status).then(|| text.chars().take(2000).collect());
                self.emit(ProbeEvent::Http { method: method.to_string(), path: path.into(), status: Some(status), body, error: None });
                Ok((status, text))
            }
            Err(e) => {
                self.emit(ProbeEvent::Http { method: method.to_string(), path: path.into(), status: None, body: None, error: Some(e.to_string()) });
                Err(SyntheticError::Http(format!("{method} {path}: {e}")))
            }
        }
    }

    async fn get_json(&self, path: &str, bearer: bool) -> Result<Value, SyntheticError> {
        let (status, text) = self.call(reqwest::Method::GET, path, bearer).await?;
        if !(200..300).contains(&status) {
            return Err(SyntheticError::Http(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>())));
        }
        serde_json::from_str(&text).map_err(|e| SyntheticError::Http(format!("GET {path}: {e}")))
    }

    async fn run(mut self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let page = format!("{}/session/{}", self.cfg.helix_url, self.cfg.session);
        self.emit(ProbeEvent::PageLoad { url: page });
        self.emit(ProbeEvent::Synthetic { decode: self.cfg.decode });
        // The account context, then the session's lobby, as the session page has them.
        let user = async {
            let a = self.get_json("/api/v1/auth/authenticated", false).await?;
            if a.get("authenticated").and_then(Value::as_bool) != Some(true) {
                return Ok(None);
            }
            self.get_json("/api/v1/auth/user", false).await.map(Some)
        }
        .await;
        if !matches!(&user, Ok(Some(u)) if u.get("token").and_then(Value::as_str).is_some()) {
            self.show("Not authenticated - please log in".into(), true);
            return;
        }
        let lobby = match self.get_json(&format!("/api/v1/sessions/{}", self.cfg.session), true).await {
            Ok(s) => s.pointer("/config/wolf_lobby_id").and_then(Value::as_str).unwrap_or_default().to_string(),
            Err(e) => {
                self.show(format!("Failed to load session: {e}"), true);
                return;
            }
        };
        let uuid = uuid::Uuid::new_v4();
        let ids = Ids {
            client_unique_id: format!("helix-agent-{}-{lobby}-{uuid}", self.cfg.session),
            moonlight_session_id: format!("agent-{}-{uuid}", self.cfg.session),
        };
        loop {
            match self.attempt(&ids, &mut stopped).await {
                Attempt::Stopped => return,
                Attempt::Retry(delay) => {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped.changed() => return,
                    }
                }
                Attempt::Errored => {
                    let _ = stopped.changed().await;
                    return;
                }
            }
        }
    }

    /// One `connect()` of the real viewer, until it is stopped, errors or is told to retry.
    async fn attempt(&mut self, ids: &Ids, stopped: &mut tokio::sync::watch::Receiver<bool>) -> Attempt {
        self.show("Initializing...".into(), false);
        let mut bitrate = 40_000;
        if let Ok(cfg) = self.get_json("/api/v1/config", false).await {
            if let Some(mbps) = cfg.get("streaming_bitrate_mbps").and_then(Value::as_u64) {
                bitrate = mbps * 1000;
            }
        }
        let app_id = match self.get_json("/api/v1/wolf/ui-app-id", true).await {
            Ok(ui) => ui.get("wolf_ui_app_id").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string()))),
            Err(e) => {
                self.show(format!("Failed to get Wolf UI app ID: {e}"), true);
                return Attempt::Errored;
            }
        };
        let app_id: Value = app_id.and_then(|a| a.parse::<u64>().ok()).map(Value::from).unwrap_or(Value::Null);
        self.show("Connecting to streaming server...".into(), false);
        let ws_url = format!("{}/moonlight/host/stream", self.cfg.helix_url.replacen("http", "ws", 1));
        let ws_id = self.next_ws;
        self.next_ws += 1;
        let request = ws_url.as_str().into_client_request().map(|mut r| {
            if let Ok(v) = format!("access_token={}", self.cfg.token).parse() {
                r.headers_mut().insert("Cookie", v);
            }
            r
        });
        let opened = match request {
            Ok(r) => tokio::time::timeout(REQUEST_DEADLINE, tokio_tungstenite::connect_async(r)).await,
            Err(e) => {
                self.show(format!("WebSocket: {e}"), true);
                return Attempt::Errored;
            }
        };
        let mut ws = match opened {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                tracing::warn!(tab = self.cfg.tab, "synthetic viewer: WebSocket: {e}");
                self.emit(ProbeEvent::WsClose { ws: ws_id, code: 1006, reason: String::new() });
                return Attempt::Errored;
            }
            Err(_) => {
                tracing::warn!(tab = self.cfg.tab, "synthetic viewer: WebSocket did not open within {REQUEST_DEADLINE:?}");
                return Attempt::Errored;
            }
        };
        self.emit(ProbeEvent::WsOpen { ws: ws_id, url: ws_url });
        self.show("Stream connected".into(), false);
        let init = json!({"AuthenticateAndInit": {
            "credentials": self.cfg.token,
            "session_id": ids.moonlight_session_id,
            "mode": "create",
            "client_unique_id": ids.client_unique_id,
            "host_id": 0,
            "app_id": app_id,
            "bitrate": bitrate,
            "packet_size": 1024,
            "fps": 60,
            "width": 3840,
            "height": 2160,
            "video_sample_queue_size": 100,
            "play_audio_local": false,
            "audio_sample_queue_size": 20,
            "video_supported_formats": 1,
            "video_colorspace": "Rec709",
            "video_color_range_full": true
        }});
        let mut conn = Connection::new(ws_id, self.cfg.clone(), self.timeline.clone(), ids.client_unique_id.clone());
        conn.send(&mut ws, init).await;
        let mut stats = tokio::time::interval(STATS_EVERY);
        let mut clipboard = tokio::time::interval(CLIPBOARD_EVERY);
        let mut auto_join: Option<tokio::time::Instant> = None;
        let mut clipboard_on = false;
        let mut ws_open = true;
        let outcome = loop {
            let join_at = auto_join;
            tokio::select! {
                _ = stopped.changed() => break Attempt::Stopped,
                msg = ws.next(), if ws_open => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let msg: Value = match serde_json::from_str(&text) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        self.emit(ProbeEvent::WsMessage { ws: ws_id, dir: Direction::Received, msg: msg.clone() });
                        match conn.server_message(&msg, &mut self.next_pc).await {
                            Reaction::None => {}
                            Reaction::Send(out) => for m in out { conn.send(&mut ws, m).await },
                            Reaction::Connected => {
                                self.retry_attempt = 0;
                                self.show("Streaming active".into(), false);
                                auto_join = Some(tokio::time::Instant::now() + AUTO_JOIN_DELAY);
                                clipboard_on = true;
                            }
                            Reaction::Busy => {
                                self.retry_attempt += 1;
                                let delay = (self.retry_attempt + 1).min(RETRY_MAX_S);
                                self.show(format!("Stream busy (attempt {}) - retrying in {delay} second{}...", self.retry_attempt, if delay == 1 { "" } else { "s" }), true);
                                break Attempt::Retry(Duration::from_secs(delay));
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                        self.emit(ProbeEvent::WsClose { ws: ws_id, code, reason });
                        ws_open = false;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        self.emit(ProbeEvent::WsClose { ws: ws_id, code: 1006, reason: String::new() });
                        ws_open = false;
                    }
                },
                Some(out) = conn.outgoing.recv() => {
                    if ws_open {
                        conn.send(&mut ws, out).await;
                    }
                }
                Some(general) = conn.general.recv() => {
                    // The `general` channel's messages go the socket's way (IDX:494-501).
                    if let Reaction::Send(out) = conn.server_message(&general, &mut self.next_pc).await {
                        for m in out { conn.send(&mut ws, m).await }
                    }
                }
                _ = async { tokio::time::sleep_until(join_at.unwrap_or_else(tokio::time::Instant::now)).await }, if join_at.is_some() => {
                    auto_join = None;
                    let path = format!("/api/v1/external-agents/{}/auto-join-lobby", self.cfg.session);
                    let _ = self.call(reqwest::Method::POST, &path, true).await;
                }
                _ = clipboard.tick(), if clipboard_on => {
                    let _ = self.call(reqwest::Method::GET, &format!("/api/v1/external-agents/{}/clipboard", self.cfg.session), true).await;
                }
                _ = stats.tick() => conn.stats(),
            }
        };
        // Teardown (unmount or retry): the socket's close frame, then the peer's close.
        if ws_open {
            let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
            self.emit(ProbeEvent::WsClose { ws: ws_id, code: 1000, reason: String::new() });
        }
        conn.close().await;
        outcome
    }
}

struct Ids {
    client_unique_id: String,
    moonlight_session_id: String,
}
