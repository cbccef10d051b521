//! A reconnect racing its own teardown (F14). Pressing Reconnect keeps the viewer's
//! `client_unique_id` and moonlight-web `session_id`. A new streamer started while the client's
//! previous streamer is still in its stop cascade finds the client's Wolf session still there and
//! resumes it; the previous streamer's `/cancel` then ends that very session, and the reconnected
//! tab loses its stream.
//!
//! The evidence is in moonlight-web's log, where every streamer line carries the streamer's pid
//! (`[Streamer <session>] … streamer{pid=P}: …`; both streamers log under the one `session_id`)
//! and every launch names the client (`[Stream] New create session S for client C (streamer pid
//! P)`): the new streamer's `resuming app`, then `stop: cancelling the Wolf session` of an older
//! streamer of the same client (of the same Wolf session, where both lines name it), then
//! `PeerDisconnect` in the reconnected tab. A previous streamer that cancelled *before* its
//! successor resumed (or launched) is the healthy order and says nothing.

use super::*;

const RESUMING: &str = "resuming app";
const CANCELLING: &str = "stop: cancelling the Wolf session";

/// `[Streamer <session>] … streamer{pid=P}: …`: the session and the streamer's pid.
fn streamer_line(m: &str) -> Option<(&str, u32)> {
    let rest = &m[m.find("[Streamer ")? + "[Streamer ".len()..];
    let (session, rest) = rest.split_once(']')?;
    let pid = rest.split("streamer{pid=").nth(1)?.split('}').next()?.parse().ok()?;
    Some((session, pid))
}

/// `[Stream] New <mode> session <S> for client <C> (streamer pid <P>)`: (S, C, P).
fn launch_line(m: &str) -> Option<(&str, &str, u32)> {
    let rest = &m[m.find("[Stream] New ")? + "[Stream] New ".len()..];
    let (_, rest) = rest.split_once(" session ")?;
    let (session, rest) = rest.split_once(" for client ")?;
    let (client, rest) = rest.split_once(" (streamer pid ")?;
    let pid = rest.split(')').next()?.trim().parse().ok()?;
    Some((session, client, pid))
}

/// `… Wolf session <id> streams on port <port>`: the id.
fn wolf_session_line(m: &str) -> Option<&str> {
    let rest = &m[m.find("Wolf session ")? + "Wolf session ".len()..];
    rest.split_once(" streams on port").map(|(id, _)| id.trim())
}

pub(super) fn f14_reconnect_teardown_race(c: &Ctx) -> Option<Detection> {
    // (at, session, client, pid) of every streamer moonlight-web started; a pid may come back
    // in a long run, so a line belongs to the latest launch of its pid before it.
    let launches: Vec<(EpochMs, &str, &str, u32)> = c.launches.iter().filter_map(|(at, _, m)| launch_line(m).map(|(s, cl, p)| (*at, s, cl, p))).collect();
    let launch_of = |pid: u32, at: EpochMs| launches.iter().rev().find(|l| l.3 == pid && l.0 <= at);
    for (i, (resumed_at, _, m)) in c.logs.iter().enumerate() {
        if !m.contains(RESUMING) {
            continue;
        }
        let Some((session, new_pid)) = streamer_line(m) else {
            continue;
        };
        let new_launch = launch_of(new_pid, *resumed_at);
        let client = new_launch.map(|l| l.2);
        let later = &c.logs[i + 1..];
        let resumed = later
            .iter()
            .find(|(_, _, m)| streamer_line(m).is_some_and(|(_, p)| p == new_pid) && wolf_session_line(m).is_some())
            .and_then(|(_, _, m)| wolf_session_line(m));
        // The first cancel after the resume by an older streamer of the same client.
        let cancel = later.iter().find_map(|(at, _, m)| {
            let (s, old_pid) = streamer_line(m).filter(|_| m.contains(CANCELLING))?;
            let old_launch = launch_of(old_pid, *at);
            let same_client = match (client, old_launch) {
                (Some(cl), Some(l)) => l.2 == cl,
                _ => s == session,
            };
            let older = match (old_launch, new_launch) {
                (Some(o), Some(n)) => o.0 < n.0,
                _ => true,
            };
            let cancelled = m.split(CANCELLING).nth(1).map(str::trim).filter(|id| !id.is_empty());
            let same_wolf = match (cancelled, resumed) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            (old_pid != new_pid && same_client && older && same_wolf).then_some((*at, old_pid, cancelled))
        });
        let Some((cancelled_at, old_pid, wolf)) = cancel else {
            continue;
        };
        // The reconnected tab: the latest viewer of that session (and client) that was already
        // waiting when its streamer resumed, and that lost its stream after.
        let Some(v) = c
            .viewers
            .iter()
            .filter(|v| {
                v.session_id.as_deref() == Some(session) && client.is_none_or(|cl| v.client_unique_id.as_deref() == Some(cl)) && v.started_at <= *resumed_at
            })
            .max_by(|a, b| a.started_at.total_cmp(&b.started_at))
        else {
            continue;
        };
        let Some(lost) = Ctx::error_at(v, "PeerDisconnect").filter(|p| p > resumed_at) else {
            continue;
        };
        if c.excused(v, lost) {
            continue;
        }
        let wolf = wolf.or(resumed).map(|w| format!(" {w}")).unwrap_or_default();
        return Some(Detection {
            fault: FailureId::F14,
            name: "reconnect-teardown-race".into(),
            tab: Some(v.tab),
            message: format!(
                "{} reconnected with session_id {session}: its new streamer (pid {new_pid}) resumed Wolf session{wolf}, and the client's previous streamer (pid {old_pid}) logged \"{CANCELLING}{wolf}\" {:.2} s later; the tab got PeerDisconnect {:.2} s after that cancel",
                who(v),
                secs(cancelled_at - resumed_at),
                secs(lost - cancelled_at)
            ),
            first_symptom: cancelled_at.min(lost),
            decided_at: cancelled_at.max(lost),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Direction, ProbeEvent};
    use serde_json::json;

    #[test]
    fn the_model_keeps_the_lines_this_detector_reads() {
        for needle in [RESUMING, CANCELLING] {
            assert!(super::super::READ_LINES.contains(&needle), "{needle}");
        }
    }

    const S: &str = "agent-ses_a-u";
    const C: &str = "helix-agent-ses_a-L-u";
    const W: &str = "7274360167131249066";

    fn log(at: EpochMs, service: &str, message: String) -> Observation {
        Observation { at, event: Event::Log { service: service.into(), level: "INFO".into(), message } }
    }
    fn mlw(at: EpochMs, message: String) -> Observation {
        log(at, "moonlight-web", format!("[2026-12-01T21:43:09.357Z INFO  moonlight_web] {message}"))
    }
    /// A line of streamer `pid`, as moonlight-web relays it.
    fn streamer(at: EpochMs, pid: u32, text: &str) -> Observation {
        mlw(at, format!("[Streamer {S}] 2026-12-01T21:43:09.357268Z  INFO streamer{{pid={pid}}}: helix_e2e::refstack::streamer::session: {text}"))
    }
    fn launched(at: EpochMs, pid: u32) -> Observation {
        mlw(at, format!("[Stream] New create session {S} for client {C} (streamer pid {pid})"))
    }
    fn tab(at: EpochMs, probe: ProbeEvent) -> Observation {
        Observation { at, event: Event::Tab { tab: 1, probe } }
    }
    fn received(at: EpochMs, ws: u32, msg: serde_json::Value) -> Observation {
        tab(at, ProbeEvent::WsMessage { ws, dir: Direction::Received, msg })
    }
    fn init(at: EpochMs, ws: u32) -> Vec<Observation> {
        vec![
            tab(at - 10.0, ProbeEvent::WsOpen { ws, url: "ws://x/moonlight/host/stream".into() }),
            tab(
                at,
                ProbeEvent::WsMessage {
                    ws,
                    dir: Direction::Sent,
                    msg: json!({"AuthenticateAndInit": {"session_id": S, "mode": "create", "client_unique_id": C}}),
                },
            ),
        ]
    }
    fn complete(at: EpochMs, ws: u32) -> Observation {
        received(at, ws, json!({"ConnectionComplete": {"capabilities": {"touch": false}, "width": 320, "height": 180, "client_id": W}}))
    }

    /// A tab streaming through streamer 100 since t=2000, Reconnect pressed at 5000: the old
    /// socket closes, the new one's streamer 200 starts at 5060. `healthy` puts the old
    /// streamer's cancel (and the new one's fresh launch) in the healthy order.
    fn reconnect(healthy: bool) -> Vec<Observation> {
        let mut obs = vec![tab(0.0, ProbeEvent::PageLoad { url: "http://x/session".into() })];
        obs.extend(init(20.0, 0));
        obs.push(launched(30.0, 100));
        obs.push(streamer(1500.0, 100, "launching app 134906179 on Wolf"));
        obs.push(streamer(1501.0, 100, &format!("Wolf session {W} streams on port 41007")));
        obs.push(complete(2000.0, 0));
        obs.push(log(3000.0, "wolf", format!("[LOBBY] Session {W} joining lobby L")));
        obs.push(Observation { at: 5000.0, event: Event::Op { name: "reconnect tab 1".into(), phase: OpPhase::Start } });
        obs.push(tab(5001.0, ProbeEvent::WsClose { ws: 0, code: 1005, reason: String::new() }));
        obs.push(mlw(5003.0, format!("[Stream] WebSocket of session {S} closed")));
        obs.push(streamer(5004.0, 100, "stop cascade: IpcStop"));
        obs.extend(init(5020.0, 1));
        if healthy {
            obs.push(streamer(5500.0, 100, &format!("{CANCELLING} {W}")));
            obs.push(log(5501.0, "wolf", format!("[LOBBY] Moonlight stream {W} over, leaving lobby L")));
            obs.push(streamer(5503.0, 100, "stop: IPC Stop"));
            obs.push(launched(5510.0, 200));
            obs.push(streamer(5600.0, 200, "launching app 134906179 on Wolf"));
            obs.push(streamer(5601.0, 200, &format!("Wolf session {W} streams on port 41007")));
            obs.push(complete(5650.0, 1));
            obs.push(log(5800.0, "wolf", format!("[LOBBY] Session {W} joining lobby L")));
            obs.push(mlw(9000.0, "later".into()));
        } else {
            obs.push(launched(5060.0, 200));
            obs.push(streamer(5150.0, 200, &format!("{RESUMING} 134906179 on Wolf")));
            obs.push(streamer(5151.0, 200, &format!("Wolf session {W} streams on port 41007")));
            obs.push(complete(5200.0, 1));
            obs.push(streamer(5500.0, 100, &format!("{CANCELLING} {W}")));
            obs.push(log(5501.0, "wolf", format!("[LOBBY] Moonlight stream {W} over, leaving lobby L")));
            obs.push(streamer(5502.0, 100, "stop: IPC Stop"));
            obs.push(streamer(5520.0, 200, "stop cascade: WolfStreamClosed(\"Wolf closed the stream\")"));
            obs.push(received(5521.0, 1, json!("PeerDisconnect")));
            obs.push(streamer(5530.0, 200, &format!("{CANCELLING} {W}")));
            obs.push(log(5531.0, "wolf", "[HTTPS] Received resume event from an unregistered session, ip: 127.0.0.1".into()));
        }
        obs.sort_by(|a, b| a.at.total_cmp(&b.at));
        obs
    }

    #[test]
    fn names_the_old_streamers_cancel_of_the_session_its_successor_resumed_and_nothing_else() {
        let obs = reconnect(false);
        let d = detect(&obs, &Thresholds::default());
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F14 reconnect-teardown-race"], "{d:?}");
        assert_eq!((d[0].tab, d[0].first_symptom, d[0].decided_at), (Some(1), 5500.0, 5521.0));
        let m = &d[0].message;
        assert!(m.contains("new streamer (pid 200) resumed Wolf session 7274360167131249066"), "{m}");
        assert!(m.contains("previous streamer (pid 100) logged \"stop: cancelling the Wolf session 7274360167131249066\" 0.35 s later"), "{m}");
    }

    #[test]
    fn stays_silent_when_the_old_streamer_cancelled_before_its_successor_started() {
        // The healthy order: the previous streamer's cancel, then the new streamer's launch.
        assert!(detect(&reconnect(true), &Thresholds::default()).is_empty());
        // Even had the successor resumed something: a cancel before the resume took nothing.
        let mut obs: Vec<Observation> = reconnect(false)
            .into_iter()
            .filter(|o| !matches!(&o.event, Event::Log { message, .. } if message.contains("pid=100") && message.contains(CANCELLING)))
            .collect();
        obs.push(streamer(5100.0, 100, &format!("{CANCELLING} {W}")));
        obs.sort_by(|a, b| a.at.total_cmp(&b.at));
        assert!(f14_reconnect_teardown_race(&model_of(&obs).ctx()).is_none());
    }

    #[test]
    fn needs_the_cancel_of_another_streamer_and_a_tab_that_lost_its_stream() {
        // Only the resumer's own cancel (after its stream ended): not a race.
        let own: Vec<Observation> = reconnect(false)
            .into_iter()
            .filter(|o| !matches!(&o.event, Event::Log { message, .. } if message.contains("pid=100") && message.contains(CANCELLING)))
            .collect();
        assert!(f14_reconnect_teardown_race(&model_of(&own).ctx()).is_none());
        // The tab kept its stream.
        let kept: Vec<Observation> = reconnect(false)
            .into_iter()
            .filter(|o| !matches!(&o.event, Event::Tab { probe: ProbeEvent::WsMessage { msg, .. }, .. } if msg == &json!("PeerDisconnect")))
            .collect();
        assert!(f14_reconnect_teardown_race(&model_of(&kept).ctx()).is_none());
        // The driver was closing the tab when it lost the stream.
        let mut closing = reconnect(false);
        closing.push(Observation { at: 5510.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
        closing.sort_by(|a, b| a.at.total_cmp(&b.at));
        assert!(f14_reconnect_teardown_race(&model_of(&closing).ctx()).is_none());
    }

    #[test]
    fn reads_the_lines_it_relies_on() {
        let line = "[2026-12-01T21:46:28.820Z INFO  moonlight_web] [Streamer agent-ses_j-1] 2026-12-01T21:46:28.820637Z  INFO streamer{pid=29470}: helix_e2e::refstack::streamer::session: stop: cancelling the Wolf session 10787694786424091950";
        assert_eq!(streamer_line(line), Some(("agent-ses_j-1", 29470)));
        let launch =
            "[2026-12-01T21:46:28.320Z INFO  moonlight_web] [Stream] New create session agent-ses_j-1 for client helix-agent-ses_j-L-1 (streamer pid 29478)";
        assert_eq!(launch_line(launch), Some(("agent-ses_j-1", "helix-agent-ses_j-L-1", 29478)));
        assert_eq!(wolf_session_line("INFO streamer{pid=1}: x: Wolf session 42 streams on port 41007"), Some("42"));
        assert_eq!(streamer_line("[Streamer s] INFO helix_e2e: no pid here"), None);
    }
}
