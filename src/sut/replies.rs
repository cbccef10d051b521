//! What the services answer, as types: the replies the monitor parses once and the timeline
//! carries (`timeline::Reply`). Data only, importing nothing of the driver, so the timeline can
//! hold them without depending on the clients that fetch them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Moonlight session as Wolf lists it. Secrets (`aes_key`, `aes_iv`) are deliberately not
/// deserialised, so typed values can be logged freely.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WolfSession {
    pub app_id: String,
    /// The session id (a digit string), despite its name.
    pub client_id: String,
    pub client_ip: String,
    #[serde(default)]
    pub client_unique_id: String,
    #[serde(default)]
    pub video_width: u32,
    #[serde(default)]
    pub video_height: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WolfLobby {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub multi_user: bool,
    #[serde(default)]
    pub pin_required: bool,
    #[serde(default)]
    pub stop_when_everyone_leaves: bool,
    #[serde(default)]
    pub runner: Value,
    #[serde(default)]
    pub connected_sessions: Vec<String>,
}

impl WolfLobby {
    /// The Helix session that owns this lobby, from `HELIX_SESSION_ID=<ses>` in the runner env.
    pub fn helix_session(&self) -> Option<&str> {
        self.runner.get("env")?.as_array()?.iter().filter_map(Value::as_str).find_map(|e| e.strip_prefix("HELIX_SESSION_ID="))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LobbyMemory {
    pub lobby_id: String,
    #[serde(default)]
    pub lobby_name: String,
    pub client_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WolfMemory {
    #[serde(default)]
    pub lobbies: Vec<LobbyMemory>,
    #[serde(default)]
    pub clients: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MlwSession {
    pub session_id: String,
    #[serde(default)]
    pub client_unique_id: Option<String>,
    pub mode: String,
    pub has_websocket: bool,
    #[serde(default)]
    pub streamer_pid: Option<u32>,
    pub streamer_alive: bool,
}

impl MlwSession {
    /// Stuck (F5): kept without its WebSocket while its streamer runs. The one definition the
    /// detectors, the scenarios' health watch and the reports share.
    pub fn stuck(&self) -> bool {
        !self.has_websocket && self.streamer_alive
    }

    /// A zombie entry (F6): listed with a dead streamer.
    pub fn zombie(&self) -> bool {
        !self.streamer_alive
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelixLobby {
    pub session: String,
    pub lobby_id: Option<String>,
}

/// Wolf's `/api/v1/system/health` (the Helix fork's watchdog), the fields the detectors read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WolfHealth {
    pub stuck_thread_count: u64,
    pub total_thread_count: u64,
    /// Wolf's own word on whether a pipeline can be created now (false: the type lock is lost).
    pub can_create_new_pipelines: bool,
    #[serde(default)]
    pub overall_status: String,
}

/// What the driver's probe of Wolf's HTTPS (Moonlight) port saw: it connects, sends a TLS
/// ClientHello and waits a bounded time for any byte back. A healthy Wolf answers at once (a
/// ServerHello; the stand-in's plain-HTTP port an HTTP 400 or a close): whatever comes back, or
/// a close, is an answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum HttpsProbe {
    /// Something came back, or the connection was closed, this long after the hello.
    Answered { addr: String, after_ms: f64 },
    /// The connection was accepted and nothing came back within `waited_ms`.
    Silent { addr: String, waited_ms: f64 },
    /// No connection: refused, unreachable, or not accepted in time.
    NotAccepted { addr: String, error: String },
}

/// Which processes of a service a [`ResourceSample`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// The service's own process (a container: everything in it).
    Main,
    /// moonlight-web's streamer children, summed: they come and go with sessions, so they are
    /// kept apart from the long-lived process a leak accumulates in.
    Streamers,
}

/// One service's resource use at one moment, as the monitor sampled it (`/proc` for the
/// stand-in's processes, the Docker engine's stats for containers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    pub service: helix_e2e_shared::Service,
    pub part: Part,
    /// Processes counted (0: none running, e.g. no streamer).
    pub processes: u32,
    /// Open file descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<u64>,
    /// Resident memory (a container: its usage less the inactive page cache, as `docker stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Why a figure is missing (a container's processes not visible from here, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}
