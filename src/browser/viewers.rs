//! From raw probe events to one record per stream viewer.
//!
//! A page may hold several viewers at once (Helix's floating task dialogs), and a tab may reload
//! and start over. Detectors want to ask "did viewer X of tab 2 connect, what did the server tell
//! it, and what does its video show?" without re-deriving the ws ↔ pc ↔ video wiring each time.
//! A viewer is one WebSocket that sent `AuthenticateAndInit`; the probe's `Link` and `VideoLink`
//! events attach its peer connection and `<video>`.
//!
//! Why one file of over 400 lines: it is under 400 lines without its tests.

use crate::timeline::{Direction, EpochMs, Event, FrameSample, Observation, PcStateKind, ProbeEvent, StatsSample, TabId, ViewerKind};
use helix_e2e_shared::stamp::Stamp;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};

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

/// One frame sample of a viewer's video, as the frame rules read it (small and `Copy`: a
/// viewer's recent frames are copied for every evaluation).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimedFrame {
    pub at: EpochMs,
    pub video: u32,
    pub video_width: u32,
    /// Presented frames so far.
    pub presented: u64,
    pub mean_luma: f64,
    /// The probe's picture hash, hashed again to a number (equal pictures, equal numbers).
    pub hash: u64,
    /// The reference stack's picture stamp, when the frame carries one.
    pub stamp: Option<Stamp>,
}

impl TimedFrame {
    pub fn of(at: EpochMs, video: u32, sample: &FrameSample) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sample.hash.hash(&mut h);
        TimedFrame {
            at,
            video,
            video_width: sample.video_width,
            presented: sample.presented,
            mean_luma: sample.mean_luma,
            hash: h.finish(),
            stamp: sample.stamp.or_else(|| sample.decode_stamp()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerFacts {
    pub tab: TabId,
    /// A browser tab's viewer or a synthetic one.
    pub kind: ViewerKind,
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
    /// When the peer connection, once connected, went `disconnected`, `failed` or `closed`.
    pub connection_lost_at: Option<EpochMs>,
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
            kind: ViewerKind::Tab,
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
            connection_lost_at: None,
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

/// How long a video's frame samples stay in memory. Every frame rule looks at recent frames
/// only (F8's `black_secs`, F9's `freeze_secs`, the correlation's `PIXEL_WINDOW_MS`, all a few
/// seconds; the configuration refuses thresholds past this), and keeping all of them would make
/// every reader's cost grow with the age of the run. The whole record is in `timeline.jsonl`.
pub const FRAME_MEMORY_MS: f64 = 20_000.0;

/// What one peer connection reported.
#[derive(Default, Clone)]
struct PcFacts {
    connection_state: Option<String>,
    ice_state: Option<String>,
    first_connected_at: Option<EpochMs>,
    connection_lost_at: Option<EpochMs>,
    last_stats: Option<TimedStats>,
}

/// One load of one tab: its viewers and the wiring the probe reported, folded as it arrives.
#[derive(Default)]
struct Page {
    /// Whether anything of this load was seen (a `PageLoad` with nothing after it is reused).
    seen: bool,
    kind: ViewerKind,
    viewers: BTreeMap<u32, ViewerFacts>,
    ws_urls: HashMap<u32, String>,
    /// Peer connections linked to each WebSocket, the latest last.
    ws_pcs: HashMap<u32, Vec<u32>>,
    pc_videos: HashMap<u32, Vec<u32>>,
    pcs: HashMap<u32, PcFacts>,
    /// Recent frames per `<video>` ([`FRAME_MEMORY_MS`]).
    frames: HashMap<u32, VecDeque<TimedFrame>>,
    /// When and why this page stopped (reload or tab closed).
    ended: Option<(EpochMs, String)>,
}

/// The viewers of a run, folded one observation at a time: each observation costs the same
/// however long the run has been going. [`ViewerFold::viewers`] assembles the records.
#[derive(Default)]
pub struct ViewerFold {
    pages: BTreeMap<(TabId, u32), Page>,
    current: HashMap<TabId, u32>,
}

impl ViewerFold {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take in one observation (in the order they arrived; a tab's probe reports in order).
    pub fn ingest(&mut self, o: &Observation) {
        match &o.event {
            Event::Tab { tab, probe: ProbeEvent::PageLoad { .. } } => {
                let next = match self.current.get(tab) {
                    Some(p) => {
                        let old = self.pages.entry((*tab, *p)).or_default();
                        if !old.seen {
                            *p
                        } else {
                            old.ended.get_or_insert((o.at, "page reloaded".into()));
                            p + 1
                        }
                    }
                    None => 0,
                };
                self.current.insert(*tab, next);
                self.pages.entry((*tab, next)).or_default().seen = true;
            }
            Event::Tab { tab, probe } => {
                let p = *self.current.entry(*tab).or_insert(0);
                let page = self.pages.entry((*tab, p)).or_default();
                page.seen = true;
                page.event(*tab, p, o.at, probe);
            }
            Event::Browser { tab: Some(tab), what } if what == TAB_CLOSED => {
                if let Some(p) = self.current.get(tab) {
                    self.pages.entry((*tab, *p)).or_default().ended.get_or_insert((o.at, TAB_CLOSED.into()));
                }
            }
            _ => {}
        }
    }

    /// Every viewer so far, ordered by tab, page and WebSocket.
    pub fn viewers(&self) -> Vec<ViewerFacts> {
        self.pages.values().flat_map(Page::assemble).collect()
    }

    /// The viewers of these tabs only.
    pub fn viewers_of(&self, tabs: &[TabId]) -> Vec<ViewerFacts> {
        self.pages.iter().filter(|((tab, _), _)| tabs.contains(tab)).flat_map(|(_, p)| p.assemble()).collect()
    }

    /// Forget pages that ended before `cutoff`: readers that only judge recent evidence (the
    /// live detectors) need not carry every viewer of a long run.
    pub fn forget_ended_before(&mut self, cutoff: EpochMs) {
        self.pages.retain(|_, p| p.ended.as_ref().is_none_or(|(at, _)| *at >= cutoff));
    }

    /// Frame samples held in memory (bounded by [`FRAME_MEMORY_MS`] per video).
    pub fn frames_held(&self) -> usize {
        self.pages.values().flat_map(|p| p.frames.values()).map(VecDeque::len).sum()
    }
}

impl Page {
    fn event(&mut self, tab: TabId, page: u32, at: EpochMs, ev: &ProbeEvent) {
        match ev {
            ProbeEvent::Synthetic { .. } => self.kind = ViewerKind::Synthetic,
            ProbeEvent::WsOpen { ws, url } => {
                self.ws_urls.insert(*ws, url.clone());
            }
            ProbeEvent::WsMessage { ws, dir: Direction::Sent, msg } => {
                if let Some(init) = msg.get("AuthenticateAndInit") {
                    self.viewers.entry(*ws).or_insert_with(|| ViewerFacts::new(tab, page, *ws, at, init));
                }
            }
            ProbeEvent::WsMessage { ws, dir: Direction::Received, msg } => {
                if let Some(v) = self.viewers.get_mut(ws) {
                    v.server_message(at, msg);
                }
            }
            ProbeEvent::WsClose { ws, code, reason } => {
                if let Some(v) = self.viewers.get_mut(ws) {
                    v.close(at, format!("websocket closed (code {code}{}{reason})", if reason.is_empty() { "" } else { ": " }));
                }
            }
            ProbeEvent::Link { ws, pc } => {
                let pcs = self.ws_pcs.entry(*ws).or_default();
                pcs.retain(|p| p != pc);
                pcs.push(*pc);
            }
            ProbeEvent::VideoLink { pc, video } => {
                let vs = self.pc_videos.entry(*pc).or_default();
                if !vs.contains(video) {
                    vs.push(*video);
                }
            }
            ProbeEvent::PcState { pc, which, state } => {
                let f = self.pcs.entry(*pc).or_default();
                match which {
                    PcStateKind::Connection => {
                        if state == "connected" && f.first_connected_at.is_none() {
                            f.first_connected_at = Some(at);
                        }
                        if matches!(state.as_str(), "disconnected" | "failed" | "closed") && f.first_connected_at.is_some() {
                            f.connection_lost_at.get_or_insert(at);
                        }
                        f.connection_state = Some(state.clone());
                    }
                    PcStateKind::IceConnection => f.ice_state = Some(state.clone()),
                    _ => {}
                }
            }
            ProbeEvent::Stats { pc, stats } => {
                self.pcs.entry(*pc).or_default().last_stats = Some(TimedStats { at, stats: stats.clone() });
            }
            ProbeEvent::Frame { video, sample } => {
                let frames = self.frames.entry(*video).or_default();
                frames.push_back(TimedFrame::of(at, *video, sample));
                while frames.front().is_some_and(|f| f.at < at - FRAME_MEMORY_MS) {
                    frames.pop_front();
                }
            }
            _ => {}
        }
    }

    /// The page's viewers with their peer connection, video and frames attached.
    fn assemble(&self) -> Vec<ViewerFacts> {
        self.viewers
            .values()
            .map(|base| {
                let mut v = base.clone();
                v.kind = self.kind;
                v.ws_url = self.ws_urls.get(&v.ws).cloned();
                // Both ends of an in-page loopback share ufrags, and a page may replace its pc:
                // prefer the latest linked pc that feeds a <video>, else the latest linked one.
                let linked = self.ws_pcs.get(&v.ws).map(Vec::as_slice).unwrap_or_default();
                v.pc = linked.iter().rev().find(|p| self.pc_videos.contains_key(p)).or(linked.last()).copied();
                if let Some((at, why)) = &self.ended {
                    v.close(*at, why.clone());
                }
                let Some(pc) = v.pc else { return v };
                let videos = self.pc_videos.get(&pc).map(Vec::as_slice).unwrap_or_default();
                v.video = videos.last().copied();
                if let Some(f) = self.pcs.get(&pc) {
                    v.connection_state = f.connection_state.clone();
                    v.ice_state = f.ice_state.clone();
                    v.first_connected_at = f.first_connected_at;
                    v.connection_lost_at = f.connection_lost_at;
                    v.last_stats = f.last_stats.clone();
                }
                v.frames = videos.iter().filter_map(|video| self.frames.get(video)).flatten().copied().collect();
                if videos.len() > 1 {
                    v.frames.sort_by(|a, b| a.at.total_cmp(&b.at));
                }
                v
            })
            .collect()
    }
}

/// One [`ViewerFacts`] per viewer in the observations, ordered by tab, page and WebSocket.
pub fn fold_viewers(observations: &[Observation]) -> Vec<ViewerFacts> {
    let mut ordered: Vec<&Observation> = observations.iter().collect();
    ordered.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut fold = ViewerFold::new();
    for o in ordered {
        fold.ingest(o);
    }
    fold.viewers()
}

/// The viewers of one tab only.
pub fn fold_tab_viewers(observations: &[Observation], tab: TabId) -> Vec<ViewerFacts> {
    fold_viewers(observations).into_iter().filter(|v| v.tab == tab).collect()
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
        FrameSample { video_width: 320, video_height: 180, presented: 1, mean_luma: luma, hash: "x".into(), luma: String::new(), stamp: None }
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
        assert_eq!(a.frames[0].mean_luma, 80.0);
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
