//! The design's pass criteria as named invariants over the correlation table.

use super::InvariantResult;
use crate::correlate::Row;
use crate::sut::monitor::ServerState;
use std::collections::BTreeMap;

/// The agent session a viewer belongs to, from Helix's `client_unique_id` format
/// `helix-agent-<ses_id>-<lobby_id>-<uuid>`.
pub fn agent_session_of(client_unique_id: &str) -> Option<&str> {
    let rest = client_unique_id.strip_prefix("helix-agent-")?;
    let end = rest.find('-').unwrap_or(rest.len());
    Some(&rest[..end])
}

fn who(r: &Row) -> String {
    format!("tab {} ({})", r.tab, r.client_unique_id.as_deref().unwrap_or("no client_unique_id yet"))
}

pub fn tabs_connected(rows: &[Row]) -> InvariantResult {
    const NAME: &str = "tabs-connected";
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.connection_state.as_deref() != Some("connected"))
        .map(|r| format!("{} is {}", who(r), r.connection_state.as_deref().unwrap_or("without a peer connection")))
        .collect();
    if rows.is_empty() {
        return InvariantResult::fail(NAME, "no viewer was observed in any tab");
    }
    if bad.is_empty() {
        InvariantResult::pass(NAME, format!("{} viewer(s) connected", rows.len()))
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

pub fn no_viewer_errors(rows: &[Row]) -> InvariantResult {
    const NAME: &str = "no-viewer-errors";
    let bad: Vec<String> = rows.iter().filter(|r| !r.errors.is_empty()).map(|r| format!("{} received {}", who(r), r.errors.join(", "))).collect();
    if bad.is_empty() {
        InvariantResult::pass(NAME, "no viewer received an error")
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

/// Every viewer shows advancing frames; with stamped pictures, of the lobby of its own agent
/// session (not the Wolf UI, not another lobby).
pub fn own_lobby_video(rows: &[Row], state: &ServerState, stamped: bool) -> InvariantResult {
    const NAME: &str = "own-lobby-video";
    let mut bad = Vec::new();
    for r in rows {
        let p = &r.pixels;
        if p.verdict() != "moving" {
            bad.push(format!("{} video is {} ({} samples, mean luma {:.0})", who(r), p.verdict(), p.samples, p.mean_luma));
            continue;
        }
        if !stamped {
            continue;
        }
        let ses = r.client_unique_id.as_deref().and_then(agent_session_of);
        let own = ses.and_then(|s| state.lobbies.iter().find(|l| l.helix_session() == Some(s)));
        match (own, &r.pixels_lobby) {
            (Some(l), Some(shown)) if &l.id == shown => {}
            (Some(l), shown) => bad.push(format!("{} shows {} instead of its lobby {}", who(r), shown.as_deref().unwrap_or("no stamp"), l.id)),
            (None, _) => bad.push(format!("{}: Wolf has no lobby for agent session {}", who(r), ses.unwrap_or("?"))),
        }
    }
    if rows.is_empty() {
        return InvariantResult::fail(NAME, "no viewer to check");
    }
    if bad.is_empty() {
        InvariantResult::pass(NAME, format!("{} viewer(s) show advancing frames of their own lobby", rows.len()))
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

/// Each lobby's `client_count` equals the viewers of its agent session that are connected.
pub fn client_count_matches(rows: &[Row], state: &ServerState) -> InvariantResult {
    const NAME: &str = "client-count-matches";
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.connection_state.as_deref() == Some("connected")) {
        if let Some(ses) = r.client_unique_id.as_deref().and_then(agent_session_of) {
            if let Some(l) = state.lobbies.iter().find(|l| l.helix_session() == Some(ses)) {
                *expected.entry(l.id.clone()).or_default() += 1;
            }
        }
    }
    let mut bad = Vec::new();
    for (lobby, want) in &expected {
        let got = state.client_count(lobby);
        if got != Some(*want) {
            bad.push(format!("lobby {lobby}: client_count {} but {want} tab(s) stream it", got.map(|c| c.to_string()).unwrap_or("absent".into())));
        }
    }
    if expected.is_empty() {
        return InvariantResult::fail(NAME, "no connected viewer maps to a lobby");
    }
    if bad.is_empty() {
        InvariantResult::pass(NAME, format!("{} lobby count(s) match", expected.len()))
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

pub fn unique_client_ids(rows: &[Row]) -> InvariantResult {
    const NAME: &str = "unique-client-ids";
    let mut seen: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for r in rows {
        match r.client_unique_id.as_deref() {
            Some(u) => seen.entry(u).or_default().push(r.tab),
            None => return InvariantResult::fail(NAME, format!("{} sent no client_unique_id", who(r))),
        }
    }
    let dup: Vec<String> = seen.iter().filter(|(_, t)| t.len() > 1).map(|(u, t)| format!("{u} used by tabs {t:?}")).collect();
    if dup.is_empty() {
        InvariantResult::pass(NAME, format!("{} distinct client_unique_id(s)", seen.len()))
    } else {
        InvariantResult::fail(NAME, dup.join("; "))
    }
}

pub fn create_mode(rows: &[Row]) -> InvariantResult {
    const NAME: &str = "create-mode";
    let bad: Vec<String> = rows.iter().filter(|r| r.mode.as_deref() != Some("create")).map(|r| format!("{} used mode {}", who(r), r.mode.as_deref().unwrap_or("(none)"))).collect();
    if bad.is_empty() {
        InvariantResult::pass(NAME, "every viewer used create mode")
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

/// After cleanup nothing the run created remains: no Wolf session of its viewers, no lobby of
/// its agent sessions, no moonlight-web session of its viewers.
pub fn no_leftovers(state: &ServerState, agent_sessions: &[String], client_unique_ids: &[String], mlw_sessions: &[String]) -> InvariantResult {
    const NAME: &str = "no-leftovers";
    let mut bad = Vec::new();
    for s in &state.wolf_sessions {
        if client_unique_ids.contains(&s.client_unique_id) {
            bad.push(format!("Wolf session {} ({})", s.client_id, s.client_unique_id));
        }
    }
    for l in &state.lobbies {
        if l.helix_session().is_some_and(|s| agent_sessions.iter().any(|a| a == s)) {
            bad.push(format!("Wolf lobby {} of {}", l.id, l.helix_session().unwrap_or("?")));
        }
    }
    for s in &state.mlw_sessions {
        if mlw_sessions.contains(&s.session_id) {
            bad.push(format!("moonlight-web session {} (has_websocket {}, streamer_alive {})", s.session_id, s.has_websocket, s.streamer_alive));
        }
    }
    if !state.errors.is_empty() {
        return InvariantResult::fail(NAME, format!("could not read server state: {}", state.errors.join("; ")));
    }
    if bad.is_empty() {
        InvariantResult::pass(NAME, "no session, lobby or streamer of this run remains")
    } else {
        InvariantResult::fail(NAME, format!("left behind: {}", bad.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::frames::analysis::PixelSummary;
    use crate::frames::stamp::Stamp;
    use crate::sut::wolf::{LobbyMemory, WolfLobby, WolfMemory};
    use serde_json::json;

    fn lobby(id: &str, ses: &str, sessions: &[&str]) -> WolfLobby {
        WolfLobby {
            id: id.into(),
            name: "Agent".into(),
            multi_user: true,
            pin_required: true,
            stop_when_everyone_leaves: false,
            runner: json!({"env": [format!("HELIX_SESSION_ID={ses}")]}),
            connected_sessions: sessions.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn row(tab: usize, ses: &str, state: &str, shows: Option<&str>) -> Row {
        Row {
            tab,
            client_unique_id: Some(format!("helix-agent-{ses}-lobby-uuid{tab}")),
            mode: Some("create".into()),
            connection_state: Some(state.into()),
            errors: vec![],
            mlw_session: None,
            mlw_has_websocket: None,
            mlw_streamer_alive: None,
            wolf_session: None,
            lobby: None,
            lobby_client_count: None,
            pixels_lobby: shows.map(str::to_string),
            pixels: PixelSummary { samples: 10, with_video: 10, distinct_hashes: 10, advancing: true, mean_luma: 120.0, stamp: Some(Stamp { tag: 5, counter: 1 }), ..Default::default() },
        }
    }

    fn state(counts: &[(&str, u64)]) -> ServerState {
        ServerState {
            lobbies: vec![lobby("L1", "ses_a", &["1"]), lobby("L2", "ses_b", &["2"])],
            memory: Some(WolfMemory { lobbies: counts.iter().map(|(l, c)| LobbyMemory { lobby_id: l.to_string(), lobby_name: String::new(), client_count: *c }).collect(), clients: vec![] }),
            ..Default::default()
        }
    }

    #[test]
    fn healthy_rows_pass_every_check() {
        let rows = vec![row(0, "ses_a", "connected", Some("L1")), row(1, "ses_b", "connected", Some("L2"))];
        let st = state(&[("L1", 1), ("L2", 1)]);
        for r in [tabs_connected(&rows), own_lobby_video(&rows, &st, true), client_count_matches(&rows, &st), unique_client_ids(&rows), create_mode(&rows), no_viewer_errors(&rows)] {
            assert!(r.passed, "{}: {}", r.name, r.message);
        }
    }

    #[test]
    fn each_check_fails_with_a_message_naming_the_tab_or_lobby() {
        let mut rows = vec![row(0, "ses_a", "connected", Some("L1")), row(1, "ses_b", "failed", Some("Wolf UI"))];
        let r = tabs_connected(&rows);
        assert!(!r.passed && r.message.contains("tab 1") && r.message.contains("failed"), "{}", r.message);
        let r = own_lobby_video(&rows, &state(&[]), true);
        assert!(!r.passed && r.message.contains("shows Wolf UI instead of its lobby L2"), "{}", r.message);
        let r = client_count_matches(&rows, &state(&[("L1", 0)]));
        assert!(!r.passed && r.message.contains("lobby L1: client_count 0 but 1 tab(s)"), "{}", r.message);
        rows[1].client_unique_id = rows[0].client_unique_id.clone();
        assert!(!unique_client_ids(&rows).passed);
        rows[1].mode = Some("join".into());
        assert!(create_mode(&rows).message.contains("used mode join"));
        rows[0].errors.push("PeerDisconnect".into());
        assert!(no_viewer_errors(&rows).message.contains("PeerDisconnect"));
        rows[0].pixels.mean_luma = 16.0;
        rows[0].pixels.black = true;
        assert!(own_lobby_video(&rows, &state(&[]), false).message.contains("video is black"));
    }

    #[test]
    fn leftovers_are_named() {
        let st = state(&[]);
        let r = no_leftovers(&st, &["ses_b".to_string()], &[], &[]);
        assert!(!r.passed && r.message.contains("Wolf lobby L2 of ses_b"), "{}", r.message);
        assert!(no_leftovers(&st, &["ses_zzz".to_string()], &[], &[]).passed);
    }

    #[test]
    fn agent_session_is_read_from_helix_client_unique_id() {
        assert_eq!(agent_session_of("helix-agent-ses_01k9g7cx800pd7p3m5sw9r2301-06a79a49-9cf3c572"), Some("ses_01k9g7cx800pd7p3m5sw9r2301"));
        assert_eq!(agent_session_of("stress-test-1"), None);
    }
}
