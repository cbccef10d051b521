//! Synthetic viewers (`src/synthetic`) beside one real Chromium tab, judged by the same checks
//! and detectors: a clean `concurrent-sessions` with three of them passes and every one of them
//! streamed its own lobby's stamped picture; with a WebRTC port range that fits fewer peers than
//! viewers, F2 is named and the synthetic viewers that got no port are named with their
//! synthetic identity (`synthetic tab N`) in the failed checks (`--keep-going`: the run goes on
//! past the detection to the checks, which judge every viewer).

mod common;

use common::{marked_processes, MARK};
use helix_e2e::catalog::FailureId;
use helix_e2e::report::Summary;
use helix_e2e::timeline::ViewerKind;
use std::path::Path;
use std::process::Command;

const SYNTHETIC: usize = 3;

fn run(base: &Path, mark: &str, fault: Option<&str>) -> (Option<i32>, Summary) {
    let thresholds = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/detectors-matrix.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_helix-e2e"));
    cmd.args(["run", "concurrent-sessions", "--json", "--seed", "7", "--time-scale", "0.2", "--agent-sessions", "1", "--drop", "0"])
        .args(["--synthetic-viewers", &SYNTHETIC.to_string(), "--thresholds"])
        .arg(&thresholds)
        .arg("--artifacts")
        .arg(base)
        .env(MARK, mark);
    if let Some(f) = fault {
        // On past the first named failure, so the checks judge every viewer: which of the four
        // get no port is a race, and the detector names one viewer only.
        cmd.args(["--fault", f, "--keep-going"]);
    }
    let out = cmd.output().expect("run helix-e2e");
    let summary: Summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let left = marked_processes(mark);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    (out.status.code(), summary)
}

#[test]
fn synthetic_viewers_stream_beside_a_tab_and_are_judged_by_name() {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-synthetic-{}", std::process::id()));
    common::become_subreaper();

    let (code, clean) = run(&base, &format!("synthetic-clean-{}", std::process::id()), None);
    let failed: Vec<String> = clean.scenarios.iter().flat_map(|s| &s.invariants).filter(|r| !r.passed).map(|r| format!("{}: {}", r.name, r.message)).collect();
    let named: Vec<String> = clean.scenarios.iter().flat_map(|s| &s.detections).map(|d| d.message.clone()).collect();
    assert_eq!(code, Some(0), "clean run failed ({}): {failed:?} {named:?}", clean.artifacts);
    let kinds: Vec<ViewerKind> = clean.tabs.iter().map(|t| t.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == ViewerKind::Synthetic).count(), SYNTHETIC, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == ViewerKind::Tab).count(), 1, "{kinds:?}");
    for t in clean.tabs.iter().filter(|t| t.kind == ViewerKind::Synthetic) {
        assert!(!t.wolf_sessions.is_empty(), "synthetic tab {} never had a Wolf session: {t:?}", t.tab);
        assert!(t.client_unique_ids.iter().all(|u| u.starts_with("helix-agent-ses")), "{:?}", t.client_unique_ids);
    }

    // Two ports: at most two peers get one (each binds a socket per candidate), four viewers.
    let (code, broken) = run(&base, &format!("synthetic-f2-{}", std::process::id()), Some("webrtc-port-range=40000-40001"));
    assert_eq!(code, Some(1), "{}", broken.artifacts);
    let faults: Vec<FailureId> = broken.scenarios.iter().flat_map(|s| &s.detections).map(|d| d.fault).collect();
    assert!(faults.contains(&FailureId::F2), "F2 not named: {faults:?} ({})", broken.artifacts);
    let messages: Vec<&str> = broken
        .scenarios
        .iter()
        .flat_map(|s| s.detections.iter().map(|d| d.message.as_str()).chain(s.invariants.iter().filter(|r| !r.passed).map(|r| r.message.as_str())))
        .collect();
    assert!(messages.iter().any(|m| m.contains("synthetic tab ")), "no synthetic viewer named: {messages:?} ({})", broken.artifacts);
    let _ = std::fs::remove_dir_all(&base);
}
