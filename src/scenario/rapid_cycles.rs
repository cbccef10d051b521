//! `rapid-cycles` (Scenario 1 of the design): N agent sessions, each connected and disconnected
//! over and over with random active and idle times, as impatient users do; afterwards every
//! session must reconnect and stream, with nothing stuck and no zombie streamer.
//!
//! "Connect" is opening a viewer tab on the session and "disconnect" closing it. The sessions'
//! schedules run side by side: each operation carries the time it is due.

use super::params::Params;
use super::plan::{scaled, Expect, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "rapid-cycles";
pub const ABOUT: &str =
    "N sessions (3), each connected/disconnected 20 times with random active (1-10 s) and idle (1-5 s) times; then all reconnect and stream";

pub const SESSIONS: usize = 3;
pub const CYCLES: usize = 20;
pub const ACTIVE_S: [f64; 2] = [1.0, 10.0];
pub const IDLE_S: [f64; 2] = [1.0, 5.0];
pub const HOLD_S: f64 = 6.0;

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let sessions = p.sessions.unwrap_or(SESSIONS);
    let cycles = p.cycles.unwrap_or(CYCLES);
    let (active, idle) = (p.active_s.unwrap_or(ACTIVE_S), p.idle_s.unwrap_or(IDLE_S));
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: (0..sessions).collect() });
    // (due, session, open?) per session; the rng is drawn session by session, cycle by cycle.
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    for s in 0..sessions {
        let mut t = 0;
        for _ in 0..cycles {
            let on = rng.scaled_ms(active, scale);
            let off = rng.scaled_ms(idle, scale);
            events.push((t, s, true));
            events.push((t + on, s, false));
            t += on + off;
        }
    }
    // Stable: a session's open stays before its close when both fall due at once.
    events.sort_by_key(|(t, _, _)| *t);
    let mut next_tab = 0;
    let mut open_tab_of = vec![None; sessions];
    for (t, s, open) in events {
        if open {
            plan.push_at(Some(t), Op::OpenTabs { tabs: vec![TabOpen { tab: next_tab, session: s }] });
            open_tab_of[s] = Some(next_tab);
            next_tab += 1;
        } else if let Some(tab) = open_tab_of[s].take() {
            plan.push_at(Some(t), Op::CloseTab { tab });
        }
    }
    let tabs = (0..sessions).map(|s| TabOpen { tab: next_tab + s, session: s }).collect();
    plan.push(Op::OpenTabs { tabs });
    plan.push(Op::Check { label: "after-chaos".into(), hold_ms: scaled(p.hold_s.unwrap_or(HOLD_S), scale), expect: vec![Expect::AllSessionsReconnect] });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cycle_opens_then_closes_its_own_tab_on_schedule() {
        let p = Params { sessions: Some(2), cycles: Some(4), ..Default::default() };
        let plan = plan(&mut Rng::for_scenario(3, 0), &p, 0.1);
        let opens = plan.steps.iter().filter(|s| matches!(&s.op, Op::OpenTabs { tabs } if tabs.len() == 1)).count();
        let closes = plan.steps.iter().filter(|s| matches!(s.op, Op::CloseTab { .. })).count();
        assert_eq!((opens, closes), (8, 8));
        let due: Vec<u64> = plan.steps.iter().filter_map(|s| s.at_ms).collect();
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "in time order: {due:?}");
        // Scaled by 0.1: a cycle is 0.2-1.5 s, four of them at most 6 s.
        assert!(*due.last().unwrap() <= 6000);
        let mut open = std::collections::BTreeSet::new();
        for s in &plan.steps {
            match &s.op {
                Op::OpenTabs { tabs } => tabs.iter().for_each(|t| assert!(open.insert(t.tab))),
                Op::CloseTab { tab } => assert!(open.remove(tab), "tab {tab} closed while not open"),
                _ => {}
            }
        }
        assert_eq!(open.len(), 2, "the final reconnect tabs stay open for the check");
    }
}
