//! Fault switches: each reproduces a documented failure (see the failure catalog) through the
//! same mechanism as the real stack, so the driver sees genuine symptoms.
//!
//! A switch is parsed from `NAME[=VALUE]` ([`Fault`]); the stand-in folds all switches into one
//! [`FaultSet`] and hands each service the set, so every service asks the same question
//! ("is my fault on?") in one place.
//!
//! A running stand-in can also be switched mid-way, the way a real deployment goes bad while
//! someone watches it (`helix-e2e watch`): Wolf and moonlight-web follow a control file in the
//! stack's directory ([`CONTROL_FILE`], one switch a line) and ask [`LiveFaults::now`] at each
//! decision, so a switch written there acts from the next session, join or teardown on. It is
//! the stand-in's own control, for tests and demonstrations; the driver never writes it.
//!
//! Why one file over 400 lines: it is the one fault catalog of the stand-in (the switches, their
//! parsing, the set and its live control); split, a switch could be parsed in one place and
//! refused live in another.

use crate::streamer::ipc::PortRange;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// F1: moonlight-web gives every client certificate one fixed subject, and Wolf identifies a
    /// client by the first paired certificate with the same subject/issuer (partial chain).
    CertSubjectCollision,
    /// F2: moonlight-web's `webrtc_port_range`; every streamer peer binds its own UDP sockets
    /// inside it, so a range too small for two peers makes the second one's ICE fail.
    WebrtcPortRange(PortRange),
    /// F3: `lobbies/join` succeeds and switches the picture but never adds the session to
    /// `connected_sessions`.
    JoinNotCounted,
    /// F4: Wolf drops a session that sent no input for this long after joining a lobby.
    ControlIdleTimeout(Duration),
    /// F5: moonlight-web keeps a create session whose socket closed; its streamer keeps running.
    StuckSession,
    /// F6: the streamer outlives its socket (`Unlisted`: moonlight-web forgets the session but the
    /// process keeps streaming), or a dead streamer stays listed (`Listed`).
    ZombieStreamer(Zombie),
    /// F7: Wolf keeps sessions moonlight-web has let go of (`/cancel` and the control loss are
    /// ignored).
    OrphanWolfSession,
    /// F8: the N-th and later Wolf sessions (1-based, in launch order) encode black frames.
    BlackAfter(u32),
    /// F9: every lobby's producer stops this long after the lobby was created.
    FreezeAfter(Duration),
    /// F10: after a Wolf restart the API keeps believing in the lobbies Wolf lost and never
    /// recreates them (the ghosts of the Nov 2025 restarts).
    NoLobbyRecreate,
    /// F11: the streamer's SCTP layer meets mangled chunks (`chunk too short`).
    SctpErrors,
    /// F12: Wolf's Moonlight endpoint accepts connections but answers only after this long.
    SlowTls(Duration),
    /// F13: the viewer reuses one moonlight-web `session_id` per agent session.
    SessionIdReuse,
    /// F14: moonlight-web launches a client's new streamer while that client's previous one is
    /// still tearing down; the new one resumes the Wolf session the old one then cancels.
    ReconnectTeardownRace,
    /// F15: a session's teardown thread dies holding the teardown lock, and the `/cancel` that
    /// waits for that teardown blocks Wolf's Moonlight handler (and with it the port) for good.
    HttpsDeadlock,
    /// F16: this long after Wolf started, a thread dies holding the process-wide (GLib type)
    /// lock every pipeline creation takes.
    PipelineLock(Duration),
    /// F17: the audio server drops Wolf's connection this long after Wolf connected to it.
    AudioDisconnect(Duration),
    /// F18: moonlight-web ends a session only on a WebSocket close frame; a socket that ends
    /// without one (the tab's renderer crashed, the network dropped) is not noticed, so its
    /// session keeps its socket entry and its streamer keeps the Wolf session.
    NoSilentCloseDetection,
    /// F19: Wolf has this many display sockets (libwayland's `wayland-0` … names); every other
    /// lobby setup fails and its failure path leaves its display socket bound, so once they are
    /// all taken every lobby setup times out.
    LobbySocketLeak(u32),
    /// F20: each Wolf session's pipeline opens this many handles on the render node when it
    /// launches, and its teardown never closes them: a fixed leak per connect/disconnect cycle.
    LeakPerCycle(u32),
    /// F21: a session that leaves a lobby (Reconnect, a closed tab) does not release the keys it
    /// still holds on the lobby's shared desktop, so a modifier whose release was lost on the way
    /// (the viewer's input channels are closed while it reconnects) stays latched.
    LostKeyRelease,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zombie {
    /// The streamer ignores `Stop` and its peer's end; moonlight-web no longer lists it.
    Unlisted,
    /// The streamer exits but moonlight-web keeps its entry (`streamer_alive:false`).
    Listed,
}

/// Names and value syntax of every switch, for help and error messages.
pub const KNOWN: &[(&str, &str)] = &[
    ("cert-subject-collision", ""),
    ("webrtc-port-range", "MIN-MAX"),
    ("join-not-counted", ""),
    ("control-idle-timeout", "SECS"),
    ("stuck-session", ""),
    ("zombie-streamer", "[listed]"),
    ("orphan-wolf-session", ""),
    ("black-after", "N"),
    ("freeze-after", "SECS"),
    ("no-lobby-recreate", ""),
    ("sctp-errors", ""),
    ("slow-tls", "MS"),
    ("session-id-reuse", ""),
    ("reconnect-teardown-race", ""),
    ("https-deadlock", ""),
    ("pipeline-lock", "SECS"),
    ("audio-disconnect", "SECS"),
    ("no-silent-close-detection", ""),
    ("lobby-socket-leak", "N"),
    ("leak-per-cycle", "N"),
    ("lost-key-release", ""),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("unknown fault {0:?}; known: {list}", list = known_list())]
    Unknown(String),
    #[error("fault {name} needs a value: {name}={syntax}")]
    MissingValue { name: &'static str, syntax: &'static str },
    #[error("fault {name}: {detail}")]
    BadValue { name: &'static str, detail: String },
    #[error("fault {name} takes no value (got {value:?})")]
    UnexpectedValue { name: &'static str, value: String },
}

fn known_list() -> String {
    KNOWN.iter().map(|(n, v)| if v.is_empty() { n.to_string() } else { format!("{n}={v}") }).collect::<Vec<_>>().join(", ")
}

/// Parse a positive number for switch `name` (`what` names the unit in the message).
fn positive<T: FromStr + PartialOrd + Default>(name: &'static str, value: Option<&str>, syntax: &'static str) -> Result<T, FaultError> {
    let v = value.ok_or(FaultError::MissingValue { name, syntax })?;
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(FaultError::BadValue { name, detail: format!("{v:?} is not a positive {syntax}") }),
    }
}

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let Some(&(name, _)) = KNOWN.iter().find(|(n, _)| *n == name) else { return Err(FaultError::Unknown(name.to_string())) };
        let flag = |f: Fault| match value {
            None => Ok(f),
            Some(v) => Err(FaultError::UnexpectedValue { name, value: v.to_string() }),
        };
        match name {
            "cert-subject-collision" => flag(Fault::CertSubjectCollision),
            "join-not-counted" => flag(Fault::JoinNotCounted),
            "stuck-session" => flag(Fault::StuckSession),
            "orphan-wolf-session" => flag(Fault::OrphanWolfSession),
            "no-lobby-recreate" => flag(Fault::NoLobbyRecreate),
            "sctp-errors" => flag(Fault::SctpErrors),
            "session-id-reuse" => flag(Fault::SessionIdReuse),
            "reconnect-teardown-race" => flag(Fault::ReconnectTeardownRace),
            "https-deadlock" => flag(Fault::HttpsDeadlock),
            "pipeline-lock" => Ok(Fault::PipelineLock(Duration::from_secs(positive(name, value, "SECS")?))),
            "audio-disconnect" => Ok(Fault::AudioDisconnect(Duration::from_secs(positive(name, value, "SECS")?))),
            "no-silent-close-detection" => flag(Fault::NoSilentCloseDetection),
            "lobby-socket-leak" => Ok(Fault::LobbySocketLeak(positive(name, value, "N")?)),
            "lost-key-release" => flag(Fault::LostKeyRelease),
            "zombie-streamer" => match value {
                None => Ok(Fault::ZombieStreamer(Zombie::Unlisted)),
                Some("listed") => Ok(Fault::ZombieStreamer(Zombie::Listed)),
                Some(v) => Err(FaultError::BadValue { name, detail: format!("{v:?}: the only variant is zombie-streamer=listed") }),
            },
            "control-idle-timeout" => Ok(Fault::ControlIdleTimeout(Duration::from_secs(positive(name, value, "SECS")?))),
            "black-after" => Ok(Fault::BlackAfter(positive(name, value, "N")?)),
            "freeze-after" => Ok(Fault::FreezeAfter(Duration::from_secs(positive(name, value, "SECS")?))),
            "slow-tls" => Ok(Fault::SlowTls(Duration::from_millis(positive(name, value, "MS")?))),
            "leak-per-cycle" => Ok(Fault::LeakPerCycle(positive(name, value, "N")?)),
            _ => {
                let v = value.ok_or(FaultError::MissingValue { name, syntax: "MIN-MAX" })?;
                let bad = |detail: &str| FaultError::BadValue { name, detail: format!("{detail} in {v:?} (expected MIN-MAX, e.g. 40000-40001)") };
                let (a, b) = v.split_once('-').ok_or_else(|| bad("no '-'"))?;
                let min: u16 = a.parse().map_err(|_| bad("MIN is not a port"))?;
                let max: u16 = b.parse().map_err(|_| bad("MAX is not a port"))?;
                if min == 0 || min > max {
                    return Err(bad("MIN must be 1..=MAX"));
                }
                Ok(Fault::WebrtcPortRange(PortRange { min, max }))
            }
        }
    }
}

/// In `run.json`, a fault is written as the user types it (`webrtc-port-range=40000-40001`).
impl serde::Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::CertSubjectCollision => write!(f, "cert-subject-collision"),
            Fault::WebrtcPortRange(r) => write!(f, "webrtc-port-range={}-{}", r.min, r.max),
            Fault::JoinNotCounted => write!(f, "join-not-counted"),
            Fault::ControlIdleTimeout(d) => write!(f, "control-idle-timeout={}", d.as_secs()),
            Fault::StuckSession => write!(f, "stuck-session"),
            Fault::ZombieStreamer(Zombie::Unlisted) => write!(f, "zombie-streamer"),
            Fault::ZombieStreamer(Zombie::Listed) => write!(f, "zombie-streamer=listed"),
            Fault::OrphanWolfSession => write!(f, "orphan-wolf-session"),
            Fault::BlackAfter(n) => write!(f, "black-after={n}"),
            Fault::FreezeAfter(d) => write!(f, "freeze-after={}", d.as_secs()),
            Fault::NoLobbyRecreate => write!(f, "no-lobby-recreate"),
            Fault::SctpErrors => write!(f, "sctp-errors"),
            Fault::SlowTls(d) => write!(f, "slow-tls={}", d.as_millis()),
            Fault::SessionIdReuse => write!(f, "session-id-reuse"),
            Fault::ReconnectTeardownRace => write!(f, "reconnect-teardown-race"),
            Fault::HttpsDeadlock => write!(f, "https-deadlock"),
            Fault::PipelineLock(d) => write!(f, "pipeline-lock={}", d.as_secs()),
            Fault::AudioDisconnect(d) => write!(f, "audio-disconnect={}", d.as_secs()),
            Fault::NoSilentCloseDetection => write!(f, "no-silent-close-detection"),
            Fault::LobbySocketLeak(n) => write!(f, "lobby-socket-leak={n}"),
            Fault::LeakPerCycle(n) => write!(f, "leak-per-cycle={n}"),
            Fault::LostKeyRelease => write!(f, "lost-key-release"),
        }
    }
}

/// Every switch folded into the questions the services ask. The default is the healthy stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSet {
    pub cert_subject_collision: bool,
    pub webrtc_port_range: Option<PortRange>,
    pub join_not_counted: bool,
    pub control_idle_timeout: Option<Duration>,
    pub stuck_session: bool,
    pub zombie_streamer: Option<Zombie>,
    pub orphan_wolf_session: bool,
    pub black_after: Option<u32>,
    pub freeze_after: Option<Duration>,
    pub no_lobby_recreate: bool,
    pub sctp_errors: bool,
    pub slow_tls: Option<Duration>,
    pub session_id_reuse: bool,
    pub reconnect_teardown_race: bool,
    pub https_deadlock: bool,
    pub pipeline_lock: Option<Duration>,
    pub audio_disconnect: Option<Duration>,
    pub no_silent_close_detection: bool,
    pub lobby_socket_leak: Option<u32>,
    pub leak_per_cycle: Option<u32>,
    pub lost_key_release: bool,
}

impl FaultSet {
    /// Later switches of the same kind win.
    pub fn new(faults: &[Fault]) -> Self {
        FaultSet::default().with(faults)
    }

    /// These switches on top of this set (later ones win).
    pub fn with(self, faults: &[Fault]) -> Self {
        let mut s = self;
        for f in faults {
            match *f {
                Fault::CertSubjectCollision => s.cert_subject_collision = true,
                Fault::WebrtcPortRange(r) => s.webrtc_port_range = Some(r),
                Fault::JoinNotCounted => s.join_not_counted = true,
                Fault::ControlIdleTimeout(d) => s.control_idle_timeout = Some(d),
                Fault::StuckSession => s.stuck_session = true,
                Fault::ZombieStreamer(z) => s.zombie_streamer = Some(z),
                Fault::OrphanWolfSession => s.orphan_wolf_session = true,
                Fault::BlackAfter(n) => s.black_after = Some(n),
                Fault::FreezeAfter(d) => s.freeze_after = Some(d),
                Fault::NoLobbyRecreate => s.no_lobby_recreate = true,
                Fault::SctpErrors => s.sctp_errors = true,
                Fault::SlowTls(d) => s.slow_tls = Some(d),
                Fault::SessionIdReuse => s.session_id_reuse = true,
                Fault::ReconnectTeardownRace => s.reconnect_teardown_race = true,
                Fault::HttpsDeadlock => s.https_deadlock = true,
                Fault::PipelineLock(d) => s.pipeline_lock = Some(d),
                Fault::AudioDisconnect(d) => s.audio_disconnect = Some(d),
                Fault::NoSilentCloseDetection => s.no_silent_close_detection = true,
                Fault::LobbySocketLeak(n) => s.lobby_socket_leak = Some(n),
                Fault::LeakPerCycle(n) => s.leak_per_cycle = Some(n),
                Fault::LostKeyRelease => s.lost_key_release = true,
            }
        }
        s
    }
}

/// The file in the stack's directory (`--dir`) whose switches are on in addition to those the
/// services started with: one `NAME[=VALUE]` a line, as `--fault` takes them; `#` starts a comment.
/// Written whole (a temp file renamed over it); removing it turns them off again.
pub const CONTROL_FILE: &str = "live-faults";

/// How often the services look at [`CONTROL_FILE`].
pub const CONTROL_POLL: Duration = Duration::from_millis(200);

impl Fault {
    /// Whether a running service can act on this switch. Some are read once, at start: the
    /// moonlight-web certificate cache (F1), its port range (F2), the timers of F16 and F17,
    /// and the API's switches (F10, F13; the API does not follow the control file).
    pub fn acts_live(&self) -> bool {
        !matches!(
            self,
            Fault::CertSubjectCollision
                | Fault::WebrtcPortRange(_)
                | Fault::PipelineLock(_)
                | Fault::AudioDisconnect(_)
                | Fault::NoLobbyRecreate
                | Fault::SessionIdReuse
        )
    }
}

/// The switches a running service acts on: those it started with, plus what [`CONTROL_FILE`]
/// says now. Cheap to ask ([`FaultSet`] is a few words, copied out under a read lock).
#[derive(Debug, Clone)]
pub struct LiveFaults {
    start: FaultSet,
    now: std::sync::Arc<std::sync::RwLock<FaultSet>>,
}

impl LiveFaults {
    /// The switches of the command line, until a control file says more.
    pub fn new(start: FaultSet) -> Self {
        LiveFaults { start, now: std::sync::Arc::new(std::sync::RwLock::new(start)) }
    }

    pub fn now(&self) -> FaultSet {
        *self.now.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Parse the control file's text: the switches it adds, and a line per one it refuses
    /// (unknown, malformed, or read only at start).
    pub fn parse_control(text: &str) -> (Vec<Fault>, Vec<String>) {
        let mut on = Vec::new();
        let mut refused = Vec::new();
        for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
            match line.parse::<Fault>() {
                Ok(f) if f.acts_live() => on.push(f),
                Ok(f) => refused.push(format!("{f}: read only at start; ignored")),
                Err(e) => refused.push(format!("{e}; ignored")),
            }
        }
        (on, refused)
    }

    /// Follow `path` (the stack's [`CONTROL_FILE`]) for as long as the service runs: each change
    /// replaces the live switches with the start ones plus the file's, and is said through `say`
    /// (the service's own log).
    pub fn follow(&self, path: std::path::PathBuf, say: impl Fn(String) + Send + 'static) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            loop {
                // A missing file is no switch: the start set.
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if last.as_deref() != Some(text.as_str()) {
                    let (on, refused) = Self::parse_control(&text);
                    for r in refused {
                        say(format!("{CONTROL_FILE}: {r}"));
                    }
                    *me.now.write().unwrap_or_else(|e| e.into_inner()) = me.start.with(&on);
                    if last.is_some() || !on.is_empty() {
                        let names: Vec<String> = on.iter().map(ToString::to_string).collect();
                        say(format!(
                            "{CONTROL_FILE}: switched on besides the start ones: {}",
                            if names.is_empty() { "none".to_string() } else { names.join(" ") }
                        ));
                    }
                    last = Some(text);
                }
                tokio::time::sleep(CONTROL_POLL).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_file_adds_live_switches_and_refuses_the_rest_by_name() {
        let (on, refused) = LiveFaults::parse_control("# mid-way\nstuck-session\n\norphan-wolf-session  # F7\npipeline-lock=3\nnope\n");
        assert_eq!(on, vec![Fault::StuckSession, Fault::OrphanWolfSession]);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].contains("pipeline-lock=3: read only at start"), "{refused:?}");
        assert!(refused[1].contains("unknown fault \"nope\""), "{refused:?}");
        let live = LiveFaults::new(FaultSet::new(&[Fault::SctpErrors]));
        assert!(live.now().sctp_errors && !live.now().stuck_session);
    }

    #[tokio::test]
    async fn a_follower_turns_switches_on_and_off_as_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("helix-live-faults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONTROL_FILE);
        let live = LiveFaults::new(FaultSet::new(&[Fault::SctpErrors]));
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = said.clone();
        let task = live.follow(path.clone(), move |l| s.lock().unwrap().push(l));
        std::fs::write(&path, "stuck-session\n").unwrap();
        let until = |want: bool| {
            let live = live.clone();
            async move {
                for _ in 0..50 {
                    if live.now().stuck_session == want {
                        return;
                    }
                    tokio::time::sleep(CONTROL_POLL / 2).await;
                }
                panic!("stuck_session never became {want}");
            }
        };
        until(true).await;
        assert!(live.now().sctp_errors, "the start switches stay on");
        std::fs::remove_file(&path).unwrap();
        until(false).await;
        assert!(live.now().sctp_errors);
        task.abort();
        let said = said.lock().unwrap().clone();
        assert_eq!(said, ["live-faults: switched on besides the start ones: stuck-session", "live-faults: switched on besides the start ones: none"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_and_prints_switches_and_names_what_is_wrong() {
        let f: Fault = "webrtc-port-range=40000-40001".parse().unwrap();
        assert_eq!(f, Fault::WebrtcPortRange(PortRange { min: 40000, max: 40001 }));
        assert_eq!(f.to_string(), "webrtc-port-range=40000-40001");
        assert!("webrtc-port-range".parse::<Fault>().unwrap_err().to_string().contains("needs a value"));
        assert!("webrtc-port-range=9-1".parse::<Fault>().unwrap_err().to_string().contains("MIN must be"));
        let unknown = "nope".parse::<Fault>().unwrap_err().to_string();
        assert!(unknown.contains("webrtc-port-range=MIN-MAX") && unknown.contains("cert-subject-collision,"), "{unknown}");
    }

    #[test]
    fn every_known_switch_round_trips_through_its_text() {
        for text in [
            "cert-subject-collision",
            "webrtc-port-range=40000-40000",
            "join-not-counted",
            "control-idle-timeout=4",
            "stuck-session",
            "zombie-streamer",
            "zombie-streamer=listed",
            "orphan-wolf-session",
            "black-after=2",
            "freeze-after=3",
            "no-lobby-recreate",
            "sctp-errors",
            "slow-tls=1500",
            "session-id-reuse",
            "reconnect-teardown-race",
            "https-deadlock",
            "pipeline-lock=8",
            "audio-disconnect=3",
            "no-silent-close-detection",
            "lobby-socket-leak=4",
            "leak-per-cycle=14",
            "lost-key-release",
        ] {
            let f: Fault = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.to_string(), text);
        }
        assert_eq!(KNOWN.len(), 21);
        assert!(matches!("black-after=0".parse::<Fault>(), Err(FaultError::BadValue { .. })));
        assert!(matches!("slow-tls=soon".parse::<Fault>(), Err(FaultError::BadValue { .. })));
        assert!(matches!("freeze-after".parse::<Fault>(), Err(FaultError::MissingValue { .. })));
        assert!(matches!("stuck-session=1".parse::<Fault>(), Err(FaultError::UnexpectedValue { .. })));
        assert!(matches!("zombie-streamer=dead".parse::<Fault>(), Err(FaultError::BadValue { .. })));
    }

    #[test]
    fn the_set_answers_each_service_and_later_switches_win() {
        let set = FaultSet::new(&["black-after=3".parse().unwrap(), "black-after=2".parse().unwrap(), "sctp-errors".parse().unwrap()]);
        assert_eq!(set.black_after, Some(2));
        assert!(set.sctp_errors && !set.stuck_session);
        assert_eq!(FaultSet::new(&[]), FaultSet::default());
    }
}
