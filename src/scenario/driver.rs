//! The driver a scenario uses: operations users perform (start an agent session, open a viewer
//! tab, close it, stop the session), each recorded on the timeline, and checks of named
//! invariants against the correlated state.
//!
//! Why one file of over 400 lines: every operation records itself through the same bookkeeping (op,
//! check, failure moment) that the reports read.

use crate::browser::viewers::{ViewerFacts, ViewerFold};
use crate::browser::Browser;
use crate::config::Target;
use crate::correlate::{self, Row};
use crate::report::ArtifactDir;
use crate::sut::control::{Service, ServiceControl};
use crate::sut::helix::HelixClient;
use crate::sut::monitor::{Monitor, ServerState};
use crate::timeline::{now_ms, Event, OpPhase, TabId, Timeline};
use crate::verdict::InvariantResult;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{op}: {detail}")]
pub struct OpError {
    pub op: String,
    pub detail: String,
}

pub struct TabRecord {
    pub id: TabId,
    pub url: String,
    pub open: bool,
    pub screenshot: Option<String>,
}

/// The scenario's hands and memory. Its clients are open to the scenarios; what it records
/// (operations, results, the failure's moment, tabs, sessions) only changes through its methods,
/// so the records a report reads are the ones the operations wrote.
pub struct Driver {
    pub timeline: Timeline,
    /// Shared so an operation's future can hold it while the driver records the operation.
    pub browser: std::sync::Arc<Browser>,
    pub helix: HelixClient,
    pub monitor: Monitor,
    pub target: Target,
    pub artifacts: ArtifactDir,
    /// Agent sessions this run created (stopped at cleanup whatever happens).
    created: Vec<String>,
    /// Agent sessions given with `--session`, used in order before creating any; never stopped.
    given: Vec<String>,
    given_next: usize,
    tabs: Vec<TabRecord>,
    results: Vec<InvariantResult>,
    current_op: Option<String>,
    failed_op: Option<String>,
    /// A random walk that broke: how many operations reproduce it (its minimal `--ops`).
    broke_after_ops: Option<usize>,
    /// Correlation table and server state when the first invariant failed.
    state_at_failure: Option<serde_json::Value>,
    /// Where this scenario's tabs start in `tabs` (the run's earlier scenarios' come before).
    scenario_tabs_from: usize,
    /// Prefix for invariant names, e.g. `two-tabs/`.
    phase: String,
    /// How to restart the target's services, where the target has a way.
    services: Option<std::sync::Arc<dyn ServiceControl>>,
    /// The driver's keyboard (what it holds in each tab; every key on the timeline).
    pub keyboard: super::input_probe::Keyboard,
    /// The viewers, folded as the timeline grows (the cursor says how far).
    viewer_fold: std::sync::Arc<std::sync::Mutex<(crate::timeline::Cursor, ViewerFold)>>,
    /// Keeps the fold current while the scenario waits (a hold of minutes): a cursor left
    /// behind would keep everything since in the timeline's memory.
    _folding: FoldTask,
    /// The webrtc-internals dumps on disk (a checkpoint at most, then the final one).
    internals_dumps: std::sync::Mutex<crate::report::dumps::DumpLog>,
    /// The synthetic viewers that are mounted, by their tab id.
    synthetic: std::collections::HashMap<TabId, crate::synthetic::SyntheticViewer>,
}

/// The background fold of the driver's viewers; it ends with the driver.
struct FoldTask(tokio::task::JoinHandle<()>);

impl Drop for FoldTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the background fold catches up, at most.
const FOLD_EVERY: Duration = Duration::from_millis(250);

impl FoldTask {
    fn start(timeline: Timeline, fold: std::sync::Arc<std::sync::Mutex<(crate::timeline::Cursor, ViewerFold)>>) -> Self {
        FoldTask(tokio::spawn(async move {
            let mut changed = timeline.changed();
            while changed.changed().await.is_ok() {
                {
                    let mut guard = fold.lock().unwrap_or_else(|e| e.into_inner());
                    let (cursor, fold) = &mut *guard;
                    timeline.take_new(cursor, |o| fold.ingest(o));
                }
                tokio::time::sleep(FOLD_EVERY).await;
            }
        }))
    }
}

impl Driver {
    /// `services`: how to restart the target's services, where it has a way.
    pub fn new(
        timeline: Timeline,
        browser: Browser,
        helix: HelixClient,
        monitor: Monitor,
        target: Target,
        artifacts: ArtifactDir,
        services: Option<std::sync::Arc<dyn ServiceControl>>,
    ) -> Self {
        let viewer_fold = std::sync::Arc::new(std::sync::Mutex::new((timeline.cursor(), ViewerFold::new())));
        let folding = FoldTask::start(timeline.clone(), viewer_fold.clone());
        let browser = std::sync::Arc::new(browser);
        Driver {
            keyboard: super::input_probe::Keyboard::new(browser.clone(), timeline.clone()),
            timeline,
            browser,
            helix,
            monitor,
            target,
            artifacts,
            created: Vec::new(),
            given: Vec::new(),
            given_next: 0,
            tabs: Vec::new(),
            results: Vec::new(),
            current_op: None,
            failed_op: None,
            broke_after_ops: None,
            state_at_failure: None,
            scenario_tabs_from: 0,
            phase: String::new(),
            services,
            viewer_fold,
            _folding: folding,
            internals_dumps: std::sync::Mutex::new(crate::report::dumps::DumpLog::new(std::time::Instant::now())),
            synthetic: std::collections::HashMap::new(),
        }
    }

    /// Start a phase of a scenario: invariant names get its prefix and given sessions are
    /// used again from the first.
    pub fn begin_phase(&mut self, name: &str) {
        self.phase = format!("{name}/");
        self.given_next = 0;
    }

    /// Use these agent sessions (`--session`), in order, before creating any.
    pub fn with_given_sessions(mut self, given: Vec<String>) -> Self {
        self.given = given;
        self
    }

    /// Name the checks that follow `label/…` (an empty label: no prefix). Unlike
    /// [`Driver::begin_phase`], given sessions are not handed out again.
    pub fn set_phase(&mut self, label: &str) {
        self.phase = if label.is_empty() { String::new() } else { format!("{label}/") };
    }

    /// Run `f` with checks named `label/…`, then go back to the phase before.
    pub fn in_phase<T>(&mut self, label: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::take(&mut self.phase);
        self.set_phase(label);
        let out = f(self);
        self.phase = saved;
        out
    }

    /// Mark `op` as the operation the scenario failed in, unless one is marked already.
    pub fn note_failed_op(&mut self, op: &str) {
        self.failed_op.get_or_insert_with(|| op.to_string());
    }

    /// Record that the scenario broke after `ops` operations of a random walk.
    pub fn note_broke_after(&mut self, ops: usize) {
        self.broke_after_ops.get_or_insert(ops);
    }

    /// How many operations of a random walk reproduce its failure, once it broke.
    pub fn broke_after_ops(&self) -> Option<usize> {
        self.broke_after_ops
    }

    /// The checks of this scenario so far.
    pub fn results(&self) -> &[InvariantResult] {
        &self.results
    }

    /// The operation running when the first check failed (or the one noted as failed).
    pub fn failed_op(&self) -> Option<&str> {
        self.failed_op.as_deref()
    }

    /// The correlation table and server state when the first check failed.
    pub fn state_at_failure(&self) -> Option<&serde_json::Value> {
        self.state_at_failure.as_ref()
    }

    /// Every tab the run opened, closed ones included.
    pub fn tabs(&self) -> &[TabRecord] {
        &self.tabs
    }

    /// Whether this run created agent session `ses` (and so may stop it).
    pub fn created_here(&self, ses: &str) -> bool {
        self.created.iter().any(|c| c == ses)
    }

    /// Whether `ses` was given with `--session` (never stopped by the run).
    pub fn is_given(&self, ses: &str) -> bool {
        self.given.iter().any(|g| g == ses)
    }

    /// Start a scenario afresh: results, failure markers and phase are per scenario; given
    /// sessions can be used again.
    pub fn begin_scenario(&mut self) {
        self.results.clear();
        self.failed_op = None;
        self.broke_after_ops = None;
        self.state_at_failure = None;
        self.scenario_tabs_from = self.tabs.len();
        self.phase.clear();
        self.given_next = 0;
    }

    /// Run one operation, recording its start and outcome on the timeline.
    pub async fn op<T, E: std::fmt::Display>(&mut self, name: impl Into<String>, fut: impl std::future::Future<Output = Result<T, E>>) -> Result<T, OpError> {
        let name = name.into();
        tracing::info!(op = %name, "start");
        self.timeline.push(Event::Op { name: name.clone(), phase: OpPhase::Start });
        self.current_op = Some(name.clone());
        match fut.await {
            Ok(v) => {
                self.timeline.push(Event::Op { name: name.clone(), phase: OpPhase::Ok });
                Ok(v)
            }
            Err(e) => {
                let detail = e.to_string();
                self.timeline.push(Event::Op { name: name.clone(), phase: OpPhase::Failed { error: detail.clone() } });
                Err(OpError { op: name, detail })
            }
        }
    }

    /// An agent session for the scenario: the next one given with `--session`, else a new one.
    pub async fn create_session(&mut self) -> Result<String, OpError> {
        if let Some(ses) = self.given.get(self.given_next).cloned() {
            self.given_next += 1;
            self.timeline.push(Event::Op { name: format!("use given agent session {ses}"), phase: OpPhase::Ok });
            return Ok(ses);
        }
        let helix = self.helix.clone();
        let ses = self.op("create agent session", helix.create_agent_session("helix-e2e")).await?;
        self.created.push(ses.clone());
        self.monitor.watch_session(&ses);
        Ok(ses)
    }

    fn cookies(&self) -> Vec<(String, String)> {
        self.helix.token().map(|t| vec![("access_token".to_string(), t.to_string())]).unwrap_or_default()
    }

    /// Open `url` in a new tab and click `clicks` (button texts) in order.
    async fn open(&mut self, what: String, url: String, clicks: Vec<String>) -> Result<TabId, OpError> {
        let cookies = self.cookies();
        let browser = self.browser.clone();
        let fut = async {
            let tab = browser.open_tab(&url, cookies).await?;
            for text in &clicks {
                browser.click_text(tab, text).await?;
            }
            Ok::<_, crate::browser::BrowserError>(tab)
        };
        let tab = self.op(what, fut).await?;
        self.tabs.push(TabRecord { id: tab, url, open: true, screenshot: None });
        Ok(tab)
    }

    /// Open a tab (its own browser context) on the viewer of one agent session.
    pub async fn open_viewer(&mut self, ses: &str) -> Result<TabId, OpError> {
        let url = self.target.viewer.session_page(&self.target.viewer_base, ses);
        let clicks = self.target.viewer.clicks.clone();
        self.open(format!("open viewer tab for {ses}"), url, clicks).await
    }

    /// Open one page that shows several viewers at once (the task board).
    pub async fn open_board(&mut self, sessions: &[String]) -> Result<TabId, OpError> {
        let url = self
            .target
            .viewer
            .board_page(&self.target.viewer_base, "e2e", sessions)
            .ok_or_else(|| OpError { op: "open board page".into(), detail: "the target defines no board_url".into() })?;
        // Task dialogs mount their viewers at once: nothing to click.
        self.open(format!("open board page with {}", sessions.join(", ")), url, Vec::new()).await
    }

    /// Open one viewer tab per agent session at once (concurrently, as users with several
    /// windows do); one operation on the timeline, tab ids in the order of `sessions`.
    pub async fn open_viewers(&mut self, sessions: &[String]) -> Result<Vec<TabId>, OpError> {
        let cookies = self.cookies();
        let browser = self.browser.clone();
        let pages: Vec<(String, Vec<String>)> =
            sessions.iter().map(|s| (self.target.viewer.session_page(&self.target.viewer_base, s), self.target.viewer.clicks.clone())).collect();
        let opens = pages.iter().map(|(url, clicks)| {
            let (browser, cookies) = (browser.clone(), cookies.clone());
            async move {
                let tab = browser.open_tab(url, cookies).await?;
                for text in clicks {
                    browser.click_text(tab, text).await?;
                }
                Ok::<_, crate::browser::BrowserError>(tab)
            }
        });
        let all = async { futures::future::join_all(opens).await.into_iter().collect::<Result<Vec<_>, _>>() };
        let tabs = self.op(format!("open viewer tabs for {} at once", sessions.join(", ")), all).await?;
        for (tab, (url, _)) in tabs.iter().zip(pages) {
            self.tabs.push(TabRecord { id: *tab, url, open: true, screenshot: None });
        }
        Ok(tabs)
    }

    /// Mount one synthetic viewer per agent session at once, each under a tab id of the run
    /// (one operation on the timeline, ids in the order of `sessions`). They connect in the
    /// background, as a loaded page does; `close_tab` unmounts them.
    pub fn open_synthetic(&mut self, sessions: &[String], decode: crate::timeline::SyntheticDecode) -> Result<Vec<TabId>, OpError> {
        let name = format!("open synthetic viewers for {}", sessions.join(", "));
        let Some(token) = self.helix.token().map(str::to_string) else {
            let detail = "no login token: a synthetic viewer takes the session as the page does, from the login".to_string();
            self.timeline.push(Event::Op { name: name.clone(), phase: OpPhase::Failed { error: detail.clone() } });
            return Err(OpError { op: name, detail });
        };
        self.timeline.push(Event::Op { name: name.clone(), phase: OpPhase::Start });
        let mut tabs = Vec::new();
        for ses in sessions {
            let tab = self.browser.take_tab_id();
            let cfg = crate::synthetic::ViewerConfig { tab, helix_url: self.helix.base().to_string(), token: token.clone(), session: ses.clone(), decode };
            let url = format!("synthetic:{}", self.target.viewer.session_page(&self.target.helix_url, ses));
            self.synthetic.insert(tab, crate::synthetic::SyntheticViewer::start(cfg, self.timeline.clone()));
            self.tabs.push(TabRecord { id: tab, url, open: true, screenshot: None });
            tabs.push(tab);
        }
        self.timeline.push(Event::Op { name, phase: OpPhase::Ok });
        Ok(tabs)
    }

    /// Reload a tab as a user presses F5, then click the viewer's buttons again (the page
    /// starts over with a new viewer and a new `client_unique_id`).
    pub async fn reload_tab(&mut self, tab: TabId) -> Result<(), OpError> {
        self.snapshot_internals(&format!("before-reload-tab-{tab}")).await;
        let browser = self.browser.clone();
        let clicks = self.target.viewer.clicks.clone();
        let fut = async {
            browser.reload(tab).await?;
            for text in &clicks {
                browser.click_text(tab, text).await?;
            }
            Ok::<_, crate::browser::BrowserError>(())
        };
        self.op(format!("reload tab {tab}"), fut).await
    }

    /// Press `Reconnect` as a user would: the visible, enabled control of that name — the error
    /// alert's button when the viewer shows an error (it runs `connect()` alone), the toolbar's
    /// icon while streaming (`disconnect()` then `connect()`), waiting a while for one to be
    /// pressable. The target's viewer spec may name the control instead.
    pub async fn reconnect(&mut self, tab: TabId) -> Result<(), OpError> {
        self.snapshot_internals(&format!("before-reconnect-tab-{tab}")).await;
        let browser = self.browser.clone();
        let control = self.target.viewer.reconnect_control();
        self.op(format!("reconnect tab {tab}"), async move { browser.press(tab, &control).await }).await
    }

    /// Press (`down`: after a click on the video, which gives the viewer the focus) or release
    /// Shift in a tab, as a user holding it across whatever comes next.
    pub async fn shift(&mut self, tab: TabId, down: bool) -> Result<(), OpError> {
        let (browser, keyboard, selector) = (self.browser.clone(), self.keyboard.clone(), self.target.viewer.video_selector.clone());
        let name = format!("{} Shift in tab {tab}", if down { "press" } else { "release" });
        self.op(name, async move {
            if down {
                browser.video_input(tab, &selector, crate::browser::VideoInput::Focus).await?;
            }
            keyboard.key(tab, crate::frames::input::SHIFT, down).await
        })
        .await
    }

    /// Leave every tab alone for a while (a user watching, or away); `tick` sees the driver
    /// every quarter second meanwhile (to keep watching the servers).
    pub async fn keep_idle(&mut self, how_long: Duration, mut tick: impl FnMut(&Driver)) {
        let name = format!("keep tabs idle for {:.1} s", how_long.as_secs_f64());
        self.timeline.push(Event::Op { name: name.clone(), phase: OpPhase::Start });
        self.current_op = Some(name.clone());
        let end = tokio::time::Instant::now() + how_long;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250).min(end - tokio::time::Instant::now())).await;
            tick(self);
        }
        self.timeline.push(Event::Op { name, phase: OpPhase::Ok });
    }

    pub async fn close_tab(&mut self, tab: TabId) -> Result<(), OpError> {
        if let Some(viewer) = self.synthetic.remove(&tab) {
            // Named like a tab's close: the detectors excuse what follows a `close tab N`.
            self.op(format!("close tab {tab}"), async move {
                viewer.close().await;
                Ok::<_, OpError>(())
            })
            .await?;
            if let Some(t) = self.tabs.iter_mut().find(|t| t.id == tab) {
                t.open = false;
            }
            return Ok(());
        }
        self.snapshot_internals(&format!("before-close-tab-{tab}")).await;
        let browser = self.browser.clone();
        self.op(format!("close tab {tab}"), browser.close_tab(tab)).await?;
        if let Some(t) = self.tabs.iter_mut().find(|t| t.id == tab) {
            t.open = false;
        }
        Ok(())
    }

    /// Make a tab vanish for the server (F18's trigger): its connections are cut without a
    /// close frame ([`crate::browser::Browser::cut_tab`]). The driver's own act: the viewer's
    /// end is excused like a close. The tab stays open, cut off, until the cleanup closes it.
    pub async fn cut_tab(&mut self, tab: TabId) -> Result<(), OpError> {
        let browser = self.browser.clone();
        self.op(format!("cut tab {tab}"), browser.cut_tab(tab)).await
    }

    /// Stop an agent session if this run created it; a given one is left running.
    pub async fn finish_session(&mut self, ses: &str) -> Result<(), OpError> {
        if self.created.iter().any(|c| c == ses) {
            self.stop_session(ses).await?;
        }
        Ok(())
    }

    pub async fn stop_session(&mut self, ses: &str) -> Result<(), OpError> {
        let helix = self.helix.clone();
        self.op(format!("stop agent session {ses}"), helix.stop_agent_session(ses)).await?;
        self.created.retain(|s| s != ses);
        self.monitor.unwatch_session(ses);
        Ok(())
    }

    /// Restart a service the way its operators do (`docker compose restart`, or a kill and
    /// respawn of the stand-in's process); returns once it is ready again.
    pub async fn restart_service(&mut self, service: Service) -> Result<(), OpError> {
        let Some(control) = self.services.clone() else {
            return Err(OpError {
                op: format!("restart {service}"),
                detail: format!("target {} names no way to restart services (a [containers] table, or the embedded stack)", self.target.name),
            });
        };
        self.snapshot_internals(&format!("before-restart-{service}")).await;
        self.op(format!("restart {service}"), control.restart(service)).await
    }

    /// Every viewer observed so far.
    pub fn viewers(&self) -> Vec<ViewerFacts> {
        self.with_viewers(ViewerFold::viewers)
    }

    /// Read the viewers after taking in what the timeline gained since the last read.
    fn with_viewers<T>(&self, read: impl FnOnce(&ViewerFold) -> T) -> T {
        let mut guard = self.viewer_fold.lock().unwrap_or_else(|e| e.into_inner());
        let (cursor, fold) = &mut *guard;
        self.timeline.take_new(cursor, |o| fold.ingest(o));
        read(fold)
    }

    /// Those of `tabs` whose current viewer has shown no frame yet; `None` when all have.
    pub fn not_streaming(&self, tabs: &[TabId]) -> Option<Vec<TabId>> {
        let viewers = self.current_viewers(tabs);
        let waiting: Vec<TabId> = tabs.iter().filter(|t| !viewers.iter().any(|v| v.tab == **t && !v.frames.is_empty())).copied().collect();
        (!waiting.is_empty()).then_some(waiting)
    }

    /// The current viewers of some tabs: per `client_unique_id`, the latest connection, carrying
    /// the errors of its earlier attempts (a viewer that reconnected keeps its history).
    pub fn current_viewers(&self, tabs: &[TabId]) -> Vec<ViewerFacts> {
        let mut out: Vec<ViewerFacts> = Vec::new();
        for v in self.with_viewers(|f| f.viewers_of(tabs)) {
            match out.iter_mut().find(|o| o.tab == v.tab && o.client_unique_id.is_some() && o.client_unique_id == v.client_unique_id) {
                Some(prev) => {
                    let mut errors = std::mem::take(&mut prev.errors);
                    errors.extend(v.errors.iter().cloned());
                    *prev = v;
                    prev.errors = errors;
                }
                None => out.push(v),
            }
        }
        out
    }

    pub fn server_state(&self) -> ServerState {
        self.monitor.latest()
    }

    pub fn rows(&self, tabs: &[TabId]) -> Vec<Row> {
        correlate::table(&self.current_viewers(tabs), &self.server_state(), now_ms())
    }

    /// Wait until `pred` holds for the rows of `tabs`, or the deadline passes. Never an error:
    /// the invariants checked afterwards say what did not happen.
    pub async fn wait_until(&mut self, what: &str, tabs: &[TabId], deadline: Duration, pred: impl Fn(&[Row], &ServerState) -> bool) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let rows = self.rows(tabs);
            if pred(&rows, &self.server_state()) {
                tracing::info!("{what}: reached");
                return true;
            }
            if tokio::time::Instant::now() >= end {
                tracing::warn!("{what}: not reached within {deadline:?}\n{}", correlate::render(&rows));
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Record an invariant's result; the first failure also keeps the correlated state of that
    /// moment for the report.
    pub fn check(&mut self, mut r: InvariantResult) {
        r.name = format!("{}{}", self.phase, r.name);
        if r.passed {
            tracing::info!("PASS {}: {}", r.name, r.message);
        } else {
            tracing::warn!("FAIL {}: {}", r.name, r.message);
            if self.failed_op.is_none() {
                self.failed_op = self.current_op.clone();
                self.state_at_failure = Some(self.state_at(&r));
            }
        }
        self.results.push(r);
    }

    /// The state a reader of this failure needs: the rows of this scenario's tabs that were open
    /// (and of any tab the failure names, closed or not), the named tabs first, each row saying
    /// whether its tab was open; earlier scenarios' tabs and long-closed ones would bury it.
    fn state_at(&self, failed: &InvariantResult) -> serde_json::Value {
        let mine = &self.tabs[self.scenario_tabs_from.min(self.tabs.len())..];
        let (named, tabs) = failure_scope(mine, &failed.message);
        let mut rows = self.rows(&tabs);
        rows.sort_by_key(|r| tabs.iter().position(|t| *t == r.tab).unwrap_or(usize::MAX));
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("tab_open".into(), mine.iter().any(|m| m.id == r.tab && m.open).into());
                }
                v
            })
            .collect();
        serde_json::json!({
            "invariant": failed.name,
            "failing_tabs": named,
            "correlation": rows,
            "servers": self.server_state(),
        })
    }

    pub async fn screenshot(&mut self, tab: TabId, label: &str) {
        if self.synthetic.contains_key(&tab) {
            return;
        }
        match self.browser.screenshot(tab).await {
            Ok(png) => {
                let rel = format!("screenshots/tab-{tab}-{label}.png");
                if self.artifacts.write(&rel, &png).is_ok() {
                    if let Some(t) = self.tabs.iter_mut().find(|t| t.id == tab) {
                        t.screenshot = Some(rel);
                    }
                }
            }
            Err(e) => tracing::warn!("screenshot of tab {tab} failed: {e}"),
        }
    }

    /// Screenshot every `<video>` of a tab (`count` of them) and decode their stamps; the PNGs
    /// land in `screenshots/` for people and for tests that check them independently.
    pub async fn screenshot_videos(&mut self, tab: TabId, count: usize, label: &str) -> Vec<Option<crate::frames::stamp::Stamp>> {
        let mut stamps = Vec::new();
        // A synthetic viewer has no page to screenshot; its frame samples are on the timeline.
        if self.synthetic.contains_key(&tab) {
            return vec![None; count];
        }
        for i in 0..count {
            match self.browser.screenshot_video(tab, i).await {
                Ok(png) => {
                    stamps.push(crate::frames::analysis::stamp_from_png(&png));
                    let _ = self.artifacts.write(&format!("screenshots/tab-{tab}-video-{i}-{label}.png"), &png);
                }
                Err(e) => {
                    tracing::warn!("screenshot of tab {tab} video {i} failed: {e}");
                    stamps.push(None);
                }
            }
        }
        stamps
    }

    /// Before a step that changes peer connections: a checkpoint of the webrtc-internals store,
    /// when one is due (something new, and not too soon after the last; see `report::dumps`).
    /// The store keeps closed connections, so this is insurance for a run that never reaches
    /// [`Driver::final_internals`], not the only copy.
    pub async fn snapshot_internals(&self, label: &str) {
        if !self.dumps().may_be_due(std::time::Instant::now()) {
            return;
        }
        let digest = match self.browser.internals_digest().await {
            Ok(d) => d,
            Err(e) => return tracing::warn!("webrtc-internals digest failed: {e}"),
        };
        if !self.dumps().checkpoint_due(&digest, std::time::Instant::now()) {
            return;
        }
        match self.browser.internals_dumps().await {
            Ok(dump) => {
                let written = self.dumps().write_checkpoint(&self.artifacts, label, &dump, &self.timeline.redactor(), std::time::Instant::now());
                match written {
                    Ok(_) => tracing::info!(label, connections = digest.len(), "webrtc-internals checkpoint written"),
                    Err(e) => tracing::warn!("webrtc-internals checkpoint: {e}"),
                }
            }
            Err(e) => tracing::warn!("webrtc-internals snapshot failed: {e}"),
        }
    }

    /// The run's webrtc-internals record: every peer connection the browser had, as `final.json`
    /// (it replaces the checkpoint).
    pub async fn final_internals(&self) {
        let t0 = std::time::Instant::now();
        match self.browser.internals_dumps().await {
            Ok(dump) => {
                let read_ms = t0.elapsed().as_millis() as u64;
                match self.dumps().write_final(&self.artifacts, &dump, &self.timeline.redactor()) {
                    Ok(_) => tracing::info!(read_ms, total_ms = t0.elapsed().as_millis() as u64, "webrtc-internals final dump written"),
                    Err(e) => tracing::warn!("webrtc-internals final dump: {e}"),
                }
            }
            Err(e) => tracing::warn!("webrtc-internals final dump failed: {e}"),
        }
    }

    fn dumps(&self) -> std::sync::MutexGuard<'_, crate::report::dumps::DumpLog> {
        self.internals_dumps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stop every agent session this run created and close every open tab (best effort; used on
    /// success, failure and interruption alike).
    pub async fn cleanup(&mut self) {
        for tab in self.tabs.iter().filter(|t| t.open).map(|t| t.id).collect::<Vec<_>>() {
            let _ = self.close_tab(tab).await;
        }
        for ses in self.created.clone() {
            if let Err(e) = self.stop_session(&ses).await {
                tracing::warn!("cleanup: {e}");
            }
        }
    }
}

/// Of a scenario's tabs, the ones a failure's state shows: those its message names (open or
/// closed), then the others open at that moment, in the order they were opened. Returns (named,
/// shown).
fn failure_scope(scenario_tabs: &[TabRecord], message: &str) -> (Vec<TabId>, Vec<TabId>) {
    let named: Vec<TabId> = crate::report::digest::tabs_named(message).into_iter().filter(|t| scenario_tabs.iter().any(|m| m.id == *t)).collect();
    let mut shown = named.clone();
    shown.extend(scenario_tabs.iter().filter(|t| t.open && !named.contains(&t.id)).map(|t| t.id));
    (named, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(id: TabId, open: bool) -> TabRecord {
        TabRecord { id, url: String::new(), open, screenshot: None }
    }

    #[test]
    fn a_failures_state_shows_the_failing_tab_first_then_the_open_ones() {
        let mine = [tab(4, false), tab(5, true), tab(6, true), tab(7, false)];
        assert_eq!(failure_scope(&mine, "tab 6 shows lobby B"), (vec![6], vec![6, 5]));
        // A closed tab the failure names stays; a tab of another scenario named does not.
        assert_eq!(failure_scope(&mine, "tab 7 left a zombie streamer; tab 2 too"), (vec![7], vec![7, 5, 6]));
        assert_eq!(failure_scope(&mine, "lobby count 0"), (vec![], vec![5, 6]));
    }
}
