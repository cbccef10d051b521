//! Opening, driving and closing tabs.
//!
//! Every tab is its own browser context (no shared cookies, storage or renderer), so each one is
//! a separate user as far as the system under test can tell. The probe and its binding are in
//! place before the first byte of the page loads; after that the driver only listens.

use super::{cdp, deadline, probe, Browser, BrowserError, TabState, NAV_DEADLINE, PROBE_BINDING, TAB_PARAM};
use crate::timeline::{Event, ProbeEvent, TabId, Timeline};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::network::CookieParam;
use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, Viewport};
use chromiumoxide::cdp::browser_protocol::storage::SetCookiesParams;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::cdp::js_protocol::runtime::{
    AddBindingParams, ConsoleApiCalledType, EventBindingCalled, EventConsoleApiCalled, EventExceptionThrown,
    RemoteObject,
};
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// `url` with `e2e_tab=<tab>` added, keeping any fragment at the end.
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
    Ok(vec![probe_task, console_task, exception_task])
}

/// Finds a clickable element by its visible text, `title`, `aria-label` or `value` (exact match
/// first, then case-insensitive containment), scrolls it into view and returns its centre.
const FIND_BY_TEXT: &str = r#"(want) => {
  const norm = (s) => String(s || '').replace(/\s+/g, ' ').trim();
  const sel = 'button, [role="button"], [role="switch"], [role="tab"], [role="menuitem"], a, label, input, [title], [aria-label]';
  const els = Array.from(document.querySelectorAll(sel)).filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  });
  const names = (el) => [norm(el.innerText), el.getAttribute('title'), el.getAttribute('aria-label'), el.value].map(norm);
  const lower = want.toLowerCase();
  let hit = els.find((el) => names(el).includes(want))
    || els.find((el) => names(el).some((n) => n && n.toLowerCase().includes(lower)));
  if (!hit) return null;
  hit.scrollIntoView({ block: 'center', inline: 'center' });
  const r = hit.getBoundingClientRect();
  return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
}"#;

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
}

impl Browser {
    /// Opens `url` in a new tab with its own browser context. `cookies` are set for the URL's
    /// origin before navigating (the real Helix frontend authenticates its stream WebSocket by
    /// the `access_token` cookie). The probe is installed before the page's scripts run. The tab
    /// id is appended to the URL as `e2e_tab=<id>` so webrtc-internals entries map back to it.
    pub async fn open_tab(&self, url: &str, cookies: Vec<(String, String)>) -> Result<TabId, BrowserError> {
        let tab = {
            let mut next = self.next_tab.lock().unwrap_or_else(|e| e.into_inner());
            let t = *next;
            *next += 1;
            t
        };
        let url = tagged_url(url, tab);
        self.health.check(None)?;
        let browser = self.browser();
        let context =
            cdp("create browser context", browser.create_browser_context(CreateBrowserContextParams::default())).await?;
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

    async fn prepare_tab(
        &self,
        tab: TabId,
        url: &str,
        context: &BrowserContextId,
        cookies: Vec<(String, String)>,
    ) -> Result<Page, BrowserError> {
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
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context.clone())
            .build()
            .map_err(|e| BrowserError::Page { tab, what: e })?;
        let page = cdp("create tab", browser.new_page(target)).await?;
        let setup = async {
            let mut tasks = listen(&page, tab, &self.timeline).await?;
            tasks.push(tokio::spawn(super::watch_answers(page.clone(), Some(tab), self.health.clone(), self.timeline.clone())));
            let state = Arc::new(TabState { page: page.clone(), context: context.clone(), tasks });
            self.tabs.lock().unwrap_or_else(|e| e.into_inner()).insert(tab, state);
            self.targets.lock().unwrap_or_else(|e| e.into_inner()).insert(page.target_id().clone(), tab);
            cdp("add probe binding", page.execute(AddBindingParams::new(PROBE_BINDING))).await?;
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
        let result = cdp(&format!("tab {tab}: evaluate"), page.evaluate_expression(expression)).await?;
        Ok(result.value().cloned().unwrap_or(serde_json::Value::Null))
    }

    /// Sends one relative mouse move (`dx`, `dy`) over the `mouseRelative` data channel of every
    /// stand-in viewer in the tab, in moonlight-web's wire format (type 0 "move", then big-endian
    /// i16 dx and dy). Returns how many open channels took it. Real input keeps Wolf's control
    /// peer busy, which is how a scenario tells "no input after join" (F4) from other causes.
    pub async fn send_mouse_relative(&self, tab: TabId, dx: i16, dy: i16) -> Result<u64, BrowserError> {
        let js = format!(
            "(function(dx,dy){{var n=0;document.querySelectorAll('.hv-viewer').forEach(function(el){{\
             var v=el.helixViewer,c=v&&v.channels&&v.channels.mouseRelative;if(!c||c.readyState!=='open')return;\
             var b=new DataView(new ArrayBuffer(5));b.setUint8(0,0);b.setInt16(1,dx);b.setInt16(3,dy);c.send(b.buffer);n++;}});return n;}})({dx},{dy})"
        );
        Ok(self.evaluate(tab, &js).await?.as_u64().unwrap_or(0))
    }

    /// Clicks the first element matching a CSS selector, with real mouse events at its centre.
    pub async fn click(&self, tab: TabId, css_selector: &str) -> Result<(), BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let el = cdp(&format!("tab {tab}: find {css_selector}"), page.find_element(css_selector))
            .await
            .map_err(|e| BrowserError::Page { tab, what: format!("no element {css_selector}: {e}") })?;
        cdp(&format!("tab {tab}: click {css_selector}"), el.click()).await?;
        Ok(())
    }

    /// Clicks the visible control whose text, `title` or `aria-label` is `text` (e.g. the
    /// "Live Stream" toggle or the "Reconnect" button), with real mouse events.
    pub async fn click_text(&self, tab: TabId, text: &str) -> Result<(), BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let call = format!("({FIND_BY_TEXT})({})", serde_json::Value::String(text.to_string()));
        let found = cdp(&format!("tab {tab}: find \"{text}\""), page.evaluate_expression(call)).await?;
        let centre: Option<Centre> = found.into_value().ok();
        let Some(c) = centre else {
            return Err(BrowserError::Page { tab, what: format!("nothing clickable labelled \"{text}\"") });
        };
        cdp(&format!("tab {tab}: click \"{text}\""), page.click(Point::new(c.x, c.y))).await?;
        Ok(())
    }

    /// Reloads the tab and waits for the new document to load. The probe re-installs itself
    /// and reports a fresh `PageLoad`; the old page's peer connections leave webrtc-internals,
    /// so take an [`Browser::internals_dump`] first when it matters.
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
        let disposed = cdp(
            &format!("tab {tab}: dispose context"),
            self.browser().dispose_browser_context(state.context.clone()),
        )
        .await;
        // The page's last probe batch (sent on pagehide) may still be in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for t in &state.tasks {
            t.abort();
        }
        self.timeline.push(Event::Browser { tab: Some(tab), what: super::viewers::TAB_CLOSED.into() });
        closed.and(disposed)
    }

    /// PNG of the tab's viewport.
    pub async fn screenshot(&self, tab: TabId) -> Result<Vec<u8>, BrowserError> {
        let page = self.tab(tab)?.page.clone();
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        cdp(&format!("tab {tab}: screenshot"), page.screenshot(params)).await
    }

    /// PNG of the `index`-th `<video>` element (document order) of the tab.
    pub async fn screenshot_video(&self, tab: TabId, index: usize) -> Result<Vec<u8>, BrowserError> {
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
