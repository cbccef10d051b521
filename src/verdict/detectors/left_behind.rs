//! Detectors of what the servers keep after it is gone: the sessions of a tab that vanished
//! (F18), and lobby setups that failed until none can start (F19). Both are leaks: the evidence
//! is the servers' own state or answers long after the thing they held ended.

use super::*;

/// F18: the driver made a tab vanish (`cut tab N`: its connections end without a close frame,
/// its peer goes silent; see `Browser::cut_tab`), and `vanish_secs` later moonlight-web still lists the
/// viewer's session *as if connected* (`has_websocket:true`) in `confirm_polls` consecutive
/// polls. A healthy moonlight-web ends a create session as soon as its socket ends, close frame
/// or not, and its streamer ends when its peer has been silent for 5 s (webrtc-rs's
/// disconnect): `vanish_secs` is above both, so a teardown cannot satisfy the rule. The Wolf
/// session of the viewer's client, when Wolf still lists it, is cited too.
///
/// Differential rules:
/// - **not F5** (stuck-session): F5 is a session kept *without* its socket (`has_websocket:
///   false`) — the server saw the socket close and kept the entry anyway. F18 is a session still
///   held *with* the socket of a tab the driver knows is gone: the server never noticed. A
///   socketless session is never F18, whatever happened to its tab; a session with its socket
///   is never F5.
/// - **not B1** (tab-crashed): the driver's cut crashes no renderer (a crashed renderer's
///   WebSocket is closed *with* a close frame by Chromium's network service, measured), so
///   nothing is a death; a crash the driver did not cause is still B1 and explains what follows
///   it, F18 included.
/// - only tabs the driver cut count: a tab it closed ends its socket with a close frame, and a
///   tab still connected is not gone.
pub(super) fn f18_vanished_tab_leak(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    for (cut_at, tab) in c.cuts {
        // The viewer the tab had when it vanished.
        let Some(v) = c.viewers.iter().rfind(|v| v.tab == *tab && v.started_at <= *cut_at) else { continue };
        let Some(sid) = v.session_id.as_deref() else { continue };
        let due = cut_at + t.vanish_secs * 1000.0;
        let mut held = Vec::new();
        for (at, sessions) in c.mlw_polls.iter().filter(|(at, _)| *at >= due) {
            match sessions.iter().find(|s| s.session_id == sid) {
                Some(s) if s.has_websocket => held.push((*at, s)),
                // Gone, or socketless (F5's evidence, not this): the server did notice.
                _ => break,
            }
            if held.len() >= t.confirm_polls.max(1) {
                let (decided, s) = held[held.len() - 1];
                let wolf = v.client_unique_id.as_deref().and_then(|uid| {
                    c.wolf_sessions[..c.wolf_sessions.partition_point(|(w, _)| *w <= decided)]
                        .last()
                        .and_then(|(_, ws)| ws.iter().find(|w| w.client_unique_id == uid))
                });
                let wolf = match wolf {
                    Some(w) => format!("; Wolf still has session {} of client {}", w.client_id, w.client_unique_id),
                    None => String::new(),
                };
                let streamer = match s.streamer_pid {
                    Some(pid) => format!("streamer pid {pid}, alive: {}", s.streamer_alive),
                    None => format!("streamer alive: {}", s.streamer_alive),
                };
                return Some(Detection {
                    fault: FailureId::F18,
                    name: "vanished-tab-leak".into(),
                    tab: Some(*tab),
                    message: format!(
                        "tab {tab} vanished without a close frame (the driver cut its connections) and {:.1} s later moonlight-web still lists its session {sid} ({}) as connected: has_websocket:true, {streamer}, in {} consecutive polls{wolf}",
                        secs(decided - cut_at),
                        s.mode,
                        held.len()
                    ),
                    first_symptom: *cut_at,
                    decided_at: decided,
                });
            }
        }
    }
    None
}

/// Wolf's answer to a lobby setup that never got its display.
pub(super) const SETUP_TIMED_OUT: &str = "Lobby setup timed out";
/// Wolf's log of a lobby it set up.
pub(super) const LOBBY_CREATED: &str = "[LOBBY] Created lobby";
/// Wolf's log of a lobby setup that failed (the kind that leaves its display socket behind).
pub(super) const SETUP_FAILED: &str = "Lobby setup failed";

/// F19: lobby setups time out again and again (`lobby_timeouts` times) with no lobby set up
/// since the first of them — Wolf's `Lobby setup timed out`, as Helix relays it to a session
/// start (`failed to create Wolf lobby: Lobby setup timed out`) or as Wolf logs it. The lobby
/// setups that failed before (`Lobby setup failed`, each leaving its display socket) are cited.
///
/// Differential rules:
/// - **not D2** (a Wolf that is down): the words are Wolf's own answer, which a dead Wolf never
///   gives (its callers get `connection refused` or a missing socket); a Wolf that died is named
///   by D2 from its own evidence and explains what follows it.
/// - **not a transient failure**: one timeout, or timeouts with a lobby set up after them, is
///   not F19; it needs `lobby_timeouts` of them with none set up since the first (a leak makes
///   every later setup fail, a hiccup does not).
/// - **not Helix's lobby limit**: `GPU resource limit reached` is Helix's refusal, not Wolf's
///   setup; it is not counted.
pub(super) fn f19_lobby_setup_leak(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    // Every piece of evidence, in time order: (at, timed out?, the words).
    let mut seen: Vec<(EpochMs, bool, &str, &str)> = Vec::new();
    for (at, outcome) in c.session_starts {
        match outcome {
            Ok(()) => seen.push((*at, false, "helix", "a session started")),
            Err(e) if e.contains(SETUP_TIMED_OUT) => seen.push((*at, true, "helix", e)),
            Err(_) => {}
        }
    }
    for (at, service, m) in &c.logs {
        if *service != "wolf" {
            continue;
        }
        if m.contains(SETUP_TIMED_OUT) {
            seen.push((*at, true, "wolf", m));
        } else if m.contains(LOBBY_CREATED) {
            seen.push((*at, false, "wolf", m));
        }
    }
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The timeouts since the last success; Helix's answers and Wolf's lines are two witnesses of
    // the same setups, so the larger count of the two is how many there were.
    let since = seen.iter().rposition(|(_, timed_out, _, _)| !timed_out).map_or(0, |i| i + 1);
    let run = &seen[since..];
    let count = |who: &str| run.iter().filter(|(_, _, w, _)| *w == who).count();
    let needed = t.lobby_timeouts.max(2);
    if count("helix").max(count("wolf")) < needed {
        return None;
    }
    // Decided at the piece of evidence that made the count.
    let mut per = (0, 0);
    let decided = run.iter().find(|(_, _, who, _)| {
        if *who == "helix" {
            per.0 += 1;
        } else {
            per.1 += 1;
        }
        per.0.max(per.1) >= needed
    })?;
    let first = run[0];
    let failed_before = c.logs.iter().filter(|(at, s, m)| *s == "wolf" && *at < first.0 && m.contains(SETUP_FAILED)).count();
    let answers: Vec<&str> = run.iter().filter(|(_, _, who, _)| *who == "helix").map(|(_, _, _, e)| *e).collect();
    let answer = answers.first().map(|a| format!("; Helix answered the session start: \"{a}\"")).unwrap_or_default();
    Some(Detection {
        fault: FailureId::F19,
        name: "lobby-setup-leak".into(),
        tab: None,
        message: format!(
            "{} lobby setups timed out ({SETUP_TIMED_OUT}, Wolf logged {} of them) over {:.1} s with no lobby set up since{answer}; before them Wolf logged {failed_before} failed setup(s) (\"{SETUP_FAILED}\"), each leaving its display socket behind",
            count("helix").max(count("wolf")),
            count("wolf"),
            secs(decided.0 - first.0),
        ),
        first_symptom: first.0,
        decided_at: decided.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Casualty, Direction};
    use serde_json::json;

    fn at(at: EpochMs, event: Event) -> Observation {
        Observation { at, event }
    }
    fn op(t: EpochMs, name: &str, phase: OpPhase) -> Observation {
        at(t, Event::Op { name: name.into(), phase })
    }
    fn wolf_log(t: EpochMs, message: &str) -> Observation {
        at(t, Event::Log { service: "wolf".into(), level: "INFO".into(), message: message.into() })
    }
    /// Tab 1's viewer of session `agent-ses_a-u`, streaming from t=1000.
    fn viewer() -> Vec<Observation> {
        let mut v = super::super::tests::viewer("ses_a");
        v.push(at(
            1000.0,
            Event::Tab { tab: 1, probe: ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!({"ConnectionComplete": {"client_id": "42"}}) } },
        ));
        v
    }
    /// moonlight-web's list with the viewer's session, its socket attached or not.
    fn mlw(t: EpochMs, has_websocket: bool) -> Observation {
        let sessions = json!([{"session_id": "agent-ses_a-u", "client_unique_id": "helix-agent-ses_a-L-u", "mode": "create",
            "has_websocket": has_websocket, "streamer_pid": null, "streamer_alive": true}]);
        at(t, Event::Poll { service: "moonlight-web".into(), reply: std::sync::Arc::new(crate::timeline::Reply::parse("moonlight-web", "sessions", sessions)) })
    }
    fn wolf_sessions(t: EpochMs) -> Observation {
        let sessions = json!([{"app_id": "1", "client_id": "42", "client_ip": "127.0.0.1", "client_unique_id": "helix-agent-ses_a-L-u"}]);
        at(t, Event::Poll { service: "wolf".into(), reply: std::sync::Arc::new(crate::timeline::Reply::parse("wolf", "sessions", sessions)) })
    }
    fn cut(t: EpochMs) -> Vec<Observation> {
        vec![op(t, "cut tab 1", OpPhase::Start), op(t + 30.0, "cut tab 1", OpPhase::Ok)]
    }
    fn labels(d: &[Detection]) -> Vec<String> {
        d.iter().map(Detection::label).collect()
    }

    #[test]
    fn f18_names_the_session_of_a_cut_tab_still_held_as_connected() {
        let mut obs = viewer();
        obs.extend(cut(2000.0));
        obs.extend((0..19).map(|i| mlw(2500.0 + 500.0 * i as f64, true)));
        obs.push(wolf_sessions(11_000.0));
        let t = Thresholds::default();
        assert!(detect(&obs, &t).is_empty(), "9.5 s after the cut is not vanish_secs (10 s)");
        obs.push(mlw(12_000.0, true));
        obs.push(mlw(12_500.0, true));
        let d = detect(&obs, &t);
        assert_eq!(labels(&d), ["F18 vanished-tab-leak"]);
        assert_eq!((d[0].first_symptom, d[0].decided_at, d[0].tab), (2000.0, 12_500.0, Some(1)));
        assert!(d[0].message.contains("agent-ses_a-u") && d[0].message.contains("has_websocket:true"), "{}", d[0].message);
        assert!(d[0].message.contains("Wolf still has session 42"), "{}", d[0].message);
    }

    #[test]
    fn f18_is_not_named_for_f5s_evidence_nor_f5_for_f18s() {
        // The cut tab's session kept *without* its socket: the server noticed the socket end
        // and kept the entry anyway. That is F5, not F18.
        let t = Thresholds { stuck_secs: 4.0, ..Thresholds::default() };
        let mut socketless = viewer();
        socketless.extend(cut(2000.0));
        socketless.extend((0..24).map(|i| mlw(2500.0 + 500.0 * i as f64, false)));
        assert_eq!(labels(&detect(&socketless, &t)), ["F5 stuck-session"]);
        // The same tab's session held with its socket: F18 alone (F5 never names a session
        // that has its socket).
        let mut held = viewer();
        held.extend(cut(2000.0));
        held.extend((0..24).map(|i| mlw(2500.0 + 500.0 * i as f64, true)));
        assert_eq!(labels(&detect(&held, &t)), ["F18 vanished-tab-leak"]);
    }

    #[test]
    fn f18_wants_a_tab_the_driver_cut_and_a_session_not_let_go() {
        let t = Thresholds::default();
        // Let go within a poll: the healthy stack.
        let mut healthy = viewer();
        healthy.extend(cut(2000.0));
        healthy.push(mlw(2100.0, true));
        healthy.extend((0..24).map(|i| {
            at(
                2500.0 + 500.0 * i as f64,
                Event::Poll {
                    service: "moonlight-web".into(),
                    reply: std::sync::Arc::new(crate::timeline::Reply::parse("moonlight-web", "sessions", json!([]))),
                },
            )
        }));
        assert!(detect(&healthy, &t).is_empty());
        // A tab the driver closed (its socket closes with a close frame) is not a vanished one.
        let mut closed = viewer();
        closed.push(op(2000.0, "close tab 1", OpPhase::Start));
        closed.extend((0..24).map(|i| mlw(2500.0 + 500.0 * i as f64, true)));
        assert!(!labels(&detect(&closed, &t)).iter().any(|l| l.starts_with("F18")));
        // A crash the driver did not cause is B1, and explains what follows it (F18 too).
        let mut crash = viewer();
        crash.extend(cut(2000.0));
        crash.push(at(1900.0, Event::Died { what: Casualty::TabCrashed { tab: Some(1) }, detail: "the renderer of tab 1 crashed".into() }));
        crash.extend((0..24).map(|i| mlw(2500.0 + 500.0 * i as f64, true)));
        assert_eq!(labels(&detect(&crash, &t)), ["B1 tab-crashed"]);
    }

    const TIMED_OUT: &str = "[LOBBY] Lobby setup timed out after 2 s";
    const FAILED: &str = "[LOBBY] Lobby setup failed: the runner exited before its display was ready (lobby x, display wayland-0)";
    const HELIX_TIMED_OUT: &str = "Helix answered 500 to /api/v1/sessions/chat: {\"error\":\"failed to create Wolf lobby: Lobby setup timed out\"}";

    /// Two sessions started, each after one failed setup (Helix tried again).
    fn leaking() -> Vec<Observation> {
        vec![
            wolf_log(100.0, FAILED),
            wolf_log(110.0, "[LOBBY] Created lobby a (Agent 0001)"),
            op(120.0, "create agent session", OpPhase::Ok),
            wolf_log(300.0, FAILED),
            wolf_log(310.0, "[LOBBY] Created lobby b (Agent 0002)"),
            op(320.0, "create agent session", OpPhase::Ok),
        ]
    }

    #[test]
    fn f19_names_repeated_setup_timeouts_with_none_set_up_since() {
        let t = Thresholds::default();
        let mut obs = leaking();
        obs.push(wolf_log(2400.0, TIMED_OUT));
        assert!(detect(&obs, &t).is_empty(), "one timeout is a hiccup");
        obs.push(wolf_log(4400.0, TIMED_OUT));
        obs.push(wolf_log(6400.0, TIMED_OUT));
        obs.push(op(6410.0, "create agent session", OpPhase::Failed { error: HELIX_TIMED_OUT.into() }));
        let d = detect(&obs, &t);
        assert_eq!(labels(&d), ["F19 lobby-setup-leak"]);
        assert_eq!((d[0].first_symptom, d[0].decided_at), (2400.0, 4400.0));
        assert!(d[0].message.contains("3 lobby setups timed out") && d[0].message.contains("2 failed setup(s)"), "{}", d[0].message);
        assert!(d[0].message.contains("failed to create Wolf lobby: Lobby setup timed out"), "{}", d[0].message);
        // Helix's answers alone (a Wolf whose log is not followed) make the same case.
        let answers = vec![
            op(2400.0, "create agent session", OpPhase::Failed { error: HELIX_TIMED_OUT.into() }),
            op(9000.0, "create agent session", OpPhase::Failed { error: HELIX_TIMED_OUT.into() }),
        ];
        assert_eq!(labels(&detect(&answers, &t)), ["F19 lobby-setup-leak"]);
    }

    #[test]
    fn f19_is_not_a_transient_timeout_a_dead_wolf_or_helixs_limit() {
        let t = Thresholds::default();
        // A lobby set up after the first timeout: it was transient.
        let mut transient = leaking();
        transient.extend([wolf_log(2400.0, TIMED_OUT), wolf_log(3000.0, "[LOBBY] Created lobby c (Agent 0003)"), wolf_log(5000.0, TIMED_OUT)]);
        assert!(detect(&transient, &t).is_empty());
        // A Wolf that is down: its callers never get Wolf's words.
        let refused =
            |t| op(t, "create agent session", OpPhase::Failed { error: "failed to list Wolf lobbies: Wolf at /run/wolf.sock: connection refused".into() });
        assert!(detect(&[refused(1000.0), refused(2000.0), refused(3000.0)], &t).is_empty());
        // Helix's own lobby limit.
        let limit = |t| op(t, "create agent session", OpPhase::Failed { error: "GPU resource limit reached (5/5 lobbies active)".into() });
        assert!(detect(&[limit(1000.0), limit(2000.0)], &t).is_empty());
    }

    #[test]
    fn f19_explains_the_session_start_it_refused_and_nothing_else() {
        let d = Detection { fault: FailureId::F19, name: "lobby-setup-leak".into(), tab: None, message: String::new(), first_symptom: 0.0, decided_at: 0.0 };
        assert!(d.explains_failed_op("create agent session"));
        assert!(!d.explains_failed_op("open viewer tab"));
    }
}
