//! The seeded plan of operations: what a scenario will do, decided entirely before it runs.
//!
//! A failure that cannot be replayed is a rumour. Every random choice of a scenario (which
//! sessions to drop, how long a viewer stays, what the random walk does next) is drawn here from
//! one `Xoshiro256PlusPlus` seeded by `--seed`, and the resulting list of operations is written to
//! `ops.jsonl` before the first one runs. `helix-e2e replay` reads that file back and runs exactly
//! the same operations; the executor never draws a random number.
//!
//! Sessions and tabs are numbered by the plan (0, 1, ...); the executor maps those numbers to the
//! real `ses_` ids and browser tabs of the run.

use crate::sut::control::Service;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// A plan-local agent session number.
pub type SessionNo = usize;
/// A plan-local tab number.
pub type TabNo = usize;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabOpen {
    pub tab: TabNo,
    pub session: SessionNo,
}

/// One user-level operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Start agent sessions through the Helix API, one after the other.
    CreateSessions {
        sessions: Vec<SessionNo>,
    },
    /// Stop an agent session through the Helix API.
    StopSession {
        session: SessionNo,
    },
    /// Open viewer tabs (each its own browser context); several at once when more than one.
    OpenTabs {
        tabs: Vec<TabOpen>,
    },
    /// Mount synthetic viewers (`crate::synthetic`), one per entry, at once; closed with
    /// `CloseTab` like a tab.
    OpenSynthetic {
        tabs: Vec<TabOpen>,
        decode: crate::timeline::SyntheticDecode,
    },
    CloseTab {
        tab: TabNo,
    },
    /// Crash the tab's renderer: the tab vanishes without closing its sockets (F18's trigger).
    CutTab {
        tab: TabNo,
    },
    /// Reload the tab (a new viewer with a new `client_unique_id`).
    ReloadTab {
        tab: TabNo,
    },
    /// Press the viewer's `Reconnect` button.
    Reconnect {
        tab: TabNo,
    },
    /// Press (`down`) or release Shift in the tab's viewer, as a user holding it (the press
    /// first clicks the video, giving the viewer the focus).
    Shift {
        tab: TabNo,
        down: bool,
    },
    /// Leave every tab alone.
    Idle {
        ms: u64,
    },
    /// Wait until each of these tabs shows a frame (a deadline), then leave them alone `hold_ms`:
    /// a viewer that streamed, without a check's verdict (`soak` does hundreds).
    Watch {
        tabs: Vec<TabNo>,
        hold_ms: u64,
    },
    /// Restart a service of the stack, as `docker compose restart` does; done once it is ready.
    RestartService {
        service: Service,
    },
    /// Every open tab shows a clear error (not silence) after the last restart; what each tab,
    /// moonlight-web and Wolf said is recorded (`<label>/clear-error-in-every-tab`).
    ExpectErrors {
        label: String,
    },
    /// Wait until every open tab streams (or a deadline), watch them `hold_ms`, then check the
    /// pass criteria; invariant names get `label/` in front.
    Check {
        label: String,
        hold_ms: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expect: Vec<Expect>,
    },
}

/// Scenario-specific pass criteria checked at a [`Op::Check`] besides the common ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expect", rename_all = "kebab-case")]
pub enum Expect {
    /// Every live session has a tab that streams it again (`all-sessions-reconnect`).
    AllSessionsReconnect,
    /// `tabs` tabs stream this session's single lobby at once (`several-tabs-one-lobby`).
    SeveralTabsOneLobby { session: SessionNo, tabs: usize },
    /// The session's lobby is the one of the previous check and still streams
    /// (`lobby-survives-tab-close`).
    LobbySurvivesTabClose { session: SessionNo },
    /// Every lobby Helix believes a live session owns exists in Wolf (`no-ghost-lobbies`).
    NoGhostLobbies,
}

/// One line of `ops.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub scenario: String,
    pub step: usize,
    /// Not before this many ms after the scenario started (schedules of concurrent users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: String,
    pub steps: Vec<Step>,
    /// Random walk only: stop when this much time is spent.
    pub budget_ms: Option<u64>,
    /// Random walk only: stop at the first failed invariant and print how to replay it.
    pub stop_at_first_failure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("ops.jsonl line {line}: {detail}")]
    Parse { line: usize, detail: String },
}

impl Plan {
    pub fn new(scenario: &str) -> Self {
        Plan { scenario: scenario.to_string(), steps: Vec::new(), budget_ms: None, stop_at_first_failure: false }
    }

    pub fn push(&mut self, op: Op) {
        self.push_at(None, op);
    }

    pub fn push_at(&mut self, at_ms: Option<u64>, op: Op) {
        let step = self.steps.len();
        self.steps.push(Step { scenario: self.scenario.clone(), step, at_ms, op });
    }

    /// The plan as JSON lines, one operation per line.
    pub fn to_jsonl(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.steps {
            out.extend_from_slice(serde_json::to_string(s).expect("plan steps serialize").as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// The longest wait one step of a plan may ask for (a due time, an idle spell, a hold): the
/// design's longest scenario at its own times takes minutes; a file asking for more is not a
/// plan this tool wrote, and would hang the replay.
pub const MAX_WAIT_MS: u64 = 6 * 3600 * 1000;
/// Sessions and tabs a plan may number; the scenarios use a handful.
pub const MAX_NUMBERED: usize = 1000;

/// The steps of `ops.jsonl`, grouped by scenario in file order. Each line must be an operation
/// of a known scenario (`known`), with waits under [`MAX_WAIT_MS`] and small numbers: replay
/// trusts nothing it did not check.
pub fn parse_jsonl(text: &str, known: &[&str]) -> Result<Vec<(String, Vec<Step>)>, PlanError> {
    let mut out: Vec<(String, Vec<Step>)> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |detail: String| PlanError::Parse { line: i + 1, detail };
        let step: Step = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if !known.contains(&step.scenario.as_str()) {
            return Err(bad(format!("unknown scenario {:?} (known: {})", step.scenario, known.join(", "))));
        }
        let waits = [
            ("at_ms", step.at_ms.unwrap_or(0)),
            ("ms", if let Op::Idle { ms } = &step.op { *ms } else { 0 }),
            (
                "hold_ms",
                match &step.op {
                    Op::Check { hold_ms, .. } | Op::Watch { hold_ms, .. } => *hold_ms,
                    _ => 0,
                },
            ),
        ];
        if let Some((field, v)) = waits.iter().find(|(_, v)| *v > MAX_WAIT_MS) {
            return Err(bad(format!("{field} {v} is longer than any run ({} ms at most)", MAX_WAIT_MS)));
        }
        let numbers: Vec<usize> = match &step.op {
            Op::CreateSessions { sessions } => sessions.clone(),
            Op::StopSession { session } => vec![*session],
            Op::OpenTabs { tabs } | Op::OpenSynthetic { tabs, .. } => tabs.iter().flat_map(|t| [t.tab, t.session]).collect(),
            Op::CloseTab { tab } | Op::CutTab { tab } | Op::ReloadTab { tab } | Op::Reconnect { tab } | Op::Shift { tab, .. } => vec![*tab],
            Op::Watch { tabs, .. } => tabs.clone(),
            Op::Check { expect, .. } => expect
                .iter()
                .filter_map(|e| match e {
                    Expect::SeveralTabsOneLobby { session, tabs } => Some(*session.max(tabs)),
                    Expect::LobbySurvivesTabClose { session } => Some(*session),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(n) = numbers.iter().find(|n| **n >= MAX_NUMBERED) {
            return Err(bad(format!("session or tab number {n} is out of range (below {MAX_NUMBERED})")));
        }
        match out.last_mut() {
            Some((name, steps)) if *name == step.scenario => steps.push(step),
            _ => out.push((step.scenario.clone(), vec![step])),
        }
    }
    Ok(out)
}

/// The run's random source. Each scenario draws from its own stream of the one seeded
/// generator (`jump()` once per scenario before it in the catalogue), so a scenario's plan
/// does not depend on which other scenarios ran with it: `run random-walk --seed S` alone
/// replays the random walk of a whole-suite run with seed S.
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    pub fn for_scenario(seed: u64, catalogue_index: usize) -> Self {
        let mut g = Xoshiro256PlusPlus::seed_from_u64(seed);
        for _ in 0..catalogue_index {
            g.jump();
        }
        Rng(g)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        // Rejection keeps it exactly uniform; the loop almost never repeats.
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.0.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// Uniform in `[lo, hi]` seconds, returned as whole milliseconds scaled by `scale`.
    pub fn scaled_ms(&mut self, [lo, hi]: [f64; 2], scale: f64) -> u64 {
        let unit = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo + (hi - lo) * unit) * 1000.0 * scale).round() as u64
    }

    /// `k` distinct picks from `0..n`, in the order drawn.
    pub fn choose(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut pool: Vec<usize> = (0..n).collect();
        let mut out = Vec::new();
        for _ in 0..k.min(n) {
            out.push(pool.remove(self.below(pool.len())));
        }
        out
    }

    /// An index into `weights`, with probability proportional to its weight (one > 0).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.below(total as usize) as u32;
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        unreachable!("r < total")
    }
}

/// `s` seconds scaled to ms.
pub fn scaled(s: f64, scale: f64) -> u64 {
    (s * 1000.0 * scale).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The promise of `--seed`: the same seed gives the same plan byte for byte, for every
    /// planned scenario; another seed gives another plan.
    #[test]
    fn same_seed_same_bytes_other_seed_other_plan() {
        use crate::scenario::{make_plan, params::Params, SCENARIOS};
        let p = Params::default();
        let mut planned = 0;
        for s in SCENARIOS {
            let Some(a) = make_plan(s.name, 42, &p, 0.1) else { continue };
            planned += 1;
            let b = make_plan(s.name, 42, &p, 0.1).unwrap();
            assert_eq!(a.to_jsonl(), b.to_jsonl(), "{}", s.name);
            let c = make_plan(s.name, 43, &p, 0.1).unwrap();
            assert_ne!(a.to_jsonl(), c.to_jsonl(), "{}: seeds 42 and 43 gave the same plan", s.name);
        }
        assert_eq!(
            planned, 8,
            "rapid-cycles, concurrent-sessions, multi-tab-same-lobby, random-walk, restart-chaos, vanished-tab, soak, reconnect-holding-shift"
        );
    }

    #[test]
    fn draws_are_in_range_and_choices_distinct() {
        let mut r = Rng::for_scenario(9, 0);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            let ms = r.scaled_ms([1.0, 10.0], 0.1);
            assert!((100..=1000).contains(&ms), "{ms}");
        }
        let mut c = r.choose(5, 2);
        c.dedup();
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|i| *i < 5));
        assert_eq!(r.weighted(&[0, 0, 3]), 2);
    }

    #[test]
    fn scenarios_get_independent_streams_of_one_seed() {
        let a: Vec<usize> = (0..8).map(|_| Rng::for_scenario(5, 0).below(1000)).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same stream, same draws");
        let mut s0 = Rng::for_scenario(5, 0);
        let mut s1 = Rng::for_scenario(5, 1);
        let d0: Vec<usize> = (0..8).map(|_| s0.below(1 << 30)).collect();
        let d1: Vec<usize> = (0..8).map(|_| s1.below(1 << 30)).collect();
        assert_ne!(d0, d1);
    }

    #[test]
    fn jsonl_round_trips_and_groups_by_scenario() {
        let mut p = Plan::new("a");
        p.push(Op::CreateSessions { sessions: vec![0] });
        p.push_at(Some(1500), Op::OpenTabs { tabs: vec![TabOpen { tab: 0, session: 0 }] });
        p.push(Op::Check { label: "x".into(), hold_ms: 10, expect: vec![Expect::LobbySurvivesTabClose { session: 0 }] });
        let mut q = Plan::new("b");
        q.push(Op::Idle { ms: 3 });
        let mut text = p.to_jsonl();
        text.extend(q.to_jsonl());
        let text = String::from_utf8(text).unwrap();
        assert!(text.lines().next().unwrap().contains("\"op\":\"create-sessions\""), "{text}");
        let groups = parse_jsonl(&text, &[&p.scenario, "b"]).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1, p.steps);
        assert_eq!(groups[1].1, q.steps);
        assert!(parse_jsonl("{\"nope\":1}\n", &[]).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn replayed_plans_are_checked_line_by_line() {
        let err = |text: &str| parse_jsonl(text, &["a"]).unwrap_err().to_string();
        let ok = "{\"scenario\":\"a\",\"step\":0,\"op\":\"idle\",\"ms\":5}\n";
        // A due time no run reaches would make the replay wait forever.
        let e = err(&format!("{ok}{{\"scenario\":\"a\",\"step\":1,\"at_ms\":18446744073709551615,\"op\":\"idle\",\"ms\":5}}\n"));
        assert!(e.starts_with("ops.jsonl line 2: at_ms 18446744073709551615 is longer than any run"), "{e}");
        let e = err("{\"scenario\":\"zzz\",\"step\":0,\"op\":\"idle\",\"ms\":5}\n");
        assert!(e.contains("line 1: unknown scenario \"zzz\""), "{e}");
        let e = err(&format!("{ok}{ok}{{\"scenario\":\"a\",\"step\":2,\"op\":\"fly\"}}\n"));
        assert!(e.contains("line 3") && e.contains("fly"), "{e}");
        let e = err("{\"scenario\":\"a\",\"step\":0,\"op\":\"close-tab\",\"tab\":99999}\n");
        assert!(e.contains("line 1: session or tab number 99999"), "{e}");
        assert_eq!(parse_jsonl(ok, &["a"]).unwrap().len(), 1);
        // second-connection alone has no plan: an empty file is a valid one.
        assert!(parse_jsonl("", &["a"]).unwrap().is_empty());
    }
}
