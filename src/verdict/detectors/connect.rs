//! Detectors of viewers that never get their stream: taken for a resume (F1), no WebRTC port
//! (F2), a launch that stalls (F12), a `session_id` already streaming (F13).

use super::*;

pub(super) fn f1_treated_as_resume(c: &Ctx) -> Option<Detection> {
    let (log_at, line) = c.first_log("Received resume event from an unregistered session", 0.0)?;
    // The tab that never got its stream and was told PeerDisconnect around that line.
    let v = c.viewers.iter().find(|v| {
        v.connection_complete_at.is_none() && Ctx::error_at(v, "PeerDisconnect").is_some_and(|t| (t - log_at).abs() < 20_000.0) && !c.excused(v, log_at)
    })?;
    let pd = Ctx::error_at(v, "PeerDisconnect")?;
    Some(Detection {
        fault: FailureId::F1,
        name: "treated-as-resume".into(),
        tab: Some(v.tab),
        message: format!("{} got PeerDisconnect before ConnectionComplete; Wolf logged \"{line}\" {:.1} s earlier", who(v), secs(pd - log_at)),
        first_symptom: log_at.min(pd),
        decided_at: log_at.max(pd),
    })
}

/// After a streamer logged that it could not bind some of its addresses, how long its viewer
/// may still connect (a peer that bound on another address can): past this, the bind failure
/// is the cause. Not waited for when the streamer could bind none of the addresses streamers
/// of this host have offered viewers (see [`bind_failures`]).
pub(super) const BIND_GRACE_MS: f64 = 300.0;

/// One streamer's failures to bind IPv4 addresses for WebRTC, from moonlight-web's log.
struct BindFailure<'a> {
    first_at: EpochMs,
    line: &'a str,
    /// The streamer's name in moonlight-web's log (`[Streamer <session_id>]`), empty if none.
    streamer: &'a str,
    /// When the streamer had failed on every address a streamer of this host ever offered a
    /// viewer as a host candidate: then it has no candidate a viewer can reach, and ICE cannot
    /// connect — decided on the spot, not after [`BIND_GRACE_MS`]. `None` when some offered
    /// address did bind, or when no viewer was offered one yet (nothing to compare with).
    total_at: Option<EpochMs>,
}

/// IPv4 bind failures (`could not listen udp <addr>: …`), one record per streamer in the order
/// they started failing. A healthy streamer logs such lines only for IPv6 link-local addresses,
/// which viewers never use here.
fn bind_failures<'a>(c: &Ctx<'a>) -> Vec<BindFailure<'a>> {
    let mut out: Vec<(&str, BindFailure<'a>, BTreeSet<&str>)> = Vec::new();
    for (at, _, m) in &c.logs {
        let Some((_, rest)) = m.split_once("could not listen udp ") else { continue };
        let addr = rest.split_once(": ").map_or(rest, |(a, _)| a).trim();
        if addr.parse::<std::net::Ipv4Addr>().is_err() {
            continue;
        }
        let streamer = m.split_once("[Streamer ").and_then(|(_, r)| r.split_once(']')).map_or("", |(s, _)| s);
        let i = match out.iter().position(|(s, _, _)| *s == streamer) {
            Some(i) => i,
            None => {
                out.push((streamer, BindFailure { first_at: *at, line: m, streamer, total_at: None }, BTreeSet::new()));
                out.len() - 1
            }
        };
        let (_, failure, addrs) = &mut out[i];
        addrs.insert(addr);
        if failure.total_at.is_none() && !c.offered_hosts.is_empty() && c.offered_hosts.iter().all(|a| addrs.contains(a.as_str())) {
            failure.total_at = Some(*at);
        }
    }
    out.into_iter().map(|(_, f, _)| f).collect()
}

pub(super) fn f2_webrtc_ports_exhausted(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let failures = bind_failures(c);
    c.viewers
        .iter()
        .filter_map(|v| {
            let negotiating = v.stages.iter().find(|s| s.stage == "WebRTC Peer Negotiation").map(|s| s.at)?;
            // A viewer that completed its connection had working ICE, whatever its probe missed.
            let connected = v.first_connected_at.or(v.connection_complete_at);
            let failed_state =
                (v.ice_state.as_deref() == Some("failed") || v.connection_state.as_deref() == Some("failed")).then_some(v.closed_at.unwrap_or(c.end));
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
            // Its own streamer's failure: the one moonlight-web names with this viewer's
            // session_id; else the first that failed after this viewer started and names no
            // other viewer's session (viewers that start together, e.g. synthetic ones beside a
            // tab, would otherwise take each other's failures).
            let names_other = |f: &BindFailure| c.viewers.iter().any(|o| !f.streamer.is_empty() && o.session_id.as_deref() == Some(f.streamer));
            let bind_failure = failures
                .iter()
                .find(|f| v.session_id.as_deref().is_some_and(|s| s == f.streamer))
                .or_else(|| failures.iter().find(|f| f.first_at >= v.started_at - 1000.0 && !names_other(f)));
            if let Some(f) = bind_failure.filter(|f| v.closed_at.is_none_or(|x| x > f.first_at)) {
                let quoted = f.line.chars().take(160).collect::<String>();
                let decide_at = f.total_at.unwrap_or(f.first_at + BIND_GRACE_MS);
                if connected.is_none_or(|c| c > decide_at) && c.end >= decide_at {
                    let why = match f.total_at {
                        Some(_) => format!("its streamer could bind none of the addresses streamers here offer (moonlight-web: \"{quoted}\")"),
                        None => format!("moonlight-web: \"{quoted}\""),
                    };
                    evidence.push((decide_at, why));
                }
            }
            evidence.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (decided, why) = evidence.first()?.clone();
            if c.excused(v, decided) {
                return None;
            }
            let first = bind_failure.map(|f| f.first_at).unwrap_or(decided).min(decided);
            Some(Detection {
                fault: FailureId::F2,
                name: "webrtc-ports-exhausted".into(),
                tab: Some(v.tab),
                message: format!(
                    "{} ICE {} for {:.1} s after negotiation started, never connected: {why}",
                    who(v),
                    v.ice_state.as_deref().unwrap_or("new"),
                    secs(decided - negotiating)
                ),
                first_symptom: first,
                decided_at: decided,
            })
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

/// A viewer stalled in "Moonlight Stream": moonlight-web's `Error(Connect, TimedOut)`, or the
/// stall outlasting `launch_stall_secs`.
///
/// Differential against F15 (a deadlocked HTTPS handler stalls every launch the same way): a
/// stall that began after Wolf's HTTPS port was last seen answering, when the driver's probe
/// has since found the port silent twice (`https_deadlock`), is F15's and not named here. F12
/// is a port that answers, if late.
pub(super) fn f12_slow_launch(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let timed_out = c.first_log("Error(Connect, TimedOut)", 0.0);
    let deadlocked_since = https_deadlock(c).map(|d| d.last_answer.unwrap_or(d.since));
    c.viewers
        .iter()
        .filter_map(|v| {
            let started =
                v.stages.iter().find(|s| s.stage == "Moonlight Stream" && matches!(s.phase, crate::browser::viewers::StagePhase::Starting)).map(|s| s.at)?;
            if deadlocked_since.is_some_and(|d| started >= d) {
                return None;
            }
            let done =
                v.stages.iter().find(|s| s.stage == "Moonlight Stream" && !matches!(s.phase, crate::browser::viewers::StagePhase::Starting)).map(|s| s.at);
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
                fault: FailureId::F12,
                name: "slow-launch".into(),
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

/// F13's quick rule: the first `AlreadyStreaming` answer while a streaming viewer in *another*
/// tab holds the same `session_id`. A teardown cannot satisfy it: the other tab's viewer is
/// streaming (its connection complete and not closed) when the answer comes, and every retry
/// will meet the same live holder; a busy answer during an ordinary teardown (the holder
/// closing) needs `busy_answers` answers instead.
pub(super) fn f13_already_streaming_loop(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    held_session_id(c).or_else(|| repeated_busy_answers(c, t))
}

/// The mechanism itself: a viewer answered `AlreadyStreaming` while a viewer in another tab
/// that is streaming — and not being torn down — holds the same `session_id`. Every retry will
/// be refused alike, so the first answer decides. (Within one tab a Reconnect may race its own
/// old socket's close; that is left to the count.)
pub(super) fn held_session_id(c: &Ctx) -> Option<Detection> {
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
                fault: FailureId::F13,
                name: "already-streaming-loop".into(),
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

pub(super) fn repeated_busy_answers(c: &Ctx, t: &Thresholds) -> Option<Detection> {
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
                fault: FailureId::F13,
                name: "already-streaming-loop".into(),
                tab: Some(tab),
                message: format!(
                    "tab {tab} ({uid}) was answered AlreadyStreaming {} times in {:.1} s (a reused session_id)",
                    times.len(),
                    secs(times[times.len() - 1] - times[0])
                ),
                first_symptom: times[0],
                decided_at: times[n - 1],
            })
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}
