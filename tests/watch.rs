//! `helix-e2e watch` against a running stand-in, as an operator runs it against a deployment: a
//! target file, no browser. Viewers come and go (a webrtc-rs peer over moonlight-web's real
//! WebSocket, as `tests/faults.rs` drives it), then F5 and F7 are switched on mid-way through
//! the stand-in's own control file; each must be named exactly once on stdout and counted in
//! `/metrics`, whose text must parse with a Prometheus parser. A signal then ends the watch with
//! its summary and nothing of it left running. Then the canary probes (`--probe-every`): their
//! time to the first frame, their failure on black pictures, and F10 named for the canary after
//! a Wolf restart that the API (no-lobby-recreate) does not recover from.

mod common;

use futures::{SinkExt, StreamExt};
use helix_e2e::refstack::{faults::CONTROL_FILE, streamer::rtc};
use helix_e2e::sut::control::processes::ProcessStack;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn init(credentials: &str, session_id: &str, client_unique_id: &str) -> String {
    json!({"AuthenticateAndInit": {"credentials": credentials, "session_id": session_id, "mode": "create",
        "client_unique_id": client_unique_id, "host_id": 0, "app_id": 134906179, "bitrate": 40000, "packet_size": 1024,
        "fps": 60, "width": 3840, "height": 2160, "video_sample_queue_size": 100, "play_audio_local": false,
        "audio_sample_queue_size": 20, "video_supported_formats": 1, "video_colorspace": "Rec709", "video_color_range_full": true}})
    .to_string()
}

/// One viewer on moonlight-web's socket: it follows the viewer page's script (offer after the
/// negotiation stage, answer the server's second offer, trickle candidates) when `with_peer`,
/// waits for `until` among the server's messages, then closes its socket with a close frame.
async fn viewer(mlw_url: &str, credentials: &str, n: u32, with_peer: bool, until: impl Fn(&Value) -> bool) {
    let url = format!("{}/api/host/stream", mlw_url.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::text(init(credentials, &format!("agent-ses_w{n}-u"), &format!("helix-agent-ses_w{n}-L-u")))).await.unwrap();
    let pc = rtc::new_peer(&rtc::PeerOptions { loopback_only: true, ..Default::default() }).await.unwrap();
    for label in rtc::INPUT_CHANNELS {
        pc.create_data_channel(label, None).await.unwrap();
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let cand = out_tx.clone();
    pc.on_ice_candidate(Box::new(move |c| {
        let tx = cand.clone();
        Box::pin(async move {
            if let Some(c) = c {
                let _ = tx.send(rtc::candidate_message(&c.to_json().unwrap(), "0").to_string());
            }
        })
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        tokio::select! {
            m = stream.next() => {
                let Some(Ok(Message::Text(t))) = m else { panic!("socket ended; got {seen:?}") };
                let v: Value = serde_json::from_str(&t).unwrap();
                if until(&v) {
                    break;
                }
                if with_peer {
                    common::peer_signal(&pc, &v, &out_tx).await;
                }
                seen.push(v);
            }
            Some(out) = out_rx.recv() => { let _ = sink.send(Message::text(out)).await; }
            _ = tokio::time::sleep_until(deadline) => panic!("nothing awaited came within 20 s; got {seen:?}"),
        }
    }
    let _ = sink.close().await;
    let _ = pc.close().await;
}

fn connected(m: &Value) -> bool {
    m.get("ConnectionComplete").is_some()
}

fn negotiating(m: &Value) -> bool {
    m == &json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})
}

/// A target file for `stack`, as an operator writes one for a deployment (secrets by name).
fn target_file(stack: &ProcessStack) -> std::path::PathBuf {
    let e = stack.endpoints();
    let log = |s: &str| e.logs.iter().find(|(n, _)| n == s).unwrap().1.clone();
    let target = stack.dir().join("watched.toml");
    std::fs::write(
        &target,
        format!(
            "name = \"stand-in under watch\"\nreference = true\n[helix]\nurl = \"{}\"\nemail_env = \"WATCH_EMAIL\"\npassword_env = \"WATCH_PASSWORD\"\n\
             [wolf]\nsocket = \"{}\"\nhttps = \"{}\"\n[moonlight_web]\nurl = \"{}\"\ncredentials_env = \"WATCH_MLW\"\n\
             [logs]\nwolf = {{ file = \"{}\" }}\nmoonlight-web = {{ file = \"{}\" }}\napi = {{ file = \"{}\" }}\n",
            e.helix_url,
            e.wolf_socket.display(),
            e.wolf_moonlight_http,
            e.moonlight_web_url,
            log("wolf").display(),
            log("moonlight-web").display(),
            log("api").display()
        ),
    )
    .unwrap();
    target
}

/// `helix-e2e watch --json --target … --metrics 127.0.0.1:0` plus `extra`, its stdout and
/// stderr lines collected as they come; marked so the test can tell what it left running.
struct Watching {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_reader: std::thread::JoinHandle<()>,
    port: u16,
}

/// Lines of `from`, pushed onto `to` as they come.
fn collect_lines(from: impl std::io::Read + Send + 'static, to: Arc<Mutex<Vec<String>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            to.lock().unwrap().push(l);
        }
    })
}

impl Watching {
    async fn start(stack: &ProcessStack, mark: &str, extra: &[&str]) -> Watching {
        let e = stack.endpoints();
        // Port 0: the watch binds a free port itself and says which (a port picked here and
        // bound there could be taken in between by anything that connects out).
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_helix-e2e"))
            .args(["watch", "--json", "--target"])
            .arg(target_file(stack))
            .args(["--metrics", "127.0.0.1:0"])
            .args(extra)
            .env("WATCH_EMAIL", &e.user_email)
            .env("WATCH_PASSWORD", &e.user_password)
            .env("WATCH_MLW", &e.moonlight_credentials)
            .env(common::MARK, mark)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = collect_lines(child.stdout.take().unwrap(), lines.clone());
        let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr_reader = collect_lines(child.stderr.take().unwrap(), stderr.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let said = stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.split_once("metrics at http://127.0.0.1:").and_then(|(_, rest)| rest.strip_suffix("/metrics")?.parse::<u16>().ok()));
            if let Some(port) = said {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the watch ended ({status}) before serving /metrics:\n{}", stderr.lock().unwrap().join("\n"));
            }
            assert!(Instant::now() < deadline, "the watch did not say where it serves /metrics within 30 s:\n{}", stderr.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(scrape(port).await.is_some(), "the watch said it serves /metrics on port {port}, but nothing answers there");
        Watching { child, lines, reader, stderr, stderr_reader, port }
    }

    /// SIGINT, then its exit status, stderr and stdout lines (within 40 s: a probe under way
    /// closes its browser first).
    async fn stop(mut self) -> (std::process::ExitStatus, String, Vec<String>) {
        // SAFETY: the pid is the watch this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the watch did not end within 40 s of SIGINT");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.reader.join().unwrap();
        self.stderr_reader.join().unwrap();
        let lines = self.lines.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().join("\n");
        (status, stderr, lines)
    }
}

/// Switch the stand-in's faults through its control file (written whole), and wait until both
/// followers said they took it.
async fn switch(dir: &Path, faults: &str, logs: &[(String, std::path::PathBuf)]) {
    let before: Vec<usize> = logs.iter().map(|(_, p)| took(p)).collect();
    let tmp = dir.join(format!("{CONTROL_FILE}.tmp"));
    std::fs::write(&tmp, format!("{faults}\n")).unwrap();
    std::fs::rename(&tmp, dir.join(CONTROL_FILE)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    for ((service, path), n) in logs.iter().zip(before) {
        while took(path) == n {
            assert!(Instant::now() < deadline, "{service} never took {faults}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn took(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("live-faults: switched on").count()
}

/// The `named` lines so far, as (id, message).
fn named(lines: &Mutex<Vec<String>>) -> Vec<(String, String)> {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "named")
        .map(|v| (v["id"].as_str().unwrap_or("").to_string(), v["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

async fn until_named(lines: &Mutex<Vec<String>>, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !named(lines).iter().any(|(i, _)| i == id) {
        assert!(Instant::now() < deadline, "{id} not named within {within:?}; named: {:?}", named(lines));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(port: u16) -> Option<String> {
    let r = reqwest::Client::builder().no_proxy().build().unwrap().get(format!("http://127.0.0.1:{port}/metrics")).send().await.ok()?;
    r.text().await.ok()
}

/// A sample's value in a parsed scrape.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(|s| match s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_names_f5_and_f7_switched_on_mid_way_once_each_on_stdout_and_in_metrics() {
    let t0 = Instant::now();
    // The streamer children inherit this: their peers gather loopback candidates only.
    std::env::set_var(rtc::LOOPBACK_ONLY_ENV, "1");
    let stack = ProcessStack::start_temp(env!("CARGO_BIN_EXE_helix-e2e").as_ref(), Vec::new()).await.unwrap();
    let e = stack.endpoints();
    let dir = stack.dir().to_path_buf();
    let log = |s: &str| e.logs.iter().find(|(n, _)| n == s).unwrap().1.clone();
    let mark = format!("watch-{}", std::process::id());
    let w = Watching::start(&stack, &mark, &[]).await;
    let (lines, port) = (w.lines.clone(), w.port);

    // Healthy traffic first: viewers connect and leave, and nothing is named.
    let creds = e.moonlight_credentials.clone();
    for n in 1..=2 {
        viewer(&e.moonlight_web_url, &creds, n, true, connected).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(named(&lines).is_empty(), "named on a healthy stand-in: {:?}", named(&lines));

    // F5 mid-way: a viewer leaves and moonlight-web keeps its session, socketless, its
    // streamer running.
    let followers = [("wolf".to_string(), log("wolf")), ("moonlight-web".to_string(), log("moonlight-web"))];
    switch(&dir, "stuck-session", &followers).await;
    viewer(&e.moonlight_web_url, &creds, 3, false, negotiating).await;
    until_named(&lines, "F5", Duration::from_secs(15)).await;

    // F7 next (F5's switch off, its stuck session still there): a viewer leaves, moonlight-web
    // lets go and Wolf ignores the /cancel.
    switch(&dir, "orphan-wolf-session", &followers).await;
    viewer(&e.moonlight_web_url, &creds, 4, true, connected).await;
    until_named(&lines, "F7", Duration::from_secs(20)).await;
    // More of the same is the same incident, not a new line.
    viewer(&e.moonlight_web_url, &creds, 5, true, connected).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = named(&lines);
    let ids: Vec<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["F5", "F7"], "each once, nothing else: {got:?}");
    assert!(got[0].1.contains("has_websocket:false") && got[0].1.contains("agent-ses_w3-u"), "F5 cites its evidence: {}", got[0].1);
    assert!(got[1].1.contains("moonlight-web no longer has") && got[1].1.contains("helix-agent-ses_w4-L-u"), "F7 cites its evidence: {}", got[1].1);

    let text = scrape(port).await.expect("/metrics answers");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the metrics parse");
    let v = |name: &str, labels: &[(&str, &str)]| sample(&parsed, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"));
    assert_eq!(v("helix_e2e_failures_named_total", &[("id", "F5"), ("name", "stuck-session")]), 1.0, "{text}");
    assert_eq!(v("helix_e2e_failures_named_total", &[("id", "F7"), ("name", "lobby-mismatch")]), 1.0, "{text}");
    assert_eq!(v("helix_e2e_failures_named_total", &[("id", "F6")]), 0.0, "{text}");
    assert_eq!(v("helix_e2e_stuck_sessions", &[]), 1.0, "{text}");
    assert!(v("helix_e2e_mismatched_wolf_sessions", &[]) >= 1.0, "{text}");
    assert!(v("helix_e2e_wolf_sessions", &[]) >= 1.0, "{text}");
    assert_eq!(v("helix_e2e_moonlight_web_sessions", &[("has_websocket", "false"), ("streamer_alive", "true")]), 1.0, "{text}");
    // Wolf's StreamSession events count every session of a viewer with a peer (1, 2, 4, 5);
    // moonlight-web's log line every viewer's session (1 to 5), however short.
    assert_eq!(v("helix_e2e_sessions_created_total", &[("service", "wolf")]), 4.0, "{text}");
    assert_eq!(v("helix_e2e_sessions_created_total", &[("service", "moonlight-web")]), 5.0, "{text}");
    assert_eq!(v("helix_e2e_sctp_error_lines_total", &[]), 0.0, "{text}");
    assert_eq!(v("helix_e2e_launch_timeouts_total", &[]), 0.0, "{text}");

    // A signal ends it: its summary, exit 1 (something was named), nothing of it left.
    let (status, stderr, lines) = w.stop().await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped by SIGINT") && stderr.contains("named F5 stuck-session, F7 lobby-mismatch"), "{stderr}");
    assert!(!stderr.contains(&e.user_password) && !stderr.contains(&e.moonlight_credentials), "a secret reached the watch's output");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!((last["event"].as_str(), last["named"].clone()), (Some("stopped"), json!({"F5": 1, "F7": 1})), "{last}");
    assert_eq!(common::marked_processes(&mark), Vec::<(u32, String)>::new(), "the watch left processes behind");
    stack.shutdown().await;
    eprintln!("watch test took {:.1} s", t0.elapsed().as_secs_f64());
}

/// The probes' lines so far.
fn probes(lines: &Mutex<Vec<String>>) -> Vec<Value> {
    lines.lock().unwrap().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v["event"] == "probe").collect()
}

async fn until_probes(lines: &Mutex<Vec<String>>, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let p = probes(lines);
        if p.len() >= n {
            return p;
        }
        assert!(Instant::now() < deadline, "{n} probe(s) not done within {within:?}; got {p:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `--probe-every`: a real Chromium tab on a canary session the watch creates, every 5 s. On the
/// healthy stand-in each probe sees its own lobby's stamped picture and records its time to the
/// first frame; once Wolf encodes black (F8's switch, on through the control file) the next
/// probe fails and says what it saw. The canary session is stopped when the watch ends, and no
/// browser stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_probes_time_the_first_frame_and_fail_when_the_picture_goes_black() {
    let t0 = Instant::now();
    let stack = ProcessStack::start_temp(env!("CARGO_BIN_EXE_helix-e2e").as_ref(), Vec::new()).await.unwrap();
    let e = stack.endpoints();
    let log = |s: &str| e.logs.iter().find(|(n, _)| n == s).unwrap().1.clone();
    let mark = format!("watch-probe-{}", std::process::id());
    let w = Watching::start(&stack, &mark, &["--probe-every", "5s"]).await;
    let lines = w.lines.clone();

    let healthy = until_probes(&lines, 2, Duration::from_secs(40)).await;
    let canary = healthy[0]["session"].as_str().expect("the probe names its canary").to_string();
    for p in &healthy {
        assert_eq!(p["ok"], true, "a healthy stand-in's probe failed: {p}");
        assert_eq!(p["session"], canary.as_str(), "one canary for every probe: {p}");
        assert!(p["detail"].as_str().unwrap().starts_with("streams its own lobby "), "{p}");
        let first = p["first_frame_s"].as_f64().expect("a first frame time");
        assert!(first > 0.0 && first < 30.0, "{p}");
        let browser = p["browser_start_s"].as_f64().expect("a browser start time");
        assert!(browser > 0.0 && browser < 30.0, "{p}");
    }

    // Black pictures from the next Wolf session on: the next probe's tab connects but shows black.
    let followers = [("wolf".to_string(), log("wolf")), ("moonlight-web".to_string(), log("moonlight-web"))];
    switch(stack.dir(), "black-after=1", &followers).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        if let Some(f) = probes(&lines).into_iter().find(|p| p["ok"] == false) {
            break f;
        }
        assert!(Instant::now() < deadline, "no probe failed within 60 s of black pictures: {:?}", probes(&lines));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.starts_with("not streaming its own lobby after 30 s") && detail.contains("pixels black"), "{failed}");

    let text = scrape(w.port).await.expect("/metrics answers");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the metrics parse");
    let counted = |result: &str| sample(&parsed, "helix_e2e_probes_total", &[("result", result)]).unwrap_or_else(|| panic!("no probes_total in\n{text}"));
    assert!(counted("ok") >= 2.0 && counted("failed") >= 1.0, "{text}");
    let histogram = parsed.samples.iter().find(|s| s.metric == "helix_e2e_probe_time_to_first_frame_seconds").unwrap_or_else(|| panic!("{text}"));
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else { panic!("not a histogram: {:?}", histogram.value) };
    let all = buckets.iter().find(|b| b.less_than == f64::INFINITY).map(|b| b.count).unwrap_or(0.0);
    assert!(all >= 2.0, "every probe with a first frame is in the histogram: {text}");
    let started = parsed.samples.iter().find(|s| s.metric == "helix_e2e_probe_browser_start_seconds").unwrap_or_else(|| panic!("{text}"));
    let prometheus_parse::Value::Histogram(buckets) = &started.value else { panic!("not a histogram: {:?}", started.value) };
    let all = buckets.iter().find(|b| b.less_than == f64::INFINITY).map(|b| b.count).unwrap_or(0.0);
    assert!(all >= 3.0, "every probe whose browser started is in the histogram: {text}");

    let (status, stderr, out) = w.stop().await;
    assert_eq!(status.code(), Some(1), "a failed probe fails the watch: {stderr}");
    let last: Value = serde_json::from_str(out.last().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped", "{last}");
    assert!(last["probes_ok"].as_u64().unwrap() >= 2 && last["probes_failed"].as_u64().unwrap() >= 1, "{last}");
    assert!(!stderr.contains(&e.user_password) && !stderr.contains(&e.moonlight_credentials), "a secret reached the watch's output");
    let lobbies = helix_e2e::sut::wolf::WolfClient::new(&e.wolf_socket).lobbies().await.unwrap();
    assert!(!lobbies.iter().any(|l| l.helix_session() == Some(canary.as_str())), "the canary {canary} outlived the watch: {lobbies:?}");
    assert_eq!(common::marked_processes(&mark), Vec::<(u32, String)>::new(), "the watch left processes (a browser?) behind");
    stack.shutdown().await;
    eprintln!("probe test took {:.1} s", t0.elapsed().as_secs_f64());
}

/// F10 in a watch: the canary's agent session is followed whether or not anyone streams it, so
/// when Wolf restarts and the API (its `no-lobby-recreate` switch on) keeps believing in the
/// lobby Wolf lost, the watch names the ghost with the canary's session and lobby. The restart
/// is the stand-in's own (kill and respawn of its Wolf), not the watch's doing; if the watch saw
/// Wolf down long enough to name it (D2), that death explains what follows for the model's
/// window only (shortened here by the thresholds), and the ghost outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ghost_of_the_canary_session_is_named() {
    use helix_e2e::sut::control::{Service, ServiceControl};
    let t0 = Instant::now();
    let faults = vec![helix_e2e::refstack::faults::Fault::NoLobbyRecreate];
    let stack = ProcessStack::start_temp(env!("CARGO_BIN_EXE_helix-e2e").as_ref(), faults).await.unwrap();
    let thresholds = stack.dir().join("thresholds.toml");
    // The model's window is the longest detector window plus 20 s: 60 s of stuck_secs made it 80.
    std::fs::write(&thresholds, "stuck_secs = 10.0\n").unwrap();
    let mark = format!("watch-ghost-{}", std::process::id());
    let w = Watching::start(&stack, &mark, &["--probe-every", "5s", "--thresholds", thresholds.to_str().unwrap()]).await;
    let lines = w.lines.clone();
    let first = until_probes(&lines, 1, Duration::from_secs(40)).await.remove(0);
    assert_eq!(first["ok"], true, "{first}");
    let canary = first["session"].as_str().unwrap().to_string();
    let lobby = first["detail"].as_str().unwrap().trim_start_matches("streams its own lobby ").to_string();

    stack.restart(Service::Wolf).await.unwrap();
    until_named(&lines, "F10", Duration::from_secs(90)).await;
    let got = named(&lines);
    let f10 = &got.iter().find(|(i, _)| i == "F10").unwrap().1;
    assert!(f10.contains(&canary) && f10.contains(&lobby) && f10.contains("which Wolf does not have"), "F10 cites the canary and its lost lobby: {f10}");
    assert!(got.iter().all(|(i, m)| i == "F10" || (i == "D2" && m.starts_with("wolf "))), "only the ghost, and Wolf's restart if it was seen: {got:?}");

    let (status, stderr, _) = w.stop().await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(common::marked_processes(&mark), Vec::<(u32, String)>::new(), "the watch left processes behind");
    stack.shutdown().await;
    eprintln!("ghost test took {:.1} s", t0.elapsed().as_secs_f64());
}
