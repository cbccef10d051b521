//! Pass criteria of restarts (the design's Scenario 3): after a service restart every tab says
//! clearly that something went wrong, and afterwards Helix believes only in lobbies Wolf has.

use super::InvariantResult;
use crate::browser::ViewerFacts;
use crate::sut::monitor::ServerState;
use crate::timeline::{EpochMs, Event, Observation, ProbeEvent, TabId};
use std::time::Duration;

/// The first error the tab showed or was sent at or after `since`: an element with the ARIA
/// role `alert`, or an error message on one of its viewer's sockets.
pub fn error_shown(obs: &[Observation], tab: TabId, since: EpochMs) -> Option<(EpochMs, String)> {
    let alert = obs.iter().find_map(|o| match &o.event {
        Event::Tab { tab: t, probe: ProbeEvent::UiText { text, role } } if *t == tab && o.at >= since && role == "alert" => Some((o.at, text.clone())),
        _ => None,
    });
    let sent = crate::browser::viewers::fold_viewers(obs)
        .into_iter()
        .filter(|v| v.tab == tab)
        .flat_map(|v| v.errors)
        .filter(|e| e.at >= since)
        .min_by(|a, b| a.at.total_cmp(&b.at))
        .map(|e| (e.at, format!("server sent {}", e.message)));
    match (alert, sent) {
        (Some(a), Some(s)) => Some(if a.0 <= s.0 { a } else { s }),
        (a, s) => a.or(s),
    }
}

/// The first few log lines each service wrote at or after `since`, for the record of what the
/// servers said about the restart.
pub fn services_said(obs: &[Observation], since: EpochMs, services: &[&str]) -> Vec<(String, Vec<String>)> {
    const LINES: usize = 3;
    services
        .iter()
        .map(|svc| {
            let lines = obs
                .iter()
                .filter(|o| o.at >= since)
                .filter_map(|o| match &o.event {
                    Event::Log { service, level, message } if service == svc && level != "DEBUG" && level != "TRACE" => {
                        Some(format!("{level} {}", message.chars().take(140).collect::<String>()))
                    }
                    _ => None,
                })
                .take(LINES)
                .collect();
            (svc.to_string(), lines)
        })
        .collect()
}

/// `clear-error-in-every-tab`: every open tab told its user within the deadline.
pub fn clear_errors(
    said: &[(TabId, Option<(EpochMs, String)>)],
    since: EpochMs,
    viewers: &[ViewerFacts],
    servers: &[(String, Vec<String>)],
    deadline: Duration,
) -> InvariantResult {
    const NAME: &str = "clear-error-in-every-tab";
    let mut parts = Vec::new();
    let mut silent = Vec::new();
    for (tab, s) in said {
        match s {
            Some((at, text)) => parts.push(format!("tab {tab} after {:.1} s: \u{201c}{text}\u{201d}", (at - since) / 1000.0)),
            None => {
                let state = viewers.iter().rfind(|v| v.tab == *tab).and_then(|v| v.connection_state.clone()).unwrap_or_else(|| "no viewer".into());
                silent.push(format!("tab {tab} (peer connection {state})"));
            }
        }
    }
    let heard: Vec<String> =
        servers.iter().map(|(svc, lines)| format!("{svc}: {}", if lines.is_empty() { "nothing".into() } else { lines.join(" / ") })).collect();
    if silent.is_empty() {
        InvariantResult::pass(NAME, format!("{}; {}", parts.join("; "), heard.join("; ")))
    } else {
        InvariantResult::fail(
            NAME,
            format!(
                "silent for {:.0} s: {}; {}{}",
                deadline.as_secs_f64(),
                silent.join(", "),
                if parts.is_empty() { String::new() } else { format!("{}; ", parts.join("; ")) },
                heard.join("; ")
            ),
        )
    }
}

/// `no-ghost-lobbies`: each watched agent session's lobby, as Helix believes it, exists in Wolf.
pub fn no_ghost_lobbies(state: &ServerState, sessions: &[String]) -> InvariantResult {
    const NAME: &str = "no-ghost-lobbies";
    let ghosts: Vec<String> = state
        .helix_lobbies
        .iter()
        .filter(|b| sessions.contains(&b.session))
        .filter_map(|b| {
            let lobby = b.lobby_id.as_deref()?;
            (!state.lobbies.iter().any(|l| l.id == lobby)).then(|| format!("Helix says {} owns lobby {lobby}, which Wolf does not have", b.session))
        })
        .collect();
    if ghosts.is_empty() {
        InvariantResult::pass(NAME, format!("every lobby Helix believes in exists in Wolf ({} session(s))", state.helix_lobbies.len()))
    } else {
        InvariantResult::fail(NAME, ghosts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sut::monitor::HelixLobby;
    use crate::sut::wolf::WolfLobby;

    fn ui(at: EpochMs, tab: TabId, text: &str, role: &str) -> Observation {
        Observation { at, event: Event::Tab { tab, probe: ProbeEvent::UiText { text: text.into(), role: role.into() } } }
    }

    #[test]
    fn only_an_alert_after_the_restart_counts_as_a_clear_error() {
        let obs = vec![ui(5.0, 0, "Old error", "alert"), ui(20.0, 0, "Streaming active", "status"), ui(30.0, 1, "Stream terminated (code: 0)", "alert")];
        assert_eq!(error_shown(&obs, 0, 10.0), None, "a status line is not an error, an earlier alert is not this restart's");
        assert_eq!(error_shown(&obs, 1, 10.0), Some((30.0, "Stream terminated (code: 0)".into())));
        let said = vec![(0, None), (1, error_shown(&obs, 1, 10.0))];
        let r = clear_errors(&said, 10.0, &[], &[("wolf".into(), vec![])], Duration::from_secs(45));
        assert!(!r.passed && r.message.contains("tab 0 (peer connection no viewer)") && r.message.contains("tab 1 after 0.0 s"), "{}", r.message);
    }

    #[test]
    fn a_lobby_helix_believes_in_but_wolf_lost_is_a_ghost() {
        let lobby: WolfLobby = serde_json::from_value(serde_json::json!({"id": "L2", "name": "Agent x", "started_by_profile_id": "p", "multi_user": true, "stop_when_everyone_leaves": false, "connected_sessions": []})).unwrap();
        let mut st = ServerState { lobbies: vec![lobby], ..Default::default() };
        st.helix_lobbies =
            vec![HelixLobby { session: "ses_a".into(), lobby_id: Some("L2".into()) }, HelixLobby { session: "ses_b".into(), lobby_id: Some("L1".into()) }];
        let r = no_ghost_lobbies(&st, &["ses_a".into(), "ses_b".into()]);
        assert!(!r.passed && r.message.contains("ses_b owns lobby L1") && !r.message.contains("ses_a"), "{}", r.message);
        assert!(no_ghost_lobbies(&st, &["ses_a".into()]).passed);
    }
}
