//! `restart-chaos` (Scenario 3): three sessions streaming, one tab each, while Wolf, then
//! moonlight-web, then the API are restarted for real. After each restart every tab must say
//! clearly that the stream broke (not go silent), the driver records what the tabs and the
//! servers said, the viewers reconnect, and every session must stream its lobby again, with
//! Helix believing only in lobbies Wolf has (no ghosts, F10).

use super::params::Params;
use super::plan::{scaled, Expect, Op, Plan, Rng, TabOpen};
use crate::sut::control::Service;

pub const NAME: &str = "restart-chaos";
pub const ABOUT: &str = "3 sessions streaming while Wolf, moonlight-web and the API restart; clear errors, then recovery";

pub const SESSIONS: usize = 3;
pub const HOLD_S: f64 = 5.0;

/// The design's order: Wolf first (it loses every lobby), then moonlight-web, then the API.
pub const ORDER: [Service; 3] = [Service::Wolf, Service::MoonlightWeb, Service::Api];

/// The seed decides the order in which the users press Reconnect after each restart.
pub fn plan(rng: &mut Rng, p: &Params, scale: f64) -> Plan {
    let n = p.sessions.unwrap_or(SESSIONS);
    let hold_ms = scaled(p.hold_s.unwrap_or(HOLD_S), scale);
    let mut plan = Plan::new(NAME);
    plan.push(Op::CreateSessions { sessions: (0..n).collect() });
    plan.push(Op::OpenTabs { tabs: (0..n).map(|s| TabOpen { tab: s, session: s }).collect() });
    plan.push(Op::Check { label: "streaming".into(), hold_ms, expect: vec![] });
    for service in ORDER {
        plan.push(Op::RestartService { service });
        plan.push(Op::ExpectErrors { label: format!("{service}-restart") });
        for tab in rng.choose(n, n) {
            plan.push(Op::Reconnect { tab });
        }
        plan.push(Op::Check { label: format!("after-{service}-restart"), hold_ms, expect: vec![Expect::AllSessionsReconnect, Expect::NoGhostLobbies] });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_restarts_in_the_design_order_with_errors_reconnects_and_a_recovery_check() {
        let p = plan(&mut Rng::for_scenario(1, 0), &Params::default(), 1.0);
        let restarts: Vec<Service> = p
            .steps
            .iter()
            .filter_map(|s| match s.op {
                Op::RestartService { service } => Some(service),
                _ => None,
            })
            .collect();
        assert_eq!(restarts, ORDER);
        let after_wolf: Vec<&Op> = p.steps.iter().map(|s| &s.op).skip_while(|o| !matches!(o, Op::RestartService { .. })).take(6).collect();
        assert!(matches!(after_wolf[1], Op::ExpectErrors { label } if label == "wolf-restart"));
        assert_eq!(after_wolf[2..5].iter().filter(|o| matches!(o, Op::Reconnect { .. })).count(), 3);
        assert!(matches!(after_wolf[5], Op::Check { expect, .. } if expect.contains(&Expect::NoGhostLobbies)));
    }
}
