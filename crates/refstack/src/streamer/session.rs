//! The streamer's life: one browser peer, one Wolf stream, and moonlight-web's stop cascade.
//!
//! The failures the driver hunts (a second tab killing the first, sessions that outlive their
//! socket, a cancel that races the ENet disconnect) come from the order in which moonlight-web's
//! streamer does things, so this module keeps that order: browser offers, streamer answers, the
//! Moonlight stream starts only once the peer is connected, the track is added by a second
//! server-side offer, and `stop()` runs exactly once whatever triggered it.
//!
//! Why one file of over 400 lines: the start, the stop cascade and the start a stop abandons share
//! one state machine; split, the order the documented failures depend on would live in two places.

use super::host::{HostClient, HostError, LaunchParams, DEFAULT_UNIQUE_ID};
use super::ipc::{ServerToStreamer, StreamerFaults, StreamerInit, StreamerToServer};
use super::rtc::{self, PeerOptions, GENERAL_CHANNEL, INPUT_CHANNELS};
use crate::wolf::input::Packet;
use crate::wolf::stream::wire;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::data_channel::RTCDataChannel;
use webrtc::media::Sample;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;

pub const STAGE_SETUP: &str = "Setup WebRTC Peer";
pub const STAGE_NEGOTIATION: &str = "WebRTC Peer Negotiation";
pub const STAGE_MOONLIGHT: &str = "Moonlight Stream";
pub const VIDEO_TRACK_ID: &str = "video";
pub const VIDEO_STREAM_ID: &str = "moonlight";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// No single cascade step may keep the process alive: moonlight-web would reap it anyway.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the cascade waits for `ConnectionTerminated` to leave before moving on.
const FLUSH_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StreamerError {
    #[error("IPC output failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What started the stop cascade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// moonlight-web sent `Stop` (the browser's socket went away).
    IpcStop,
    /// moonlight-web's end of stdin closed.
    StdinClosed,
    /// The peer connection reached Failed, Disconnected or Closed.
    Peer(String),
    /// Wolf closed the video/control stream.
    WolfStreamClosed(String),
    /// Starting the Moonlight stream failed.
    LaunchFailed { already_streaming: bool, error: String },
    /// The WebRTC side could not be set up or renegotiated.
    Setup(String),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Gather only loopback ICE candidates (see [`rtc::LOOPBACK_ONLY_ENV`]).
    pub loopback_only: bool,
}

/// The process entry of `helix-e2e __streamer`: IPC on stdin/stdout, logs on stderr.
pub async fn run() -> anyhow::Result<()> {
    // The binary may already have installed a subscriber; stdout must stay IPC-only either way.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // moonlight-web captures a streamer's stderr into its log: no colour codes in files.
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .try_init();
    let opts = Options { loopback_only: PeerOptions::loopback_only_from_env() };
    // Every line carries the pid: a reconnect reuses the moonlight-web `session_id`, so two
    // streamers of one session (the one tearing down and its successor) log under one prefix.
    let span = tracing::info_span!("streamer", pid = std::process::id());
    let reason = run_with(tokio::io::stdin(), tokio::io::stdout(), opts).instrument(span).await?;
    tracing::info!("streamer exiting after stop cascade ({reason:?})");
    // Exit explicitly: tokio's stdin reader sits on a blocking thread that would hold a runtime
    // shutdown until the parent closes the pipe.
    std::process::exit(0);
}

/// The streamer on arbitrary IPC streams, so tests can run it in-process. Returns once the stop
/// cascade has written IPC `Stop`.
pub async fn run_with<R, W>(input: R, output: W, opts: Options) -> Result<StopReason, StreamerError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (ipc_tx, ipc_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_ipc(output, ipc_rx));
    let ipc = Ipc(ipc_tx);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_ipc(input, ev_tx.clone()));

    let mut streamer = Streamer::new(ipc, ev_tx, opts);
    let reason = streamer.run(&mut ev_rx).await;
    streamer.stop(&reason).await;
    reader.abort();
    drop(streamer);
    match writer.await {
        Ok(r) => r?,
        Err(e) => tracing::warn!("IPC writer task: {e}"),
    }
    Ok(reason)
}

enum Event {
    Ipc(ServerToStreamer),
    StdinClosed,
    PeerState(RTCPeerConnectionState),
    WolfClosed(String),
}

/// Whether an event ends the streamer: the one rule [`Streamer::run`] applies to every event,
/// including those that arrive while the Moonlight stream is being started.
fn stop_reason(ev: &Event, faults: StreamerFaults) -> Option<StopReason> {
    let lingers = faults.linger;
    match ev {
        Event::Ipc(ServerToStreamer::Stop) if !lingers => Some(StopReason::IpcStop),
        Event::StdinClosed if !lingers => Some(StopReason::StdinClosed),
        Event::WolfClosed(why) => Some(StopReason::WolfStreamClosed(why.clone())),
        Event::PeerState(state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Closed))
            if !lingers && !faults.outlive_peer =>
        {
            Some(StopReason::Peer(state.to_string()))
        }
        _ => None,
    }
}

#[derive(Clone)]
struct Ipc(mpsc::UnboundedSender<StreamerToServer>);

impl Ipc {
    fn ws(&self, msg: Value) {
        let _ = self.0.send(StreamerToServer::WebSocket(msg));
    }
    fn stage_starting(&self, stage: &str) {
        tracing::info!("stage starting: {stage}");
        self.ws(json!({"StageStarting": {"stage": stage}}));
    }
    fn stage_complete(&self, stage: &str) {
        tracing::info!("stage complete: {stage}");
        self.ws(json!({"StageComplete": {"stage": stage}}));
    }
}

async fn write_ipc<W: AsyncWrite + Unpin>(mut out: W, mut rx: mpsc::UnboundedReceiver<StreamerToServer>) -> std::io::Result<()> {
    while let Some(msg) = rx.recv().await {
        let mut line = serde_json::to_vec(&msg).map_err(std::io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line).await?;
        out.flush().await?;
        // `Stop` is the streamer's last word; later sends (late callbacks) go nowhere.
        if matches!(msg, StreamerToServer::Stop) {
            break;
        }
    }
    Ok(())
}

async fn read_ipc<R: AsyncRead + Unpin>(input: R, events: mpsc::UnboundedSender<Event>) {
    let mut lines = BufReader::new(input).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => {}
            Ok(Some(line)) => match serde_json::from_str::<ServerToStreamer>(&line) {
                Ok(msg) => {
                    if events.send(Event::Ipc(msg)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!("ignoring unparsable IPC line ({e}): {}", line.chars().take(200).collect::<String>()),
            },
            Ok(None) => {
                let _ = events.send(Event::StdinClosed);
                return;
            }
            Err(e) => {
                tracing::warn!("IPC input failed: {e}");
                let _ = events.send(Event::StdinClosed);
                return;
            }
        }
    }
}

/// Local candidates wait here until the answer that they belong to has been sent: a browser
/// rejects `addIceCandidate` before it has a remote description.
#[derive(Default)]
struct CandidateGate {
    open: bool,
    pending: Vec<Value>,
}

struct WolfLink {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct Streamer {
    ipc: Ipc,
    events: mpsc::UnboundedSender<Event>,
    opts: Options,
    init: Option<StreamerInit>,
    pc: Option<Arc<RTCPeerConnection>>,
    general: Option<Arc<RTCDataChannel>>,
    /// The mid trickled candidates refer to, learned from the browser's offer.
    mid: Arc<Mutex<String>>,
    gate: Arc<Mutex<CandidateGate>>,
    /// Where input from the browser's channels goes once the Wolf stream is up.
    input: Arc<Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>>,
    host: Option<HostClient>,
    /// Wolf's id of the session this streamer launched or resumed.
    wolf_session: Option<String>,
    wolf: Option<WolfLink>,
    moonlight_started: bool,
    /// F11's stream of SCTP parse errors, while the peer lives.
    sctp_noise: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Streamer {
    fn new(ipc: Ipc, events: mpsc::UnboundedSender<Event>, opts: Options) -> Self {
        Self {
            ipc,
            events,
            opts,
            init: None,
            pc: None,
            general: None,
            mid: Arc::new(Mutex::new("0".to_owned())),
            gate: Arc::default(),
            input: Arc::default(),
            host: None,
            wolf_session: None,
            wolf: None,
            moonlight_started: false,
            sctp_noise: None,
        }
    }

    /// The switches this streamer acts on (none before its `Init`).
    fn faults(&self) -> StreamerFaults {
        self.init.as_ref().map(|i| i.faults).unwrap_or_default()
    }

    /// Handle events until something calls for the stop cascade.
    async fn run(&mut self, events: &mut mpsc::UnboundedReceiver<Event>) -> StopReason {
        // Events that arrived while the Moonlight stream was being started, in order.
        let mut deferred: VecDeque<Event> = VecDeque::new();
        loop {
            let ev = match deferred.pop_front() {
                Some(ev) => ev,
                None => match events.recv().await {
                    Some(ev) => ev,
                    None => return StopReason::StdinClosed,
                },
            };
            if let Some(reason) = stop_reason(&ev, self.faults()) {
                return reason;
            }
            match ev {
                Event::Ipc(ServerToStreamer::Init(init)) if self.init.is_none() => {
                    if let Err(e) = self.setup(init).await {
                        tracing::error!("setting up the peer failed: {e}");
                        return StopReason::Setup(e.to_string());
                    }
                }
                Event::Ipc(ServerToStreamer::Init(_)) => tracing::warn!("ignoring a second Init"),
                Event::Ipc(ServerToStreamer::WebSocket(msg)) => {
                    if self.pc.is_none() {
                        tracing::warn!("client message before Init, ignored");
                    } else if let Err(e) = self.on_client_message(&msg).await {
                        tracing::warn!("client message failed: {e}");
                    }
                }
                Event::Ipc(ServerToStreamer::ClientJoined) => tracing::info!("a client joined this session"),
                // What ends the streamer was decided above: these only linger (F5/F6).
                Event::Ipc(ServerToStreamer::Stop) => tracing::info!("ignoring Stop: lingering (fault)"),
                Event::StdinClosed => tracing::info!("moonlight-web closed stdin: lingering (fault)"),
                Event::PeerState(state) => {
                    tracing::info!("peer connection state: {state}");
                    match state {
                        RTCPeerConnectionState::Connected if !self.moonlight_started => {
                            self.moonlight_started = true;
                            if self.init.as_ref().is_some_and(|i| i.faults.sctp_errors) {
                                self.sctp_noise = Some(tokio::spawn(mangled_sctp_chunks()));
                            }
                            self.ipc.stage_complete(STAGE_NEGOTIATION);
                            self.ipc.stage_starting(STAGE_MOONLIGHT);
                            // Starting takes Wolf round trips and a renegotiation, which
                            // webrtc-rs may never finish on a peer the browser has just closed.
                            // A stop meanwhile must not wait for it: it abandons the start, and
                            // the cascade cancels whatever Wolf session the start got as far as.
                            let faults = self.faults();
                            let start = self.start_moonlight();
                            tokio::pin!(start);
                            let outcome = loop {
                                tokio::select! {
                                    r = &mut start => break r,
                                    ev = events.recv() => match ev {
                                        None => break Err(StopReason::StdinClosed),
                                        Some(ev) => match stop_reason(&ev, faults) {
                                            Some(reason) => {
                                                tracing::info!("stop requested while starting the Moonlight stream: {reason:?}");
                                                break Err(reason);
                                            }
                                            None => deferred.push_back(ev),
                                        },
                                    },
                                }
                            };
                            if let Err(reason) = outcome {
                                return reason;
                            }
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Closed => {
                            tracing::info!("peer {state}: the Wolf stream stays up (fault)");
                        }
                        _ => {}
                    }
                }
                // Always a stop, returned above.
                Event::WolfClosed(_) => {}
            }
        }
    }

    async fn setup(&mut self, init: StreamerInit) -> Result<(), webrtc::Error> {
        tracing::info!(session = %init.session_id, mode = %init.mode, "Init received");
        self.ipc.stage_starting(STAGE_SETUP);
        let pc =
            rtc::new_peer(&PeerOptions { ice_servers: init.ice_servers.clone(), port_range: init.port_range, loopback_only: self.opts.loopback_only }).await?;

        let (ipc, mid, gate) = (self.ipc.clone(), Arc::clone(&self.mid), Arc::clone(&self.gate));
        pc.on_ice_candidate(Box::new(move |c| {
            let (ipc, mid, gate) = (ipc.clone(), Arc::clone(&mid), Arc::clone(&gate));
            Box::pin(async move {
                let Some(c) = c else { return };
                match c.to_json() {
                    Ok(init) => {
                        tracing::debug!("local candidate {}", init.candidate);
                        let msg = rtc::candidate_message(&init, &lock(&mid));
                        let mut g = lock(&gate);
                        if g.open {
                            ipc.ws(msg);
                        } else {
                            g.pending.push(msg);
                        }
                    }
                    Err(e) => tracing::warn!("local candidate unusable: {e}"),
                }
            })
        }));
        let events = self.events.clone();
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = events.send(Event::PeerState(s));
            Box::pin(async {})
        }));
        let input = Arc::clone(&self.input);
        pc.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
            let input = Arc::clone(&input);
            Box::pin(async move {
                let label = dc.label().to_owned();
                if !INPUT_CHANNELS.contains(&label.as_str()) {
                    tracing::info!("browser opened unexpected data channel {label:?}");
                    return;
                }
                tracing::debug!("browser opened input channel {label}");
                dc.on_message(Box::new(move |msg| {
                    // The Moonlight library turns each channel message into its input packet.
                    match (Packet::from_channel(&label, &msg.data), lock(&input).as_ref()) {
                        (Some(packet), Some(tx)) => {
                            let _ = tx.send(packet.encode());
                        }
                        (None, _) => tracing::trace!("{label}: {} bytes that are no desktop input", msg.data.len()),
                        (Some(_), None) => tracing::trace!("{label}: input before the Wolf stream is up"),
                    }
                    Box::pin(async {})
                }));
            })
        }));
        self.general = Some(pc.create_data_channel(GENERAL_CHANNEL, None).await?);
        self.pc = Some(pc);

        self.ipc.ws(json!({"WebRtcConfig": {"ice_servers": init.ice_servers}}));
        self.ipc.stage_complete(STAGE_SETUP);
        self.ipc.stage_starting(STAGE_NEGOTIATION);
        self.init = Some(init);
        Ok(())
    }

    async fn on_client_message(&mut self, msg: &Value) -> Result<(), webrtc::Error> {
        let Some(pc) = self.pc.clone() else { return Ok(()) };
        let Some(sig) = msg.get("Signaling") else {
            tracing::debug!("ignoring client message {msg}");
            return Ok(());
        };
        if let Some(desc) = sig.get("Description") {
            let sdp = desc.get("sdp").and_then(Value::as_str).unwrap_or_default().to_owned();
            match desc.get("ty").and_then(Value::as_str) {
                Some("offer") => {
                    tracing::info!("browser offer received");
                    if let Some(mid) = rtc::first_mid(&sdp) {
                        *lock(&self.mid) = mid;
                    }
                    pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                    let answer = pc.create_answer(None).await?;
                    pc.set_local_description(answer.clone()).await?;
                    self.ipc.ws(json!({"Signaling": {"Description": {"ty": "answer", "sdp": answer.sdp}}}));
                    tracing::info!("answer sent");
                    let mut g = lock(&self.gate);
                    g.open = true;
                    for m in g.pending.drain(..) {
                        self.ipc.ws(m);
                    }
                }
                Some("answer") => {
                    tracing::info!("browser answer received");
                    pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
                }
                other => tracing::warn!("ignoring description of type {other:?}"),
            }
        } else if let Some(body) = sig.get("AddIceCandidate") {
            if let Some(candidate) = rtc::parse_candidate(body) {
                tracing::debug!("remote candidate {}", candidate.candidate);
                // Chromium's mDNS candidates cannot be resolved here; peer-reflexive ones
                // still form the pair, so a refusal is not fatal.
                if let Err(e) = pc.add_ice_candidate(candidate).await {
                    tracing::debug!("remote candidate not added: {e}");
                }
            }
        } else {
            tracing::debug!("ignoring signaling message {sig}");
        }
        Ok(())
    }

    /// Pair, launch or resume, attach to Wolf's stream, then renegotiate to add the video track.
    async fn start_moonlight(&mut self) -> Result<(), StopReason> {
        let (Some(init), Some(pc)) = (self.init.clone(), self.pc.clone()) else {
            return Err(StopReason::Setup("no peer".into()));
        };
        let failed = |e: HostError| {
            tracing::error!("starting the Moonlight stream failed: {e}");
            StopReason::LaunchFailed { already_streaming: e.is_already_streaming(), error: e.to_string() }
        };
        let host = HostClient::new(&init.wolf_http, &init.cert_pem).map_err(failed)?;
        let host = &*self.host.insert(host);
        host.pair().await.map_err(failed)?;
        let current = host.current_game().await.map_err(failed)?;
        let params = LaunchParams {
            app_id: init.app_id.clone(),
            unique_id: init.client_unique_id.clone().unwrap_or_else(|| DEFAULT_UNIQUE_ID.to_owned()),
            width: init.width,
            height: init.height,
            fps: init.fps,
        };
        let resume = current.is_some();
        tracing::info!("{} app {} on Wolf", if resume { "resuming" } else { "launching" }, params.app_id);
        let info = host.start(resume, &params).await.map_err(failed)?;
        tracing::info!("Wolf session {} streams on port {}", info.session_id, info.stream_port);
        self.wolf_session = Some(info.session_id.clone());

        let launch_failed = |error: String| {
            tracing::error!("starting the Moonlight stream failed: {error}");
            StopReason::LaunchFailed { already_streaming: false, error }
        };
        let sock = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", info.stream_port)))
            .await
            .map_err(|_| launch_failed("connecting to Wolf's stream timed out".into()))?
            .map_err(|e| launch_failed(format!("connecting to Wolf's stream: {e}")))?;
        let _ = sock.set_nodelay(true);
        let (rd, mut wr) = sock.into_split();
        wire::write_hello(&mut wr, &info.session_id).await.map_err(|e| launch_failed(e.to_string()))?;

        let track = Arc::new(TrackLocalStaticSample::new(rtc::h264_capability(), VIDEO_TRACK_ID.to_owned(), VIDEO_STREAM_ID.to_owned()));
        let (input_tx, input_rx) = mpsc::unbounded_channel();
        *lock(&self.input) = Some(input_tx);
        self.wolf = Some(WolfLink {
            reader: tokio::spawn(forward_video(rd, Arc::clone(&track), self.events.clone())),
            writer: tokio::spawn(heartbeat_and_input(wr, input_rx, self.events.clone())),
        });
        self.ipc.stage_complete(STAGE_MOONLIGHT);

        let setup_failed = |e: webrtc::Error| {
            tracing::error!("adding the video track failed: {e}");
            StopReason::Setup(e.to_string())
        };
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>).await.map_err(setup_failed)?;
        // RTCP must be read for the interceptors (NACK, reports) to run.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while sender.read(&mut buf).await.is_ok() {}
        });
        let offer = pc.create_offer(None).await.map_err(setup_failed)?;
        pc.set_local_description(offer.clone()).await.map_err(setup_failed)?;
        self.ipc.ws(json!({"Signaling": {"Description": {"ty": "offer", "sdp": offer.sdp}}}));
        tracing::info!("renegotiation offer sent");
        self.ipc.ws(json!({"ConnectionComplete": {
            "capabilities": {"touch": false},
            "width": wire::WIDTH,
            "height": wire::HEIGHT,
            "client_id": info.session_id,
        }}));
        Ok(())
    }

    /// moonlight-web's `stop()`: tell the browser, drop the Moonlight stream, cancel the host
    /// session, close the peer, tell moonlight-web.
    async fn stop(&mut self, reason: &StopReason) {
        tracing::info!("stop cascade: {reason:?}");
        let started = tokio::time::Instant::now();
        if let Some(noise) = self.sctp_noise.take() {
            noise.abort();
        }
        if *reason != StopReason::IpcStop {
            if let StopReason::LaunchFailed { already_streaming: true, .. } = reason {
                self.ipc.ws(json!("AlreadyStreaming"));
            }
            tracing::info!("stop: PeerDisconnect to the browser");
            self.ipc.ws(json!("PeerDisconnect"));
        }
        if let Some(general) = &self.general {
            if general.ready_state() == RTCDataChannelState::Open {
                tracing::info!("stop: ConnectionTerminated on {GENERAL_CHANNEL}");
                // JSON, as every message on `general` is: the browser client JSON.parses each.
                match general.send_text(json!("ConnectionTerminated").to_string()).await {
                    // Closing the peer right away would tear SCTP down with the message still
                    // queued; give it a moment to leave.
                    Ok(_) => {
                        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
                        while general.buffered_amount().await > 0 && tokio::time::Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    Err(e) => tracing::warn!("stop: ConnectionTerminated not sent: {e}"),
                }
            }
        }
        if self.init.as_ref().is_some_and(|i| i.faults.slow_teardown) {
            // F14: as slow as a cascade whose `ConnectionTerminated` never leaves, every time.
            tokio::time::sleep_until(started + FLUSH_TIMEOUT).await;
        }
        *lock(&self.input) = None;
        if let Some(link) = self.wolf.take() {
            tracing::info!("stop: closing the Wolf stream");
            link.reader.abort();
            link.writer.abort();
            // Awaiting the aborted tasks guarantees the socket is closed before /cancel.
            let _ = link.reader.await;
            let _ = link.writer.await;
        }
        if let Some(host) = &self.host {
            // With the Wolf session's id when this streamer got one: whose session a cancel
            // hits is the evidence of a reconnect racing a teardown (F14).
            match &self.wolf_session {
                Some(id) => tracing::info!("stop: cancelling the Wolf session {id}"),
                None => tracing::info!("stop: cancelling the Wolf session"),
            }
            match tokio::time::timeout(STEP_TIMEOUT, host.cancel()).await {
                Ok(Ok(())) => tracing::info!("stop: Wolf session cancelled"),
                Ok(Err(e)) => tracing::info!("stop: cancel: {e}"),
                Err(_) => tracing::warn!("stop: cancel timed out"),
            }
        }
        if let Some(pc) = self.pc.take() {
            tracing::info!("stop: closing the peer connection");
            match tokio::time::timeout(STEP_TIMEOUT, pc.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("stop: closing the peer: {e}"),
                Err(_) => tracing::warn!("stop: closing the peer timed out"),
            }
        }
        tracing::info!("stop: IPC Stop");
        let _ = self.ipc.0.send(StreamerToServer::Stop);
    }
}

/// How often F11's mangled chunks arrive.
const MANGLED_CHUNK_EVERY: Duration = Duration::from_millis(500);

/// F11: SCTP packets whose chunks were cut short keep arriving. webrtc-rs's association drops
/// each one with a warning naming the parse error; the packets cannot be injected into the live
/// association from outside (it sits behind DTLS), so the streamer reports them on the same
/// target with the SCTP stack's own error text.
async fn mangled_sctp_chunks() {
    let mut tick = tokio::time::interval(MANGLED_CHUNK_EVERY);
    loop {
        tick.tick().await;
        tracing::warn!(target: "webrtc_sctp::association::association_internal", "[] unable to parse SCTP packet {}", webrtc::sctp::Error::ErrChunkTooShort);
    }
}

/// Forward Wolf's access units into the track until the stream ends.
async fn forward_video(mut rd: OwnedReadHalf, track: Arc<TrackLocalStaticSample>, events: mpsc::UnboundedSender<Event>) {
    let duration = Duration::from_secs_f64(1.0 / f64::from(wire::FPS));
    let mut frames: u64 = 0;
    let why = loop {
        match wire::read_frame(&mut rd).await {
            Ok(Some(f)) if f.kind == wire::VIDEO => {
                frames += 1;
                if frames == 1 {
                    tracing::info!("first access unit from Wolf ({} bytes)", f.payload.len());
                }
                let sample = Sample { data: Bytes::from(f.payload), duration, ..Default::default() };
                if let Err(e) = track.write_sample(&sample).await {
                    tracing::debug!("write_sample: {e}");
                }
            }
            Ok(Some(f)) => tracing::debug!("ignoring frame type {} from Wolf", f.kind),
            Ok(None) => break "Wolf closed the stream".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    tracing::info!("Wolf stream ended after {frames} access units: {why}");
    let _ = events.send(Event::WolfClosed(why));
}

/// Keep Wolf's control peer alive and pass input through.
async fn heartbeat_and_input(mut wr: OwnedWriteHalf, mut input: mpsc::UnboundedReceiver<Vec<u8>>, events: mpsc::UnboundedSender<Event>) {
    let mut tick = tokio::time::interval(wire::HEARTBEAT_INTERVAL);
    loop {
        let result = tokio::select! {
            _ = tick.tick() => wire::write_frame(&mut wr, wire::HEARTBEAT, &[]).await,
            Some(bytes) = input.recv() => wire::write_frame(&mut wr, wire::INPUT, &bytes).await,
        };
        if let Err(e) = result {
            let _ = events.send(Event::WolfClosed(format!("writing to Wolf: {e}")));
            return;
        }
    }
}
