//! The artifact directory of a run, the summary it ends with, and the reports derived from both
//! (`junit.xml`, `report.html`, `report.md`, contact sheets, per-tab webrtc-internals dumps).
//!
//! Every file is written atomically (temporary name, then rename), so an interrupted run leaves
//! whole files only; `summary.json` is written last and says whether the run was interrupted.

pub mod contact_sheet;
pub mod digest;
pub mod dumps;
pub mod growth;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod progress;

use crate::timeline::Observation;
use crate::verdict::InvariantResult;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write artifact {path}: {source}")]
pub struct ArtifactError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Clone)]
pub struct ArtifactDir {
    root: PathBuf,
}

impl ArtifactDir {
    pub fn create(base: &Path, run_id: &str) -> Result<Self, ArtifactError> {
        let root = base.join(run_id);
        std::fs::create_dir_all(base).map_err(|source| ArtifactError { path: base.to_path_buf(), source })?;
        // Never share a directory with another run: run ids are unique, and this says so.
        std::fs::create_dir(&root).map_err(|source| ArtifactError { path: root.clone(), source })?;
        Ok(Self { root })
    }

    /// A directory that may exist already (the matrix rewrites its tables after every row).
    pub fn open(dir: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError { path: dir.to_path_buf(), source })?;
        Ok(Self { root: dir.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<PathBuf, ArtifactError> {
        let path = self.root.join(rel);
        let err = |source| ArtifactError { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        // Unique per writer (process and call), so two writers of one file never share a
        // half-written temp file; the rename makes the last one win whole.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}-{n}.partial", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(path)
    }

    pub fn write_json(&self, rel: &str, value: &impl Serialize) -> Result<PathBuf, ArtifactError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| ArtifactError { path: self.root.join(rel), source: std::io::Error::other(e) })?;
        self.write(rel, &bytes)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Error,
    Interrupted,
}

impl Verdict {
    /// Its name as `summary.json` writes it (`pass`, `fail`, `error`, `interrupted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Interrupted => "interrupted",
        }
    }

    /// The verdict of two parts together: the worse one (pass < fail < error < interrupted).
    pub fn worst(self, other: Verdict) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
            Verdict::Interrupted => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error | Verdict::Interrupted => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub verdict: Verdict,
    pub invariants: Vec<InvariantResult>,
    /// The operation that was running when the first invariant failed or the error happened.
    pub failed_op: Option<String>,
    /// The correlation table and server state when the first invariant failed.
    pub state_at_failure: Option<serde_json::Value>,
    /// Documented failures the detectors named, with first symptom and decision times.
    pub detections: Vec<crate::verdict::detectors::Detection>,
    pub error: Option<String>,
    pub duration_s: f64,
    /// The smallest command that reproduces this scenario: it alone, from the run's seed and
    /// conditions, cut to the operations a broken random walk needed. (Absent in the
    /// summaries of earlier versions.)
    #[serde(default)]
    pub replay: String,
    /// Where this scenario's evidence (timeline, screenshots, contact sheets, dumps, logs) lies
    /// when not beside this summary: the shard's directory, in a merged run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TabFacts {
    pub tab: usize,
    /// A browser tab or a synthetic viewer (`crate::synthetic`).
    #[serde(default)]
    pub kind: crate::timeline::ViewerKind,
    pub url: String,
    pub client_unique_ids: Vec<String>,
    pub session_ids: Vec<String>,
    pub wolf_sessions: Vec<String>,
    pub connection_states: Vec<String>,
    pub errors: Vec<String>,
    pub screenshot: Option<String>,
    /// The browser the tab ran in: `local`, or a remote browser's endpoint as given.
    #[serde(default)]
    pub browser: String,
}

/// `summary.json`, read back typed by the matrix, `replay` and the tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: String,
    pub verdict: Verdict,
    pub seed: u64,
    pub target: String,
    pub started_at: String,
    pub duration_s: f64,
    pub replay: String,
    pub scenarios: Vec<ScenarioResult>,
    pub tabs: Vec<TabFacts>,
    pub artifacts: String,
    pub error: Option<String>,
    /// Services whose log the run had no way to read (`wolf`, `moonlight-web`, `api`): the
    /// detectors that read them were blind (`sut::log_source::LOG_READERS` says which).
    pub logs_missing: Vec<String>,
    /// Per-cycle growth of each service's descriptors and memory (F20's fits), whenever the
    /// run sampled them. (Absent in the summaries of earlier versions.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::verdict::detectors::leak::ResourceGrowth>,
    /// Input-to-picture latency per tab that got the driver's input probes (`frames::input`).
    #[serde(default)]
    pub input_latency: Vec<crate::frames::input::InputLatency>,
    /// The shard of a larger suite this run was (`--shard K/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// In a summary `helix-e2e merge` wrote: the shards it joins, each with its own artifact
    /// directory (the evidence: timelines, screenshots, logs, dumps stay there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedShard>,
}

/// One shard of a merged summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    pub shard: crate::shard::Shard,
    pub run_id: String,
    pub verdict: Verdict,
    pub artifacts: String,
}

impl Summary {
    /// The command that reproduces a scenario: its own, else (a summary of an earlier version,
    /// without one) the run's.
    pub fn replay_of<'a>(&'a self, sc: &'a ScenarioResult) -> &'a str {
        if sc.replay.trim().is_empty() {
            &self.replay
        } else {
            &sc.replay
        }
    }

    /// For a merged summary, the shards it joins and where each one's evidence is, on one line
    /// (both reports show it).
    pub fn merged_line(&self) -> Option<String> {
        (!self.merged_from.is_empty()).then(|| {
            let parts: Vec<String> =
                self.merged_from.iter().map(|m| format!("shard {} {} ({}) in {}", m.shard, m.run_id, m.verdict.as_str(), m.artifacts)).collect();
            format!("merged from {} shards: {}", parts.len(), parts.join("; "))
        })
    }

    /// The scenario a reader of a failed run starts with: the first that did not pass.
    pub fn first_failing(&self) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.verdict != Verdict::Pass)
    }
}

/// `timeline.jsonl`: one observation per line, in time order.
pub fn write_timeline(artifacts: &ArtifactDir, observations: &[Observation]) -> Result<PathBuf, ArtifactError> {
    let mut lines = Vec::new();
    for o in observations {
        if let Ok(l) = serde_json::to_string(o) {
            lines.extend_from_slice(l.as_bytes());
            lines.push(b'\n');
        }
    }
    artifacts.write("timeline.jsonl", &lines)
}

/// Everything a person or CI reads besides `summary.json`: contact sheets, `junit.xml`,
/// `report.md`, `report.html` (last, so its file list includes the others). Call it just before
/// writing `summary.json`. A report that cannot be written does not stop the others; the errors
/// are returned (and logged).
pub fn write_reports(artifacts: &ArtifactDir, summary: &Summary, observations: &[Observation]) -> Vec<ArtifactError> {
    let mut errors = Vec::new();
    let mut keep = |r: Result<PathBuf, ArtifactError>| {
        if let Err(e) = r {
            tracing::warn!("{e}");
            errors.push(e);
        }
    };
    let digest = digest::digest(observations);
    let mut tabs: Vec<usize> = digest.tabs.iter().map(|t| t.tab).chain(summary.tabs.iter().map(|t| t.tab)).collect();
    tabs.sort_unstable();
    tabs.dedup();
    for tab in tabs {
        let shots = contact_sheet::screenshots_of_tab(&artifacts.root().join("screenshots"), tab);
        match contact_sheet::render(&shots) {
            Ok(Some(png)) => keep(artifacts.write(&format!("contact-sheets/tab-{tab}.png"), &png)),
            Ok(None) => {}
            Err(e) => keep(Err(ArtifactError { path: artifacts.root().join(format!("contact-sheets/tab-{tab}.png")), source: std::io::Error::other(e) })),
        }
    }
    keep(artifacts.write("junit.xml", junit::render(summary, &junit::hostname()).as_bytes()));
    keep(artifacts.write("report.md", markdown::render(summary, &digest).as_bytes()));
    keep(artifacts.write("report.html", html::render(summary, &digest, artifacts.root()).as_bytes()));
    errors
}

/// The same words as `PixelSummary::verdict`, from the serialized summary.
pub(crate) fn pixel_word(p: &serde_json::Value) -> &'static str {
    let n = |k: &str| p.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let b = |k: &str| p.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    if n("with_video") == 0 {
        "no video"
    } else if b("black") {
        "black"
    } else if !b("advancing") {
        "frozen"
    } else {
        "moving"
    }
}
