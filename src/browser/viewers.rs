//! From raw probe events to one record per stream viewer.
//!
//! A page may hold several viewers at once (Helix's floating task dialogs), and a tab may reload
//! and start over. Detectors want to ask "did viewer X of tab 2 connect, what did the server tell
//! it, and what does its video show?" without re-deriving the ws ↔ pc ↔ video wiring each time.
//! A viewer is one WebSocket that sent `AuthenticateAndInit`; the probe's `Link` and `VideoLink`
//! events attach its peer connection and `<video>`.

use crate::frames::stamp::{self, Stamp};
use crate::timeline::{
    Direction, EpochMs, Event, FrameSample, Observation, PcStateKind, ProbeEvent, StatsSample, TabId, LUMA_H, LUMA_W,
};
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// What [`crate::browser::Browser::close_tab`] records, so viewers of a closed tab count as closed.
pub const TAB_CLOSED: &str = "tab closed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StagePhase {
    Starting,
    Complete,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub at: EpochMs,
    pub stage: String,
    pub phase: StagePhase,
    pub error_code: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerError {
    pub at: EpochMs,
    /// The server's bare string (`"PeerDisconnect"`, `"AlreadyStreaming"`, ...) or
    /// `"ConnectionTerminated (code N)"`.
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimedStats {
    pub at: EpochMs,
    pub stats: StatsSample,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimedFrame {
    pub at: EpochMs,
    pub video: u32,
    pub sample: FrameSample,
    /// The reference stack's picture stamp, when the frame carries one.
    pub stamp: Option<Stamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerFacts {
    pub tab: TabId,
    /// Which load of the tab (0 = first); ids restart with every load.
    pub page: u32,
    pub ws: u32,
    pub ws_url: Option<String>,
    /// When `AuthenticateAndInit` went out.
    pub started_at: EpochMs,
    pub pc: Option<u32>,
    pub video: Option<u32>,
    pub client_unique_id: Option<String>,
    pub session_id: Option<String>,
    pub mode: Option<String>,
    /// Wolf's session id, from `ConnectionComplete`.
    pub client_id: Option<String>,
    pub connection_complete_at: Option<EpochMs>,
    pub stages: Vec<Stage>,
    pub errors: Vec<ViewerError>,
    pub connection_state: Option<String>,
    pub ice_state: Option<String>,
    pub first_connected_at: Option<EpochMs>,
    pub last_stats: Option<TimedStats>,
    pub frames: Vec<TimedFrame>,
    pub closed_at: Option<EpochMs>,
    pub close_reason: Option<String>,
}

impl ViewerFacts {
    pub fn closed(&self) -> bool {
        self.closed_at.is_some()
    }

    fn new(tab: TabId, page: u32, ws: u32, at: EpochMs, init: &Value) -> Self {
        let s = |k: &str| init.get(k).and_then(Value::as_str).map(str::to_string);
        ViewerFacts {
            tab,
            page,
            ws,
            ws_url: None,
            started_at: at,
            pc: None,
            video: None,
            client_unique_id: s("client_unique_id"),
            session_id: s("session_id"),
            mode: s("mode"),
            client_id: None,
            connection_complete_at: None,
            stages: Vec::new(),
            errors: Vec::new(),
            connection_state: None,
            ice_state: None,
            first_connected_at: None,
            last_stats: None,
            frames: Vec::new(),
            closed_at: None,
            close_reason: None,
        }
    }

    fn close(&mut self, at: EpochMs, why: String) {
        if self.closed_at.is_none() {
            self.closed_at = Some(at);
            self.close_reason = Some(why);
        }
    }

    /// A message the server sent on this viewer's WebSocket.
    fn server_message(&mut self, at: EpochMs, msg: &Value) {
        match msg {
            Value::String(s) => self.errors.push(ViewerError { at, message: s.clone() }),
            Value::Object(o) => {
                for (variant, body) in o {
                    let stage = || body.get("stage").and_then(Value::as_str).unwrap_or("").to_string();
                    let phase = match variant.as_str() {
                        "StageStarting" => Some(StagePhase::Starting),
                        "StageComplete" => Some(StagePhase::Complete),
                        "StageFailed" => Some(StagePhase::Failed),
                        _ => None,
                    };
                    if let Some(phase) = phase {
                        let error_code = body.get("error_code").and_then(Value::as_i64);
                        self.stages.push(Stage { at, stage: stage(), phase, error_code });
                    } else if variant == "ConnectionComplete" {
                        self.client_id = body.get("client_id").and_then(Value::as_str).map(str::to_string);
                        self.connection_complete_at.get_or_insert(at);
                    } else if variant == "ConnectionTerminated" {
                        let code = body.get("error_code").map(Value::to_string).unwrap_or_else(|| "?".into());
                        self.errors.push(ViewerError { at, message: format!("ConnectionTerminated (code {code})") });
                    }
                }
            }
            _ => {}
        }
    }
}

/// Everything one load of one tab reported, in time order.
#[derive(Default)]
struct PageEvents<'a> {
    started: Option<EpochMs>,
    events: Vec<(EpochMs, &'a ProbeEvent)>,
    /// When and why this page stopped (reload or tab closed).
    ended: Option<(EpochMs, String)>,
}

/// One [`ViewerFacts`] per viewer in the observations, ordered by tab, page and WebSocket.
pub fn fold_viewers(observations: &[Observation]) -> Vec<ViewerFacts> {
    let mut pages: BTreeMap<(TabId, u32), PageEvents> = BTreeMap::new();
    let mut current: HashMap<TabId, u32> = HashMap::new();
    let mut ordered: Vec<&Observation> = observations.iter().collect();
    ordered.sort_by(|a, b| a.at.total_cmp(&b.at));
    for o in ordered {
        match &o.event {
            Event::Tab { tab, probe } => {
                if let ProbeEvent::PageLoad { .. } = probe {
                    let next = match current.get(tab) {
                        Some(p) => {
                            let old = pages.entry((*tab, *p)).or_default();
                            if old.events.is_empty() && old.started.is_none() {
                                *p
                            } else {
                                if old.ended.is_none() {
                                    old.ended = Some((o.at, "page reloaded".into()));
                                }
                                p + 1
                            }
                        }
                        None => 0,
                    };
                    current.insert(*tab, next);
                    pages.entry((*tab, next)).or_default().started = Some(o.at);
                } else {
                    let p = *current.entry(*tab).or_insert(0);
                    pages.entry((*tab, p)).or_default().events.push((o.at, probe));
                }
            }
            Event::Browser { tab: Some(tab), what } if what == TAB_CLOSED => {
                if let Some(p) = current.get(tab) {
                    let page = pages.entry((*tab, *p)).or_default();
                    page.ended.get_or_insert((o.at, TAB_CLOSED.into()));
                }
            }
            _ => {}
        }
    }
    pages.into_iter().flat_map(|((tab, page), events)| fold_page(tab, page, &events)).collect()
}

/// The viewers of one tab only.
pub fn fold_tab_viewers(observations: &[Observation], tab: TabId) -> Vec<ViewerFacts> {
    fold_viewers(observations).into_iter().filter(|v| v.tab == tab).collect()
}

fn fold_page(tab: TabId, page: u32, pe: &PageEvents) -> Vec<ViewerFacts> {
    let mut viewers: BTreeMap<u32, ViewerFacts> = BTreeMap::new();
    let mut ws_urls: HashMap<u32, String> = HashMap::new();
    let mut ws_pcs: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut pc_videos: HashMap<u32, Vec<u32>> = HashMap::new();

    for (at, ev) in &pe.events {
        match ev {
            ProbeEvent::WsOpen { ws, url } => {
                ws_urls.insert(*ws, url.clone());
            }
            ProbeEvent::WsMessage { ws, dir: Direction::Sent, msg } => {
                if let Some(init) = msg.get("AuthenticateAndInit") {
                    viewers.entry(*ws).or_insert_with(|| ViewerFacts::new(tab, page, *ws, *at, init));
                }
            }
            ProbeEvent::WsMessage { ws, dir: Direction::Received, msg } => {
                if let Some(v) = viewers.get_mut(ws) {
                    v.server_message(*at, msg);
                }
            }
            ProbeEvent::WsClose { ws, code, reason } => {
                if let Some(v) = viewers.get_mut(ws) {
                    v.close(*at, format!("websocket closed (code {code}{}{reason})", if reason.is_empty() { "" } else { ": " }));
                }
            }
            ProbeEvent::Link { ws, pc } => {
                let pcs = ws_pcs.entry(*ws).or_default();
                pcs.retain(|p| p != pc);
                pcs.push(*pc);
            }
            ProbeEvent::VideoLink { pc, video } => {
                let vs = pc_videos.entry(*pc).or_default();
                if !vs.contains(video) {
                    vs.push(*video);
                }
            }
            _ => {}
        }
    }

    for v in viewers.values_mut() {
        v.ws_url = ws_urls.get(&v.ws).cloned();
        // Both ends of an in-page loopback share ufrags, and a page may replace its pc: prefer
        // the latest linked pc that feeds a <video>, else the latest linked one.
        let linked = ws_pcs.get(&v.ws).cloned().unwrap_or_default();
        v.pc = linked.iter().rev().find(|p| pc_videos.contains_key(p)).or(linked.last()).copied();
        if let Some((at, why)) = &pe.ended {
            v.close(*at, why.clone());
        }
        let Some(pc) = v.pc else { continue };
        let videos = pc_videos.get(&pc).cloned().unwrap_or_default();
        v.video = videos.last().copied();
        for (at, ev) in &pe.events {
            match ev {
                ProbeEvent::PcState { pc: p, which, state } if *p == pc => match which {
                    PcStateKind::Connection => {
                        if state == "connected" && v.first_connected_at.is_none() {
                            v.first_connected_at = Some(*at);
                        }
                        v.connection_state = Some(state.clone());
                    }
                    PcStateKind::IceConnection => v.ice_state = Some(state.clone()),
                    _ => {}
                },
                ProbeEvent::Stats { pc: p, stats } if *p == pc => {
                    v.last_stats = Some(TimedStats { at: *at, stats: stats.clone() });
                }
                ProbeEvent::Frame { video, sample } if videos.contains(video) => {
                    v.frames.push(TimedFrame { at: *at, video: *video, sample: sample.clone(), stamp: decode_stamp(sample) });
                }
                _ => {}
            }
        }
    }
    viewers.into_values().collect()
}

fn decode_stamp(sample: &FrameSample) -> Option<Stamp> {
    if sample.luma.is_empty() {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(&sample.luma).ok()?;
    (bytes.len() == LUMA_W * LUMA_H).then(|| stamp::decode(&bytes, LUMA_W, LUMA_H)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tab_ev(at: f64, tab: TabId, probe: ProbeEvent) -> Observation {
        Observation { at, event: Event::Tab { tab, probe } }
    }

    fn sent(ws: u32, msg: Value) -> ProbeEvent {
        ProbeEvent::WsMessage { ws, dir: Direction::Sent, msg }
    }

    fn recv(ws: u32, msg: Value) -> ProbeEvent {
        ProbeEvent::WsMessage { ws, dir: Direction::Received, msg }
    }

    fn init(cuid: &str) -> Value {
        json!({"AuthenticateAndInit": {"session_id": format!("agent-ses_1-{cuid}"), "mode": "create", "client_unique_id": cuid}})
    }

    fn frame(luma: f64) -> FrameSample {
        FrameSample { video_width: 320, video_height: 180, presented: 1, mean_luma: luma, hash: "x".into(), luma: String::new() }
    }

    #[test]
    fn two_viewers_in_one_page_are_told_apart() {
        let conn = |pc| ProbeEvent::PcState { pc, which: PcStateKind::Connection, state: "connected".into() };
        let obs = vec![
            tab_ev(1.0, 0, ProbeEvent::PageLoad { url: "http://x/?e2e_tab=0".into() }),
            tab_ev(2.0, 0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/moonlight/host/stream".into() }),
            tab_ev(2.1, 0, sent(0, init("a"))),
            tab_ev(2.2, 0, ProbeEvent::WsOpen { ws: 1, url: "ws://x/moonlight/host/stream".into() }),
            tab_ev(2.3, 0, sent(1, init("b"))),
            tab_ev(3.0, 0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }),
            tab_ev(3.1, 0, ProbeEvent::PcCreated { pc: 1, config: json!({}) }),
            // b's pc is the first one created: the link, not creation order, decides.
            tab_ev(3.5, 0, ProbeEvent::Link { ws: 1, pc: 0 }),
            tab_ev(3.6, 0, ProbeEvent::Link { ws: 0, pc: 1 }),
            tab_ev(4.0, 0, recv(0, json!({"StageStarting": {"stage": "Launch Streamer"}}))),
            tab_ev(4.1, 0, recv(1, json!("AlreadyStreaming"))),
            tab_ev(5.0, 0, conn(1)),
            tab_ev(5.1, 0, recv(0, json!({"ConnectionComplete": {"capabilities": {}, "width": 1, "height": 1, "client_id": "123"}}))),
            tab_ev(5.5, 0, ProbeEvent::VideoLink { pc: 1, video: 0 }),
            tab_ev(6.0, 0, ProbeEvent::Frame { video: 0, sample: frame(80.0) }),
            tab_ev(6.0, 0, ProbeEvent::Frame { video: 1, sample: frame(0.0) }),
            tab_ev(7.0, 0, ProbeEvent::WsClose { ws: 1, code: 1000, reason: String::new() }),
        ];
        let vs = fold_viewers(&obs);
        assert_eq!(vs.len(), 2);
        let a = &vs[0];
        assert_eq!((a.ws, a.pc, a.video), (0, Some(1), Some(0)));
        assert_eq!(a.client_unique_id.as_deref(), Some("a"));
        assert_eq!(a.mode.as_deref(), Some("create"));
        assert_eq!(a.client_id.as_deref(), Some("123"));
        assert_eq!(a.first_connected_at, Some(5.0));
        assert_eq!(a.stages.len(), 1);
        assert_eq!(a.stages[0].phase, StagePhase::Starting);
        assert_eq!(a.frames.len(), 1, "only its own video's frames");
        assert_eq!(a.frames[0].sample.mean_luma, 80.0);
        assert!(a.errors.is_empty());
        assert!(!a.closed());
        let b = &vs[1];
        assert_eq!((b.ws, b.pc), (1, Some(0)));
        assert_eq!(b.errors[0].message, "AlreadyStreaming");
        assert_eq!(b.connection_state, None);
        assert!(b.closed());
    }

    #[test]
    fn reload_and_tab_close_end_viewers_and_ids_restart() {
        let obs = vec![
            tab_ev(1.0, 3, ProbeEvent::PageLoad { url: "u".into() }),
            tab_ev(1.1, 3, sent(0, init("first"))),
            tab_ev(2.0, 3, ProbeEvent::PageLoad { url: "u".into() }),
            tab_ev(2.1, 3, sent(0, init("second"))),
            tab_ev(2.2, 3, recv(0, json!({"ConnectionTerminated": {"error_code": 7}}))),
            Observation { at: 3.0, event: Event::Browser { tab: Some(3), what: TAB_CLOSED.into() } },
        ];
        let vs = fold_tab_viewers(&obs, 3);
        assert_eq!(vs.len(), 2);
        assert_eq!((vs[0].page, vs[0].client_unique_id.as_deref()), (0, Some("first")));
        assert_eq!(vs[0].closed_at, Some(2.0));
        assert_eq!(vs[0].close_reason.as_deref(), Some("page reloaded"));
        assert_eq!((vs[1].page, vs[1].client_unique_id.as_deref()), (1, Some("second")));
        assert_eq!(vs[1].errors[0].message, "ConnectionTerminated (code 7)");
        assert_eq!(vs[1].close_reason.as_deref(), Some(TAB_CLOSED));
        assert!(fold_tab_viewers(&obs, 4).is_empty());
    }

    #[test]
    fn a_socket_without_authenticate_is_not_a_viewer() {
        let obs = vec![
            tab_ev(1.0, 0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/other".into() }),
            tab_ev(1.1, 0, sent(0, json!({"hello": 1}))),
            tab_ev(1.2, 0, recv(0, json!("PeerDisconnect"))),
        ];
        assert!(fold_viewers(&obs).is_empty());
    }
}
