//! Fault detectors: one named detector per documented failure (F1–F21 of the failure catalog),
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
//! running stream breaks), `server_state` (the servers' own state disagrees), `wolf_host` (Wolf
//! itself is wedged: its HTTPS handler, its pipelines).

use crate::browser::viewers::{ViewerFacts, ViewerFold};
use crate::catalog::FailureId;
use crate::sut::monitor::HelixLobby;
use crate::sut::moonlight_web::MlwSession;
use crate::sut::replies::{HttpsProbe, WolfHealth};
use crate::sut::wolf::{LobbyMemory, WolfLobby, WolfSession};
use crate::timeline::{EpochMs, Event, Observation, OpPhase, ProbeEvent, TabId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

mod connect;
pub mod deaths;
mod input;
pub mod leak;
#[cfg(test)]
mod leak_tests;
mod left_behind;
mod model;
mod reconnect;
mod server_state;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wolf;
mod wolf_host;

use connect::{f12_slow_launch, f13_already_streaming_loop, f1_treated_as_resume, f2_webrtc_ports_exhausted};
use input::f21_modifier_latched;
use leak::{f20_resource_leak, LeakFold};
use left_behind::{f18_vanished_tab_leak, f19_lobby_setup_leak};
use reconnect::f14_reconnect_teardown_race;
use server_state::{f10_restart_ghost, f3_join_not_counted, f5_stuck_session, f6_zombie_streamer, f7_lobby_mismatch};
use stream::{f11_sctp_corruption, f4_control_stream_timeout, f8_black_frames, f9_frozen_video};
use wolf_host::{f15_https_deadlock, f16_pipelines_blocked, https_deadlock, pipelines_lost_at};

pub use model::Model;
#[cfg(test)]
use model::{model_of, READ_LINES};

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
    /// F18: how long after the driver made a tab vanish its session may still be held as if
    /// connected (a healthy moonlight-web lets go within a poll).
    pub vanish_secs: f64,
    /// F19: lobby setups that must time out, with none set up since the first (at least 2).
    pub lobby_timeouts: usize,
    /// F20: connect/disconnect cycles left out of the leak fits at the start (allocators and
    /// caches grow at first, then level).
    pub leak_warmup_cycles: u64,
    /// F20: cycles fitted after the warm-up before a leak can be named.
    pub leak_min_cycles: usize,
    /// F20: the least growth of open descriptors per cycle that is a leak (the lower end of the
    /// slope's 95 % interval must reach it).
    pub leak_fds_per_cycle: f64,
    /// F20: the same for resident memory, in MiB per cycle.
    pub leak_memory_mib_per_cycle: f64,
    /// F20: how much of the points' spread the line must explain (R²).
    pub leak_min_r2: f64,
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
            vanish_secs: 10.0,
            lobby_timeouts: 2,
            leak_warmup_cycles: 12,
            leak_min_cycles: 15,
            leak_fds_per_cycle: 0.5,
            leak_memory_mib_per_cycle: 1.0,
            leak_min_r2: 0.5,
        }
    }
}

impl Thresholds {
    /// Refuse thresholds the model cannot judge: a frame rule that needs more frames than a
    /// viewer keeps ([`crate::browser::viewers::FRAME_MEMORY_MS`]) would never fire.
    pub fn check(&self) -> Result<(), String> {
        let keep = crate::browser::viewers::FRAME_MEMORY_MS / 1000.0;
        for (name, v) in [("black_secs", self.black_secs), ("freeze_secs", self.freeze_secs)] {
            if !(v > 0.0 && v <= keep / 2.0) {
                return Err(format!("{name} = {v} is outside (0, {}] s: viewers keep {keep} s of frames", keep / 2.0));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Detection {
    pub fault: FailureId,
    /// The detector's name, e.g. `webrtc-ports-exhausted` (the catalog's; `D2` adds the service).
    pub name: Cow<'static, str>,
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

    /// Whether this failure explains a driver operation (`op`, as the timeline names it) that
    /// failed: a death explains any, F19 the session start whose lobby setup timed out.
    pub fn explains_failed_op(&self, op: &str) -> bool {
        self.fault.is_death() || self.fault == FailureId::F19 && op == "create agent session"
    }
}

/// Run every detector over the observations; at most one detection per fault, the earliest.
pub fn detect(obs: &[Observation], t: &Thresholds) -> Vec<Detection> {
    let mut ordered: Vec<&Observation> = obs.iter().collect();
    ordered.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut model = Model::new(t);
    for o in ordered {
        model.ingest(o);
    }
    model.detect(t)
}

/// What detectors share, borrowed from the [`Model`] for one evaluation: the viewers, the polls
/// and logs in order, and the driver's own teardown operations.
struct Ctx<'a> {
    viewers: Vec<ViewerFacts>,
    logs: Vec<(EpochMs, &'a str, &'a str)>,
    /// Streamer launches of the whole run (see [`Model`]).
    launches: Vec<(EpochMs, &'a str, &'a str)>,
    mlw_polls: &'a [(EpochMs, Vec<MlwSession>)],
    wolf_sessions: &'a [(EpochMs, Vec<WolfSession>)],
    lobbies: &'a [(EpochMs, Vec<WolfLobby>)],
    memory: &'a [(EpochMs, Vec<LobbyMemory>)],
    /// Wolf's health polls, in order.
    health: &'a [(EpochMs, WolfHealth)],
    /// The driver's probes of Wolf's HTTPS port, in order (each at the time it ended).
    https_probes: &'a [(EpochMs, HttpsProbe)],
    /// Helix's (agent session, lobby) beliefs, poll by poll.
    helix_lobbies: &'a [(EpochMs, Vec<HelixLobby>)],
    /// Start times of the service restarts the driver caused.
    restarts: &'a [EpochMs],
    /// (start time, tab) of every close, reload or Reconnect the driver started: each ends the
    /// viewer the tab had (a Reconnect starts a new one, which is not excused).
    teardowns: &'a [(EpochMs, TabId)],
    /// (start time, agent session) of every stop the driver started.
    stops: &'a [(EpochMs, String)],
    /// (start time, tab) of every tab the driver cut off the network on purpose (F18's trigger).
    cuts: &'a [(EpochMs, TabId)],
    /// (end time, outcome) of every agent session start the driver asked Helix for: `Err` holds
    /// Helix's answer.
    session_starts: &'a [(EpochMs, Result<(), String>)],
    /// What tabs said in their console or on screen.
    tab_texts: Vec<(EpochMs, TabId, &'a str)>,
    /// Parts that ended without the driver ending them, as their watchers reported it.
    deaths: Vec<(EpochMs, &'a crate::timeline::Casualty, &'a str)>,
    /// Every poll of a service: answered, or not answered at all (with the error).
    service_polls: Vec<(EpochMs, &'a str, Result<(), &'a str>)>,
    /// (start, end) of each restart of a service the driver did; no end while it runs.
    restart_spans: Vec<(EpochMs, Option<EpochMs>, &'a str)>,
    /// IPv4 addresses streamers offered viewers as host candidates (the whole run).
    offered_hosts: &'a BTreeSet<String>,
    /// Completed cycles and the services' resources at them (F20).
    leak: &'a LeakFold,
    /// Input probes whose echo showed a modifier held (F21).
    modified_echoes: &'a [crate::frames::input::ProbeOutcome],
    end: EpochMs,
}

impl<'a> Ctx<'a> {
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
    format!("{} ({})", v.kind.name(v.tab), v.client_unique_id.as_deref().unwrap_or("?"))
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
