//! What the browser layer knows about deaths, and the watchers that learn of them: a local
//! browser's process exit, a remote browser's endpoint going away, a page that stops answering.
//! Once the browser or a tab is dead, operations on it fail at once instead of waiting out
//! DevTools deadlines on a connection nobody will answer.

use super::{launch, remote, BrowserError, RemoteBrowser};
use crate::timeline::{Casualty, Event, TabId, Timeline};
use chromiumoxide::Page;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What the browser layer knows about deaths, shared with its watchers: once the browser or a
/// tab is dead, operations on it fail at once instead of waiting out DevTools deadlines on a
/// connection nobody will answer — those already waiting too ([`Health::while_alive`]).
#[derive(Default)]
pub(super) struct Health {
    pub(super) browser: OnceLock<String>,
    /// The webrtc-internals page's renderer crashed.
    pub(super) internals: OnceLock<String>,
    tabs: Mutex<HashMap<TabId, String>>,
    /// Bumped at every death, so calls in flight learn of it.
    deaths: tokio::sync::watch::Sender<u64>,
}

impl Health {
    pub(super) fn tab_dead(&self, tab: TabId, why: String) {
        self.tabs.lock().unwrap_or_else(|e| e.into_inner()).entry(tab).or_insert(why);
        self.deaths.send_modify(|n| *n += 1);
    }

    pub(super) fn browser_dead(&self, why: String) {
        let _ = self.browser.set(why);
        self.deaths.send_modify(|n| *n += 1);
    }

    /// `fut`, unless the browser or `tab` dies first: then the death's error at once. A call
    /// that started just before a death (a screenshot of a tab whose renderer hung) would
    /// otherwise wait out its whole deadline, and the run with it.
    pub(super) async fn while_alive<T>(&self, tab: Option<TabId>, fut: impl Future<Output = Result<T, BrowserError>>) -> Result<T, BrowserError> {
        let mut deaths = self.deaths.subscribe();
        self.check(tab)?;
        tokio::select! {
            r = fut => r,
            dead = async {
                loop {
                    if deaths.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if let Err(e) = self.check(tab) {
                        return e;
                    }
                }
            } => Err(dead),
        }
    }

    pub(super) fn check(&self, tab: Option<TabId>) -> Result<(), BrowserError> {
        if let Some(why) = self.browser.get() {
            return Err(BrowserError::BrowserDied(why.clone()));
        }
        match tab.and_then(|t| self.tabs.lock().unwrap_or_else(|e| e.into_inner()).get(&t).cloned().map(|why| (t, why))) {
            Some((tab, why)) => Err(BrowserError::TabDead { tab, why }),
            None => Ok(()),
        }
    }
}

/// How often the browser process and each tab are checked for life.
const LIFE_CHECK_EVERY: Duration = Duration::from_millis(100);
/// A tab that does not evaluate `1` within this long has stopped answering (B3). Generous: a
/// viewer's renderer never blocks its main thread this long when healthy, even on a loaded
/// 2-core machine.
const TAB_ANSWER_DEADLINE: Duration = Duration::from_secs(3);

/// Watches a remote browser (see `remote::watch`). When it is gone, the timeline says so with
/// its endpoint — B2, as for a local browser's death: the tabs on it are lost to the run, which
/// is not the stack's doing — and every DevTools call on it fails at once.
pub(super) async fn watch_remote(endpoint: RemoteBrowser, url: String, page: Page, handler: tokio::task::AbortHandle, health: Arc<Health>, timeline: Timeline) {
    let why = remote::watch(&endpoint, &page).await;
    let detail = format!("Chromium at {url} is lost: {why}");
    tracing::error!("{detail}");
    timeline.push(Event::Died { what: Casualty::Browser, detail: detail.clone() });
    health.browser_dead(detail);
    handler.abort();
}

/// Watches the browser process. When it dies, every DevTools call fails at once (the handler
/// goes, and with it every pending command's channel) and the timeline says how it died.
pub(super) async fn watch_process(pid: u32, handler: tokio::task::AbortHandle, health: Arc<Health>, timeline: Timeline) {
    loop {
        tokio::time::sleep(LIFE_CHECK_EVERY).await;
        if let Some(how) = launch::exit_of(pid) {
            let detail = format!("Chromium (pid {pid}) {how}");
            tracing::error!("{detail}");
            // The death goes on the timeline before any call learns of it: an operation that
            // fails with "the browser died" must find the death already there to explain it,
            // or the scenario would end as an error of the driver's instead of B2.
            timeline.push(Event::Died { what: Casualty::Browser, detail: detail.clone() });
            health.browser_dead(detail);
            handler.abort();
            return;
        }
    }
}

/// Asks a page for `1` every second; one that does not answer within [`TAB_ANSWER_DEADLINE`]
/// has stopped answering DevTools (a hung renderer) — unless the whole browser died. `tab` is
/// `None` for the webrtc-internals page: the driver's own, so only marked dead (snapshots then
/// fail at once), not named.
pub(super) async fn watch_answers(page: Page, tab: Option<TabId>, health: Arc<Health>, timeline: Timeline) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dead = match tab {
            Some(t) => health.check(Some(t)).is_err(),
            None => health.check(None).is_err() || health.internals.get().is_some(),
        };
        if dead {
            return;
        }
        if tokio::time::timeout(TAB_ANSWER_DEADLINE, page.evaluate_expression("1")).await.is_ok() || health.check(None).is_err() {
            continue;
        }
        let whose = tab.map(|t| format!("tab {t}")).unwrap_or_else(|| "the webrtc-internals page".into());
        let detail = format!("{whose} did not answer DevTools within {:.0} s", TAB_ANSWER_DEADLINE.as_secs_f64());
        tracing::error!("{detail}");
        match tab {
            Some(t) => {
                timeline.push(Event::Died { what: Casualty::TabUnresponsive { tab: t }, detail: detail.clone() });
                health.tab_dead(t, detail);
            }
            None => {
                let _ = health.internals.set(detail);
            }
        }
        return;
    }
}
