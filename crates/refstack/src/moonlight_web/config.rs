//! moonlight-web's `config.json`, with the fields the stand-in honours.

use crate::faults::FaultSet;
use crate::streamer::ipc::{IceServer, PortRange};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MlwConfig {
    /// Bearer credentials; `None` turns auth off.
    pub credentials: Option<String>,
    #[serde(default = "default_bind")]
    pub bind_address: String,
    /// None by default: the streamer then gathers only local host candidates.
    #[serde(default)]
    pub webrtc_ice_servers: Vec<IceServer>,
    #[serde(default)]
    pub webrtc_port_range: Option<PortRange>,
    #[serde(default = "default_pair_name")]
    pub pair_device_name: String,
    /// The streamer executable; the stand-in runs itself with `__streamer`.
    pub streamer_path: PathBuf,
    /// `host:port` of Wolf's Moonlight HTTP endpoint (the host with `host_id` 0).
    pub wolf_http: String,
    /// Fault switches that act inside moonlight-web or its streamers (not part of config.json).
    #[serde(skip)]
    pub faults: FaultSet,
}

fn default_bind() -> String {
    "127.0.0.1:8080".into()
}
fn default_pair_name() -> String {
    "roth".into()
}
