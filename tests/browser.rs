//! Real-Chromium tests of the browser driver: flags, cleanup, tabs, the in-page probe and the
//! webrtc-internals dump.
//!
//! Chromium must be installed (`/usr/bin/chromium` or `CHROMIUM`); these tests fail, not skip,
//! without it, because CI installs it. Tests that create peer connections move their own thread
//! into a fresh network namespace (loopback plus a veth pair in TEST-NET-2 and a default route,
//! as the project's browser notes prescribe) so WebRTC never touches the machine's real
//! interfaces. That needs root; run as root, or run the whole binary inside such a namespace
//! (`ip netns exec <ns> <test binary>`), in which case the test uses it as it is.

mod common;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use helix_e2e::browser::viewers::fold_tab_viewers;
use helix_e2e::browser::{dump_shape, peer_connections_of_tab, validate_dump, Browser, BrowserError, BrowserOptions, VideoInput};
use helix_e2e::timeline::{Casualty, Direction, Event, Observation, PcStateKind, ProbeEvent, TabId, Timeline};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Two independent in-page loopback pairs (canvas → pc a → pc b → `<video>`), each with its own
/// WebSocket that carries its pair's offer, like two stream viewers in one page.
const TWO_VIEWERS: &str = r#"<!doctype html><html><body>
<div role="alert" id="status">starting</div>
<button id="live" onclick="this.textContent = this.textContent === 'Live Stream' ? 'Screenshot' : 'Live Stream'">Live Stream</button>
<button title="Reconnect" id="rc" onclick="window.reconnects = (window.reconnects || 0) + 1">&#8635;</button>
<script>
window.results = {};
async function viewer(n) {
  const c = document.createElement('canvas'); c.width = 320; c.height = 180;
  const g = c.getContext('2d'); let k = 0;
  setInterval(() => {
    k++;
    g.fillStyle = n === 0 ? 'rgb(200,120,40)' : 'rgb(40,40,160)'; g.fillRect(0, 0, 320, 180);
    g.fillStyle = 'white'; g.fillRect((k * 8) % 280, 60, 40, 40);
  }, 33);
  const stream = c.captureStream(30);
  const a = new RTCPeerConnection(); const b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const v = document.createElement('video'); v.autoplay = true; v.muted = true; v.playsInline = true;
  v.style.width = '320px'; v.style.height = '180px'; document.body.appendChild(v);
  b.ontrack = (e) => { v.srcObject = e.streams[0]; };
  stream.getTracks().forEach((t) => a.addTrack(t, stream));
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  const ws = new WebSocket(`ws://${location.host}/ws`);
  window.results['transparent' + n] = [ws instanceof WebSocket, ws.constructor === WebSocket, WebSocket.OPEN === 1,
    a instanceof RTCPeerConnection, a.constructor === RTCPeerConnection, RTCPeerConnection.name === 'RTCPeerConnection'];
  ws.onmessage = (e) => { window.results['echo' + n] = e.data; };
  ws.onopen = () => {
    ws.send(JSON.stringify({ AuthenticateAndInit: { session_id: 'sess-' + n, mode: 'create', client_unique_id: 'viewer-' + n } }));
    ws.send(JSON.stringify({ Signaling: { Description: { ty: 'offer', sdp: a.localDescription.sdp } } }));
    ws.send('plain text ' + n);
  };
  b.onconnectionstatechange = () => { if (b.connectionState === 'connected') document.getElementById('status').textContent = 'viewer ' + n + ' connected'; };
}
viewer(0); viewer(1);
setTimeout(() => { console.error('probe-console-check'); }, 50);
setTimeout(() => { throw new Error('probe-exception-check'); }, 60);
</script></body></html>"#;

/// The shape of the real Helix viewer where a user meets it (../shared/reference/helix-viewer.md):
/// a `<video>` with a centred overlay whose status line has no ARIA role, an MUI-like error alert
/// with its `Reconnect` action inside, a toolbar at opacity 0 whose `Reconnect` is disabled, and
/// input only through DOM handlers on the video and its focusable container. Nothing in it is a
/// hook for a driver.
const REAL_LIKE: &str = r#"<!doctype html><html><body style="margin:0">
<div id="viewer" tabindex="0" style="position:relative;width:640px;height:360px;background:#000">
  <video autoplay playsinline muted style="width:100%;height:100%;background:#000"></video>
  <div id="toolbar" style="position:absolute;top:4px;right:4px;opacity:0">
    <button title="Reconnect" id="tb-reconnect" disabled onclick="window.pressed.push('toolbar')">R</button>
  </div>
  <div style="position:absolute;inset:0;display:flex;flex-direction:column;align-items:center;justify-content:center;pointer-events:none">
    <p id="status" style="margin:0">Connecting to streaming server...</p>
    <div role="alert" id="alert" hidden style="pointer-events:auto;display:flex;gap:8px">
      <div>Connection state is disconnected (client: helix-agent-x)</div>
      <div><button onclick="window.pressed.push('alert')">Reconnect</button></div>
    </div>
  </div>
</div>
<script>
window.pressed = [];
window.input = [];
const v = document.querySelector('video');
['mousemove', 'mousedown', 'mouseup'].forEach((t) => v.addEventListener(t, (e) => window.input.push(t + ':' + e.isTrusted)));
document.getElementById('viewer').addEventListener('keydown', (e) => window.input.push('keydown ' + e.key + ':' + e.isTrusted));
v.addEventListener('mousedown', () => document.getElementById('viewer').focus());
// A canvas stream so the video has a picture (and a rect that paints).
const c = document.createElement('canvas'); c.width = 64; c.height = 36; c.getContext('2d').fillRect(0, 0, 64, 36);
v.srcObject = c.captureStream(5);
fetch('/api/v1/external-agents/ses_x/auto-join-lobby', { method: 'POST' }).then((r) => {
  if (!r.ok) console.error('[AUTO-JOIN] Error calling auto-join endpoint:', new Error('Request failed with status code ' + r.status));
});
setTimeout(() => { document.getElementById('status').textContent = 'WebRTC Peer Negotiation'; }, 300);
setTimeout(() => { document.getElementById('alert').hidden = false; }, 600);
</script></body></html>"#;

const PLAIN: &str = r#"<!doctype html><html><body><p id="p">plain</p>
<button onclick="document.getElementById('p').textContent = 'clicked'">Press me</button></body></html>"#;

/// A control beside a `<video>`: each counts the clicks it gets.
const GESTURES: &str = r#"<!doctype html><html><body>
<video style="width:320px;height:180px;display:block;background:#333" onclick="window.videoClicks = (window.videoClicks || 0) + 1"></video>
<button style="margin:40px" onclick="window.presses = (window.presses || 0) + 1">Again</button></body></html>"#;

async fn ws_endpoint(up: WebSocketUpgrade) -> impl IntoResponse {
    up.on_upgrade(talk)
}

/// Answers `AuthenticateAndInit` the way moonlight-web does (stage, then `ConnectionComplete`)
/// and echoes everything else, so both directions of the probe's capture get exercised.
async fn talk(mut sock: WebSocket) {
    while let Some(Ok(msg)) = sock.recv().await {
        let Message::Text(text) = msg else { continue };
        let parsed: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        if let Some(init) = parsed.get("AuthenticateAndInit") {
            let cuid = init["client_unique_id"].as_str().unwrap_or("?").to_string();
            let replies = [
                json!({"StageStarting": {"stage": "Launch Streamer"}}),
                json!({"StageComplete": {"stage": "Launch Streamer"}}),
                json!({"ConnectionComplete": {"capabilities": {"touch": false}, "width": 320, "height": 180, "client_id": format!("wolf-{cuid}")}}),
            ];
            for r in replies {
                if sock.send(Message::Text(r.to_string().into())).await.is_err() {
                    return;
                }
            }
            continue;
        }
        if sock.send(Message::Text(text)).await.is_err() {
            return;
        }
    }
}

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/two.html", get(|| async { Html(TWO_VIEWERS) }))
        .route("/plain.html", get(|| async { Html(PLAIN) }))
        .route("/gestures.html", get(|| async { Html(GESTURES) }))
        .route("/real-like.html", get(|| async { Html(REAL_LIKE) }))
        .route(
            "/api/v1/external-agents/ses_x/auto-join-lobby",
            axum::routing::post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "failed to join lobby: Lobby or session not found\n") }),
        )
        .route("/ws", get(ws_endpoint));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind test server");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn options() -> BrowserOptions {
    let opts = BrowserOptions::default();
    assert!(
        opts.executable.exists(),
        "Chromium is required for these tests: {} does not exist (apt-get install chromium, or set CHROMIUM)",
        opts.executable.display()
    );
    opts
}

fn run(cmd: &str) {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let st = std::process::Command::new(args[0]).args(&args[1..]).status().expect("run ip");
    assert!(st.success(), "`{cmd}` failed");
}

/// Physical-looking interfaces in this thread's network namespace (`/proc/net` would show the
/// process's, which `unshare` on one thread does not change).
fn outside_interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .filter(|n| ["eth", "en", "wl", "ww"].iter().any(|p| n.starts_with(p)))
        .collect()
}

/// Puts this test's thread (and so the Chromium and server it starts) into a private network
/// namespace with the veth recipe, unless the test already runs inside one.
fn private_network() {
    if outside_interfaces().is_empty() {
        return;
    }
    // SAFETY: unshare(2) only changes this thread's namespace membership.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "WebRTC tests need a private network namespace: run as root, or inside `ip netns exec <ns>` ({})", std::io::Error::last_os_error());
    assert!(outside_interfaces().is_empty(), "unshare left real interfaces visible");
    run("ip link set lo up");
    run("ip link add v0 type veth peer name v1");
    run("ip addr add 198.51.100.2/24 dev v0");
    run("ip addr add 198.51.100.3/24 dev v1");
    run("ip link set v0 up");
    run("ip link set v1 up");
    run("ip route add default dev v0");
}

async fn wait_for<T>(timeline: &Timeline, what: &str, secs: u64, mut f: impl FnMut(&[Observation]) -> Option<T>) -> T {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f(&timeline.snapshot()) {
            return t;
        }
        if tokio::time::Instant::now() > until {
            let tail: Vec<String> = timeline.snapshot().iter().rev().take(40).map(|o| format!("{:?}", o.event)).collect();
            panic!("timed out after {secs}s waiting for {what}; last events (newest first):\n{}", tail.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn probes(obs: &[Observation], tab: TabId) -> Vec<&ProbeEvent> {
    obs.iter()
        .filter_map(|o| match &o.event {
            Event::Tab { tab: t, probe } if *t == tab => Some(probe),
            _ => None,
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

async fn gone_within(pids: &[u32], secs: u64) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while pids.iter().any(|p| alive(*p)) {
        if tokio::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

#[tokio::test]
async fn flags_reach_chromium_and_close_leaves_nothing() {
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let pid = browser.pid().expect("a local browser");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline of the browser");
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    for want in [
        "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-quic",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--no-sandbox",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("----")), "mangled flag in {args:?}");
    let profile = args.iter().find_map(|a| a.strip_prefix("--user-data-dir=")).expect("user-data-dir").to_string();
    assert!(Path::new(&profile).is_dir());
    let kids = children_of(pid);
    assert!(!kids.is_empty(), "chromium has no child processes?");

    browser.close().await.expect("close");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "browser process {pid} still exists after close()");
    assert!(gone_within(&kids, 5).await, "chromium children {kids:?} outlived close()");
    assert!(!Path::new(&profile).exists(), "temporary profile {profile} not removed");
}

#[tokio::test]
async fn dropping_without_close_kills_chromium() {
    let browser = Browser::launch(options(), Timeline::new()).await.expect("launch");
    let pid = browser.pid().expect("a local browser");
    let kids = children_of(pid);
    drop(browser);
    let mut all = kids.clone();
    all.push(pid);
    assert!(gone_within(&all, 10).await, "chromium {pid} (children {kids:?}) survived drop");
}

#[tokio::test]
async fn missing_chromium_is_a_clear_error() {
    let opts = BrowserOptions { executable: "/nonexistent/chromium".into(), ..BrowserOptions::default() };
    match Browser::launch(opts, Timeline::new()).await {
        Err(BrowserError::MissingExecutable(p)) => assert_eq!(p, Path::new("/nonexistent/chromium")),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("launched a nonexistent executable"),
    }
}

#[tokio::test]
async fn tabs_are_isolated_and_driveable() {
    let addr = serve().await;
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let url = format!("http://{addr}/plain.html");
    let t0 = browser.open_tab(&url, vec![("access_token".into(), "tok-zero".into())]).await.expect("tab 0");
    let t1 = browser.open_tab(&url, vec![("access_token".into(), "tok-one".into())]).await.expect("tab 1");
    assert_eq!((t0, t1), (0, 1));

    let c0 = browser.evaluate(t0, "document.cookie").await.unwrap();
    let c1 = browser.evaluate(t1, "document.cookie").await.unwrap();
    assert_eq!(c0, json!("access_token=tok-zero"), "cookie set before navigation");
    assert_eq!(c1, json!("access_token=tok-one"), "contexts must not share cookies");
    let href = browser.evaluate(t1, "location.href").await.unwrap();
    assert!(href.as_str().unwrap().ends_with("?e2e_tab=1"), "{href}");

    browser.click_text(t0, "Press me").await.expect("click by text");
    assert_eq!(browser.evaluate(t0, "document.getElementById('p').textContent").await.unwrap(), json!("clicked"));
    assert_eq!(browser.evaluate(t1, "document.getElementById('p').textContent").await.unwrap(), json!("plain"));
    assert!(matches!(browser.click_text(t0, "No such button").await, Err(BrowserError::Page { .. })));
    assert!(browser.press(t0, "css:#does-not-exist").await.is_err());

    let png = browser.screenshot(t0).await.expect("screenshot");
    let img = image::load_from_memory(&png).expect("screenshot is an image");
    // The window is 1280x800; headless still reserves room for its (invisible) browser UI.
    assert_eq!(img.width(), 1280);
    assert!((400..=800).contains(&img.height()), "viewport height {}", img.height());

    browser.reload(t0).await.expect("reload");
    let loads = |obs: &[Observation]| probes(obs, t0).iter().filter(|p| matches!(p, ProbeEvent::PageLoad { .. })).count();
    wait_for(&timeline, "a second PageLoad after reload", 5, |obs| (loads(obs) >= 2).then_some(())).await;

    browser.close_tab(t1).await.expect("close tab");
    assert!(matches!(browser.evaluate(t1, "1").await, Err(BrowserError::NoSuchTab(1))));
    assert_eq!(browser.open_tabs(), vec![t0]);
    browser.close().await.expect("close");
}

/// A tab has one mouse: the driver's press of a control and an input probe's click on the video,
/// sent at the same moment, each land whole. Interleaved, a probe's mouse-down between a press's
/// down and up took the press's click away (a Reconnect that did nothing, restart-chaos in CI).
#[tokio::test]
async fn concurrent_gestures_in_a_tab_do_not_take_each_others_clicks() {
    let addr = serve().await;
    let browser = Browser::launch(options(), Timeline::new()).await.expect("launch");
    let t = browser.open_tab(&format!("http://{addr}/gestures.html"), vec![]).await.expect("tab");
    const ROUNDS: usize = 40;
    for _ in 0..ROUNDS {
        let (pressed, clicked) = tokio::join!(browser.press(t, "Again"), browser.video_input(t, "video", VideoInput::Focus));
        pressed.expect("press");
        assert_eq!(clicked.expect("video click"), 1, "the video is there to click");
    }
    let presses = browser.evaluate(t, "window.presses || 0").await.unwrap();
    let video_clicks = browser.evaluate(t, "window.videoClicks || 0").await.unwrap();
    assert_eq!(presses, json!(ROUNDS), "every press of the control was a click");
    assert_eq!(video_clicks, json!(ROUNDS), "every click on the video was a click");
    browser.close().await.expect("close");
}

/// The driver meets a page as a user does: it reads status text without ARIA roles and alert
/// text without its buttons' labels, presses the visible enabled `Reconnect` (the alert's, not the
/// invisible disabled toolbar icon), sends trusted mouse and key events to the `<video>`, and
/// learns the auto-join's error text from the HTTP answer, which the page never logs.
#[tokio::test]
async fn a_viewer_is_met_as_a_user_meets_it() {
    let addr = serve().await;
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let tab = browser.open_tab(&format!("http://{addr}/real-like.html"), vec![]).await.expect("open");
    let texts = wait_for(&timeline, "status line and alert", 10, |obs| {
        let ui: Vec<(String, String)> =
            probes(obs, tab).iter().filter_map(|p| if let ProbeEvent::UiText { text, role } = p { Some((text.clone(), role.clone())) } else { None }).collect();
        (ui.iter().any(|(_, r)| r == "alert") && ui.iter().any(|(t, _)| t == "WebRTC Peer Negotiation")).then_some(ui)
    })
    .await;
    assert!(texts.contains(&("Connecting to streaming server...".to_string(), String::new())), "status without a role: {texts:?}");
    assert!(
        texts.contains(&("Connection state is disconnected (client: helix-agent-x)".to_string(), "alert".to_string())),
        "alert text without its button's label: {texts:?}"
    );

    browser.click_text(tab, "Reconnect").await.expect("press Reconnect");
    assert_eq!(browser.evaluate(tab, "window.pressed").await.unwrap(), json!(["alert"]), "the alert's button, not the invisible toolbar icon");
    // Connected: the alert goes, the toolbar shows and is enabled: now that is the one.
    browser.evaluate(tab, "document.getElementById('alert').hidden = true; document.getElementById('toolbar').style.opacity = 1; document.getElementById('tb-reconnect').disabled = false").await.unwrap();
    browser.click_text(tab, "Reconnect").await.expect("press Reconnect");
    assert_eq!(browser.evaluate(tab, "window.pressed").await.unwrap(), json!(["alert", "toolbar"]));

    let n = browser.video_input(tab, "video", helix_e2e::browser::VideoInput::Move { dx: 1.0 }).await.expect("move");
    assert_eq!(n, 1);
    // The focus is on the toolbar's button (pressed last): giving it to the viewer takes a click.
    browser.video_input(tab, "video", helix_e2e::browser::VideoInput::Focus).await.expect("focus");
    for down in [true, false] {
        browser.key_event(tab, "a", "KeyA", 65, down).await.expect("key");
    }
    let input = browser.evaluate(tab, "window.input").await.unwrap();
    for want in ["mousemove:true", "mousedown:true", "mouseup:true", "keydown a:true"] {
        assert!(input.as_array().unwrap().contains(&json!(want)), "{want} missing from {input}");
    }
    // The viewer has the focus now: no second click (it would reach the remote desktop), and
    // keys still arrive. Once the focus is elsewhere, the next focus clicks again.
    let downs = || async { browser.evaluate(tab, "window.input.filter((e) => e.startsWith('mousedown')).length").await.unwrap() };
    assert_eq!(browser.video_input(tab, "video", helix_e2e::browser::VideoInput::Focus).await.expect("focus"), 1, "the video is still there");
    assert_eq!(downs().await, json!(1), "clicked again while the viewer had the focus: {}", browser.evaluate(tab, "window.input").await.unwrap());
    browser.evaluate(tab, "document.getElementById('tb-reconnect').focus()").await.unwrap();
    browser.video_input(tab, "video", helix_e2e::browser::VideoInput::Focus).await.expect("focus");
    assert_eq!(downs().await, json!(2), "the focus was on the toolbar: a click gives it back");

    let http = wait_for(&timeline, "the auto-join's answer", 10, |obs| {
        probes(obs, tab).iter().find_map(|p| match p {
            ProbeEvent::Http { method, path, status, body, .. } if path.ends_with("/auto-join-lobby") => Some((method.clone(), *status, body.clone())),
            _ => None,
        })
    })
    .await;
    assert_eq!(http.0, "POST");
    assert_eq!(http.1, Some(500));
    assert!(http.2.as_deref().is_some_and(|b| b.contains("failed to join lobby: Lobby or session not found")), "{http:?}");
    let console: Vec<String> =
        probes(&timeline.snapshot(), tab).iter().filter_map(|p| if let ProbeEvent::Console { text, .. } = p { Some(text.clone()) } else { None }).collect();
    assert!(console.iter().all(|t| !t.contains("failed to join lobby")), "the page logs only the error object: {console:?}");
    browser.close().await.expect("close");
}

#[tokio::test]
async fn probe_sees_two_viewers_in_one_page() {
    private_network();
    let addr = serve().await;
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let tab = browser.open_tab(&format!("http://{addr}/two.html"), vec![]).await.expect("open");

    // Wait until both videos present moving frames.
    wait_for(&timeline, "moving frames on both videos", 20, |obs| {
        let mut hashes: [HashSet<String>; 2] = Default::default();
        for p in probes(obs, tab) {
            if let ProbeEvent::Frame { video, sample } = p {
                if *video < 2 && sample.video_width > 0 {
                    hashes[*video as usize].insert(sample.hash.clone());
                }
            }
        }
        (hashes.iter().all(|h| h.len() >= 3)).then_some(())
    })
    .await;
    wait_for(&timeline, "stats with decoded frames", 10, |obs| {
        probes(obs, tab).iter().any(|p| matches!(p, ProbeEvent::Stats { stats, .. } if stats.frames_decoded.unwrap_or(0) > 0)).then_some(())
    })
    .await;
    wait_for(&timeline, "exception and console error", 5, |obs| {
        let ps = probes(obs, tab);
        let console = ps.iter().any(|p| matches!(p, ProbeEvent::Console { level, text } if level == "error" && text.contains("probe-console-check")));
        let exc = ps.iter().any(|p| matches!(p, ProbeEvent::Exception { text } if text.contains("probe-exception-check")));
        (console && exc).then_some(())
    })
    .await;

    // The page must not notice the probe.
    let results = browser.evaluate(tab, "window.results").await.unwrap();
    for n in 0..2 {
        assert_eq!(results[format!("transparent{n}")], json!([true, true, true, true, true, true]), "{results}");
        assert_eq!(results[format!("echo{n}")], json!(format!("plain text {n}")), "echo reached the page: {results}");
    }

    let obs = timeline.snapshot();
    let ps = probes(&obs, tab);
    assert!(matches!(ps.first(), Some(ProbeEvent::PageLoad { url }) if url.ends_with("e2e_tab=0")), "{:?}", ps.first());

    let created: Vec<u32> = ps.iter().filter_map(|p| if let ProbeEvent::PcCreated { pc, .. } = p { Some(*pc) } else { None }).collect();
    assert_eq!(created.len(), 4, "two pairs of peer connections");
    let links: HashSet<(u32, u32)> = ps.iter().filter_map(|p| if let ProbeEvent::Link { ws, pc } = p { Some((*ws, *pc)) } else { None }).collect();
    // Which ws belongs to which pair depends on which negotiation finished first; the ws and
    // its pair's two pcs must be linked, and never across pairs.
    for ws in 0..2u32 {
        let mine: HashSet<u32> = links.iter().filter(|(w, _)| *w == ws).map(|(_, p)| *p).collect();
        assert_eq!(mine.len(), 2, "ws {ws} links {mine:?} (all {links:?})");
        let pair = [mine.iter().min().unwrap() / 2 * 2, mine.iter().min().unwrap() / 2 * 2 + 1];
        assert!(mine.iter().all(|p| pair.contains(p)), "ws {ws} linked across pairs: {links:?}");
    }
    let video_links: Vec<(u32, u32)> = ps.iter().filter_map(|p| if let ProbeEvent::VideoLink { pc, video } = p { Some((*pc, *video)) } else { None }).collect();
    assert_eq!(video_links.len(), 2, "{video_links:?}");
    assert!(video_links.iter().all(|(pc, _)| pc % 2 == 1), "videos come from the receiving pcs: {video_links:?}");

    let connected = ps.iter().filter(|p| matches!(p, ProbeEvent::PcState { which: PcStateKind::Connection, state, .. } if state == "connected")).count();
    assert!(connected >= 4, "all four pcs connect ({connected})");
    assert!(ps.iter().any(|p| matches!(p, ProbeEvent::Candidate { local: true, .. })));
    assert!(ps.iter().any(|p| matches!(p, ProbeEvent::Candidate { local: false, .. })));
    let sent_init = ps.iter().any(|p| matches!(p, ProbeEvent::WsMessage { dir: Direction::Sent, msg, .. } if msg.get("AuthenticateAndInit").is_some()));
    assert!(sent_init, "sent JSON is parsed");
    let got_text = ps
        .iter()
        .any(|p| matches!(p, ProbeEvent::WsMessage { dir: Direction::Received, msg, .. } if msg.as_str().is_some_and(|s| s.starts_with("plain text"))));
    assert!(got_text, "non-JSON text kept as a string");
    let pair = ps.iter().find_map(|p| if let ProbeEvent::Stats { stats, .. } = p { stats.candidate_pair.clone() } else { None });
    let pair = pair.expect("a selected candidate pair");
    assert!(pair.contains(" <-> ") && pair.ends_with("(udp)"), "{pair}");
    assert!(!pair.contains("?"), "candidate pair fully described: {pair}");
    for addr in pair.split([' ', '(']).filter(|w| w.contains(':')) {
        assert!(addr.starts_with("198.51.100.") || addr.starts_with("127."), "WebRTC left the test network: {pair}");
    }
    assert!(ps.iter().any(|p| matches!(p, ProbeEvent::UiText { text, .. } if text.starts_with("viewer ") && text.ends_with(" connected"))));

    let frame = ps.iter().rev().find_map(|p| if let ProbeEvent::Frame { sample, .. } = p { Some(sample) } else { None }).unwrap();
    assert_eq!((frame.video_width, frame.video_height), (320, 180));
    assert!(frame.presented > 0, "requestVideoFrameCallback counted frames");
    assert!(frame.mean_luma > 20.0, "a coloured picture is not black: {}", frame.mean_luma);
    // The luma grid is read for its stamp on the way into the timeline and not kept (this page's
    // picture carries none); the hash still tells pictures apart.
    assert!(frame.luma.is_empty() && frame.stamp.is_none() && !frame.hash.is_empty(), "{frame:?}");

    // Folded per viewer.
    let viewers = fold_tab_viewers(&obs, tab);
    assert_eq!(viewers.len(), 2, "{viewers:#?}");
    let mut cuids: Vec<String> = viewers.iter().map(|v| v.client_unique_id.clone().unwrap()).collect();
    cuids.sort();
    assert_eq!(cuids, vec!["viewer-0", "viewer-1"]);
    for v in &viewers {
        let cuid = v.client_unique_id.as_deref().unwrap();
        assert_eq!(v.client_id.as_deref(), Some(format!("wolf-{cuid}").as_str()));
        assert_eq!(v.mode.as_deref(), Some("create"));
        assert_eq!(v.stages.len(), 2);
        let pc = v.pc.expect("viewer has a pc");
        assert_eq!(pc % 2, 1, "the receiving pc (with the video) is preferred");
        assert!(v.video.is_some());
        assert_eq!(v.connection_state.as_deref(), Some("connected"));
        assert!(v.first_connected_at.is_some());
        assert!(v.last_stats.as_ref().is_some_and(|s| s.stats.frames_decoded.unwrap_or(0) > 0));
        assert!(v.frames.iter().all(|f| Some(f.video) == v.video));
        assert!(v.frames.len() >= 3);
        assert!(!v.closed());
    }
    // The two pages draw different colours; each viewer's frames show its own.
    let lumas: Vec<f64> = viewers.iter().map(|v| v.frames.last().unwrap().mean_luma).collect();
    assert!((lumas[0] - lumas[1]).abs() > 10.0, "viewers' frames must come from their own videos: {lumas:?}");

    browser.click_text(tab, "Reconnect").await.expect("click by title");
    browser.click_text(tab, "Live Stream").await.expect("click by text");
    assert_eq!(browser.evaluate(tab, "window.reconnects").await.unwrap(), json!(1));
    assert_eq!(browser.evaluate(tab, "document.getElementById('live').textContent").await.unwrap(), json!("Screenshot"));

    let png = browser.screenshot_video(tab, 1).await.expect("video screenshot");
    let img = image::load_from_memory(&png).expect("png");
    assert_eq!((img.width(), img.height()), (320, 180));

    browser.close_tab(tab).await.expect("close tab");
    let after = fold_tab_viewers(&timeline.snapshot(), tab);
    assert!(after.iter().all(|v| v.closed()), "closing the tab closes its viewers");
    browser.close().await.expect("close");
}

#[tokio::test]
async fn internals_dump_has_the_documented_shape() {
    private_network();
    let addr = serve().await;
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let plain = browser.open_tab(&format!("http://{addr}/plain.html"), vec![]).await.expect("plain tab");
    let tab = browser.open_tab(&format!("http://{addr}/two.html"), vec![]).await.expect("two tab");
    wait_for(&timeline, "four connected pcs", 15, |obs| {
        let n =
            probes(obs, tab).iter().filter(|p| matches!(p, ProbeEvent::PcState { which: PcStateKind::Connection, state, .. } if state == "connected")).count();
        (n >= 4).then_some(())
    })
    .await;
    // Let webrtc-internals collect a few one-second stat samples.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let dump = browser.internals_dumps().await.expect("dump").remove(0).dump;
    validate_dump(&dump).expect("documented shape");
    // The same keys and JSON types as the file Chromium's own download button writes.
    let chromium: Value = serde_json::from_str(include_str!("fixtures/webrtc-internals/chromium-156.json")).unwrap();
    assert_eq!(dump_shape(&dump), dump_shape(&chromium), "shape differs from Chromium's own dump");
    assert!(dump["UserAgent"].as_str().unwrap().contains("Chrome/"));
    assert!(peer_connections_of_tab(&dump, plain).is_empty());
    let pcs = peer_connections_of_tab(&dump, tab);
    assert_eq!(pcs.len(), 4, "keys: {:?}", dump["PeerConnections"].as_object().map(|o| o.keys().collect::<Vec<_>>()));
    let mut saw_connected = 0;
    let mut saw_inbound = false;
    for (_, pc) in &pcs {
        let log = pc["updateLog"].as_array().unwrap();
        if log.iter().any(|e| e["type"] == "onconnectionstatechange" && e["value"] == "\"connected\"") {
            saw_connected += 1;
        }
        let stats = pc["stats"].as_object().unwrap();
        if let Some((_, series)) = stats.iter().find(|(k, s)| s["statsType"] == "inbound-rtp" && k.ends_with("-framesDecoded")) {
            let values: Vec<f64> = serde_json::from_str(series["values"].as_str().unwrap()).unwrap();
            saw_inbound |= values.last().copied().unwrap_or(0.0) > 0.0;
        }
        let ts = log.first().and_then(|e| e["timestamp"].as_f64()).unwrap();
        assert!(ts > 1.6e12, "epoch milliseconds: {ts}");
    }
    assert_eq!(saw_connected, 4);
    assert!(saw_inbound, "inbound-rtp framesDecoded series with decoded frames");

    // The page keeps a reloaded, then closed, tab's connections: the dump at the end holds them.
    browser.reload(tab).await.expect("reload");
    browser.close_tab(tab).await.expect("close tab");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = browser.internals_dumps().await.expect("dump after close").remove(0).dump;
    let kept = peer_connections_of_tab(&after, tab);
    assert!(kept.len() >= 4, "{} of the tab's connections kept after it closed", kept.len());
    for (key, pc) in &pcs {
        let now = kept.iter().find(|(k, _)| k == key).map(|(_, pc)| pc).unwrap_or_else(|| panic!("{key} left the store"));
        assert!(now["updateLog"].as_array().unwrap().len() >= pc["updateLog"].as_array().unwrap().len(), "{key} lost log entries");
    }
    browser.close().await.expect("close");
}

/// A call already waiting on a tab when its renderer hangs ends when the tab is declared
/// unresponsive (3 s), not when its own DevTools deadline would pass: a run must not sit 20 s on
/// a screenshot of a dead tab.
#[tokio::test]
async fn a_call_in_flight_ends_when_its_tab_is_declared_unresponsive() {
    let addr = serve().await;
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let tab = browser.open_tab(&format!("http://{addr}/plain.html"), vec![]).await.expect("open");
    let renderers: Vec<u32> =
        common::descendants(browser.pid().expect("a local browser")).into_iter().filter(|(_, cmd)| cmd.contains("--type=renderer")).map(|(p, _)| p).collect();
    assert!(!renderers.is_empty(), "no renderer found");
    for p in &renderers {
        unsafe { libc::kill(*p as i32, libc::SIGSTOP) };
    }
    let t0 = std::time::Instant::now();
    let err = browser.evaluate(tab, "1 + 1").await.unwrap_err().to_string();
    let took = t0.elapsed();
    for p in &renderers {
        unsafe { libc::kill(*p as i32, libc::SIGCONT) };
    }
    assert!(err.contains("did not answer"), "{err}");
    assert!(took < Duration::from_secs(6), "the call waited {took:?}");
    browser.close().await.expect("close");
}

#[tokio::test]
async fn renderer_crash_lands_in_the_timeline() {
    let addr = serve().await;
    let timeline = Timeline::new();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let tab = browser.open_tab(&format!("http://{addr}/plain.html"), vec![]).await.expect("open");
    // The navigation itself fails or hangs with the renderer; only the crash report matters.
    let _ = tokio::time::timeout(Duration::from_secs(5), browser.navigate(tab, "chrome://crash")).await;
    let what = wait_for(&timeline, "a crash event for the tab", 10, |obs| {
        obs.iter().find_map(|o| match &o.event {
            Event::Died { what: Casualty::TabCrashed { tab: Some(t) }, detail } if *t == tab => Some(detail.clone()),
            _ => None,
        })
    })
    .await;
    assert!(what.starts_with(&format!("the renderer of tab {tab} crashed")), "{what}");
    // A dead tab fails at once instead of waiting out DevTools deadlines, and still closes.
    let t0 = std::time::Instant::now();
    let err = browser.screenshot(tab).await.unwrap_err().to_string();
    assert!(err.contains("is dead") && t0.elapsed() < Duration::from_secs(1), "{err} after {:?}", t0.elapsed());
    browser.close_tab(tab).await.expect("a crashed tab closes");
    browser.close().await.expect("close");
}

#[tokio::test]
async fn a_killed_browser_is_reported_and_every_call_fails_at_once() {
    let addr = serve().await;
    let timeline = Timeline::new();
    let chromium_temp = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("org.chromium."))
            .collect()
    };
    let temp_before = chromium_temp();
    let browser = Browser::launch(options(), timeline.clone()).await.expect("launch");
    let tab = browser.open_tab(&format!("http://{addr}/plain.html"), vec![]).await.expect("open");
    // SAFETY: our own Chromium.
    unsafe { libc::kill(browser.pid().expect("a local browser") as i32, libc::SIGKILL) };
    let killed = std::time::Instant::now();
    let detail = wait_for(&timeline, "the browser's death", 5, |obs| {
        obs.iter().find_map(|o| match &o.event {
            Event::Died { what: Casualty::Browser, detail } => Some(detail.clone()),
            _ => None,
        })
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(1), "reported {:?} after the kill", killed.elapsed());
    assert!(detail.contains("was killed by signal 9"), "{detail}");
    assert!(browser.death().is_some());
    let t0 = std::time::Instant::now();
    for err in [browser.evaluate(tab, "1").await.unwrap_err(), browser.open_tab(&format!("http://{addr}/plain.html"), vec![]).await.unwrap_err()] {
        assert!(matches!(err, BrowserError::BrowserDied(_)), "{err}");
    }
    browser.close_tab(tab).await.expect("closing a tab of a dead browser is a no-op");
    let _ = browser.close().await;
    assert!(t0.elapsed() < Duration::from_secs(3), "calls on a dead browser took {:?}", t0.elapsed());
    // Chromium's own temp files lived in the profile, and went with it.
    let left: Vec<String> = chromium_temp().difference(&temp_before).cloned().collect();
    assert!(left.is_empty(), "a killed Chromium left {left:?} in the temp dir");
}
