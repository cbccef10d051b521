//! `helix-e2e merge DIR... --out DIR`: the artifact directories of every shard of one sharded
//! run (`run --shard K/N`) or matrix (`matrix --shard K/N`) joined into one result, written by
//! the same writers an unsharded run uses (`report::write_reports`, `matrix::write`), so a
//! merged report cannot drift from an unsharded one.
//!
//! A merge refuses, before writing anything, whatever would not add up to the one unsharded
//! run: a directory that is no shard, shards of different splits, a shard missing or given
//! twice, shards of different specifications (seed, scenarios, faults, … — everything but the
//! shard), a run and a matrix together, and a matrix shard that stopped before its last run.
//!
//! What a merged run summary says: the scenarios in the suite's order, the worst verdict, the
//! earliest start, the longest shard's duration (shards run side by side), every shard's
//! errors (prefixed by the shard), its tabs (each shard numbers its own apart from the others',
//! `browser::TabIds::of_shard`, so no id is there twice), and `merged_from`:
//! each shard's own directory, where its evidence (timeline, screenshots, logs, dumps) stays.
//! Resource growth (F20's fits) is left out: each shard ran its own stack, and their cycles do
//! not add up to one stack's.

use crate::matrix::{self, MatrixSpec, Row, RunOutcome};
use crate::report::{ArtifactDir, MergedShard, ScenarioResult, Summary, Verdict};
use crate::scenario::spec::RunSpec;
use crate::shard::{self, Shard};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0}: not a run directory (run.json, summary.json) nor a matrix directory (matrix-spec.json)")]
    NotArtifacts(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{0} is no shard: it was not run with --shard K/N")]
    NotAShard(PathBuf),
    #[error("{run} is a run and {matrix} a matrix: they do not merge")]
    Mixed { run: PathBuf, matrix: PathBuf },
    #[error("not every shard once: {why} (given: {given})")]
    Incomplete { why: shard::Incomplete, given: String },
    #[error(transparent)]
    DifferentSpecs(Box<SpecDiff>),
    #[error("{dir} (shard {shard}) did not finish: {what}")]
    Unfinished { dir: PathBuf, shard: Shard, what: String },
    #[error(transparent)]
    Matrix(#[from] matrix::MatrixError),
    #[error(transparent)]
    Artifacts(#[from] crate::report::ArtifactError),
}

/// Two shards of different runs: the first field of the whole specification that differs.
#[derive(Debug, thiserror::Error)]
#[error("{dir} (shard {shard}) is a shard of another run than {first} (shard {first_shard}): {field} differs ({theirs} vs {ours})")]
pub struct SpecDiff {
    pub dir: PathBuf,
    pub shard: Shard,
    pub first: PathBuf,
    pub first_shard: Shard,
    pub field: String,
    pub theirs: String,
    pub ours: String,
}

/// What a merge wrote.
pub enum Merged {
    Run(Box<Summary>),
    Matrix(Vec<Row>),
}

/// One shard's directory, read.
enum Part {
    Run { dir: PathBuf, shard: Shard, spec: Box<RunSpec>, summary: Box<Summary> },
    Matrix { dir: PathBuf, shard: Shard, spec: MatrixSpec, rows: Vec<Row> },
}

impl Part {
    fn dir(&self) -> &Path {
        match self {
            Part::Run { dir, .. } | Part::Matrix { dir, .. } => dir,
        }
    }

    fn shard(&self) -> Shard {
        match self {
            Part::Run { shard, .. } | Part::Matrix { shard, .. } => *shard,
        }
    }

    /// What the shards must agree on: the whole run's specification, as JSON.
    fn whole(&self) -> serde_json::Value {
        match self {
            // Where a shard's tabs ran (its runner's browsers) is not what it ran.
            Part::Run { spec, .. } => serde_json::to_value(RunSpec { browsers: vec![], ..spec.whole() }),
            Part::Matrix { spec, .. } => serde_json::to_value(MatrixSpec { shard: None, ..spec.clone() }),
        }
        .unwrap_or_default()
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| MergeError::Parse { path: path.to_path_buf(), source })
}

fn read(dir: &Path) -> Result<Part, MergeError> {
    let not_a_shard = || MergeError::NotAShard(dir.to_path_buf());
    if dir.join("matrix-spec.json").is_file() {
        let spec: MatrixSpec = read_json(&dir.join("matrix-spec.json"))?;
        let rows: Vec<Row> = read_json(&dir.join("matrix.json"))?;
        return Ok(Part::Matrix { dir: dir.to_path_buf(), shard: spec.shard.ok_or_else(not_a_shard)?, spec, rows });
    }
    if !dir.join("run.json").is_file() {
        return Err(MergeError::NotArtifacts(dir.to_path_buf()));
    }
    let spec: RunSpec = read_json(&dir.join("run.json"))?;
    let shard = spec.shard.as_ref().map(|s| s.shard).ok_or_else(not_a_shard)?;
    // summary.json is written last: a shard without it never ended (killed, or still running).
    if !dir.join("summary.json").is_file() {
        return Err(MergeError::Unfinished { dir: dir.to_path_buf(), shard, what: "no summary.json".into() });
    }
    let summary: Summary = read_json(&dir.join("summary.json"))?;
    Ok(Part::Run { dir: dir.to_path_buf(), shard, spec: Box::new(spec), summary: Box::new(summary) })
}

/// A value for a one-line message.
fn brief(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// Refuse shards that do not add up to one run; sort them by shard.
fn check(mut parts: Vec<Part>) -> Result<Vec<Part>, MergeError> {
    let run = parts.iter().find(|p| matches!(p, Part::Run { .. }));
    let mat = parts.iter().find(|p| matches!(p, Part::Matrix { .. }));
    if let (Some(r), Some(m)) = (run, mat) {
        return Err(MergeError::Mixed { run: r.dir().to_path_buf(), matrix: m.dir().to_path_buf() });
    }
    let shards: Vec<Shard> = parts.iter().map(Part::shard).collect();
    shard::complete(&shards).map_err(|why| MergeError::Incomplete {
        why,
        given: parts.iter().map(|p| format!("{} = {}", p.dir().display(), p.shard())).collect::<Vec<_>>().join(", "),
    })?;
    parts.sort_by_key(Part::shard);
    let first = &parts[0];
    let ours = first.whole();
    for p in &parts[1..] {
        let theirs = p.whole();
        if theirs != ours {
            let field = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
            let keys = ours.as_object().into_iter().chain(theirs.as_object()).flat_map(|o| o.keys());
            let field_name = keys.into_iter().find(|k| field(&ours, k) != field(&theirs, k)).cloned().unwrap_or_default();
            return Err(MergeError::DifferentSpecs(Box::new(SpecDiff {
                dir: p.dir().to_path_buf(),
                shard: p.shard(),
                first: first.dir().to_path_buf(),
                first_shard: first.shard(),
                theirs: brief(&field(&theirs, &field_name)),
                ours: brief(&field(&ours, &field_name)),
                field: field_name,
            })));
        }
    }
    Ok(parts)
}

/// Join the shards' directories into `out`; nothing is written when they are refused.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let parts = check(dirs.iter().map(|d| read(d)).collect::<Result<Vec<_>, _>>()?)?;
    if matches!(parts[0], Part::Matrix { .. }) {
        return merge_matrix(parts, out).map(Merged::Matrix);
    }
    merge_runs(parts, out).map(|s| Merged::Run(Box::new(s)))
}

fn merge_runs(parts: Vec<Part>, out: &Path) -> Result<Summary, MergeError> {
    let runs: Vec<(PathBuf, Shard, Box<RunSpec>, Box<Summary>)> = parts
        .into_iter()
        .filter_map(|p| match p {
            Part::Run { dir, shard, spec, summary } => Some((dir, shard, spec, summary)),
            Part::Matrix { .. } => None,
        })
        .collect();
    let whole = runs[0].2.whole();
    // Each shard's scenarios back at their places in the suite.
    let mut placed = Vec::new();
    for (dir, shard, _, summary) in &runs {
        let places = shard.take(&whole.scenarios);
        let at_home = summary.scenarios.iter().cloned().map(|sc| ScenarioResult { evidence_dir: Some(dir.display().to_string()), ..sc });
        placed.extend(places.into_iter().zip(at_home));
    }
    placed.sort_by_key(|(at, _)| *at);
    let first = &runs[0].3;
    let errors: Vec<String> = runs.iter().filter_map(|(_, shard, _, s)| s.error.as_ref().map(|e| format!("shard {shard}: {e}"))).collect();
    let mut logs_missing: Vec<String> = runs.iter().flat_map(|r| r.3.logs_missing.iter().cloned()).collect();
    logs_missing.sort();
    logs_missing.dedup();
    let artifacts = ArtifactDir::open(out)?;
    let summary = Summary {
        run_id: format!("{}-merged", first.run_id),
        verdict: runs.iter().fold(Verdict::Pass, |v, r| v.worst(r.3.verdict)),
        seed: whole.seed,
        target: first.target.clone(),
        started_at: runs.iter().map(|r| r.3.started_at.clone()).min().unwrap_or_default(),
        duration_s: runs.iter().map(|r| r.3.duration_s).fold(0.0, f64::max),
        replay: whole.command(),
        scenarios: placed.into_iter().map(|(_, s)| s).collect(),
        tabs: runs.iter().flat_map(|r| r.3.tabs.iter().cloned()).collect(),
        artifacts: artifacts.root().display().to_string(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        logs_missing,
        resources: None,
        input_latency: runs.iter().flat_map(|r| r.3.input_latency.iter().cloned()).collect(),
        shard: None,
        merged_from: runs
            .iter()
            .map(|(dir, shard, _, s)| MergedShard { shard: *shard, run_id: s.run_id.clone(), verdict: s.verdict, artifacts: dir.display().to_string() })
            .collect(),
    };
    artifacts.write_json("run.json", &whole)?;
    crate::report::write_reports(&artifacts, &summary, &[]);
    artifacts.write_json("summary.json", &summary)?;
    Ok(summary)
}

fn merge_matrix(parts: Vec<Part>, out: &Path) -> Result<Vec<Row>, MergeError> {
    let mut whole: Option<MatrixSpec> = None;
    let mut outcomes: Vec<(&'static matrix::Case, RunOutcome)> = Vec::new();
    for p in parts {
        let Part::Matrix { dir, shard, spec, rows } = p else { continue };
        // Every run the shard was to make is in its matrix.json: a matrix rewrites it after each
        // row, so a shard stopped half way leaves a shorter one.
        for (case, runs) in matrix::share(&spec)? {
            let row = rows.iter().find(|r| matrix::case_of(r).is_some_and(|c| std::ptr::eq(c, case)));
            for i in runs {
                let seed = spec.first_seed + i as u64;
                match row.and_then(|r| r.outcomes.iter().find(|o| o.seed == seed)) {
                    Some(o) => outcomes.push((case, o.clone())),
                    None => {
                        return Err(MergeError::Unfinished {
                            dir,
                            shard,
                            what: format!("no run of seed {seed} in its {} row ({}) of matrix.json", case.label(), case.switch.unwrap_or(case.scenario)),
                        })
                    }
                }
            }
        }
        whole.get_or_insert(MatrixSpec { shard: None, ..spec });
    }
    let Some(whole) = whole else { return Ok(Vec::new()) };
    let rows: Vec<Row> = matrix::selected(&whole.only)?
        .into_iter()
        .map(|case| {
            let mut mine: Vec<RunOutcome> = outcomes.iter().filter(|(c, _)| std::ptr::eq(*c, case)).map(|(_, o)| o.clone()).collect();
            // In seed order, as the unsharded matrix ran them.
            mine.sort_by_key(|o| o.seed);
            matrix::tabulate(case, mine)
        })
        .collect();
    matrix::write(out, &whole, &rows)?;
    Ok(rows)
}

#[cfg(test)]
mod tests;
