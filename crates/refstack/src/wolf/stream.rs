//! Wolf's per-session video and control stream: the stand-in for RTP video plus ENet control.
//!
//! Real Wolf sends encrypted RTP over UDP and keeps an ENet peer per client; what the failures
//! under test depend on is only the coupling between the two: video flows while the session
//! exists, and losing the control peer stops the session (`[ENET] disconnected client`). One TCP
//! connection per session carries both, which keeps the stand-in small and loopback-only while
//! preserving that coupling. The video is real H.264 so the browser decodes exactly what it would
//! from the real stack.
//!
//! Why one file of over 400 lines: it is under 400 lines without its tests.

use super::state::WolfState;
use crate::picture;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, RateControlMode};
use openh264::OpenH264API;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The framing both ends of the stream share (Wolf here, the streamer on the other side).
pub mod wire {
    use serde::{Deserialize, Serialize};
    use std::time::Duration;
    use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Wolf → streamer: one H.264 access unit, Annex-B.
    pub const VIDEO: u8 = 1;
    /// Streamer → Wolf: "still here", empty payload.
    pub const HEARTBEAT: u8 = 2;
    /// Streamer → Wolf: one Moonlight input packet (`super::input::Packet`) made from a message
    /// on the browser's input data channels.
    pub const INPUT: u8 = 3;

    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
    /// Silence after which Wolf considers the control peer gone.
    pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

    pub const WIDTH: u32 = 320;
    pub const HEIGHT: u32 = 180;
    pub const FPS: u32 = 30;
    pub const BITRATE_BPS: u32 = 500_000;
    /// A keyframe every second, so a late or lossy receiver recovers quickly.
    pub const IDR_INTERVAL_FRAMES: u64 = FPS as u64;

    /// Largest payload either side accepts; an access unit at these sizes is a few KiB.
    pub const MAX_PAYLOAD: usize = 4 << 20;
    const MAX_HELLO: usize = 1024;

    /// The first line the streamer sends.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Hello {
        pub session_id: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Frame {
        pub kind: u8,
        pub payload: Vec<u8>,
    }

    #[derive(Debug, thiserror::Error)]
    pub enum WireError {
        #[error("stream i/o: {0}")]
        Io(#[from] std::io::Error),
        #[error("frame payload of {0} bytes exceeds the limit")]
        TooLarge(usize),
        #[error("bad hello line: {0}")]
        BadHello(String),
    }

    pub async fn write_hello<W: AsyncWrite + Unpin>(w: &mut W, session_id: &str) -> Result<(), WireError> {
        let mut line = serde_json::to_vec(&Hello { session_id: session_id.to_string() }).map_err(|e| WireError::BadHello(e.to_string()))?;
        line.push(b'\n');
        w.write_all(&line).await?;
        w.flush().await?;
        Ok(())
    }

    pub async fn read_hello<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Hello, WireError> {
        let mut line = Vec::new();
        // Bounded so a peer that never sends a newline cannot make Wolf buffer without end.
        let n = (&mut *r).take(MAX_HELLO as u64).read_until(b'\n', &mut line).await?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(WireError::BadHello(String::from_utf8_lossy(&line).into_owned()));
        }
        serde_json::from_slice(&line).map_err(|e| WireError::BadHello(format!("{e}: {}", String::from_utf8_lossy(&line).trim_end())))
    }

    pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, payload: &[u8]) -> Result<(), WireError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(WireError::TooLarge(payload.len()));
        }
        let mut buf = Vec::with_capacity(5 + payload.len());
        buf.push(kind);
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(payload);
        w.write_all(&buf).await?;
        w.flush().await?;
        Ok(())
    }

    /// The next frame, or `None` when the peer closed cleanly between frames.
    pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, WireError> {
        let mut kind = [0u8; 1];
        if r.read(&mut kind).await? == 0 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_PAYLOAD {
            return Err(WireError::TooLarge(len));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        Ok(Some(Frame { kind: kind[0], payload }))
    }
}

/// How long a new connection may take to name its session.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A write that takes this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a session's ongoing input is summed up in the log (its start is always logged).
const INPUT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Accept stream connections for as long as the listener lives.
pub async fn serve(listener: TcpListener, state: Arc<WolfState>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                tokio::spawn(handle(sock, peer, Arc::clone(&state)));
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("stream accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a stream connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// `picture_for` said the session is gone: Wolf just closes.
    SessionGone,
    EncoderFailed,
    HeartbeatTimeout,
    /// F4: no input since the session joined its lobby; Wolf's ENet peer times out.
    ControlIdle,
    PeerClosed,
    Broken(String),
}

async fn handle(sock: TcpStream, peer: SocketAddr, state: Arc<WolfState>) {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, wire::read_hello(&mut rd)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::info!("stream from {peer}: {e}; closing");
            return;
        }
        Err(_) => {
            tracing::info!("stream from {peer}: no hello within {HELLO_TIMEOUT:?}; closing");
            return;
        }
    };
    let Some((id, control)) = hello.session_id.parse::<u64>().ok().and_then(|id| Some((id, state.attach_control(id)?))) else {
        tracing::info!("stream from {peer}: unknown session {:?}; closing", hello.session_id);
        return;
    };
    tracing::debug!("stream from {peer} attached to session {id}");

    let started = Instant::now();
    let ms_since_start = move || started.elapsed().as_millis() as u64;
    let last_heartbeat = Arc::new(AtomicU64::new(0));
    let last_input = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Small queue: a stalled writer should hold the encoder back, not pile up stale frames.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let encoder = {
        let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::Builder::new().name(format!("wolf-encoder-{id}")).spawn(move || encode_loop(id, &state, &tx, &stop))
    };
    if let Err(e) = encoder {
        tracing::error!("session {id}: cannot start encoder thread: {e}");
        return;
    }

    // Reading runs in its own task: `read_frame` is not cancel-safe, so it must not sit in a
    // `select!` that may drop it halfway through a frame.
    let mut reader = {
        let (hb, inp, state) = (Arc::clone(&last_heartbeat), Arc::clone(&last_input), Arc::clone(&state));
        tokio::spawn(async move {
            // Input is logged when it starts and then once per INPUT_LOG_EVERY, so a run can see
            // that a user's events reached Wolf without a line per mouse move.
            let (mut events, mut logged_at): (u64, Option<Instant>) = (0, None);
            loop {
                match wire::read_frame(&mut rd).await {
                    Ok(None) => return End::PeerClosed,
                    Err(e) => return End::Broken(e.to_string()),
                    Ok(Some(f)) => match f.kind {
                        wire::HEARTBEAT => hb.store(ms_since_start(), Ordering::Relaxed),
                        wire::INPUT => {
                            inp.store(ms_since_start(), Ordering::Relaxed);
                            state.input(id, &f.payload);
                            events += 1;
                            match logged_at {
                                None => {
                                    tracing::info!("session {id}: input from the client started");
                                    (events, logged_at) = (0, Some(Instant::now()));
                                }
                                Some(t) if t.elapsed() >= INPUT_LOG_EVERY => {
                                    tracing::info!("session {id}: {events} input events from the client in the last {} s", t.elapsed().as_secs());
                                    (events, logged_at) = (0, Some(Instant::now()));
                                }
                                Some(_) => tracing::trace!("session {id}: {} input bytes", f.payload.len()),
                            }
                        }
                        other => tracing::debug!("session {id}: ignoring frame type {other}"),
                    },
                }
            }
        })
    };

    let mut check = tokio::time::interval(wire::HEARTBEAT_INTERVAL);
    let end = loop {
        tokio::select! {
            au = rx.recv() => match au {
                Some(au) => match tokio::time::timeout(WRITE_TIMEOUT, wire::write_frame(&mut wr, wire::VIDEO, &au)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break End::Broken(e.to_string()),
                    Err(_) => break End::Broken("write timed out".into()),
                },
                None if state.session(id).is_none() => break End::SessionGone,
                None => break End::EncoderFailed,
            },
            r = &mut reader => break r.unwrap_or_else(|e| End::Broken(format!("reader task: {e}"))),
            _ = check.tick() => {
                let silent = ms_since_start().saturating_sub(last_heartbeat.load(Ordering::Relaxed));
                if silent >= wire::HEARTBEAT_TIMEOUT.as_millis() as u64 {
                    break End::HeartbeatTimeout;
                }
                if let Some(limit) = state.faults.now().control_idle_timeout {
                    // Only input counts once the session is in a lobby: heartbeats alone do not
                    // keep the control peer alive (the ENet-timeout hypothesis of seed 001).
                    let joined = state.session(id).and_then(|s| s.lobby.and(s.joined));
                    if let Some(joined) = joined {
                        let joined_ms = joined.saturating_duration_since(started).as_millis() as u64;
                        let since = last_input.load(Ordering::Relaxed).max(joined_ms);
                        if ms_since_start().saturating_sub(since) >= limit.as_millis() as u64 {
                            break End::ControlIdle;
                        }
                    }
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    reader.abort();
    drop(rx);
    drop(wr);
    tracing::debug!("session {id}: stream from {peer} ended: {end:?}");
    match end {
        End::SessionGone => {}
        // The session may have been stopped meanwhile (e.g. /cancel raced the close), or a
        // resume may have moved its control to a newer connection: Wolf only reports a
        // disconnect for the peer that controls a session it still has.
        _ if state.is_control(id, control) => state.control_lost(id, peer),
        _ if state.session(id).is_some() => tracing::debug!("session {id}: superseded stream from {peer} ended; the session stays"),
        _ => {}
    }
}

fn encoder_config() -> EncoderConfig {
    EncoderConfig::new()
        .bitrate(BitRate::from_bps(wire::BITRATE_BPS))
        .max_frame_rate(FrameRate::from_hz(wire::FPS as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        // openh264 only honours the bitrate with frame skipping on; our pictures are simple
        // enough that it never needs to skip.
        .skip_frames(true)
        // Two cores are shared by every session and the browser.
        .num_threads(1)
}

/// Produce access units for session `id` until the session is gone, `stop` is set, or the
/// connection stops taking frames. Runs on its own thread: encoding is CPU-bound and would
/// starve the async runtime.
fn encode_loop(id: u64, state: &WolfState, tx: &mpsc::Sender<Vec<u8>>, stop: &AtomicBool) {
    state.create_pipeline(id);
    let mut encoder = match Encoder::with_api_config(OpenH264API::from_source(), encoder_config()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("session {id}: openh264 encoder: {e}");
            return;
        }
    };
    let period = Duration::from_secs_f64(1.0 / f64::from(wire::FPS));
    let mut next = Instant::now();
    let mut frame: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(spec) = state.picture_for(id) else { return };
        let pic = picture::render(&spec, wire::WIDTH, wire::HEIGHT);
        if frame.is_multiple_of(wire::IDR_INTERVAL_FRAMES) {
            encoder.force_intra_frame();
        }
        let au = match encoder.encode(&pic) {
            Ok(bs) => bs.to_vec(),
            Err(e) => {
                tracing::error!("session {id}: encode failed: {e}");
                return;
            }
        };
        frame += 1;
        if !au.is_empty() && tx.blocking_send(au).is_err() {
            return;
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Fell behind (e.g. a stalled writer): restart the clock instead of bursting.
            next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfile::{Captured, LogFile, Style};
    use crate::wolf::input::Packet;
    use helix_e2e_shared::stamp;
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;
    use tokio::io::AsyncWriteExt;

    async fn wolf_with_session() -> (Arc<WolfState>, Captured, u64, SocketAddr) {
        wolf_with_faults(&[]).await
    }

    async fn wolf_with_faults(faults: &[&str]) -> (Arc<WolfState>, Captured, u64, SocketAddr) {
        let log = Captured::default();
        let faults: Vec<crate::faults::Fault> = faults.iter().map(|f| f.parse().unwrap()).collect();
        let faults = crate::faults::FaultSet::new(&faults);
        let state = Arc::new(WolfState::with_faults(LogFile::new(Box::new(log.clone()), Style::Wolf), faults));
        let der = b"test certificate".to_vec();
        state.pair(der.clone());
        let client = state.identify(&der).expect("paired");
        let session = state.launch(&client, "uid-1", "127.0.0.1", 320, 180, 30).expect("launched");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::clone(&state)));
        (state, log, session.id, addr)
    }

    async fn connect(addr: SocketAddr, session: &str) -> (BufReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf, SocketAddr) {
        let sock = TcpStream::connect(addr).await.unwrap();
        let local = sock.local_addr().unwrap();
        let (rd, mut wr) = sock.into_split();
        wire::write_hello(&mut wr, session).await.unwrap();
        (BufReader::new(rd), wr, local)
    }

    /// NAL unit types of an Annex-B access unit (7 = SPS, 8 = PPS, 5 = IDR slice).
    fn nal_types(au: &[u8]) -> Vec<u8> {
        // Each unit from `nal_units` starts with `00 00 01`; the header byte follows the 01.
        openh264::nal_units(au).filter_map(|n| n.iter().position(|&b| b == 1).and_then(|p| n.get(p + 1)).map(|h| h & 0x1f)).collect()
    }

    async fn next_frame<R: tokio::io::AsyncRead + Unpin>(rd: &mut R) -> Option<wire::Frame> {
        tokio::time::timeout(Duration::from_secs(2), wire::read_frame(rd)).await.expect("no frame within 2 s").ok().flatten()
    }

    #[tokio::test]
    async fn video_flows_as_h264_with_stamps_and_ends_when_the_session_stops() {
        let (state, log, id, addr) = wolf_with_session().await;
        let (mut rd, mut wr, _) = connect(addr, &id.to_string()).await;
        let hb = tokio::spawn(async move {
            loop {
                if wire::write_frame(&mut wr, wire::HEARTBEAT, &[]).await.is_err() {
                    return;
                }
                tokio::time::sleep(wire::HEARTBEAT_INTERVAL).await;
            }
        });
        let mut decoder = Decoder::new().unwrap();
        let mut stamps = Vec::new();
        let t0 = Instant::now();
        for i in 0..45 {
            let f = next_frame(&mut rd).await.expect("stream ended early");
            assert_eq!(f.kind, wire::VIDEO);
            let types = nal_types(&f.payload);
            if i == 0 || i == 30 {
                for t in [7, 8, 5] {
                    assert!(types.contains(&t), "frame {i} lacks NAL type {t}: {types:?}");
                }
            }
            if let Some(yuv) = decoder.decode(&f.payload).unwrap() {
                let (w, h) = yuv.dimensions();
                let stride = yuv.strides().0;
                let y: Vec<u8> = (0..h).flat_map(|r| yuv.y()[r * stride..r * stride + w].to_vec()).collect();
                stamps.push(stamp::decode(&y, w, h).expect("stamp"));
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        assert!((1.0..2.5).contains(&elapsed), "45 frames took {elapsed:.2} s, not ~30 fps");
        assert!(stamps.len() >= 40);
        assert!(stamps.iter().all(|s| s.tag == stamp::WOLF_UI_TAG));
        assert!(stamps.windows(2).all(|w| w[1].counter >= w[0].counter), "{stamps:?}");
        assert!(stamps.last().unwrap().counter > stamps[0].counter);

        assert!(state.stop_session(id));
        // Frames already queued may still arrive; then the stream closes.
        let closed = tokio::time::timeout(Duration::from_secs(2), async { while let Ok(Some(_)) = wire::read_frame(&mut rd).await {} }).await;
        assert!(closed.is_ok(), "stream stayed open after the session stopped");
        hb.abort();
        assert!(!log.text().contains("[ENET] disconnected client"), "{}", log.text());
    }

    #[tokio::test]
    async fn unknown_session_is_closed_without_video() {
        let (_state, _log, id, addr) = wolf_with_session().await;
        let (mut rd, _wr, _) = connect(addr, &id.wrapping_add(1).to_string()).await;
        assert_eq!(next_frame(&mut rd).await, None);
    }

    #[tokio::test]
    async fn missing_heartbeats_stop_the_session_with_an_enet_disconnect() {
        let (state, log, id, addr) = wolf_with_session().await;
        let (mut rd, mut wr, local) = connect(addr, &id.to_string()).await;
        wire::write_frame(&mut wr, wire::INPUT, &Packet::MouseMoveRel { dx: 1, dy: 0 }.encode()).await.unwrap();
        let t0 = Instant::now();
        while wire::read_frame(&mut rd).await.ok().flatten().is_some() {
            assert!(t0.elapsed() < Duration::from_secs(6), "no timeout after 6 s");
        }
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(2900), "closed after {waited:?}, before the 3 s timeout");
        assert!(state.session(id).is_none());
        let expected = format!("DEBUG | [ENET] disconnected client: 127.0.0.1:{}", local.port());
        assert!(log.text().contains(&expected), "{}", log.text());
    }

    #[tokio::test]
    async fn a_dropped_connection_stops_the_session() {
        let (state, log, id, addr) = wolf_with_session().await;
        let (mut rd, mut wr, local) = connect(addr, &id.to_string()).await;
        wire::write_frame(&mut wr, wire::HEARTBEAT, &[]).await.unwrap();
        assert!(next_frame(&mut rd).await.is_some());
        wr.shutdown().await.unwrap();
        let t0 = Instant::now();
        while state.session(id).is_some() {
            assert!(t0.elapsed() < Duration::from_secs(1), "session survived its control peer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(log.text().contains(&format!("[ENET] disconnected client: 127.0.0.1:{}", local.port())));
    }

    #[tokio::test]
    async fn a_resumed_session_belongs_to_its_newest_connection() {
        let (state, log, id, addr) = wolf_with_session().await;
        let (mut rd1, mut wr1, _) = connect(addr, &id.to_string()).await;
        wire::write_frame(&mut wr1, wire::HEARTBEAT, &[]).await.unwrap();
        assert!(next_frame(&mut rd1).await.is_some());
        // A resume: a second connection to the same session takes the control over.
        let (mut rd2, wr2, local2) = connect(addr, &id.to_string()).await;
        let beat = keep_alive(wr2, None);
        assert!(next_frame(&mut rd2).await.is_some());
        wr1.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(state.session(id).is_some(), "the superseded connection's end stopped the session");
        assert!(!log.text().contains("[ENET] disconnected client"), "{}", log.text());
        assert!(next_frame(&mut rd2).await.is_some(), "the new connection still gets video");
        // Its own end is the session's disconnect.
        beat.abort();
        drop(rd2);
        let t0 = Instant::now();
        while state.session(id).is_some() {
            assert!(t0.elapsed() < Duration::from_secs(5), "session survived its control peer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(log.text().contains(&format!("[ENET] disconnected client: 127.0.0.1:{}", local2.port())), "{}", log.text());
    }

    /// Heartbeats every interval, plus a mouse move every `input_every` when given.
    fn keep_alive(mut wr: tokio::net::tcp::OwnedWriteHalf, input_every: Option<Duration>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_input = Instant::now();
            loop {
                if wire::write_frame(&mut wr, wire::HEARTBEAT, &[]).await.is_err() {
                    return;
                }
                if input_every.is_some_and(|every| last_input.elapsed() >= every) {
                    last_input = Instant::now();
                    if wire::write_frame(&mut wr, wire::INPUT, &Packet::MouseMoveRel { dx: 1, dy: 0 }.encode()).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(wire::HEARTBEAT_INTERVAL).await;
            }
        })
    }

    fn join_new_lobby(state: &WolfState, id: u64) -> String {
        let lid = state.create_lobby(&serde_json::json!({"name": "Agent 0001", "profile_id": "helix-sessions"})).unwrap();
        state.join_lobby(&lid, id, None).unwrap();
        lid
    }

    #[tokio::test]
    async fn control_idle_timeout_drops_a_lobby_session_without_input_but_not_one_with_input() {
        let (state, log, id, addr) = wolf_with_faults(&["control-idle-timeout=1"]).await;
        let (mut rd, wr, local) = connect(addr, &id.to_string()).await;
        let hb = keep_alive(wr, None);
        assert!(next_frame(&mut rd).await.is_some());
        // Outside a lobby heartbeats suffice.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(state.session(id).is_some(), "dropped before joining a lobby");
        let mut events = state.subscribe();
        let lid = join_new_lobby(&state, id);
        let t0 = Instant::now();
        while wire::read_frame(&mut rd).await.ok().flatten().is_some() {
            assert!(t0.elapsed() < Duration::from_secs(4), "no control timeout");
        }
        let after = t0.elapsed();
        assert!(after >= Duration::from_millis(900), "dropped {after:?} after the join, before the 1 s limit");
        hb.abort();
        assert!(state.session(id).is_none());
        let text = log.text();
        let enet = text.find(&format!("DEBUG | [ENET] disconnected client: 127.0.0.1:{}", local.port())).expect("ENet line");
        let left = text.find(&format!("[LOBBY] Moonlight stream {id} over, leaving lobby {lid}")).expect("leave line");
        assert!(text.find(&format!("joining lobby {lid}")).unwrap() < enet && enet < left, "{text}");
        let mut names = Vec::new();
        while let Ok((name, _)) = events.try_recv() {
            names.push(name);
        }
        assert!(names.iter().any(|n| n.ends_with("::StopStreamEvent")), "{names:?}");
        assert!(state.lobbies()[0].connected_sessions.is_empty());

        // Real input after the join keeps the same session alive past the limit.
        let (state, _log, id, addr) = wolf_with_faults(&["control-idle-timeout=1"]).await;
        let (mut rd, wr, _) = connect(addr, &id.to_string()).await;
        let hb = keep_alive(wr, Some(Duration::from_millis(400)));
        join_new_lobby(&state, id);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(2500) {
            assert!(next_frame(&mut rd).await.is_some(), "stream closed despite input");
        }
        assert!(state.session(id).is_some());
        hb.abort();
    }

    #[tokio::test]
    async fn orphan_wolf_session_outlives_its_dropped_control_peer() {
        let (state, log, id, addr) = wolf_with_faults(&["orphan-wolf-session"]).await;
        let (mut rd, mut wr, _) = connect(addr, &id.to_string()).await;
        wire::write_frame(&mut wr, wire::HEARTBEAT, &[]).await.unwrap();
        assert!(next_frame(&mut rd).await.is_some());
        wr.shutdown().await.unwrap();
        drop(rd);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(state.session(id).is_some(), "session stopped although the disconnect should go unnoticed");
        assert!(!log.text().contains("[ENET] disconnected client"), "{}", log.text());
    }

    #[tokio::test]
    async fn frames_round_trip_through_the_wire_format() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let w = tokio::spawn(async move {
            wire::write_hello(&mut a, "42").await.unwrap();
            wire::write_frame(&mut a, wire::INPUT, &[1, 2, 3]).await.unwrap();
            wire::write_frame(&mut a, wire::HEARTBEAT, &[]).await.unwrap();
        });
        let mut b2 = BufReader::new(&mut b);
        assert_eq!(wire::read_hello(&mut b2).await.unwrap().session_id, "42");
        assert_eq!(wire::read_frame(&mut b2).await.unwrap(), Some(wire::Frame { kind: wire::INPUT, payload: vec![1, 2, 3] }));
        assert_eq!(wire::read_frame(&mut b2).await.unwrap(), Some(wire::Frame { kind: wire::HEARTBEAT, payload: vec![] }));
        w.await.unwrap();
        assert_eq!(wire::read_frame(&mut b2).await.unwrap(), None);
    }
}
