//! Real Chromium tabs as the users of the system under test.
//!
//! The bugs this project hunts (two viewers fighting over one lobby, a stream that connects but
//! shows nothing, a reconnect that never recovers) only show in a real browser running the real
//! viewer page. This module launches Chromium (or connects to remote ones, `remote.rs`, spread
//! over by `fleet.rs`), opens each tab in its own browser context (so tabs share no cookies and
//! each is a distinct user), installs an in-page probe before the page's own scripts, and turns
//! everything the probe reports into [`crate::timeline`] events. It also keeps a
//! `chrome://webrtc-internals` tab open in each browser for its own view of every peer connection.

mod fleet;
mod health;
mod internals;
mod launch;
mod probe;
mod remote;
mod tab;
pub mod viewers;

use crate::timeline::{Casualty, Event, TabId, Timeline};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{EventTargetCrashed, TargetId};
use chromiumoxide::Page;
use futures::StreamExt;
use health::{watch_answers, watch_process, watch_remote, Health};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

pub use fleet::{Browser, TabIds};
pub use internals::{
    digest_adds, digest_of, digest_of_browsers, digest_of_dumps, dump_shape, peer_connections_of_tab, tab_marker, validate_dump, BrowserDump, DumpDigest,
};
pub use remote::RemoteBrowser;
pub use tab::{tagged_url, VideoInput};
pub use viewers::{fold_viewers, ViewerFacts};

/// Name of the CDP binding the probe reports through.
pub const PROBE_BINDING: &str = "__helixProbe";
/// Query parameter appended to every tab's URL so its peer connections can be found in
/// webrtc-internals (whose entries carry only the page URL).
pub const TAB_PARAM: &str = "e2e_tab";

/// How long one DevTools command may take before the driver gives up on it.
const CDP_DEADLINE: Duration = Duration::from_secs(20);
/// How long a navigation (open, reload) may take.
const NAV_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("chromium executable {0} not found (install chromium or set CHROMIUM)")]
    MissingExecutable(PathBuf),
    #[error("launching chromium failed: {0}")]
    Launch(String),
    #[error("{what}: {source}")]
    Cdp {
        what: String,
        #[source]
        source: chromiumoxide::error::CdpError,
    },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("no open tab {0}")]
    NoSuchTab(TabId),
    #[error("tab {tab}: {what}")]
    Page { tab: TabId, what: String },
    #[error("the browser died: {0}")]
    BrowserDied(String),
    #[error("tab {tab} is dead: {why}")]
    TabDead { tab: TabId, why: String },
    #[error("webrtc-internals: {0}")]
    Internals(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl BrowserError {
    fn cdp(what: impl Into<String>) -> impl FnOnce(chromiumoxide::error::CdpError) -> BrowserError {
        let what = what.into();
        move |source| BrowserError::Cdp { what, source }
    }
}

/// Runs one browser operation under a deadline, so a wedged DevTools connection turns into an
/// error instead of a hung run.
async fn deadline<T, E, F>(what: &str, after: Duration, fut: F) -> Result<T, BrowserError>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BrowserError>,
{
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(BrowserError::Timeout { what: what.to_string(), after }),
    }
}

/// A DevTools call under the standard deadline, with its error labelled.
async fn cdp<T, F>(what: &str, fut: F) -> Result<T, BrowserError>
where
    F: Future<Output = Result<T, chromiumoxide::error::CdpError>>,
{
    deadline(what, CDP_DEADLINE, async { fut.await.map_err(BrowserError::cdp(what)) }).await
}

#[derive(Debug, Clone)]
pub struct BrowserOptions {
    pub executable: PathBuf,
    pub headless: bool,
    pub window: (u32, u32),
    /// `None`: a fresh temporary directory, removed on close. A shared profile directory keeps a
    /// `SingletonLock` that breaks the next launch after a crash, so never reuse one across runs.
    pub user_data_dir: Option<PathBuf>,
    /// Extra Chromium switches without the leading dashes: `"key"` or `"key=value"`.
    pub extra_args: Vec<String>,
    /// How the browser numbers the tabs it opens.
    pub tab_ids: TabIds,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        let executable = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        BrowserOptions { executable, headless: true, window: (1280, 800), user_data_dir: None, extra_args: Vec::new(), tab_ids: TabIds::default() }
    }
}

/// One open tab: its page, its private browser context and the tasks forwarding its events.
struct TabState {
    page: Page,
    context: BrowserContextId,
    tasks: Vec<JoinHandle<()>>,
    /// The tab's one mouse and keyboard. A user's gestures do not interleave; the driver's
    /// press of a control and its input probes run concurrently, and a probe's mouse-down on the
    /// video landing between a press's down and up took the press's click away (a Reconnect
    /// that did nothing). Every gesture holds this from its first event to its last.
    input: tokio::sync::Mutex<()>,
}

/// Where one Chromium runs: a process of this run's, or an endpoint of someone else's.
enum Origin {
    /// Launched by the run: its pid, and the profile it removes on close.
    Local { pid: u32, temp_dir: Option<PathBuf> },
    /// Reached over DevTools only (`remote.rs`): the endpoint as given and the WebSocket it
    /// resolved to.
    Remote { endpoint: RemoteBrowser, url: String },
}

/// One Chromium, local or remote; [`Browser`] spreads a run's tabs over one or several.
struct Chromium {
    inner: Option<chromiumoxide::Browser>,
    handler: Option<JoinHandle<()>>,
    crash_watch: Option<JoinHandle<()>>,
    death_watch: Option<JoinHandle<()>>,
    internals_watch: Option<JoinHandle<()>>,
    health: Arc<Health>,
    /// The `chrome://webrtc-internals` page, kept open for the whole life of the browser.
    internals: Option<Page>,
    internals_context: Option<BrowserContextId>,
    tabs: Arc<Mutex<HashMap<TabId, Arc<TabState>>>>,
    /// Target id → tab, so a crash reported at browser level names the tab.
    targets: Arc<Mutex<HashMap<TargetId, TabId>>>,
    timeline: Timeline,
    origin: Origin,
}

impl Chromium {
    /// Starts Chromium with the flags this machine needs.
    async fn launch(opts: &BrowserOptions, timeline: Timeline) -> Result<Chromium, BrowserError> {
        let launch::Launched { browser, handler, pid, temp_dir } = launch::start(opts).await?;
        let this = Chromium::attach(browser, handler, Origin::Local { pid, temp_dir }, timeline).await?;
        tracing::info!(pid, "chromium launched");
        Ok(this)
    }

    /// Connects to a Chromium that runs elsewhere.
    async fn connect(endpoint: &RemoteBrowser, timeline: Timeline) -> Result<Chromium, BrowserError> {
        let (browser, handler, url) = endpoint.connect().await?;
        let handler = tokio::spawn(launch::drive(handler));
        let this = Chromium::attach(browser, handler, Origin::Remote { endpoint: endpoint.clone(), url: url.clone() }, timeline).await?;
        tracing::info!(%url, "connected to a remote chromium");
        Ok(this)
    }

    /// The crash watcher, the death watcher and the webrtc-internals tab (which must exist
    /// before any viewer tab: Chromium records peer-connection update logs only while an
    /// internals page is open).
    /// Its context is its own (`internals::open_page`).
    async fn attach(browser: chromiumoxide::Browser, handler: JoinHandle<()>, origin: Origin, timeline: Timeline) -> Result<Chromium, BrowserError> {
        let internals = internals::open_page(&browser).await;
        // From here on, Drop cleans up whatever fails.
        let health = Arc::new(Health::default());
        let death_watch = match &origin {
            Origin::Local { pid, .. } => Some(tokio::spawn(watch_process(*pid, handler.abort_handle(), health.clone(), timeline.clone()))),
            Origin::Remote { .. } => None,
        };
        let mut this = Chromium {
            inner: Some(browser),
            handler: Some(handler),
            crash_watch: None,
            death_watch,
            internals_watch: None,
            health,
            internals: None,
            internals_context: None,
            tabs: Arc::default(),
            targets: Arc::default(),
            timeline,
            origin,
        };
        let (page, context) = internals?;
        this.internals = Some(page);
        this.internals_context = Some(context);
        this.crash_watch = Some(this.watch_crashes().await?);
        if let Some(page) = this.internals.clone() {
            this.internals_watch = Some(tokio::spawn(watch_answers(page.clone(), None, this.health.clone(), this.timeline.clone())));
            if let (Origin::Remote { endpoint, url }, Some(handler)) = (&this.origin, &this.handler) {
                let watch = watch_remote(endpoint.clone(), url.clone(), page, handler.abort_handle(), this.health.clone(), this.timeline.clone());
                this.death_watch = Some(tokio::spawn(watch));
            }
        }
        Ok(this)
    }

    /// Process id of the Chromium browser process, when it runs here.
    fn pid(&self) -> Option<u32> {
        match self.origin {
            Origin::Local { pid, .. } => Some(pid),
            Origin::Remote { .. } => None,
        }
    }

    /// What the artifacts call this browser: `local` or its DevTools endpoint as given.
    fn name(&self) -> String {
        match &self.origin {
            Origin::Local { .. } => "local".into(),
            Origin::Remote { endpoint, .. } => endpoint.to_string(),
        }
    }

    fn browser(&self) -> &chromiumoxide::Browser {
        self.inner.as_ref().expect("browser used after close")
    }

    async fn watch_crashes(&self) -> Result<JoinHandle<()>, BrowserError> {
        let mut crashes = cdp("listen for crashes", self.browser().event_listener::<EventTargetCrashed>()).await?;
        let targets = self.targets.clone();
        let timeline = self.timeline.clone();
        let health = self.health.clone();
        let internals = self.internals.as_ref().map(|p| p.target_id().clone());
        Ok(tokio::spawn(async move {
            while let Some(ev) = crashes.next().await {
                let tab = targets.lock().unwrap_or_else(|e| e.into_inner()).get(&ev.target_id).copied();
                let is_internals = internals.as_ref() == Some(&ev.target_id);
                tracing::warn!(?tab, is_internals, status = %ev.status, code = ev.error_code, "renderer crashed");
                // Targets of neither kind (a spare renderer, a worker) carry no viewer.
                let whose = match (tab, is_internals) {
                    (Some(t), _) => format!("tab {t}"),
                    (None, true) => "the webrtc-internals page".into(),
                    (None, false) => continue,
                };
                let detail = format!("the renderer of {whose} crashed: {} (code {})", ev.status, ev.error_code);
                // The evidence first, then the error calls get (see `watch_process`).
                timeline.push(Event::Died { what: Casualty::TabCrashed { tab }, detail: detail.clone() });
                match tab {
                    Some(t) => health.tab_dead(t, detail),
                    None => {
                        let _ = health.internals.set(detail);
                    }
                }
            }
        }))
    }

    /// Why the browser died, once it has: the run cannot go on without it.
    fn death(&self) -> Option<String> {
        self.health.browser.get().cloned()
    }

    fn tab(&self, tab: TabId) -> Result<Arc<TabState>, BrowserError> {
        self.health.check(Some(tab))?;
        self.tabs.lock().unwrap_or_else(|e| e.into_inner()).get(&tab).cloned().ok_or(BrowserError::NoSuchTab(tab))
    }

    /// Ids of the tabs currently open.
    fn open_tabs(&self) -> Vec<TabId> {
        let mut v: Vec<TabId> = self.tabs.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Closes every tab, then the browser, and waits for the process tree to be gone; kills it
    /// when it does not exit in time. The temporary profile is removed. A remote browser is
    /// not ours to close: the run closes its tabs and the internals page, and disconnects.
    async fn close(mut self) -> Result<(), BrowserError> {
        // A browser asked to quit is not a browser that died.
        if let Some(w) = self.death_watch.take() {
            w.abort();
        }
        for tab in self.open_tabs() {
            if let Err(e) = self.close_tab(tab).await {
                tracing::warn!(tab, error = %e, "closing tab failed; the browser goes anyway");
            }
        }
        let result = match (self.inner.take(), &mut self.origin) {
            (Some(browser), Origin::Local { pid, .. }) => launch::stop(browser, *pid).await,
            (Some(browser), Origin::Remote { .. }) => match (self.internals.take(), self.internals_context.take()) {
                (Some(page), Some(context)) if self.health.check(None).is_ok() => {
                    let closed = cdp("close webrtc-internals", page.close()).await;
                    closed.and(cdp("dispose the webrtc-internals context", browser.dispose_browser_context(context)).await)
                }
                _ => Ok(()),
            },
            (None, _) => Ok(()),
        };
        self.abort_tasks();
        self.remove_profile();
        result
    }

    /// Kill Chromium at once (an interrupted run has no time for a polite close), and remove
    /// its profile; a remote one is only disconnected (its contexts go with the connection).
    fn kill(mut self) {
        if let Some(w) = self.death_watch.take() {
            w.abort();
        }
        if let Some(pid) = self.pid() {
            launch::kill_tree(pid);
        }
        self.inner = None;
        self.abort_tasks();
        self.remove_profile();
    }

    fn remove_profile(&mut self) {
        if let Origin::Local { temp_dir, .. } = &mut self.origin {
            if let Some(dir) = temp_dir.take() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove the chromium profile");
                }
            }
        }
    }

    fn abort_tasks(&mut self) {
        for t in self.crash_watch.take().into_iter().chain(self.handler.take()).chain(self.death_watch.take()).chain(self.internals_watch.take()) {
            t.abort();
        }
        for (_, tab) in self.tabs.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            for t in &tab.tasks {
                t.abort();
            }
        }
    }
}

impl Drop for Chromium {
    /// A panic or an early `?` must not leave Chromium running: kill the whole process tree
    /// synchronously. After a normal [`Chromium::close`] there is nothing left to do.
    fn drop(&mut self) {
        if self.inner.is_some() {
            if let Some(pid) = self.pid() {
                tracing::warn!(pid, "browser dropped without close(); killing chromium");
                launch::kill_tree(pid);
            }
        }
        self.abort_tasks();
        self.remove_profile();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenarios share one browser between concurrent tasks (`Arc<Browser>` + `tokio::spawn`).
    #[test]
    fn browser_and_its_futures_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Browser>();
        fn spawnable(b: Arc<Browser>) {
            tokio::spawn(async move {
                let tab = b.open_tab("http://127.0.0.1/", Vec::new()).await?;
                b.click_text(tab, "Live Stream").await?;
                b.internals_dumps().await.map(|_| ())
            });
        }
        let _ = spawnable;
    }
}
