//! The design's pass criteria as named invariants over the correlation table.
//!
//! Why one file of over 400 lines: it is under 400 lines without its tests.

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
    format!("{} ({})", r.kind.name(r.tab), r.client_unique_id.as_deref().unwrap_or("no client_unique_id yet"))
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
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.mode.as_deref() != Some("create"))
        .map(|r| format!("{} used mode {}", who(r), r.mode.as_deref().unwrap_or("(none)")))
        .collect();
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

/// A row streams its own lobby: connected, moving pixels and, with stamped pictures, the stamp
/// of the lobby of its own agent session.
pub fn streams_own_lobby(r: &Row, state: &ServerState, stamped: bool) -> bool {
    let own = r.client_unique_id.as_deref().and_then(agent_session_of).and_then(|s| state.lobbies.iter().find(|l| l.helix_session() == Some(s)));
    r.connection_state.as_deref() == Some("connected")
        && r.pixels.verdict() == "moving"
        && (!stamped || matches!((own, &r.pixels_lobby), (Some(l), Some(p)) if &l.id == p))
}

/// Every open tab has a viewer (a tab whose page never started one is a failure of its own).
pub fn viewers_present(open_tabs: &[usize], rows: &[Row]) -> InvariantResult {
    const NAME: &str = "viewers-present";
    let missing: Vec<String> = open_tabs.iter().filter(|t| !rows.iter().any(|r| r.tab == **t)).map(|t| format!("tab {t}")).collect();
    if missing.is_empty() {
        InvariantResult::pass(NAME, format!("{} open tab(s) each run a viewer", open_tabs.len()))
    } else {
        InvariantResult::fail(NAME, format!("{} started no viewer", missing.join(", ")))
    }
}

/// `client_count` of the lobby of every given agent session equals the viewers connected to it,
/// zero included: a lobby whose tabs all closed must count nobody. (The one implementation of
/// `client-count-matches`: every scenario asks it of the sessions it means.)
pub fn client_count_matches(rows: &[Row], state: &ServerState, sessions: &[String]) -> InvariantResult {
    const NAME: &str = "client-count-matches";
    let mut bad = Vec::new();
    let mut checked = 0;
    for ses in sessions {
        let Some(lobby) = state.lobbies.iter().find(|l| l.helix_session() == Some(ses.as_str())) else { continue };
        checked += 1;
        let want = rows
            .iter()
            .filter(|r| r.connection_state.as_deref() == Some("connected") && r.client_unique_id.as_deref().and_then(agent_session_of) == Some(ses.as_str()))
            .count() as u64;
        let got = state.client_count(&lobby.id);
        if got.unwrap_or(0) != want {
            bad.push(format!(
                "lobby {} of {ses}: client_count {} but {want} tab(s) stream it",
                lobby.id,
                got.map(|c| c.to_string()).unwrap_or("absent".into())
            ));
        }
    }
    if bad.is_empty() {
        InvariantResult::pass(NAME, format!("{checked} lobby count(s) match the tabs streaming them"))
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

/// Lobbies mode: each live agent session has exactly one Wolf lobby.
pub fn one_lobby_per_session(state: &ServerState, sessions: &[String]) -> InvariantResult {
    const NAME: &str = "one-lobby-per-session";
    let bad: Vec<String> = sessions
        .iter()
        .filter_map(|s| {
            let n = state.lobbies.iter().filter(|l| l.helix_session() == Some(s.as_str())).count();
            (n != 1).then(|| format!("agent session {s} has {n} lobbies"))
        })
        .collect();
    if bad.is_empty() {
        InvariantResult::pass(NAME, format!("{} session(s), one lobby each", sessions.len()))
    } else {
        InvariantResult::fail(NAME, bad.join("; "))
    }
}

/// After the chaos, every live agent session has a tab streaming its lobby again.
pub fn all_sessions_reconnect(rows: &[Row], state: &ServerState, sessions: &[String], stamped: bool) -> InvariantResult {
    const NAME: &str = "all-sessions-reconnect";
    let bad: Vec<&str> = sessions
        .iter()
        .filter(|s| !rows.iter().any(|r| r.client_unique_id.as_deref().and_then(agent_session_of) == Some(s.as_str()) && streams_own_lobby(r, state, stamped)))
        .map(String::as_str)
        .collect();
    if bad.is_empty() {
        InvariantResult::pass(NAME, format!("all {} session(s) stream again", sessions.len()))
    } else {
        InvariantResult::fail(NAME, format!("no tab streams agent session(s) {} after reconnecting", bad.join(", ")))
    }
}

/// Several tabs stream one session's single lobby at once, `client_count` counting each.
pub fn several_tabs_one_lobby(rows: &[Row], state: &ServerState, session: &str, tabs: usize, stamped: bool) -> InvariantResult {
    const NAME: &str = "several-tabs-one-lobby";
    let lobbies: Vec<_> = state.lobbies.iter().filter(|l| l.helix_session() == Some(session)).collect();
    let [lobby] = lobbies[..] else {
        return InvariantResult::fail(NAME, format!("agent session {session} has {} lobbies, not one", lobbies.len()));
    };
    let mine: Vec<&Row> = rows.iter().filter(|r| r.client_unique_id.as_deref().and_then(agent_session_of) == Some(session)).collect();
    let streaming = mine.iter().filter(|r| streams_own_lobby(r, state, stamped)).count();
    let count = state.client_count(&lobby.id).unwrap_or(0);
    if streaming == tabs && count == tabs as u64 {
        InvariantResult::pass(NAME, format!("{tabs} tabs stream lobby {} at once (client_count {count})", lobby.id))
    } else {
        let not: Vec<String> = mine.iter().filter(|r| !streams_own_lobby(r, state, stamped)).map(|r| who(r)).collect();
        InvariantResult::fail(
            NAME,
            format!(
                "{streaming} of {tabs} tabs stream lobby {} (client_count {count}); not streaming: {}",
                lobby.id,
                if not.is_empty() { "-".into() } else { not.join(", ") }
            ),
        )
    }
}

/// The session's lobby is still the one it was before tabs closed, and the remaining tabs
/// still stream it.
pub fn lobby_survives_tab_close(rows: &[Row], state: &ServerState, session: &str, lobby_before: Option<&str>, stamped: bool) -> InvariantResult {
    const NAME: &str = "lobby-survives-tab-close";
    let now = state.lobbies.iter().find(|l| l.helix_session() == Some(session)).map(|l| l.id.as_str());
    let mine: Vec<&Row> = rows.iter().filter(|r| r.client_unique_id.as_deref().and_then(agent_session_of) == Some(session)).collect();
    match (lobby_before, now) {
        (_, None) => InvariantResult::fail(NAME, format!("the lobby of {session} is gone after tabs closed")),
        (Some(b), Some(n)) if b != n => InvariantResult::fail(NAME, format!("the lobby of {session} changed from {b} to {n}")),
        (_, Some(n)) if mine.is_empty() || !mine.iter().all(|r| streams_own_lobby(r, state, stamped)) => InvariantResult::fail(
            NAME,
            format!("lobby {n} remains but its last tab(s) do not stream it: {}", mine.iter().map(|r| who(r)).collect::<Vec<_>>().join(", ")),
        ),
        (_, Some(n)) => InvariantResult::pass(NAME, format!("lobby {n} remains and {} tab(s) still stream it", mine.len())),
    }
}

/// Watches the servers across a scenario for states that must not last: a moonlight-web
/// session without its WebSocket whose streamer runs (stuck, F5: [`MlwSession::stuck`]), a
/// listed session whose streamer is dead (zombie, F6: [`MlwSession::zombie`]), a Wolf session
/// moonlight-web no longer knows (stuck in Wolf). Only sessions of the run's agent sessions count.
#[derive(Debug, Default)]
pub struct HealthWatch {
    /// (kind, key) → first time seen in that state.
    since: BTreeMap<(&'static str, String), crate::timeline::EpochMs>,
    /// (kind, key) → description, for the ones that lasted too long.
    lasted: BTreeMap<(&'static str, String), String>,
}

const STUCK: &str = "stuck";
const ZOMBIE: &str = "zombie";
const WOLF_STUCK: &str = "wolf-stuck";

impl HealthWatch {
    /// Record one snapshot; anything in a bad state for longer than `limit_ms` is kept.
    pub fn observe(&mut self, state: &ServerState, sessions: &[String], limit_ms: f64) {
        let ours = |cuid: Option<&str>| cuid.and_then(agent_session_of).is_some_and(|s| sessions.iter().any(|x| x == s));
        let mut bad: Vec<((&'static str, String), String)> = Vec::new();
        for s in state.mlw_sessions.iter().filter(|s| ours(s.client_unique_id.as_deref())) {
            if s.stuck() {
                bad.push(((STUCK, s.session_id.clone()), format!("moonlight-web session {} has_websocket:false with its streamer alive", s.session_id)));
            }
            if s.zombie() {
                bad.push(((ZOMBIE, s.session_id.clone()), format!("moonlight-web session {} listed with a dead streamer", s.session_id)));
            }
        }
        for w in state.wolf_sessions.iter().filter(|w| ours(Some(&w.client_unique_id))) {
            if !state.mlw_sessions.iter().any(|m| m.client_unique_id.as_deref() == Some(w.client_unique_id.as_str())) {
                bad.push(((WOLF_STUCK, w.client_id.clone()), format!("Wolf session {} ({}) has no moonlight-web session", w.client_id, w.client_unique_id)));
            }
        }
        if !state.errors.is_empty() {
            // A failed poll says nothing about how long a state lasted.
            return;
        }
        let now = state.at;
        self.since.retain(|k, _| bad.iter().any(|(b, _)| b == k));
        for (key, what) in bad {
            let first = *self.since.entry(key.clone()).or_insert(now);
            if now - first > limit_ms {
                self.lasted.insert(key, format!("{what} for {:.0} s", (now - first) / 1000.0));
            }
        }
    }

    fn result(&self, name: &str, kinds: &[&str], ok: &str) -> InvariantResult {
        let bad: Vec<&str> = self.lasted.iter().filter(|((k, _), _)| kinds.contains(k)).map(|(_, w)| w.as_str()).collect();
        if bad.is_empty() {
            InvariantResult::pass(name, ok)
        } else {
            InvariantResult::fail(name, bad.join("; "))
        }
    }

    /// "No stuck sessions": neither in moonlight-web (`has_websocket:false`) nor in Wolf.
    pub fn no_stuck_sessions(&self) -> InvariantResult {
        self.result("no-stuck-sessions", &[STUCK, WOLF_STUCK], "no session stayed without its WebSocket")
    }

    /// "No zombie moonlight-web streamers".
    pub fn no_zombie_streamers(&self) -> InvariantResult {
        self.result("no-zombie-streamers", &[ZOMBIE], "no streamer outlived its socket or its process")
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
            kind: Default::default(),
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
            pixels: PixelSummary {
                samples: 10,
                with_video: 10,
                distinct_hashes: 10,
                advancing: true,
                mean_luma: 120.0,
                stamp: Some(Stamp { tag: 5, counter: 1 }),
                ..Default::default()
            },
        }
    }

    fn state(counts: &[(&str, u64)]) -> ServerState {
        ServerState {
            lobbies: vec![lobby("L1", "ses_a", &["1"]), lobby("L2", "ses_b", &["2"])],
            memory: Some(WolfMemory {
                lobbies: counts.iter().map(|(l, c)| LobbyMemory { lobby_id: l.to_string(), lobby_name: String::new(), client_count: *c }).collect(),
                clients: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn healthy_rows_pass_every_check() {
        let rows = vec![row(0, "ses_a", "connected", Some("L1")), row(1, "ses_b", "connected", Some("L2"))];
        let st = state(&[("L1", 1), ("L2", 1)]);
        for r in [
            tabs_connected(&rows),
            own_lobby_video(&rows, &st, true),
            client_count_matches(&rows, &st, &["ses_a".to_string(), "ses_b".to_string()]),
            unique_client_ids(&rows),
            create_mode(&rows),
            no_viewer_errors(&rows),
        ] {
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
        let r = client_count_matches(&rows, &state(&[("L1", 0)]), &["ses_a".to_string()]);
        assert!(!r.passed && r.message.contains("lobby L1 of ses_a: client_count 0 but 1 tab(s)"), "{}", r.message);
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
    fn a_lobby_whose_tabs_closed_must_count_nobody() {
        let rows = vec![row(0, "ses_a", "connected", Some("L1"))];
        let sessions = vec!["ses_a".to_string(), "ses_b".to_string()];
        assert!(client_count_matches(&rows, &state(&[("L1", 1), ("L2", 0)]), &sessions).passed);
        let r = client_count_matches(&rows, &state(&[("L1", 1), ("L2", 1)]), &sessions);
        assert!(!r.passed && r.message.contains("lobby L2 of ses_b: client_count 1 but 0 tab(s)"), "{}", r.message);
        assert!(one_lobby_per_session(&state(&[]), &sessions).passed);
        assert!(one_lobby_per_session(&state(&[]), &["ses_c".to_string()]).message.contains("ses_c has 0 lobbies"));
    }

    #[test]
    fn shared_lobby_survival_and_reconnect_are_judged_by_the_tabs_of_the_session() {
        let rows = vec![row(0, "ses_a", "connected", Some("L1")), row(1, "ses_a", "connected", Some("L1"))];
        assert!(several_tabs_one_lobby(&rows, &state(&[("L1", 2)]), "ses_a", 2, true).passed);
        let r = several_tabs_one_lobby(&rows, &state(&[("L1", 1)]), "ses_a", 2, true);
        assert!(!r.passed && r.message.contains("client_count 1"), "{}", r.message);
        assert!(lobby_survives_tab_close(&rows[..1], &state(&[("L1", 1)]), "ses_a", Some("L1"), true).passed);
        assert!(lobby_survives_tab_close(&rows[..1], &state(&[]), "ses_a", Some("L0"), true).message.contains("changed from L0 to L1"));
        let r = all_sessions_reconnect(&rows, &state(&[]), &["ses_a".to_string(), "ses_b".to_string()], true);
        assert!(!r.passed && r.message.contains("ses_b"), "{}", r.message);
    }

    #[test]
    fn health_watch_names_only_states_that_last() {
        use crate::sut::moonlight_web::MlwSession;
        use crate::sut::wolf::WolfSession;
        let mlw = |id: &str, ws: bool, alive: bool| MlwSession {
            session_id: id.into(),
            client_unique_id: Some(format!("helix-agent-ses_a-L1-{id}")),
            mode: "create".into(),
            has_websocket: ws,
            streamer_pid: None,
            streamer_alive: alive,
        };
        let at = |t: f64, sessions: Vec<MlwSession>, wolf: Vec<WolfSession>| ServerState {
            at: t,
            mlw_sessions: sessions,
            wolf_sessions: wolf,
            ..Default::default()
        };
        let ours = vec!["ses_a".to_string()];
        let mut w = HealthWatch::default();
        w.observe(&at(0.0, vec![mlw("s1", false, true)], vec![]), &ours, 5000.0);
        w.observe(&at(3000.0, vec![mlw("s1", false, true)], vec![]), &ours, 5000.0);
        assert!(w.no_stuck_sessions().passed, "3 s is within the limit");
        w.observe(&at(6000.0, vec![mlw("s1", false, true)], vec![]), &ours, 5000.0);
        let r = w.no_stuck_sessions();
        assert!(!r.passed && r.message.contains("s1 has_websocket:false with its streamer alive for 6 s"), "{}", r.message);
        // Stuck is not a zombie: one state, one name (the F5 detector's).
        assert!(w.no_zombie_streamers().passed);
        let mut z = HealthWatch::default();
        z.observe(&at(0.0, vec![mlw("s3", true, false)], vec![]), &ours, 1000.0);
        z.observe(&at(2000.0, vec![mlw("s3", true, false)], vec![]), &ours, 1000.0);
        assert!(z.no_zombie_streamers().message.contains("s3 listed with a dead streamer") && z.no_stuck_sessions().passed);
        // A state that ends resets its clock; other agents' sessions never count.
        let mut w = HealthWatch::default();
        let wolf = WolfSession {
            client_unique_id: "helix-agent-ses_a-L1-x".into(),
            client_id: "77".into(),
            ..serde_json::from_value(json!({"app_id": "1", "client_id": "77", "client_ip": "", "client_unique_id": "", "video_width": 1, "video_height": 1}))
                .unwrap()
        };
        w.observe(&at(0.0, vec![], vec![wolf.clone()]), &ours, 1000.0);
        w.observe(&at(500.0, vec![], vec![]), &ours, 1000.0);
        w.observe(&at(2000.0, vec![], vec![wolf.clone()]), &ours, 1000.0);
        assert!(w.no_stuck_sessions().passed);
        w.observe(&at(3500.0, vec![], vec![wolf]), &ours, 1000.0);
        assert!(w.no_stuck_sessions().message.contains("Wolf session 77"));
        let mut w = HealthWatch::default();
        w.observe(&at(0.0, vec![mlw("s2", false, false)], vec![]), &["ses_other".to_string()], 1.0);
        w.observe(&at(9000.0, vec![mlw("s2", false, false)], vec![]), &["ses_other".to_string()], 1.0);
        assert!(w.no_zombie_streamers().passed && w.no_stuck_sessions().passed);
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
