//! Opening, driving and closing tabs.
//!
//! Every tab is its own browser context (no shared cookies, storage or renderer), so each one is
//! a separate user as far as the system under test can tell. The probe and its binding are in
//! place before the first byte of the page loads; after that the driver only listens.
//!
//! Why one file of over 400 lines: opening, pressing, input and closing share each tab's DevTools
//! session, its health and its deadlines; a split would pass that state between files.

use super::{cdp, deadline, probe, BrowserError, Chromium, TabState, NAV_DEADLINE, PROBE_BINDING, TAB_PARAM};
use crate::timeline::{Event, ProbeEvent, TabId, Timeline};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::emulation::SetFocusEmulationEnabledParams;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchMouseEventParams, DispatchMouseEventType, MouseButton,
};
use chromiumoxide::cdp::browser_protocol::network::{
    CookieParam, EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived, GetResponseBodyParams, RequestId,
};
use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, Viewport};
use chromiumoxide::cdp::browser_protocol::storage::SetCookiesParams;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::cdp::js_protocol::runtime::{
    AddBindingParams, ConsoleApiCalledType, EventBindingCalled, EventConsoleApiCalled, EventExceptionThrown, RemoteObject,
};
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// `url` with `e2e_tab=<tab>` added, keeping any fragment at the end.
/// The command line of Chromium's network service process.
const NETWORK_SERVICE: &str = "--utility-sub-type=network.mojom.NetworkService";

pub fn tagged_url(url: &str, tab: TabId) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{TAB_PARAM}={tab}{fragment}")
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    (!scheme.is_empty() && !host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Console levels worth a timeline entry; `log`/`debug` chatter of a viewer would drown it.
fn console_level(t: &ConsoleApiCalledType) -> Option<&'static str> {
    match t {
        ConsoleApiCalledType::Error => Some("error"),
        ConsoleApiCalledType::Warning => Some("warning"),
        ConsoleApiCalledType::Assert => Some("assert"),
        _ => None,
    }
}

fn remote_text(o: &RemoteObject) -> String {
    match &o.value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => o.description.clone().unwrap_or_default(),
    }
}

/// Forwards everything a page pushes (probe batches, console errors, exceptions) into the
/// timeline. Returns the tasks so closing the tab can stop them.
async fn listen(page: &Page, tab: TabId, timeline: &Timeline) -> Result<Vec<JoinHandle<()>>, BrowserError> {
    let mut bindings = cdp("listen for probe", page.event_listener::<EventBindingCalled>()).await?;
    let mut console = cdp("listen for console", page.event_listener::<EventConsoleApiCalled>()).await?;
    let mut exceptions = cdp("listen for exceptions", page.event_listener::<EventExceptionThrown>()).await?;
    let t1 = timeline.clone();
    let probe_task = tokio::spawn(async move {
        while let Some(ev) = bindings.next().await {
            if ev.name != PROBE_BINDING {
                continue;
            }
            for (at, probe) in probe::decode_batch(&ev.payload) {
                t1.push_at(at, Event::Tab { tab, probe });
            }
        }
    });
    let t2 = timeline.clone();
    let console_task = tokio::spawn(async move {
        while let Some(ev) = console.next().await {
            let Some(level) = console_level(&ev.r#type) else { continue };
            let text = ev.args.iter().map(remote_text).collect::<Vec<_>>().join(" ");
            t2.push_at(*ev.timestamp.inner(), Event::Tab { tab, probe: ProbeEvent::Console { level: level.into(), text } });
        }
    });
    let t3 = timeline.clone();
    let exception_task = tokio::spawn(async move {
        while let Some(ev) = exceptions.next().await {
            let d = &ev.exception_details;
            let detail = d.exception.as_ref().and_then(|e| e.description.clone());
            let text = match detail {
                Some(desc) => format!("{}: {desc}", d.text),
                None => d.text.clone(),
            };
            t3.push_at(*ev.timestamp.inner(), Event::Tab { tab, probe: ProbeEvent::Exception { text } });
        }
    });
    let network_task = tokio::spawn(follow_api_calls(page.clone(), tab, timeline.clone()).await?);
    Ok(vec![probe_task, console_task, exception_task, network_task])
}

/// Helix API calls worth a body on the timeline: the auto-join (its error text is only there).
fn keeps_body(path: &str, status: u16) -> bool {
    !path.starts_with("/api/v1/auth/") && (status >= 400 || path.ends_with("/auto-join-lobby"))
}

/// The longest response body kept on the timeline.
const BODY_CHARS: usize = 500;

/// Follows the page's calls to `/api/v1/...` through the browser's network events (the Network
/// domain is on in every page chromiumoxide opens) and puts each finished one on the timeline as
/// [`ProbeEvent::Http`]. The clipboard poll's successes are left out: one every 2 s per viewer,
/// and they say nothing.
async fn follow_api_calls(page: Page, tab: TabId, timeline: Timeline) -> Result<impl std::future::Future<Output = ()>, BrowserError> {
    let mut sent = cdp("listen for requests", page.event_listener::<EventRequestWillBeSent>()).await?;
    let mut answered = cdp("listen for responses", page.event_listener::<EventResponseReceived>()).await?;
    let mut finished = cdp("listen for loads", page.event_listener::<EventLoadingFinished>()).await?;
    let mut failed = cdp("listen for failed loads", page.event_listener::<EventLoadingFailed>()).await?;
    Ok(async move {
        struct Call {
            method: String,
            path: String,
            status: Option<u16>,
            /// Epoch ms = monotonic seconds × 1000 + offset, from the request's two clocks.
            offset_ms: f64,
        }
        let mut calls: HashMap<RequestId, Call> = HashMap::new();
        loop {
            tokio::select! {
                Some(ev) = sent.next() => {
                    let url = &ev.request.url;
                    let Some(path) = origin_of(url).map(|o| url[o.len()..].to_string()).filter(|p| p.starts_with("/api/v1/")) else { continue };
                    let offset_ms = ev.wall_time.inner() * 1000.0 - ev.timestamp.inner() * 1000.0;
                    calls.insert(ev.request_id.clone(), Call { method: ev.request.method.clone(), path, status: None, offset_ms });
                }
                Some(ev) = answered.next() => {
                    if let Some(c) = calls.get_mut(&ev.request_id) {
                        c.status = u16::try_from(ev.response.status).ok();
                    }
                }
                Some(ev) = finished.next() => {
                    let Some(c) = calls.remove(&ev.request_id) else { continue };
                    let status = c.status.unwrap_or(0);
                    if status < 400 && c.path.contains("/clipboard") {
                        continue;
                    }
                    let body = if keeps_body(&c.path, status) {
                        match page.execute(GetResponseBodyParams::new(ev.request_id.clone())).await {
                            Ok(r) if !r.result.base64_encoded => Some(r.result.body.chars().take(BODY_CHARS).collect()),
                            _ => None,
                        }
                    } else {
                        None
                    };
                    let at = c.offset_ms + ev.timestamp.inner() * 1000.0;
                    timeline.push_at(at, Event::Tab { tab, probe: ProbeEvent::Http { method: c.method, path: c.path, status: c.status, body, error: None } });
                }
                Some(ev) = failed.next() => {
                    let Some(c) = calls.remove(&ev.request_id) else { continue };
                    let at = c.offset_ms + ev.timestamp.inner() * 1000.0;
                    timeline.push_at(at, Event::Tab { tab, probe: ProbeEvent::Http { method: c.method, path: c.path, status: c.status, body: None, error: Some(ev.error_text.clone()) } });
                }
                else => return,
            }
        }
    })
}

/// Finds the control a user would press: by its visible text, `title`, `aria-label` or `value`
/// (exact match first, then case-insensitive containment), or by a CSS selector when `want`
/// starts with `css:`. Only what a person can see and press counts: laid out, not hidden by
/// `display`, `visibility` or an opacity near 0 on it or an ancestor, not disabled, and not
/// covered by another element at its centre. Returns its centre after scrolling it into view,
/// or why nothing qualified (so a wait that runs out can say so).
const FIND_CONTROL: &str = r#"(want) => {
  const norm = (s) => String(s || '').replace(/\s+/g, ' ').trim();
  const laidOut = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const seen = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.display === 'none' || cs.visibility === 'hidden' || parseFloat(cs.opacity) < 0.1) return false;
    }
    return true;
  };
  const enabled = (el) => !el.disabled && el.getAttribute('aria-disabled') !== 'true' && !el.closest('fieldset:disabled');
  let found;
  if (want.startsWith('css:')) {
    found = Array.from(document.querySelectorAll(want.slice(4)));
  } else {
    const sel = 'button, [role="button"], [role="switch"], [role="tab"], [role="menuitem"], a, label, input, [title], [aria-label]';
    const all = Array.from(document.querySelectorAll(sel));
    const names = (el) => [norm(el.innerText), el.getAttribute('title'), el.getAttribute('aria-label'), el.value].map(norm);
    const lower = want.toLowerCase();
    found = all.filter((el) => names(el).includes(want));
    if (found.length === 0) found = all.filter((el) => names(el).some((n) => n && n.toLowerCase().includes(lower)));
  }
  if (found.length === 0) return { why: 'no such control' };
  const visible = found.filter((el) => laidOut(el) && seen(el));
  if (visible.length === 0) return { why: found.length + ' match(es), none visible' };
  const usable = visible.filter(enabled);
  if (usable.length === 0) return { why: visible.length + ' visible match(es), all disabled' };
  for (const el of usable) {
    el.scrollIntoView({ block: 'center', inline: 'center' });
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const top = document.elementFromPoint(x, y);
    if (top && (top === el || el.contains(top))) return { x: x, y: y };
  }
  return { why: usable.length + ' usable match(es), all covered by other elements' };
}"#;

/// Points inside each visible `<video>` matching a selector where the video itself is what a
/// mouse would hit (an alert or toolbar over its centre would take the event instead).
const VIDEO_TARGETS: &str = r#"(sel) => {
  const out = [];
  const active = document.activeElement;
  for (const v of document.querySelectorAll(sel)) {
    const r = v.getBoundingClientRect();
    if (r.width < 4 || r.height < 4) continue;
    // The keyboard focus is in this video's viewer: the element holding it holds the video.
    const focused = !!active && active !== document.body && (active === v || active.contains(v));
    for (const [fx, fy] of [[0.5, 0.5], [0.25, 0.75], [0.75, 0.75], [0.25, 0.25], [0.75, 0.25]]) {
      const x = r.left + r.width * fx, y = r.top + r.height * fy;
      if (document.elementFromPoint(x, y) === v) { out.push({ x: x, y: y, focused: focused }); break; }
    }
  }
  return out;
}"#;

/// How long an action waits for its control to be visible and enabled, as a user would wait
/// for a page to settle.
const CONTROL_DEADLINE: Duration = Duration::from_secs(10);

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Found {
    At { x: f64, y: f64 },
    Not { why: String },
}

/// The n-th `<video>` in document order, in page coordinates for a clipped screenshot.
const VIDEO_RECT: &str = r#"(n) => {
  const v = document.querySelectorAll('video')[n];
  if (!v) return null;
  const r = v.getBoundingClientRect();
  return { x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height };
}"#;

#[derive(serde::Deserialize)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

#[derive(serde::Deserialize)]
struct Centre {
    x: f64,
    y: f64,
    /// The keyboard focus is already in this video's viewer.
    focused: bool,
}

/// One input action of a user on a viewer's `<video>`.
#[derive(Debug, Clone, Copy)]
pub enum VideoInput {
    /// Move the mouse to `dx` pixels right of the chosen point (a wiggle keeps the cursor still).
    Move { dx: f64 },
    /// Give the video's viewer the keyboard focus as a user does: press and release the left
    /// button there, unless the focus is in that viewer already. The viewer sends the click to
    /// the remote desktop too, so a user who has the focus does not click again, and neither do
    /// the driver's key probes, every few seconds.
    Focus,
}

impl Chromium {
    /// Opens `url` in a new tab with its own browser context. `cookies` are set for the URL's
    /// origin before navigating (the real Helix frontend authenticates its stream WebSocket by
    /// the `access_token` cookie). The probe is installed before the page's scripts run. The tab
    /// id is appended to the URL as `e2e_tab=<id>` so webrtc-internals entries map back to it.
    /// `tab` is the id the run gave it ([`super::Browser`] numbers the tabs of all its browsers).
    /// The context is disposed of when the DevTools connection goes: a killed run leaves no
    /// context behind in a remote browser that outlives it.
    pub async fn open_tab(&self, tab: TabId, url: &str, cookies: Vec<(String, String)>) -> Result<TabId, BrowserError> {
        let url = tagged_url(url, tab);
        self.health.check(None)?;
        let browser = self.browser();
        let params = CreateBrowserContextParams::builder().dispose_on_detach(true).build();
        let context = cdp("create browser context", browser.create_browser_context(params)).await?;
        let page = match self.prepare_tab(tab, &url, &context, cookies).await {
            Ok(page) => page,
            Err(e) => {
                let _ = cdp("dispose browser context", browser.dispose_browser_context(context)).await;
                return Err(e);
            }
        };
        tracing::info!(tab, url = %url, "opening tab");
        // The tab is registered already, so a failed navigation leaves it closable.
        deadline(&format!("tab {tab}: load {url}"), NAV_DEADLINE, async {
            page.goto(url.as_str()).await.map_err(|e| BrowserError::Page { tab, what: format!("navigation failed: {e}") })
        })
        .await?;
        Ok(tab)
    }

    async fn prepare_tab(&self, tab: TabId, url: &str, context: &BrowserContextId, cookies: Vec<(String, String)>) -> Result<Page, BrowserError> {
        let browser = self.browser();
        if !cookies.is_empty() {
            let origin = origin_of(url).ok_or_else(|| BrowserError::Page { tab, what: format!("no origin in {url}") })?;
            let cookies = cookies
                .into_iter()
                .map(|(name, value)| {
                    let mut c = CookieParam::new(name, value);
                    c.url = Some(origin.clone());
                    c
                })
                .collect();
            let params = SetCookiesParams { cookies, browser_context_id: Some(context.clone()) };
            cdp("set cookies", browser.execute(params)).await?;
        }
        let target =
            CreateTargetParams::builder().url("about:blank").browser_context_id(context.clone()).build().map_err(|e| BrowserError::Page { tab, what: e })?;
        let page = cdp("create tab", browser.new_page(target)).await?;
        let setup = async {
            let mut tasks = listen(&page, tab, &self.timeline).await?;
            tasks.push(tokio::spawn(super::watch_answers(page.clone(), Some(tab), self.health.clone(), self.timeline.clone())));
            let state = Arc::new(TabState { page: page.clone(), context: context.clone(), tasks, input: tokio::sync::Mutex::new(()) });
            self.tabs.lock().unwrap_or_else(|e| e.into_inner()).insert(tab, state);
            self.targets.lock().unwrap_or_else(|e| e.into_inner()).insert(page.target_id().clone(), tab);
            cdp("add probe binding", page.execute(AddBindingParams::new(PROBE_BINDING))).await?;
            // Every tab behaves as the focused window, so key events reach the page even while
            // other tabs of the run are in front.
            cdp("emulate focus", page.execute(SetFocusEmulationEnabledParams::new(true))).await?;
            cdp("install probe", page.evaluate_on_new_document(probe::script())).await?;
            Ok::<(), BrowserError>(())
        };
        if let Err(e) = setup.await {
            self.forget_tab(tab);
            let _ = cdp("close tab", page.clone().close()).await;
            return Err(e);
        }
        Ok(page)
    }

    fn forget_tab(&self, tab: TabId) -> Option<Arc<TabState>> {
        let state = self.tabs.lock().unwrap_or_else(|e| e.into_inner()).remove(&tab);
        if let Some(s) = &state {
            self.targets.lock().unwrap_or_else(|e| e.into_inner()).remove(s.page.target_id());
        }
        state
    }

    /// Evaluates a JavaScript expression in the tab and returns its JSON value (promises are
    /// awaited). For scenario steps and tests; observation goes through the probe.
    pub async fn evaluate(&self, tab: TabId, expression: &str) -> Result<serde_json::Value, BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let result = self.health.while_alive(Some(tab), cdp(&format!("tab {tab}: evaluate"), page.evaluate_expression(expression))).await?;
        Ok(result.value().cloned().unwrap_or(serde_json::Value::Null))
    }

    /// Real mouse input (CDP `Input.dispatchMouseEvent`) on every visible `<video>` matching
    /// `selector`, at a point where the video itself is hit. Returns how many videos got it: what
    /// the viewer makes of the events (its input channels) is the page's own business.
    pub async fn video_input(&self, tab: TabId, selector: &str, input: VideoInput) -> Result<usize, BrowserError> {
        self.health.while_alive(Some(tab), self.video_input_now(tab, selector, input)).await
    }

    async fn video_input_now(&self, tab: TabId, selector: &str, input: VideoInput) -> Result<usize, BrowserError> {
        let state = self.tab(tab)?;
        let _gesture = state.input.lock().await;
        let page = state.page.clone();
        let call = format!("({VIDEO_TARGETS})({})", serde_json::Value::String(selector.to_string()));
        let found = cdp(&format!("tab {tab}: locate {selector}"), page.evaluate_expression(call)).await?;
        let points: Vec<Centre> = found.into_value().unwrap_or_default();
        for p in &points {
            let mouse = |kind: DispatchMouseEventType, x: f64| {
                let moved = matches!(kind, DispatchMouseEventType::MouseMoved);
                let b = DispatchMouseEventParams::builder().r#type(kind).x(x).y(p.y);
                let b = if moved { b } else { b.button(MouseButton::Left).click_count(1) };
                b.build().map_err(|e| BrowserError::Page { tab, what: e })
            };
            match input {
                VideoInput::Move { dx } => {
                    cdp(&format!("tab {tab}: mouse move"), page.execute(mouse(DispatchMouseEventType::MouseMoved, p.x + dx)?)).await?;
                }
                VideoInput::Focus if p.focused => {}
                VideoInput::Focus => {
                    cdp(&format!("tab {tab}: mouse move"), page.execute(mouse(DispatchMouseEventType::MouseMoved, p.x)?)).await?;
                    cdp(&format!("tab {tab}: mouse down"), page.execute(mouse(DispatchMouseEventType::MousePressed, p.x)?)).await?;
                    cdp(&format!("tab {tab}: mouse up"), page.execute(mouse(DispatchMouseEventType::MouseReleased, p.x)?)).await?;
                }
            }
        }
        Ok(points.len())
    }

    /// One real key event (CDP `Input.dispatchKeyEvent`, down or up) to whatever has the focus
    /// in the tab; click the video first to give it to the viewer.
    pub async fn key_event(&self, tab: TabId, key: &str, code: &str, key_code: i64, down: bool) -> Result<(), BrowserError> {
        let state = self.tab(tab)?;
        let page = state.page.clone();
        let p = DispatchKeyEventParams::builder()
            .r#type(if down { DispatchKeyEventType::KeyDown } else { DispatchKeyEventType::KeyUp })
            .key(key)
            .code(code)
            .windows_virtual_key_code(key_code)
            .native_virtual_key_code(key_code)
            .build()
            .map_err(|e| BrowserError::Page { tab, what: e })?;
        let _gesture = state.input.lock().await;
        self.health.while_alive(Some(tab), cdp(&format!("tab {tab}: key {key}"), page.execute(p))).await?;
        Ok(())
    }

    /// Waits (up to [`CONTROL_DEADLINE`]) for the control `want` names (text, or `css:` and a
    /// selector) to be one a user could press, then clicks its centre with real mouse events.
    pub async fn press(&self, tab: TabId, want: &str) -> Result<(), BrowserError> {
        self.health.while_alive(Some(tab), self.press_now(tab, want)).await
    }

    async fn press_now(&self, tab: TabId, want: &str) -> Result<(), BrowserError> {
        let state = self.tab(tab)?;
        let page = state.page.clone();
        let label = want.strip_prefix("css:").map(str::to_string).unwrap_or_else(|| format!("\"{want}\""));
        let call = format!("({FIND_CONTROL})({})", serde_json::Value::String(want.to_string()));
        let started = tokio::time::Instant::now();
        loop {
            self.health.check(Some(tab))?;
            let found = cdp(&format!("tab {tab}: find {label}"), page.evaluate_expression(call.clone())).await?;
            match found.into_value::<Found>() {
                Ok(Found::At { x, y }) => {
                    let _gesture = state.input.lock().await;
                    cdp(&format!("tab {tab}: click {label}"), page.click(Point::new(x, y))).await?;
                    return Ok(());
                }
                Ok(Found::Not { why }) if started.elapsed() >= CONTROL_DEADLINE => {
                    return Err(BrowserError::Page {
                        tab,
                        what: format!("nothing a user could press for {label} within {} s: {why}", CONTROL_DEADLINE.as_secs()),
                    });
                }
                Ok(Found::Not { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(BrowserError::Page { tab, what: format!("finding {label}: {e}") }),
            }
        }
    }

    /// Reloads the tab and waits for the new document to load. The probe re-installs itself
    /// and reports a fresh `PageLoad`; the old page's peer connections stay in webrtc-internals
    /// (the page is opened with `keepRemovedConnections`), beside the new page's.
    pub async fn reload(&self, tab: TabId) -> Result<(), BrowserError> {
        let page = self.tab(tab)?.page.clone();
        deadline(&format!("tab {tab}: reload"), NAV_DEADLINE, async {
            page.reload().await.map(|_| ()).map_err(BrowserError::cdp(format!("tab {tab}: reload")))
        })
        .await
    }

    /// Navigates the tab to another URL (the tab marker is added again) and waits for the load.
    pub async fn navigate(&self, tab: TabId, url: &str) -> Result<(), BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let url = if url.starts_with("chrome:") { url.to_string() } else { tagged_url(url, tab) };
        deadline(&format!("tab {tab}: load {url}"), NAV_DEADLINE, async {
            page.goto(url.as_str()).await.map(|_| ()).map_err(|e| BrowserError::Page { tab, what: format!("navigation failed: {e}") })
        })
        .await
    }

    /// Closes the tab and disposes its browser context. A dead tab is only disposed of (its
    /// page would never answer); in a dead browser there is nothing left to ask.
    pub async fn close_tab(&self, tab: TabId) -> Result<(), BrowserError> {
        let state = self.forget_tab(tab).ok_or(BrowserError::NoSuchTab(tab))?;
        if let Err(dead) = self.health.check(Some(tab)) {
            for t in &state.tasks {
                t.abort();
            }
            if !matches!(dead, BrowserError::BrowserDied(_)) {
                let _ = cdp(&format!("tab {tab}: dispose context"), self.browser().dispose_browser_context(state.context.clone())).await;
            }
            self.timeline.push(Event::Browser { tab: Some(tab), what: super::viewers::TAB_CLOSED.into() });
            return Ok(());
        }
        let closed = cdp(&format!("tab {tab}: close"), state.page.clone().close()).await;
        let disposed = cdp(&format!("tab {tab}: dispose context"), self.browser().dispose_browser_context(state.context.clone())).await;
        // The page's last probe batch (sent on pagehide) may still be in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for t in &state.tasks {
            t.abort();
        }
        self.timeline.push(Event::Browser { tab: Some(tab), what: super::viewers::TAB_CLOSED.into() });
        closed.and(disposed)
    }

    /// Cut a tab off the network, the way a tab vanishes for the server (F18's trigger): the
    /// browser's network service process, which owns every socket of the browser (a tab's
    /// WebSocket and its WebRTC ports), is killed, so the tab's connections end without a close
    /// frame and its peer goes silent; Chromium starts a new network service for what comes
    /// next, and the tab stays open, cut off. Why not a renderer crash: measured here, when a
    /// renderer dies the network service closes its WebSockets with a close frame (the server is
    /// told), `Page.crash` only hangs the renderer, and an offline network emulation leaves open
    /// WebSockets open. Every connection of the browser is cut: a scenario cuts while this tab
    /// is the only one connected.
    pub async fn cut_tab(&self, tab: TabId) -> Result<(), BrowserError> {
        self.health.check(Some(tab))?;
        let Some(pid) = self.pid() else {
            return Err(BrowserError::Page {
                tab,
                what: format!("cutting a tab off kills its browser's network service process; {} runs on another machine", self.name()),
            });
        };
        let victims: Vec<crate::procs::Proc> = crate::procs::descendants(pid).into_iter().filter(|p| p.cmdline.contains(NETWORK_SERVICE)).collect();
        if victims.is_empty() {
            return Err(BrowserError::Page { tab, what: format!("the browser has no network service process ({NETWORK_SERVICE}) to kill") });
        }
        for v in &victims {
            v.kill();
        }
        tracing::info!(tab, pids = ?victims.iter().map(|v| v.pid).collect::<Vec<_>>(), "network service killed: the tab's connections are cut");
        Ok(())
    }

    /// PNG of the tab's viewport.
    pub async fn screenshot(&self, tab: TabId) -> Result<Vec<u8>, BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        self.health.while_alive(Some(tab), cdp(&format!("tab {tab}: screenshot"), page.screenshot(params))).await
    }

    /// PNG of the `index`-th `<video>` element (document order) of the tab.
    pub async fn screenshot_video(&self, tab: TabId, index: usize) -> Result<Vec<u8>, BrowserError> {
        self.health.while_alive(Some(tab), self.screenshot_video_now(tab, index)).await
    }

    async fn screenshot_video_now(&self, tab: TabId, index: usize) -> Result<Vec<u8>, BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let call = format!("({VIDEO_RECT})({index})");
        let found = cdp(&format!("tab {tab}: locate video {index}"), page.evaluate_expression(call)).await?;
        let rect: Option<Rect> = found.into_value().ok();
        let Some(r) = rect.filter(|r| r.w >= 1.0 && r.h >= 1.0) else {
            return Err(BrowserError::Page { tab, what: format!("no visible <video> number {index}") });
        };
        let clip = Viewport { x: r.x, y: r.y, width: r.w, height: r.h, scale: 1.0 };
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).clip(clip).build();
        cdp(&format!("tab {tab}: screenshot video {index}"), page.screenshot(params)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_marker_goes_before_the_fragment() {
        assert_eq!(tagged_url("http://h:1/s", 3), "http://h:1/s?e2e_tab=3");
        assert_eq!(tagged_url("http://h/s?a=1#x", 0), "http://h/s?a=1&e2e_tab=0#x");
    }

    #[test]
    fn origin_strips_path_query_and_fragment() {
        assert_eq!(origin_of("http://127.0.0.1:8080/session/ses_1?x=1").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin_of("https://helix.example#a").as_deref(), Some("https://helix.example"));
        assert_eq!(origin_of("about:blank"), None);
    }
}
