//! Real Chromium tabs as the users of the system under test.
//!
//! The bugs this project hunts (two viewers fighting over one lobby, a stream that connects but
//! shows nothing, a reconnect that never recovers) only show in a real browser running the real
//! viewer page. This module launches Chromium, opens each tab in its own browser context (so tabs
//! share no cookies and each is a distinct user), installs an in-page probe before the page's own
//! scripts, and turns everything the probe reports into [`crate::timeline`] events. It also keeps
//! a `chrome://webrtc-internals` tab open for the browser's own view of every peer connection.
//!
//! Why one file of over 400 lines: it is under 400 lines without its tests.

mod fleet;
mod internals;
mod launch;
mod probe;
mod remote;
mod tab;
pub mod viewers;

use crate::timeline::{Casualty, Event, TabId, Timeline};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{CreateTargetParams, EventTargetCrashed, TargetId};
use chromiumoxide::Page;
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;

pub use fleet::Browser;
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
    /// Id of the first tab this browser opens. A run that restarts the browser continues the
    /// numbering so tab ids stay unique in the timeline.
    pub first_tab: TabId,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        let executable = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        BrowserOptions { executable, headless: true, window: (1280, 800), user_data_dir: None, extra_args: Vec::new(), first_tab: 0 }
    }
}

/// What the browser layer knows about deaths, shared with its watchers: once the browser or a
/// tab is dead, operations on it fail at once instead of waiting out DevTools deadlines on a
/// connection nobody will answer — those already waiting too ([`Health::while_alive`]).
#[derive(Default)]
struct Health {
    browser: OnceLock<String>,
    /// The webrtc-internals page's renderer crashed.
    internals: OnceLock<String>,
    tabs: Mutex<HashMap<TabId, String>>,
    /// Bumped at every death, so calls in flight learn of it.
    deaths: tokio::sync::watch::Sender<u64>,
}

impl Health {
    fn tab_dead(&self, tab: TabId, why: String) {
        self.tabs.lock().unwrap_or_else(|e| e.into_inner()).entry(tab).or_insert(why);
        self.deaths.send_modify(|n| *n += 1);
    }

    fn browser_dead(&self, why: String) {
        let _ = self.browser.set(why);
        self.deaths.send_modify(|n| *n += 1);
    }

    /// `fut`, unless the browser or `tab` dies first: then the death's error at once. A call
    /// that started just before a death (a screenshot of a tab whose renderer hung) would
    /// otherwise wait out its whole deadline, and the run with it.
    async fn while_alive<T>(&self, tab: Option<TabId>, fut: impl Future<Output = Result<T, BrowserError>>) -> Result<T, BrowserError> {
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

    fn check(&self, tab: Option<TabId>) -> Result<(), BrowserError> {
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

/// One open tab: its page, its private browser context and the tasks forwarding its events.
struct TabState {
    page: Page,
    context: BrowserContextId,
    tasks: Vec<JoinHandle<()>>,
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
    async fn attach(browser: chromiumoxide::Browser, handler: JoinHandle<()>, origin: Origin, timeline: Timeline) -> Result<Chromium, BrowserError> {
        let internals = cdp("open webrtc-internals", browser.new_page(CreateTargetParams::new(internals::INTERNALS_URL))).await;
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
            tabs: Arc::default(),
            targets: Arc::default(),
            timeline,
            origin,
        };
        this.internals = Some(internals?);
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
            (Some(_), Origin::Remote { .. }) => match self.internals.take() {
                Some(page) if self.health.check(None).is_ok() => cdp("close webrtc-internals", page.close()).await,
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

/// Watches a remote browser (see `remote::watch`). When it is gone, the timeline says so with
/// its endpoint — B2, as for a local browser's death: the tabs on it are lost to the run, which
/// is not the stack's doing — and every DevTools call on it fails at once.
async fn watch_remote(endpoint: RemoteBrowser, url: String, page: Page, handler: tokio::task::AbortHandle, health: Arc<Health>, timeline: Timeline) {
    let why = remote::watch(&endpoint, &page).await;
    let detail = format!("Chromium at {url} is lost: {why}");
    tracing::error!("{detail}");
    timeline.push(Event::Died { what: Casualty::Browser, detail: detail.clone() });
    health.browser_dead(detail);
    handler.abort();
}

/// Watches the browser process. When it dies, every DevTools call fails at once (the handler
/// goes, and with it every pending command's channel) and the timeline says how it died.
async fn watch_process(pid: u32, handler: tokio::task::AbortHandle, health: Arc<Health>, timeline: Timeline) {
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
async fn watch_answers(page: Page, tab: Option<TabId>, health: Arc<Health>, timeline: Timeline) {
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
