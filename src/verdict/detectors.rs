//! Fault detectors: one named detector per documented failure (F1–F13 of the failure catalog),
//! each reading the whole timeline — browser probes, server polls, Wolf events, service logs —
//! and deciding as soon as the evidence is there.
//!
//! A detection names the failure, the tab, the time of its first symptom and the time the
//! evidence became sufficient, so detection latency is `decided_at - first_symptom`, both taken
//! from observations. Symptoms the driver caused itself (closing a tab, stopping a session) are
//! excused: a detector only accuses what happened to a viewer the driver was not tearing down.

use crate::browser::viewers::{fold_viewers, ViewerFacts};
use crate::sut::monitor::HelixLobby;
use crate::sut::moonlight_web::MlwSession;
use crate::sut::wolf::{LobbyMemory, WolfLobby, WolfSession};
use crate::timeline::{EpochMs, Event, Observation, OpPhase, ProbeEvent, TabId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    ]
    .into_iter()
    .flatten()
    {
        found.push(d);
    }
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
    /// (start time, tab) of every close/reload the driver started.
    teardowns: Vec<(EpochMs, TabId)>,
    /// (start time, agent session) of every stop the driver started.
    stops: Vec<(EpochMs, String)>,
    /// What tabs said in their console or on screen.
    tab_texts: Vec<(EpochMs, TabId, &'a str)>,
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
            end: obs.last().map(|o| o.at).unwrap_or(0.0),
        };
        for o in obs {
            match &o.event {
                Event::Log { service, message, .. } => c.logs.push((o.at, service.as_str(), message.as_str())),
                Event::Poll { service, what, data } => match (service.as_str(), what.as_str()) {
                    ("moonlight-web", "sessions") => c.mlw_polls.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("wolf", "sessions") => c.wolf_sessions.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("wolf", "lobbies") => c.lobbies.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("api", "session-lobbies") => c.helix_lobbies.push((o.at, serde_json::from_value(data.clone()).unwrap_or_default())),
                    ("wolf", "memory") => c.memory.push((o.at, data.get("lobbies").cloned().and_then(|l| serde_json::from_value(l).ok()).unwrap_or_default())),
                    _ => {}
                },
                Event::Tab { tab, probe: ProbeEvent::Console { text, .. } | ProbeEvent::UiText { text, .. } } => c.tab_texts.push((o.at, *tab, text.as_str())),
                Event::Op { name, phase: OpPhase::Start } => {
                    if let Some(tab) = name.strip_prefix("close tab ").or_else(|| name.strip_prefix("reload tab ")).and_then(|t| t.split_whitespace().next()?.parse().ok()) {
                        c.teardowns.push((o.at, tab));
                    }
                    if name.starts_with("restart ") {
                        c.restarts.push(o.at);
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

fn f1_treated_as_resume(c: &Ctx) -> Option<Detection> {
    let (log_at, line) = c.first_log("Received resume event from an unregistered session", 0.0)?;
    // The tab that never got its stream and was told PeerDisconnect around that line.
    let v = c.viewers.iter().find(|v| {
        v.connection_complete_at.is_none() && Ctx::error_at(v, "PeerDisconnect").is_some_and(|t| (t - log_at).abs() < 20_000.0) && !c.excused(v, log_at)
    })?;
    let pd = Ctx::error_at(v, "PeerDisconnect")?;
    Some(Detection {
        fault: "F1",
        name: "treated-as-resume",
        tab: Some(v.tab),
        message: format!("{} got PeerDisconnect before ConnectionComplete; Wolf logged \"{line}\" {:.1} s earlier", who(v), secs(pd - log_at)),
        first_symptom: log_at.min(pd),
        decided_at: log_at.max(pd),
    })
}

/// After a streamer logged that it could not bind, how long its viewer may still connect (a
/// peer that bound on another address can): past this, the bind failure is the cause.
const BIND_GRACE_MS: f64 = 300.0;

fn f2_webrtc_ports_exhausted(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    // Server-side corroboration: the streamer could not bind an IPv4 socket in the range.
    let bind_failure = c.logs.iter().find(|(_, _, m)| m.contains("could not listen udp") && !m.contains("could not listen udp fe80") && !m.contains("could not listen udp ::")).map(|(t, _, m)| (*t, *m));
    c.viewers.iter().filter_map(|v| {
        let negotiating = v.stages.iter().find(|s| s.stage == "WebRTC Peer Negotiation").map(|s| s.at)?;
        // A viewer that completed its connection had working ICE, whatever its probe missed.
        let connected = v.first_connected_at.or(v.connection_complete_at);
        let failed_state = (v.ice_state.as_deref() == Some("failed") || v.connection_state.as_deref() == Some("failed")).then_some(v.closed_at.unwrap_or(c.end));
        let peer_disconnect = Ctx::error_at(v, "PeerDisconnect");
        let deadline = negotiating + t.ice_connect_secs * 1000.0;
        // Evidence that ICE will not connect, earliest first.
        let mut evidence: Vec<(EpochMs, String)> = Vec::new();
        if let Some(f) = failed_state.filter(|f| connected.is_none_or(|c| c > *f)) {
            evidence.push((f, "ICE failed".into()));
        }
        if let Some(p) = peer_disconnect.filter(|p| connected.is_none_or(|c| c > *p)) {
            evidence.push((p, "PeerDisconnect".into()));
        }
        if connected.is_none_or(|c| c > deadline) && c.end >= deadline && v.closed_at.is_none_or(|x| x >= deadline) {
            evidence.push((deadline, format!("ICE not connected {:.0} s after negotiation started", t.ice_connect_secs)));
        }
        if let Some((bt, line)) = bind_failure {
            if bt >= v.started_at - 1000.0 && connected.is_none_or(|c| c > bt + BIND_GRACE_MS) && c.end >= bt + BIND_GRACE_MS && v.closed_at.is_none_or(|x| x > bt) {
                evidence.push((bt + BIND_GRACE_MS, format!("moonlight-web: \"{}\"", line.chars().take(160).collect::<String>())));
            }
        }
        evidence.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (decided, why) = evidence.first()?.clone();
        if c.excused(v, decided) {
            return None;
        }
        let first = bind_failure.map(|(bt, _)| bt).filter(|bt| *bt >= v.started_at - 1000.0).unwrap_or(decided).min(decided);
        Some(Detection {
            fault: "F2",
            name: "webrtc-ports-exhausted",
            tab: Some(v.tab),
            message: format!("{} ICE {} for {:.1} s after negotiation started, never connected: {why}", who(v), v.ice_state.as_deref().unwrap_or("new"), secs(decided - negotiating)),
            first_symptom: first,
            decided_at: decided,
        })
    })
    .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

/// `[LOBBY] Session <sid> joining lobby <lid>`.
fn parse_join(m: &str) -> Option<(&str, &str)> {
    let rest = m.strip_prefix("[LOBBY] Session ")?;
    let (sid, lid) = rest.split_once(" joining lobby ")?;
    Some((sid.trim(), lid.trim()))
}

fn f3_join_not_counted(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    for (join_at, _, m) in &c.logs {
        let Some((sid, lid)) = parse_join(m) else { continue };
        // Polls taken after the join, while Wolf still has the session.
        let mut bad = Vec::new();
        for (at, lobbies) in c.lobbies.iter().filter(|(at, _)| *at > join_at + 100.0) {
            let alive = c.wolf_sessions.iter().rev().find(|(t, _)| t <= at).is_some_and(|(_, s)| s.iter().any(|s| s.client_id == sid));
            let Some(lobby) = lobbies.iter().find(|l| l.id == lid) else { break };
            if !alive {
                break;
            }
            if lobby.connected_sessions.iter().any(|s| s == sid) {
                bad.clear();
                break;
            }
            bad.push(*at);
            if bad.len() >= t.join_polls {
                let count = c.memory.iter().rev().find(|(t, _)| t <= at).and_then(|(_, m)| m.iter().find(|l| l.lobby_id == lid)).map(|l| l.client_count);
                return Some(Detection {
                    fault: "F3",
                    name: "join-not-counted",
                    tab: c.viewers.iter().find(|v| v.client_id.as_deref() == Some(sid)).map(|v| v.tab),
                    message: format!(
                        "Wolf logged \"{m}\" but lobby {lid} lists {} connected session(s) without {sid} (client_count {})",
                        lobby.connected_sessions.len(),
                        count.map(|c| c.to_string()).unwrap_or("?".into())
                    ),
                    first_symptom: bad[0],
                    decided_at: *at,
                });
            }
        }
    }
    None
}

fn f4_control_stream_timeout(c: &Ctx) -> Option<Detection> {
    for (i, (at, _, m)) in c.logs.iter().enumerate() {
        if !m.contains("[ENET] disconnected client") {
            continue;
        }
        // Wolf follows the disconnect with the session leaving its lobby; a later disconnect's
        // line belongs to that one (tabs closing together disconnect within milliseconds).
        let over = c.logs[i + 1..].iter().take_while(|(t, _, m)| *t - at < 500.0 && !m.contains("[ENET] disconnected client")).find_map(|(_, _, m)| {
            let rest = m.strip_prefix("[LOBBY] Moonlight stream ")?;
            let (sid, lid) = rest.split_once(" over, leaving lobby ")?;
            Some((sid.trim().to_string(), lid.trim().to_string()))
        });
        let Some((sid, lid)) = over else { continue };
        let Some(v) = c.viewers.iter().find(|v| v.client_id.as_deref() == Some(sid.as_str())) else { continue };
        // A streaming viewer the driver was not tearing down, whose tab learned of it after.
        let streaming = v.connection_complete_at.is_some_and(|t| t < *at) && v.closed_at.is_none_or(|x| x > *at);
        let told_after = Ctx::error_at(v, "PeerDisconnect").is_none_or(|p| p >= *at);
        if !streaming || !told_after || c.excused(v, *at) {
            continue;
        }
        let joined = c.logs.iter().rev().find(|(t, _, m)| t <= at && parse_join(m).is_some_and(|(s, _)| s == sid)).map(|(t, _, _)| *t);
        return Some(Detection {
            fault: "F4",
            name: "control-stream-timeout",
            tab: Some(v.tab),
            message: format!(
                "Wolf logged \"{m}\" for session {sid} of {}{}; it left lobby {lid} while the tab was streaming",
                who(v),
                joined.map(|j| format!(", {:.1} s after it joined", secs(at - j))).unwrap_or_default()
            ),
            first_symptom: *at,
            decided_at: *at,
        });
    }
    None
}

/// The first moonlight-web session that has matched `pred` in consecutive polls until `enough`
/// says so, given the session, how long (ms) and in how many polls. Returns the session, the
/// first poll that showed it and the deciding one.
fn sustained(polls: &[(EpochMs, Vec<MlwSession>)], pred: impl Fn(&MlwSession) -> bool, enough: impl Fn(&MlwSession, f64, usize) -> bool) -> Option<(MlwSession, EpochMs, EpochMs)> {
    let mut since: BTreeMap<String, (EpochMs, usize)> = BTreeMap::new();
    for (at, sessions) in polls {
        let now: BTreeSet<&str> = sessions.iter().filter(|s| pred(s)).map(|s| s.session_id.as_str()).collect();
        since.retain(|id, _| now.contains(id.as_str()));
        for s in sessions.iter().filter(|s| pred(s)) {
            let (start, n) = since.entry(s.session_id.clone()).or_insert((*at, 0));
            *n += 1;
            if enough(s, at - *start, *n) {
                return Some((s.clone(), *start, *at));
            }
        }
    }
    None
}

/// A create session ends with its socket and its streamer (moonlight-web's own rule), so a
/// create session without either is wrong as soon as it is confirmed; other modes may be so for
/// a while.
fn confirmed_or_held(t: &Thresholds, hold_secs: f64) -> impl Fn(&MlwSession, f64, usize) -> bool + '_ {
    move |s, ms, polls| if s.mode == "create" { polls >= t.confirm_polls.max(1) } else { ms >= hold_secs * 1000.0 }
}

fn tab_of(c: &Ctx, session_id: &str) -> Option<TabId> {
    c.viewers.iter().find(|v| v.session_id.as_deref() == Some(session_id)).map(|v| v.tab)
}

fn f5_stuck_session(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let (s, from, at) = sustained(&c.mlw_polls, |s| !s.has_websocket && s.streamer_alive, confirmed_or_held(t, t.stuck_secs))?;
    let rule = if s.mode == "create" { "; a create session ends with its socket" } else { "" };
    Some(Detection {
        fault: "F5",
        name: "stuck-session",
        tab: tab_of(c, &s.session_id),
        message: format!("moonlight-web session {} ({}) has had has_websocket:false for {:.1} s with its streamer alive{rule}", s.session_id, s.mode, secs(at - from)),
        first_symptom: from,
        decided_at: at,
    })
}

fn f6_zombie_streamer(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let listed_dead = sustained(&c.mlw_polls, |s| !s.streamer_alive, confirmed_or_held(t, t.mismatch_secs)).map(|(s, from, at)| Detection {
        fault: "F6",
        name: "zombie-streamer",
        tab: tab_of(c, &s.session_id),
        message: format!("moonlight-web still lists {} session {} with streamer_alive:false after {:.1} s", s.mode, s.session_id, secs(at - from)),
        first_symptom: from,
        decided_at: at,
    });
    let zombie_line = c.first_log("zombie sessions detected", 0.0).map(|(at, line)| Detection {
        fault: "F6",
        name: "zombie-streamer",
        tab: None,
        message: format!("moonlight-web logged \"{line}\""),
        first_symptom: at,
        decided_at: at,
    });
    // A streamer process still running after its session left the list (visible only when the
    // target runs on this machine).
    let orphan = orphan_streamer(c, t);
    [listed_dead, zombie_line, orphan].into_iter().flatten().min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

/// Removing a session stops its streamer (a healthy one exits within milliseconds), so a
/// streamer still running `confirm_polls` polls after its session left the list is a zombie.
/// Liveness can only be read now, so only the latest polls can decide.
fn orphan_streamer(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let mut last_pid: BTreeMap<String, (u32, EpochMs)> = BTreeMap::new();
    // First poll without the session, and polls without it so far.
    let mut gone: BTreeMap<String, (EpochMs, usize)> = BTreeMap::new();
    for (at, sessions) in &c.mlw_polls {
        for s in sessions {
            if let Some(pid) = s.streamer_pid {
                last_pid.insert(s.session_id.clone(), (pid, *at));
            }
        }
        let listed: BTreeSet<&str> = sessions.iter().map(|s| s.session_id.as_str()).collect();
        // A pid serving a listed session now is that session's, whoever had it before.
        let live_pids: BTreeSet<u32> = sessions.iter().filter_map(|s| s.streamer_pid).collect();
        for (id, (pid, seen)) in &last_pid {
            if listed.contains(id.as_str()) {
                gone.remove(id);
                continue;
            }
            let (from, polls) = gone.entry(id.clone()).or_insert((*at, 0));
            *polls += 1;
            let confirmed = *polls >= t.confirm_polls.max(1) || at - seen >= t.mismatch_secs * 1000.0;
            // Live detection looks within a second of the confirmation; later, the pid may
            // belong to another process by now.
            let recent = at - *from <= t.mismatch_secs * 1000.0 + 2000.0;
            if confirmed && recent && *at >= c.end - 1000.0 && !live_pids.contains(pid) && process_alive(*pid) {
                return Some(Detection {
                    fault: "F6",
                    name: "zombie-streamer",
                    tab: tab_of(c, id),
                    message: format!("streamer pid {pid} of moonlight-web session {id} is still running {:.1} s after the session left /api/sessions ({polls} polls)", secs(at - *from)),
                    first_symptom: *from,
                    decided_at: *at,
                });
            }
        }
    }
    None
}

/// Whether a streamer process with this pid runs here. A pid moonlight-web reports from inside a
/// container belongs to another PID namespace: whatever this machine runs under that number is
/// not a streamer, so the command line must say it is one.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"__streamer"))
}

fn f7_lobby_mismatch(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    // The streamer pid moonlight-web last listed per client: a Wolf session whose streamer still
    // runs is F6's zombie, not a lobby mismatch.
    let mut pid_of: BTreeMap<&str, u32> = BTreeMap::new();
    for (_, sessions) in &c.mlw_polls {
        for s in sessions {
            if let (Some(u), Some(p)) = (s.client_unique_id.as_deref(), s.streamer_pid) {
                pid_of.insert(u, p);
            }
        }
    }
    let mut since: BTreeMap<String, (EpochMs, usize)> = BTreeMap::new();
    for (at, sessions) in &c.wolf_sessions {
        let Some((_, mlw)) = c.mlw_polls.iter().rev().find(|(t, _)| t <= at) else { continue };
        // moonlight-web's next answer too: a session born between the two polls is not an orphan.
        let next = c.mlw_polls.iter().find(|(t, _)| t > at).map(|(_, m)| m);
        let knows = |m: &Vec<MlwSession>, s: &WolfSession| m.iter().any(|m| m.client_unique_id.as_deref() == Some(s.client_unique_id.as_str()));
        let orphans: Vec<&WolfSession> = sessions
            .iter()
            .filter(|s| !knows(mlw, s) && !next.is_some_and(|n| knows(n, s)))
            .filter(|s| !pid_of.get(s.client_unique_id.as_str()).is_some_and(|p| process_alive(*p)))
            .collect();
        since.retain(|id, _| orphans.iter().any(|s| &s.client_id == id));
        // After a restart the driver caused, Wolf may take a while to notice peers that died
        // with it (an ENet timeout): there only the grace period counts.
        let settling = c.restarts.iter().any(|r| *r <= *at && at - r < t.mismatch_secs * 1000.0);
        for s in orphans {
            let (start, polls) = since.entry(s.client_id.clone()).or_insert((*at, 0));
            *polls += 1;
            let start = *start;
            if (*polls >= t.confirm_polls.max(1) && !settling) || at - start >= t.mismatch_secs * 1000.0 {
                return Some(Detection {
                    fault: "F7",
                    name: "lobby-mismatch",
                    tab: c.viewers.iter().find(|v| v.client_unique_id.as_deref() == Some(s.client_unique_id.as_str())).map(|v| v.tab),
                    message: format!("Wolf has kept session {} ({}) for {:.1} s ({polls} polls) that moonlight-web no longer has, and no streamer serves", s.client_id, s.client_unique_id, secs(at - start)),
                    first_symptom: start,
                    decided_at: *at,
                });
            }
        }
    }
    None
}

/// Helix's answer when a join fails (`POST …/auto-join-lobby`, 500).
const JOIN_FAILED: &str = "failed to join lobby";

fn f10_restart_ghost(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let mut since: BTreeMap<(String, String), EpochMs> = BTreeMap::new();
    for (at, beliefs) in &c.helix_lobbies {
        // Wolf's answer of the same poll round (it comes just before); none while Wolf is down.
        let Some((_, lobbies)) = c.lobbies.iter().rev().find(|(w, _)| *w <= *at) else { continue };
        let ghosts: Vec<(String, String)> = beliefs
            .iter()
            .filter_map(|b| Some((b.session.clone(), b.lobby_id.clone()?)))
            .filter(|(_, l)| !lobbies.iter().any(|x| &x.id == l))
            .collect();
        since.retain(|k, _| ghosts.contains(k));
        for g in ghosts {
            let start = *since.entry(g.clone()).or_insert(*at);
            // A restart loses lobbies and a healthy Helix recreates them, so a stale belief is
            // not yet a failure. A viewer of that session failing to join a lobby while Helix
            // believed — before this poll and still at it — is one: the session cannot recover.
            // (`Wolf UI session not found` is Helix not finding the viewer's stream yet.)
            let tabs_of_session: BTreeSet<TabId> = c.viewers.iter().filter(|v| v.client_unique_id.as_deref().and_then(crate::verdict::checks::agent_session_of) == Some(g.0.as_str())).map(|v| v.tab).collect();
            let join_failed = c.tab_texts.iter().find(|(a, tab, text)| *a >= start && *a < *at && tabs_of_session.contains(tab) && text.contains(JOIN_FAILED) && !text.contains("Wolf UI session not found"));
            if let Some((failed_at, tab, text)) = join_failed {
                return Some(Detection {
                    fault: "F10",
                    name: "restart-ghost",
                    tab: Some(*tab),
                    message: format!(
                        "tab {tab} of {} could not rejoin: \"{}\"; Helix still names lobby {}, which Wolf has not listed for {:.1} s",
                        g.0,
                        text.chars().take(200).collect::<String>(),
                        g.1,
                        secs(failed_at - start)
                    ),
                    first_symptom: *failed_at,
                    decided_at: *at,
                });
            }
            if at - start >= t.ghost_secs * 1000.0 {
                let restart = c.restarts.iter().rev().find(|r| **r <= start);
                return Some(Detection {
                    fault: "F10",
                    name: "restart-ghost",
                    tab: c.viewers.iter().rfind(|v| v.client_unique_id.as_deref().and_then(crate::verdict::checks::agent_session_of) == Some(g.0.as_str())).map(|v| v.tab),
                    message: format!(
                        "Helix has believed for {:.1} s that {} owns lobby {}, which Wolf does not have{}",
                        secs(at - start),
                        g.0,
                        g.1,
                        restart.map(|r| format!(" (lost {:.1} s after the restart began)", secs(start - r))).unwrap_or_default()
                    ),
                    first_symptom: start,
                    decided_at: *at,
                });
            }
        }
    }
    None
}

/// With Wolf's own buffer-pool error logged, two black samples in a row are enough.
const BLACK_WITH_POOL_ERROR_MS: f64 = 300.0;

fn f8_black_frames(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let pool_error = c.first_log("Failed to acquire buffer from pool", 0.0).map(|(at, _)| at);
    c.viewers
        .iter()
        .filter_map(|v| {
            let mut start: Option<EpochMs> = None;
            for f in v.frames.iter().filter(|f| f.sample.video_width > 0) {
                if f.sample.mean_luma < crate::frames::analysis::BLACK_LUMA {
                    let s = *start.get_or_insert(f.at);
                    let needed = if pool_error.is_some_and(|p| p <= f.at) { BLACK_WITH_POOL_ERROR_MS.min(t.black_secs * 1000.0) } else { t.black_secs * 1000.0 };
                    if f.at - s >= needed && !c.excused(v, f.at) {
                        let decoding = v.last_stats.as_ref().and_then(|s| s.stats.frames_decoded).map(|n| format!("{n} frames decoded")).unwrap_or_else(|| format!("{} frames presented", f.sample.presented));
                        let pool = c.first_log("Failed to acquire buffer from pool", 0.0).map(|(_, l)| format!("; Wolf logged \"{l}\"")).unwrap_or_default();
                        return Some(Detection {
                            fault: "F8",
                            name: "black-frames",
                            tab: Some(v.tab),
                            message: format!("{} shows black frames (mean luma {:.0}) for {:.1} s while decoding ({decoding}){pool}", who(v), f.sample.mean_luma, secs(f.at - s)),
                            first_symptom: s,
                            decided_at: f.at,
                        });
                    }
                } else {
                    start = None;
                }
            }
            None
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

fn f9_frozen_video(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    c.viewers
        .iter()
        .filter_map(|v| {
            let connected = v.first_connected_at?;
            // (first sample, its key, frames presented by then)
            let mut run: Option<(EpochMs, String, u64)> = None;
            for f in v.frames.iter().filter(|f| f.at > connected && f.sample.video_width > 0 && f.sample.mean_luma >= crate::frames::analysis::BLACK_LUMA) {
                // With stamps the counter must move; without, the picture hash.
                let key = f.stamp.map(|s| format!("{}:{}", s.tag, s.counter)).unwrap_or_else(|| f.sample.hash.clone());
                let (s, p0) = match &run {
                    Some((s, k, p0)) if *k == key => (*s, *p0),
                    _ => {
                        run = Some((f.at, key, f.sample.presented));
                        (f.at, f.sample.presented)
                    }
                };
                // A stamp's counter moves with every source frame: new frames presented with the
                // same stamp prove the source froze, long before a duration would. (A picture
                // without a stamp may be still on purpose, so it needs the duration.)
                let new_frames = f.sample.presented.saturating_sub(p0);
                let proven = f.stamp.is_some() && new_frames >= t.freeze_frames.max(1);
                if (proven || f.at - s >= t.freeze_secs * 1000.0) && v.closed_at.is_none_or(|x| x > f.at) && !c.excused(v, f.at) {
                    return Some(Detection {
                        fault: "F9",
                        name: "frozen-video",
                        tab: Some(v.tab),
                        message: format!(
                            "{} picture has not changed for {:.1} s ({new_frames} new frames presented) while the peer connection is {}",
                            who(v),
                            secs(f.at - s),
                            v.connection_state.as_deref().unwrap_or("?")
                        ),
                        first_symptom: s,
                        decided_at: f.at,
                    });
                }
            }
            None
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

fn f11_sctp_corruption(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let lines: Vec<EpochMs> = c.logs.iter().filter(|(_, _, m)| m.contains("chunk too short")).map(|(t, _, _)| *t).collect();
    let n = t.sctp_lines.max(1);
    lines.windows(n).find(|w| w[n - 1] - w[0] <= t.sctp_window_secs * 1000.0).map(|w| Detection {
        fault: "F11",
        name: "sctp-corruption",
        tab: None,
        message: format!("moonlight-web logged `chunk too short` {n} times in {:.1} s", secs(w[n - 1] - w[0])),
        first_symptom: w[0],
        decided_at: w[n - 1],
    })
}

fn f12_slow_launch(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let timed_out = c.first_log("Error(Connect, TimedOut)", 0.0);
    c.viewers
        .iter()
        .filter_map(|v| {
            let started = v.stages.iter().find(|s| s.stage == "Moonlight Stream" && matches!(s.phase, crate::browser::viewers::StagePhase::Starting)).map(|s| s.at)?;
            let done = v.stages.iter().find(|s| s.stage == "Moonlight Stream" && !matches!(s.phase, crate::browser::viewers::StagePhase::Starting)).map(|s| s.at);
            let log = timed_out.filter(|(at, _)| *at >= started && done.is_none_or(|d| d > *at));
            let deadline = started + t.launch_stall_secs * 1000.0;
            let decided = match log {
                Some((at, _)) => at,
                None if done.is_none_or(|d| d > deadline) && c.end >= deadline => deadline,
                None => return None,
            };
            if c.excused(v, decided) || v.closed_at.is_some_and(|x| x < decided) {
                return None;
            }
            Some(Detection {
                fault: "F12",
                name: "slow-launch",
                tab: Some(v.tab),
                message: format!(
                    "{} stalled in \"Moonlight Stream\" for {:.1} s{}",
                    who(v),
                    secs(decided - started),
                    log.map(|(_, l)| format!("; moonlight-web logged \"{}\"", l.chars().take(160).collect::<String>())).unwrap_or_default()
                ),
                first_symptom: log.map(|(at, _)| at).unwrap_or(started).min(decided),
                decided_at: decided,
            })
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

fn f13_already_streaming_loop(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    held_session_id(c).or_else(|| repeated_busy_answers(c, t))
}

/// The mechanism itself: a viewer answered `AlreadyStreaming` while a viewer in another tab
/// that is streaming — and not being torn down — holds the same `session_id`. Every retry will
/// be refused alike, so the first answer decides. (Within one tab a Reconnect may race its own
/// old socket's close; that is left to the count.)
fn held_session_id(c: &Ctx) -> Option<Detection> {
    c.viewers
        .iter()
        .filter_map(|v| {
            let sid = v.session_id.as_deref()?;
            let at = Ctx::error_at(v, "AlreadyStreaming")?;
            let holder = c.viewers.iter().find(|w| {
                w.tab != v.tab
                    && w.session_id.as_deref() == Some(sid)
                    && w.connection_complete_at.is_some_and(|x| x < at)
                    && w.closed_at.is_none_or(|x| x > at)
                    && !c.excused(w, at)
            })?;
            Some(Detection {
                fault: "F13",
                name: "already-streaming-loop",
                tab: Some(v.tab),
                message: format!(
                    "{} was answered AlreadyStreaming: its session_id {sid} is the one {} streams with (a reused session_id; every retry meets the same)",
                    who(v),
                    who(holder)
                ),
                first_symptom: at,
                decided_at: at,
            })
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

fn repeated_busy_answers(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    // Retries open new sockets with the same client_unique_id: count per viewer identity.
    let mut answers: BTreeMap<(TabId, String), Vec<EpochMs>> = BTreeMap::new();
    for v in &c.viewers {
        for e in v.errors.iter().filter(|e| e.message == "AlreadyStreaming") {
            answers.entry((v.tab, v.client_unique_id.clone().unwrap_or_default())).or_default().push(e.at);
        }
    }
    answers
        .into_iter()
        .filter_map(|((tab, uid), mut times)| {
            times.sort_by(f64::total_cmp);
            let n = t.busy_answers.max(1);
            (times.len() >= n).then(|| Detection {
                fault: "F13",
                name: "already-streaming-loop",
                tab: Some(tab),
                message: format!("tab {tab} ({uid}) was answered AlreadyStreaming {} times in {:.1} s (a reused session_id)", times.len(), secs(times[times.len() - 1] - times[0])),
                first_symptom: times[0],
                decided_at: times[n - 1],
            })
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Direction, ProbeEvent};
    use serde_json::json;

    fn log(at: EpochMs, service: &str, message: &str) -> Observation {
        Observation { at, event: Event::Log { service: service.into(), level: "INFO".into(), message: message.into() } }
    }
    fn poll(at: EpochMs, service: &str, what: &str, data: serde_json::Value) -> Observation {
        Observation { at, event: Event::Poll { service: service.into(), what: what.into(), data } }
    }
    fn tab(at: EpochMs, probe: ProbeEvent) -> Observation {
        Observation { at, event: Event::Tab { tab: 1, probe } }
    }
    fn received(at: EpochMs, msg: serde_json::Value) -> Observation {
        tab(at, ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg })
    }
    /// A viewer of `ses` on tab 1 that got as far as WebRTC negotiation at t=1000.
    fn viewer(ses: &str) -> Vec<Observation> {
        vec![
            tab(0.0, ProbeEvent::PageLoad { url: "http://x/session".into() }),
            tab(10.0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/moonlight/host/stream".into() }),
            tab(20.0, ProbeEvent::WsMessage { ws: 0, dir: Direction::Sent, msg: json!({"AuthenticateAndInit": {"session_id": format!("agent-{ses}-u"), "mode": "create", "client_unique_id": format!("helix-agent-{ses}-L-u")}}) }),
            received(1000.0, json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})),
        ]
    }
    fn lobby(sessions: &[&str]) -> serde_json::Value {
        json!([{"id": "L", "name": "Agent", "runner": {"env": ["HELIX_SESSION_ID=ses_a"]}, "connected_sessions": sessions}])
    }

    #[test]
    fn f2_names_a_viewer_whose_ice_never_connects_and_cites_the_bind_failure() {
        let mut obs = viewer("ses_a");
        obs.push(log(1100.0, "moonlight-web", "[Streamer x] WARN webrtc_ice: could not listen udp 198.51.100.2: no port available"));
        obs.push(log(1500.0, "moonlight-web", "still going"));
        let d = detect(&obs, &Thresholds::default());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].label(), "F2 webrtc-ports-exhausted");
        assert_eq!((d[0].first_symptom, d[0].decided_at), (1100.0, 1400.0));
        assert!(d[0].message.contains("could not listen udp 198.51.100.2"), "{}", d[0].message);
    }

    #[test]
    fn f2_ignores_ipv6_link_local_noise_and_a_viewer_that_connects() {
        let mut obs = viewer("ses_a");
        obs.push(log(1100.0, "moonlight-web", "could not listen udp fe80::1: invalid port number"));
        obs.push(tab(1200.0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
        obs.push(tab(1200.0, ProbeEvent::Link { ws: 0, pc: 0 }));
        obs.push(tab(1500.0, ProbeEvent::PcState { pc: 0, which: crate::timeline::PcStateKind::Connection, state: "connected".into() }));
        obs.push(log(20_000.0, "moonlight-web", "later"));
        assert!(detect(&obs, &Thresholds::default()).is_empty());
    }

    #[test]
    fn f3_needs_consecutive_polls_missing_a_logged_join() {
        let sessions = json!([{"app_id": "1", "client_id": "42", "client_ip": "127.0.0.1", "client_unique_id": "helix-agent-ses_a-L-u"}]);
        let mut obs = vec![log(1000.0, "wolf", "[LOBBY] Session 42 joining lobby L"), poll(1050.0, "wolf", "sessions", sessions.clone()), poll(1060.0, "wolf", "lobbies", lobby(&[]))];
        assert!(detect(&obs, &Thresholds::default()).is_empty(), "a poll racing the join is no evidence");
        obs.push(poll(1500.0, "wolf", "sessions", sessions.clone()));
        obs.push(poll(1510.0, "wolf", "lobbies", lobby(&[])));
        assert!(detect(&obs, &Thresholds::default()).is_empty(), "one late poll is not enough");
        obs.push(poll(2000.0, "wolf", "sessions", sessions.clone()));
        obs.push(poll(2010.0, "wolf", "lobbies", lobby(&[])));
        let d = detect(&obs, &Thresholds::default());
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F3 join-not-counted"]);
        assert_eq!((d[0].first_symptom, d[0].decided_at), (1510.0, 2010.0));
        // Counted: nothing to say.
        let ok = vec![log(1000.0, "wolf", "[LOBBY] Session 42 joining lobby L"), poll(1500.0, "wolf", "sessions", sessions.clone()), poll(1510.0, "wolf", "lobbies", lobby(&["42"])), poll(2000.0, "wolf", "sessions", sessions), poll(2010.0, "wolf", "lobbies", lobby(&["42"]))];
        assert!(detect(&ok, &Thresholds::default()).is_empty());
    }

    #[test]
    fn f4_is_an_enet_drop_of_a_streaming_viewer_not_one_the_driver_closed() {
        let mut obs = viewer("ses_a");
        obs.push(received(2000.0, json!({"ConnectionComplete": {"capabilities": {"touch": false}, "width": 320, "height": 180, "client_id": "42"}})));
        obs.push(log(3000.0, "wolf", "[LOBBY] Session 42 joining lobby L"));
        obs.push(log(7000.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5000"));
        obs.push(log(7001.0, "wolf", "[LOBBY] Moonlight stream 42 over, leaving lobby L"));
        obs.push(received(7100.0, json!("PeerDisconnect")));
        let d = detect(&obs, &Thresholds::default());
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F4 control-stream-timeout"]);
        assert!(d[0].message.contains("4.0 s after it joined"), "{}", d[0].message);
        // The same lines after the driver started closing the tab are the driver's doing.
        obs.insert(5, Observation { at: 6900.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
        obs.sort_by(|a, b| a.at.total_cmp(&b.at));
        assert!(detect(&obs, &Thresholds::default()).is_empty());
    }

    #[test]
    fn f4_pairs_each_leave_with_its_own_disconnect_when_tabs_close_together() {
        // Another tab's disconnect at 6700 (nothing of ours), then ours at 7000 once its close
        // began at 6950: the leave at 7001 belongs to the 7000 line, which the close excuses.
        let mut obs = viewer("ses_a");
        obs.push(received(2000.0, json!({"ConnectionComplete": {"capabilities": {"touch": false}, "width": 320, "height": 180, "client_id": "42"}})));
        obs.push(log(3000.0, "wolf", "[LOBBY] Session 42 joining lobby L"));
        obs.push(log(6700.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5001"));
        obs.push(Observation { at: 6950.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
        obs.push(log(7000.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5000"));
        obs.push(log(7001.0, "wolf", "[LOBBY] Moonlight stream 42 over, leaving lobby L"));
        assert!(detect(&obs, &Thresholds::default()).is_empty(), "{:?}", detect(&obs, &Thresholds::default()));
    }

    fn mlw(at: EpochMs, mode: &str, has_websocket: bool) -> Observation {
        poll(at, "moonlight-web", "sessions", json!([{"session_id": "agent-ses_a-u", "client_unique_id": "helix-agent-ses_a-L-u", "mode": mode, "has_websocket": has_websocket, "streamer_pid": null, "streamer_alive": true}]))
    }

    #[test]
    fn f5_confirms_a_socketless_create_session_in_two_polls_but_lets_keepalive_ones_wait() {
        let t = Thresholds::default();
        let create = vec![mlw(1000.0, "create", true), mlw(1500.0, "create", false)];
        assert!(detect(&create, &t).is_empty(), "one poll may catch a close half way");
        let mut create = create;
        create.push(mlw(2000.0, "create", false));
        let d = detect(&create, &t);
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F5 stuck-session"]);
        assert_eq!((d[0].first_symptom, d[0].decided_at), (1500.0, 2000.0));
        // Keepalive sessions live without a socket: only `stuck_secs` makes them stuck.
        let keepalive: Vec<_> = (0..10).map(|i| mlw(1000.0 + 500.0 * i as f64, "keepalive", false)).collect();
        assert!(detect(&keepalive, &t).is_empty());
        let long = Thresholds { stuck_secs: 4.0, ..t };
        assert_eq!(detect(&keepalive, &long)[0].label(), "F5 stuck-session");
    }

    /// A viewer on tab `n` whose session_id is `sid`, streaming from t=2000 (`ConnectionComplete`).
    fn streaming_viewer(n: TabId, sid: &str, at: EpochMs) -> Vec<Observation> {
        let ev = |at: EpochMs, probe| Observation { at, event: Event::Tab { tab: n, probe } };
        vec![
            ev(at, ProbeEvent::PageLoad { url: "http://x/session".into() }),
            ev(at + 10.0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/moonlight/host/stream".into() }),
            ev(at + 20.0, ProbeEvent::WsMessage { ws: 0, dir: Direction::Sent, msg: json!({"AuthenticateAndInit": {"session_id": sid, "mode": "create", "client_unique_id": format!("helix-agent-ses_a-L-{n}")}}) }),
            ev(at + 1000.0, ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!({"ConnectionComplete": {"capabilities": {}, "width": 1, "height": 1, "client_id": format!("{n}")}}) }),
        ]
    }

    #[test]
    fn f13_decides_on_the_first_busy_answer_when_another_tab_streams_with_that_session_id() {
        let mut obs = streaming_viewer(1, "agent-ses_a-shared", 0.0);
        obs.extend(streaming_viewer(2, "agent-ses_a-shared", 3000.0).into_iter().take(3));
        obs.push(Observation { at: 3500.0, event: Event::Tab { tab: 2, probe: ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!("AlreadyStreaming") } } });
        let d = detect(&obs, &Thresholds::default());
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F13 already-streaming-loop"]);
        assert_eq!((d[0].tab, d[0].first_symptom, d[0].decided_at), (Some(2), 3500.0, 3500.0));
        assert!(d[0].message.contains("tab 1"), "{}", d[0].message);
        // Not while the holder's tab is being closed: its session may still be going away.
        obs.push(Observation { at: 3200.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
        obs.sort_by(|a, b| a.at.total_cmp(&b.at));
        assert!(detect(&obs, &Thresholds::default()).is_empty());
    }

    #[test]
    fn f9_takes_new_frames_with_one_stamp_as_proof_but_an_unstamped_still_picture_must_last() {
        use crate::frames::stamp::{draw, Stamp};
        use crate::timeline::{FrameSample, PcStateKind, LUMA_H, LUMA_W};
        use base64::Engine;
        let sample = |presented: u64, stamp: Option<u16>| {
            let mut luma = vec![128u8; LUMA_W * LUMA_H];
            if let Some(counter) = stamp {
                draw(&mut luma, LUMA_W, LUMA_H, Stamp { tag: 7, counter });
            }
            FrameSample { video_width: 320, video_height: 180, presented, mean_luma: 120.0, hash: "same".into(), luma: base64::engine::general_purpose::STANDARD.encode(&luma) }
        };
        let frames = |stamped: bool| {
            let mut obs = viewer("ses_a");
            let ev = |at: EpochMs, probe| Observation { at, event: Event::Tab { tab: 1, probe } };
            obs.push(ev(1100.0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
            obs.push(ev(1110.0, ProbeEvent::Link { ws: 0, pc: 0 }));
            obs.push(ev(1500.0, ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() }));
            obs.push(ev(1600.0, ProbeEvent::VideoLink { pc: 0, video: 0 }));
            // Moving for a second, then 6 frames per 200 ms sample with one picture.
            for i in 0..5u64 {
                obs.push(ev(2000.0 + 200.0 * i as f64, ProbeEvent::Frame { video: 0, sample: sample(1 + 6 * i, stamped.then_some(6 * i as u16)).clone() }));
            }
            for i in 5..8u64 {
                let mut s = sample(1 + 6 * i, stamped.then_some(24));
                if !stamped {
                    s.hash = "frozen".into();
                }
                obs.push(ev(2000.0 + 200.0 * i as f64, ProbeEvent::Frame { video: 0, sample: s }));
            }
            obs
        };
        let d = detect(&frames(true), &Thresholds::default());
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F9 frozen-video"]);
        // Counter 24 first showed at 2800; 12 more frames with it by 3200.
        assert_eq!((d[0].first_symptom, d[0].decided_at), (2800.0, 3200.0));
        let more = Thresholds { freeze_frames: 100, ..Thresholds::default() };
        assert!(detect(&frames(true), &more).is_empty(), "12 frames are not 100, and 0.4 s is not freeze_secs");
        assert!(detect(&frames(false), &Thresholds::default()).is_empty(), "a still picture without a stamp needs freeze_secs");
    }

    #[test]
    fn f10_decides_when_a_viewer_fails_to_join_while_helix_believes_in_a_lost_lobby() {
        // Wolf restarted and lists no lobby; Helix still names L for ses_a.
        let mut obs = streaming_viewer(1, "agent-ses_a-u", 0.0);
        let believe = |at: EpochMs| vec![poll(at - 5.0, "wolf", "lobbies", json!([])), poll(at, "api", "session-lobbies", json!([{"session": "ses_a", "lobby_id": "L"}]))];
        obs.extend(believe(3000.0));
        obs.extend(believe(3500.0));
        let t = Thresholds::default();
        assert!(detect(&obs, &t).is_empty(), "a belief alone is not a failure before ghost_secs: Helix may recreate the lobby");
        let text = |at: EpochMs, text: &str| Observation { at, event: Event::Tab { tab: 1, probe: ProbeEvent::Console { level: "warning".into(), text: text.into() } } };
        // Helix not finding the viewer's stream yet is not about the lobby.
        obs.push(text(3600.0, "auto-join failed: HTTP 500 {\"error\":\"failed to join lobby: Wolf UI session not found - client may not have connected yet\"}"));
        obs.extend(believe(4000.0));
        assert!(detect(&obs, &t).is_empty());
        obs.push(text(4100.0, "auto-join failed: HTTP 500 {\"error\":\"failed to join lobby: Lobby or session not found\"}"));
        assert!(detect(&obs, &t).is_empty(), "decided only once a later poll shows Helix still believing");
        obs.extend(believe(4500.0));
        let d = detect(&obs, &t);
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F10 restart-ghost"]);
        assert_eq!((d[0].tab, d[0].first_symptom, d[0].decided_at), (Some(1), 4100.0, 4500.0));
    }

    #[test]
    fn f11_counts_lines_in_a_window_and_f13_counts_busy_answers() {
        let obs = vec![log(0.0, "moonlight-web", "chunk too short"), log(20_000.0, "moonlight-web", "chunk too short"), log(21_000.0, "moonlight-web", "chunk too short")];
        assert!(detect(&obs, &Thresholds::default()).is_empty(), "3 lines over 21 s is not 3 in 10 s");
        let mut obs = obs;
        obs.push(log(22_000.0, "moonlight-web", "chunk too short"));
        assert_eq!(detect(&obs, &Thresholds::default())[0].label(), "F11 sctp-corruption");

        let mut obs = viewer("ses_a");
        obs.push(received(1500.0, json!("AlreadyStreaming")));
        assert!(detect(&obs, &Thresholds::default()).is_empty(), "one busy answer is a retry, not a loop");
        obs.push(tab(3500.0, ProbeEvent::WsOpen { ws: 1, url: "ws://x/moonlight/host/stream".into() }));
        obs.push(tab(3510.0, ProbeEvent::WsMessage { ws: 1, dir: Direction::Sent, msg: json!({"AuthenticateAndInit": {"session_id": "agent-ses_a-u", "mode": "create", "client_unique_id": "helix-agent-ses_a-L-u"}}) }));
        obs.push(tab(3600.0, ProbeEvent::WsMessage { ws: 1, dir: Direction::Received, msg: json!("AlreadyStreaming") }));
        let d = detect(&obs, &Thresholds::default());
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F13 already-streaming-loop"]);
    }
}
