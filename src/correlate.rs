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
                    state.lobbies.iter().find(|l| stamp::lobby_tag(&l.id) == s.tag).map(|l| l.id.clone()).unwrap_or_else(|| format!("unknown lobby (tag {})", s.tag))
                }
            });
            Row {
                tab: v.tab,
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
