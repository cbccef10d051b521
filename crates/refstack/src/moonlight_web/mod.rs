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
    pub config: MlwConfig,
    pub sessions: sessions::Sessions,
    pub certs: certs::CertCache,
    pub log: LogFile,
}

pub async fn serve(listener: tokio::net::TcpListener, config: MlwConfig, log: LogFile) -> std::io::Result<()> {
    let mlw = Arc::new(Mlw { sessions: sessions::Sessions::default(), certs: certs::CertCache::new(config.faults.cert_subject_collision), config, log });
    api::serve(listener, mlw).await
}
