//! `--keep-alive-input`: real input to every open viewer, so a run can tell the two hypotheses
//! of the control-stream failure (F4) apart. If Wolf drops a lobby session because its control
//! peer saw no input, tabs that move the mouse survive; if they drop anyway, the cause is
//! elsewhere.
//!
//! The input is what a user's mouse makes: real mouse moves (CDP `Input.dispatchMouseEvent`)
//! over each viewer's `<video>`, one pixel right then back, so the remote cursor does not drift.
//! What the viewer does with them is its own code's business, as with a person's mouse; whether
//! they reached Wolf is Wolf's to say (the stand-in's Wolf logs when a session's input starts).

use crate::browser::{Browser, VideoInput};
use crate::timeline::{Event, OpPhase, TabId, Timeline};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often each viewer gets a move: well inside the shortest idle timeout seen (4 s).
pub const EVERY: Duration = Duration::from_secs(1);

/// The running input loop; stop it before the browser is closed (it holds a share of it).
pub struct KeepAlive {
    task: JoinHandle<()>,
}

impl KeepAlive {
    /// `video_selector` finds the viewers' `<video>` elements (the target's viewer spec).
    pub fn start(browser: Arc<Browser>, timeline: Timeline, video_selector: String) -> Self {
        timeline
            .push(Event::Op { name: format!("keep-alive input: a mouse move over every viewer's video each {} s", EVERY.as_secs_f64()), phase: OpPhase::Ok });
        KeepAlive { task: tokio::spawn(run(browser, timeline, video_selector)) }
    }

    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for KeepAlive {
    /// A run dropped mid-way (Ctrl-C) must not leave the loop holding the browser.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(browser: Arc<Browser>, timeline: Timeline, video_selector: String) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tabs with a video that got a move, so the timeline says once per tab that input is sent.
    let mut reached: BTreeSet<TabId> = BTreeSet::new();
    let mut right = true;
    loop {
        tick.tick().await;
        let dx = if right { 1.0 } else { -1.0 };
        right = !right;
        for tab in browser.open_tabs() {
            // A tab may close between the listing and the move; the next tick lists it no more.
            match tokio::time::timeout(EVERY, browser.video_input(tab, &video_selector, VideoInput::Move { dx })).await {
                Ok(Ok(n)) if n > 0 && reached.insert(tab) => {
                    timeline.push(Event::Op { name: format!("keep-alive input: mouse moves over tab {tab}'s video"), phase: OpPhase::Ok });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(tab, "keep-alive input not sent: {e}"),
                Err(_) => tracing::debug!(tab, "keep-alive input: the tab did not answer within {EVERY:?}"),
            }
        }
    }
}
