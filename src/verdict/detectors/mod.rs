//! Fault detectors: one named detector per documented failure (F1–F13 of the failure catalog),
//! each reading the whole timeline — browser probes, server polls, Wolf events, service logs —
//! and deciding as soon as the evidence is there.
//!
//! A detection names the failure, the tab, the time of its first symptom and the time the
//! evidence became sufficient, so detection latency is `decided_at - first_symptom`, both taken
//! from observations. Symptoms the driver caused itself (closing a tab, stopping a session) are
//! excused: a detector only accuses what happened to a viewer the driver was not tearing down.
//!
//! This module holds what they share (thresholds, the catalog, the folded context); the
//! detectors live by what went wrong: `connect` (a viewer never gets its stream), `stream` (a
//! running stream breaks), `server_state` (the servers' own state disagrees).

use crate::browser::viewers::{fold_viewers, ViewerFacts};
use crate::sut::monitor::HelixLobby;
use crate::sut::moonlight_web::MlwSession;
use crate::sut::wolf::{LobbyMemory, WolfLobby, WolfSession};
use crate::timeline::{EpochMs, Event, Observation, OpPhase, ProbeEvent, TabId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod connect;
pub mod deaths;
mod reconnect;
mod server_state;
mod stream;
#[cfg(test)]
mod tests;

use connect::{f12_slow_launch, f13_already_streaming_loop, f1_treated_as_resume, f2_webrtc_ports_exhausted};
use reconnect::f14_reconnect_teardown_race;
use server_state::{f10_restart_ghost, f3_join_not_counted, f5_stuck_session, f6_zombie_streamer, f7_lobby_mismatch};
use stream::{f11_sctp_corruption, f4_control_stream_timeout, f8_black_frames, f9_frozen_video};

/// Thresholds, from configuration (`e2e/detectors.toml` or defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// F2: a viewer whose ICE is not connected this long after negotiation started.
    pub ice_connect_secs: f64,
    /// F3: discrepant `client_count` polls needed after a logged join.
    pub join_polls: usize,
    /// F5: how long a keepalive/join moonlight-web session may lack its WebSocket.
    pub stuck_secs: f64,
    /// F6/F7: how long server state may disagree before it counts, where it may for a while
    /// (keepalive sessions, the moments after a service restart).
    pub mismatch_secs: f64,
    /// F5/F6/F7: consecutive polls that must show a state the stack never keeps when healthy —
    /// a create session without its socket or its streamer (moonlight-web removes it with
    /// either), a streamer or Wolf session outliving its moonlight-web session. One poll may
    /// catch a teardown half way; two cannot.
    pub confirm_polls: usize,
    /// F8: how long decoded frames may stay black.
    pub black_secs: f64,
    /// F9: how long a connected viewer's picture may stand still.
    pub freeze_secs: f64,
    /// F9: new frames presented with one unchanged picture that prove the source froze (the
    /// frames arrive, so it is not the network or the tab).
    pub freeze_frames: u64,
    /// F11: `chunk too short` lines within `sctp_window_secs`.
    pub sctp_lines: usize,
    pub sctp_window_secs: f64,
    /// F12: how long a viewer may sit in "Moonlight Stream".
    pub launch_stall_secs: f64,
    /// F13: `AlreadyStreaming` answers one viewer may get.
    pub busy_answers: usize,
    /// F10: how long Helix may believe in a lobby Wolf does not have.
    pub ghost_secs: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            ice_connect_secs: 10.0,
            join_polls: 2,
            stuck_secs: 60.0,
            mismatch_secs: 5.0,
            confirm_polls: 2,
            black_secs: 1.0,
            freeze_secs: 2.0,
            freeze_frames: 10,
            sctp_lines: 3,
            sctp_window_secs: 10.0,
            launch_stall_secs: 12.0,
            busy_answers: 2,
            ghost_secs: 5.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detection {
    /// `F1` … `F13`.
    pub fault: &'static str,
    /// The detector's name, e.g. `webrtc-ports-exhausted`.
    pub name: &'static str,
    pub tab: Option<TabId>,
    pub message: String,
    pub first_symptom: EpochMs,
    pub decided_at: EpochMs,
}

impl Detection {
    /// `F2 webrtc-ports-exhausted`: the invariant name reports use.
    pub fn label(&self) -> String {
        format!("{} {}", self.fault, self.name)
    }

    pub fn latency_ms(&self) -> f64 {
        self.decided_at - self.first_symptom
    }
}

/// The catalog: fault id, detector name, what it means.
pub const DETECTORS: &[(&str, &str, &str)] = &[
    ("F1", "treated-as-resume", "a new viewer was taken for a resume: Wolf logged an unregistered resume and the tab got PeerDisconnect before ConnectionComplete"),
    ("F2", "webrtc-ports-exhausted", "a viewer's ICE never connected (the streamer could not bind WebRTC ports)"),
    ("F3", "join-not-counted", "Wolf logged a lobby join but the lobby's client_count does not include the session"),
    ("F4", "control-stream-timeout", "Wolf dropped a streaming viewer's control peer ([ENET] disconnected client) and the tab lost its stream"),
    ("F5", "stuck-session", "a moonlight-web session kept has_websocket:false"),
    ("F6", "zombie-streamer", "a streamer outlived its session, or a dead streamer stayed listed"),
    ("F7", "lobby-mismatch", "Wolf kept a session moonlight-web no longer has"),
    ("F8", "black-frames", "frames keep decoding but every pixel is black"),
    ("F9", "frozen-video", "the connection is up but the picture stands still"),
    ("F10", "restart-ghost", "Helix still believes in a lobby Wolf no longer has (lost in a restart and never recreated)"),
    ("F11", "sctp-corruption", "moonlight-web logged `chunk too short` repeatedly"),
    ("F12", "slow-launch", "a viewer stalled in the Moonlight Stream stage (launch against Wolf timed out)"),
    ("F13", "already-streaming-loop", "a viewer was answered AlreadyStreaming again and again"),
    ("F14", "reconnect-teardown-race", "a reconnected viewer's new streamer resumed the client's Wolf session and the client's previous streamer, still tearing down, cancelled it"),
    // Deaths (src/verdict/detectors/deaths.rs): parts that ended without the driver ending them.
    // They explain the catalog failures that follow them (the rule is written there).
    ("B1", "tab-crashed", "a tab's renderer crashed (Chromium's crash event for its target)"),
    ("B2", "browser-died", "the Chromium browser process ended (its exit status)"),
    ("B3", "tab-unresponsive", "a tab stopped answering DevTools"),
    ("D1", "streamer-died", "a streamer died by a signal (moonlight-web's log of its exit)"),
    ("D2", "service-died", "a service process died, or answered nothing in consecutive polls, without the driver restarting it"),
];

/// Run every detector over the observations; at most one detection per fault, the earliest.
pub fn detect(obs: &[Observation], t: &Thresholds) -> Vec<Detection> {
    let ctx = Ctx::new(obs);
    let mut found: Vec<Detection> = Vec::new();
    for d in [
        f1_treated_as_resume(&ctx),
        f2_webrtc_ports_exhausted(&ctx, t),
        f3_join_not_counted(&ctx, t),
        f4_control_stream_timeout(&ctx),
        f5_stuck_session(&ctx, t),
        f6_zombie_streamer(&ctx, t),
        f7_lobby_mismatch(&ctx, t),
        f8_black_frames(&ctx, t),
        f9_frozen_video(&ctx, t),
        f10_restart_ghost(&ctx, t),
        f11_sctp_corruption(&ctx, t),
        f12_slow_launch(&ctx, t),
        f13_already_streaming_loop(&ctx, t),
        f14_reconnect_teardown_race(&ctx),
    ]
    .into_iter()
    .flatten()
    .chain(deaths::deaths(&ctx, t))
    {
        found.push(d);
    }
    deaths::explained_by_deaths(&mut found);
    found.sort_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom));
    found
}

/// What detectors share: the viewers, the polls and logs in order, and the driver's own
/// teardown operations.
struct Ctx<'a> {
    viewers: Vec<ViewerFacts>,
    logs: Vec<(EpochMs, &'a str, &'a str)>,
    mlw_polls: Vec<(EpochMs, Vec<MlwSession>)>,
    wolf_sessions: Vec<(EpochMs, Vec<WolfSession>)>,
    lobbies: Vec<(EpochMs, Vec<WolfLobby>)>,
    memory: Vec<(EpochMs, Vec<LobbyMemory>)>,
    /// Helix's (agent session, lobby) beliefs, poll by poll.
    helix_lobbies: Vec<(EpochMs, Vec<HelixLobby>)>,
    /// Start times of the service restarts the driver caused.
    restarts: Vec<EpochMs>,
    /// (start time, tab) of every close, reload or Reconnect the driver started: each ends the
    /// viewer the tab had (a Reconnect starts a new one, which is not excused).
    teardowns: Vec<(EpochMs, TabId)>,
    /// (start time, agent session) of every stop the driver started.
    stops: Vec<(EpochMs, String)>,
    /// What tabs said in their console or on screen.
    tab_texts: Vec<(EpochMs, TabId, &'a str)>,
    /// Parts that ended without the driver ending them, as their watchers reported it.
    deaths: Vec<(EpochMs, &'a crate::timeline::Casualty, &'a str)>,
    /// Every poll of a service: answered, or not answered at all (with the error).
    service_polls: Vec<(EpochMs, &'a str, Result<(), &'a str>)>,
    /// (start, end) of each restart of a service the driver did; no end while it runs.
    restart_spans: Vec<(EpochMs, Option<EpochMs>, &'a str)>,
    end: EpochMs,
}

impl<'a> Ctx<'a> {
    fn new(obs: &'a [Observation]) -> Self {
        let mut c = Ctx {
            viewers: fold_viewers(obs),
            logs: Vec::new(),
            mlw_polls: Vec::new(),
            wolf_sessions: Vec::new(),
            lobbies: Vec::new(),
            memory: Vec::new(),
            helix_lobbies: Vec::new(),
            restarts: Vec::new(),
            teardowns: Vec::new(),
            stops: Vec::new(),
            tab_texts: Vec::new(),
            deaths: Vec::new(),
            service_polls: Vec::new(),
            restart_spans: Vec::new(),
            end: obs.last().map(|o| o.at).unwrap_or(0.0),
        };
        for o in obs {
            if let Event::Poll { service, what, data } = &o.event {
                match (service.as_str(), what.as_str()) {
                    (s, "unreachable") => c.service_polls.push((o.at, s, Err(data.as_str().unwrap_or("")))),
                    (s @ ("wolf" | "moonlight-web" | "api"), _) => c.service_polls.push((o.at, s, Ok(()))),
                    _ => {}
                }
            }
            match &o.event {
                Event::Log { service, message, .. } => c.logs.push((o.at, service.as_str(), message.as_str())),
                Event::Died { what, detail } => c.deaths.push((o.at, what, detail.as_str())),
                Event::Op { name, phase: OpPhase::Ok | OpPhase::Failed { .. } } if name.starts_with("restart ") => {
                    if let Some(span) = c.restart_spans.iter_mut().rev().find(|(_, end, s)| end.is_none() && Some(*s) == name.strip_prefix("restart ")) {
                        span.1 = Some(o.at);
                    }
                }
                Event::Poll { service, what, data } => match (service.as_str(), what.as_str()) {
                    ("moonlight-web", "sessions") => c.mlw_polls.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("wolf", "sessions") => c.wolf_sessions.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("wolf", "lobbies") => c.lobbies.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("api", "session-lobbies") => c.helix_lobbies.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("wolf", "memory") => c.memory.push((o.at, data.get("lobbies").cloned().and_then(|l| serde_json::from_value(l).ok()).unwrap_or_default())),
                    _ => {}
                },
                Event::Tab { tab, probe: ProbeEvent::Console { text, .. } | ProbeEvent::UiText { text, .. } } => c.tab_texts.push((o.at, *tab, text.as_str())),
                // A refused API call's answer: the real viewer logs only an error object, so the
                // server's words (e.g. `failed to join lobby: …`) are only here.
                Event::Tab { tab, probe: ProbeEvent::Http { status: Some(400..), body: Some(body), .. } } => c.tab_texts.push((o.at, *tab, body.as_str())),
                Event::Op { name, phase: OpPhase::Start } => {
                    if let Some(tab) = name.strip_prefix("close tab ").or_else(|| name.strip_prefix("reload tab ")).or_else(|| name.strip_prefix("reconnect tab ")).and_then(|t| t.split_whitespace().next()?.parse().ok()) {
                        c.teardowns.push((o.at, tab));
                    }
                    if let Some(service) = name.strip_prefix("restart ") {
                        c.restarts.push(o.at);
                        c.restart_spans.push((o.at, None, service));
                    }
                    if let Some(ses) = name.strip_prefix("stop agent session ") {
                        c.stops.push((o.at, ses.trim().to_string()));
                    }
                }
                _ => {}
            }
        }
        c
    }

    /// Whether the driver was tearing this viewer down at `at` (closing/reloading its tab,
    /// stopping its agent session, or restarting a service under it).
    fn excused(&self, v: &ViewerFacts, at: EpochMs) -> bool {
        let ses = v.client_unique_id.as_deref().and_then(crate::verdict::checks::agent_session_of);
        self.teardowns.iter().any(|(t, tab)| *tab == v.tab && *t >= v.started_at && *t <= at)
            || self.restarts.iter().any(|t| *t >= v.started_at && *t <= at)
            || self.stops.iter().any(|(t, s)| Some(s.as_str()) == ses && *t <= at)
    }

    /// Whether the driver was restarting `service` at `at` (until a moment after it was back:
    /// a poll sent just before may still be answered by nobody).
    fn restarting(&self, service: &str, at: EpochMs) -> bool {
        self.restart_spans.iter().any(|(start, end, s)| *s == service && at >= *start && end.is_none_or(|e| at <= e + 1000.0))
    }

    fn error_at(v: &ViewerFacts, what: &str) -> Option<EpochMs> {
        v.errors.iter().find(|e| e.message == what).map(|e| e.at)
    }

    fn first_log(&self, needle: &str, after: EpochMs) -> Option<(EpochMs, &'a str)> {
        self.logs.iter().find(|(t, _, m)| *t >= after && m.contains(needle)).map(|(t, _, m)| (*t, *m))
    }
}

fn who(v: &ViewerFacts) -> String {
    format!("tab {} ({})", v.tab, v.client_unique_id.as_deref().unwrap_or("?"))
}

fn secs(ms: f64) -> f64 {
    ms / 1000.0
}

/// `[LOBBY] Session <sid> joining lobby <lid>`.
fn parse_join(m: &str) -> Option<(&str, &str)> {
    let rest = m.strip_prefix("[LOBBY] Session ")?;
    let (sid, lid) = rest.split_once(" joining lobby ")?;
    Some((sid.trim(), lid.trim()))
}
