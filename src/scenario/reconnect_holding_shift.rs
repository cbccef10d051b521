//! `reconnect-holding-shift`: a user holds Shift, presses the viewer's Reconnect, and lets go
//! while it reconnects — the release travels nowhere (the input channels are closed). A healthy
//! stack releases what the departed session held; F21 (`lost-key-release`) keeps Shift latched
//! on the lobby's desktop, and the driver's input probes then arrive modified.

use super::params::Params;
use super::plan::{scaled, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "reconnect-holding-shift";
pub const ABOUT: &str = "1 tab streams; hold Shift, press Reconnect, release Shift; the tab streams its lobby again and typed keys arrive unmodified";

pub const HOLD_S: f64 = 4.0;

/// How long the user holds Shift before pressing Reconnect (s, seeded).
pub const HOLD_SHIFT_S: [f64; 2] = [0.3, 1.5];

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let hold_ms = scaled(p.hold_s.unwrap_or(HOLD_S), scale);
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: vec![0] });
    plan.push(Op::OpenTabs { tabs: vec![TabOpen { tab: 0, session: 0 }] });
    plan.push(Op::Check { label: "streaming".into(), hold_ms: 0, expect: vec![] });
    plan.push(Op::Shift { tab: 0, down: true });
    plan.push(Op::Idle { ms: rng.scaled_ms(HOLD_SHIFT_S, scale) });
    plan.push(Op::Reconnect { tab: 0 });
    plan.push(Op::Shift { tab: 0, down: false });
    // Long enough for the probes that follow the reconnected tab's lobby join (a burst, then
    // one every 5 s) whatever the time scale.
    plan.push(Op::Check { label: "after-reconnect".into(), hold_ms: hold_ms.max(2000), expect: vec![] });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_is_held_across_the_reconnect_and_released_during_it() {
        let plan = plan(&mut Rng::for_scenario(1, 0), &Params::default(), 1.0);
        let ops: Vec<&Op> = plan.steps.iter().map(|s| &s.op).collect();
        let at = |want: &Op| ops.iter().position(|o| *o == want).unwrap();
        assert!(at(&Op::Shift { tab: 0, down: true }) < at(&Op::Reconnect { tab: 0 }));
        assert!(at(&Op::Reconnect { tab: 0 }) < at(&Op::Shift { tab: 0, down: false }));
        assert!(matches!(ops.last(), Some(Op::Check { hold_ms, .. }) if *hold_ms >= 2000));
    }
}
