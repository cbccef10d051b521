//! `helix-e2e bench model`: what the driver's reading of a run costs, early and late in it.
//!
//! A long run must cost the same per observation at its end as at its start: the driver's
//! readers (the live detectors' model, the progress line, the viewers the scenario asks about)
//! fold each observation once and keep a bounded window, instead of re-reading the run. This
//! replays a synthetic, healthy timeline — N tabs streaming their own lobby (stamped frames 5
//! per second, `getStats()` every second, server polls every 500 ms, Wolf's input log line every
//! 5 s per session) — through exactly those readers on the run's own clock (detectors after every
//! 100 ms of evidence, the progress line every 300 ms), and reports the cost per observation in
//! the first and the last minutes, the records the model holds, and the process's peak memory.
//! It is a benchmark of the driver's code, not of a machine: it runs as fast as it can.

use crate::frames::stamp::{self, Stamp};
use crate::report::digest::Digest;
use crate::sut::monitor::HelixLobby;
use crate::sut::moonlight_web::MlwSession;
use crate::sut::wolf::{LobbyMemory, WolfLobby, WolfMemory, WolfSession};
use crate::timeline::{Direction, EpochMs, Event, FrameSample, PcStateKind, ProbeEvent, Reply, StatsSample, Timeline, LUMA_H, LUMA_W};
use crate::verdict::detectors::{Model, Thresholds};
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// What a bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModelBench {
    pub tabs: usize,
    pub minutes: u64,
    pub observations: usize,
    /// Mean cost per observation (µs of this thread's CPU time) over the first and the last
    /// window.
    pub early_us_per_obs: f64,
    pub late_us_per_obs: f64,
    /// `late / early`.
    pub ratio: f64,
    /// Records the detectors' model held at the end of the first and the last window.
    pub early_held: usize,
    pub late_held: usize,
    /// Failures the detectors named (a healthy stream names none).
    pub detections: Vec<String>,
    /// Observations the timeline still held in memory at the end (the rest is on disk).
    pub timeline_held: usize,
    /// The process's peak resident memory (VmHWM), MB.
    pub peak_rss_mb: f64,
}

/// How long the "first" and "last" windows are, in run time.
const WINDOW_MS: f64 = 5.0 * 60_000.0;

/// Replay `minutes` of `tabs` healthy streaming tabs through the readers.
pub fn model(tabs: usize, minutes: u64) -> ModelBench {
    let t = Thresholds::default();
    let timeline = Timeline::new();
    let stream = std::env::temp_dir().join(format!("helix-e2e-bench-{}.jsonl", std::process::id()));
    let _ = timeline.stream_to(&stream);
    let mut model = Model::new(&t);
    let mut model_cursor = timeline.cursor();
    let mut digest = Digest::default();
    let mut digest_cursor = timeline.cursor();
    let mut detections: Vec<String> = Vec::new();

    let start: EpochMs = 1.7e12;
    let end = start + minutes as f64 * 60_000.0;
    let window = WINDOW_MS.min((end - start) / 2.0);
    let (mut early, mut late) = (Cost::default(), Cost::default());
    let (mut early_held, mut late_held) = (0, 0);
    let mut source = Source::new(tabs);

    let mut at = start;
    let mut next_detect = start;
    let mut next_progress = start;
    while at < end {
        let began = thread_cpu();
        let mut n = 0;
        for (when, event) in source.events_until(at) {
            timeline.push_at(when, event);
            n += 1;
        }
        if at >= next_detect {
            next_detect += 100.0;
            timeline.take_new(&mut model_cursor, |o| model.ingest(o));
            for d in model.detect(&t) {
                if !detections.contains(&d.label()) {
                    detections.push(d.label());
                }
            }
        }
        if at >= next_progress {
            next_progress += 300.0;
            timeline.take_new(&mut digest_cursor, |o| digest.ingest(o));
            std::hint::black_box(crate::report::progress::status_line(&digest, start, at));
        }
        let spent = thread_cpu().saturating_sub(began);
        if at < start + window {
            early.add(spent, n);
            early_held = model.held();
        } else if at >= end - window {
            late.add(spent, n);
            late_held = model.held();
        }
        at += 20.0;
    }
    let timeline_held = timeline.held();
    let _ = timeline.finish_stream();
    let _ = std::fs::remove_file(&stream);
    let (e, l) = (early.per_obs_us(), late.per_obs_us());
    ModelBench {
        tabs,
        minutes,
        observations: timeline.len(),
        early_us_per_obs: e,
        late_us_per_obs: l,
        ratio: if e > 0.0 { l / e } else { 0.0 },
        early_held,
        late_held,
        detections,
        timeline_held,
        peak_rss_mb: peak_rss_mb(),
    }
}

#[derive(Default)]
struct Cost {
    spent: Duration,
    observations: usize,
}

impl Cost {
    fn add(&mut self, d: Duration, n: usize) {
        self.spent += d;
        self.observations += n;
    }

    fn per_obs_us(&self) -> f64 {
        self.spent.as_secs_f64() * 1e6 / self.observations.max(1) as f64
    }
}

/// CPU time this thread has used: what the readers cost, whatever else the machine runs.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// VmHWM of this process, MB (0 where /proc does not say).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A healthy stack with `tabs` viewers, each streaming its own lobby, as the driver sees it.
struct Source {
    tabs: usize,
    /// Next due time of each periodic event kind.
    next_frame: f64,
    next_stats: f64,
    next_poll: f64,
    next_log: f64,
    started: bool,
    frame: u64,
    bytes: u64,
    /// A stamped luma grid per tab, base64; only the counter changes, so one is drawn per frame.
    luma: Vec<Vec<u8>>,
    replies: crate::sut::monitor::Replies,
}

impl Source {
    fn new(tabs: usize) -> Self {
        Source {
            tabs,
            next_frame: 0.0,
            next_stats: 0.0,
            next_poll: 0.0,
            next_log: 0.0,
            started: false,
            frame: 0,
            bytes: 0,
            luma: vec![vec![128u8; LUMA_W * LUMA_H]; tabs],
            replies: Default::default(),
        }
    }

    fn cuid(tab: usize) -> String {
        format!("helix-agent-ses_{tab}-tab{tab}")
    }

    fn events_until(&mut self, at: EpochMs) -> Vec<(EpochMs, Event)> {
        let mut out = Vec::new();
        let tab_ev = |tab: usize, probe: ProbeEvent| Event::Tab { tab, probe };
        if !self.started {
            self.started = true;
            (self.next_frame, self.next_stats, self.next_poll, self.next_log) = (at + 1000.0, at + 1000.0, at, at + 5000.0);
            for tab in 0..self.tabs {
                let cuid = Self::cuid(tab);
                let msg = |v: serde_json::Value| ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: v };
                out.push((at, Event::Op { name: format!("open viewer tab for ses_{tab}"), phase: crate::timeline::OpPhase::Start }));
                for p in [
                    ProbeEvent::PageLoad { url: format!("http://127.0.0.1:8080/session/ses_{tab}") },
                    ProbeEvent::WsOpen { ws: 0, url: "ws://127.0.0.1:8080/moonlight/host/stream".into() },
                    ProbeEvent::WsMessage {
                        ws: 0,
                        dir: Direction::Sent,
                        msg: json!({"AuthenticateAndInit": {"session_id": format!("agent-ses_{tab}-{cuid}"), "mode": "create", "client_unique_id": cuid}}),
                    },
                    msg(json!({"StageStarting": {"stage": "Launch Streamer"}})),
                    msg(json!({"StageComplete": {"stage": "Launch Streamer"}})),
                    ProbeEvent::PcCreated { pc: 0, config: json!({}) },
                    ProbeEvent::Link { ws: 0, pc: 0 },
                    msg(json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})),
                    ProbeEvent::PcState { pc: 0, which: PcStateKind::IceConnection, state: "connected".into() },
                    ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() },
                    msg(json!({"ConnectionComplete": {"capabilities": {}, "width": 1280, "height": 720, "client_id": format!("{}", 1000 + tab)}})),
                    ProbeEvent::VideoLink { pc: 0, video: 0 },
                ] {
                    out.push((at, tab_ev(tab, p)));
                }
                out.push((at, Event::Op { name: format!("open viewer tab for ses_{tab}"), phase: crate::timeline::OpPhase::Ok }));
            }
        }
        while self.next_frame <= at {
            let when = self.next_frame;
            self.next_frame += 200.0;
            // 30 source frames a second, sampled 5 times a second.
            self.frame += 6;
            for tab in 0..self.tabs {
                let luma = &mut self.luma[tab];
                stamp::draw(luma, LUMA_W, LUMA_H, Stamp { tag: 100 + tab as u16, counter: (self.frame % 1024) as u16 });
                let sample = FrameSample {
                    video_width: 1280,
                    video_height: 720,
                    presented: self.frame,
                    mean_luma: 120.0,
                    hash: format!("{:08x}", self.frame * 31 + tab as u64),
                    luma: base64::engine::general_purpose::STANDARD.encode(&luma[..]),
                    stamp: None,
                };
                out.push((when, tab_ev(tab, ProbeEvent::Frame { video: 0, sample })));
            }
        }
        while self.next_stats <= at {
            let when = self.next_stats;
            self.next_stats += 1000.0;
            self.bytes += 250_000;
            for tab in 0..self.tabs {
                let stats = StatsSample {
                    frames_decoded: Some(self.frame),
                    frames_received: Some(self.frame),
                    frame_width: Some(1280),
                    frame_height: Some(720),
                    freeze_count: Some(0),
                    total_freezes_duration: Some(0.0),
                    packets_lost: Some(0),
                    packets_received: Some(self.frame * 3),
                    bytes_received: Some(self.bytes),
                    candidate_pair: Some("host 127.0.0.1:40001 <-> prflx 127.0.0.1:51234 (udp)".into()),
                };
                out.push((when, tab_ev(tab, ProbeEvent::Stats { pc: 0, stats })));
            }
        }
        while self.next_poll <= at {
            let when = self.next_poll;
            self.next_poll += 500.0;
            for (service, reply) in self.polls() {
                let reply = self.replies.share(service, reply);
                out.push((when, Event::Poll { service: service.into(), reply }));
            }
        }
        while self.next_log <= at {
            let when = self.next_log;
            self.next_log += 5000.0;
            for tab in 0..self.tabs {
                out.push((
                    when,
                    Event::Log { service: "wolf".into(), level: "INFO".into(), message: format!("session {}: input from the client: 150 events", 1000 + tab) },
                ));
            }
        }
        out
    }

    /// One poll round of the servers' truth, agreeing with the tabs.
    fn polls(&self) -> Vec<(&'static str, Reply)> {
        let mlw: Vec<MlwSession> = (0..self.tabs)
            .map(|tab| MlwSession {
                session_id: format!("agent-ses_{tab}-{}", Self::cuid(tab)),
                client_unique_id: Some(Self::cuid(tab)),
                mode: "create".into(),
                has_websocket: true,
                streamer_pid: None,
                streamer_alive: true,
            })
            .collect();
        let wolf: Vec<WolfSession> = (0..self.tabs)
            .map(|tab| WolfSession {
                app_id: "1".into(),
                client_id: format!("{}", 1000 + tab),
                client_ip: "127.0.0.1".into(),
                client_unique_id: Self::cuid(tab),
                video_width: 1280,
                video_height: 720,
            })
            .collect();
        let lobbies: Vec<WolfLobby> = (0..self.tabs)
            .map(|tab| WolfLobby {
                id: format!("lobby-{tab}"),
                name: format!("ses_{tab}"),
                multi_user: true,
                pin_required: false,
                stop_when_everyone_leaves: false,
                runner: json!({}),
                connected_sessions: vec![format!("{}", 1000 + tab)],
            })
            .collect();
        let memory: Vec<LobbyMemory> =
            (0..self.tabs).map(|tab| LobbyMemory { lobby_id: format!("lobby-{tab}"), lobby_name: format!("ses_{tab}"), client_count: 1 }).collect();
        let helix: Vec<HelixLobby> = (0..self.tabs).map(|tab| HelixLobby { session: format!("ses_{tab}"), lobby_id: Some(format!("lobby-{tab}")) }).collect();
        vec![
            ("moonlight-web", Reply::MlwSessions(mlw)),
            ("wolf", Reply::WolfSessions(wolf)),
            ("wolf", Reply::WolfLobbies(lobbies)),
            ("wolf", Reply::WolfMemory(WolfMemory { lobbies: memory, clients: Vec::new() })),
            ("api", Reply::HelixLobbies(helix)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the model holds must not grow with the age of the run: after the history window
    /// has filled, a run twice as long holds the same.
    #[test]
    fn the_model_holds_the_same_late_in_a_run_as_early() {
        let short = model(2, 4);
        let long = model(2, 8);
        assert!(short.detections.is_empty(), "a healthy stream named {:?}", short.detections);
        assert!(long.late_held > 0);
        let (a, b) = (short.late_held as f64, long.late_held as f64);
        assert!((b - a).abs() <= a * 0.05, "the model held {a} records after 4 min and {b} after 8");
    }
}
