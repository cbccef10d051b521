//! One ordered timeline of everything the driver observes.
//!
//! Browser probes, server polls, Wolf events, service logs and the scenario's own operations all
//! become [`Observation`]s. Detectors read the timeline; reports render it. Keeping one vocabulary
//! here is what lets a verdict point at "the state at that moment".

use crate::frames::stamp::Stamp;
use crate::redact::Redactor;
use crate::sut::monitor::HelixLobby;
use crate::sut::moonlight_web::MlwSession;
use crate::sut::wolf::{WolfLobby, WolfMemory, WolfSession};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as a float so browser timestamps (`Date.now()` +
/// `performance.now()` fractions) keep their precision.
pub type EpochMs = f64;

pub fn now_ms() -> EpochMs {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// Index of a browser tab in the run (0-based, in the order the scenario opened them).
pub type TabId = usize;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observation {
    pub at: EpochMs,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Event {
    /// Something the in-page probe of a tab pushed.
    Tab { tab: TabId, probe: ProbeEvent },
    /// The browser itself (crash, console error outside the probe).
    Browser { tab: Option<TabId>, what: String },
    /// A scenario operation started or ended.
    Op { name: String, phase: OpPhase },
    /// A Wolf server-sent event (already redacted).
    WolfEvent { name: String, data: serde_json::Value },
    /// A parsed service log record.
    Log { service: String, level: String, message: String },
    /// A poll of server truth, parsed into its type where it was taken (see [`Reply`]). Shared:
    /// a reply equal to the service's previous one is the same allocation (a steady stack
    /// answers the same every 500 ms, and a long run would otherwise hold each copy).
    Poll {
        service: String,
        #[serde(flatten)]
        reply: Arc<Reply>,
    },
    /// A part of the system under test stopped without the driver stopping it, as seen by what
    /// watches it (the browser layer, the stand-in's process supervisor).
    Died { what: Casualty, detail: String },
    /// A detector named a documented failure.
    Detection { fault: String, name: String, tab: Option<TabId>, message: String, first_symptom: EpochMs },
}

/// A service's answer to a poll, typed once at the edge: every reader gets the type, and an
/// answer that does not have the interface's shape is [`Reply::Malformed`] — a fact the checks
/// report — never an empty list. Typed replies hold no secrets (the types leave Wolf's
/// `aes_key`/`aes_iv` out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", content = "data", rename_all = "kebab-case")]
pub enum Reply {
    WolfSessions(Vec<WolfSession>),
    WolfLobbies(Vec<WolfLobby>),
    WolfMemory(WolfMemory),
    MlwSessions(Vec<MlwSession>),
    /// Helix's (agent session, lobby) beliefs for the sessions the run watches.
    HelixLobbies(Vec<HelixLobby>),
    /// The service answered nothing at all (connection refused, socket gone): evidence of a death.
    Unreachable(String),
    /// The service answered, but not in the interface's shape.
    Malformed(String),
    /// Any other failed call (an HTTP error status, a timeout).
    Failed(String),
    /// Wolf's event stream ended (it is opened again).
    EventsEnded,
    /// A log follower's source ended: `{"service": …, "ended": why}`.
    LogSourceEnded(serde_json::Value),
}

impl Reply {
    /// A reply as JSON, typed by the poll it answers (`service`, `what`) — for readers of
    /// recorded JSON (and tests); the monitor builds replies from its typed clients directly.
    pub fn parse(service: &str, what: &str, data: serde_json::Value) -> Reply {
        fn typed<T: serde::de::DeserializeOwned>(data: serde_json::Value, make: fn(T) -> Reply) -> Reply {
            serde_json::from_value(data).map(make).unwrap_or_else(|e| Reply::Malformed(e.to_string()))
        }
        match (service, what) {
            ("wolf", "sessions") => typed(data, Reply::WolfSessions),
            ("wolf", "lobbies") => typed(data, Reply::WolfLobbies),
            ("wolf", "memory") => typed(data, Reply::WolfMemory),
            ("moonlight-web", "sessions") => typed(data, Reply::MlwSessions),
            ("api", "session-lobbies") => typed(data, Reply::HelixLobbies),
            (_, "unreachable") => Reply::Unreachable(data.as_str().unwrap_or_default().to_string()),
            (s, w) => Reply::Malformed(format!("no poll {w} of {s}")),
        }
    }

    /// Whether this says the service is there (`Some(true)`: it answered, if only with a
    /// malformed reply), is not (`Some(false)`: nothing answered), or neither (an error status
    /// or a timeout says little; the monitor's own notes say nothing).
    pub fn answered(&self) -> Option<bool> {
        match self {
            Reply::Unreachable(_) => Some(false),
            Reply::Failed(_) | Reply::EventsEnded | Reply::LogSourceEnded(_) => None,
            _ => Some(true),
        }
    }
}

/// What died (see [`Event::Died`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Casualty {
    /// The Chromium browser process (every tab with it).
    Browser,
    /// One tab's renderer crashed; `None`: the webrtc-internals page.
    TabCrashed { tab: Option<TabId> },
    /// One tab stopped answering DevTools.
    TabUnresponsive { tab: TabId },
    /// A service process of the stack (`wolf`, `moonlight-web`, `api`).
    Service { service: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum OpPhase {
    Start,
    Ok,
    Failed { error: String },
}

/// What the in-page probe reports. Ids (`ws`, `pc`, `video`) are small integers the probe assigns
/// per page, in creation order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeEvent {
    /// The page (re)loaded; every id after it is new.
    PageLoad {
        url: String,
    },
    WsOpen {
        ws: u32,
        url: String,
    },
    /// A WebSocket text message, parsed as JSON when it is JSON.
    WsMessage {
        ws: u32,
        dir: Direction,
        msg: serde_json::Value,
    },
    WsClose {
        ws: u32,
        code: u16,
        reason: String,
    },
    PcCreated {
        pc: u32,
        config: serde_json::Value,
    },
    /// The probe saw this WebSocket carry this peer connection's signalling.
    Link {
        ws: u32,
        pc: u32,
    },
    /// This `<video>` shows a stream of this peer connection.
    VideoLink {
        pc: u32,
        video: u32,
    },
    PcState {
        pc: u32,
        which: PcStateKind,
        state: String,
    },
    Candidate {
        pc: u32,
        local: bool,
        candidate: String,
    },
    Stats {
        pc: u32,
        stats: StatsSample,
    },
    Frame {
        video: u32,
        sample: FrameSample,
    },
    /// Text the viewer shows to the user (status line, error alert); `role` is the element's
    /// ARIA role (`alert` for errors), empty when it has none.
    UiText {
        text: String,
        #[serde(default)]
        role: String,
    },
    Console {
        level: String,
        text: String,
    },
    Exception {
        text: String,
    },
    /// A finished call of the page to Helix's API (`/api/v1/...`), seen by the browser's network
    /// stack: what the real viewer exposes when it logs only an error object. `body` is kept for
    /// the auto-join and for errors (never for `/auth/` routes); `error` when no answer came.
    Http {
        method: String,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Sent,
    Received,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcStateKind {
    Signaling,
    IceConnection,
    IceGathering,
    Connection,
}

/// The inbound video RTP stats and the selected candidate pair, from `getStats()`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsSample {
    pub frames_decoded: Option<u64>,
    pub frames_received: Option<u64>,
    pub frame_width: Option<u32>,
    pub frame_height: Option<u32>,
    pub freeze_count: Option<u64>,
    pub total_freezes_duration: Option<f64>,
    pub packets_lost: Option<i64>,
    pub packets_received: Option<u64>,
    pub bytes_received: Option<u64>,
    /// e.g. "host 198.51.100.2:40001 <-> prflx 198.51.100.3:51234 (udp)".
    pub candidate_pair: Option<String>,
}

/// One sample of a `<video>` element, downscaled in the page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FrameSample {
    pub video_width: u32,
    pub video_height: u32,
    /// Presented frames so far (`requestVideoFrameCallback`).
    pub presented: u64,
    pub mean_luma: f64,
    /// A hash of the downscaled luma, to tell identical frames apart from moving ones.
    pub hash: String,
    /// Base64 of `LUMA_W x LUMA_H` luma bytes, row-major. Read once, when the sample enters the
    /// timeline (into `stamp`), then dropped: at 5 samples a second per video it would be most
    /// of a long run's memory, and ~400 MB of `timeline.jsonl` per hour of 8 tabs. What it
    /// showed stays (stamp, mean luma, hash).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub luma: String,
    /// The reference stack's picture stamp, decoded from `luma` on the way in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<Stamp>,
}

impl FrameSample {
    /// The stamp the luma grid carries, if it is one.
    pub fn decode_stamp(&self) -> Option<Stamp> {
        use base64::Engine;
        if self.luma.is_empty() {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.luma).ok()?;
        (bytes.len() == LUMA_W * LUMA_H).then(|| crate::frames::stamp::decode(&bytes, LUMA_W, LUMA_H)).flatten()
    }
}

/// Size of the luma grid the probe samples; the stamp is laid out so it decodes at this size.
pub const LUMA_W: usize = 64;
pub const LUMA_H: usize = 36;

/// A shared, append-only timeline. Cheap to clone; every producer holds one.
///
/// Secrets are masked on the way in, so nothing rendered from the timeline can leak them.
/// Readers fold it incrementally: [`Timeline::take_new`] hands out what was appended after a
/// cursor, and [`Timeline::changed`] wakes them when something was, so no reader re-reads the
/// run (cost grows with events, not with the age of the run). With [`Timeline::stream_to`]
/// every observation is also written to a file as it arrives.
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Mutex<Log>>,
    redactor: Arc<Mutex<Redactor>>,
    sink: Arc<Mutex<Option<Sink>>>,
    appended: Arc<tokio::sync::watch::Sender<usize>>,
}

/// The observations in arrival order, in fixed-size chunks: growing never copies what is there
/// (one vector doubling would, for a moment, hold a long run twice).
#[derive(Default)]
struct Log {
    chunks: Vec<Vec<Observation>>,
    len: usize,
}

const CHUNK: usize = 4096;

impl Log {
    fn push(&mut self, o: Observation) {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(o);
        }
        self.len += 1;
    }

    fn from(&self, cursor: usize) -> impl Iterator<Item = &Observation> {
        self.chunks.iter().skip(cursor / CHUNK).flatten().skip(cursor % CHUNK)
    }
}

/// Where [`Timeline::stream_to`] writes: a temporary file renamed to its name when finished,
/// so the artifact directory never holds a half-written `timeline.jsonl` under its real name.
struct Sink {
    writer: std::io::BufWriter<std::fs::File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline { inner: Arc::default(), redactor: Arc::default(), sink: Arc::default(), appended: Arc::new(tokio::sync::watch::channel(0).0) }
    }
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, event: Event) {
        self.push_at(now_ms(), event);
    }

    /// Mask this secret in everything pushed from now on.
    pub fn add_secret(&self, secret: impl Into<String>) {
        self.redactor.lock().unwrap_or_else(|e| e.into_inner()).add(secret);
    }

    pub fn redactor(&self) -> Redactor {
        self.redactor.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Write every observation from now on to `path` (JSON lines, in the order they arrive;
    /// `at` orders them in time). Secrets are masked as in memory.
    pub fn stream_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let writer = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sink { writer, tmp, path: path.to_path_buf() });
        Ok(())
    }

    /// Flush the stream of [`Timeline::stream_to`] and give the file its name.
    pub fn finish_stream(&self) -> std::io::Result<()> {
        match self.sink.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(mut s) => {
                std::io::Write::flush(&mut s.writer)?;
                std::fs::rename(&s.tmp, &s.path)
            }
            None => Ok(()),
        }
    }

    pub fn push_at(&self, at: EpochMs, event: Event) {
        let mut event = redact_event(&self.redactor(), event);
        if let Event::Tab { probe: ProbeEvent::Frame { sample, .. }, .. } = &mut event {
            sample.stamp = sample.stamp.or_else(|| sample.decode_stamp());
            sample.luma = String::new();
        }
        let obs = Observation { at, event };
        if let Some(Sink { writer: w, .. }) = self.sink.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            if let Ok(line) = serde_json::to_string(&obs) {
                let _ = std::io::Write::write_all(w, line.as_bytes()).and_then(|_| std::io::Write::write_all(w, b"\n"));
            }
        }
        let n = {
            let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            log.push(obs);
            log.len
        };
        self.appended.send_replace(n);
    }

    /// A copy of everything observed so far, ordered by time. For the end of a run and for
    /// tests; anything that runs while the run does reads with [`Timeline::take_new`].
    pub fn snapshot(&self) -> Vec<Observation> {
        let mut v: Vec<Observation> = self.inner.lock().unwrap_or_else(|e| e.into_inner()).from(0).cloned().collect();
        v.sort_by(|a, b| a.at.total_cmp(&b.at));
        v
    }

    /// Hand `take` each observation appended since `cursor` (in the order it arrived), without
    /// copying it, and move the cursor past them: how every reader folds the timeline. `take`
    /// runs under the timeline's lock, so it must not push to it.
    pub fn take_new(&self, cursor: &mut usize, mut take: impl FnMut(&Observation)) {
        let log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        log.from(*cursor).for_each(&mut take);
        *cursor = log.len;
    }

    /// Resolves whenever something is appended (the count of observations rides along).
    pub fn changed(&self) -> tokio::sync::watch::Receiver<usize> {
        self.appended.subscribe()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn redact_event(r: &Redactor, event: Event) -> Event {
    match event {
        Event::Tab { tab, probe } => Event::Tab {
            tab,
            probe: match probe {
                ProbeEvent::WsMessage { ws, dir, msg } => ProbeEvent::WsMessage { ws, dir, msg: r.json(&msg) },
                ProbeEvent::WsOpen { ws, url } => ProbeEvent::WsOpen { ws, url: r.text(&url) },
                ProbeEvent::PcCreated { pc, config } => ProbeEvent::PcCreated { pc, config: r.json(&config) },
                ProbeEvent::UiText { text, role } => ProbeEvent::UiText { text: r.text(&text), role },
                ProbeEvent::Console { level, text } => ProbeEvent::Console { level, text: r.text(&text) },
                ProbeEvent::Exception { text } => ProbeEvent::Exception { text: r.text(&text) },
                ProbeEvent::Http { method, path, status, body, error } => {
                    ProbeEvent::Http { method, path: r.text(&path), status, body: body.map(|b| r.text(&b)), error }
                }
                other => other,
            },
        },
        Event::Browser { tab, what } => Event::Browser { tab, what: r.text(&what) },
        Event::Op { name, phase: OpPhase::Failed { error } } => Event::Op { name, phase: OpPhase::Failed { error: r.text(&error) } },
        Event::WolfEvent { name, data } => Event::WolfEvent { name, data: r.json(&data) },
        Event::Log { service, level, message } => Event::Log { service, level, message: r.text(&message) },
        Event::Poll { service, reply } => Event::Poll {
            service,
            reply: match &*reply {
                Reply::Unreachable(e) => Arc::new(Reply::Unreachable(r.text(e))),
                Reply::Malformed(e) => Arc::new(Reply::Malformed(r.text(e))),
                Reply::Failed(e) => Arc::new(Reply::Failed(r.text(e))),
                Reply::LogSourceEnded(v) => Arc::new(Reply::LogSourceEnded(r.json(v))),
                _ => reply,
            },
        },
        Event::Detection { fault, name, tab, message, first_symptom } => Event::Detection { fault, name, tab, message: r.text(&message), first_symptom },
        Event::Died { what, detail } => Event::Died { what, detail: r.text(&detail) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_poll_reads_back_as_written_and_a_drifted_one_is_malformed() {
        let sessions = serde_json::json!([{"app_id": "1", "client_id": "42", "client_ip": "127.0.0.1", "client_unique_id": "u", "aes_key": "00112233445566778899aabbccddeeff"}]);
        let o = Observation { at: 1.0, event: Event::Poll { service: "wolf".into(), reply: Arc::new(Reply::parse("wolf", "sessions", sessions)) } };
        let line = serde_json::to_string(&o).unwrap();
        assert!(line.contains(r#""source":"poll","service":"wolf","what":"wolf-sessions","data":[{"app_id":"1""#), "{line}");
        assert!(!line.contains("aes_key"), "the type leaves the key out: {line}");
        let back: Observation = serde_json::from_str(&line).unwrap();
        assert!(matches!(back.event, Event::Poll { ref reply, .. } if matches!(&**reply, Reply::WolfSessions(s) if s[0].client_id == "42")));
        // A shape that drifted is said to be one, not taken for "no sessions".
        let drifted = Reply::parse("wolf", "sessions", serde_json::json!({"sessions": []}));
        assert!(matches!(drifted, Reply::Malformed(ref e) if e.contains("expected a sequence")), "{drifted:?}");
    }
}
