//! Clients of the system under test: Wolf (Unix socket), moonlight-web and Helix (HTTP).
//!
//! These are the only doors into the services, whether the target is the real stack or the
//! reference stack. One error type covers them so callers can say *which* service failed *how*.

pub mod control;
pub mod helix;
pub mod https_probe;
pub mod log_source;
pub mod monitor;
pub mod moonlight_web;
pub mod replies;
pub mod resources;
pub use helix_e2e_shared::sse;
pub mod wolf;
pub mod wolf_log;

/// What went wrong talking to a service. Messages name the service and the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum SutError {
    #[error("{service} is unreachable at {endpoint}: {detail}")]
    Unreachable { service: &'static str, endpoint: String, detail: String },
    #[error("{service} {endpoint} answered HTTP {status}: {body}")]
    Status { service: &'static str, endpoint: String, status: u16, body: String },
    #[error("{service} {endpoint} sent malformed JSON: {detail}")]
    Malformed { service: &'static str, endpoint: String, detail: String },
    #[error("{service} {endpoint} refused: {error}")]
    Refused { service: &'static str, endpoint: String, error: String },
    #[error("{service} {endpoint} did not answer within {secs:.1} s")]
    Timeout { service: &'static str, endpoint: String, secs: f64 },
}

/// The clients of a target's three services, logged in.
pub struct Clients {
    pub helix: helix::HelixClient,
    pub wolf: wolf::WolfClient,
    pub mlw: moonlight_web::MoonlightWebClient,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("logging in to Helix: {0}")]
    Login(SutError),
    #[error(transparent)]
    Unreachable(SutError),
}

/// Default deadline of one request to any service.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Cut a body for an error message: services sometimes answer with whole HTML pages.
pub(crate) fn excerpt(body: &str) -> String {
    let t = body.trim();
    if t.chars().count() > 300 {
        format!("{}…", t.chars().take(300).collect::<String>())
    } else {
        t.to_string()
    }
}
