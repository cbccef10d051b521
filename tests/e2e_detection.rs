//! Every fault switch of the reference stack, run once through real Chromium with the scenario
//! that exposes it: the driver must name exactly that failure. Plus a clean run that names
//! nothing. (The statistics over many runs are `helix-e2e matrix`, not CI.)
//!
//! F14 (`reconnect-teardown-race`) is found by a random walk: seed 7 presses Reconnect on a
//! streaming tab at its 4th operation and must break there
//! (`helix-e2e run random-walk --seed 7 --ops 4 --fault reconnect-teardown-race` names it).

mod common;

use common::{marked_processes, MARK};
use helix_e2e::catalog::FailureId;
use helix_e2e::matrix::{Kill, CASES};
use helix_e2e::report::Summary;
use std::path::Path;
use std::process::Command;

#[test]
fn each_fault_is_named_and_a_clean_run_names_nothing() {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-detect-{}", std::process::id()));
    let thresholds = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/detectors-matrix.toml");
    let mut wrong = Vec::new();
    // The other clean baselines (restart-chaos, multi-tab-same-lobby) pass in e2e_scenarios.rs,
    // and a pass names nothing: once is enough for CI.
    // Kill rows (`kill:…`) are injected by the matrix's harness; tests/e2e_lifecycle.rs covers
    // each death through a real run.
    common::become_subreaper();
    let leftovers = common::project_leftovers();
    for (i, case) in
        CASES.iter().enumerate().filter(|(_, c)| c.switch.is_some_and(|s| Kill::of(s).is_none()) || c.switch.is_none() && c.scenario == "second-connection")
    {
        let mark = format!("detect-{}-{i}", std::process::id());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_helix-e2e"));
        cmd.args(["run", case.scenario, "--json", "--seed", "7", "--time-scale", "0.2", "--thresholds"])
            .arg(&thresholds)
            .arg("--artifacts")
            .arg(&base)
            .env(MARK, &mark);
        if let Some(s) = case.switch {
            cmd.args(["--fault", s]);
        }
        let out = cmd.output().expect("run helix-e2e");
        let label = case.label();
        let summary: Summary =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{label}: no summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        let named: Vec<String> = summary.scenarios.iter().flat_map(|s| &s.detections).map(|d| format!("{} {}", d.fault, d.message)).collect();
        let faults: Vec<FailureId> = summary.scenarios.iter().flat_map(|s| &s.detections).map(|d| d.fault).collect();
        let expected: Vec<FailureId> = case.fault.into_iter().collect();
        eprintln!("{label} ({}, {}): named {faults:?}", case.switch.unwrap_or("clean"), case.scenario);
        if faults != expected {
            wrong.push(format!("{label} with {:?}: expected {expected:?}, named {named:?} ({})", case.switch, summary.artifacts));
        }
        if case.scenario == "random-walk" && case.switch.is_some() {
            // The walk breaks at the Reconnect it races (what `failed_op` names); the scenario
            // stops there, so `--ops` up to that operation reproduces it.
            let failed_op = summary.scenarios.first().and_then(|s| s.failed_op.as_deref()).unwrap_or_default();
            if !failed_op.starts_with("reconnect tab ") {
                wrong.push(format!("{label}: the walk did not break at a Reconnect but at {failed_op:?} ({})", summary.artifacts));
            }
        }
        if case.switch.is_none() {
            // Input that round-trips: every tab that streamed has its input-to-picture latency,
            // and on the stand-in its median is under 100 ms.
            let streamed: Vec<usize> = summary.tabs.iter().filter(|t| !t.wolf_sessions.is_empty()).map(|t| t.tab).collect();
            for tab in &streamed {
                match summary.input_latency.iter().find(|l| l.tab == *tab) {
                    Some(l) if l.median_ms.is_some_and(|m| m < 100.0) => eprintln!("input-to-picture latency, {l}"),
                    other => wrong.push(format!("{label}: tab {tab} streamed, input latency {other:?} ({})", summary.artifacts)),
                }
            }
            if streamed.is_empty() {
                wrong.push(format!("{label}: no tab streamed ({})", summary.artifacts));
            }
        }
        let code = out.status.code();
        if case.switch.is_some() && code != Some(1) || case.switch.is_none() && code != Some(0) {
            wrong.push(format!("{label}: exit code {code:?}, verdict {:?}", summary.verdict));
        }
        let left = marked_processes(&mark);
        assert!(left.is_empty(), "{label}: processes left behind: {left:?}");
    }
    assert!(wrong.is_empty(), "misnamed or missed:\n{}", wrong.join("\n"));
    let left = common::leaks_since(&leftovers, &[&base]);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}
