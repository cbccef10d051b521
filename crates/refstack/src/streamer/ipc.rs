//! The JSON-lines protocol between moonlight-web and its streamer children (stdin/stdout).
//!
//! Enums are externally tagged, as serde does by default and as moonlight-web's own IPC is.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ServerToStreamer {
    Init(StreamerInit),
    /// A client message from the browser's WebSocket (e.g. `{"Signaling":{...}}`), verbatim.
    WebSocket(serde_json::Value),
    ClientJoined,
    Stop,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StreamerToServer {
    /// A server message for the browser's WebSocket (e.g. `{"StageStarting":{...}}`), verbatim.
    WebSocket(serde_json::Value),
    Stop,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamerInit {
    pub session_id: String,
    pub client_unique_id: Option<String>,
    pub mode: String,
    /// `host:port` of Wolf's Moonlight HTTP endpoint.
    pub wolf_http: String,
    pub app_id: String,
    /// The client certificate moonlight-web generated for this `client_unique_id`.
    pub cert_pem: String,
    pub key_pem: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    pub ice_servers: Vec<IceServer>,
    pub port_range: Option<PortRange>,
    #[serde(default)]
    pub faults: StreamerFaults,
}

/// The fault switches a streamer acts on (see `refstack::faults`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamerFaults {
    /// F5/F6: outlive the peer's end, IPC `Stop` and a closed stdin; only Wolf ending the stream
    /// (or moonlight-web dying) ends the process.
    #[serde(default)]
    pub linger: bool,
    /// F11: the SCTP layer keeps meeting mangled chunks once the peer is up.
    #[serde(default)]
    pub sctp_errors: bool,
    /// F14: the stop cascade always takes its full flush time before it drops the Moonlight
    /// stream, as when `ConnectionTerminated` cannot leave, so a Reconnect always meets it.
    #[serde(default)]
    pub slow_teardown: bool,
    /// F18: the peer's end does not end the streamer (its Moonlight stream, and so its Wolf
    /// session, stays up); IPC `Stop` still does.
    #[serde(default)]
    pub outlive_peer: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub credential: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}
