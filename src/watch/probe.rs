//! `watch --probe-every`: a canary viewer, the synthetic check of browser monitoring tools.
//!
//! The watch's detectors judge the servers; they cannot tell that a user who opens the viewer
//! now gets a picture. Every interval a probe launches a real browser, opens one viewer tab on a
//! canary agent session (given, or created at the first probe and stopped when the watch ends)
//! and waits, under a deadline, for that tab to stream its own lobby — the very rule a run's
//! checks use ([`crate::verdict::checks::streams_own_lobby`]) over the same correlation of the
//! tab's viewer with the servers' state. The time from asking for the page to the first decoded
//! frame goes into a histogram.
//!
//! Why a fresh browser each time: a browser kept for days grows (caches, renderer memory), and a
//! probe that starts from nothing measures what a new visitor gets; between probes the watch
//! holds no browser at all. The tab's observations go to a timeline of the probe's own, folded
//! and dropped with it, so nothing of a probe outlives it.

use crate::browser::{Browser, BrowserOptions, RemoteBrowser, TabIds};
use crate::config::Target;
use crate::correlate::Row;
use crate::sut::helix::HelixClient;
use crate::sut::monitor::ServerState;
use crate::timeline::{now_ms, EpochMs, TabId, Timeline};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a probe may take to see its tab stream its own lobby.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How often a waiting probe looks at its tab again.
const LOOK_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub every: Duration,
    pub browser: BrowserOptions,
    pub remotes: Vec<RemoteBrowser>,
    /// The agent session to view; `None`: one created at the first probe, stopped at the end.
    pub session: Option<String>,
}

/// What one probe found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// When the probe asked for the page.
    pub at: EpochMs,
    pub session: Option<String>,
    /// The tab streamed its own lobby within [`DEADLINE`].
    pub ok: bool,
    /// Seconds the browser took to be ready (a fresh Chromium's launch, or the connection to a
    /// remote one), before the page was asked for: a slow host shows here, not as a slow stream.
    pub browser_start_s: Option<f64>,
    /// Seconds from asking for the page to the first decoded frame, when one came.
    pub first_frame_s: Option<f64>,
    /// What the tab showed, in the words of the run's tab table.
    pub detail: String,
}

/// Probe every `opts.every` (the first at once) until `stop` turns true; each result goes to
/// `results`. The canary session this created is stopped before the task ends.
pub fn start(
    opts: ProbeOptions,
    target: Target,
    helix: HelixClient,
    state: watch::Receiver<ServerState>,
    results: mpsc::UnboundedSender<ProbeResult>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut canary = opts.session.clone();
        let mut created = None;
        let mut next = tokio::time::Instant::now();
        let mut tab: TabId = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            // One that outlasts the interval is followed by the next at once, never overlapped.
            next = (next + opts.every).max(tokio::time::Instant::now());
            let at = now_ms();
            if canary.is_none() {
                match helix.create_agent_session("helix-e2e canary").await {
                    Ok(ses) => {
                        canary = Some(ses.clone());
                        created = Some(ses);
                    }
                    Err(e) => {
                        let failed = ProbeResult {
                            at,
                            session: None,
                            ok: false,
                            browser_start_s: None,
                            first_frame_s: None,
                            detail: format!("creating the canary session: {e}"),
                        };
                        let _ = results.send(failed);
                        continue;
                    }
                }
            }
            let ses = canary.clone().unwrap_or_default();
            // Tab ids go on across probes, so no two probes' pages share a tag.
            let browser = BrowserOptions { tab_ids: TabIds { first: tab, step: 1 }, ..opts.browser.clone() };
            let r = probe_once(&target, &helix, &ses, browser, &opts.remotes, &state, &mut stop).await;
            tab += 1;
            match r {
                Some(r) => {
                    let _ = results.send(r);
                }
                None => break,
            }
        }
        if let Some(ses) = created {
            if let Err(e) = helix.stop_agent_session(&ses).await {
                tracing::warn!("stopping the canary session {ses}: {e}");
            }
        }
    })
}

/// One probe: a browser, a tab on `ses`, the wait, the browser closed. `None` when `stop` came
/// first (the browser is closed all the same).
async fn probe_once(
    target: &Target,
    helix: &HelixClient,
    ses: &str,
    browser: BrowserOptions,
    remotes: &[RemoteBrowser],
    state: &watch::Receiver<ServerState>,
    stop: &mut watch::Receiver<bool>,
) -> Option<ProbeResult> {
    let at = now_ms();
    let result =
        |browser_start_s, ok, first_frame_s, detail: String| ProbeResult { at, session: Some(ses.to_string()), ok, browser_start_s, first_frame_s, detail };
    let timeline = Timeline::unrecorded();
    if let Some(t) = helix.token() {
        timeline.add_secret(t.to_string());
    }
    let browser = match Browser::start(browser, remotes, timeline.clone()).await {
        Ok(b) => b,
        Err(e) => return Some(result(None, false, None, format!("starting the browser: {e}"))),
    };
    let browser_start_s = Some(((now_ms() - at) / 1000.0).max(0.0));
    let outcome = tokio::select! {
        r = view(target, helix, ses, &browser, &timeline, state) => Some(r),
        _ = stop.wait_for(|s| *s) => None,
    };
    if let Err(e) = browser.close().await {
        tracing::warn!("closing the probe's browser: {e}");
    }
    outcome.map(|(ok, first_frame_s, detail)| result(browser_start_s, ok, first_frame_s, detail))
}

/// Open the viewer of `ses` and wait until it streams its own lobby or [`DEADLINE`] passes:
/// (ok, seconds to the first frame, what the tab showed).
async fn view(
    target: &Target,
    helix: &HelixClient,
    ses: &str,
    browser: &Browser,
    timeline: &Timeline,
    state: &watch::Receiver<ServerState>,
) -> (bool, Option<f64>, String) {
    let asked = now_ms();
    let cookies = helix.token().map(|t| vec![("access_token".to_string(), t.to_string())]).unwrap_or_default();
    let url = target.viewer.session_page(&target.viewer_base, ses);
    let opened = async {
        let tab = browser.open_tab(&url, cookies).await?;
        for text in &target.viewer.clicks {
            browser.click_text(tab, text).await?;
        }
        Ok::<_, crate::browser::BrowserError>(tab)
    };
    let tab = match tokio::time::timeout(DEADLINE, opened).await {
        Ok(Ok(tab)) => tab,
        Ok(Err(e)) => return (false, None, format!("opening the viewer: {e}")),
        Err(_) => return (false, None, format!("the viewer did not open within {} s", DEADLINE.as_secs())),
    };
    let mut cursor = timeline.cursor();
    let mut fold = crate::browser::viewers::ViewerFold::new();
    let deadline = tokio::time::Instant::now() + DEADLINE.saturating_sub(Duration::from_millis((now_ms() - asked).max(0.0) as u64));
    loop {
        timeline.take_new(&mut cursor, |o| fold.ingest(o));
        let viewers = fold.viewers_of(&[tab]);
        let first_frame = viewers.iter().flat_map(|v| v.frames.iter()).filter(|f| f.presented > 0).map(|f| f.at).reduce(f64::min);
        let first_frame_s = first_frame.map(|f| ((f - asked) / 1000.0).max(0.0));
        let server = state.borrow().clone();
        let rows = crate::correlate::table(&viewers, &server, now_ms());
        if rows.iter().any(|r| crate::verdict::checks::streams_own_lobby(r, &server, target.stamped)) {
            return (true, first_frame_s, format!("streams its own lobby{}", own_lobby(&server, ses).map(|l| format!(" {l}")).unwrap_or_default()));
        }
        if tokio::time::Instant::now() >= deadline {
            let own = own_lobby(&server, ses);
            let shown = rows.last().map(|r| describe(r, own.as_deref())).unwrap_or_else(|| "the page started no viewer".to_string());
            return (false, first_frame_s, format!("not streaming its own lobby after {} s: {shown}", DEADLINE.as_secs()));
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

fn own_lobby(state: &ServerState, ses: &str) -> Option<String> {
    state.lobbies.iter().find(|l| l.helix_session() == Some(ses)).map(|l| l.id.clone())
}

/// A tab's row in a few words: its connection, its pixels and whose lobby they show.
fn describe(r: &Row, own: Option<&str>) -> String {
    let mut parts = vec![format!("connection {}", r.connection_state.as_deref().unwrap_or("never made")), format!("pixels {}", r.pixels.verdict())];
    if let Some(l) = &r.pixels_lobby {
        parts.push(format!("picture of {l} (its own lobby: {})", own.unwrap_or("none in Wolf")));
    }
    if !r.errors.is_empty() {
        parts.push(format!("errors {}", r.errors.join(", ")));
    }
    parts.join(", ")
}
