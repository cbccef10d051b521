//! The reports of a failing run, built from a generated run (a timeline of two tabs, one of
//! which lost its peer connection, server events carrying planted secrets, screenshots and a
//! webrtc-internals dump), checked as their readers read them: `junit.xml` as XML with the
//! schema's attributes and consistent counts, `report.html` in real headless Chromium, the dumps
//! against the importers' format, and the whole directory for the planted secrets.

mod common;

use helix_e2e::browser::{validate_dump, Browser, BrowserOptions};
use helix_e2e::report::{self, dumps, ArtifactDir, ScenarioResult, Summary, TabFacts, Verdict};
use helix_e2e::timeline::{Direction, Event, OpPhase, PcStateKind, ProbeEvent, StatsSample, Timeline};
use helix_e2e::verdict::InvariantResult;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Secrets planted in the run; none may appear in any artifact.
const KNOWN_TOKEN: &str = "tok-5f1e2d3c4b5a69788796a5b4";
const AES_KEY: &str = "A1B2C3D4E5F60718293A4B5C6D7E8F90";
const AES_IV: &str = "0F1E2D3C4B5A69788796";
const MLW_CREDENTIALS: &str = "mlw-cred-9x8y7z6w";
const TURN_PASSWORD: &str = "turn-secret-77aa88bb";
const PLANTED: &[&str] = &[KNOWN_TOKEN, AES_KEY, AES_IV, MLW_CREDENTIALS, TURN_PASSWORD];

/// A message with every character XML and HTML must escape.
const NASTY: &str = "tab 1 (uid <b>&\"x'</b>) received PeerDisconnect";

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([rgb[0], rgb[1], rgb[2], 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Writes a failing run's artifact directory the way the runner does and returns it.
fn failing_run(base: &Path) -> (ArtifactDir, Summary) {
    let art = ArtifactDir::create(base, "20260101T000000Z-0000000000000007").unwrap();
    let tl = Timeline::new();
    tl.add_secret(KNOWN_TOKEN);
    // The runner masks moonlight-web's credentials by value too (they end up in error texts).
    tl.add_secret(MLW_CREDENTIALS);
    let t0 = 1_800_000_000_000.0;
    let at = |s: f64| t0 + s * 1000.0;
    tl.push_at(at(0.0), Event::Op { name: "create agent session".into(), phase: OpPhase::Start });
    tl.push_at(at(0.1), Event::Op { name: "create agent session".into(), phase: OpPhase::Ok });
    tl.push_at(
        at(0.2),
        Event::WolfEvent { name: "StreamSession".into(), data: json!({"client_id": "4242", "aes_key": AES_KEY, "aes_iv": AES_IV, "rtp_secret": KNOWN_TOKEN}) },
    );
    tl.push_at(
        at(0.3),
        Event::Poll {
            service: "moonlight-web".into(),
            reply: std::sync::Arc::new(helix_e2e::timeline::Reply::Failed(format!("moonlight-web answered 401 to credentials {MLW_CREDENTIALS}"))),
        },
    );
    tl.push_at(at(0.35), Event::Log { service: "moonlight-web".into(), level: "INFO".into(), message: "session m-0 created".into() });
    tl.push_at(at(0.4), Event::Log { service: "wolf".into(), level: "WARN".into(), message: format!("token={KNOWN_TOKEN} rejected <script>") });
    for tab in [0usize, 1] {
        let p = |probe| Event::Tab { tab, probe };
        let start = 1.0 + tab as f64 * 2.0;
        tl.push_at(at(start - 0.5), Event::Op { name: format!("open viewer tab {tab}"), phase: OpPhase::Start });
        tl.push_at(at(start), p(ProbeEvent::PageLoad { url: format!("http://127.0.0.1:9/session/ses_{tab}?e2e_tab={tab}") }));
        tl.push_at(
            at(start + 0.1),
            p(ProbeEvent::WsMessage {
                ws: 0,
                dir: Direction::Sent,
                msg: json!({"AuthenticateAndInit": {"mode": "create", "client_unique_id": format!("uid-{tab}"), "credentials": MLW_CREDENTIALS}}),
            }),
        );
        tl.push_at(
            at(start + 0.2),
            p(ProbeEvent::PcCreated {
                pc: 0,
                config: json!({"iceServers": [{"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": TURN_PASSWORD}]}),
            }),
        );
        tl.push_at(at(start + 0.3), p(ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!({"StageStarting": {"stage": "Launch Streamer"}}) }));
        tl.push_at(at(start + 0.4), p(ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connecting".into() }));
        tl.push_at(at(start + 0.5), Event::Op { name: format!("open viewer tab {tab}"), phase: OpPhase::Ok });
    }
    // Tab 0 streams; tab 1 is told the peer went away and its connection fails.
    for k in 0..8u64 {
        let s = StatsSample { frames_decoded: Some(k * 30), bytes_received: Some(k * 120_000), packets_lost: Some(0), ..StatsSample::default() };
        tl.push_at(at(2.0 + k as f64), Event::Tab { tab: 0, probe: ProbeEvent::Stats { pc: 0, stats: s } });
    }
    tl.push_at(at(1.6), Event::Tab { tab: 0, probe: ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() } });
    tl.push_at(at(4.0), Event::Tab { tab: 1, probe: ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!("PeerDisconnect") } });
    tl.push_at(at(4.1), Event::Tab { tab: 1, probe: ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "failed".into() } });
    tl.push_at(at(9.0), Event::Op { name: "close tab 1".into(), phase: OpPhase::Start });
    tl.push_at(at(9.2), Event::Op { name: "close tab 1".into(), phase: OpPhase::Failed { error: format!("CDP said no ({KNOWN_TOKEN})") } });
    tl.push_at(at(9.3), Event::Browser { tab: Some(1), what: "tab closed".into() });

    art.write("screenshots/tab-0-streaming.png", &png(640, 400, [40, 160, 90])).unwrap();
    art.write("screenshots/tab-1-streaming.png", &png(640, 400, [20, 20, 20])).unwrap();
    art.write("screenshots/tab-1-video-0-streaming.png", &png(320, 180, [90, 90, 90])).unwrap();
    // A dump as Chromium gives it (its own file, with these connections): the TURN password
    // inside the rtcConfiguration string.
    let mut dump: Value = serde_json::from_str(include_str!("fixtures/webrtc-internals/chromium-156.json")).unwrap();
    dump["PeerConnections"] = json!({
            "5-1": {"pid": 77, "url": "http://127.0.0.1:9/session/ses_0?e2e_tab=0", "rtcConfiguration": format!("{{\"iceServers\":[{{\"urls\":[\"turn:127.0.0.1:3478\"],\"credential\":\"{TURN_PASSWORD}\"}}]}}"),
                    "stats": {"IT01V-framesDecoded": {"startTime": "2026-01-01T00:00:01Z", "endTime": "2026-01-01T00:00:09Z", "statsType": "inbound-rtp", "values": "[0,30,60]"}},
                    "updateLog": [{"timestamp": at(1.2), "type": "setConfiguration", "value": format!("{{ iceServers: [turn:127.0.0.1:3478], credential: {TURN_PASSWORD} }}")}]},
            "5-2": {"pid": 77, "url": "http://127.0.0.1:9/session/ses_1?e2e_tab=1", "rtcConfiguration": "{}", "stats": {},
                    "updateLog": [{"timestamp": at(4.1), "type": "connectionstatechange", "value": "\"failed\""}]}
    });
    dumps::write_internals(&art, "final", &[helix_e2e::browser::BrowserDump { browser: None, dump }], &tl.redactor()).unwrap();

    let observations = tl.snapshot();
    report::write_timeline(&art, &observations).unwrap();
    // The stand-in's logs, redacted the way the runner does.
    art.write("logs/wolf.log", tl.redactor().text(&format!("INFO started\nWARN token={KNOWN_TOKEN} rejected\n")).as_bytes()).unwrap();

    let invariants = vec![
        InvariantResult { name: "two-tabs/tabs-connected".into(), passed: false, message: NASTY.into(), at: at(8.0) },
        InvariantResult {
            name: "two-tabs/own-lobby-video".into(),
            passed: false,
            message: "tab 1 (uid-1) video is no video (0 samples, mean luma 0)".into(),
            at: at(8.1),
        },
        InvariantResult { name: "two-tabs/unique-client-ids".into(), passed: true, message: "2 distinct client_unique_id(s)".into(), at: at(8.2) },
    ];
    let state_at_failure = json!({
        "invariant": "two-tabs/tabs-connected",
        "correlation": [
            {"tab": 0, "client_unique_id": "uid-0", "mode": "create", "connection_state": "connected", "errors": [], "mlw_session": "m-0", "mlw_has_websocket": true, "mlw_streamer_alive": true, "wolf_session": "4242", "lobby": "lobby-a", "lobby_client_count": 1, "pixels_lobby": "lobby-a", "pixels": {"samples": 10, "with_video": 10, "black": false, "advancing": true}},
            {"tab": 1, "client_unique_id": "uid-1", "mode": "create", "connection_state": "failed", "errors": ["PeerDisconnect"], "mlw_session": null, "mlw_has_websocket": null, "mlw_streamer_alive": null, "wolf_session": null, "lobby": null, "lobby_client_count": null, "pixels_lobby": null, "pixels": {"samples": 0, "with_video": 0}}
        ],
        "servers": {"wolf_sessions": [{"client_id": "4242", "client_unique_id": "uid-0", "app_id": "1", "client_ip": "198.51.100.2"}], "lobbies": [{"id": "lobby-a", "name": "Agent a"}], "mlw_sessions": [], "memory": null, "errors": []}
    });
    let summary = Summary {
        run_id: "20260101T000000Z-0000000000000007".into(),
        verdict: Verdict::Fail,
        seed: 7,
        target: "embedded reference stack".into(),
        started_at: "2026-01-01T00:00:00.000+00:00".into(),
        duration_s: 10.5,
        // The whole run's command (the default suite); the scenario carries its own.
        replay: "helix-e2e run --seed 7 --fault webrtc-port-range=40000-40000".into(),
        scenarios: vec![ScenarioResult {
            name: "second-connection".into(),
            verdict: Verdict::Fail,
            invariants,
            failed_op: Some("open viewer tab 1".into()),
            state_at_failure: Some(state_at_failure),
            detections: vec![],
            error: None,
            duration_s: 10.0,
            replay: "helix-e2e run second-connection --seed 7 --fault webrtc-port-range=40000-40000".into(),
            evidence_dir: None,
        }],
        tabs: (0..2)
            .map(|tab| TabFacts {
                kind: Default::default(),
                tab,
                url: format!("http://127.0.0.1:9/session/ses_{tab}?e2e_tab={tab}"),
                client_unique_ids: vec![format!("uid-{tab}")],
                session_ids: vec![],
                wolf_sessions: vec![],
                connection_states: vec![if tab == 0 { "connected" } else { "failed" }.into()],
                errors: if tab == 1 { vec!["PeerDisconnect".into()] } else { vec![] },
                screenshot: Some(format!("screenshots/tab-{tab}-streaming.png")),
                browser: "local".into(),
            })
            .collect(),
        artifacts: art.root().display().to_string(),
        error: None,
        logs_missing: vec![],
        resources: None,
        input_latency: vec![],
        shard: None,
        merged_from: vec![],
    };
    let errors = report::write_reports(&art, &summary, &observations);
    assert!(errors.is_empty(), "{errors:?}");
    art.write_json("summary.json", &summary).unwrap();
    (art, summary)
}

fn fresh_base(name: &str) -> PathBuf {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-reports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    base
}

#[test]
fn junit_has_one_case_per_check_and_counts_each_failure_once() {
    let base = fresh_base("junit");
    let (art, summary) = failing_run(&base);
    let text = std::fs::read_to_string(art.root().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("junit.xml is not XML: {e}\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attributes().len(), 0, "the Ant schema allows no attributes on <testsuites>");
    let num = |n: roxmltree::Node, a: &str| -> usize {
        n.attribute(a).unwrap_or_else(|| panic!("<{}> lacks {a}", n.tag_name().name())).parse().unwrap_or_else(|e| panic!("{a}: {e}"))
    };
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 1, "one suite per scenario: {text}");
    let s = suites[0];
    assert_eq!(s.attribute("name"), Some("second-connection"));
    for a in ["name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname", "id", "package"] {
        assert!(s.attribute(a).is_some(), "testsuite lacks {a}");
    }
    assert!(!s.attribute("timestamp").unwrap().contains('+'), "xs:dateTime without a zone");
    // The schema's element order: properties, testcase*, system-out, system-err.
    let order: Vec<&str> = s.children().filter(|n| n.is_element()).map(|n| n.tag_name().name()).collect();
    assert_eq!(order.first(), Some(&"properties"));
    assert_eq!(&order[order.len() - 2..], &["system-out", "system-err"]);
    let cases: Vec<_> = s.children().filter(|n| n.has_tag_name("testcase")).collect();
    // One per invariant check, nothing for the scenario besides.
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(names, ["two-tabs/tabs-connected", "two-tabs/own-lobby-video", "two-tabs/unique-client-ids"]);
    assert_eq!(num(s, "tests"), cases.len());
    for c in &cases {
        assert_eq!(c.attribute("classname"), Some("second-connection"));
        c.attribute("time").unwrap().parse::<f64>().unwrap();
    }
    let failed: Vec<_> = cases.iter().filter_map(|c| c.children().find(|n| n.has_tag_name("failure"))).collect();
    assert_eq!((num(s, "failures"), num(s, "errors")), (2, 0), "two broken invariants are two failures");
    assert_eq!(failed.len(), 2);
    // Escaping round-trips: the parsed attribute is the original text.
    let tc = cases.iter().find(|c| c.attribute("name") == Some("two-tabs/tabs-connected")).unwrap();
    let f = tc.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(f.attribute("message"), Some(NASTY));
    let body = f.text().unwrap();
    let replay = &summary.scenarios[0].replay;
    assert!(
        body.contains(&format!("replay (this scenario alone): {replay}"))
            && body.contains("during operation: open viewer tab 1")
            && body.contains("report.html#inv-")
            && body.contains("screenshots/tab-1-streaming.png")
            && body.contains("webrtc-internals/tab-1/"),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn no_planted_secret_reaches_any_artifact() {
    let base = fresh_base("secrets");
    let (art, _) = failing_run(&base);
    let files = common::all_files(art.root());
    for want in [
        "summary.json",
        "timeline.jsonl",
        "junit.xml",
        "report.md",
        "report.html",
        "logs/wolf.log",
        "webrtc-internals/final.json",
        "webrtc-internals/tab-0/final.json",
    ] {
        assert!(files.contains(&art.root().join(want)), "{want} missing: {files:?}");
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for s in PLANTED {
            assert!(!text.contains(s), "{} contains the planted secret {s}", f.display());
        }
        assert!(!f.to_string_lossy().ends_with(".partial"), "{} left half-written", f.display());
    }
    // The secrets were there to leak: the timeline shows where they were masked.
    let tl = std::fs::read_to_string(art.root().join("timeline.jsonl")).unwrap();
    assert!(tl.contains("\"aes_key\":\"[redacted]\"") && tl.contains("token=[redacted]"), "{tl}");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn per_tab_dumps_load_as_the_importers_format() {
    let base = fresh_base("dumps");
    let (art, _) = failing_run(&base);
    for tab in [0, 1] {
        let p = art.root().join(format!("webrtc-internals/tab-{tab}/final.json"));
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        validate_dump(&v).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let pcs = v["PeerConnections"].as_object().unwrap();
        assert_eq!(pcs.len(), 1);
        assert!(pcs.values().all(|pc| pc["url"].as_str().unwrap().ends_with(&format!("e2e_tab={tab}"))));
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn markdown_says_what_failed_where_and_how_to_replay() {
    let base = fresh_base("md");
    let (art, summary) = failing_run(&base);
    let md = std::fs::read_to_string(art.root().join("report.md")).unwrap();
    assert!(md.starts_with("## helix-e2e FAIL: second-connection"), "{md}");
    assert!(
        md.contains(&format!("- **replay** second-connection alone: `{}`\n- **replay the whole run**: `{}`", summary.scenarios[0].replay, summary.replay)),
        "{md}"
    );
    assert!(md.contains("**two-tabs/tabs-connected**") && md.contains("**two-tabs/own-lobby-video**"));
    assert!(!md.contains("**two-tabs/unique-client-ids**"), "passed invariants stay out of the issue");
    assert!(md.contains("Failed during operation **open viewer tab 1**"));
    assert!(md.contains("tab 1: pc0 failed; problems: ws0 \u{2190} PeerDisconnect, pc0 connection failed"), "{md}");
    assert!(md.contains("(+8.0 s, after open viewer tab 1)"), "{md}");
    assert!(md.contains("tab 1 (uid &lt;b>&amp;\"x'&lt;/b>) received PeerDisconnect"), "markup in messages stays text: {md}");
    assert!(md.contains("| 1 | `uid-1` | failed |"), "{md}");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn contact_sheets_tile_each_tabs_screenshots() {
    let base = fresh_base("sheets");
    let (art, _) = failing_run(&base);
    let one = image::open(art.root().join("contact-sheets/tab-1.png")).unwrap();
    let zero = image::open(art.root().join("contact-sheets/tab-0.png")).unwrap();
    assert!(one.width() > zero.width(), "two screenshots of tab 1 sit side by side");
    let _ = std::fs::remove_dir_all(&base);
}

/// Opens report.html in headless Chromium (no WebRTC, so no network namespace needed), checks
/// what a reader sees and that the page raised no error; leaves a screenshot next to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_renders_in_chromium_and_shows_the_failure() {
    let base = fresh_base("html");
    let (art, _) = failing_run(&base);
    let html = std::fs::read_to_string(art.root().join("report.html")).unwrap();
    // Self-contained: no external fetches; screenshots embedded.
    for bad in ["<link ", "src=\"http", "src=\"screenshots", "<script src"] {
        assert!(!html.contains(bad), "report.html refers outside itself: {bad}");
    }
    assert!(html.contains("src=\"data:image/png;base64,"));

    let timeline = Timeline::new();
    let browser = Browser::launch(BrowserOptions { window: (1400, 1000), ..BrowserOptions::default() }, timeline.clone()).await.expect("launch Chromium");
    let url = format!("file://{}", art.root().join("report.html").display());
    let tab = browser.open_tab(&url, Vec::new()).await.unwrap();
    let eval = |js: &'static str| {
        let b = &browser;
        async move { b.evaluate(tab, js).await.unwrap() }
    };
    assert_eq!(eval("document.getElementById('verdict').textContent").await, json!("FAIL"));
    assert_eq!(
        eval("document.querySelector('#replay').textContent").await,
        json!("helix-e2e run second-connection --seed 7 --fault webrtc-port-range=40000-40000")
    );
    assert_eq!(eval("document.querySelector('#replay-run').textContent").await, json!("helix-e2e run --seed 7 --fault webrtc-port-range=40000-40000"));
    // The failure card carries the message as text (escaped, not parsed as markup).
    let cards = eval("Array.from(document.querySelectorAll('#failures .failure')).map(c => c.textContent)").await;
    let cards: Vec<String> = serde_json::from_value(cards).unwrap();
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert!(cards[0].contains(NASTY) && cards[0].contains("tab 1: pc0 failed"), "{}", cards[0]);
    assert_eq!(eval("document.querySelectorAll('#failures b b').length").await, json!(0), "message markup must not render");
    // The correlation table, the swimlane and the screenshots are there and drawn.
    assert_eq!(eval("document.querySelectorAll('#correlation tbody tr').length >= 2").await, json!(true));
    assert_eq!(eval("document.querySelector('#timeline svg').getBoundingClientRect().height > 100").await, json!(true));
    assert_eq!(eval("Array.from(document.querySelectorAll('.shots img')).filter(i => i.complete && i.naturalWidth > 0).length").await, json!(3));
    // The filters work: log lines without warnings start hidden; showing them adds rows.
    let visible = "Array.from(document.querySelectorAll('#events tbody tr')).filter(r => !r.hidden).length";
    let before = eval(visible).await.as_u64().unwrap();
    assert!(before > 0);
    eval("document.querySelector('#filters input[value=log]').click()").await;
    assert_eq!(eval(visible).await.as_u64().unwrap(), before + 1, "the info log line shows when asked for");
    let png = browser.screenshot(tab).await.unwrap();
    std::fs::write(art.root().join("report-screenshot.png"), png).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let problems: Vec<String> = timeline
        .snapshot()
        .into_iter()
        .filter_map(|o| match o.event {
            Event::Tab { probe: ProbeEvent::Exception { text }, .. } => Some(format!("exception: {text}")),
            Event::Tab { probe: ProbeEvent::Console { level, text }, .. } if level == "error" || level == "warning" => Some(format!("console {level}: {text}")),
            Event::Browser { what, .. } if what != "tab closed" => Some(what),
            _ => None,
        })
        .collect();
    assert!(problems.is_empty(), "the page raised: {problems:?}");
    browser.close().await.unwrap();
    if std::env::var_os("KEEP_REPORT").is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

/// The budget of `report.html`: it must open on a laptop after a long run.
const HTML_BUDGET_BYTES: usize = 5_000_000;

/// A run the size of a 10-minute, 8-tab run, at the rates of a real one. Measured on
/// `helix-e2e run multi-tab-same-lobby --seed 11` (embedded stack, 3 tabs, 23 s, 854
/// observations): per streaming tab 4.9 frame samples/s and 0.96 `getStats()`/s, and 47 other
/// tab events around its connect (20 WebSocket messages, 10 pc states, 5 HTTP, 4 candidates, …);
/// server polls 10/s (Wolf 6.1, moonlight-web 2, API 2); log lines 0.8/s while streaming
/// (moonlight-web) plus about 20 (moonlight-web) and 4 (Wolf) per tab connect or close; Wolf
/// events about 3 per connect or close. Here: 8 tabs streaming for 10 minutes (5 frames/s,
/// 1 stats/s), then a failure naming tab 7, with 4 screenshots per tab.
fn ten_minute_eight_tab_run(base: &Path) -> (ArtifactDir, Summary, Vec<helix_e2e::timeline::Observation>) {
    let art = ArtifactDir::create(base, "20260101T000000Z-0000000000000008").unwrap();
    let tl = Timeline::new();
    let t0 = 1_800_000_000_000.0;
    let at = |s: f64| t0 + s * 1000.0;
    const TABS: usize = 8;
    const SECONDS: usize = 600;
    let log = |_: f64, service: &str, message: String| Event::Log { service: service.into(), level: "INFO".into(), message };
    tl.push_at(at(0.0), Event::Op { name: "create agent session".into(), phase: OpPhase::Start });
    tl.push_at(at(0.2), Event::Op { name: "create agent session".into(), phase: OpPhase::Ok });
    for tab in 0..TABS {
        let s0 = 1.0 + tab as f64 * 2.5;
        let p = |probe| Event::Tab { tab, probe };
        tl.push_at(at(s0 - 0.5), Event::Op { name: format!("open viewer tab for ses_{tab}"), phase: OpPhase::Start });
        tl.push_at(at(s0), p(ProbeEvent::PageLoad { url: format!("http://127.0.0.1:9/session/ses_{tab}?e2e_tab={tab}") }));
        for k in 0..20 {
            let msg = if k == 0 {
                json!({"AuthenticateAndInit": {"mode": "join", "client_unique_id": format!("uid-{tab}")}})
            } else {
                json!({"StageStarting": {"stage": format!("stage {k}")}})
            };
            tl.push_at(at(s0 + 0.01 * k as f64), p(ProbeEvent::WsMessage { ws: 0, dir: if k == 0 { Direction::Sent } else { Direction::Received }, msg }));
        }
        for (k, state) in ["new", "connecting", "connected"].iter().enumerate() {
            tl.push_at(at(s0 + 0.3 + 0.1 * k as f64), p(ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: (*state).into() }));
        }
        for k in 0..20 {
            tl.push_at(at(s0 + 0.02 * k as f64), log(0.0, "moonlight-web", format!("[Streamer agent-{tab}] step {k} of bringing the stream up")));
        }
        for k in 0..4 {
            tl.push_at(at(s0 + 0.05 * k as f64), log(0.0, "wolf", format!("[LOBBY] session {tab} joining, step {k}")));
        }
        for k in 0..3 {
            tl.push_at(at(s0 + 0.1 * k as f64), Event::WolfEvent { name: "StreamSession".into(), data: json!({"client_id": format!("{tab}"), "step": k}) });
        }
        tl.push_at(at(s0 + 0.5), Event::Op { name: format!("open viewer tab for ses_{tab}"), phase: OpPhase::Ok });
        for k in 0..SECONDS * 5 {
            let s = s0 + 0.5 + k as f64 * 0.2;
            if s > SECONDS as f64 {
                break;
            }
            let stamp = Some(helix_e2e::frames::stamp::Stamp { tag: tab as u16 + 1, counter: (k % 1024) as u16 });
            let sample = helix_e2e::timeline::FrameSample {
                video_width: 1280,
                video_height: 720,
                presented: k as u64 * 12,
                mean_luma: 90.0 + (k % 7) as f64,
                hash: format!("{k:x}"),
                luma: String::new(),
                stamp,
            };
            tl.push_at(at(s), p(ProbeEvent::Frame { video: 0, sample }));
            if k % 5 == 0 {
                let st = StatsSample {
                    frames_decoded: Some(k as u64 * 12),
                    bytes_received: Some(k as u64 * 250_000),
                    packets_lost: Some((k / 500) as i64),
                    ..StatsSample::default()
                };
                tl.push_at(at(s), p(ProbeEvent::Stats { pc: 0, stats: st }));
            }
        }
    }
    for k in 0..SECONDS * 10 {
        let service = ["wolf", "wolf", "wolf", "wolf", "wolf", "wolf", "moonlight-web", "moonlight-web", "api", "api"][k % 10];
        tl.push_at(
            at(k as f64 * 0.1),
            Event::Poll { service: service.into(), reply: std::sync::Arc::new(helix_e2e::timeline::Reply::Failed("not polled in this synthetic run".into())) },
        );
    }
    for k in 0..(SECONDS * 4 / 5) {
        tl.push_at(at(k as f64 * 1.25), log(0.0, "moonlight-web", format!("[Streamer agent-{}] stats: rtt 3 ms, {} frames sent", k % TABS, k * 60)));
    }
    // A tab of an earlier scenario, closed long before the failure: folded away.
    tl.push_at(at(30.0), Event::Tab { tab: 8, probe: ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() } });
    tl.push_at(at(40.0), Event::Browser { tab: Some(8), what: "tab closed".into() });
    let fail_at = at(SECONDS as f64 - 1.0);
    tl.push_at(fail_at - 500.0, Event::Tab { tab: 7, probe: ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "failed".into() } });
    let observations = tl.snapshot();
    report::write_timeline(&art, &observations).unwrap();
    for tab in 0..TABS {
        for (k, label) in ["tab-1", "all-tabs", "after-close"].iter().enumerate() {
            art.write(&format!("screenshots/tab-{tab}-video-0-{label}.png"), &png(320, 180, [(30 * tab) as u8, 90 + k as u8 * 20, 60])).unwrap();
        }
        art.write(&format!("screenshots/tab-{tab}-at-failure.png"), &png(1280, 800, [20, 20, (20 * tab) as u8])).unwrap();
    }
    let row = |tab: usize| json!({"tab": tab, "client_unique_id": format!("uid-{tab}"), "mode": "join", "connection_state": if tab == 7 { "failed" } else { "connected" }, "errors": [], "mlw_session": format!("m-{tab}"), "mlw_has_websocket": true, "mlw_streamer_alive": true, "wolf_session": format!("{tab}"), "lobby": "lobby-a", "lobby_client_count": 8, "pixels_lobby": "lobby-a", "pixels": {"samples": 10, "with_video": 10, "black": false, "advancing": true}, "tab_open": true});
    let mut rows: Vec<Value> = vec![row(7)];
    rows.extend((0..7).map(row));
    let replay = "helix-e2e run multi-tab-same-lobby --seed 8 --tabs 8 --hold-s 600".to_string();
    let summary = Summary {
        run_id: "20260101T000000Z-0000000000000008".into(),
        verdict: Verdict::Fail,
        seed: 8,
        target: "embedded reference stack".into(),
        started_at: "2026-01-01T00:00:00.000+00:00".into(),
        duration_s: SECONDS as f64,
        replay: "helix-e2e run --seed 8".into(),
        scenarios: vec![ScenarioResult {
            name: "multi-tab-same-lobby".into(),
            verdict: Verdict::Fail,
            invariants: vec![
                InvariantResult { name: "several-tabs-one-lobby".into(), passed: false, message: "tab 7 is failed, not connected".into(), at: fail_at },
                InvariantResult { name: "unique-client-ids".into(), passed: true, message: "8 distinct".into(), at: fail_at },
            ],
            failed_op: Some("keep tabs idle for 600.0 s".into()),
            state_at_failure: Some(
                json!({"invariant": "several-tabs-one-lobby", "failing_tabs": [7], "correlation": rows, "servers": {"wolf_sessions": [], "lobbies": [], "mlw_sessions": [], "memory": null, "errors": []}}),
            ),
            detections: vec![],
            error: None,
            duration_s: SECONDS as f64,
            replay,
            evidence_dir: None,
        }],
        tabs: (0..TABS)
            .map(|tab| TabFacts {
                kind: Default::default(),
                tab,
                url: format!("http://127.0.0.1:9/session/ses_{tab}?e2e_tab={tab}"),
                client_unique_ids: vec![format!("uid-{tab}")],
                session_ids: vec![format!("m-{tab}")],
                wolf_sessions: vec![format!("{tab}")],
                connection_states: vec!["new".into(), "connecting".into(), "connected".into()],
                errors: vec![],
                screenshot: Some(format!("screenshots/tab-{tab}-at-failure.png")),
                browser: "local".into(),
            })
            .collect(),
        artifacts: art.root().display().to_string(),
        error: None,
        logs_missing: vec![],
        resources: None,
        input_latency: vec![],
        shard: None,
        merged_from: vec![],
    };
    (art, summary, observations)
}

#[test]
fn report_html_of_a_ten_minute_eight_tab_run_stays_within_budget() {
    let base = fresh_base("budget");
    let (art, summary, observations) = ten_minute_eight_tab_run(&base);
    let errors = report::write_reports(&art, &summary, &observations);
    assert!(errors.is_empty(), "{errors:?}");
    let html = std::fs::read_to_string(art.root().join("report.html")).unwrap();
    let sections: Vec<String> = html.split("<section id=\"").skip(1).map(|s| format!("{} {} kB", s.split('"').next().unwrap_or(""), s.len() / 1000)).collect();
    eprintln!("{} observations; report.html {} kB: {}", observations.len(), html.len() / 1000, sections.join(", "));
    assert!(observations.len() > 30_000, "the run is as big as meant: {}", observations.len());
    assert!(html.len() < HTML_BUDGET_BYTES, "report.html is {} bytes, over the {HTML_BUDGET_BYTES} budget: {}", html.len(), sections.join(", "));
    // Still the report: the failure, the failing tab's lane and its screenshots are there.
    assert!(html.contains("tab 7 is failed, not connected") && html.contains("id=\"tab-7\""));
    assert!(html.contains("src=\"data:image/png;base64,"));
    // The long-closed tab is folded (a closed <details>), the failing ones are not.
    let folded = html.split("<details id=\"closed-tabs-timeline\">").nth(1).expect("closed tabs folded in the timeline");
    assert!(folded.starts_with("<summary>1 tab(s) closed before the first failure: tab 8</summary>"), "{}", &folded[..200]);
    let cards = html.split("<details id=\"closed-tabs\">").nth(1).expect("closed tabs folded among the cards");
    assert!(cards.contains("id=\"tab-8\"") && !cards.contains("id=\"tab-7\""));
    // The header leads with the scenario's own command.
    assert!(html.contains("<code id=\"replay\">helix-e2e run multi-tab-same-lobby --seed 8 --tabs 8 --hold-s 600</code>"));
    assert!(html.contains("<code id=\"replay-run\">helix-e2e run --seed 8</code>"));
    let _ = std::fs::remove_dir_all(&base);
}

/// A soak's page: 300 viewers each streamed a couple of seconds and were closed, and the run
/// passed. Every tab is folded away; only the 40 closed last are drawn, so the page stays within
/// its budget however many cycles the soak ran (each drawn tab costs its lanes and card).
#[test]
fn report_html_of_a_soak_draws_only_the_tabs_closed_last() {
    let base = fresh_base("soak");
    let art = ArtifactDir::create(&base, "20260101T000000Z-0000000000000300").unwrap();
    let tl = Timeline::new();
    let t0 = 1_800_000_000_000.0;
    let at = |s: f64| t0 + s * 1000.0;
    const TABS: usize = 300;
    for tab in 0..TABS {
        let s0 = tab as f64 * 2.0;
        let p = |probe| Event::Tab { tab, probe };
        tl.push_at(at(s0), p(ProbeEvent::PageLoad { url: format!("http://127.0.0.1:9/session/ses_{}?e2e_tab={tab}", tab % 4) }));
        for (k, state) in ["new", "connecting", "connected"].iter().enumerate() {
            tl.push_at(at(s0 + 0.1 * k as f64), p(ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: (*state).into() }));
        }
        for k in 0..8 {
            let stamp = Some(helix_e2e::frames::stamp::Stamp { tag: (tab % 4) as u16 + 1, counter: k as u16 });
            let sample = helix_e2e::timeline::FrameSample {
                video_width: 320,
                video_height: 180,
                presented: k as u64 * 6,
                mean_luma: 90.0,
                hash: format!("{tab:x}-{k:x}"),
                luma: String::new(),
                stamp,
            };
            tl.push_at(at(s0 + 0.4 + 0.2 * k as f64), p(ProbeEvent::Frame { video: 0, sample }));
            tl.push_at(
                at(s0 + 0.4 + 0.2 * k as f64),
                p(ProbeEvent::Stats { pc: 0, stats: StatsSample { frames_decoded: Some(k as u64 * 6), ..StatsSample::default() } }),
            );
        }
        tl.push_at(at(s0 + 2.0), Event::Browser { tab: Some(tab), what: "tab closed".into() });
    }
    tl.push_at(at(TABS as f64 * 2.0 + 1.0), Event::Log { service: "wolf".into(), level: "INFO".into(), message: "[LOBBY] the last check".into() });
    let observations = tl.snapshot();
    report::write_timeline(&art, &observations).unwrap();
    let summary = Summary {
        run_id: "20260101T000000Z-0000000000000300".into(),
        verdict: Verdict::Pass,
        seed: 300,
        target: "embedded reference stack".into(),
        started_at: "2026-01-01T00:00:00.000+00:00".into(),
        duration_s: TABS as f64 * 2.0 + 1.0,
        replay: "helix-e2e run soak --seed 300".into(),
        scenarios: vec![ScenarioResult {
            name: "soak".into(),
            verdict: Verdict::Pass,
            invariants: vec![InvariantResult {
                name: "after-soak/all-sessions-reconnect".into(),
                passed: true,
                message: "4 streaming".into(),
                at: at(TABS as f64 * 2.0),
            }],
            failed_op: None,
            state_at_failure: None,
            detections: vec![],
            error: None,
            duration_s: TABS as f64 * 2.0,
            replay: "helix-e2e run soak --seed 300".into(),
            evidence_dir: None,
        }],
        tabs: vec![],
        artifacts: art.root().display().to_string(),
        error: None,
        logs_missing: vec![],
        resources: None,
        input_latency: vec![],
        shard: None,
        merged_from: vec![],
    };
    let errors = report::write_reports(&art, &summary, &observations);
    assert!(errors.is_empty(), "{errors:?}");
    let html = std::fs::read_to_string(art.root().join("report.html")).unwrap();
    assert!(html.len() < HTML_BUDGET_BYTES, "report.html is {} bytes", html.len());
    let folded = html.split("<details id=\"closed-tabs-timeline\">").nth(1).expect("closed tabs folded in the timeline");
    assert!(folded.starts_with("<summary>300 tab(s) closed before the end of the run: tab 0, tab 1,"), "{}", &folded[..200]);
    assert!(folded.contains("(the 40 closed last are drawn; the others are in summary.json and timeline.jsonl)"));
    let cards = html.split("<details id=\"closed-tabs\">").nth(1).expect("closed tabs folded among the cards");
    assert!(cards.contains("id=\"tab-299\"") && cards.contains("id=\"tab-260\"") && !cards.contains("id=\"tab-259\"") && !cards.contains("id=\"tab-0\""));
    let _ = std::fs::remove_dir_all(&base);
}
