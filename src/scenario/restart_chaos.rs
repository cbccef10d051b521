//! `restart-chaos` (Scenario 3): sessions streaming while Wolf, moonlight-web and the API are
//! restarted one after the other. It needs control over the services, which the restart issue
//! (issue 5) brings; until then running it is an error, never a pass.

pub const NAME: &str = "restart-chaos";
pub const ABOUT: &str = "3 sessions streaming while Wolf, moonlight-web and the API restart (needs service control, issue 5)";

/// Why the scenario cannot run yet.
pub const UNAVAILABLE: &str = "restart-chaos needs service control (issue 5), which this build does not have yet";
