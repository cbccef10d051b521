//! One ordered timeline of everything the driver observes.
//!
//! Browser probes, server polls, Wolf events, service logs and the scenario's own operations all
//! become [`Observation`]s. Detectors read the timeline; reports render it. Keeping one vocabulary
//! here is what lets a verdict point at "the state at that moment".
//!
//! Why one file of over 400 lines: the vocabulary (Event, Reply, ProbeEvent), the log that holds it
//! and the redaction of each variant must change together: a new variant that is not redacted would
//! leak.

use crate::redact::Redactor;
use crate::sut::replies::{HelixLobby, MlwSession, ResourceSample, WolfLobby, WolfMemory, WolfSession};
use helix_e2e_shared::stamp::{self, InputEcho, Modifiers, Stamp};
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
    /// One round of the services' resource use (descriptors, memory), as the monitor sampled
    /// it: what leak trends are fitted on.
    Resources { samples: Vec<ResourceSample> },
    /// A part of the system under test stopped without the driver stopping it, as seen by what
    /// watches it (the browser layer, the stand-in's process supervisor).
    Died { what: Casualty, detail: String },
    /// The driver sent a real key event (CDP `Input.dispatchKeyEvent`) to a tab; `at` is just
    /// before the dispatch. `held`: the modifier keys the driver holds down after it.
    KeySent { tab: TabId, key: u16, down: bool, held: Modifiers },
    /// A detector named a documented failure.
    Detection { fault: crate::catalog::FailureId, name: String, tab: Option<TabId>, message: String, first_symptom: EpochMs },
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
    /// Wolf's health endpoint (the Helix fork's).
    WolfHealth(crate::sut::replies::WolfHealth),
    /// The driver's own probe of Wolf's HTTPS port (`sut::https_probe`).
    WolfHttps(crate::sut::replies::HttpsProbe),
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
            ("wolf", "health") => typed(data, Reply::WolfHealth),
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
            // The probe of the HTTPS port says nothing of the API the other polls ask.
            Reply::Failed(_) | Reply::EventsEnded | Reply::LogSourceEnded(_) | Reply::WolfHttps(_) => None,
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
    /// This "tab" is a synthetic viewer (`crate::synthetic`), not a browser page: it follows its
    /// `PageLoad` and marks every viewer of that load, so reports keep the two kinds apart.
    Synthetic {
        decode: SyntheticDecode,
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
    /// One presented frame's picture, sampled at presentation (`requestVideoFrameCallback`)
    /// while the page's user input is recent: what input-to-picture latency is read from.
    Presented {
        video: u32,
        sample: PresentedSample,
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

/// Which pictures a synthetic viewer decodes (see `helix_e2e_shared::h264::Decode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticDecode {
    /// Every access unit, as a browser does; a frame sample every 200 ms, like the probe's.
    #[default]
    Every,
    /// Only the keyframes (one a second from the stand-in); a frame sample each.
    Keyframes,
}

/// What a viewer runs in: a browser tab, or the driver's own synthetic viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewerKind {
    #[default]
    Tab,
    Synthetic,
}

impl ViewerKind {
    /// How messages name a viewer of this kind in tab `tab` (`tab N` stays in it, which is how
    /// reports find the tabs a message names).
    pub fn name(self, tab: TabId) -> String {
        match self {
            ViewerKind::Tab => format!("tab {tab}"),
            ViewerKind::Synthetic => format!("synthetic tab {tab}"),
        }
    }
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
        decode_luma(&self.luma).and_then(|bytes| stamp::decode(&bytes, LUMA_W, LUMA_H))
    }
}

/// A frame sampled when it was presented, for its input echo.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PresentedSample {
    /// When the frame was handed to the compositor (`presentationTime`, epoch ms).
    pub presented_at: EpochMs,
    /// Base64 of `LUMA_W x LUMA_H` luma bytes; read into `echo` on the way in, then dropped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub luma: String,
    /// The input echo the picture carries, decoded from `luma` on the way in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<InputEcho>,
}

impl PresentedSample {
    pub fn decode_echo(&self) -> Option<InputEcho> {
        decode_luma(&self.luma).and_then(|bytes| stamp::decode_echo(&bytes, LUMA_W, LUMA_H))
    }
}

/// The probe's base64 luma grid, when it is one of `LUMA_W x LUMA_H`.
fn decode_luma(luma: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if luma.is_empty() {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(luma).ok()?;
    (bytes.len() == LUMA_W * LUMA_H).then_some(bytes)
}

/// Size of the luma grid the probe samples; the stamp is laid out so it decodes at this size.
pub const LUMA_W: usize = 64;
pub const LUMA_H: usize = 36;

/// A shared, append-only timeline. Cheap to clone; every producer holds one.
///
/// Secrets are masked on the way in, so nothing rendered from the timeline can leak them.
/// Readers fold it incrementally: each holds a [`Cursor`], [`Timeline::take_new`] hands out what
/// was appended after it, and [`Timeline::changed`] wakes them when something was, so no reader
/// re-reads the run (cost grows with events, not with the age of the run).
///
/// Memory stays flat on a long run too: with [`Timeline::stream_to`] every observation is written
/// to a file as it arrives, and whole chunks that every live cursor has passed are let go; the
/// whole-run readings at the end ([`Timeline::snapshot`]) then read the file.
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Mutex<Log>>,
    redactor: Arc<Mutex<Redactor>>,
    sink: Arc<Mutex<Option<Sink>>>,
    appended: Arc<tokio::sync::watch::Sender<usize>>,
}

/// The observations in arrival order, in fixed-size chunks: growing never copies what is there
/// (one vector doubling would, for a moment, hold a long run twice), and the oldest chunks can
/// be let go whole.
#[derive(Default)]
struct Log {
    chunks: std::collections::VecDeque<Vec<Observation>>,
    /// Index (in arrival order) of the first observation still in memory: a multiple of CHUNK.
    base: usize,
    /// Observations appended so far.
    len: usize,
    /// Where each live reader is; a reader's unread observations are never let go.
    readers: Vec<std::sync::Weak<std::sync::atomic::AtomicUsize>>,
    /// Whether everything is also on disk (then read chunks may go).
    streamed: bool,
    /// Nobody will read the whole log again (`helix-e2e watch`): read chunks may go unwritten.
    unrecorded: bool,
    /// The file the stream went to, once finished (what [`Timeline::snapshot`] reads then).
    finished: Option<std::path::PathBuf>,
}

const CHUNK: usize = 4096;

impl Log {
    fn push(&mut self, o: Observation) {
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK) {
            self.let_go();
            self.chunks.push_back(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.back_mut() {
            c.push(o);
        }
        self.len += 1;
    }

    /// Drop the full chunks every live reader has read, when they are on disk.
    fn let_go(&mut self) {
        if !self.streamed && !self.unrecorded {
            return;
        }
        self.readers.retain(|r| r.strong_count() > 0);
        let oldest_unread = self.readers.iter().filter_map(|r| r.upgrade()).map(|p| p.load(std::sync::atomic::Ordering::Relaxed)).min().unwrap_or(self.len);
        while self.chunks.front().is_some_and(|c| c.len() == CHUNK) && self.base + CHUNK <= oldest_unread {
            self.chunks.pop_front();
            self.base += CHUNK;
        }
    }

    /// Everything in memory from `cursor` on (from the oldest kept, if that went already).
    fn from(&self, cursor: usize) -> impl Iterator<Item = &Observation> {
        let skip = cursor.saturating_sub(self.base);
        self.chunks.iter().skip(skip / CHUNK).flatten().skip(skip % CHUNK)
    }
}

/// A reader's place in the timeline ([`Timeline::cursor`]). While it lives, what it has not read
/// yet stays in memory.
pub struct Cursor {
    pos: Arc<std::sync::atomic::AtomicUsize>,
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
    /// `at` orders them in time). Secrets are masked as in memory. Call it before the first
    /// observation: from then on memory keeps only what readers have not read yet.
    pub fn stream_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let writer = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // What came before the stream is only in memory, so nothing may go.
        log.streamed = log.len == 0;
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sink { writer, tmp, path: path.to_path_buf() });
        Ok(())
    }

    /// A timeline that keeps only what its readers have not read yet, with no file behind it:
    /// for a monitor that runs for days, where only readers that fold as they go exist and
    /// [`Timeline::snapshot`] has only the recent part.
    pub fn unrecorded() -> Self {
        let t = Self::default();
        t.inner.lock().unwrap_or_else(|e| e.into_inner()).unrecorded = true;
        t
    }

    /// Flush the stream of [`Timeline::stream_to`] and give the file its name.
    pub fn finish_stream(&self) -> std::io::Result<()> {
        // The log's lock before the sink's, as everywhere.
        let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).take();
        match sink {
            Some(mut s) => {
                std::io::Write::flush(&mut s.writer)?;
                std::fs::rename(&s.tmp, &s.path)?;
                log.finished = Some(s.path);
                Ok(())
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
        if let Event::Tab { probe: ProbeEvent::Presented { sample, .. }, .. } = &mut event {
            sample.echo = sample.echo.or_else(|| sample.decode_echo());
            sample.luma = String::new();
        }
        let obs = Observation { at, event };
        // Serialized before any lock is taken (it is the costly part); written to the file under
        // the log's lock, so a chunk is let go only once it is on disk.
        let line = self.sink.lock().unwrap_or_else(|e| e.into_inner()).is_some().then(|| serde_json::to_string(&obs).ok()).flatten();
        let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(line), Some(Sink { writer: w, .. })) = (line, self.sink.lock().unwrap_or_else(|e| e.into_inner()).as_mut()) {
            let _ = std::io::Write::write_all(w, line.as_bytes()).and_then(|_| std::io::Write::write_all(w, b"\n"));
        }
        log.push(obs);
        let n = log.len;
        drop(log);
        self.appended.send_replace(n);
    }

    /// A copy of everything observed so far, ordered by time. For the end of a run and for
    /// tests; anything that runs while the run does reads with [`Timeline::take_new`]. Once
    /// memory has let old observations go, this reads them back from the streamed file.
    pub fn snapshot(&self) -> Vec<Observation> {
        let (file, count) = {
            let log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if log.base == 0 {
                let mut v: Vec<Observation> = log.from(0).cloned().collect();
                v.sort_by(|a, b| a.at.total_cmp(&b.at));
                return v;
            }
            let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            let file = match sink.as_mut() {
                Some(s) => {
                    let _ = std::io::Write::flush(&mut s.writer);
                    Some(s.tmp.clone())
                }
                None => log.finished.clone(),
            };
            (file, log.len)
        };
        // Read without holding the locks (a long run's file takes a while, and producers must
        // not wait): the first `count` lines are the ones flushed above, whole.
        let mut v: Vec<Observation> = match file.map(std::fs::read_to_string) {
            Some(Ok(text)) => text.lines().take(count).filter_map(|l| serde_json::from_str(l).ok()).collect(),
            other => {
                tracing::warn!("cannot read the streamed timeline back ({other:?}); the snapshot has only the recent part");
                self.inner.lock().unwrap_or_else(|e| e.into_inner()).from(0).cloned().collect()
            }
        };
        v.sort_by(|a, b| a.at.total_cmp(&b.at));
        v
    }

    /// A new reader's cursor, at the oldest observation still in memory (a reader that started
    /// late and wants the beginning of a long run reads [`Timeline::snapshot`] instead).
    pub fn cursor(&self) -> Cursor {
        let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let pos = Arc::new(std::sync::atomic::AtomicUsize::new(log.base));
        log.readers.push(Arc::downgrade(&pos));
        Cursor { pos }
    }

    /// Hand `take` each observation appended since `cursor` (in the order it arrived), without
    /// copying it, and move the cursor past them: how every reader folds the timeline. `take`
    /// runs under the timeline's lock, so it must not push to it.
    pub fn take_new(&self, cursor: &mut Cursor, mut take: impl FnMut(&Observation)) {
        let log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        log.from(cursor.pos.load(std::sync::atomic::Ordering::Relaxed)).for_each(&mut take);
        cursor.pos.store(log.len, std::sync::atomic::Ordering::Relaxed);
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

    /// Observations held in memory (for `bench` and the tests of letting go).
    pub fn held(&self) -> usize {
        let log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        log.len - log.base
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
        Event::Resources { samples } => Event::Resources {
            samples: samples.into_iter().map(|s| ResourceSample { unavailable: s.unavailable.iter().map(|u| r.text(u)).collect(), ..s }).collect(),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_chunks_leave_memory_and_the_snapshot_reads_them_back_from_the_file() {
        let dir = std::env::temp_dir().join(format!("helix-e2e-timeline-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("timeline.jsonl");
        let t = Timeline::new();
        t.stream_to(&path).unwrap();
        let op = |i: usize| Event::Op { name: format!("op {i}"), phase: OpPhase::Ok };
        let mut reader = t.cursor();
        let gone_reader = t.cursor();
        drop(gone_reader);
        let n = 3 * CHUNK + 10;
        for i in 0..n {
            t.push_at(i as f64, op(i));
        }
        assert_eq!(t.held(), n, "nothing goes before the live reader read it");
        let mut read = 0;
        t.take_new(&mut reader, |_| read += 1);
        assert_eq!(read, n);
        for i in n..n + CHUNK {
            t.push_at(i as f64, op(i));
        }
        assert!(t.held() <= 2 * CHUNK, "read chunks stay in memory: {}", t.held());
        // A reader that starts now begins at the oldest kept; the whole run is on disk.
        let mut late = t.cursor();
        let mut first = None;
        t.take_new(&mut late, |o| {
            first.get_or_insert(o.at);
        });
        assert!(first.is_some_and(|f| f >= CHUNK as f64));
        let all = t.snapshot();
        assert_eq!(all.len(), n + CHUNK);
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at) && all[0].at == 0.0);
        t.finish_stream().unwrap();
        assert_eq!(t.snapshot().len(), n + CHUNK, "after the stream is finished, from the file by its name");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unrecorded_timeline_keeps_only_what_its_readers_have_not_read() {
        let t = Timeline::unrecorded();
        let mut reader = t.cursor();
        let op = |i: usize| Event::Op { name: format!("op {i}"), phase: OpPhase::Ok };
        for round in 0..10 {
            for i in 0..CHUNK {
                t.push_at((round * CHUNK + i) as f64, op(i));
            }
            t.take_new(&mut reader, |_| ());
        }
        assert_eq!(t.len(), 10 * CHUNK);
        assert!(t.held() <= 2 * CHUNK, "read chunks go without a file: {} held", t.held());
    }

    #[test]
    fn without_a_stream_nothing_leaves_memory() {
        let t = Timeline::new();
        for i in 0..2 * CHUNK + 1 {
            t.push_at(i as f64, Event::Op { name: "x".into(), phase: OpPhase::Ok });
        }
        assert_eq!(t.held(), 2 * CHUNK + 1);
        assert_eq!(t.snapshot().len(), 2 * CHUNK + 1);
    }

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
