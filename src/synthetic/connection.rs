//! One connection attempt of a synthetic viewer: its WebSocket's signalling and its peer
//! connection, as the real client's `onServerMessage`/`onSignaling` handle them (the offer at
//! `WebRtcConfig`, the server's offer answered, candidates held until a remote description).

use super::peer;
use super::INPUT_CHANNELS;
use super::{SyntheticError, ViewerConfig};
use crate::timeline::{Direction, Event, ProbeEvent, StatsSample, Timeline};
use futures::SinkExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::RTCPeerConnection;

/// What the viewer loop does about a server message.
pub(super) enum Reaction {
    None,
    Send(Vec<Value>),
    Connected,
    Busy,
}

/// One attempt's WebSocket and peer connection.
pub(super) struct Connection {
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
    pub outgoing: mpsc::UnboundedReceiver<Value>,
    outgoing_tx: mpsc::UnboundedSender<Value>,
    /// Messages of the `general` data channel.
    pub general: mpsc::UnboundedReceiver<Value>,
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
    pub fn new(ws: u32, cfg: ViewerConfig, timeline: Timeline, client_unique_id: String) -> Self {
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

    pub async fn send<S>(&self, ws: &mut S, msg: Value)
    where
        S: futures::Sink<Message> + Unpin,
    {
        self.emit(ProbeEvent::WsMessage { ws: self.ws, dir: Direction::Sent, msg: msg.clone() });
        let _ = ws.send(Message::Text(msg.to_string().into())).await;
    }

    pub async fn server_message(&mut self, msg: &Value, next_pc: &mut u32) -> Reaction {
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
    pub fn stats(&self) {
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

    pub async fn close(&mut self) {
        if let Some((_, pc)) = self.pc.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), pc.close()).await;
        }
    }
}
