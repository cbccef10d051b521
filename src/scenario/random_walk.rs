//! `random-walk`: from the seed, a random sequence of user operations (open, close and reload
//! tabs, press Reconnect, create and stop sessions, stay idle), each followed by a check of the
//! pass criteria, until an invariant breaks or the budget of operations or time is spent.
//!
//! Each step is drawn from the state the previous steps leave (a tab can only close when one is
//! open), and nothing drawn depends on the budget: the walk with `ops = K` is exactly the first
//! K operations of any longer walk of the same seed, which makes `--ops K` a minimal replay.

use super::params::Params;
use super::plan::{scaled, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "random-walk";
pub const ABOUT: &str = "a seeded random sequence of open/close/reload tab, Reconnect, create/stop session, idle; checks after every step";

pub const OPS: usize = 20;
pub const BUDGET_S: f64 = 150.0;
/// Helix refuses a sixth lobby; three keeps two cores streaming comfortably.
pub const MAX_SESSIONS: usize = 3;
pub const MAX_TABS: usize = 4;
pub const IDLE_S: [f64; 2] = [1.0, 5.0];
pub const HOLD_S: f64 = 2.0;

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let ops = p.ops.unwrap_or(OPS);
    let idle = p.idle_s.unwrap_or(IDLE_S);
    let hold_ms = scaled(p.hold_s.unwrap_or(HOLD_S), scale);
    let max_sessions = p.sessions.unwrap_or(MAX_SESSIONS);
    let max_tabs = p.tabs.unwrap_or(MAX_TABS);
    let mut plan = Plan::new(NAME);
    plan.budget_ms = Some(scaled(p.budget_s.unwrap_or(BUDGET_S), 1.0));
    plan.stop_at_first_failure = true;
    let mut live: Vec<usize> = Vec::new();
    let mut open: Vec<(usize, usize)> = Vec::new(); // (tab, session)
    let (mut next_session, mut next_tab) = (0, 0);
    for i in 0..ops {
        let idle_sessions: Vec<usize> = live.iter().copied().filter(|s| !open.iter().any(|(_, os)| os == s)).collect();
        // create, stop, open, close, reload, reconnect, idle
        let weights = [
            if live.len() < max_sessions { 2 } else { 0 },
            if idle_sessions.is_empty() { 0 } else { 1 },
            if !live.is_empty() && open.len() < max_tabs { 4 } else { 0 },
            if open.is_empty() { 0 } else { 2 },
            if open.is_empty() { 0 } else { 2 },
            if open.is_empty() { 0 } else { 2 },
            1,
        ];
        let op = match rng.weighted(&weights) {
            0 => {
                live.push(next_session);
                next_session += 1;
                Op::CreateSessions { sessions: vec![next_session - 1] }
            }
            1 => {
                // Sessions are stopped with their viewers closed, as the UI does.
                let s = idle_sessions[rng.below(idle_sessions.len())];
                live.retain(|l| *l != s);
                Op::StopSession { session: s }
            }
            2 => {
                let s = live[rng.below(live.len())];
                open.push((next_tab, s));
                next_tab += 1;
                Op::OpenTabs { tabs: vec![TabOpen { tab: next_tab - 1, session: s }] }
            }
            3 => Op::CloseTab { tab: open.remove(rng.below(open.len())).0 },
            4 => Op::ReloadTab { tab: open[rng.below(open.len())].0 },
            5 => Op::Reconnect { tab: open[rng.below(open.len())].0 },
            _ => Op::Idle { ms: rng.scaled_ms(idle, scale) },
        };
        plan.push(op);
        plan.push(Op::Check { label: format!("step-{}", i + 1), hold_ms, expect: vec![] });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_walk_is_a_prefix_of_a_longer_one_and_every_op_is_valid() {
        let long = plan(&mut Rng::for_scenario(11, 4), &Params { ops: Some(60), ..Default::default() }, 1.0);
        let short = plan(&mut Rng::for_scenario(11, 4), &Params { ops: Some(7), ..Default::default() }, 1.0);
        assert_eq!(short.steps[..], long.steps[..short.steps.len()]);
        let (mut live, mut open) = (Vec::new(), Vec::new());
        for s in &long.steps {
            match &s.op {
                Op::CreateSessions { sessions } => live.extend(sessions.iter().copied()),
                Op::StopSession { session } => {
                    assert!(!open.iter().any(|(_, os)| os == session), "stopped with a tab open");
                    live.retain(|l| l != session);
                }
                Op::OpenTabs { tabs } => tabs.iter().for_each(|t| {
                    assert!(live.contains(&t.session));
                    open.push((t.tab, t.session));
                }),
                Op::CloseTab { tab } => {
                    assert!(open.iter().any(|(t, _)| t == tab));
                    open.retain(|(t, _)| t != tab);
                }
                Op::ReloadTab { tab } | Op::Reconnect { tab } => assert!(open.iter().any(|(t, _)| t == tab)),
                Op::Idle { .. } | Op::Check { .. } => {}
                Op::RestartService { .. } | Op::ExpectErrors { .. } | Op::CutTab { .. } | Op::Watch { .. } | Op::Shift { .. } | Op::OpenSynthetic { .. } => {
                    panic!("the random walk restarts, cuts and watches nothing, holds no key and mounts no synthetic viewer: {:?}", s.op)
                }
            }
            assert!(live.len() <= MAX_SESSIONS && open.len() <= MAX_TABS);
        }
        let kinds: std::collections::BTreeSet<String> =
            long.steps.iter().map(|s| serde_json::to_value(&s.op).unwrap()["op"].as_str().unwrap().to_string()).collect();
        assert!(kinds.len() >= 7, "60 steps use every kind of operation: {kinds:?}");
    }
}
