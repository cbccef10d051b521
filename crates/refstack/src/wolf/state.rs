//! Wolf's in-memory state: paired clients, Moonlight sessions, lobbies, and the event bus.
//!
//! Everything lives in memory, as in Wolf: a restart forgets it all. Every mutation goes through
//! here so the log lines and the server-sent events stay in step with the state.
//!
//! Why one file of over 400 lines: every change to Wolf's state (pairing, sessions, lobbies,
//! events) goes through one lock, as in Wolf, and the fault switches that break that state sit
//! beside the code they break.

use super::input::{Desktop, Packet};
use crate::faults::{FaultSet, LiveFaults};
use crate::logfile::LogFile;
use helix_e2e_shared::stamp;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The one app Wolf offers in lobbies mode.
pub const WOLF_UI_TITLE: &str = "Wolf UI";
/// Frames per second of every picture producer (lobbies and Wolf UI sessions).
pub const PRODUCER_FPS: f64 = 30.0;
/// A thread whose heartbeat is older than this counts as stuck in `/system/health`.
pub const STUCK_AFTER: Duration = Duration::from_secs(3);
/// How often the watchdog repeats its "degraded" line while nothing changes.
pub const DEGRADED_REPEAT: Duration = Duration::from_secs(10);
/// What Wolf's encoder logs when its CUDA buffer pool runs dry (F8).
pub const BUFFER_POOL_ERROR: &str = "Failed to acquire buffer from pool: -2";
/// How long a lobby setup waits for its display before it answers `Lobby setup timed out`.
/// Wolf waits 20 s; the stand-in waits less so that a run meets it in seconds, and less than
/// Helix's 10 s deadline for a Wolf call, so Helix relays Wolf's own answer (F19).
pub const LOBBY_SETUP_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PairedClient {
    pub client_id: u64,
    /// DER of the client certificate.
    pub cert_der: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: u64,
    pub client_unique_id: String,
    pub client_ip: String,
    pub app_id: String,
    pub aes_key: String,
    pub aes_iv: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub lobby: Option<String>,
    pub started: Instant,
    /// When the session last joined a lobby (F4's idle clock starts here).
    pub joined: Option<Instant>,
    /// The session's encoder has no buffers: it keeps encoding, all black (F8).
    pub black: bool,
    /// The stream connection that is the session's control peer now (see
    /// [`WolfState::attach_control`]); `None` until one attaches.
    pub control: Option<u64>,
    /// Since when the creation of this session's pipeline has waited for the type lock (F16).
    pub pipeline_waiting: Option<Instant>,
    /// The session's own Wolf UI desktop (its input goes to its lobby's once it joined one).
    pub desktop: Desktop,
}

#[derive(Clone, Debug)]
pub struct Lobby {
    pub id: String,
    pub name: String,
    pub profile_id: String,
    pub multi_user: bool,
    pub stop_when_everyone_leaves: bool,
    pub pin: Option<Vec<u8>>,
    pub runner: Value,
    pub video_settings: Value,
    pub connected_sessions: Vec<u64>,
    pub tag: u16,
    pub created: Instant,
    /// The shared desktop every session in the lobby types into.
    pub desktop: Desktop,
    /// The echo a stopped producer (F9) froze with.
    pub frozen_echo: Option<stamp::InputEcho>,
}

/// What a session's encoder should draw right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureSpec {
    /// `stamp::WOLF_UI_TAG` for the Wolf UI, otherwise the lobby's tag.
    pub tag: u16,
    /// Frame counter of the producer the session listens to.
    pub counter: u32,
    pub black: bool,
    /// What the desktop shows of the input it received.
    pub echo: stamp::InputEcho,
}

#[derive(Default)]
struct Inner {
    paired: Vec<PairedClient>,
    /// In creation order, as Wolf lists them (Helix's "last session wins" rule depends on it).
    sessions: Vec<Session>,
    lobbies: Vec<Lobby>,
    /// Sessions launched since start (F8 counts them).
    launches: u32,
    /// Stream connections attached since start: each one's control token.
    streams: u64,
    /// F20: the render-node handles each live session's pipeline holds, and those that
    /// teardowns lost track of (never closed while Wolf runs).
    render_handles: std::collections::HashMap<u64, Vec<std::fs::File>>,
    leaked_handles: Vec<std::fs::File>,
    /// F19: the display sockets bound now, and the lobby setups that got one so far.
    displays: Vec<Display>,
    display_setups: u32,
}

/// F19: a lobby's display socket (libwayland's `wayland-K`), a real Unix socket bound in Wolf's
/// display directory. `lobby` is `None` once its setup failed: the failure path forgets it, and
/// the socket stays bound and its name taken.
#[derive(Debug)]
struct Display {
    name: String,
    lobby: Option<String>,
    _socket: std::os::unix::net::UnixListener,
}

/// Why `lobbies/create` failed; the text is Wolf's answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LobbySetupError {
    /// F19: the setup got its display socket, then its runner failed.
    #[error("Lobby setup failed: the runner exited before its display was ready")]
    RunnerFailed,
    /// F19: no display socket could be made; the setup waited [`LOBBY_SETUP_DEADLINE`] for a
    /// display that never came.
    #[error("Lobby setup timed out")]
    TimedOut,
}

/// What the stand-in's pipelines open as their GPU render node (`/dev/dri/renderD128` on a real
/// host): a device-like file every machine has.
const RENDER_NODE: &str = "/dev/null";

/// One thread in `/system/health`.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadHealth {
    pub tid: u32,
    pub name: String,
    pub seconds_since_heartbeat: f64,
    pub is_stuck: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    pub threads: Vec<ThreadHealth>,
    pub stuck: usize,
    /// Whether a pipeline could be created now: the process-wide type lock is free.
    pub can_create_pipelines: bool,
}

/// Wolf's threads that live as long as the process, as its watchdog lists them; pipelines and
/// lobby producers come on top. With them a run's handful of stuck producers is the minority it
/// was on the real host (35 %), not the half a naive alarm would wait for.
const PROCESS_THREADS: [&str; 7] = ["wolf", "HTTPServer", "HTTPSServer", "RTSPServer", "ENetControl", "PulseAudio", "HealthWatchdog"];

impl Health {
    pub fn overall_status(&self) -> &'static str {
        match self.stuck {
            0 => "healthy",
            n if n == self.threads.len() => "critical",
            _ => "degraded",
        }
    }
}

pub struct WolfState {
    inner: Mutex<Inner>,
    events: broadcast::Sender<(String, Value)>,
    pub log: LogFile,
    pub app_id: String,
    pub started: Instant,
    /// The switches on now (the start ones, and the control file's: see `faults::LiveFaults`).
    pub faults: LiveFaults,
    /// Where paired clients are kept across restarts (Wolf's `config.toml`); memory only if none.
    paired_file: Option<std::path::PathBuf>,
    /// Held while a session is torn down; a `/cancel` waits for it (see `moonlight.rs`).
    pub teardown_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// GLib's process-wide type lock: every pipeline creation takes it (F16).
    type_lock: std::sync::Arc<Mutex<()>>,
    /// When a thread died holding [`Self::type_lock`] (F16).
    type_lock_lost: std::sync::Arc<std::sync::OnceLock<Instant>>,
    /// The audio server's socket Wolf connects to when its first session starts (F17).
    audio_socket: Option<std::path::PathBuf>,
    audio_started: std::sync::Once,
    /// Where lobbies' display sockets are bound (F19 only; the healthy stand-in binds none).
    display_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LobbyError {
    #[error("Invalid lobby ID")]
    InvalidLobby,
    #[error("Invalid PIN")]
    InvalidPin,
    #[error("Lobby or session not found")]
    NotFound,
    #[error("Lobby is full")]
    Full,
    #[error("Session already in different lobby - leave first before joining another")]
    OtherLobby,
}

impl WolfState {
    pub fn new(log: LogFile) -> Self {
        Self::with_faults(log, FaultSet::default())
    }

    pub fn with_faults(log: LogFile, faults: FaultSet) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            inner: Mutex::new(Inner::default()),
            events,
            log,
            // Wolf derives app ids from a hash; any stable digit string will do.
            app_id: "134906179".to_string(),
            started: Instant::now(),
            faults: LiveFaults::new(faults),
            paired_file: None,
            teardown_lock: Default::default(),
            type_lock: Default::default(),
            type_lock_lost: Default::default(),
            audio_socket: None,
            audio_started: std::sync::Once::new(),
            display_dir: None,
        }
    }

    /// Connect to the audio server at `path` when the first session starts (F17).
    pub fn with_audio_socket(mut self, path: std::path::PathBuf) -> Self {
        self.audio_socket = Some(path);
        self
    }

    /// F16: `after` from now, a thread takes the type lock and dies holding it (it ends without
    /// releasing it, as a thread killed by an exception leaves its mutex locked). Nothing is
    /// logged: the real one died silently.
    pub fn lose_type_lock_after(&self, after: Duration) {
        let (lock, lost) = (self.type_lock.clone(), self.type_lock_lost.clone());
        let spawned = std::thread::Builder::new().name("gst-type-registry".into()).spawn(move || {
            std::thread::sleep(after);
            let held = lock.lock().unwrap_or_else(|e| e.into_inner());
            let _ = lost.set(Instant::now());
            std::mem::forget(held);
        });
        if let Err(e) = spawned {
            tracing::error!("pipeline-lock: cannot start the thread that takes the type lock: {e}");
        }
    }

    /// Create the pipeline of session `id` (its encoder's thread calls this first): GStreamer
    /// registers the element types under the process-wide type lock. A thread that died
    /// holding it (F16) makes this wait for ever — the session never gets a first frame.
    pub fn create_pipeline(&self, id: u64) {
        if let Ok(_types) = self.type_lock.try_lock() {
            return;
        }
        self.set_pipeline_waiting(id, Some(Instant::now()));
        drop(self.type_lock.lock().unwrap_or_else(|e| e.into_inner()));
        self.set_pipeline_waiting(id, None);
    }

    fn set_pipeline_waiting(&self, id: u64, since: Option<Instant>) {
        if let Some(s) = self.lock().sessions.iter_mut().find(|s| s.id == id) {
            s.pipeline_waiting = since;
        }
    }

    /// Bind lobbies' display sockets in `dir` (emptied first: a fresh Wolf's runtime directory
    /// is empty, as a restarted container's is).
    pub fn with_display_dir(mut self, dir: std::path::PathBuf) -> std::io::Result<Self> {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(&dir)?;
        self.display_dir = Some(dir);
        Ok(self)
    }

    /// Keep paired clients in `path`, as Wolf keeps them in its config file: a restarted Wolf
    /// forgets sessions and lobbies but still knows the certificates it paired.
    pub fn with_paired_file(mut self, path: std::path::PathBuf) -> std::io::Result<Self> {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.lock().paired =
                    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.paired_file = Some(path);
        Ok(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(String, Value)> {
        self.events.subscribe()
    }

    /// Broadcast an event named like Wolf's C++ type, `wolf::core::events::<Name>`.
    pub fn fire(&self, name: &str, data: Value) {
        let _ = self.events.send((format!("wolf::core::events::{name}"), data));
    }

    // ---- pairing and sessions (the Moonlight side) ----

    pub fn pair(&self, cert_der: Vec<u8>) -> u64 {
        let client_id = cert_hash(&cert_der);
        let mut inner = self.lock();
        if !inner.paired.iter().any(|p| p.cert_der == cert_der) {
            inner.paired.push(PairedClient { client_id, cert_der });
            if let Some(path) = &self.paired_file {
                let tmp = path.with_extension("tmp");
                let written = serde_json::to_vec(&inner.paired)
                    .map_err(std::io::Error::other)
                    .and_then(|b| std::fs::write(&tmp, b))
                    .and_then(|_| std::fs::rename(&tmp, path));
                if let Err(e) = written {
                    self.log.error(format!("[CONFIG] cannot save paired clients to {}: {e}", path.display()));
                }
            }
            self.log.info(format!("[PAIRING] Paired new client {client_id}"));
            self.fire("PairSignal", json!({"client_id": client_id.to_string()}));
        }
        client_id
    }

    /// The paired client a certificate identifies: the first paired certificate that "verifies".
    /// With F1 on, verification is upstream Wolf's partial-chain check, under which two
    /// self-signed certificates with the same subject and issuer verify each other whatever
    /// their keys; otherwise (the Helix fork) only the same certificate does.
    pub fn identify(&self, cert_der: &[u8]) -> Option<PairedClient> {
        let inner = self.lock();
        if self.faults.now().cert_subject_collision {
            if let Some(names) = subject_and_issuer(cert_der) {
                return inner.paired.iter().find(|p| subject_and_issuer(&p.cert_der).as_ref() == Some(&names)).cloned();
            }
        }
        inner.paired.iter().find(|p| p.cert_der == cert_der).cloned()
    }

    /// The session registered for exactly this certificate (Wolf's session id is the hash of
    /// the certificate the connection presented). `resume` and `cancel` look sessions up this
    /// way, while `serverinfo` and `launch` go through [`Self::identify`]: with F1 on the two
    /// disagree, which is how a second client gets "busy" and then "unregistered session".
    pub fn session_of_certificate(&self, cert_der: &[u8]) -> Option<Session> {
        self.session(cert_hash(cert_der))
    }

    pub fn paired_clients(&self) -> Vec<PairedClient> {
        self.lock().paired.clone()
    }

    pub fn session(&self, id: u64) -> Option<Session> {
        self.lock().sessions.iter().find(|s| s.id == id).cloned()
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.lock().sessions.clone()
    }

    /// Create the session of a paired client. `None` if it already has one.
    pub fn launch(&self, client: &PairedClient, client_unique_id: &str, client_ip: &str, width: u32, height: u32, fps: u32) -> Option<Session> {
        let mut inner = self.lock();
        if inner.sessions.iter().any(|s| s.id == client.client_id) {
            return None;
        }
        inner.launches += 1;
        let black = self.faults.now().black_after.is_some_and(|n| inner.launches >= n);
        let session = Session {
            id: client.client_id,
            client_unique_id: client_unique_id.to_string(),
            client_ip: client_ip.to_string(),
            app_id: self.app_id.clone(),
            aes_key: random_hex(16),
            aes_iv: random_hex(16),
            width,
            height,
            fps,
            lobby: None,
            started: Instant::now(),
            joined: None,
            black,
            control: None,
            pipeline_waiting: None,
            desktop: Desktop::default(),
        };
        if let Some(n) = self.faults.now().leak_per_cycle {
            // F20: the pipeline's encoder opens its handles on the render node.
            let handles: Vec<std::fs::File> = (0..n).filter_map(|_| std::fs::File::open(RENDER_NODE).ok()).collect();
            inner.render_handles.insert(session.id, handles);
        }
        inner.sessions.push(session.clone());
        drop(inner);
        if let Some(path) = &self.audio_socket {
            self.audio_started.call_once(|| super::audio::connect(path.clone(), self.log.clone()));
        }
        self.log.info(format!("[HTTPS] Launching app {} for session {}", WOLF_UI_TITLE, session.id));
        self.log.debug(format!("Starting Wolf-UI container Wolf-UI_{}", session.id));
        if black {
            // The pipeline still runs: frames keep flowing, each one a black surface.
            self.log.error(BUFFER_POOL_ERROR);
        }
        self.fire("StreamSession", session_json(&session, false));
        Some(session)
    }

    /// End a session the way Wolf's `StopStreamEvent` does: leave its lobby, stop its pipelines.
    pub fn stop_session(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let Some(pos) = inner.sessions.iter().position(|s| s.id == id) else { return false };
        let session = inner.sessions.remove(pos);
        // F20: the teardown forgets the pipeline's render-node handles instead of closing them
        // (the +14 GPU handles per cycle of the Dec 2025 notes).
        if let Some(handles) = inner.render_handles.remove(&id) {
            inner.leaked_handles.extend(handles);
        }
        if self.faults.now().https_deadlock {
            self.teardown_thread_dies(id);
        }
        let mut stopped_lobby = None;
        if let Some(lobby_id) = &session.lobby {
            if let Some(lobby) = inner.lobbies.iter_mut().find(|l| &l.id == lobby_id) {
                lobby.connected_sessions.retain(|s| *s != id);
                self.release_keys(lobby, id);
                if lobby.stop_when_everyone_leaves && lobby.connected_sessions.is_empty() {
                    stopped_lobby = Some(lobby.id.clone());
                }
            }
        }
        if let Some(lid) = &stopped_lobby {
            inner.lobbies.retain(|l| &l.id != lid);
        }
        drop(inner);
        self.fire("StopStreamEvent", json!({"session_id": id.to_string()}));
        if let Some(lobby_id) = &session.lobby {
            self.log.info(format!("[LOBBY] Moonlight stream {id} over, leaving lobby {lobby_id}"));
            self.fire("LeaveLobbyEvent", json!({"lobby_id": lobby_id, "moonlight_session_id": id.to_string(), "skip_producer_switch": true}));
        }
        if let Some(lid) = stopped_lobby {
            self.fire("StopLobbyEvent", json!({"lobby_id": lid}));
        }
        self.log.debug(format!("Stopping Wolf-UI container Wolf-UI_{id}"));
        true
    }

    /// F15: the session's teardown thread takes the teardown lock and dies holding it (ended
    /// without releasing it, as an exception ends a C++ thread that holds a mutex); the
    /// `/cancel` that races this teardown then waits for it for ever. Joined, so the lock is
    /// held before the teardown is over — the race, made deterministic.
    fn teardown_thread_dies(&self, id: u64) {
        let lock = self.teardown_lock.clone();
        let thread = std::thread::Builder::new().name(format!("teardown-{id}")).spawn(move || {
            if let Ok(held) = lock.try_lock_owned() {
                std::mem::forget(held);
            }
        });
        match thread {
            Ok(t) => drop(t.join()),
            Err(e) => tracing::error!("https-deadlock: cannot start the teardown thread: {e}"),
        }
    }

    /// A stream connection attached to session `id` becomes its control peer and returns its
    /// token; `None` when the session is gone. A resume attaches a second connection to a live
    /// session: the new one takes the control over, as Wolf moves a resumed session to the
    /// client's new ENet peer, so the old one leaving is no longer the session's disconnect.
    pub fn attach_control(&self, id: u64) -> Option<u64> {
        let mut inner = self.lock();
        inner.streams += 1;
        let token = inner.streams;
        let session = inner.sessions.iter_mut().find(|s| s.id == id)?;
        session.control = Some(token);
        Some(token)
    }

    /// Whether the connection with `token` is still session `id`'s control peer. Not after a
    /// resume handed the control to another connection, nor once the session has ended — a
    /// session launched again under the same id (the same certificate) starts without one.
    pub fn is_control(&self, id: u64, token: u64) -> bool {
        self.session(id).is_some_and(|s| s.control == Some(token))
    }

    /// The ENet control peer of a session went away: Helix's Wolf fires `StopStreamEvent`.
    pub fn control_lost(&self, id: u64, peer: SocketAddr) {
        if self.faults.now().orphan_wolf_session {
            // F7: the disconnect goes unnoticed, so the session outlives its client.
            tracing::debug!("session {id}: control peer {peer} gone, not noticed (orphan-wolf-session)");
            return;
        }
        self.log.debug(format!("[ENET] disconnected client: {}:{}", peer.ip(), peer.port()));
        self.stop_session(id);
    }

    /// What the encoder of session `id` draws now; `None` once the session is gone.
    pub fn picture_for(&self, id: u64) -> Option<PictureSpec> {
        let mut inner = self.lock();
        let Inner { sessions, lobbies, .. } = &mut *inner;
        let session = sessions.iter().find(|s| s.id == id)?;
        let lobby = session.lobby.as_ref().and_then(|lid| lobbies.iter_mut().find(|l| &l.id == lid));
        let black = session.black;
        Some(match lobby {
            Some(l) => {
                // A stopped producer (F9) draws nothing new, input included: its last picture
                // keeps the echo it had when it stopped.
                let echo = if self.lobby_frozen(l) { *l.frozen_echo.get_or_insert_with(|| l.desktop.echo()) } else { l.desktop.echo() };
                PictureSpec { tag: l.tag, counter: self.lobby_frames(l), black, echo }
            }
            None => PictureSpec { tag: stamp::WOLF_UI_TAG, counter: frames_since(session.started), black, echo: session.desktop.echo() },
        })
    }

    /// One input packet from session `id`'s client, applied to the desktop its input belongs
    /// to: its lobby's once it joined one (Wolf moves a joining session's input there), else its
    /// own Wolf UI's. A packet that does not decode is logged and dropped, as Wolf does.
    pub fn input(&self, id: u64, bytes: &[u8]) {
        let packet = match Packet::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("session {id}: {e}");
                return;
            }
        };
        let mut inner = self.lock();
        let Inner { sessions, lobbies, .. } = &mut *inner;
        let Some(session) = sessions.iter_mut().find(|s| s.id == id) else { return };
        match session.lobby.as_ref().and_then(|lid| lobbies.iter_mut().find(|l| &l.id == lid)) {
            Some(lobby) => lobby.desktop.apply(id, &packet),
            None => session.desktop.apply(id, &packet),
        }
    }

    /// Session `session` leaves `lobby`'s desktop: the keys it still holds are released (its
    /// virtual keyboard goes away), unless F21's switch loses that release.
    fn release_keys(&self, lobby: &mut Lobby, session: u64) {
        if self.faults.now().lost_key_release {
            return;
        }
        let released = lobby.desktop.release_session(session);
        if !released.is_empty() {
            tracing::debug!("session {session} left lobby {} holding keys {released:?}; released", lobby.id);
        }
    }

    /// Whether this lobby's producer has stopped (F9's freeze or F16's lost type lock).
    fn lobby_frozen(&self, l: &Lobby) -> bool {
        self.producer_stopped(l).is_some()
    }

    /// Frames a lobby's producer has made; with F9 on it stops at the freeze, with F16 when the
    /// type lock was lost (every producer at once: each needs the lock for its buffers).
    fn lobby_frames(&self, l: &Lobby) -> u32 {
        let frames = frames_since(l.created);
        let stopped = self.producer_stopped(l).map(|after| (after.as_secs_f64() * PRODUCER_FPS) as u32);
        stopped.map_or(frames, |n| frames.min(n))
    }

    /// How long after its creation a lobby's producer stopped (F9's freeze or F16's lost type
    /// lock, whichever came first); `None` while it runs.
    fn producer_stopped(&self, l: &Lobby) -> Option<Duration> {
        let frozen = self.faults.now().freeze_after.filter(|after| l.created.elapsed() > *after);
        let locked = self.type_lock_lost.get().map(|at| at.saturating_duration_since(l.created));
        frozen.into_iter().chain(locked).min()
    }

    /// Wolf's watchdog view: the process's own threads, one producer thread per lobby whose
    /// heartbeat is its last produced frame, and one pipeline thread per session, stuck while
    /// its creation waits for the type lock (F16).
    pub fn health(&self) -> Health {
        let inner = self.lock();
        let thread =
            |tid: u32, name: String, since: f64| ThreadHealth { tid, name, seconds_since_heartbeat: since, is_stuck: since >= STUCK_AFTER.as_secs_f64() };
        let mut threads: Vec<ThreadHealth> = PROCESS_THREADS.iter().zip(1..).map(|(n, tid)| thread(tid, n.to_string(), 0.0)).collect();
        for (i, l) in inner.lobbies.iter().enumerate() {
            let since = self.producer_stopped(l).map_or(0.0, |after| (l.created.elapsed().saturating_sub(after)).as_secs_f64());
            threads.push(thread(100 + i as u32, format!("producer-{}", &l.id[..8.min(l.id.len())]), since));
        }
        for (i, s) in inner.sessions.iter().enumerate() {
            threads.push(thread(1000 + i as u32, format!("pipeline-{}", s.id), s.pipeline_waiting.map_or(0.0, |w| w.elapsed().as_secs_f64())));
        }
        let stuck = threads.iter().filter(|t| t.is_stuck).count();
        Health { threads, stuck, can_create_pipelines: self.type_lock.try_lock().is_ok() }
    }

    /// Wolf's health monitor: logs `System degraded: N/M threads stuck` when the count of stuck
    /// threads changes, and again every [`DEGRADED_REPEAT`] while it stays degraded.
    pub async fn watchdog(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = (0usize, Instant::now());
        loop {
            tick.tick().await;
            let h = self.health();
            if h.stuck > 0 && (h.stuck != last.0 || last.1.elapsed() >= DEGRADED_REPEAT) {
                self.log.warn(format!("System degraded: {}/{} threads stuck", h.stuck, h.threads.len()));
                last = (h.stuck, Instant::now());
            } else if h.stuck == 0 {
                last.0 = 0;
            }
        }
    }

    // ---- lobbies (the REST API) ----

    pub fn lobbies(&self) -> Vec<Lobby> {
        self.lock().lobbies.clone()
    }

    /// Set a lobby up; under F19 it first needs a display socket (see [`Self::setup_display`]).
    pub fn create_lobby(&self, req: &Value) -> Result<String, LobbySetupError> {
        let id = uuid::Uuid::new_v4().to_string();
        if let Some(budget) = self.faults.now().lobby_socket_leak {
            self.setup_display(&id, budget)?;
        }
        let pin = req.get("pin").and_then(parse_pin);
        let lobby = Lobby {
            id: id.clone(),
            name: req.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
            profile_id: req.get("profile_id").and_then(Value::as_str).unwrap_or("").to_string(),
            multi_user: req.get("multi_user").and_then(Value::as_bool).unwrap_or(true),
            stop_when_everyone_leaves: req.get("stop_when_everyone_leaves").and_then(Value::as_bool).unwrap_or(false),
            pin,
            runner: req.get("runner").cloned().unwrap_or(json!({})),
            video_settings: req.get("video_settings").cloned().unwrap_or(json!({})),
            connected_sessions: Vec::new(),
            tag: stamp::lobby_tag(&id),
            created: Instant::now(),
            desktop: Desktop::default(),
            frozen_echo: None,
        };
        self.lock().lobbies.push(lobby.clone());
        self.log.info(format!("[LOBBY] Created lobby {} ({})", id, lobby.name));
        self.fire("CreateLobbyEvent", json!({"id": id, "name": lobby.name, "multi_user": lobby.multi_user}));
        Ok(id)
    }

    /// F19: bind the lobby's display socket under the first free name of `budget` (libwayland
    /// tries `wayland-0` … `wayland-31` and gives up when every name exists). Every other setup
    /// that got one then fails — its runner does not come up — and the failure path returns
    /// without removing the socket, the leak of the incident. Once every name is taken no setup
    /// gets a display again, and each one times out.
    fn setup_display(&self, lobby: &str, budget: u32) -> Result<(), LobbySetupError> {
        let mut inner = self.lock();
        let bound = self.display_dir.as_ref().and_then(|dir| {
            let name = (0..budget).map(|k| format!("wayland-{k}")).find(|n| !dir.join(n).exists())?;
            match std::os::unix::net::UnixListener::bind(dir.join(&name)) {
                Ok(socket) => Some((name, socket)),
                Err(e) => {
                    self.log.error(format!("[LOBBY] Binding display socket {name}: {e}"));
                    None
                }
            }
        });
        let Some((name, socket)) = bound else {
            let leaked = inner.displays.iter().filter(|d| d.lobby.is_none()).count();
            drop(inner);
            self.log.error(format!(
                "[LOBBY] Failed to create a display socket for lobby {lobby}: wayland-0 to wayland-{} all exist ({leaked} left by failed setups)",
                budget - 1
            ));
            return Err(LobbySetupError::TimedOut);
        };
        inner.display_setups += 1;
        let fails = inner.display_setups % 2 == 1;
        inner.displays.push(Display { name: name.clone(), lobby: (!fails).then(|| lobby.to_string()), _socket: socket });
        drop(inner);
        if fails {
            self.log.error(format!("[LOBBY] {} (lobby {lobby}, display {name})", LobbySetupError::RunnerFailed));
            return Err(LobbySetupError::RunnerFailed);
        }
        Ok(())
    }

    /// A stopped lobby's display socket goes with it (the healthy teardown path).
    fn release_display(&self, inner: &mut Inner, lobby_id: &str) {
        let (Some(dir), Some(i)) = (&self.display_dir, inner.displays.iter().position(|d| d.lobby.as_deref() == Some(lobby_id))) else { return };
        let display = inner.displays.remove(i);
        if let Err(e) = std::fs::remove_file(dir.join(&display.name)) {
            self.log.warn(format!("[LOBBY] Removing display socket {}: {e}", display.name));
        }
    }

    pub fn join_lobby(&self, lobby_id: &str, session_id: u64, pin: Option<&Value>) -> Result<(), LobbyError> {
        let mut inner = self.lock();
        let Some(li) = inner.lobbies.iter().position(|l| l.id == lobby_id) else { return Err(LobbyError::NotFound) };
        if !inner.sessions.iter().any(|s| s.id == session_id) {
            return Err(LobbyError::NotFound);
        }
        let lobby = &inner.lobbies[li];
        if let Some(expected) = &lobby.pin {
            if pin.and_then(parse_pin).as_ref() != Some(expected) {
                return Err(LobbyError::InvalidPin);
            }
        }
        if !lobby.multi_user && !lobby.connected_sessions.is_empty() {
            return Err(LobbyError::Full);
        }
        match inner.sessions.iter().find(|s| s.id == session_id).and_then(|s| s.lobby.as_ref()) {
            Some(l) if l.as_str() != lobby_id => return Err(LobbyError::OtherLobby),
            _ => {}
        }
        let lobby = &mut inner.lobbies[li];
        // F3: the join "succeeds" (picture switched, events fired) without being counted.
        if !self.faults.now().join_not_counted && !lobby.connected_sessions.contains(&session_id) {
            lobby.connected_sessions.push(session_id);
        }
        if let Some(s) = inner.sessions.iter_mut().find(|s| s.id == session_id) {
            s.lobby = Some(lobby_id.to_string());
            s.joined = Some(Instant::now());
        }
        drop(inner);
        self.log.info(format!("[LOBBY] Session {session_id} joining lobby {lobby_id}"));
        self.fire("JoinLobbyEvent", json!({"lobby_id": lobby_id, "moonlight_session_id": session_id.to_string()}));
        self.fire("SwitchStreamProducerEvents", json!({"session_id": session_id.to_string(), "interpipe_src_id": format!("{lobby_id}_video")}));
        self.log.debug(format!("Switching interpipesrc listen-to: interpipesrc_{session_id}_video -> {lobby_id}_video"));
        Ok(())
    }

    pub fn leave_lobby(&self, lobby_id: &str, session_id: u64) -> Result<(), LobbyError> {
        let mut inner = self.lock();
        let Some(lobby) = inner.lobbies.iter_mut().find(|l| l.id == lobby_id) else { return Err(LobbyError::NotFound) };
        lobby.connected_sessions.retain(|s| *s != session_id);
        self.release_keys(lobby, session_id);
        if let Some(s) = inner.sessions.iter_mut().find(|s| s.id == session_id) {
            if s.lobby.as_deref() == Some(lobby_id) {
                s.lobby = None;
            }
        }
        drop(inner);
        self.log.info(format!("[LOBBY] Session {session_id} leaving lobby {lobby_id}"));
        self.fire("LeaveLobbyEvent", json!({"lobby_id": lobby_id, "moonlight_session_id": session_id.to_string(), "skip_producer_switch": false}));
        Ok(())
    }

    pub fn stop_lobby(&self, lobby_id: &str, pin: Option<&Value>) -> Result<(), LobbyError> {
        let mut inner = self.lock();
        let Some(li) = inner.lobbies.iter().position(|l| l.id == lobby_id) else { return Err(LobbyError::InvalidLobby) };
        if let Some(expected) = &inner.lobbies[li].pin {
            if pin.and_then(parse_pin).as_ref() != Some(expected) {
                return Err(LobbyError::InvalidPin);
            }
        }
        let lobby = inner.lobbies.remove(li);
        self.release_display(&mut inner, lobby_id);
        for sid in &lobby.connected_sessions {
            if let Some(s) = inner.sessions.iter_mut().find(|s| s.id == *sid) {
                s.lobby = None;
            }
        }
        drop(inner);
        for sid in &lobby.connected_sessions {
            self.log.info(format!("[LOBBY] Session {sid} leaving lobby {lobby_id}"));
            self.fire("LeaveLobbyEvent", json!({"lobby_id": lobby_id, "moonlight_session_id": sid.to_string(), "skip_producer_switch": false}));
        }
        self.log.info(format!("[LOBBY] Stopping lobby {lobby_id}"));
        self.fire("StopLobbyEvent", json!({"lobby_id": lobby_id}));
        Ok(())
    }
}

fn frames_since(t: Instant) -> u32 {
    (t.elapsed().as_secs_f64() * PRODUCER_FPS) as u32
}

/// Raw subject and issuer of a DER certificate, what a partial-chain check effectively compares.
fn subject_and_issuer(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.subject().as_raw().to_vec(), cert.issuer().as_raw().to_vec()))
}

fn parse_pin(v: &Value) -> Option<Vec<u8>> {
    v.as_array()?.iter().map(|d| d.as_u64().map(|d| d as u8)).collect()
}

/// Wolf's session and client id: a 64-bit hash of the client certificate.
pub fn cert_hash(der: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(der);
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn random_hex(bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    let seed = uuid::Uuid::new_v4();
    let d = Sha256::digest(seed.as_bytes());
    d[..bytes].iter().map(|b| format!("{b:02X}")).collect()
}

/// A session as Wolf serialises `StreamSession` (ids as digit strings; secrets included, as Wolf
/// does — the driver must redact them).
pub fn session_json(s: &Session, with_idle: bool) -> Value {
    let mut v = json!({
        "app_id": s.app_id,
        "client_id": s.id.to_string(),
        "client_ip": s.client_ip,
        "client_unique_id": s.client_unique_id,
        "aes_key": s.aes_key,
        "aes_iv": s.aes_iv,
        "rtsp_fake_ip": "100.64.0.1",
        "video_width": s.width,
        "video_height": s.height,
        "video_refresh_rate": s.fps,
        "audio_channel_count": 2,
        "client_settings": {"run_uid": 1000, "run_gid": 1000, "controllers_override": [], "mouse_acceleration": 1.0, "v_scroll_acceleration": 1.0, "h_scroll_acceleration": 1.0},
    });
    if with_idle {
        v["idle_seconds"] = json!(s.started.elapsed().as_secs());
    }
    v
}

#[cfg(test)]
mod fault_tests {
    use super::*;
    use crate::faults::Fault;
    use crate::logfile::{Captured, Style};

    fn wolf(faults: &[&str]) -> (WolfState, Captured) {
        let log = Captured::default();
        let faults: Vec<Fault> = faults.iter().map(|f| f.parse().unwrap()).collect();
        (WolfState::with_faults(LogFile::new(Box::new(log.clone()), Style::Wolf), FaultSet::new(&faults)), log)
    }

    fn cert(fixed_subject: bool) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        if fixed_subject {
            for (ty, v) in crate::moonlight_web::certs::FIXED_SUBJECT {
                dn.push(ty, v);
            }
        } else {
            dn.push(rcgen::DnType::CommonName, format!("moonlight-{}", uuid::Uuid::new_v4()));
        }
        params.distinguished_name = dn;
        params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    fn launched(w: &WolfState, der: &[u8], uid: &str) -> Session {
        w.pair(der.to_vec());
        let client = w.identify(der).expect("paired");
        w.launch(&client, uid, "127.0.0.1", 320, 180, 30).expect("launched")
    }

    fn lobby(w: &WolfState) -> String {
        w.create_lobby(&json!({"name": "Agent 0001", "profile_id": "helix-sessions", "multi_user": true})).unwrap()
    }

    #[test]
    fn partial_chain_collapses_same_subject_certificates_onto_the_first_client() {
        let (healthy, _) = wolf(&[]);
        let (a, b) = (cert(true), cert(true));
        launched(&healthy, &a, "first");
        healthy.pair(b.clone());
        assert_eq!(healthy.identify(&b).map(|c| c.client_id), Some(cert_hash(&b)), "the fork matches exactly");

        let (w, _) = wolf(&["cert-subject-collision"]);
        let first = launched(&w, &a, "first");
        w.pair(b.clone());
        let seen_as = w.identify(&b).expect("verifies against the first");
        assert_eq!(seen_as.client_id, first.id, "second certificate taken for the first client");
        assert!(w.session(seen_as.client_id).is_some(), "so serverinfo reports busy");
        assert!(w.session_of_certificate(&b).is_none(), "but nothing is registered for it");
        assert_eq!(w.session_of_certificate(&a).map(|s| s.id), Some(first.id));
        // Distinct subjects still match only themselves.
        let c = cert(false);
        w.pair(c.clone());
        assert_eq!(w.identify(&c).map(|p| p.client_id), Some(cert_hash(&c)));
    }

    #[test]
    fn join_not_counted_succeeds_switches_the_picture_and_leaves_client_count_at_zero() {
        let (w, log) = wolf(&["join-not-counted"]);
        let s = launched(&w, &cert(false), "u");
        let lid = lobby(&w);
        w.join_lobby(&lid, s.id, None).expect("join answers success");
        assert!(log.text().contains(&format!("[LOBBY] Session {} joining lobby {lid}", s.id)), "{}", log.text());
        assert!(w.lobbies()[0].connected_sessions.is_empty(), "counted anyway");
        assert_eq!(w.picture_for(s.id).unwrap().tag, w.lobbies()[0].tag, "picture not switched");

        let (healthy, _) = wolf(&[]);
        let s = launched(&healthy, &cert(false), "u");
        let lid = lobby(&healthy);
        healthy.join_lobby(&lid, s.id, None).unwrap();
        assert_eq!(healthy.lobbies()[0].connected_sessions, vec![s.id]);
    }

    #[test]
    fn black_after_blackens_the_nth_and_later_sessions_and_logs_the_pool_error() {
        let (w, log) = wolf(&["black-after=2"]);
        let s1 = launched(&w, &cert(false), "1");
        assert!(!log.text().contains(BUFFER_POOL_ERROR));
        let s2 = launched(&w, &cert(false), "2");
        let s3 = launched(&w, &cert(false), "3");
        assert!(!w.picture_for(s1.id).unwrap().black);
        assert!(w.picture_for(s2.id).unwrap().black && w.picture_for(s3.id).unwrap().black);
        assert_eq!(log.text().matches(&format!("ERROR | {BUFFER_POOL_ERROR}")).count(), 2, "{}", log.text());
        // Still black once switched into a lobby: the session's encoder is what ran dry.
        let lid = lobby(&w);
        w.join_lobby(&lid, s2.id, None).unwrap();
        let p = w.picture_for(s2.id).unwrap();
        assert!(p.black && p.tag == w.lobbies()[0].tag);
    }

    #[tokio::test]
    async fn freeze_after_stops_the_lobby_counter_and_the_watchdog_reports_stuck_threads() {
        let (w, log) = wolf(&["freeze-after=1"]);
        let w = std::sync::Arc::new(w);
        let s = launched(&w, &cert(false), "u");
        let lid = lobby(&w);
        w.join_lobby(&lid, s.id, None).unwrap();
        assert_eq!(w.health().overall_status(), "healthy");
        tokio::spawn(w.clone().watchdog());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let a = w.picture_for(s.id).unwrap().counter;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(w.picture_for(s.id).unwrap().counter, a, "producer still running");
        assert_eq!(a, PRODUCER_FPS as u32);
        // Input reaches the desktop, but a stopped producer draws none of it.
        let before = w.picture_for(s.id).unwrap().echo;
        w.input(s.id, &Packet::Key { down: true, key: 0x87, modifiers: stamp::Modifiers::NONE }.encode());
        assert_eq!(w.picture_for(s.id).unwrap().echo, before);
        tokio::time::sleep(STUCK_AFTER + Duration::from_millis(800)).await;
        let h = w.health();
        assert_eq!((h.stuck, h.threads.len(), h.overall_status()), (1, 9, "degraded"), "{h:?}");
        assert!(h.threads.iter().any(|t| t.is_stuck && t.name.starts_with("producer-")));
        assert!(h.can_create_pipelines, "a frozen producer is not a lost type lock");
        assert!(log.text().contains("WARN  | System degraded: 1/9 threads stuck"), "{}", log.text());

        let (healthy, _) = wolf(&[]);
        lobby(&healthy);
        assert_eq!(healthy.health().stuck, 0);
    }
}
