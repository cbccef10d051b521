//! `soak`: many connect/disconnect cycles across several sessions, to see what each service
//! keeps of each one (F20, leak trends). The sessions' viewers connect together, stream, and
//! go away together, round after round, so between rounds nothing streams and every round
//! loads the stack alike: a service's descriptors and memory at the end of each cycle differ
//! only by what the cycles left behind. Its per-cycle growth is reported for every service
//! (`summary.json`'s `resources`, a table and a chart in the reports), named or not.
//!
//! Time scale: `--time-scale` shrinks the waits (how long viewers stream, how long they stay
//! away) and the default cycle count with them (300 at 1, never below 40, what the fit needs
//! to tell a leak from noise); `--param cycles=N` sets the count exactly (cycles in all, not
//! per session).

use super::params::Params;
use super::plan::{scaled, Expect, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "soak";
pub const ABOUT: &str =
    "N sessions (4) connected together, streamed 1-3 s, disconnected, away 0.5-1.5 s, until C cycles (300, time-scaled) are done; per-cycle growth of every service's descriptors and memory reported; then all stream again";

pub const SESSIONS: usize = 4;
pub const CYCLES: usize = 300;
/// The fewest cycles a time-scaled soak runs: the detector's warm-up and its minimum of
/// fitted cycles, with room for the interval to narrow.
pub const MIN_CYCLES: usize = 40;
pub const ACTIVE_S: [f64; 2] = [1.0, 3.0];
pub const IDLE_S: [f64; 2] = [0.5, 1.5];
pub const HOLD_S: f64 = 6.0;

/// Cycles in all: the parameter's, else the default scaled with time (see the module).
pub fn cycles(p: &Params, scale: f64) -> usize {
    p.cycles.unwrap_or_else(|| ((CYCLES as f64 * scale).ceil() as usize).clamp(MIN_CYCLES, CYCLES))
}

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let sessions = p.sessions.unwrap_or(SESSIONS);
    let (active, idle) = (p.active_s.unwrap_or(ACTIVE_S), p.idle_s.unwrap_or(IDLE_S));
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: (0..sessions).collect() });
    let (mut left, mut next_tab) = (cycles(p, scale), 0);
    while left > 0 {
        let round = left.min(sessions);
        let tabs: Vec<TabOpen> = (0..round).map(|s| TabOpen { tab: next_tab + s, session: s }).collect();
        next_tab += round;
        let ids: Vec<usize> = tabs.iter().map(|t| t.tab).collect();
        plan.push(Op::OpenTabs { tabs });
        plan.push(Op::Watch { tabs: ids.clone(), hold_ms: rng.scaled_ms(active, scale) });
        for tab in ids {
            plan.push(Op::CloseTab { tab });
        }
        plan.push(Op::Idle { ms: rng.scaled_ms(idle, scale) });
        left -= round;
    }
    // After the soak, every session must still connect and stream: a leak's harm comes late.
    plan.push(Op::OpenTabs { tabs: (0..sessions).map(|s| TabOpen { tab: next_tab + s, session: s }).collect() });
    plan.push(Op::Check { label: "after-soak".into(), hold_ms: scaled(p.hold_s.unwrap_or(HOLD_S), scale), expect: vec![Expect::AllSessionsReconnect] });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_of_sessions_make_exactly_the_cycles_asked_for() {
        let p = Params { sessions: Some(3), cycles: Some(10), ..Default::default() };
        let plan = plan(&mut Rng::for_scenario(1, 0), &p, 0.2);
        let closes = plan.steps.iter().filter(|s| matches!(s.op, Op::CloseTab { .. })).count();
        let watches: Vec<usize> = plan.steps.iter().filter_map(|s| if let Op::Watch { tabs, .. } = &s.op { Some(tabs.len()) } else { None }).collect();
        assert_eq!((closes, watches), (10, vec![3, 3, 3, 1]), "three full rounds and one of a single session");
        // Every closed tab was watched streaming first.
        let mut watched = std::collections::BTreeSet::new();
        for s in &plan.steps {
            match &s.op {
                Op::Watch { tabs, hold_ms } => {
                    assert!((200..=600).contains(hold_ms), "1-3 s at 0.2: {hold_ms}");
                    watched.extend(tabs.iter().copied());
                }
                Op::CloseTab { tab } => assert!(watched.contains(tab)),
                _ => {}
            }
        }
        assert!(matches!(plan.steps.last().map(|s| &s.op), Some(Op::Check { .. })));
    }

    #[test]
    fn the_default_count_scales_with_time_but_not_below_what_the_fit_needs() {
        let none = Params::default();
        assert_eq!((cycles(&none, 1.0), cycles(&none, 0.2), cycles(&none, 0.01)), (300, 60, MIN_CYCLES));
        assert_eq!(cycles(&Params { cycles: Some(7), ..Default::default() }, 0.2), 7, "the parameter is exact");
    }
}
