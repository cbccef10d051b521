//! The detectors' model of a run: what they know, folded one observation at a time, and the
//! evaluation of every detector over it. Its own file because it is the one stateful part of
//! the detectors (the rules in the sibling files are pure functions of a [`Ctx`]).
//!
//! Why one file over 400 lines: the fold and the window it keeps (run or bounded, for `watch`)
//! must agree on every record kind; split, a record kind could age out in one half only.

use super::deaths::PROMISE_SET_TWICE;
use super::*;
use crate::timeline::Reply;

/// What the detectors know of the run, folded one observation at a time ([`Model::ingest`]):
/// the viewers, and the recent polls, log lines and tab texts, each parsed once. Evidence older
/// than the longest rule needs ([`Model::history_ms`]) is let go, so an observation costs the
/// same at the end of a long run as at its start; the driver's own operations and the deaths,
/// which are few, are kept for the whole run.
pub struct Model {
    history_ms: f64,
    /// Whether the driver's operations, the deaths and the streamer launches are kept for the
    /// whole run (a test run: they are few, and a death explains all that follows it); `false`
    /// for a monitor that runs for days ([`Model::bounded`]), where they go with the window too.
    whole_run: bool,
    viewers: ViewerFold,
    /// (at, service, message), in time order (log followers deliver a moment apart).
    logs: Vec<(EpochMs, String, String)>,
    /// moonlight-web's streamer launches (`[Stream] New … session`), for the whole run: a
    /// streamer's launch may be long before what it does wrong.
    launches: Vec<(EpochMs, String, String)>,
    mlw_polls: Vec<(EpochMs, Vec<MlwSession>)>,
    wolf_sessions: Vec<(EpochMs, Vec<WolfSession>)>,
    lobbies: Vec<(EpochMs, Vec<WolfLobby>)>,
    memory: Vec<(EpochMs, Vec<LobbyMemory>)>,
    /// Wolf's health polls (F16) and the driver's probes of its HTTPS port (F15).
    health: Vec<(EpochMs, WolfHealth)>,
    https_probes: Vec<(EpochMs, HttpsProbe)>,
    helix_lobbies: Vec<(EpochMs, Vec<HelixLobby>)>,
    restarts: Vec<EpochMs>,
    teardowns: Vec<(EpochMs, TabId)>,
    stops: Vec<(EpochMs, String)>,
    cuts: Vec<(EpochMs, TabId)>,
    session_starts: Vec<(EpochMs, Result<(), String>)>,
    tab_texts: Vec<(EpochMs, TabId, String)>,
    deaths: Vec<(EpochMs, crate::timeline::Casualty, String)>,
    service_polls: Vec<(EpochMs, String, Result<(), String>)>,
    restart_spans: Vec<(EpochMs, Option<EpochMs>, String)>,
    /// IPv4 addresses streamers offered viewers as host candidates, for the whole run (a
    /// handful): what a streamer that binds none of them cannot be reached on (F2).
    offered_hosts: BTreeSet<String>,
    /// The driver's input probes pending their echo.
    echoes: crate::frames::input::EchoFold,
    /// Probes whose echo showed a modifier held on the remote desktop, for the whole run (F21's
    /// evidence; a healthy run has none, so this stays empty).
    modified_echoes: Vec<crate::frames::input::ProbeOutcome>,
    /// Server replies whose shape did not parse: (at, service, why). Never taken for "none".
    malformed: Vec<(EpochMs, String, String)>,
    /// Completed cycles and the services' resources at them (F20): running sums, and one point
    /// per cycle and series (a few bytes; see `leak.rs`).
    leak: LeakFold,
    end: EpochMs,
    trimmed_at: EpochMs,
    /// Typed poll replies taken in so far, and what the detectors of server state (which decide
    /// only at a poll) found when it was last this: they run once per poll round, not once per
    /// probe batch.
    polls_taken: usize,
    server_state_found: Option<(usize, Vec<Detection>)>,
    /// Observations other than frame samples and stats taken in so far, and what the other
    /// detectors found when it was last this (and the run's time then): between two such
    /// observations only the frame rules (F8, F9) have new evidence, so only they run — the rest
    /// again at least every [`FULL_EVERY_MS`], for the rules that decide on a deadline.
    others_taken: usize,
    others_found: Option<(usize, EpochMs, Vec<Detection>)>,
}

/// The longest the detectors that do not read frames wait for an evaluation (run time).
const FULL_EVERY_MS: f64 = 500.0;

/// What the detectors look for in service logs. A line with none of these is read by no
/// detector, so the model does not keep it (most lines are not evidence: a streaming Wolf logs
/// input counts every few seconds), and no evaluation scans it again.
pub(super) const READ_LINES: &[&str] = &[
    "Received resume event from an unregistered session", // F1
    "could not listen udp",                               // F2
    "[LOBBY] Session ",                                   // F3, F4: joins
    "[ENET] disconnected client",                         // F4
    "[LOBBY] Moonlight stream ",                          // F4: leaving the lobby
    "zombie sessions detected",                           // F6
    "Failed to acquire buffer from pool",                 // F8
    "chunk too short",                                    // F11
    "Error(Connect, TimedOut)",                           // F12
    "[Stream] New ",                                      // F14: launches
    "resuming app",                                       // F14
    "stop: cancelling the Wolf session",                  // F14; F6: a cascade waiting on Wolf
    "stop: cancel: ",                                     // F6: the wait's ends
    "stop: cancel timed out",                             // F6
    "stop: Wolf session cancelled",                       // F6
    " streams on port",                                   // F14
    "Streamer of session ",                               // D1
    PROMISE_SET_TWICE,                                    // F17
    "Lobby setup timed out",                              // F19
    "Lobby setup failed",                                 // F19: the setups that leaked
    "[LOBBY] Created lobby",                              // F19: a setup that worked
];

/// The address of an IPv4 host candidate (`candidate:1 1 udp 2130706431 198.51.100.2 40000 typ
/// host …`); `None` for other types and for IPv6.
fn host_candidate_v4(candidate: &str) -> Option<&str> {
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    let typ = fields.iter().position(|f| *f == "typ")?;
    let addr = *fields.get(4)?;
    (fields.get(typ + 1) == Some(&"host") && addr.parse::<std::net::Ipv4Addr>().is_ok()).then_some(addr)
}

/// Insert keeping time order; observations arrive nearly in order, so this looks at the back.
fn insert_by_time<T>(v: &mut Vec<(EpochMs, T)>, at: EpochMs, item: T) {
    let i = v.iter().rposition(|(t, _)| *t <= at).map_or(0, |i| i + 1);
    v.insert(i, (at, item));
}

/// The same for the three-field records.
fn insert3<A, B>(v: &mut Vec<(EpochMs, A, B)>, at: EpochMs, a: A, b: B) {
    let i = v.iter().rposition(|(t, _, _)| *t <= at).map_or(0, |i| i + 1);
    v.insert(i, (at, a, b));
}

impl Model {
    pub fn new(t: &Thresholds) -> Self {
        Model {
            history_ms: Self::history_ms(t),
            whole_run: true,
            viewers: ViewerFold::new(),
            logs: Vec::new(),
            launches: Vec::new(),
            mlw_polls: Vec::new(),
            wolf_sessions: Vec::new(),
            lobbies: Vec::new(),
            memory: Vec::new(),
            health: Vec::new(),
            https_probes: Vec::new(),
            helix_lobbies: Vec::new(),
            restarts: Vec::new(),
            teardowns: Vec::new(),
            stops: Vec::new(),
            cuts: Vec::new(),
            session_starts: Vec::new(),
            tab_texts: Vec::new(),
            deaths: Vec::new(),
            service_polls: Vec::new(),
            restart_spans: Vec::new(),
            offered_hosts: BTreeSet::new(),
            echoes: Default::default(),
            modified_echoes: Vec::new(),
            malformed: Vec::new(),
            leak: LeakFold::new(t.leak_warmup_cycles),
            end: 0.0,
            trimmed_at: 0.0,
            polls_taken: 0,
            server_state_found: None,
            others_taken: 0,
            others_found: None,
        }
    }

    /// A model whose every record goes with the window, for `helix-e2e watch`: there a death
    /// explains what follows it for the window's length, not for days, and what the model holds
    /// stays flat however long it watches.
    pub fn bounded(t: &Thresholds) -> Self {
        Model { whole_run: false, ..Self::new(t) }
    }

    /// How far back the detectors look: the longest of their windows (F5's `stuck_secs` by
    /// default), plus 20 s for the grace periods that come on top (a launch stall, a ghost, F1's
    /// 20 s between a log line and a tab's error).
    pub fn history_ms(t: &Thresholds) -> f64 {
        let longest = [
            t.ice_connect_secs,
            t.stuck_secs,
            t.mismatch_secs,
            t.black_secs,
            t.freeze_secs,
            t.sctp_window_secs,
            t.launch_stall_secs,
            t.ghost_secs,
            t.vanish_secs,
        ]
        .into_iter()
        .fold(0.0, f64::max);
        longest * 1000.0 + 20_000.0
    }

    /// Take in one observation.
    pub fn ingest(&mut self, o: &Observation) {
        self.end = self.end.max(o.at);
        if !matches!(o.event, Event::Tab { probe: ProbeEvent::Frame { .. } | ProbeEvent::Stats { .. }, .. }) {
            self.others_taken += 1;
        }
        self.viewers.ingest(o);
        self.leak.ingest(o);
        self.echoes.observe(o);
        self.modified_echoes.extend(self.echoes.take_decided().into_iter().filter(|p| p.seen.is_some_and(|(_, e)| !e.modifiers.is_empty())));
        match &o.event {
            Event::Poll { service, reply } => self.poll(o.at, service, reply),
            Event::Log { service, message, .. } => {
                if message.contains("[Stream] New ") {
                    insert3(&mut self.launches, o.at, service.clone(), message.clone());
                }
                if READ_LINES.iter().any(|n| message.contains(n)) {
                    insert3(&mut self.logs, o.at, service.clone(), message.clone());
                }
            }
            Event::Died { what, detail } => insert3(&mut self.deaths, o.at, what.clone(), detail.clone()),
            Event::Op { name, phase: OpPhase::Ok | OpPhase::Failed { .. } } if name.starts_with("restart ") => {
                if let Some(span) = self.restart_spans.iter_mut().rev().find(|(_, end, s)| end.is_none() && Some(s.as_str()) == name.strip_prefix("restart ")) {
                    span.1 = Some(o.at);
                }
            }
            Event::Tab { probe: ProbeEvent::Candidate { local: false, candidate, .. }, .. } => {
                if let Some(addr) = host_candidate_v4(candidate) {
                    if !self.offered_hosts.contains(addr) {
                        self.offered_hosts.insert(addr.to_string());
                    }
                }
            }
            Event::Tab { tab, probe: ProbeEvent::Console { text, .. } | ProbeEvent::UiText { text, .. } } => {
                insert3(&mut self.tab_texts, o.at, *tab, text.clone())
            }
            // A refused API call's answer: the real viewer logs only an error object, so the
            // server's words (e.g. `failed to join lobby: …`) are only here.
            Event::Tab { tab, probe: ProbeEvent::Http { status: Some(400..), body: Some(body), .. } } => insert3(&mut self.tab_texts, o.at, *tab, body.clone()),
            // Helix's answers to the session starts (F19), for the whole run (a handful).
            Event::Op { name, phase: OpPhase::Ok } if name == "create agent session" => self.session_starts.push((o.at, Ok(()))),
            Event::Op { name, phase: OpPhase::Failed { error } } if name == "create agent session" => self.session_starts.push((o.at, Err(error.clone()))),
            Event::Op { name, phase: OpPhase::Start } => {
                if let Some(tab) = leak::torn_down_tab(name) {
                    self.teardowns.push((o.at, tab));
                    if name.starts_with("cut tab ") {
                        self.cuts.push((o.at, tab));
                    }
                }
                if let Some(service) = name.strip_prefix("restart ") {
                    self.restarts.push(o.at);
                    self.restart_spans.push((o.at, None, service.to_string()));
                }
                if let Some(ses) = name.strip_prefix("stop agent session ") {
                    self.stops.push((o.at, ses.trim().to_string()));
                }
            }
            _ => {}
        }
        // Let go of old evidence about once a second (the cost of trimming is the window's).
        if self.end - self.trimmed_at >= 1000.0 {
            self.trimmed_at = self.end;
            self.forget_before(self.end - self.history_ms);
        }
    }

    fn poll(&mut self, at: EpochMs, service: &str, reply: &Reply) {
        if matches!(service, "wolf" | "moonlight-web" | "api") {
            match (reply.answered(), reply) {
                (Some(true), _) => insert3(&mut self.service_polls, at, service.to_string(), Ok(())),
                (Some(false), Reply::Unreachable(e)) => insert3(&mut self.service_polls, at, service.to_string(), Err(e.clone())),
                _ => {}
            }
        }
        self.polls_taken += 1;
        match reply {
            Reply::MlwSessions(v) => insert_by_time(&mut self.mlw_polls, at, v.clone()),
            Reply::WolfSessions(v) => insert_by_time(&mut self.wolf_sessions, at, v.clone()),
            Reply::WolfLobbies(v) => insert_by_time(&mut self.lobbies, at, v.clone()),
            Reply::HelixLobbies(v) => insert_by_time(&mut self.helix_lobbies, at, v.clone()),
            Reply::WolfMemory(m) => insert_by_time(&mut self.memory, at, m.lobbies.clone()),
            Reply::WolfHealth(h) => insert_by_time(&mut self.health, at, h.clone()),
            Reply::WolfHttps(p) => insert_by_time(&mut self.https_probes, at, p.clone()),
            Reply::Malformed(why) => self.malformed.push((at, service.to_string(), why.clone())),
            _ => {}
        }
    }

    fn forget_before(&mut self, cutoff: EpochMs) {
        self.viewers.forget_ended_before(cutoff);
        self.logs.retain(|(t, _, _)| *t >= cutoff);
        self.tab_texts.retain(|(t, _, _)| *t >= cutoff);
        self.service_polls.retain(|(t, _, _)| *t >= cutoff);
        self.malformed.retain(|(t, _, _)| *t >= cutoff);
        self.mlw_polls.retain(|(t, _)| *t >= cutoff);
        self.wolf_sessions.retain(|(t, _)| *t >= cutoff);
        self.lobbies.retain(|(t, _)| *t >= cutoff);
        self.memory.retain(|(t, _)| *t >= cutoff);
        self.health.retain(|(t, _)| *t >= cutoff);
        self.https_probes.retain(|(t, _)| *t >= cutoff);
        self.helix_lobbies.retain(|(t, _)| *t >= cutoff);
        if !self.whole_run {
            self.launches.retain(|(t, _, _)| *t >= cutoff);
            self.deaths.retain(|(t, _, _)| *t >= cutoff);
            self.restarts.retain(|t| *t >= cutoff);
            self.restart_spans.retain(|(_, end, _)| end.is_none_or(|e| e >= cutoff));
            self.teardowns.retain(|(t, _)| *t >= cutoff);
            self.stops.retain(|(t, _)| *t >= cutoff);
            self.cuts.retain(|(t, _)| *t >= cutoff);
            self.session_starts.retain(|(t, _)| *t >= cutoff);
        }
    }

    /// How many records the model holds (viewers' frames, polls, lines): bounded by the
    /// history window on a steady run, whatever its age.
    pub fn held(&self) -> usize {
        self.viewers.frames_held()
            + self.logs.len()
            + self.tab_texts.len()
            + self.service_polls.len()
            + self.mlw_polls.len()
            + self.wolf_sessions.len()
            + self.lobbies.len()
            + self.memory.len()
            + self.health.len()
            + self.https_probes.len()
            + self.helix_lobbies.len()
    }

    /// Server replies that did not parse into their type, most recent last: (at, service, why).
    pub fn malformed(&self) -> &[(EpochMs, String, String)] {
        &self.malformed
    }

    /// Every detector over what the model holds; at most one detection per fault.
    pub fn detect(&mut self, t: &Thresholds) -> Vec<Detection> {
        let ctx = self.ctx();
        // F3, F5, F6, F7 and F10 decide at a poll (their times are poll times): between polls
        // their answer stands.
        let server_state = match &self.server_state_found {
            Some((n, found)) if *n == self.polls_taken => found.clone(),
            _ => [
                f3_join_not_counted(&ctx, t),
                f5_stuck_session(&ctx, t),
                f6_zombie_streamer(&ctx, t),
                f7_lobby_mismatch(&ctx, t),
                f10_restart_ghost(&ctx, t),
                f18_vanished_tab_leak(&ctx, t),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        let others = match &self.others_found {
            Some((n, at, found)) if *n == self.others_taken && self.end - at < FULL_EVERY_MS => found.clone(),
            _ => [
                f1_treated_as_resume(&ctx),
                f15_https_deadlock(&ctx),
                f16_pipelines_blocked(&ctx, t),
                f2_webrtc_ports_exhausted(&ctx, t),
                f4_control_stream_timeout(&ctx),
                f11_sctp_corruption(&ctx, t),
                f12_slow_launch(&ctx, t),
                f13_already_streaming_loop(&ctx, t),
                f14_reconnect_teardown_race(&ctx),
                f19_lobby_setup_leak(&ctx, t),
                f20_resource_leak(ctx.leak, t),
                f21_modifier_latched(&ctx),
            ]
            .into_iter()
            .flatten()
            .chain(deaths::deaths(&ctx, t))
            .collect(),
        };
        let mut found: Vec<Detection> = [f8_black_frames(&ctx, t), f9_frozen_video(&ctx, t)]
            .into_iter()
            .flatten()
            .chain(others.iter().cloned())
            .chain(server_state.iter().cloned())
            .collect();
        drop(ctx);
        self.server_state_found = Some((self.polls_taken, server_state));
        if self.others_found.as_ref().is_none_or(|(n, at, _)| *n != self.others_taken || self.end - at >= FULL_EVERY_MS) {
            self.others_found = Some((self.others_taken, self.end, others));
        }
        for d in &found {
            debug_assert!(d.fault.entry().names(&d.name), "{} is not in the catalog", d.label());
        }
        deaths::explained_by_deaths(&mut found);
        found.sort_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom));
        found
    }

    pub(super) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            viewers: self.viewers.viewers(),
            logs: self.logs.iter().map(|(t, s, m)| (*t, s.as_str(), m.as_str())).collect(),
            launches: self.launches.iter().map(|(t, s, m)| (*t, s.as_str(), m.as_str())).collect(),
            mlw_polls: &self.mlw_polls,
            wolf_sessions: &self.wolf_sessions,
            lobbies: &self.lobbies,
            memory: &self.memory,
            health: &self.health,
            https_probes: &self.https_probes,
            helix_lobbies: &self.helix_lobbies,
            restarts: &self.restarts,
            teardowns: &self.teardowns,
            stops: &self.stops,
            cuts: &self.cuts,
            session_starts: &self.session_starts,
            tab_texts: self.tab_texts.iter().map(|(t, tab, m)| (*t, *tab, m.as_str())).collect(),
            deaths: self.deaths.iter().map(|(t, w, d)| (*t, w, d.as_str())).collect(),
            service_polls: self.service_polls.iter().map(|(t, s, r)| (*t, s.as_str(), r.as_ref().map(|_| ()).map_err(String::as_str))).collect(),
            restart_spans: self.restart_spans.iter().map(|(a, b, s)| (*a, *b, s.as_str())).collect(),
            offered_hosts: &self.offered_hosts,
            leak: &self.leak,
            modified_echoes: &self.modified_echoes,
            end: self.end,
        }
    }
}

/// The model of these observations, in time order (for tests of one detector).
#[cfg(test)]
pub(super) fn model_of(obs: &[Observation]) -> Model {
    let mut ordered: Vec<&Observation> = obs.iter().collect();
    ordered.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut model = Model::new(&Thresholds::default());
    for o in ordered {
        model.ingest(o);
    }
    model
}
