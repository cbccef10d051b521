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
    dumps::write_internals(&art, "final", &dump, &tl.redactor()).unwrap();

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
        replay: "helix-e2e run second-connection --seed 7 --fault webrtc-port-range=40000-40000".into(),
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
        }],
        tabs: (0..2)
            .map(|tab| TabFacts {
                tab,
                url: format!("http://127.0.0.1:9/session/ses_{tab}?e2e_tab={tab}"),
                client_unique_ids: vec![format!("uid-{tab}")],
                session_ids: vec![],
                wolf_sessions: vec![],
                connection_states: vec![if tab == 0 { "connected" } else { "failed" }.into()],
                errors: if tab == 1 { vec!["PeerDisconnect".into()] } else { vec![] },
                screenshot: Some(format!("screenshots/tab-{tab}-streaming.png")),
            })
            .collect(),
        artifacts: art.root().display().to_string(),
        error: None,
        logs_missing: vec![],
    };
    let errors = report::write_reports(&art, &summary, &observations);
    assert!(errors.is_empty(), "{errors:?}");
    art.write_json("summary.json", &summary).unwrap();
    (art, summary)
}

fn fresh_base(name: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!("helix-e2e-reports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    base
}

#[test]
fn junit_is_well_formed_with_the_schema_attributes_and_consistent_counts() {
    let base = fresh_base("junit");
    let (art, _) = failing_run(&base);
    let text = std::fs::read_to_string(art.root().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("junit.xml is not XML: {e}\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let num = |n: roxmltree::Node, a: &str| -> usize {
        n.attribute(a).unwrap_or_else(|| panic!("<{}> lacks {a}", n.tag_name().name())).parse().unwrap_or_else(|e| panic!("{a}: {e}"))
    };
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 1);
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for s in &suites {
        for a in ["name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname", "id", "package"] {
            assert!(s.attribute(a).is_some(), "testsuite lacks {a}");
        }
        assert!(!s.attribute("timestamp").unwrap().contains('+'), "xs:dateTime without a zone");
        // The schema's element order: properties, testcase*, system-out, system-err.
        let order: Vec<&str> = s.children().filter(|n| n.is_element()).map(|n| n.tag_name().name()).collect();
        assert_eq!(order.first(), Some(&"properties"));
        assert_eq!(&order[order.len() - 2..], &["system-out", "system-err"]);
        let cases: Vec<_> = s.children().filter(|n| n.has_tag_name("testcase")).collect();
        // One per scenario plus one per invariant.
        assert_eq!(cases.len(), 1 + 3);
        assert_eq!(num(*s, "tests"), cases.len());
        for c in &cases {
            for a in ["name", "classname", "time"] {
                assert!(c.attribute(a).is_some(), "testcase lacks {a}");
            }
            c.attribute("time").unwrap().parse::<f64>().unwrap();
        }
        let failed: Vec<_> = cases.iter().filter_map(|c| c.children().find(|n| n.has_tag_name("failure"))).collect();
        assert_eq!(num(*s, "failures"), failed.len());
        assert_eq!(failed.len(), 3, "the scenario and its two failed invariants");
        for f in &failed {
            assert!(f.attribute("message").is_some() && f.attribute("type").is_some());
        }
        // Escaping round-trips: the parsed attribute is the original text.
        let tc = cases.iter().find(|c| c.attribute("name") == Some("two-tabs/tabs-connected")).unwrap();
        let f = tc.children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(f.attribute("message"), Some(NASTY));
        let body = f.text().unwrap();
        assert!(
            body.contains("evidence:")
                && body.contains("report.html#inv-")
                && body.contains("screenshots/tab-1-streaming.png")
                && body.contains("webrtc-internals/tab-1/"),
            "{body}"
        );
        tests += num(*s, "tests");
        failures += num(*s, "failures");
        errors += num(*s, "errors");
    }
    assert_eq!((num(root, "tests"), num(root, "failures"), num(root, "errors")), (tests, failures, errors));
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
    assert!(md.contains(&summary.replay));
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
