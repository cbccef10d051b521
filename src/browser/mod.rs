//! Real Chromium tabs as the users of the system under test.
//!
//! The bugs this project hunts (two viewers fighting over one lobby, a stream that connects but
//! shows nothing, a reconnect that never recovers) only show in a real browser running the real
//! viewer page. This module launches Chromium, opens each tab in its own browser context (so tabs
//! share no cookies and each is a distinct user), installs an in-page probe before the page's own
//! scripts, and turns everything the probe reports into [`crate::timeline`] events. It also keeps
//! a `chrome://webrtc-internals` tab open for the browser's own view of every peer connection.

mod internals;
mod launch;
mod probe;
mod tab;
pub mod viewers;

use crate::timeline::{Event, TabId, Timeline};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{CreateTargetParams, EventTargetCrashed, TargetId};
use chromiumoxide::Page;
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

pub use internals::{peer_connections_of_tab, tab_marker, validate_dump};
pub use tab::tagged_url;
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
        let executable = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        BrowserOptions {
            executable,
            headless: true,
            window: (1280, 800),
            user_data_dir: None,
            extra_args: Vec::new(),
            first_tab: 0,
        }
    }
}

/// One open tab: its page, its private browser context and the tasks forwarding its events.
struct TabState {
    page: Page,
    context: BrowserContextId,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Browser {
    inner: Option<chromiumoxide::Browser>,
    handler: Option<JoinHandle<()>>,
    crash_watch: Option<JoinHandle<()>>,
    /// The `chrome://webrtc-internals` page, kept open for the whole life of the browser.
    internals: Option<Page>,
    tabs: Arc<Mutex<HashMap<TabId, Arc<TabState>>>>,
    /// Target id → tab, so a crash reported at browser level names the tab.
    targets: Arc<Mutex<HashMap<TargetId, TabId>>>,
    next_tab: Mutex<TabId>,
    timeline: Timeline,
    pid: u32,
    /// Removed on close when the browser created it.
    temp_dir: Option<PathBuf>,
}

impl Browser {
    /// Starts Chromium with the flags this machine needs, the handler task, the crash watcher
    /// and the webrtc-internals tab (which must exist before any viewer tab: Chromium records
    /// peer-connection update logs only while an internals page is open).
    pub async fn launch(opts: BrowserOptions, timeline: Timeline) -> Result<Browser, BrowserError> {
        let launch::Launched { browser, handler, pid, temp_dir } = launch::start(&opts).await?;
        let internals = cdp(
            "open webrtc-internals",
            browser.new_page(CreateTargetParams::new("chrome://webrtc-internals/?statsInterval=1000")),
        )
        .await;
        // From here on, Drop cleans up whatever fails.
        let mut this = Browser {
            inner: Some(browser),
            handler: Some(handler),
            crash_watch: None,
            internals: None,
            tabs: Arc::default(),
            targets: Arc::default(),
            next_tab: Mutex::new(opts.first_tab),
            timeline,
            pid,
            temp_dir,
        };
        this.internals = Some(internals?);
        this.crash_watch = Some(this.watch_crashes().await?);
        tracing::info!(pid, "chromium launched");
        Ok(this)
    }

    /// Process id of the Chromium browser process (for `/proc/<pid>/cmdline` checks).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn browser(&self) -> &chromiumoxide::Browser {
        self.inner.as_ref().expect("browser used after close")
    }

    async fn watch_crashes(&self) -> Result<JoinHandle<()>, BrowserError> {
        let mut crashes =
            cdp("listen for crashes", self.browser().event_listener::<EventTargetCrashed>()).await?;
        let targets = self.targets.clone();
        let timeline = self.timeline.clone();
        Ok(tokio::spawn(async move {
            while let Some(ev) = crashes.next().await {
                let tab = targets.lock().unwrap_or_else(|e| e.into_inner()).get(&ev.target_id).copied();
                tracing::warn!(?tab, status = %ev.status, code = ev.error_code, "renderer crashed");
                timeline.push(Event::Browser {
                    tab,
                    what: format!("target crashed: {} (code {})", ev.status, ev.error_code),
                });
            }
        }))
    }

    fn tab(&self, tab: TabId) -> Result<Arc<TabState>, BrowserError> {
        self.tabs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tab)
            .cloned()
            .ok_or(BrowserError::NoSuchTab(tab))
    }

    /// Ids of the tabs currently open.
    pub fn open_tabs(&self) -> Vec<TabId> {
        let mut v: Vec<TabId> = self.tabs.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Closes every tab, then the browser, and waits for the process tree to be gone; kills it
    /// when it does not exit in time. The temporary profile is removed.
    pub async fn close(mut self) -> Result<(), BrowserError> {
        for tab in self.open_tabs() {
            if let Err(e) = self.close_tab(tab).await {
                tracing::warn!(tab, error = %e, "closing tab failed; the browser goes anyway");
            }
        }
        let result = match self.inner.take() {
            Some(browser) => launch::stop(browser, self.pid).await,
            None => Ok(()),
        };
        self.abort_tasks();
        if let Some(dir) = self.temp_dir.take() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove the chromium profile");
            }
        }
        result
    }

    fn abort_tasks(&mut self) {
        for t in self.crash_watch.take().into_iter().chain(self.handler.take()) {
            t.abort();
        }
        for (_, tab) in self.tabs.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            for t in &tab.tasks {
                t.abort();
            }
        }
    }
}

impl Drop for Browser {
    /// A panic or an early `?` must not leave Chromium running: kill the whole process tree
    /// synchronously. After a normal [`Browser::close`] there is nothing left to do.
    fn drop(&mut self) {
        if self.inner.is_some() {
            tracing::warn!(pid = self.pid, "browser dropped without close(); killing chromium");
            launch::kill_tree(self.pid);
        }
        self.abort_tasks();
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
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
                b.internals_dump().await.map(|_| ())
            });
        }
        let _ = spawnable;
    }
}
