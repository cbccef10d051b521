//! End to end: Ctrl-C in the middle of a run (SIGINT to the whole process group, as a terminal
//! sends it) still leaves a consistent artifact directory: whole files only, every report, a
//! `summary.json` saying `interrupted`, exit code 2, and no process of the run left behind.

mod common;

use common::{all_files, marked_processes, MARK};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_mid_run_leaves_a_consistent_interrupted_artifact_directory() {
    let marker_value = format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let seed = common::seed();
    let mut child = Command::new(env!("CARGO_BIN_EXE_helix-e2e"))
        .args(["run", "second-connection", "--seed", &seed, "--artifacts"])
        .arg(&base)
        .env(MARK, &marker_value)
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
    assert!(marked_processes(&marker_value).len() > 2, "the marker does not reach the run's children; the leak check would prove nothing");
    // SAFETY: signalling a process group this test created.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let signalled = Instant::now();
    let deadline = signalled + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            panic!("the run did not end within 60 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(signalled.elapsed() < Duration::from_secs(5), "Ctrl-C took {:?} to end the run", signalled.elapsed());
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
    let summary: helix_e2e::report::Summary = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json")).unwrap();
    assert_eq!(summary.verdict, helix_e2e::report::Verdict::Interrupted, "{summary:#?}");
    assert!(summary.error.as_deref().unwrap_or("").contains("interrupted"), "{summary:#?}");
    let files = all_files(dir);
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
        let leaked = marked_processes(&marker_value);
        if leaked.is_empty() || Instant::now() > deadline {
            break leaked;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(leaked.is_empty(), "processes left behind: {leaked:?}\nstderr:\n{stderr}");
    let left = common::leftovers_of(pgid as u32);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}
