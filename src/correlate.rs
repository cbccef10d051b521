//! The correlation table: for every viewer, tab ↔ `client_unique_id` ↔ moonlight-web session ↔
//! Wolf session ↔ lobby (and its `client_count`) ↔ what the pixels show. It is derived from the
//! timeline and the latest server snapshot, never stored separately.

use crate::browser::viewers::ViewerFacts;
use crate::frames::analysis::{summarize, PixelSummary};
use crate::frames::stamp;
use crate::sut::monitor::ServerState;
use crate::timeline::{EpochMs, TabId};
use serde::Serialize;

/// How far back the pixel summary looks.
pub const PIXEL_WINDOW_MS: f64 = 2000.0;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub tab: TabId,
    pub kind: crate::timeline::ViewerKind,
    pub client_unique_id: Option<String>,
    pub mode: Option<String>,
    pub connection_state: Option<String>,
    pub errors: Vec<String>,
    pub mlw_session: Option<String>,
    pub mlw_has_websocket: Option<bool>,
    pub mlw_streamer_alive: Option<bool>,
    pub wolf_session: Option<String>,
    pub lobby: Option<String>,
    pub lobby_client_count: Option<u64>,
    /// The lobby whose stamp the pixels carry (`"Wolf UI"` for the Wolf UI picture).
    pub pixels_lobby: Option<String>,
    pub pixels: PixelSummary,
}

pub fn table(viewers: &[ViewerFacts], state: &ServerState, now: EpochMs) -> Vec<Row> {
    viewers
        .iter()
        .map(|v| {
            let mlw = v.session_id.as_ref().and_then(|sid| state.mlw_sessions.iter().find(|s| &s.session_id == sid));
            // The Wolf session: the id ConnectionComplete reported, else the one with our unique id.
            let wolf = v
                .client_id
                .as_ref()
                .and_then(|cid| state.wolf_sessions.iter().find(|s| &s.client_id == cid))
                .or_else(|| v.client_unique_id.as_ref().and_then(|u| state.wolf_sessions.iter().find(|s| &s.client_unique_id == u)));
            let wolf_session = wolf.map(|s| s.client_id.clone()).or_else(|| v.client_id.clone());
            let lobby = wolf_session.as_deref().and_then(|s| state.lobby_of_session(s));
            let pixels = summarize(&v.frames, now - PIXEL_WINDOW_MS, now);
            let pixels_lobby = pixels.stamp.map(|s| {
                if s.tag == stamp::WOLF_UI_TAG {
                    "Wolf UI".to_string()
                } else {
                    lobby_of_tag(state, s.tag, lobby.map(|l| l.id.as_str())).unwrap_or_else(|| format!("unknown lobby (tag {})", s.tag))
                }
            });
            Row {
                tab: v.tab,
                kind: v.kind,
                client_unique_id: v.client_unique_id.clone(),
                mode: v.mode.clone(),
                connection_state: v.connection_state.clone(),
                errors: v.errors.iter().map(|e| e.message.clone()).collect(),
                mlw_session: mlw.map(|s| s.session_id.clone()),
                mlw_has_websocket: mlw.map(|s| s.has_websocket),
                mlw_streamer_alive: mlw.map(|s| s.streamer_alive),
                wolf_session,
                lobby: lobby.map(|l| l.id.clone()),
                lobby_client_count: lobby.and_then(|l| state.client_count(&l.id)),
                pixels_lobby,
                pixels,
            }
        })
        .collect()
}

/// The lobby whose picture carries `tag`. Tags are 12 bits, so two live lobbies can share one
/// (1 run in 10 of a 5-lobby scenario met such a pair); the picture cannot tell them apart, and
/// the rule is: when the lobby Wolf says the tab's session is in (`own`) carries the tag, the
/// picture is that lobby's; otherwise the first lobby with the tag.
fn lobby_of_tag(state: &ServerState, tag: u16, own: Option<&str>) -> Option<String> {
    let mut with_tag = state.lobbies.iter().filter(|l| stamp::lobby_tag(&l.id) == tag).map(|l| l.id.as_str());
    let first = with_tag.next()?;
    Some(own.filter(|o| *o == first || with_tag.any(|l| l == *o)).unwrap_or(first).to_string())
}

/// A plain-text rendering for messages and report.md.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("tab | client_unique_id | mode | pc state | mlw ws/alive | wolf session | lobby (clients) | pixels\n");
    for r in rows {
        out.push_str(&format!(
            "{} | {} | {} | {} | {}/{} | {} | {} ({}) | {} {}\n",
            r.tab,
            r.client_unique_id.as_deref().unwrap_or("-"),
            r.mode.as_deref().unwrap_or("-"),
            r.connection_state.as_deref().unwrap_or("-"),
            r.mlw_has_websocket.map(|b| b.to_string()).unwrap_or("-".into()),
            r.mlw_streamer_alive.map(|b| b.to_string()).unwrap_or("-".into()),
            r.wolf_session.as_deref().unwrap_or("-"),
            r.lobby.as_deref().unwrap_or("-"),
            r.lobby_client_count.map(|c| c.to_string()).unwrap_or("-".into()),
            r.pixels.verdict(),
            r.pixels_lobby.as_deref().unwrap_or(""),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sut::wolf::WolfLobby;

    fn lobby(id: &str) -> WolfLobby {
        serde_json::from_value(serde_json::json!({"id": id, "name": "Agent"})).unwrap()
    }

    #[test]
    fn a_tag_two_lobbies_share_is_the_tabs_own_lobby_when_it_is_one_of_them() {
        // Two lobby ids of one real run whose 12-bit tags collide (both 1317).
        let (a, b) = ("b67b75e5-d709-4069-b81b-5a884f101aa9", "9815dc34-6181-4b34-95bc-576a9f1dc6ac");
        assert_eq!(stamp::lobby_tag(a), stamp::lobby_tag(b));
        let state = ServerState { lobbies: vec![lobby(a), lobby(b), lobby("other")], ..Default::default() };
        let tag = stamp::lobby_tag(b);
        assert_eq!(lobby_of_tag(&state, tag, Some(b)).as_deref(), Some(b));
        assert_eq!(lobby_of_tag(&state, tag, Some(a)).as_deref(), Some(a));
        // A tab whose own lobby does not carry the tag shows another lobby: the first with it.
        assert_eq!(lobby_of_tag(&state, tag, Some("other")).as_deref(), Some(a));
        assert_eq!(lobby_of_tag(&state, stamp::lobby_tag("other"), Some(b)).as_deref(), Some("other"));
        assert_eq!(lobby_of_tag(&state, 0, None), None);
    }
}
