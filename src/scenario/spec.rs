//! The run specification: what a run is, in one type. The command line builds it once;
//! `run.json` is it, serialized; the replay command a failed run prints is made from it; and
//! `helix-e2e replay` reads it back. Anything that changes what a run does belongs here, so that
//! those four can never disagree.

use super::params::Params;
use crate::browser::RemoteBrowser;
use crate::refstack::faults::Fault;
use crate::shard::Shard;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The scenarios, in order (the default suite's when the user named none).
    pub scenarios: Vec<String>,
    pub seed: u64,
    /// Multiplies every wait of the plans (1.0: the design's times).
    pub time_scale: f64,
    /// The scenario-parameter file the user gave (`--params`).
    #[serde(default)]
    pub params_file: Option<PathBuf>,
    /// The parameter flags the user gave (`--tabs`, `--ops`, …); they win over the file.
    #[serde(default)]
    pub overrides: Params,
    /// Each scenario's parameters as resolved when the run started (the file, then the flags):
    /// what its plan was made from, and what a replay uses even if the file changed since.
    pub params: BTreeMap<String, Params>,
    /// A target file; the embedded reference stack when absent.
    pub target: Option<PathBuf>,
    /// The embedded stack's fault switches.
    pub faults: Vec<Fault>,
    /// Existing agent sessions to use instead of creating them (`--session`).
    pub sessions: Vec<String>,
    /// A detector-thresholds file; the built-in thresholds when absent.
    #[serde(default)]
    pub thresholds: Option<PathBuf>,
    /// Go on after a named failure.
    #[serde(default)]
    pub keep_going: bool,
    /// Real mouse input to every open viewer throughout.
    #[serde(default)]
    pub keep_alive_input: bool,
    /// Remote browsers to spread the tabs over (`--browser`, in order); when empty, the target
    /// file's `browsers`, else the local Chromium.
    #[serde(default)]
    pub browsers: Vec<RemoteBrowser>,
    /// This run is one shard of a larger suite (`--shard K/N`): `scenarios` are this shard's,
    /// and the whole suite is recorded, so `helix-e2e merge` knows what the shards add up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
}

/// Which shard of which suite a run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardOf {
    pub shard: Shard,
    /// Every scenario of the suite, as given.
    pub suite: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--shard {shard} gets none of the {n} scenarios ({suite}); use at most {n} shards", n = suite.len(), suite = suite.join(", "))]
pub struct EmptyShard {
    pub shard: Shard,
    pub suite: Vec<String>,
}

impl RunSpec {
    /// This spec's share of its scenarios under `shard` (`crate::shard` says how they are
    /// split). Parameters stay resolved for the whole suite, so every shard records the same.
    pub fn sharded(mut self, shard: Shard) -> Result<RunSpec, EmptyShard> {
        let suite = std::mem::take(&mut self.scenarios);
        let mine = shard.take(&suite);
        if mine.is_empty() {
            return Err(EmptyShard { shard, suite });
        }
        self.scenarios = mine.into_iter().map(|i| suite[i].clone()).collect();
        self.shard = Some(ShardOf { shard, suite });
        Ok(self)
    }

    /// The run the shards of this one add up to: the whole suite, unsharded (itself when it is
    /// no shard).
    pub fn whole(&self) -> RunSpec {
        let mut w = self.clone();
        if let Some(of) = w.shard.take() {
            w.scenarios = of.suite;
        }
        w
    }

    /// The command that sets up the same run again from its seed.
    pub fn command(&self) -> String {
        let ops = self.overrides.ops.map(|o| format!(" --ops {o}")).unwrap_or_default();
        format!("helix-e2e run {} --seed {}{ops}{}", self.scenarios.join(" "), self.seed, self.condition_flags())
    }

    /// The smallest command that reproduces one scenario of this run: that scenario alone, from
    /// the same seed and conditions, cut to `ops` operations when a random walk broke after
    /// `ops` of them (a walk's first K operations are the same in any longer walk of its seed).
    pub fn scenario_command(&self, scenario: &str, ops: Option<usize>) -> String {
        let ops = ops.or(self.overrides.ops).map(|o| format!(" --ops {o}")).unwrap_or_default();
        format!("helix-e2e run {scenario} --seed {}{ops}{}", self.seed, self.condition_flags())
    }

    /// The flags that set up the same conditions, without the scenarios, the seed and `--ops`
    /// (the random walk's minimal reproduction puts its own `--ops K` in front); each starts
    /// with a space.
    fn condition_flags(&self) -> String {
        let mut f = String::new();
        if self.time_scale != 1.0 {
            f.push_str(&format!(" --time-scale {}", self.time_scale));
        }
        if let Some(p) = &self.params_file {
            f.push_str(&format!(" --params {}", p.display()));
        }
        let o = &self.overrides;
        for (name, v) in
            [("--agent-sessions", o.sessions), ("--cycles", o.cycles), ("--tabs", o.tabs), ("--drop", o.drop), ("--synthetic-viewers", o.synthetic_viewers)]
        {
            if let Some(v) = v {
                f.push_str(&format!(" {name} {v}"));
            }
        }
        for (name, v) in [("--budget-s", o.budget_s), ("--hold-s", o.hold_s)] {
            if let Some(v) = v {
                f.push_str(&format!(" {name} {v}"));
            }
        }
        if let Some(d) = o.synthetic_decode {
            f.push_str(&format!(" --synthetic-decode {}", clap::ValueEnum::to_possible_value(&d).map(|v| v.get_name().to_string()).unwrap_or_default()));
        }
        if let Some(t) = &self.target {
            f.push_str(&format!(" --target {}", t.display()));
        }
        for s in &self.sessions {
            f.push_str(&format!(" --session {s}"));
        }
        for x in &self.faults {
            f.push_str(&format!(" --fault {x}"));
        }
        if let Some(t) = &self.thresholds {
            f.push_str(&format!(" --thresholds {}", t.display()));
        }
        if self.keep_going {
            f.push_str(" --keep-going");
        }
        if self.keep_alive_input {
            f.push_str(" --keep-alive-input");
        }
        for b in &self.browsers {
            f.push_str(&format!(" --browser {b}"));
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            scenarios: vec!["random-walk".into(), "rapid-cycles".into()],
            seed: 42,
            time_scale: 0.2,
            params_file: Some("e2e/scenarios/rapid-cycles.toml".into()),
            overrides: Params { ops: Some(7), tabs: Some(3), budget_s: Some(30.0), ..Params::default() },
            params: BTreeMap::from([("random-walk".to_string(), Params { ops: Some(7), ..Params::default() })]),
            target: None,
            faults: vec!["webrtc-port-range=40000-40000".parse().unwrap(), "stuck-session".parse().unwrap()],
            sessions: vec![],
            thresholds: Some("e2e/detectors.toml".into()),
            keep_going: true,
            keep_alive_input: false,
            shard: None,
            browsers: vec!["http://127.0.0.1:9301".parse().unwrap()],
        }
    }

    #[test]
    fn a_shard_runs_its_share_records_the_suite_and_adds_up_to_the_whole() {
        let mut whole = spec();
        whole.scenarios = vec!["soak".into(), "random-walk".into(), "rapid-cycles".into()];
        let one = whole.clone().sharded("1/2".parse().unwrap()).unwrap();
        let two = whole.clone().sharded("2/2".parse().unwrap()).unwrap();
        // Sorted: random-walk, rapid-cycles, soak; round-robin; each in the order given.
        assert_eq!(one.scenarios, ["soak", "random-walk"]);
        assert_eq!(two.scenarios, ["rapid-cycles"]);
        assert_eq!((one.whole(), two.whole()), (whole.clone(), whole.clone()));
        // What a shard ran is what its replay command runs.
        assert!(one.command().starts_with("helix-e2e run soak random-walk --seed 42"), "{}", one.command());
        let back: RunSpec = serde_json::from_str(&serde_json::to_string(&one).unwrap()).unwrap();
        assert_eq!(back, one);
        assert!(serde_json::to_string(&one).unwrap().contains("\"shard\":{\"shard\":\"1/2\""));
        let e = whole.clone().sharded("4/4".parse().unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "--shard 4/4 gets none of the 3 scenarios (soak, random-walk, rapid-cycles); use at most 3 shards");
    }

    #[test]
    fn run_json_reads_back_as_the_same_spec() {
        let s = spec();
        let back: RunSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // A fault is written as the user types it.
        assert!(serde_json::to_string(&s).unwrap().contains("\"webrtc-port-range=40000-40000\""));
    }

    #[test]
    fn the_printed_command_sets_up_the_same_run() {
        assert_eq!(
            spec().command(),
            "helix-e2e run random-walk rapid-cycles --seed 42 --ops 7 --time-scale 0.2 --params e2e/scenarios/rapid-cycles.toml \
             --tabs 3 --budget-s 30 --fault webrtc-port-range=40000-40000 --fault stuck-session --thresholds e2e/detectors.toml --keep-going --browser http://127.0.0.1:9301"
        );
        assert!(!spec().condition_flags().contains("--ops"), "the walk's minimal reproduction sets its own --ops");
    }

    #[test]
    fn one_scenario_replays_alone_and_a_broken_walk_with_its_minimal_ops() {
        let s = spec();
        let flags = s.condition_flags();
        assert_eq!(s.scenario_command("rapid-cycles", None), format!("helix-e2e run rapid-cycles --seed 42 --ops 7{flags}"));
        assert_eq!(s.scenario_command("random-walk", Some(3)), format!("helix-e2e run random-walk --seed 42 --ops 3{flags}"));
    }

    #[test]
    fn a_run_json_of_an_earlier_version_still_reads() {
        // Before params_file and overrides were recorded.
        let old = r#"{"scenarios":["second-connection"],"seed":1,"time_scale":1.0,"params":{},"target":null,"faults":["stuck-session"],"sessions":[]}"#;
        let s: RunSpec = serde_json::from_str(old).unwrap();
        assert_eq!(s.command(), "helix-e2e run second-connection --seed 1 --fault stuck-session");
    }

    #[test]
    fn an_unknown_fault_in_run_json_is_refused() {
        let bad = r#"{"scenarios":[],"seed":1,"time_scale":1.0,"params":{},"target":null,"faults":["no-such-switch"],"sessions":[]}"#;
        assert!(serde_json::from_str::<RunSpec>(bad).is_err());
    }
}
