//! Shards through real runs. A sharded detection matrix: `matrix --only F2 --runs 2` unsharded, then as
//! `--shard 1/2` and `--shard 2/2` (each shard makes one of the row's two runs) joined by
//! `helix-e2e merge`: the merged table has the unsharded one's rows, runs and counts. The
//! latency column is a timing of each run and differs between any two matrices; the unit tests
//! in `src/merge/tests.rs` hold the whole table byte for byte on fixed outcomes. F2's row is the
//! cheapest that names something (the second tab fails at once). And a sharded suite:
//! `run second-connection multi-tab-same-lobby` unsharded, then one scenario per shard, merged
//! into one summary.json, junit.xml and report with the unsharded run's scenarios, order,
//! verdicts and checks. About 25 s and 70 s.

mod common;

use common::{marked_processes, MARK};
use helix_e2e::report::Summary;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_helix-e2e");

fn helix_e2e(args: &[&str], mark: &str) -> Output {
    let out = Command::new(EXE).args(args).env(MARK, mark).output().expect("run helix-e2e");
    let left = marked_processes(mark);
    assert!(left.is_empty(), "{args:?} left processes behind: {left:?}");
    out
}

/// The one matrix directory `matrix` made under `base`.
fn matrix_dir(base: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(base).unwrap().flatten().map(|e| e.path()).filter(|p| p.join("matrix.md").is_file()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The table without its latency column (a timing).
fn counts(md: &str) -> Vec<String> {
    md.lines().map(|l| l.trim_end_matches('|').rsplit_once('|').map(|(head, _)| head.to_string()).unwrap_or_default()).collect()
}

#[test]
fn a_matrix_run_in_two_shards_and_merged_is_the_unsharded_matrix() {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-sharded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let thresholds = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/detectors-matrix.toml");
    let t = thresholds.to_str().unwrap();
    let matrix = |name: &str, shard: Option<&str>| {
        let arts = base.join(name);
        let a = arts.to_str().unwrap();
        let mut args = vec!["matrix", "--only", "F2", "--runs", "2", "--seed", "3", "--thresholds", t, "--artifacts", a];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let out = helix_e2e(&args, &format!("sharded-{name}-{}", std::process::id()));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        matrix_dir(&arts)
    };
    let whole = matrix("whole", None);
    let one = matrix("one", Some("1/2"));
    let two = matrix("two", Some("2/2"));
    let merged = base.join("merged");
    // Given in the wrong order: a merge sorts its shards.
    let out = helix_e2e(&["merge", two.to_str().unwrap(), one.to_str().unwrap(), "--out", merged.to_str().unwrap()], "sharded-merge");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", d.display()));
    let (want, got) = (read(&whole, "matrix.md"), read(&merged, "matrix.md"));
    eprintln!("unsharded:\n{want}merged:\n{got}");
    assert_eq!(counts(&got), counts(&want), "unsharded:\n{want}merged:\n{got}");
    assert!(want.contains("| F2 | `webrtc-port-range=40000-40000` | second-connection | 2/2 | 0/2 |"), "{want}");
    // Each shard made one of the row's two runs; together, the unsharded run's seeds.
    let seeds = |d: &Path| -> Vec<u64> {
        let rows: Vec<serde_json::Value> = serde_json::from_str(&read(d, "matrix.json")).unwrap();
        rows.iter().flat_map(|r| r["outcomes"].as_array().unwrap().iter().map(|o| o["seed"].as_u64().unwrap())).collect()
    };
    assert_eq!((seeds(&one), seeds(&two)), (vec![3], vec![4]));
    assert_eq!(seeds(&merged), seeds(&whole));
    // The merged matrix is the unsharded one's, as far as its specification goes.
    assert_eq!(read(&merged, "matrix-spec.json"), read(&whole, "matrix-spec.json"));

    // One shard alone is refused, naming what is missing, and writes nothing.
    let lone = base.join("lone");
    let out = helix_e2e(&["merge", one.to_str().unwrap(), "--out", lone.to_str().unwrap()], "sharded-lone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.trim().lines().count() == 1 && stderr.contains("helix-e2e: error: not every shard once: shard 2 of 2 missing"), "{stderr}");
    assert!(!lone.exists());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_suite_run_in_two_shards_and_merged_reads_as_the_unsharded_run() {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-sharded-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let run = |name: &str, shard: Option<&str>| -> PathBuf {
        let arts = base.join(name);
        let a = arts.to_str().unwrap();
        let mut args = vec!["run", "second-connection", "multi-tab-same-lobby", "--seed", "5", "--time-scale", "0.2", "--artifacts", a];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let out = helix_e2e(&args, &format!("sharded-run-{name}-{}", std::process::id()));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let dirs: Vec<PathBuf> = std::fs::read_dir(&arts).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs[0].clone()
    };
    let whole = run("whole", None);
    let one = run("one", Some("1/2"));
    let two = run("two", Some("2/2"));
    let merged = base.join("merged");
    let out = helix_e2e(&["merge", one.to_str().unwrap(), two.to_str().unwrap(), "--out", merged.to_str().unwrap()], "sharded-run-merge");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let summary = |d: &Path| -> Summary { serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap() };
    // Sorted, multi-tab-same-lobby comes first: shard 1 runs it, shard 2 second-connection.
    assert_eq!(summary(&one).scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["multi-tab-same-lobby"]);
    assert_eq!(summary(&one).shard.map(|s| s.to_string()).as_deref(), Some("1/2"));
    let checks = |s: &Summary| -> Vec<(String, String, Vec<String>)> {
        s.scenarios
            .iter()
            .map(|sc| (sc.name.clone(), sc.verdict.as_str().to_string(), sc.invariants.iter().map(|i| format!("{} {}", i.name, i.passed)).collect()))
            .collect()
    };
    let (w, m) = (summary(&whole), summary(&merged));
    assert_eq!(checks(&m), checks(&w), "the merged run's scenarios, order, verdicts and checks are the unsharded run's");
    assert_eq!((m.verdict, m.seed, m.replay.as_str()), (w.verdict, w.seed, w.replay.as_str()));
    assert_eq!(m.merged_from.len(), 2);
    // Each shard numbers its tabs apart (shard K of N: K−1, K−1+N, …): the merged run names every
    // tab once, as many as the unsharded run opened.
    let ids = |s: &Summary| -> Vec<usize> { s.tabs.iter().map(|t| t.tab).collect() };
    assert!(
        ids(&summary(&one)).iter().all(|t| t % 2 == 0) && ids(&summary(&two)).iter().all(|t| t % 2 == 1),
        "{:?} {:?}",
        ids(&summary(&one)),
        ids(&summary(&two))
    );
    let mut merged_ids = ids(&m);
    merged_ids.sort_unstable();
    merged_ids.dedup();
    assert_eq!(merged_ids.len(), m.tabs.len(), "a tab id twice in the merged run: {:?}", ids(&m));
    assert_eq!(m.tabs.len(), w.tabs.len(), "merged {:?}, unsharded {:?}", ids(&m), ids(&w));
    let junit = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 2, "{junit}");
    assert!(!junit.contains("<failure") && !junit.contains("<error"), "{junit}");
    for f in ["report.md", "report.html", "run.json"] {
        assert!(merged.join(f).is_file(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
