//! End to end: the real binary drives real Chromium against the embedded reference stack
//! through `second-connection`, and leaves artifacts that show each tab its own lobby.

mod common;

use common::{marked_processes, MARK};
use helix_e2e::catalog::FailureId;
use helix_e2e::frames::analysis::stamp_from_png;
use helix_e2e::report::{Summary, Verdict};
use helix_e2e::scenario::spec::RunSpec;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Runs share two cores: one at a time keeps timings honest.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run the binary; returns the exit code, the JSON summary and stderr.
/// The run carries `mark` (see `MARK`) down to every process it starts.
fn run(args: &[&str], base: &Path, mark: &str) -> (Option<i32>, Summary, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_helix-e2e")).args(args).arg("--json").arg("--artifacts").arg(base).env(MARK, mark).output().expect("run helix-e2e");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary: Summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON summary on stdout ({e}); stderr:\n{stderr}"));
    (out.status.code(), summary, stderr)
}

#[test]
fn second_connection_passes_and_leaves_artifacts_and_no_processes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::become_subreaper();
    let before = common::project_leftovers();
    let mark = format!("pass-{}", std::process::id());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-e2e-{}", std::process::id()));
    let seed = common::seed();
    let (code, summary, stderr) = run(&["run", "second-connection", "--seed", &seed], &base, &mark);
    assert_eq!(code, Some(0), "exit code; stderr:\n{stderr}\nsummary: {summary:#?}");
    assert_eq!(summary.verdict, Verdict::Pass, "{summary:#?}");
    assert_eq!(Some(summary.seed), seed.parse::<u64>().ok());

    let scenario = &summary.scenarios[0];
    let names: Vec<&str> = scenario.invariants.iter().map(|i| i.name.as_str()).collect();
    for want in [
        "two-tabs/tabs-connected",
        "two-tabs/own-lobby-video",
        "two-tabs/client-count-matches",
        "two-tabs/unique-client-ids",
        "two-tabs/create-mode",
        "two-tabs/no-leftovers",
        "one-page/own-lobby-video",
        "one-page/no-leftovers",
    ] {
        assert!(names.contains(&want), "invariant {want} was not checked: {names:?}");
    }

    // Every viewer had its own client_unique_id.
    let uids: Vec<String> = summary.tabs.iter().flat_map(|t| t.client_unique_ids.iter().cloned()).collect();
    let distinct: BTreeSet<&String> = uids.iter().collect();
    assert!(uids.len() >= 4 && distinct.len() == uids.len(), "client_unique_ids: {uids:?}");

    // The screenshots show two different lobbies (neither the Wolf UI), decoded here from the PNGs.
    let dir = Path::new(&summary.artifacts);
    assert!(dir.join("summary.json").exists() && dir.join("timeline.jsonl").exists());
    let stamp = |name: &str| {
        let png = std::fs::read(dir.join("screenshots").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        stamp_from_png(&png).unwrap_or_else(|| panic!("{name} carries no stamp"))
    };
    let (a, b) = (stamp("tab-0-video-0-streaming.png"), stamp("tab-1-video-0-streaming.png"));
    assert!(a.tag != 0 && b.tag != 0 && a.tag != b.tag, "tab 0 shows tag {}, tab 1 tag {}", a.tag, b.tag);
    let (c, d) = (stamp("tab-2-video-0-streaming.png"), stamp("tab-2-video-1-streaming.png"));
    assert!(c.tag != 0 && d.tag != 0 && c.tag != d.tag, "one page: tags {} and {}", c.tag, d.tag);

    // Secrets of the run stay out of the artifacts.
    let timeline = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap();
    assert!(!timeline.contains("\"aes_key\":\"") || timeline.contains("\"aes_key\":\"[redacted]\""));

    let leaked = marked_processes(&mark);
    assert!(leaked.is_empty(), "processes left behind: {leaked:?}");
    let left = common::leaks_since(&before, &[&base]);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}

/// With a WebRTC port range that fits one peer only (F2's mechanism: every streamer peer binds
/// its own sockets), the second viewer cannot connect and the run fails on named invariants.
#[test]
fn a_port_range_for_one_peer_fails_the_second_viewer_by_name() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::become_subreaper();
    let before = common::project_leftovers();
    let mark = format!("f2-{}", std::process::id());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-e2e-f2-{}", std::process::id()));
    let seed = common::seed();
    let (code, summary, stderr) = run(&["run", "second-connection", "--seed", &seed, "--keep-going", "--fault", "webrtc-port-range=40000-40000"], &base, &mark);
    assert_eq!(code, Some(1), "a failed invariant exits 1; stderr:\n{stderr}");
    assert_eq!(summary.verdict, Verdict::Fail);
    let scenario = &summary.scenarios[0];
    let failed: Vec<(&str, &str)> = scenario.invariants.iter().filter(|i| !i.passed).map(|i| (i.name.as_str(), i.message.as_str())).collect();
    let tabs_connected = failed.iter().find(|(n, _)| *n == "two-tabs/tabs-connected").unwrap_or_else(|| panic!("tabs-connected did not fail: {failed:?}"));
    assert!(tabs_connected.1.starts_with("tab 1 "), "the second tab is named: {}", tabs_connected.1);
    assert!(failed.iter().any(|(n, _)| *n == "two-tabs/own-lobby-video"), "{failed:?}");
    assert!(failed.iter().all(|(_, m)| !m.contains("tab 0 ")), "the first tab is unaffected: {failed:?}");
    assert!(scenario.state_at_failure.as_ref().is_some_and(|s| s["correlation"].is_array()), "the state at the failure is kept");
    // The detector names the failure by its catalog entry, for the second tab, and nothing else.
    let detections = &scenario.detections;
    let faults: Vec<FailureId> = detections.iter().map(|d| d.fault).collect();
    assert_eq!(faults, vec![FailureId::F2], "{detections:?}");
    assert_eq!(detections[0].tab, Some(1));
    assert!(failed.iter().any(|(n, _)| *n == "F2 webrtc-ports-exhausted"), "{failed:?}");
    assert!(summary.replay.contains("--fault webrtc-port-range=40000-40000"));
    let leaked = marked_processes(&mark);
    assert!(leaked.is_empty(), "processes left behind: {leaked:?}");
    let left = common::leaks_since(&before, &[&base]);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}

/// F4's two hypotheses, told apart: with Wolf dropping lobby sessions that send no input
/// (`control-idle-timeout`), the run names F4; the same run with real mouse input over every
/// viewer's `<video>` (`--keep-alive-input`, CDP mouse events) keeps every session and passes.
#[test]
fn keep_alive_input_keeps_sessions_that_an_input_idle_timeout_drops() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::become_subreaper();
    let before = common::project_leftovers();
    let mark = format!("f4-{}", std::process::id());
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-e2e-f4-{}", std::process::id()));
    let thresholds = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/detectors-matrix.toml");
    let seed = common::seed();
    let common = ["run", "second-connection", "--seed", &seed, "--time-scale", "0.2", "--thresholds", thresholds, "--fault", "control-idle-timeout=3"];
    let named = |summary: &Summary| -> Vec<String> { summary.scenarios[0].detections.iter().map(|d| d.fault.to_string()).collect() };

    let (code, summary, stderr) = run(&common, &base, &mark);
    assert_eq!((code, named(&summary)), (Some(1), vec!["F4".to_string()]), "without input F4 is named; stderr:\n{stderr}");

    let mut with_input = common.to_vec();
    with_input.push("--keep-alive-input");
    let (code, summary, stderr) = run(&with_input, &base, &mark);
    assert_eq!(code, Some(0), "with input nothing is dropped; stderr:\n{stderr}\nsummary: {summary:#?}");
    assert!(named(&summary).is_empty(), "{summary:#?}");
    let dir = Path::new(&summary.artifacts);
    let timeline = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap();
    for tab in 0..3 {
        assert!(timeline.contains(&format!("keep-alive input: mouse moves over tab {tab}'s video")), "tab {tab} got no input");
    }
    // The moves were real DOM events the viewer's own handlers turned into stream input: Wolf
    // (the stand-in's, in its log) saw input start on each of the three sessions.
    let started = timeline.lines().filter(|l| l.contains("\"service\":\"wolf\"") && l.contains("input from the client started")).count();
    assert!(
        started >= 3,
        "Wolf saw input on {started} session(s):\n{}",
        timeline.lines().filter(|l| l.contains("input from the client")).collect::<Vec<_>>().join("\n")
    );
    // Closing a tab ends its control peer; before the first close none may end.
    let before_close = &timeline[..timeline.find("\"close tab ").expect("tabs were closed")];
    assert!(!before_close.contains("[ENET] disconnected client"), "Wolf dropped a control peer despite the input");
    let run_json: RunSpec = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert!(run_json.keep_alive_input, "a replay sends input too");

    let leaked = marked_processes(&mark);
    assert!(leaked.is_empty(), "processes left behind: {leaked:?}");
    let left = common::leaks_since(&before, &[&base]);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}
