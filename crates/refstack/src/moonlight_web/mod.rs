//! The stand-in moonlight-web: the `/api/host/stream` WebSocket, `/api/sessions`,
//! `/api/admin/status`, client certificates per `client_unique_id`, and one streamer child
//! process per session.

pub mod api;
pub mod certs;
pub mod config;
pub mod sessions;
pub mod stream;

pub use config::MlwConfig;

use crate::logfile::LogFile;
use std::sync::Arc;

/// Everything a request handler needs.
pub struct Mlw {
    /// Its settings; `config.faults` are the switches it started with.
    pub config: MlwConfig,
    /// The switches on now (see `faults::LiveFaults`).
    pub faults: crate::faults::LiveFaults,
    pub sessions: sessions::Sessions,
    pub certs: certs::CertCache,
    pub log: LogFile,
}

pub async fn serve(listener: tokio::net::TcpListener, config: MlwConfig, log: LogFile) -> std::io::Result<()> {
    let faults = crate::faults::LiveFaults::new(config.faults);
    serve_live(listener, config, log, faults).await
}

/// [`serve`] acting on switches that may change while it runs (the stack's control file).
pub async fn serve_live(listener: tokio::net::TcpListener, config: MlwConfig, log: LogFile, faults: crate::faults::LiveFaults) -> std::io::Result<()> {
    // The certificate cache's switch is read once, here (`Fault::acts_live`).
    let certs = certs::CertCache::new(config.faults.cert_subject_collision);
    let mlw = Arc::new(Mlw { sessions: sessions::Sessions::default(), certs, faults, config, log });
    api::serve(listener, mlw).await
}
