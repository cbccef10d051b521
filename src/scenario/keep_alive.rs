//! `--keep-alive-input`: real input to every open viewer, so a run can tell the two hypotheses
//! of the control-stream failure (F4) apart. If Wolf drops a lobby session because its control
//! peer saw no input, tabs that move the mouse survive; if they drop anyway, the cause is
//! elsewhere.
//!
//! The input is what a user's mouse makes: a `mouseRelative` move on the viewer's data channel,
//! one pixel right then one back, so the remote cursor does not drift.

use crate::browser::Browser;
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
    pub fn start(browser: Arc<Browser>, timeline: Timeline) -> Self {
        timeline.push(Event::Op { name: format!("keep-alive input: a mouseRelative move to every viewer each {} s", EVERY.as_secs_f64()), phase: OpPhase::Ok });
        KeepAlive { task: tokio::spawn(run(browser, timeline)) }
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

async fn run(browser: Arc<Browser>, timeline: Timeline) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tabs whose viewer took a move, so the timeline says once per tab that input flows.
    let mut reached: BTreeSet<TabId> = BTreeSet::new();
    let mut right = true;
    loop {
        tick.tick().await;
        let dx = if right { 1 } else { -1 };
        right = !right;
        for tab in browser.open_tabs() {
            // A tab may close between the listing and the move; the next tick lists it no more.
            match tokio::time::timeout(EVERY, browser.send_mouse_relative(tab, dx, 0)).await {
                Ok(Ok(n)) if n > 0 && reached.insert(tab) => {
                    timeline.push(Event::Op { name: format!("keep-alive input reaches tab {tab}"), phase: OpPhase::Ok });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(tab, "keep-alive input not sent: {e}"),
                Err(_) => tracing::debug!(tab, "keep-alive input: the tab did not answer within {EVERY:?}"),
            }
        }
    }
}
