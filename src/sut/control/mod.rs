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

pub use helix_e2e_shared::Service;

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
    /// What each running service holds now (open descriptors, memory), for leak trends; a
    /// figure this kind of control cannot see is missing, with the reason.
    fn resources(&self) -> BoxFuture<'_, Vec<crate::sut::replies::ResourceSample>>;
}
