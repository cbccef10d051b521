//! End to end over remote browsers: `second-connection` with its tabs in two Chromium processes
//! the driver did not launch and reaches only through `--browser` URLs (one given as the
//! browser's WebSocket, one as its DevTools address), against the embedded stand-in. The
//! verdict, the invariants and the artifacts are those of the same run with the local browser;
//! and a remote browser killed mid-run is named as the browser's death (B2) with its endpoint —
//! not a pass, and not blamed on the stack; a run killed outright leaves no page in it.
//!
//! The remote browsers here are plain processes on loopback (the project's network rule), started
//! with the switches the driver gives its own Chromium; `docker-compose.e2e.yaml`'s `browsers`
//! profile starts the same as containers (README "Remote browsers").

mod common;

use helix_e2e::catalog::FailureId;
use helix_e2e::report::{Summary, Verdict};
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs share two cores: one at a time keeps timings honest.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A Chromium started the way a browser container starts it: its own profile, DevTools on a
/// loopback port it picks. Killed (its whole process group) and its profile removed on drop.
struct RemoteChromium {
    child: Child,
    profile: PathBuf,
    port: u16,
    /// `/devtools/browser/<id>`.
    path: String,
}

impl RemoteChromium {
    fn start(name: &str) -> RemoteChromium {
        let profile = std::env::temp_dir().join(format!("helix-e2e-remote-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let exe = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
        let child = Command::new(&exe)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--use-fake-ui-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let mut me = RemoteChromium { child, profile, port: 0, path: String::new() };
        // Chromium writes the port it bound and the browser's path once DevTools listen.
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(me.profile.join("DevToolsActivePort")) {
                if let Some((port, path)) = text.split_once('\n').filter(|(_, p)| p.starts_with("/devtools/browser/")) {
                    me.port = port.trim().parse().unwrap();
                    me.path = path.trim().to_string();
                    return me;
                }
            }
            assert!(Instant::now() < until, "{name}: Chromium wrote no DevToolsActivePort within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn websocket(&self) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, self.path)
    }

    fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URLs of the pages open in it, from its own `/json/list`.
    fn pages(&self) -> Vec<String> {
        use std::io::{Read, Write};
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return Vec::new() };
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if conn.write_all(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return Vec::new();
        }
        // Chromium keeps the connection open: read the headers, then Content-Length bytes.
        let (mut got, mut chunk) = (Vec::new(), [0u8; 8192]);
        let body = loop {
            let Ok(n) = conn.read(&mut chunk) else { return Vec::new() };
            if n == 0 {
                return Vec::new();
            }
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let length = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
            if length.is_some_and(|n| body.len() >= n) {
                break body.to_string();
            }
        };
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        list.iter().filter_map(|p| p["url"].as_str().map(str::to_string)).collect()
    }

    fn kill(&mut self) {
        // SAFETY: a signal to the process group this test started.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for RemoteChromium {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Starts the binary with `--json`, its artifacts under `base`.
fn start(args: &[&str], base: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_helix-e2e"))
        .args(args)
        .arg("--json")
        .arg("--artifacts")
        .arg(base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run helix-e2e")
}

/// Waits for the run; returns the exit code, the summary and stderr.
fn finish(child: std::process::Child) -> (Option<i32>, Summary, String) {
    let out = child.wait_with_output().expect("helix-e2e ran");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary: Summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON summary on stdout ({e}); stderr:\n{stderr}"));
    (out.status.code(), summary, stderr)
}

/// The artifact files of a run, relative to its directory, with the whole-browser dumps left
/// out (`webrtc-internals/final.json` for the local browser, `webrtc-internals/browser-K/…` for
/// remote ones): the per-tab dumps, screenshots, sheets, reports and logs must be the same.
fn artifact_set(dir: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut rest, mut browser_dumps) = (BTreeSet::new(), BTreeSet::new());
    for f in common::all_files(dir) {
        let rel = f.strip_prefix(dir).unwrap().display().to_string();
        let whole_browser = rel.starts_with("webrtc-internals/") && !rel.starts_with("webrtc-internals/tab-");
        if whole_browser {
            browser_dumps.insert(rel);
        } else {
            rest.insert(rel);
        }
    }
    (rest, browser_dumps)
}

fn invariants(s: &Summary) -> Vec<(String, bool)> {
    s.scenarios.iter().flat_map(|sc| sc.invariants.iter().map(|i| (i.name.clone(), i.passed))).collect()
}

#[test]
fn second_connection_over_two_remote_browsers_is_the_local_run() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-e2e-remote-{}", std::process::id()));
    let seed = common::seed();
    let (a, b) = (RemoteChromium::start("a"), RemoteChromium::start("b"));
    let t0 = Instant::now();
    let remote = ["run", "second-connection", "--seed", &seed, "--time-scale", "0.2", "--browser", &a.websocket(), "--browser", &b.http()];
    let (code, over_remote, stderr) = finish(start(&remote, &base));
    eprintln!("over two remote browsers: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!((code, over_remote.verdict), (Some(0), Verdict::Pass), "stderr:\n{stderr}\nsummary: {over_remote:#?}");
    // Round-robin by tab index: tabs 0 and 2 in the first browser, tab 1 in the second.
    let placed: Vec<(usize, &str)> = over_remote.tabs.iter().map(|t| (t.tab, t.browser.as_str())).collect();
    assert_eq!(placed, [(0, a.websocket().as_str()), (1, b.http().as_str()), (2, a.websocket().as_str())]);
    // The run left nothing open in the browsers it did not own, and did not close them.
    for (name, browser) in [("a", &a), ("b", &b)] {
        let pages = browser.pages();
        assert!(pages.iter().all(|u| !u.contains("e2e_tab=") && !u.contains("webrtc-internals")), "{name} keeps the run's pages: {pages:?}");
    }

    let t0 = Instant::now();
    let (code, local, stderr) = finish(start(&["run", "second-connection", "--seed", &seed, "--time-scale", "0.2"], &base));
    eprintln!("with the local browser: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!((code, local.verdict), (Some(0), Verdict::Pass), "stderr:\n{stderr}\nsummary: {local:#?}");
    assert!(local.tabs.iter().all(|t| t.browser == "local"), "{:?}", local.tabs);

    assert_eq!(invariants(&over_remote), invariants(&local), "the same invariants, passed alike");
    let (remote_files, remote_dumps) = artifact_set(Path::new(&over_remote.artifacts));
    let (local_files, local_dumps) = artifact_set(Path::new(&local.artifacts));
    assert_eq!(remote_files, local_files, "the same artifacts, less the whole-browser dumps");
    assert_eq!(local_dumps, BTreeSet::from(["webrtc-internals/final.json".to_string()]));
    assert_eq!(remote_dumps, BTreeSet::from(["webrtc-internals/browser-0/final.json".to_string(), "webrtc-internals/browser-1/final.json".to_string()]));
    for tab in 0..3 {
        assert!(remote_files.contains(&format!("webrtc-internals/tab-{tab}/final.json")), "tab {tab}'s dump, from its browser's");
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Runs `second-connection` over two remote browsers, does `to_second` to the second one once
/// tab 1 is open in it, and returns the run's detections (it must fail by exactly one: B2).
fn lose_the_second_browser_mid_run(name: &str, to_second: impl FnOnce(&mut RemoteChromium)) -> String {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-e2e-remote-{name}-{}", std::process::id()));
    let seed = common::seed();
    let (a, mut b) = (RemoteChromium::start(&format!("{name}-a")), RemoteChromium::start(&format!("{name}-b")));
    let run = start(&["run", "second-connection", "--seed", &seed, "--time-scale", "0.2", "--browser", &a.http(), "--browser", &b.websocket()], &base);
    // Tab 1 lives in the second browser.
    let until = Instant::now() + Duration::from_secs(60);
    while !b.pages().iter().any(|u| u.contains("e2e_tab=1")) {
        assert!(Instant::now() < until, "tab 1 never opened in the second browser");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    to_second(&mut b);
    let t0 = Instant::now();
    let (code, summary, stderr) = finish(run);
    eprintln!("{name}: the run ended {:.1} s after the second browser was lost", t0.elapsed().as_secs_f64());
    assert_eq!(code, Some(1), "a named failure exits 1; stderr:\n{stderr}\nsummary: {summary:#?}");
    assert_eq!(summary.verdict, Verdict::Fail);
    let detections: Vec<_> = summary.scenarios.iter().flat_map(|s| s.detections.iter()).collect();
    let faults: Vec<FailureId> = detections.iter().map(|d| d.fault).collect();
    // Not B3 for the tab in it either: a lost browser explains its silent tabs.
    assert_eq!(faults, vec![FailureId::B2], "only the browser's death, nothing of the stack's: {detections:#?}");
    let message = detections[0].message.clone();
    assert!(message.contains(&b.websocket()), "the endpoint is the evidence: {message}");
    let _ = std::fs::remove_dir_all(&base);
    message
}

#[test]
fn a_remote_browser_killed_mid_run_is_named_as_the_browsers_death_with_its_endpoint() {
    let message = lose_the_second_browser_mid_run("kill", RemoteChromium::kill);
    assert!(message.contains("refuses connections"), "{message}");
}

/// A browser that stops answering while its port still accepts connections (stopped: the kernel
/// still completes the handshake) is lost too, by the silence on its DevTools connection.
#[test]
fn a_remote_browser_that_stops_answering_mid_run_is_named_as_the_browsers_death() {
    let message = lose_the_second_browser_mid_run("stop", |b| {
        // SAFETY: a signal to the process group this test started; Drop kills it later.
        unsafe { libc::kill(-(b.child.id() as i32), libc::SIGSTOP) };
    });
    assert!(message.contains("did not answer on its DevTools connection"), "{message}");
}

/// A run killed outright (SIGKILL: no cleanup runs) leaves nothing open in a remote browser that
/// outlives it: its tabs and its webrtc-internals page each live in a browser context disposed of
/// when the DevTools connection goes.
#[test]
fn a_run_killed_outright_leaves_no_page_in_a_remote_browser() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-e2e-remote-killed-{}", std::process::id()));
    let a = RemoteChromium::start("killed");
    let mut run = start(&["run", "second-connection", "--seed", &common::seed(), "--time-scale", "0.2", "--browser", &a.websocket()], &base);
    let ours = |u: &String| u.contains("e2e_tab=") || u.contains("webrtc-internals");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let pages = a.pages();
        if pages.iter().any(|u| u.contains("e2e_tab=0")) && pages.iter().any(|u| u.contains("webrtc-internals")) {
            break;
        }
        assert!(Instant::now() < until, "tab 0 and the internals page never opened: {pages:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    run.kill().unwrap();
    let _ = run.wait();
    let until = Instant::now() + Duration::from_secs(10);
    let mut left = a.pages();
    while left.iter().any(ours) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        left = a.pages();
    }
    assert!(!left.iter().any(ours), "the killed run's pages are still open: {left:?}");
    assert!(!left.is_empty(), "the browser itself outlives the run, with its own page: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}
