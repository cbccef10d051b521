//! Service control: restart, stop, start and kill the services of the system under test, the
//! way their operators do, so restart scenarios observe real recovery.
//!
//! One interface, two implementations: [`processes`] supervises the embedded reference stack as
//! three child processes (a restart is a real kill and respawn that loses in-memory state), and
//! [`docker`] drives containers through the Docker engine API (bollard), as `docker compose
//! restart` does. Every operation returns only once the service is running again (and healthy,
//! where it has a health check), or fails with a deadline.

pub mod docker;
pub mod processes;

use futures::future::BoxFuture;
use std::time::Duration;

/// The three services a restart scenario can bounce, named as in Helix's compose files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Wolf,
    MoonlightWeb,
    Api,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Wolf, Service::MoonlightWeb, Service::Api];

    pub fn name(self) -> &'static str {
        match self {
            Service::Wolf => "wolf",
            Service::MoonlightWeb => "moonlight-web",
            Service::Api => "api",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| format!("unknown service `{s}` (expected wolf, moonlight-web or api)"))
    }
}

/// What went wrong controlling a service; each names the service and what was attempted.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{service}: {action} failed: {detail}")]
    Failed { service: Service, action: &'static str, detail: String },
    #[error("{service}: not running again within {secs:.0} s after {action}{}", last.as_ref().map(|l| format!(" (last seen: {l})")).unwrap_or_default())]
    NotReady { service: Service, action: &'static str, secs: f64, last: Option<String> },
    #[error("{service}: this target names no way to control it ({detail})")]
    Unknown { service: Service, detail: String },
    #[error("Docker engine at {endpoint}: {detail}")]
    Engine { endpoint: String, detail: String },
}

/// How long a service may take to come back before the operation fails.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Restart, stop, start and kill one service. Implementations wait until the service is ready
/// again after `restart` and `start`; `stop` and `kill` return once it is down.
pub trait ServiceControl: Send + Sync {
    /// A line for reports: what is being controlled, and how.
    fn describe(&self) -> String;
    fn restart(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>>;
    fn stop(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>>;
    fn start(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>>;
    fn kill(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>>;
}
