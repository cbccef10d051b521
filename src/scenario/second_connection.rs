//! `second-connection` (seed 001): two agent sessions, one viewer each, opened one after the
//! other — once as two tabs, once as two task dialogs in one page. The second viewer must
//! stream its own lobby exactly like the first.

use super::driver::{Driver, OpError};
use crate::correlate::Row;
use crate::sut::monitor::ServerState;
use crate::verdict::checks;
use std::time::Duration;

pub const NAME: &str = "second-connection";
pub const ABOUT: &str = "two agent sessions, one viewer each, opened one after the other (two tabs, then two viewers in one page)";

/// How long a viewer may take from page load to advancing frames of its lobby.
const STREAM_DEADLINE: Duration = Duration::from_secs(45);
/// Failures of seed 001 showed 4–12 s after the join; watch both viewers for this long.
const HOLD: Duration = Duration::from_secs(6);
const CLEANUP_DEADLINE: Duration = Duration::from_secs(20);
/// How long moonlight-web may take to end the session of a closed tab.
const TAB_CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// A viewer is streaming its own lobby: connected, moving pixels, and (stamped) the right stamp.
fn streaming(rows: &[Row], state: &ServerState, expected_viewers: usize, stamped: bool) -> bool {
    rows.len() == expected_viewers
        && rows.iter().all(|r| {
            let own =
                r.client_unique_id.as_deref().and_then(checks::agent_session_of).and_then(|s| state.lobbies.iter().find(|l| l.helix_session() == Some(s)));
            r.connection_state.as_deref() == Some("connected")
                && r.pixels.verdict() == "moving"
                && (!stamped || matches!((own, &r.pixels_lobby), (Some(l), Some(p)) if &l.id == p))
        })
}

pub async fn run(d: &mut Driver) -> Result<(), OpError> {
    d.begin_phase("two-tabs");
    let a = d.create_session().await?;
    let b = d.create_session().await?;
    let t1 = d.open_viewer(&a).await?;
    let stamped = d.target.stamped;
    d.wait_until("first viewer streams", &[t1], STREAM_DEADLINE, |r, s| streaming(r, s, 1, stamped)).await;
    let t2 = d.open_viewer(&b).await?;
    d.wait_until("both viewers stream", &[t1, t2], STREAM_DEADLINE, |r, s| streaming(r, s, 2, stamped)).await;
    tokio::time::sleep(HOLD).await;
    check_streaming(d, &[t1, t2], 2).await;
    d.screenshot(t1, "streaming").await;
    d.screenshot(t2, "streaming").await;
    d.screenshot_videos(t1, 1, "streaming").await;
    d.screenshot_videos(t2, 1, "streaming").await;
    close_and_verify(d, &[t1, t2], &[a, b]).await?;

    d.begin_phase("one-page");
    let a = d.create_session().await?;
    let b = d.create_session().await?;
    let page = d.open_board(&[a.clone(), b.clone()]).await?;
    d.wait_until("both dialogs stream", &[page], STREAM_DEADLINE, |r, s| streaming(r, s, 2, stamped)).await;
    tokio::time::sleep(HOLD).await;
    check_streaming(d, &[page], 2).await;
    d.screenshot(page, "streaming").await;
    d.screenshot_videos(page, 2, "streaming").await;
    close_and_verify(d, &[page], &[a, b]).await?;
    Ok(())
}

async fn check_streaming(d: &mut Driver, tabs: &[usize], viewers: usize) {
    d.monitor.refresh().await;
    let rows = d.rows(tabs);
    let state = d.server_state();
    tracing::info!("correlation:\n{}", crate::correlate::render(&rows));
    if rows.len() != viewers {
        d.check(crate::verdict::InvariantResult::fail("viewers-present", format!("expected {viewers} viewers, saw {}", rows.len())));
    }
    d.check(checks::tabs_connected(&rows));
    d.check(checks::no_viewer_errors(&rows));
    d.check(checks::own_lobby_video(&rows, &state, d.target.stamped));
    let mut sessions: Vec<String> = rows.iter().filter_map(|r| r.client_unique_id.as_deref().and_then(checks::agent_session_of)).map(str::to_string).collect();
    sessions.dedup();
    d.check(checks::client_count_matches(&rows, &state, &sessions));
    d.check(checks::unique_client_ids(&rows));
    d.check(checks::create_mode(&rows));
}

async fn close_and_verify(d: &mut Driver, tabs: &[usize], sessions: &[String]) -> Result<(), OpError> {
    let viewers = d.current_viewers(tabs);
    let uids: Vec<String> = viewers.iter().filter_map(|v| v.client_unique_id.clone()).collect();
    let mlw: Vec<String> = viewers.iter().filter_map(|v| v.session_id.clone()).collect();
    for &t in tabs {
        d.close_tab(t).await?;
    }
    // A closed tab ends its moonlight-web and Wolf sessions by itself; only then are the agents
    // stopped, so a session that outlives its tab is seen as what it is.
    let (gone, gone_uids) = (mlw.clone(), uids.clone());
    d.wait_until("closed tabs' sessions end", &[], TAB_CLOSE_DEADLINE, move |_, s| {
        !s.mlw_sessions.iter().any(|m| gone.contains(&m.session_id)) && !s.wolf_sessions.iter().any(|w| gone_uids.contains(&w.client_unique_id))
    })
    .await;
    for s in sessions {
        d.finish_session(s).await?;
    }
    // Lobbies of sessions given with --session stay; everything else must go.
    let sessions: Vec<String> = sessions.iter().filter(|s| !d.is_given(s)).cloned().collect();
    let sessions = &sessions[..];
    let (ses, u, m) = (sessions.to_vec(), uids.clone(), mlw.clone());
    d.wait_until("nothing of this phase remains", &[], CLEANUP_DEADLINE, move |_, s| checks::no_leftovers(s, &ses, &u, &m).passed).await;
    d.monitor.refresh().await;
    let state = d.server_state();
    d.check(checks::no_leftovers(&state, sessions, &uids, &mlw));
    Ok(())
}
