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
use crate::timeline::{Direction, Event, FrameSample, ProbeEvent, StatsSample, SyntheticDecode, TabId, Timeline, LUMA_H, LUMA_W};
use futures::{SinkExt, StreamExt};
use helix_e2e_shared::h264::{Decode, Picture, TrackDecoder};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use webrtc::peer_connection::RTCPeerConnection;

mod peer;

/// Labels of the input channels the real client creates before its offer.
const INPUT_CHANNELS: [&str; 6] = ["keyboard", "mouseClicks", "mouseAbsolute", "mouseRelative", "touch", "controllers"];
const AUTO_JOIN_DELAY: Duration = Duration::from_millis(1000);
const CLIPBOARD_EVERY: Duration = Duration::from_secs(2);
const STATS_EVERY: Duration = Duration::from_secs(1);
/// The probe's frame sampling period; in [`SyntheticDecode::Every`] a sample is taken this often.
const FRAME_EVERY_MS: f64 = 200.0;
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

/// What the viewer loop does about a server message.
enum Reaction {
    None,
    Send(Vec<Value>),
    Connected,
    Busy,
}

/// One attempt's WebSocket and peer connection.
struct Connection {
    ws: u32,
    cfg: ViewerConfig,
    timeline: Timeline,
    client_unique_id: String,
    pc: Option<(u32, Arc<RTCPeerConnection>)>,
    /// Remote candidates that came before the remote description.
    pending: Vec<webrtc::ice_transport::ice_candidate::RTCIceCandidateInit>,
    offer_sent: bool,
    counters: Arc<Counters>,
    /// Signalling the peer's callbacks want sent (local candidates).
    outgoing: mpsc::UnboundedReceiver<Value>,
    outgoing_tx: mpsc::UnboundedSender<Value>,
    /// Messages of the `general` data channel.
    general: mpsc::UnboundedReceiver<Value>,
    general_tx: mpsc::UnboundedSender<Value>,
}

/// What the video track delivered so far.
#[derive(Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub decoded: AtomicU64,
    pub size: Mutex<(u32, u32)>,
}

impl Connection {
    fn new(ws: u32, cfg: ViewerConfig, timeline: Timeline, client_unique_id: String) -> Self {
        let (outgoing_tx, outgoing) = mpsc::unbounded_channel();
        let (general_tx, general) = mpsc::unbounded_channel();
        Connection {
            ws,
            cfg,
            timeline,
            client_unique_id,
            pc: None,
            pending: Vec::new(),
            offer_sent: false,
            counters: Arc::default(),
            outgoing,
            outgoing_tx,
            general,
            general_tx,
        }
    }

    fn emit(&self, probe: ProbeEvent) {
        self.timeline.push(Event::Tab { tab: self.cfg.tab, probe });
    }

    async fn send<S>(&self, ws: &mut S, msg: Value)
    where
        S: futures::Sink<Message> + Unpin,
    {
        self.emit(ProbeEvent::WsMessage { ws: self.ws, dir: Direction::Sent, msg: msg.clone() });
        let _ = ws.send(Message::Text(msg.to_string().into())).await;
    }

    async fn server_message(&mut self, msg: &Value, next_pc: &mut u32) -> Reaction {
        if let Some(text) = msg.as_str() {
            if text == "AlreadyStreaming" {
                return Reaction::Busy;
            }
            self.emit(ProbeEvent::UiText { text: text.to_string(), role: "alert".into() });
            return Reaction::None;
        }
        let result = if let Some(config) = msg.get("WebRtcConfig") {
            self.on_config(config, next_pc).await
        } else if let Some(sig) = msg.get("Signaling") {
            self.on_signaling(sig).await
        } else if msg.get("ConnectionComplete").is_some() {
            return Reaction::Connected;
        } else if let Some(t) = msg.get("ConnectionTerminated") {
            let code = t.get("error_code").map(Value::to_string).unwrap_or_default();
            self.emit(ProbeEvent::UiText { text: format!("Stream terminated (code: {code})"), role: "alert".into() });
            return Reaction::None;
        } else if let Some(stage) = msg.pointer("/StageStarting/stage").and_then(Value::as_str) {
            self.emit(ProbeEvent::UiText { text: stage.to_string(), role: String::new() });
            return Reaction::None;
        } else {
            return Reaction::None;
        };
        match result {
            Ok(out) => Reaction::Send(out),
            Err(e) => {
                tracing::warn!(tab = self.cfg.tab, "synthetic viewer: signalling failed: {e}");
                Reaction::None
            }
        }
    }

    /// `WebRtcConfig`: the peer, its input channels, and the offer at once (IDX:226-233).
    async fn on_config(&mut self, config: &Value, next_pc: &mut u32) -> Result<Vec<Value>, SyntheticError> {
        if self.pc.is_some() || self.offer_sent {
            return Ok(Vec::new());
        }
        let id = *next_pc;
        *next_pc += 1;
        let pc = peer::new_peer(config).await?;
        self.emit(ProbeEvent::PcCreated { pc: id, config: config.clone() });
        self.emit(ProbeEvent::Link { ws: self.ws, pc: id });
        for label in INPUT_CHANNELS {
            pc.create_data_channel(label, None).await?;
        }
        peer::wire(&pc, id, self.hooks());
        self.pc = Some((id, pc.clone()));
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        self.offer_sent = true;
        let sdp = pc.local_description().await.map(|d| d.sdp).unwrap_or_default();
        Ok(vec![json!({"Signaling": {"Description": {"ty": "offer", "sdp": sdp}}})])
    }

    fn hooks(&self) -> peer::Hooks {
        peer::Hooks {
            tab: self.cfg.tab,
            timeline: self.timeline.clone(),
            client_unique_id: self.client_unique_id.clone(),
            decode: self.cfg.decode,
            counters: self.counters.clone(),
            outgoing: self.outgoing_tx.clone(),
            general: self.general_tx.clone(),
        }
    }

    async fn on_signaling(&mut self, sig: &Value) -> Result<Vec<Value>, SyntheticError> {
        use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
        let Some((_, pc)) = self.pc.clone() else { return Ok(Vec::new()) };
        if let Some(d) = sig.get("Description") {
            let sdp = d.get("sdp").and_then(Value::as_str).unwrap_or_default().to_string();
            match d.get("ty").and_then(Value::as_str) {
                Some("offer") => {
                    pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                    self.flush(&pc).await;
                    let answer = pc.create_answer(None).await?;
                    pc.set_local_description(answer).await?;
                    let sdp = pc.local_description().await.map(|d| d.sdp).unwrap_or_default();
                    return Ok(vec![json!({"Signaling": {"Description": {"ty": "answer", "sdp": sdp}}})]);
                }
                Some("answer") => {
                    pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
                    self.flush(&pc).await;
                }
                _ => {}
            }
        } else if let Some(c) = sig.get("AddIceCandidate") {
            let Some(candidate) = c.get("candidate").and_then(Value::as_str).filter(|c| !c.is_empty()) else { return Ok(Vec::new()) };
            let init = webrtc::ice_transport::ice_candidate::RTCIceCandidateInit {
                candidate: candidate.to_string(),
                sdp_mid: c.get("sdp_mid").and_then(Value::as_str).map(str::to_string),
                sdp_mline_index: c.get("sdp_mline_index").and_then(Value::as_u64).map(|i| i as u16),
                username_fragment: c.get("username_fragment").and_then(Value::as_str).map(str::to_string),
            };
            if pc.remote_description().await.is_none() {
                self.pending.push(init);
            } else if let Err(e) = pc.add_ice_candidate(init).await {
                tracing::warn!(tab = self.cfg.tab, "synthetic viewer: candidate refused: {e}");
            }
        }
        Ok(Vec::new())
    }

    async fn flush(&mut self, pc: &RTCPeerConnection) {
        for c in std::mem::take(&mut self.pending) {
            if let Err(e) = pc.add_ice_candidate(c).await {
                tracing::warn!(tab = self.cfg.tab, "synthetic viewer: candidate refused: {e}");
            }
        }
    }

    /// The video's counters as the probe's `getStats()` sample.
    fn stats(&self) {
        let Some((id, _)) = &self.pc else { return };
        let (w, h) = *self.counters.size.lock().unwrap_or_else(|e| e.into_inner());
        let stats = StatsSample {
            frames_received: Some(self.counters.received.load(Ordering::Relaxed)),
            frames_decoded: Some(self.counters.decoded.load(Ordering::Relaxed)),
            frame_width: (w > 0).then_some(w),
            frame_height: (h > 0).then_some(h),
            ..StatsSample::default()
        };
        self.emit(ProbeEvent::Stats { pc: *id, stats });
    }

    async fn close(&mut self) {
        if let Some((_, pc)) = self.pc.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), pc.close()).await;
        }
    }
}

/// Decodes a track's pictures and samples them as the probe samples a `<video>`.
pub(crate) struct Sampler {
    tab: TabId,
    timeline: Timeline,
    decode: SyntheticDecode,
    counters: Arc<Counters>,
    last_sample: f64,
}

impl Sampler {
    pub(crate) fn new(tab: TabId, timeline: Timeline, decode: SyntheticDecode, counters: Arc<Counters>) -> Self {
        Sampler { tab, timeline, decode, counters, last_sample: 0.0 }
    }

    pub(crate) fn decoder(&self) -> Result<TrackDecoder, SyntheticError> {
        Ok(TrackDecoder::new(match self.decode {
            SyntheticDecode::Every => Decode::Every,
            SyntheticDecode::Keyframes => Decode::Keyframes,
        })?)
    }

    /// One access unit: counted as received (presented), sampled when due.
    pub(crate) fn frame(&mut self, f: helix_e2e_shared::h264::Frame) {
        let presented = self.counters.received.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(p) = f.picture else { return };
        self.counters.decoded.fetch_add(1, Ordering::Relaxed);
        *self.counters.size.lock().unwrap_or_else(|e| e.into_inner()) = (p.width as u32, p.height as u32);
        let now = crate::timeline::now_ms();
        let due = match self.decode {
            SyntheticDecode::Every => now - self.last_sample >= FRAME_EVERY_MS,
            SyntheticDecode::Keyframes => true,
        };
        if !due {
            return;
        }
        self.last_sample = now;
        let sample = sample_of(&p, presented);
        self.timeline.push(Event::Tab { tab: self.tab, probe: ProbeEvent::Frame { video: 0, sample } });
    }
}

/// The probe's frame sample of a picture: the luma downscaled to `LUMA_W x LUMA_H` (area
/// average), its mean and FNV-1a hash (the probe's, so equal pictures hash equal).
pub fn sample_of(p: &Picture, presented: u64) -> FrameSample {
    use base64::Engine;
    let mut grid = vec![0u8; LUMA_W * LUMA_H];
    for gy in 0..LUMA_H {
        let (y0, y1) = (gy * p.height / LUMA_H, ((gy + 1) * p.height / LUMA_H).max(gy * p.height / LUMA_H + 1));
        for gx in 0..LUMA_W {
            let (x0, x1) = (gx * p.width / LUMA_W, ((gx + 1) * p.width / LUMA_W).max(gx * p.width / LUMA_W + 1));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1.min(p.height) {
                for x in x0..x1.min(p.width) {
                    sum += u64::from(p.luma[y * p.width + x]);
                    n += 1;
                }
            }
            grid[gy * LUMA_W + gx] = sum.checked_div(n).unwrap_or(0) as u8;
        }
    }
    let mean = grid.iter().map(|&b| f64::from(b)).sum::<f64>() / grid.len() as f64;
    let hash = grid.iter().fold(0x811c9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x01000193));
    FrameSample {
        video_width: p.width as u32,
        video_height: p.height as u32,
        presented,
        mean_luma: mean,
        hash: format!("{hash:08x}"),
        luma: base64::engine::general_purpose::STANDARD.encode(&grid),
        stamp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_the_probes_grid_of_the_picture() {
        // A 320x180 picture: left half black, right half white.
        let (w, h) = (320, 180);
        let luma: Vec<u8> = (0..w * h).map(|i| if i % w < w / 2 { 0 } else { 255 }).collect();
        let s = sample_of(&Picture { width: w, height: h, luma }, 7);
        assert_eq!((s.video_width, s.video_height, s.presented), (320, 180, 7));
        assert!((s.mean_luma - 127.5).abs() < 0.01, "{}", s.mean_luma);
        use base64::Engine;
        let grid = base64::engine::general_purpose::STANDARD.decode(&s.luma).unwrap();
        assert_eq!(grid.len(), LUMA_W * LUMA_H);
        assert_eq!((grid[0], grid[LUMA_W - 1]), (0, 255));
        // Equal pictures hash equal, different ones not.
        let again = sample_of(&Picture { width: w, height: h, luma: (0..w * h).map(|i| if i % w < w / 2 { 0 } else { 255 }).collect() }, 8);
        assert_eq!(s.hash, again.hash);
        assert_ne!(s.hash, sample_of(&Picture { width: w, height: h, luma: vec![9; w * h] }, 1).hash);
    }
}
