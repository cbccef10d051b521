//! `concurrent-sessions` (Scenario 2): five agent sessions streamed at once, two of them
//! dropped at random while the other three must keep streaming, then the two reconnect and all
//! five stream again. Each lobby's `client_count` and every `client_unique_id` are checked at
//! each step. `--synthetic-viewers N` adds N synthetic viewers, spread over the sessions and
//! mounted one after another once the real tabs stream, that stream to the end.

use super::params::Params;
use super::plan::{scaled, Expect, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "concurrent-sessions";
pub const ABOUT: &str = "5 sessions streamed at once, 2 dropped at random, the other 3 keep streaming, the 2 reconnect, all 5 stream again";

pub const SESSIONS: usize = 5;
pub const DROP: usize = 2;
pub const HOLD_S: f64 = 6.0;

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let n = p.sessions.unwrap_or(SESSIONS);
    let drop = p.drop.unwrap_or(DROP).min(n);
    let hold_ms = scaled(p.hold_s.unwrap_or(HOLD_S), scale);
    let synthetic = p.synthetic_viewers.unwrap_or(0);
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: (0..n).collect() });
    plan.push(Op::OpenTabs { tabs: (0..n).map(|s| TabOpen { tab: s, session: s }).collect() });
    plan.push(Op::Check { label: "all-streaming".into(), hold_ms, expect: vec![] });
    // Synthetic viewers join the sessions in turn (Helix refuses a sixth lobby, so a viewer
    // cannot bring a session of its own past five) and stream to the end; the drops are the
    // real tabs'. Mounted once the real tabs stream, one after the other, each streaming its
    // lobby before the next: Helix's auto-join joins the *last* Wolf UI session of the agent,
    // so two viewers of one session connecting within a second race (see multi_tab.rs). Their
    // plan tabs come after every real tab's (the reconnected ones are n..n+drop).
    let decode = p.synthetic_decode.unwrap_or_default();
    for i in 0..synthetic {
        plan.push(Op::OpenSynthetic { tabs: vec![TabOpen { tab: n + drop + i, session: i % n }], decode });
        plan.push(Op::Check { label: format!("synthetic-{}", i + 1), hold_ms: 0, expect: vec![] });
    }
    let dropped = rng.choose(n, drop);
    for &s in &dropped {
        plan.push(Op::CloseTab { tab: s });
    }
    plan.push(Op::Check { label: "after-drop".into(), hold_ms, expect: vec![] });
    plan.push(Op::OpenTabs { tabs: dropped.iter().enumerate().map(|(i, &s)| TabOpen { tab: n + i, session: s }).collect() });
    plan.push(Op::Check { label: "reconnected".into(), hold_ms, expect: vec![Expect::AllSessionsReconnect] });
    plan
}
