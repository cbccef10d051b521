//! The detection matrix: for every documented fault, run the scenario that exposes it N times
//! with the fault switched on, plus N clean runs, and tabulate how often the driver named the
//! failure correctly, how often it named something else, how fast it decided, and — on clean
//! runs — how often it raised a false alarm.
//!
//! Each run is a separate `helix-e2e run` process (its own stack, browser and namespace), so
//! runs cannot leak state into one another.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One row of the matrix: a fault switch, the scenario that exposes it, the expected name.
pub struct Case {
    pub fault: &'static str,
    pub switch: Option<&'static str>,
    pub scenario: &'static str,
}

/// The cases, in catalog order; then the clean baselines, one per scenario the faults use (a
/// detector that decides early must stay silent wherever it runs).
pub const CASES: &[Case] = &[
    Case { fault: "F1", switch: Some("cert-subject-collision"), scenario: "second-connection" },
    Case { fault: "F2", switch: Some("webrtc-port-range=40000-40000"), scenario: "second-connection" },
    Case { fault: "F3", switch: Some("join-not-counted"), scenario: "second-connection" },
    Case { fault: "F4", switch: Some("control-idle-timeout=3"), scenario: "second-connection" },
    Case { fault: "F5", switch: Some("stuck-session"), scenario: "second-connection" },
    Case { fault: "F6", switch: Some("zombie-streamer"), scenario: "second-connection" },
    Case { fault: "F6", switch: Some("zombie-streamer=listed"), scenario: "second-connection" },
    Case { fault: "F7", switch: Some("orphan-wolf-session"), scenario: "second-connection" },
    Case { fault: "F8", switch: Some("black-after=2"), scenario: "second-connection" },
    Case { fault: "F9", switch: Some("freeze-after=3"), scenario: "second-connection" },
    // Ghosts need a restart of Wolf under streaming tabs.
    Case { fault: "F10", switch: Some("no-lobby-recreate"), scenario: "restart-chaos" },
    Case { fault: "F11", switch: Some("sctp-errors"), scenario: "second-connection" },
    Case { fault: "F12", switch: Some("slow-tls=15000"), scenario: "second-connection" },
    // Reuse needs two viewers of one agent session.
    Case { fault: "F13", switch: Some("session-id-reuse"), scenario: "multi-tab-same-lobby" },
    Case { fault: "clean", switch: None, scenario: "second-connection" },
    Case { fault: "clean", switch: None, scenario: "restart-chaos" },
    Case { fault: "clean", switch: None, scenario: "multi-tab-same-lobby" },
];

#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub seed: u64,
    pub verdict: String,
    /// Faults the detectors named, e.g. `["F2"]`.
    pub named: Vec<String>,
    /// Latency of the expected detection, first symptom → verdict.
    pub latency_ms: Option<f64>,
    pub artifacts: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub fault: String,
    pub switch: Option<String>,
    pub scenario: String,
    pub runs: usize,
    /// Runs whose detections include the expected fault.
    pub named_correctly: usize,
    /// Runs that named some other fault (for the clean row: false alarms).
    pub misnamed: usize,
    pub median_latency_ms: Option<f64>,
    pub outcomes: Vec<RunOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("unknown fault {0:?} for the matrix (known: {list})", list = CASES.iter().map(|c| c.fault).collect::<Vec<_>>().join(", "))]
    UnknownFault(String),
    #[error("cannot run {exe}: {source}")]
    Spawn { exe: PathBuf, source: std::io::Error },
}

pub struct MatrixOptions {
    pub exe: PathBuf,
    pub runs: usize,
    /// Only these rows (fault ids or `clean`); all when empty.
    pub only: Vec<String>,
    pub thresholds: Option<PathBuf>,
    pub artifacts: PathBuf,
    pub first_seed: u64,
}

/// The cases the options select, in catalog order.
pub fn selected(opts: &MatrixOptions) -> Result<Vec<&'static Case>, MatrixError> {
    for f in &opts.only {
        if !CASES.iter().any(|c| c.fault == f) {
            return Err(MatrixError::UnknownFault(f.clone()));
        }
    }
    Ok(CASES.iter().filter(|c| opts.only.is_empty() || opts.only.iter().any(|o| o == c.fault)).collect())
}

/// Run one case `opts.runs` times; progress on stderr.
pub fn run_case(opts: &MatrixOptions, case: &Case) -> Result<Row, MatrixError> {
    let mut outcomes = Vec::new();
    for i in 0..opts.runs {
        let seed = opts.first_seed + i as u64;
        let o = run_once(opts, case, seed)?;
        eprintln!("matrix: {} run {}/{}: {} named {:?}{}", case.fault, i + 1, opts.runs, o.verdict, o.named, o.latency_ms.map(|l| format!(" in {l:.0} ms")).unwrap_or_default());
        outcomes.push(o);
    }
    Ok(tabulate(case, outcomes))
}

fn run_once(opts: &MatrixOptions, case: &Case, seed: u64) -> Result<RunOutcome, MatrixError> {
    let mut cmd = Command::new(&opts.exe);
    // Scenario waits at a fifth of the design's times: a run only has to expose the fault.
    cmd.args(["run", case.scenario, "--json", "--seed", &seed.to_string(), "--time-scale", "0.2", "--artifacts"]).arg(&opts.artifacts);
    if let Some(s) = case.switch {
        cmd.args(["--fault", s]);
    }
    if let Some(t) = &opts.thresholds {
        cmd.arg("--thresholds").arg(t);
    }
    let out = cmd.output().map_err(|source| MatrixError::Spawn { exe: opts.exe.clone(), source })?;
    let summary: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            return Ok(RunOutcome { seed, verdict: "error".into(), named: vec![], latency_ms: None, artifacts: String::new(), error: Some(format!("no summary ({e}): {tail}")) });
        }
    };
    let detections: Vec<&serde_json::Value> = summary["scenarios"].as_array().into_iter().flatten().flat_map(|s| s["detections"].as_array().into_iter().flatten()).collect();
    let mut named: Vec<String> = detections.iter().filter_map(|d| d["fault"].as_str().map(str::to_string)).collect();
    named.dedup();
    let latency_ms = detections.iter().find(|d| d["fault"] == case.fault).and_then(|d| Some(d["decided_at"].as_f64()? - d["first_symptom"].as_f64()?));
    Ok(RunOutcome {
        seed,
        verdict: summary["verdict"].as_str().unwrap_or("?").to_string(),
        named,
        latency_ms,
        artifacts: summary["artifacts"].as_str().unwrap_or("").to_string(),
        error: summary["error"].as_str().map(str::to_string),
    })
}

fn tabulate(case: &Case, outcomes: Vec<RunOutcome>) -> Row {
    let named_correctly = outcomes.iter().filter(|o| o.named.iter().any(|n| n == case.fault)).count();
    let misnamed = outcomes.iter().filter(|o| o.named.iter().any(|n| n != case.fault)).count();
    let mut lat: Vec<f64> = outcomes.iter().filter_map(|o| o.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    let median_latency_ms = (!lat.is_empty()).then(|| if lat.len() % 2 == 1 { lat[lat.len() / 2] } else { (lat[lat.len() / 2 - 1] + lat[lat.len() / 2]) / 2.0 });
    Row {
        fault: case.fault.into(),
        switch: case.switch.map(str::to_string),
        scenario: case.scenario.into(),
        runs: outcomes.len(),
        named_correctly,
        misnamed,
        median_latency_ms,
        outcomes,
    }
}

/// The table people read (also pasted into the README).
pub fn markdown(rows: &[Row]) -> String {
    let mut md = String::from("| fault | switch | scenario | named correctly | misnamed / false alarms | median latency |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let (named, mis) = if r.fault == "clean" { ("–".to_string(), format!("{}/{}", r.misnamed, r.runs)) } else { (format!("{}/{}", r.named_correctly, r.runs), format!("{}/{}", r.misnamed, r.runs)) };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.fault,
            r.switch.as_deref().map(|s| format!("`{s}`")).unwrap_or("(none)".into()),
            r.scenario,
            named,
            mis,
            r.median_latency_ms.map(|l| format!("{:.2} s", l / 1000.0)).unwrap_or("–".into())
        ));
    }
    md
}

/// Write `matrix.md` and `matrix.json` into `dir`.
pub fn write(dir: &Path, rows: &[Row]) -> Result<(), crate::report::ArtifactError> {
    let a = crate::report::ArtifactDir::open(dir)?;
    a.write_json("matrix.json", &rows)?;
    a.write("matrix.md", markdown(rows).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(named: &[&str], latency: Option<f64>) -> RunOutcome {
        RunOutcome { seed: 1, verdict: "fail".into(), named: named.iter().map(|s| s.to_string()).collect(), latency_ms: latency, artifacts: String::new(), error: None }
    }

    #[test]
    fn rows_count_correct_and_other_names_and_take_the_median() {
        let case = &CASES[1];
        let r = tabulate(case, vec![outcome(&["F2"], Some(300.0)), outcome(&["F2", "F4"], Some(500.0)), outcome(&[], None)]);
        assert_eq!((r.named_correctly, r.misnamed), (2, 1));
        assert_eq!(r.median_latency_ms, Some(400.0));
        let md = markdown(&[r]);
        assert!(md.contains("| F2 | `webrtc-port-range=40000-40000` | second-connection | 2/3 | 1/3 | 0.40 s |"), "{md}");
    }
}
