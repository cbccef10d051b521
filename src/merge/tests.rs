//! Merging shards: the result is the unsharded one's, and everything that would not add up to
//! one run is refused with a line that names it, before anything is written.

use super::*;
use crate::matrix::{tabulate, MatrixOptions, CASES};
use crate::report::ScenarioResult;
use crate::scenario::params::Params;
use crate::verdict::InvariantResult;

/// A test's own directory, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("helix-e2e-merge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

const SUITE: [&str; 3] = ["soak", "random-walk", "rapid-cycles"];

fn whole_spec(seed: u64) -> RunSpec {
    RunSpec {
        scenarios: SUITE.iter().map(|s| s.to_string()).collect(),
        seed,
        time_scale: 0.2,
        params_file: None,
        overrides: Params::default(),
        params: Default::default(),
        target: None,
        faults: vec![],
        sessions: vec![],
        thresholds: None,
        keep_going: false,
        keep_alive_input: false,
        shard: None,
        browsers: vec![],
    }
}

fn result(name: &str, verdict: Verdict) -> ScenarioResult {
    let inv =
        if verdict == Verdict::Pass { InvariantResult::pass("sessions-match", "ok") } else { InvariantResult::fail("sessions-match", "tab 1: 2 sessions") };
    ScenarioResult {
        name: name.into(),
        verdict,
        invariants: vec![inv],
        failed_op: None,
        state_at_failure: None,
        detections: vec![],
        error: None,
        duration_s: 1.0,
        replay: format!("helix-e2e run {name} --seed 1"),
        evidence_dir: None,
    }
}

/// A finished shard's run directory, as `run --shard` leaves it (run.json, summary.json).
fn shard_dir(base: &Path, spec: &RunSpec, shard: &str, failing: &[&str]) -> PathBuf {
    let spec = spec.clone().sharded(shard.parse().unwrap()).unwrap();
    let dir = base.join(format!("shard-{}", shard.replace('/', "-of-")));
    let summary = Summary {
        run_id: format!("run-{}", shard.replace('/', "of")),
        verdict: if spec.scenarios.iter().any(|s| failing.contains(&s.as_str())) { Verdict::Fail } else { Verdict::Pass },
        seed: spec.seed,
        target: "embedded reference stack".into(),
        started_at: format!("2026-12-02T16:0{}:00+00:00", shard.as_bytes()[0] as char),
        duration_s: 10.0 * (shard.as_bytes()[0] - b'0') as f64,
        replay: spec.command(),
        scenarios: spec.scenarios.iter().map(|s| result(s, if failing.contains(&s.as_str()) { Verdict::Fail } else { Verdict::Pass })).collect(),
        tabs: vec![],
        artifacts: dir.display().to_string(),
        error: None,
        logs_missing: vec![],
        resources: None,
        input_latency: vec![],
        shard: spec.shard.as_ref().map(|s| s.shard),
        merged_from: vec![],
    };
    let a = ArtifactDir::open(&dir).unwrap();
    a.write_json("run.json", &spec).unwrap();
    a.write_json("summary.json", &summary).unwrap();
    dir
}

#[test]
fn shards_of_a_run_merge_into_one_summary_junit_and_report_in_the_suites_order() {
    let t = scratch("run");
    let spec = whole_spec(7);
    // Given in the wrong order: a merge does not care.
    let dirs = [shard_dir(&t.0, &spec, "2/2", &[]), shard_dir(&t.0, &spec, "1/2", &["random-walk"])];
    let out = t.0.join("merged");
    let Merged::Run(s) = merge(&dirs, &out).unwrap() else { panic!("a run merges into a run") };
    let names: Vec<&str> = s.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, SUITE, "the suite's order, as the unsharded run reports it");
    assert_eq!(s.verdict, Verdict::Fail);
    assert_eq!(s.replay, spec.command());
    assert_eq!((s.duration_s, s.started_at.as_str()), (20.0, "2026-12-02T16:01:00+00:00"));
    assert_eq!(s.merged_from.iter().map(|m| m.shard.to_string()).collect::<Vec<_>>(), ["1/2", "2/2"]);
    let back: Summary = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(back.scenarios.len(), 3);
    assert_eq!(read_json::<RunSpec>(&out.join("run.json")).unwrap(), spec);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 3, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");
    // The failure's evidence stayed in its shard's directory, and junit.xml points there; the
    // report it names is the merged one, beside junit.xml.
    let shard_timeline = format!("{}/timeline.jsonl (at ", dirs[1].display());
    assert!(junit.contains(&shard_timeline) && junit.contains(&format!("{}/logs/", dirs[1].display())), "{junit}");
    assert!(junit.contains("report.html#inv-random-walk--sessions-match") && !junit.contains(&format!("{}/report.html", dirs[1].display())), "{junit}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("random-walk") && md.contains("soak"), "{md}");
    let shard_one = format!("shard 1/2 run-1of2 (fail) in {}", dirs[1].display());
    assert!(md.contains("- **shards**: merged from 2 shards: ") && md.contains(&shard_one), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"merged-from\"") && html.contains(&shard_one), "the HTML report names each shard's directory");
}

/// The line a refused merge prints, and that it wrote nothing.
fn refused(dirs: &[PathBuf], out: &Path) -> String {
    let e = match merge(dirs, out) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("merged {dirs:?}"),
    };
    assert!(!out.exists(), "a refused merge wrote {}", out.display());
    assert!(!e.contains('\n'), "{e}");
    e
}

#[test]
fn a_merge_refuses_missing_doubled_foreign_unfinished_and_unsharded_directories() {
    let t = scratch("refuse");
    let out = t.0.join("merged");
    let spec = whole_spec(7);
    let one = shard_dir(&t.0, &spec, "1/2", &[]);
    let two = shard_dir(&t.0, &spec, "2/2", &[]);

    let e = refused(std::slice::from_ref(&one), &out);
    assert!(e.starts_with("not every shard once: shard 2 of 2 missing (given: "), "{e}");
    let e = refused(&[one.clone(), one.clone(), two.clone()], &out);
    assert!(e.starts_with("not every shard once: shard 1/2 is there twice"), "{e}");
    let three = shard_dir(&t.0, &spec, "3/3", &[]);
    let e = refused(&[one.clone(), three], &out);
    assert!(e.contains("shards of different splits: 1/2 and 3/3"), "{e}");

    // Another seed: the shards drew other plans.
    let other = t.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let foreign = shard_dir(&other, &whole_spec(8), "2/2", &[]);
    let e = refused(&[one.clone(), foreign], &out);
    assert!(e.contains("is a shard of another run than") && e.contains("seed differs (8 vs 7)"), "{e}");

    // An unsharded run directory.
    let plain = t.0.join("plain");
    let a = ArtifactDir::open(&plain).unwrap();
    a.write_json("run.json", &spec).unwrap();
    let e = refused(&[one.clone(), plain], &out);
    assert!(e.ends_with("is no shard: it was not run with --shard K/N"), "{e}");

    // A shard that never wrote its summary (killed, or still running).
    std::fs::remove_file(two.join("summary.json")).unwrap();
    let e = refused(&[one.clone(), two], &out);
    assert!(e.ends_with("(shard 2/2) did not finish: no summary.json"), "{e}");

    let e = refused(&[one.clone(), t.0.join("nothing-here")], &out);
    assert!(e.contains("not a run directory"), "{e}");

    // A run and a matrix.
    let m = matrix_shards(&t.0, &["F2"], 2, 2);
    let e = refused(&[one, m[1].clone()], &out);
    assert!(e.contains("is a run and") && e.contains("a matrix: they do not merge"), "{e}");
}

fn outcome(case: &matrix::Case, seed: u64) -> RunOutcome {
    // A made-up but varied result per run: some right, some not, different latencies.
    let named = match (case.fault, seed % 3) {
        (None, 0) => vec!["F9 frozen-video".to_string()],
        (None, _) => vec![],
        (Some(_), 1) => vec![],
        (Some(f), _) => vec![format!("{f} something")],
    };
    let latency_ms = case.fault.filter(|_| !named.is_empty()).map(|_| 900.0 + 37.0 * seed as f64);
    RunOutcome { seed, verdict: Verdict::Fail, named, latency_ms, artifacts: format!("runs/{seed}"), error: None }
}

fn matrix_options(only: &[&str], runs: usize, shard: Option<Shard>) -> MatrixOptions {
    MatrixOptions {
        exe: "helix-e2e".into(),
        runs,
        only: only.iter().map(|s| s.to_string()).collect(),
        thresholds: Some("e2e/detectors-matrix.toml".into()),
        artifacts: "runs".into(),
        first_seed: 1,
        shard,
    }
}

/// The unsharded matrix's rows, each run's outcome a function of its case and seed.
fn unsharded(only: &[&str], runs: usize) -> Vec<Row> {
    let spec = matrix_options(only, runs, None).spec();
    matrix::share(&spec).unwrap().into_iter().map(|(c, rs)| tabulate(c, rs.into_iter().map(|i| outcome(c, 1 + i as u64)).collect())).collect()
}

/// Directories as `matrix --shard K/N` leaves them, with the same outcomes per seed.
fn matrix_shards(base: &Path, only: &[&str], runs: usize, count: usize) -> Vec<PathBuf> {
    (1..=count)
        .map(|index| {
            let spec = matrix_options(only, runs, Some(Shard { index, count })).spec();
            let rows: Vec<Row> =
                matrix::share(&spec).unwrap().into_iter().map(|(c, rs)| tabulate(c, rs.into_iter().map(|i| outcome(c, 1 + i as u64)).collect())).collect();
            let dir = base.join(format!("matrix-shard-{index}-of-{count}"));
            matrix::write(&dir, &spec, &rows).unwrap();
            dir
        })
        .collect()
}

#[test]
fn a_sharded_matrix_merges_into_the_unsharded_table() {
    let t = scratch("matrix");
    let only = ["F2", "F9", "clean:second-connection", "D2"];
    let want = matrix::markdown(&unsharded(&only, 5));
    assert_eq!(want.lines().count(), 2 + 6, "{want}");
    for count in [2, 3, 7] {
        let base = t.0.join(format!("of-{count}"));
        let mut dirs = matrix_shards(&base, &only, 5, count);
        dirs.reverse();
        let out = base.join("merged");
        let Merged::Matrix(rows) = merge(&dirs, &out).unwrap() else { panic!("a matrix merges into a matrix") };
        assert_eq!(matrix::markdown(&rows), want, "{count} shards");
        assert_eq!(std::fs::read_to_string(out.join("matrix.md")).unwrap(), want);
        let spec: MatrixSpec = read_json(&out.join("matrix-spec.json")).unwrap();
        assert_eq!(spec, matrix_options(&only, 5, None).spec());
    }
}

#[test]
fn a_matrix_shard_stopped_half_way_or_of_another_selection_is_refused() {
    let t = scratch("matrix-refuse");
    let out = t.0.join("merged");
    let dirs = matrix_shards(&t.0, &["F2", "F9"], 2, 2);
    // Shard 2 stopped after its first row: matrix.json is rewritten after every row.
    let spec: MatrixSpec = read_json(&dirs[1].join("matrix-spec.json")).unwrap();
    let rows: Vec<Row> = read_json(&dirs[1].join("matrix.json")).unwrap();
    matrix::write(&dirs[1], &spec, &rows[..1]).unwrap();
    let e = refused(&dirs, &out);
    assert!(e.contains("(shard 2/2) did not finish: no run of seed 2 in its F9 row (freeze-after=3) of matrix.json"), "{e}");

    let other = matrix_shards(&t.0.join("other"), &["F2", "F10"], 2, 2);
    let e = refused(&[dirs[0].clone(), other[1].clone()], &out);
    assert!(e.contains("only differs ([\"F10\",\"F2\"] vs [\"F2\",\"F9\"])"), "{e}");
    assert!(CASES.iter().any(|c| c.switch == Some("freeze-after=3")));
}
