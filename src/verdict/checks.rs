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

    #[test]
    fn agent_session_is_read_from_helix_client_unique_id() {
        assert_eq!(agent_session_of("helix-agent-ses_01k9g7cx800pd7p3m5sw9r2301-06a79a49-9cf3c572"), Some("ses_01k9g7cx800pd7p3m5sw9r2301"));
        assert_eq!(agent_session_of("stress-test-1"), None);
    }
}
