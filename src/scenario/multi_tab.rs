//! `multi-tab-same-lobby` (Scenario 4): several tabs on one agent session, each its own
//! Moonlight client in `create` mode streaming the same single lobby; most of them close and
//! the lobby and the last tab keep streaming.

use super::params::Params;
use super::plan::{scaled, Expect, Op, Plan, Rng, TabOpen};

pub const NAME: &str = "multi-tab-same-lobby";
pub const ABOUT: &str =
    "3 tabs on one session: one lobby, client_count 3, each tab its own create-mode client; 2 close, the lobby and the last tab keep streaming";

pub const TABS: usize = 3;
pub const DROP: usize = 2;
pub const HOLD_S: f64 = 6.0;

pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let tabs = p.tabs.unwrap_or(TABS);
    let drop = p.drop.unwrap_or(DROP).min(tabs.saturating_sub(1));
    let hold_ms = scaled(p.hold_s.unwrap_or(HOLD_S), scale);
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: vec![0] });
    // One after the other, as a user opens tabs, each streaming before the next opens: Helix's
    // auto-join joins the *last* Wolf session of the agent, so tabs opened within a second of
    // each other race (one stays on the Wolf UI) — a known Helix weakness this scenario is not
    // about.
    for t in 0..tabs {
        plan.push(Op::OpenTabs { tabs: vec![TabOpen { tab: t, session: 0 }] });
        let last = t + 1 == tabs;
        let expect = if t > 0 { vec![Expect::SeveralTabsOneLobby { session: 0, tabs: t + 1 }] } else { vec![] };
        plan.push(Op::Check { label: if last { "all-tabs".into() } else { format!("tab-{}", t + 1) }, hold_ms: if last { hold_ms } else { 0 }, expect });
    }
    for t in rng.choose(tabs, drop) {
        plan.push(Op::CloseTab { tab: t });
    }
    plan.push(Op::Check { label: "after-close".into(), hold_ms, expect: vec![Expect::LobbySurvivesTabClose { session: 0 }] });
    plan
}
