//! `vanished-tab`: a viewer's tab vanishes for the server the way tabs vanish on users' machines
//! — its connections are cut, so its socket ends without a close frame and its peer goes silent
//! — and the next viewer of the same agent session must stream it as the first did. The server must let go of the vanished viewer's
//! moonlight-web and Wolf sessions (F18 is a server that does not notice).

use super::params::Params;
use super::plan::{scaled, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "vanished-tab";
pub const ABOUT: &str = "1 session, its tab's connections are cut (no close frame), the servers let go of its sessions, a new tab streams the session again";

pub const HOLD_S: f64 = 6.0;
/// How long nobody watches the agent after its tab vanished (seeded): a user who lost a tab
/// takes a moment to open another; the servers must have let go by then.
pub const AWAY_S: [f64; 2] = [4.0, 10.0];

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let hold_ms = scaled(p.hold_s.unwrap_or(HOLD_S), scale);
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: vec![0] });
    plan.push(Op::OpenTabs { tabs: vec![TabOpen { tab: 0, session: 0 }] });
    plan.push(Op::Check { label: "streaming".into(), hold_ms: 0, expect: vec![] });
    plan.push(Op::CutTab { tab: 0 });
    plan.push(Op::Idle { ms: rng.scaled_ms(AWAY_S, scale) });
    plan.push(Op::OpenTabs { tabs: vec![TabOpen { tab: 1, session: 0 }] });
    plan.push(Op::Check { label: "next-viewer".into(), hold_ms, expect: vec![] });
    plan
}
