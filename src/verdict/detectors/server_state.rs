//! Detectors of server truth that disagrees with itself or with the tabs: a join not counted
//! (F3), stuck sessions (F5), zombie streamers (F6), Wolf sessions nobody has (F7), lobbies Helix
//! believes in that Wolf lost (F10).

use super::*;

/// The last poll taken at or before `at` (polls are in time order).
fn latest<T>(polls: &[(EpochMs, T)], at: EpochMs) -> Option<&(EpochMs, T)> {
    polls[..polls.partition_point(|(t, _)| *t <= at)].last()
}

pub(super) fn f3_join_not_counted(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    for (join_at, _, m) in &c.logs {
        let Some((sid, lid)) = parse_join(m) else { continue };
        // Polls taken after the join, while Wolf still has the session.
        let mut bad = Vec::new();
        for (at, lobbies) in c.lobbies.iter().filter(|(at, _)| *at > join_at + 100.0) {
            let alive = latest(c.wolf_sessions, *at).is_some_and(|(_, s)| s.iter().any(|s| s.client_id == sid));
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
                let count = latest(c.memory, *at).and_then(|(_, m)| m.iter().find(|l| l.lobby_id == lid)).map(|l| l.client_count);
                return Some(Detection {
                    fault: FailureId::F3,
                    name: "join-not-counted".into(),
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

/// The first moonlight-web session that has matched `pred` in consecutive polls until `enough`
/// says so, given the session, how long (ms) and in how many polls. Returns the session, the
/// first poll that showed it and the deciding one.
pub(super) fn sustained(
    polls: &[(EpochMs, Vec<MlwSession>)],
    pred: impl Fn(&MlwSession) -> bool,
    enough: impl Fn(&MlwSession, f64, usize) -> bool,
) -> Option<(MlwSession, EpochMs, EpochMs)> {
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
/// create session without either is wrong as soon as it is confirmed — where `provable` says the
/// evidence holds; other modes, and unprovable cases, may be so for `hold_secs`.
pub(super) fn confirmed_or_held<'a>(
    t: &'a Thresholds,
    hold_secs: f64,
    provable: impl Fn(&MlwSession) -> bool + 'a,
) -> impl Fn(&MlwSession, f64, usize) -> bool + 'a {
    move |s, ms, polls| if s.mode == "create" && provable(s) { polls >= t.confirm_polls.max(1) } else { ms >= hold_secs * 1000.0 }
}

pub(super) fn tab_of(c: &Ctx, session_id: &str) -> Option<TabId> {
    c.viewers.iter().find(|v| v.session_id.as_deref() == Some(session_id)).map(|v| v.tab)
}

/// F5's quick rule: a create session without its socket in `confirm_polls` polls (0.5 s apart)
/// while its streamer is seen running here. A teardown cannot satisfy it: moonlight-web removes a
/// create session in the same step that handles its socket's close and tells the streamer to
/// stop (the stand-in's log: the streamer's `stop cascade: IpcStop` 1–2 ms after `WebSocket …
/// closed`), so no poll sees it socketless for 0.5 s, let alone two polls. Where something else
/// keeps the entry (F6's listed zombie), the streamer was still told to stop, and its stop
/// cascade ends within 0.72 s (measured, see [`TEARDOWN_MS`]): so the rule also wants the
/// session socketless for `TEARDOWN_MS` with its streamer still running when it decides. (The
/// live detectors evaluate as soon as a poll arrives; a second poll 0.5 s into such a cascade
/// still finds the streamer running.)
pub(super) fn f5_stuck_session(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    // moonlight-web's API says "alive" until it has reaped the process: the quick rule wants the
    // streamer seen running on this machine when it decides. Where its pid cannot be checked
    // (another machine, a container), only `stuck_secs` counts.
    let running_here = |s: &MlwSession| s.streamer_pid.is_some_and(process_alive);
    let enough = |s: &MlwSession, ms: f64, polls: usize| {
        if s.mode == "create" && running_here(s) {
            polls >= t.confirm_polls.max(1) && ms >= TEARDOWN_MS
        } else {
            ms >= t.stuck_secs * 1000.0
        }
    };
    let (s, from, at) = sustained(c.mlw_polls, MlwSession::stuck, enough)?;
    let rule = if s.mode == "create" { "; a create session ends with its socket" } else { "" };
    Some(Detection {
        fault: FailureId::F5,
        name: "stuck-session".into(),
        tab: tab_of(c, &s.session_id),
        message: format!(
            "moonlight-web session {} ({}) has had has_websocket:false for {:.1} s with its streamer alive{rule}",
            s.session_id,
            s.mode,
            secs(at - from)
        ),
        first_symptom: from,
        decided_at: at,
    })
}

/// F6's quick rules: a create session listed with a dead streamer in `confirm_polls` polls — a
/// healthy exit removes the entry first (the streamer's IPC `Stop` comes before it exits) — and a
/// streamer alive after its session left the list, which waits out a healthy stop cascade too
/// (see [`orphan_streamer`]).
pub(super) fn f6_zombie_streamer(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let listed_dead = sustained(c.mlw_polls, MlwSession::zombie, confirmed_or_held(t, t.mismatch_secs, |_| true)).map(|(s, from, at)| Detection {
        fault: FailureId::F6,
        name: "zombie-streamer".into(),
        tab: tab_of(c, &s.session_id),
        message: format!("moonlight-web still lists {} session {} with streamer_alive:false after {:.1} s", s.mode, s.session_id, secs(at - from)),
        first_symptom: from,
        decided_at: at,
    });
    let zombie_line = c.first_log("zombie sessions detected", 0.0).map(|(at, line)| Detection {
        fault: FailureId::F6,
        name: "zombie-streamer".into(),
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

/// Removing a session stops its streamer, so a streamer still running after its session left
/// the list is a zombie — once it has outlived a healthy stop cascade: a streamer told to stop
/// flushes for up to 500 ms before it cancels its Wolf session and exits (see [`TEARDOWN_MS`]),
/// so `confirm_polls` polls alone (0.5 s apart) can catch an ordinary exit; the quick rule also
/// wants the session gone for `TEARDOWN_MS`. Liveness can only be read now, so only the latest
/// polls can decide.
pub(super) fn orphan_streamer(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let mut last_pid: BTreeMap<String, (u32, EpochMs)> = BTreeMap::new();
    // First poll without the session, and polls without it so far.
    let mut gone: BTreeMap<String, (EpochMs, usize)> = BTreeMap::new();
    for (at, sessions) in c.mlw_polls {
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
            let confirmed = (*polls >= t.confirm_polls.max(1) && at - *from >= TEARDOWN_MS) || at - seen >= t.mismatch_secs * 1000.0;
            // Live detection looks within a second of the confirmation; later, the pid may
            // belong to another process by now.
            let recent = at - *from <= t.mismatch_secs * 1000.0 + 2000.0;
            if confirmed && recent && *at >= c.end - 1000.0 && !live_pids.contains(pid) && !cancelling(c, id, *at) && process_alive(*pid) {
                return Some(Detection {
                    fault: FailureId::F6,
                    name: "zombie-streamer".into(),
                    tab: tab_of(c, id),
                    message: format!(
                        "streamer pid {pid} of moonlight-web session {id} is still running {:.1} s after the session left /api/sessions ({polls} polls)",
                        secs(at - *from)
                    ),
                    first_symptom: *from,
                    decided_at: *at,
                });
            }
        }
    }
    None
}

/// How long a streamer's stop cascade may wait for Wolf to answer its `/cancel`: the
/// streamer's deadline for one step (5 s) and a second to exit after it.
const CANCEL_STEP_MS: f64 = 6000.0;

/// Whether session `id`'s streamer was waiting for Wolf to answer its `/cancel` at `at`: it
/// logged `stop: cancelling the Wolf session` less than [`CANCEL_STEP_MS`] before, and no end
/// of that step since (`stop: Wolf session cancelled`, `stop: cancel: …`, `stop: cancel timed
/// out`). Such a streamer outlives its session because Wolf does not answer (F15's deadlocked
/// handler), not because it ignores its stop: it is no zombie until that deadline has passed.
fn cancelling(c: &Ctx, id: &str, at: EpochMs) -> bool {
    let tag = format!("[Streamer {id}]");
    let mut since = None;
    for (t, service, m) in c.logs.iter().take_while(|(t, _, _)| *t <= at) {
        if *service != "moonlight-web" || !m.contains(&tag) {
            continue;
        }
        if m.contains("stop: cancelling the Wolf session") {
            since = Some(*t);
        } else if m.contains("stop: cancel") || m.contains("stop: Wolf session cancelled") {
            since = None;
        }
    }
    since.is_some_and(|t| at - t <= CANCEL_STEP_MS)
}

/// Whether a streamer process with this pid runs here. A pid moonlight-web reports from inside a
/// container belongs to another PID namespace: whatever this machine runs under that number is
/// not a streamer, so the command line must say it is one.
pub(super) fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"__streamer"))
}

/// F7's quick rule: the longest a healthy teardown keeps a Wolf session after moonlight-web
/// dropped its entry. moonlight-web removes a create session when its socket closes, then the
/// streamer's stop cascade tells the browser, waits up to 500 ms for `ConnectionTerminated` to
/// leave (its flush deadline), and only then `/cancel`s the Wolf session. Measured on the
/// stand-in (`e2e/bench/teardown.py` over 10 default suites, 837 teardowns, idle 2-core machine):
/// the cancel lands at most 0.53 s after the socket closed (p95 0.52 s), and the streamer exits
/// within 0.72 s. One poll before and one after can thus both see an ordinary teardown (0.5 s
/// apart), which is the false alarm two polls alone raised in rapid-cycles. The streamer's pid is no help when the
/// session lived less than one moonlight-web poll. So the quick rule also wants the orphan older
/// than this: more than twice the cascade, room for a loaded machine.
pub(super) const TEARDOWN_MS: f64 = 1200.0;

pub(super) fn f7_lobby_mismatch(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    // The streamer pid moonlight-web last listed per client: a Wolf session whose streamer still
    // runs is F6's zombie, not a lobby mismatch.
    let mut pid_of: BTreeMap<&str, u32> = BTreeMap::new();
    for (_, sessions) in c.mlw_polls {
        for s in sessions {
            if let (Some(u), Some(p)) = (s.client_unique_id.as_deref(), s.streamer_pid) {
                pid_of.insert(u, p);
            }
        }
    }
    let mut since: BTreeMap<String, (EpochMs, usize)> = BTreeMap::new();
    for (at, sessions) in c.wolf_sessions {
        let Some((_, mlw)) = latest(c.mlw_polls, *at) else { continue };
        // moonlight-web's next answer too: a session born between the two polls is not an orphan.
        let next = c.mlw_polls.get(c.mlw_polls.partition_point(|(t, _)| t <= at)).map(|(_, m)| m);
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
            let quick = *polls >= t.confirm_polls.max(1) && at - start >= TEARDOWN_MS && !settling;
            if quick || at - start >= t.mismatch_secs * 1000.0 {
                return Some(Detection {
                    fault: FailureId::F7,
                    name: "lobby-mismatch".into(),
                    tab: c.viewers.iter().find(|v| v.client_unique_id.as_deref() == Some(s.client_unique_id.as_str())).map(|v| v.tab),
                    message: format!(
                        "Wolf has kept session {} ({}) for {:.1} s ({polls} polls) that moonlight-web no longer has, and no streamer serves",
                        s.client_id,
                        s.client_unique_id,
                        secs(at - start)
                    ),
                    first_symptom: start,
                    decided_at: *at,
                });
            }
        }
    }
    None
}

/// Helix's answer when a join fails (`POST …/auto-join-lobby`, 500).
pub(super) const JOIN_FAILED: &str = "failed to join lobby";

/// F10's quick rule: a viewer of the session fails to rejoin (`failed to join lobby`) while Helix
/// still believes in a lobby Wolf lost. A healthy restart cannot satisfy it: the API recreates a
/// lost lobby within about a second of Wolf coming back (its watch runs every second) and checks
/// again right before every auto-join, so a join never meets the lost lobby; the belief alone
/// (before a viewer tries) still needs `ghost_secs`.
pub(super) fn f10_restart_ghost(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let mut since: BTreeMap<(String, String), EpochMs> = BTreeMap::new();
    for (at, beliefs) in c.helix_lobbies {
        // Wolf's answer of the same poll round (it comes just before); none while Wolf is down.
        let Some((_, lobbies)) = latest(c.lobbies, *at) else { continue };
        let ghosts: Vec<(String, String)> =
            beliefs.iter().filter_map(|b| Some((b.session.clone(), b.lobby_id.clone()?))).filter(|(_, l)| !lobbies.iter().any(|x| &x.id == l)).collect();
        since.retain(|k, _| ghosts.contains(k));
        for g in ghosts {
            let start = *since.entry(g.clone()).or_insert(*at);
            let lost =
                c.restarts.iter().rev().find(|r| **r <= start).map(|r| format!(" (lost {:.1} s after the restart began)", secs(start - r))).unwrap_or_default();
            // A restart loses lobbies and a healthy Helix recreates them, so a stale belief is
            // not yet a failure. A viewer of that session failing to join a lobby while Helix
            // believed — before this poll and still at it — is one: the session cannot recover.
            // (`Wolf UI session not found` is Helix not finding the viewer's stream yet.)
            let tabs_of_session: BTreeSet<TabId> = c
                .viewers
                .iter()
                .filter(|v| v.client_unique_id.as_deref().and_then(crate::verdict::checks::agent_session_of) == Some(g.0.as_str()))
                .map(|v| v.tab)
                .collect();
            let join_failed = c.tab_texts.iter().find(|(a, tab, text)| {
                *a >= start && *a < *at && tabs_of_session.contains(tab) && text.contains(JOIN_FAILED) && !text.contains("Wolf UI session not found")
            });
            if let Some((failed_at, tab, text)) = join_failed {
                return Some(Detection {
                    fault: FailureId::F10,
                    name: "restart-ghost".into(),
                    tab: Some(*tab),
                    message: format!(
                        "tab {tab} of {} could not rejoin: \"{}\"; Helix still names lobby {}, which Wolf has not listed for {:.1} s{lost}",
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
                return Some(Detection {
                    fault: FailureId::F10,
                    name: "restart-ghost".into(),
                    tab: c
                        .viewers
                        .iter()
                        .rfind(|v| v.client_unique_id.as_deref().and_then(crate::verdict::checks::agent_session_of) == Some(g.0.as_str()))
                        .map(|v| v.tab),
                    message: format!("Helix has believed for {:.1} s that {} owns lobby {}, which Wolf does not have{lost}", secs(at - start), g.0, g.1),
                    first_symptom: start,
                    decided_at: *at,
                });
            }
        }
    }
    None
}
