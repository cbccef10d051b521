//! The timeline boiled down to what a reader of a report looks at: per tab, its connection
//! states, signalling stages, stats rates, frame stamps and problems; on the server side, the
//! scenario's operations, Wolf events and log lines. The HTML and Markdown reports and the live
//! progress line all render from this one reading of the timeline.
//!
//! Why one file of over 400 lines: it is under 400 lines without its tests.

use crate::frames::stamp::Stamp;
use crate::timeline::{Direction, EpochMs, Event, Observation, OpPhase, PcStateKind, ProbeEvent, TabId};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: EpochMs,
    pub text: String,
}

/// Rates between two consecutive `getStats()` samples of one peer connection.
#[derive(Debug, Clone, PartialEq)]
pub struct StatPoint {
    pub at: EpochMs,
    pub pc: u32,
    pub fps: f64,
    pub kbps: f64,
    pub packets_lost: i64,
    pub frames_decoded: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FramePoint {
    pub at: EpochMs,
    pub video: u32,
    pub presented: u64,
    pub mean_luma: f64,
    pub stamp: Option<Stamp>,
}

#[derive(Debug, Clone, Default)]
pub struct TabDigest {
    pub tab: TabId,
    /// A browser tab or a synthetic viewer.
    pub kind: crate::timeline::ViewerKind,
    pub url: Option<String>,
    /// Connection-state changes, `pcN: state`.
    pub states: Vec<Mark>,
    /// Signalling stages, page loads, WebSocket opens and closes, text the viewer showed.
    pub stages: Vec<Mark>,
    pub stats: Vec<StatPoint>,
    pub frames: Vec<FramePoint>,
    /// Exceptions, console errors, crashes, abnormal WebSocket closes, error messages received.
    pub problems: Vec<Mark>,
    pub closed_at: Option<EpochMs>,
    /// Peer connections the page created, with when.
    pub pcs: Vec<(u32, EpochMs)>,
}

impl TabDigest {
    /// `tab N`, or `synthetic tab N`.
    pub fn name(&self) -> String {
        self.kind.name(self.tab)
    }

    /// The latest connection state at `at` (of whichever peer connection changed last).
    pub fn state_at(&self, at: EpochMs) -> Option<&str> {
        self.states.iter().rev().find(|m| m.at <= at).map(|m| m.text.split_once(": ").map(|(_, s)| s).unwrap_or(&m.text))
    }

    /// Each peer connection's connection state at `at`, e.g. "pc0 connected, pc1 new"; a tab
    /// with several viewers has several, and a failure usually concerns one of them.
    pub fn connections_at(&self, at: EpochMs) -> String {
        let parts: Vec<String> = self
            .pcs
            .iter()
            .filter(|(_, created)| *created <= at)
            .map(|(pc, _)| {
                let prefix = format!("pc{pc}: ");
                let state = self.states.iter().rev().find(|m| m.at <= at && m.text.starts_with(&prefix)).map(|m| &m.text[prefix.len()..]).unwrap_or("new");
                format!("pc{pc} {state}")
            })
            .collect();
        if parts.is_empty() {
            "no peer connection".into()
        } else {
            parts.join(", ")
        }
    }

    /// The last `n` distinct problems up to `at`, oldest first.
    pub fn problems_before(&self, at: EpochMs, n: usize) -> Vec<&Mark> {
        let mut out: Vec<&Mark> = Vec::new();
        for m in self.problems.iter().rev().filter(|m| m.at <= at) {
            if out.len() == n {
                break;
            }
            if !out.iter().any(|o| o.text == m.text) {
                out.push(m);
            }
        }
        out.reverse();
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpSpan {
    pub name: String,
    pub start: EpochMs,
    pub end: Option<EpochMs>,
    pub failed: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: EpochMs,
    pub service: String,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Digest {
    pub start: EpochMs,
    pub end: EpochMs,
    pub tabs: Vec<TabDigest>,
    pub ops: Vec<OpSpan>,
    pub wolf_events: Vec<Mark>,
    pub logs: Vec<LogLine>,
    /// Last cumulative stats per (tab, pc), to turn counters into rates.
    last_stats: BTreeMap<(TabId, u32), (EpochMs, u64, u64)>,
    /// Whether anything was taken in (`start` and `end` mean something).
    seen: bool,
}

impl Digest {
    pub fn tab(&self, tab: TabId) -> Option<&TabDigest> {
        self.tabs.iter().find(|t| t.tab == tab)
    }

    /// What the scenario was doing at `at`: "during <op>" for the innermost operation running
    /// then, else "after <op>" for the last one that had finished.
    pub fn op_at(&self, at: EpochMs) -> Option<String> {
        let running = self.ops.iter().filter(|o| o.start <= at && o.end.is_none_or(|e| e >= at)).max_by(|a, b| a.start.total_cmp(&b.start));
        if let Some(op) = running {
            return Some(format!("during {}", op.name));
        }
        self.ops
            .iter()
            .filter(|o| o.end.is_some_and(|e| e <= at))
            .max_by(|a, b| a.end.unwrap_or(0.0).total_cmp(&b.end.unwrap_or(0.0)))
            .map(|o| format!("after {}", o.name))
    }
}

/// Read the timeline once, in time order.
pub fn digest(observations: &[Observation]) -> Digest {
    let mut d = Digest::default();
    for o in observations {
        d.ingest(o);
    }
    d
}

impl Digest {
    /// The tab's digest, made when first seen (tabs stay ordered by id).
    fn tab_mut(&mut self, tab: TabId) -> &mut TabDigest {
        let i = match self.tabs.binary_search_by_key(&tab, |t| t.tab) {
            Ok(i) => i,
            Err(i) => {
                self.tabs.insert(i, TabDigest { tab, ..TabDigest::default() });
                i
            }
        };
        &mut self.tabs[i]
    }

    /// Take in one more observation; the live progress line keeps one digest and feeds it
    /// what arrives, so a redraw costs the same late in a run as early.
    pub fn ingest(&mut self, o: &Observation) {
        if !self.seen {
            self.seen = true;
            (self.start, self.end) = (o.at, o.at);
        }
        self.start = self.start.min(o.at);
        self.end = self.end.max(o.at);
        match &o.event {
            Event::Tab { tab, probe } => {
                let mut last_stats = std::mem::take(&mut self.last_stats);
                tab_event(self.tab_mut(*tab), o.at, probe, &mut last_stats);
                self.last_stats = last_stats;
            }
            Event::Browser { tab, what } => {
                if let Some(tab) = tab {
                    let t = self.tab_mut(*tab);
                    if what == "tab closed" {
                        t.closed_at = Some(o.at);
                        t.stages.push(Mark { at: o.at, text: "tab closed".into() });
                    } else {
                        t.problems.push(Mark { at: o.at, text: format!("browser: {what}") });
                    }
                } else {
                    self.logs.push(LogLine { at: o.at, service: "browser".into(), level: "WARN".into(), message: what.clone() });
                }
            }
            Event::Op { name, phase } => match phase {
                OpPhase::Start => self.ops.push(OpSpan { name: name.clone(), start: o.at, end: None, failed: None }),
                OpPhase::Ok | OpPhase::Failed { .. } => {
                    let failed = match phase {
                        OpPhase::Failed { error } => Some(error.clone()),
                        _ => None,
                    };
                    match self.ops.iter_mut().rev().find(|s| s.name == *name && s.end.is_none()) {
                        Some(s) => {
                            s.end = Some(o.at);
                            s.failed = failed;
                        }
                        // An operation with no start (e.g. a given session used as is).
                        None => self.ops.push(OpSpan { name: name.clone(), start: o.at, end: Some(o.at), failed }),
                    }
                }
            },
            Event::WolfEvent { name, data } => self.wolf_events.push(Mark { at: o.at, text: format!("{name} {}", brief_json(data, 160)) }),
            Event::Log { service, level, message } => {
                self.logs.push(LogLine { at: o.at, service: service.clone(), level: level.to_ascii_uppercase(), message: message.clone() })
            }
            // Resource trends reach the reports through the summary (`Summary::resources`); input
            // echo is read from the whole run (`frames::input`), not drawn per key.
            Event::Poll { .. } | Event::Resources { .. } | Event::KeySent { .. } => {}
            Event::Died { what, detail } => match what {
                crate::timeline::Casualty::TabCrashed { tab: Some(tab) } | crate::timeline::Casualty::TabUnresponsive { tab } => {
                    self.tab_mut(*tab).problems.push(Mark { at: o.at, text: format!("died: {detail}") });
                }
                crate::timeline::Casualty::Service { service } => {
                    self.logs.push(LogLine { at: o.at, service: service.clone(), level: "ERROR".into(), message: format!("died: {detail}") })
                }
                _ => self.logs.push(LogLine { at: o.at, service: "browser".into(), level: "ERROR".into(), message: format!("died: {detail}") }),
            },
            Event::Detection { fault, name, tab, message, first_symptom } => {
                if let Some(tab) = tab {
                    self.tab_mut(*tab)
                        .problems
                        .push(Mark { at: o.at, text: format!("{fault} {name} (first symptom {:.1} s earlier)", (o.at - first_symptom) / 1000.0) });
                }
                self.logs.push(LogLine { at: o.at, service: "detector".into(), level: "ERROR".into(), message: format!("{fault} {name}: {message}") });
            }
        }
    }
}

fn tab_event(t: &mut TabDigest, at: EpochMs, probe: &ProbeEvent, last_stats: &mut BTreeMap<(TabId, u32), (EpochMs, u64, u64)>) {
    let mark = |text: String| Mark { at, text };
    match probe {
        ProbeEvent::PageLoad { url } => {
            t.url.get_or_insert_with(|| url.clone());
            t.stages.push(mark("page load".into()));
        }
        ProbeEvent::Synthetic { decode } => {
            t.kind = crate::timeline::ViewerKind::Synthetic;
            t.stages.push(mark(format!("synthetic viewer (decodes {decode:?})")));
        }
        ProbeEvent::WsOpen { ws, .. } => t.stages.push(mark(format!("ws{ws} open"))),
        ProbeEvent::WsClose { ws, code, reason } => {
            let text = format!("ws{ws} closed {code}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") });
            // 1000 and 1001 are the page's own doing.
            if *code == 1000 || *code == 1001 {
                t.stages.push(mark(text));
            } else {
                t.problems.push(mark(text));
            }
        }
        ProbeEvent::WsMessage { ws, dir, msg } => {
            if let Some(text) = stage_of(msg, *dir) {
                let is_problem = text.contains("Error") || text.contains("Disconnect") || text.contains("Failed");
                let m = mark(format!("ws{ws} {text}"));
                if is_problem {
                    t.problems.push(m);
                } else {
                    t.stages.push(m);
                }
            }
        }
        ProbeEvent::PcCreated { pc, .. } => {
            t.pcs.push((*pc, at));
            t.stages.push(mark(format!("pc{pc} created")));
        }
        ProbeEvent::PcState { pc, which: PcStateKind::Connection, state } => {
            t.states.push(mark(format!("pc{pc}: {state}")));
            if state == "failed" {
                t.problems.push(mark(format!("pc{pc} connection failed")));
            }
        }
        ProbeEvent::Stats { pc, stats } => {
            let frames = stats.frames_decoded.unwrap_or(0);
            let bytes = stats.bytes_received.unwrap_or(0);
            let key = (t.tab, *pc);
            if let Some((t0, f0, b0)) = last_stats.get(&key).copied() {
                let dt = (at - t0) / 1000.0;
                if dt > 0.0 {
                    t.stats.push(StatPoint {
                        at,
                        pc: *pc,
                        fps: frames.saturating_sub(f0) as f64 / dt,
                        kbps: bytes.saturating_sub(b0) as f64 * 8.0 / 1000.0 / dt,
                        packets_lost: stats.packets_lost.unwrap_or(0),
                        frames_decoded: frames,
                    });
                }
            }
            last_stats.insert(key, (at, frames, bytes));
        }
        ProbeEvent::Frame { video, sample } => {
            t.frames.push(FramePoint {
                at,
                video: *video,
                presented: sample.presented,
                mean_luma: sample.mean_luma,
                stamp: sample.stamp.or_else(|| sample.decode_stamp()),
            });
        }
        ProbeEvent::UiText { text, role } if role == "alert" => t.problems.push(mark(format!("shows error \u{201c}{text}\u{201d}"))),
        ProbeEvent::UiText { text, .. } => t.stages.push(mark(format!("shows \u{201c}{text}\u{201d}"))),
        ProbeEvent::Console { level, text } if level == "error" => t.problems.push(mark(format!("console error: {text}"))),
        ProbeEvent::Exception { text } => t.problems.push(mark(format!("exception: {text}"))),
        ProbeEvent::Http { method, path, status, body, error } => {
            let answer = match (status, error) {
                (_, Some(e)) => format!("failed: {e}"),
                (Some(s), None) => s.to_string(),
                (None, None) => "no status".into(),
            };
            let body = body.as_deref().map(|b| format!(" \u{201c}{}\u{201d}", b.trim())).unwrap_or_default();
            let line = format!("{method} {path} \u{2192} {answer}{body}");
            if error.is_some() || status.is_some_and(|s| s >= 400) {
                t.problems.push(mark(line));
            } else {
                t.stages.push(mark(line));
            }
        }
        _ => {}
    }
}

/// The signalling messages worth a mark: everything but SDP and ICE candidates, by their tag.
fn stage_of(msg: &serde_json::Value, dir: Direction) -> Option<String> {
    let arrow = if dir == Direction::Sent { "\u{2192}" } else { "\u{2190}" };
    // Unit variants arrive as bare strings ("PeerDisconnect").
    if let Some(tag) = msg.as_str() {
        let is_tag = !tag.is_empty() && tag.len() <= 48 && tag.chars().all(|c| c.is_ascii_alphanumeric());
        return is_tag.then(|| format!("{arrow} {tag}"));
    }
    let obj = msg.as_object()?;
    let (tag, body) = obj.iter().next()?;
    match tag.as_str() {
        "Signaling" => None,
        "StageStarting" | "StageComplete" | "StageFailed" => Some(format!("{arrow} {tag} {}", body.get("stage").and_then(|s| s.as_str()).unwrap_or(""))),
        "AuthenticateAndInit" => Some(format!("{arrow} {tag} mode={}", body.get("mode").and_then(|s| s.as_str()).unwrap_or("?"))),
        "ConnectionComplete" => {
            Some(format!("{arrow} {tag} client_id={}", body.get("client_id").map(|c| c.to_string().trim_matches('"').to_string()).unwrap_or_default()))
        }
        _ => Some(format!(
            "{arrow} {tag}{}",
            if body.is_null() || body.as_object().is_some_and(|o| o.is_empty()) { String::new() } else { format!(" {}", brief_json(body, 100)) }
        )),
    }
}

/// One line of JSON, cut at `max` characters.
pub fn brief_json(v: &serde_json::Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        s
    } else {
        format!("{}\u{2026}", s.chars().take(max).collect::<String>())
    }
}

/// Tabs an invariant's message names ("tab 1 (...) received ..."), in order, without repeats.
pub fn tabs_named(message: &str) -> Vec<TabId> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(i) = rest.find("tab ") {
        let after = &rest[i + 4..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        let word_start = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric());
        if word_start {
            if let Ok(n) = digits.parse::<TabId>() {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{StatsSample, Timeline};
    use serde_json::json;

    #[test]
    fn reads_states_stages_rates_and_ops() {
        let tl = Timeline::new();
        let tab = |probe| Event::Tab { tab: 1, probe };
        tl.push_at(1000.0, Event::Op { name: "open".into(), phase: OpPhase::Start });
        tl.push_at(1100.0, tab(ProbeEvent::PageLoad { url: "http://x/?e2e_tab=1".into() }));
        tl.push_at(1200.0, tab(ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!({"StageStarting": {"stage": "Launch Streamer"}}) }));
        tl.push_at(1250.0, tab(ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!({"Signaling": {"Description": {}}}) }));
        tl.push_at(1300.0, tab(ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!("PeerDisconnect") }));
        tl.push_at(1400.0, tab(ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() }));
        let s = |f, b| StatsSample { frames_decoded: Some(f), bytes_received: Some(b), ..StatsSample::default() };
        tl.push_at(2000.0, tab(ProbeEvent::Stats { pc: 0, stats: s(10, 1000) }));
        tl.push_at(3000.0, tab(ProbeEvent::Stats { pc: 0, stats: s(40, 126000) }));
        tl.push_at(3500.0, Event::Op { name: "open".into(), phase: OpPhase::Failed { error: "boom".into() } });
        let d = digest(&tl.snapshot());
        assert_eq!((d.start, d.end), (1000.0, 3500.0));
        let t = d.tab(1).unwrap();
        assert_eq!(t.url.as_deref(), Some("http://x/?e2e_tab=1"));
        assert_eq!(t.states, vec![Mark { at: 1400.0, text: "pc0: connected".into() }]);
        assert_eq!(t.state_at(1399.0), None);
        assert_eq!(t.state_at(5000.0), Some("connected"));
        assert_eq!(t.connections_at(5000.0), "no peer connection", "no pc_created seen");
        assert_eq!(d.op_at(1200.0).as_deref(), Some("during open"));
        assert_eq!(d.op_at(999.0), None);
        assert!(t.stages.iter().any(|m| m.text == "ws0 \u{2190} StageStarting Launch Streamer"));
        assert!(!t.stages.iter().any(|m| m.text.contains("Signaling")), "SDP is not a stage");
        assert_eq!(t.problems, vec![Mark { at: 1300.0, text: "ws0 \u{2190} PeerDisconnect".into() }]);
        assert_eq!(t.stats.len(), 1);
        assert_eq!((t.stats[0].fps, t.stats[0].kbps), (30.0, 1000.0));
        assert_eq!(d.ops, vec![OpSpan { name: "open".into(), start: 1000.0, end: Some(3500.0), failed: Some("boom".into()) }]);
    }

    #[test]
    fn names_each_peer_connections_state_and_recent_problems() {
        let tl = Timeline::new();
        let tab = |probe| Event::Tab { tab: 2, probe };
        tl.push_at(10.0, tab(ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
        tl.push_at(20.0, tab(ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() }));
        tl.push_at(30.0, tab(ProbeEvent::PcCreated { pc: 1, config: json!({}) }));
        tl.push_at(40.0, tab(ProbeEvent::WsMessage { ws: 1, dir: Direction::Received, msg: json!("PeerDisconnect") }));
        tl.push_at(41.0, tab(ProbeEvent::WsClose { ws: 1, code: 1005, reason: String::new() }));
        tl.push_at(42.0, tab(ProbeEvent::WsMessage { ws: 1, dir: Direction::Received, msg: json!("PeerDisconnect") }));
        tl.push_at(50.0, Event::Op { name: "a".into(), phase: OpPhase::Start });
        tl.push_at(60.0, Event::Op { name: "a".into(), phase: OpPhase::Ok });
        let d = digest(&tl.snapshot());
        let t = d.tab(2).unwrap();
        assert_eq!(t.connections_at(25.0), "pc0 connected");
        assert_eq!(t.connections_at(45.0), "pc0 connected, pc1 new");
        let texts: Vec<&str> = t.problems_before(45.0, 3).iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["ws1 closed 1005", "ws1 \u{2190} PeerDisconnect"]);
        assert_eq!(d.op_at(70.0).as_deref(), Some("after a"));
    }

    #[test]
    fn finds_tab_numbers_in_messages() {
        assert_eq!(tabs_named("tab 1 (x) received PeerDisconnect; tab 10 and tab 1 again"), vec![1, 10]);
        assert_eq!(tabs_named("no tabs here, nor in 'stab 3'"), Vec::<TabId>::new());
        assert_eq!(tabs_named("tab 0 is without a peer connection"), vec![0]);
    }
}
