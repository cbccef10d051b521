//! End to end: Ctrl-C in the middle of a run (SIGINT to the whole process group, as a terminal
//! sends it) still leaves a consistent artifact directory: whole files only, every report, a
//! `summary.json` saying `interrupted`, exit code 2, and no process of the run left behind.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Live processes carrying `marker` in their environment: the run and everything it started
/// (Chromium, the stand-in, streamers inherit it), and nothing of other runs on this machine.
fn processes_marked(marker: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if !env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default();
        out.push((pid, cmd));
    }
    out
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn ctrl_c_mid_run_leaves_a_consistent_interrupted_artifact_directory() {
    let marker_value = format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let marker = format!("HELIX_E2E_TEST_RUN={marker_value}");
    let base = std::env::temp_dir().join(format!("helix-e2e-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut child = Command::new(env!("CARGO_BIN_EXE_helix-e2e"))
        .args(["run", "second-connection", "--seed", "3", "--artifacts"])
        .arg(&base)
        .env("HELIX_E2E_TEST_RUN", &marker_value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so the signal reaches the run and its children like a
        // terminal's Ctrl-C, and nothing else.
        .process_group(0)
        .spawn()
        .expect("start helix-e2e");
    let pgid = child.id() as i32;
    std::thread::sleep(Duration::from_secs(8));
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
    assert!(processes_marked(&marker).len() > 2, "the marker does not reach the run's children; the leak check would prove nothing");
    // SAFETY: signalling a process group this test created.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            panic!("the run did not end within 90 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut s);
        s
    };
    assert_eq!(status.code(), Some(2), "exit code; stderr:\n{stderr}");

    let runs: Vec<PathBuf> = std::fs::read_dir(&base).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let dir = &runs[0];
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json")).unwrap();
    assert_eq!(summary["verdict"], "interrupted", "{summary:#}");
    assert!(summary["error"].as_str().unwrap_or("").contains("interrupted"), "{summary:#}");
    let mut files = Vec::new();
    all_files(dir, &mut files);
    for f in &files {
        assert!(!f.to_string_lossy().contains(".partial"), "half-written file left: {}", f.display());
    }
    for want in ["timeline.jsonl", "junit.xml", "report.html", "report.md"] {
        assert!(dir.join(want).exists(), "{want} missing; files: {files:?}");
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("junit.xml: {e}\n{junit}"));
    assert!(junit.contains("type=\"interrupted\""), "the interruption is a CI error: {junit}");
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().starts_with("## helix-e2e INTERRUPTED"));

    // Give the process tree a moment to be reaped, then check nothing is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    let leaked = loop {
        let leaked = processes_marked(&marker);
        if leaked.is_empty() || Instant::now() > deadline {
            break leaked;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(leaked.is_empty(), "processes left behind: {leaked:?}\nstderr:\n{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
