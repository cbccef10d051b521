//! End-to-end tests of the streamer against a real Wolf state and stream, with a webrtc-rs peer
//! playing the browser.
//!
//! Wolf here is the stand-in's own Moonlight endpoint and stream server on a real `WolfState`.
//! Everything runs on loopback.
//!
//! Why one file of over 400 lines: it is test code only (a Wolf and a browser-like webrtc-rs peer);
//! its length is its cases.

use super::ipc::{ServerToStreamer, StreamerInit, StreamerToServer};
use super::rtc::{self, PeerOptions, INPUT_CHANNELS};
use super::session::{self, Options, StopReason};
use crate::logfile::{Captured, LogFile, Style};
use crate::wolf::moonlight;
use crate::wolf::state::WolfState;
use crate::wolf::stream;
use helix_e2e_shared::h264::Decode;
use helix_e2e_shared::stamp::{self, Stamp};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

#[derive(Clone)]
pub(super) struct TestWolf {
    pub(super) state: Arc<WolfState>,
    log: Captured,
    pub(super) http: String,
}

pub(super) async fn start_wolf() -> TestWolf {
    let log = Captured::default();
    let state = Arc::new(WolfState::new(LogFile::new(Box::new(log.clone()), Style::Wolf)));
    let stream_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream_port = stream_listener.local_addr().unwrap().port();
    tokio::spawn(stream::serve(stream_listener, Arc::clone(&state)));
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = http_listener.local_addr().unwrap().to_string();
    tokio::spawn(moonlight::serve(http_listener, Arc::clone(&state), stream_port));
    TestWolf { state, log, http }
}

/// The streamer in-process, with a webrtc-rs peer that behaves like the browser page.
struct Harness {
    wolf: TestWolf,
    to_streamer: mpsc::UnboundedSender<ServerToStreamer>,
    from_streamer: mpsc::UnboundedReceiver<StreamerToServer>,
    streamer: tokio::task::JoinHandle<StopReason>,
    browser: Arc<RTCPeerConnection>,
    inputs: Vec<Arc<RTCDataChannel>>,
    general_texts: mpsc::UnboundedReceiver<String>,
    stamps: mpsc::UnboundedReceiver<Stamp>,
    /// Every WebSocket message the streamer sent, in order.
    sent: Vec<Value>,
    /// Browser-side candidates not on loopback (there must be none).
    foreign_candidates: Arc<Mutex<Vec<String>>>,
    cert_der: Vec<u8>,
}

fn browser_ws(msg: Value) -> ServerToStreamer {
    ServerToStreamer::WebSocket(msg)
}

impl Harness {
    async fn start() -> Harness {
        let ck = rcgen::generate_simple_self_signed(vec!["moonlight-test".into()]).unwrap();
        Self::start_with(start_wolf().await, &ck).await
    }

    /// A streamer for `cert` against an existing Wolf (several streamers may share one).
    async fn start_with(wolf: TestWolf, ck: &rcgen::CertifiedKey) -> Harness {
        let http = wolf.http.clone();
        Self::start_against(wolf, ck, http).await
    }

    /// As `start_with`, but the streamer is told Wolf's Moonlight endpoint is at `wolf_http`.
    async fn start_against(wolf: TestWolf, ck: &rcgen::CertifiedKey, wolf_http: String) -> Harness {
        let (stdin_test, stdin_streamer) = tokio::io::duplex(1 << 16);
        let (stdout_streamer, stdout_test) = tokio::io::duplex(1 << 16);
        let streamer =
            tokio::spawn(async move { session::run_with(stdin_streamer, stdout_streamer, Options { loopback_only: true }).await.expect("streamer IPC") });

        let (to_streamer, mut rx) = mpsc::unbounded_channel::<ServerToStreamer>();
        tokio::spawn(async move {
            let mut stdin_test = stdin_test;
            while let Some(m) = rx.recv().await {
                let mut line = serde_json::to_vec(&m).unwrap();
                line.push(b'\n');
                if stdin_test.write_all(&line).await.is_err() {
                    return;
                }
            }
        });
        let (out_tx, from_streamer) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout_test).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let msg: StreamerToServer = serde_json::from_str(&l).unwrap_or_else(|e| panic!("streamer wrote non-IPC line {l:?}: {e}"));
                if out_tx.send(msg).is_err() {
                    return;
                }
            }
        });

        to_streamer
            .send(ServerToStreamer::Init(StreamerInit {
                session_id: "agent-ses_test-1".into(),
                client_unique_id: Some("helix-agent-ses_test-lobby-1".into()),
                mode: "create".into(),
                wolf_http,
                app_id: wolf.state.app_id.clone(),
                cert_pem: ck.cert.pem(),
                key_pem: ck.key_pair.serialize_pem(),
                width: 1280,
                height: 720,
                fps: 60,
                bitrate: 500,
                ice_servers: vec![],
                port_range: None,
                faults: Default::default(),
            }))
            .unwrap();

        let browser = rtc::new_peer(&PeerOptions { loopback_only: true, ..Default::default() }).await.unwrap();
        let mut inputs = Vec::new();
        for label in INPUT_CHANNELS {
            inputs.push(browser.create_data_channel(label, None).await.unwrap());
        }
        let (gt_tx, general_texts) = mpsc::unbounded_channel();
        browser.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
            let gt_tx = gt_tx.clone();
            Box::pin(async move {
                assert_eq!(dc.label(), rtc::GENERAL_CHANNEL);
                dc.on_message(Box::new(move |m| {
                    let _ = gt_tx.send(String::from_utf8_lossy(&m.data).into_owned());
                    Box::pin(async {})
                }));
            })
        }));
        let (stamp_tx, stamps) = mpsc::unbounded_channel();
        browser.on_track(Box::new(move |track, _, _| {
            let stamp_tx = stamp_tx.clone();
            Box::pin(async move {
                assert_eq!(track.codec().payload_type, rtc::H264_PAYLOAD_TYPE);
                tokio::spawn(helix_e2e_shared::h264::decode_track(track, Decode::Every, move |f| {
                    if let Some(s) = f.picture.and_then(|p| stamp::decode(&p.luma, p.width, p.height)) {
                        let _ = stamp_tx.send(s);
                    }
                }));
            })
        }));
        let ipc = to_streamer.clone();
        let foreign_candidates = Arc::new(Mutex::new(Vec::new()));
        let foreign = Arc::clone(&foreign_candidates);
        browser.on_ice_candidate(Box::new(move |c| {
            let (ipc, foreign) = (ipc.clone(), Arc::clone(&foreign));
            Box::pin(async move {
                if let Some(c) = c {
                    let init = c.to_json().unwrap();
                    if !init.candidate.contains(" 127.0.0.1 ") {
                        foreign.lock().unwrap().push(init.candidate.clone());
                    }
                    let _ = ipc.send(browser_ws(rtc::candidate_message(&init, "0")));
                }
            })
        }));

        Harness {
            wolf,
            to_streamer,
            from_streamer,
            streamer,
            browser,
            inputs,
            general_texts,
            stamps,
            sent: Vec::new(),
            foreign_candidates,
            cert_der: ck.cert.der().to_vec(),
        }
    }

    /// Act on the streamer's messages like the page does, until `done` says stop.
    async fn pump(&mut self, within: Duration, mut done: impl FnMut(&Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.from_streamer.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out; streamer sent so far: {:#?}", self.sent))
                .expect("streamer output closed");
            let StreamerToServer::WebSocket(msg) = msg else { panic!("IPC Stop before expected; sent: {:#?}", self.sent) };
            self.sent.push(msg.clone());
            if let Some(desc) = msg.pointer("/Signaling/Description") {
                let sdp = desc["sdp"].as_str().unwrap().to_owned();
                if desc["ty"] == "answer" {
                    self.browser.set_remote_description(RTCSessionDescription::answer(sdp).unwrap()).await.unwrap();
                } else {
                    self.browser.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                    let answer = self.browser.create_answer(None).await.unwrap();
                    self.browser.set_local_description(answer.clone()).await.unwrap();
                    self.to_streamer.send(browser_ws(json!({"Signaling": {"Description": {"ty": "answer", "sdp": answer.sdp}}}))).unwrap();
                }
            } else if let Some(c) = msg.pointer("/Signaling/AddIceCandidate") {
                let c = rtc::parse_candidate(c).expect("candidate");
                assert!(c.candidate.starts_with("candidate:"), "{}", c.candidate);
                assert!(c.candidate.contains(" 127.0.0.1 "), "non-loopback streamer candidate: {}", c.candidate);
                self.browser.add_ice_candidate(c).await.unwrap();
            } else if msg == json!({"StageStarting": {"stage": session::STAGE_NEGOTIATION}}) {
                let offer = self.browser.create_offer(None).await.unwrap();
                self.to_streamer.send(browser_ws(json!({"Signaling": {"Description": {"ty": "offer", "sdp": offer.sdp}}}))).unwrap();
                self.browser.set_local_description(offer).await.unwrap();
            }
            if done(&msg) {
                return;
            }
        }
    }

    /// Connect all the way to `ConnectionComplete` and return Wolf's session id from it.
    async fn connect(&mut self) -> u64 {
        self.pump(Duration::from_secs(20), |m| m.get("ConnectionComplete").is_some()).await;
        let cc = self.sent.last().unwrap()["ConnectionComplete"].clone();
        assert_eq!(*self.foreign_candidates.lock().unwrap(), Vec::<String>::new(), "browser peer gathered off loopback");
        assert_eq!(cc["width"], 320);
        assert_eq!(cc["height"], 180);
        assert_eq!(cc["capabilities"]["touch"], false);
        cc["client_id"].as_str().expect("client_id").parse().expect("digits")
    }

    /// Keep answering signalling while waiting for `n` decoded stamps.
    async fn stamps(&mut self, n: usize, within: Duration) -> Vec<Stamp> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "only {} stamps decoded in {within:?}; streamer sent {:#?}", out.len(), self.sent);
            tokio::select! {
                s = self.stamps.recv() => out.push(s.expect("track ended")),
                m = self.from_streamer.recv() => {
                    match m.expect("streamer output closed") {
                        StreamerToServer::WebSocket(m) => {
                            self.sent.push(m.clone());
                            if let Some(c) = m.pointer("/Signaling/AddIceCandidate") {
                                let _ = self.browser.add_ice_candidate(rtc::parse_candidate(c).unwrap()).await;
                            }
                        }
                        StreamerToServer::Stop => panic!("streamer stopped; sent {:#?}", self.sent),
                    }
                }
                _ = tokio::time::sleep(left) => {}
            }
        }
        out
    }

    /// Read until IPC `Stop`; everything sent on the way is appended to `sent`.
    async fn until_stop(&mut self) -> StopReason {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(15), self.from_streamer.recv()).await.expect("no IPC Stop within 15 s");
            match m.expect("output closed before Stop") {
                StreamerToServer::WebSocket(m) => self.sent.push(m),
                StreamerToServer::Stop => break,
            }
        }
        let streamer = &mut self.streamer;
        tokio::time::timeout(Duration::from_secs(5), streamer).await.expect("run_with did not return after Stop").unwrap()
    }

    fn stages(&self) -> Vec<String> {
        self.sent
            .iter()
            .filter_map(|m| {
                let (k, v) = m.as_object()?.iter().next()?;
                (k.starts_with("Stage")).then(|| format!("{k} {}", v["stage"].as_str().unwrap_or("")))
            })
            .collect()
    }
}

fn assert_stamps_move(stamps: &[Stamp], tag: u16) {
    assert!(stamps.iter().all(|s| s.tag == tag), "wrong tag: {stamps:?}");
    assert!(stamps.last().unwrap().counter != stamps[0].counter, "picture frozen: {stamps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_receives_wolf_video_and_ipc_stop_runs_the_cascade() {
    let mut h = Harness::start().await;
    let session_id = h.connect().await;

    let stamps = h.stamps(15, Duration::from_secs(15)).await;
    assert_stamps_move(&stamps, stamp::WOLF_UI_TAG);

    assert_eq!(
        h.stages(),
        [
            "StageStarting Setup WebRTC Peer",
            "StageComplete Setup WebRTC Peer",
            "StageStarting WebRTC Peer Negotiation",
            "StageComplete WebRTC Peer Negotiation",
            "StageStarting Moonlight Stream",
            "StageComplete Moonlight Stream",
        ]
    );
    let pos = |pred: &dyn Fn(&Value) -> bool| h.sent.iter().position(pred).expect("message missing");
    let config = pos(&|m| m.get("WebRtcConfig").is_some());
    assert_eq!(h.sent[config], json!({"WebRtcConfig": {"ice_servers": []}}));
    let answer = pos(&|m| m.pointer("/Signaling/Description/ty") == Some(&json!("answer")));
    let first_candidate = pos(&|m| m.pointer("/Signaling/AddIceCandidate").is_some());
    assert!(answer < first_candidate, "a candidate went out before the answer");
    let offer = pos(&|m| m.pointer("/Signaling/Description/ty") == Some(&json!("offer")));
    let moonlight_done = pos(&|m| m == &json!({"StageComplete": {"stage": session::STAGE_MOONLIGHT}}));
    assert!(moonlight_done < offer && offer < h.sent.len() - 1);

    // The session Wolf streams is the one ConnectionComplete names, launched for our certificate.
    let wolf_session = h.wolf.state.session(session_id).expect("Wolf session");
    assert_eq!(wolf_session.client_unique_id, "helix-agent-ses_test-lobby-1");
    assert_eq!((wolf_session.width, wolf_session.height, wolf_session.fps), (1280, 720, 60));
    assert_eq!(h.wolf.state.identify(&h.cert_der).map(|c| c.client_id), Some(session_id));

    // Input reaches Wolf's stream without disturbing it.
    h.inputs[3].send(&bytes::Bytes::from_static(&[0, 0, 5, 255, 251])).await.unwrap();
    let more = h.stamps(5, Duration::from_secs(5)).await;
    assert!(more.iter().all(|s| s.tag == stamp::WOLF_UI_TAG));

    let before_stop = h.sent.len();
    h.to_streamer.send(ServerToStreamer::Stop).unwrap();
    let reason = h.until_stop().await;
    assert_eq!(reason, StopReason::IpcStop);
    assert!(!h.sent[before_stop..].contains(&json!("PeerDisconnect")), "PeerDisconnect sent on an IPC Stop: {:?}", &h.sent[before_stop..]);
    let terminated = tokio::time::timeout(Duration::from_secs(3), h.general_texts.recv()).await.expect("nothing on general");
    assert_eq!(terminated.as_deref(), Some("\"ConnectionTerminated\""), "JSON, as the browser client parses it");
    // Whether Wolf notices the dropped stream (ENet disconnect) or the /cancel first is a race,
    // as in the real stack; either way the session must be gone and stopped exactly once.
    assert!(h.wolf.state.session(session_id).is_none(), "Wolf session survived the stop cascade");
    let log = h.wolf.log.text();
    assert_eq!(log.matches(&format!("Stopping Wolf-UI container Wolf-UI_{session_id}")).count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wolf_ending_the_session_tells_the_browser_and_stops() {
    let mut h = Harness::start().await;
    let session_id = h.connect().await;
    let stamps = h.stamps(3, Duration::from_secs(15)).await;
    assert!(stamps.iter().all(|s| s.tag == stamp::WOLF_UI_TAG));

    let before = h.sent.len();
    assert!(h.wolf.state.stop_session(session_id));
    let reason = h.until_stop().await;
    assert!(matches!(reason, StopReason::WolfStreamClosed(_)), "{reason:?}");
    assert!(h.sent[before..].contains(&json!("PeerDisconnect")), "{:?}", &h.sent[before..]);
    let terminated = tokio::time::timeout(Duration::from_secs(3), h.general_texts.recv()).await.expect("nothing on general");
    assert_eq!(terminated.as_deref(), Some("\"ConnectionTerminated\""), "JSON, as the browser client parses it");
    // The session was already gone, so the cascade's /cancel finds nothing, as in Wolf.
    assert!(h.wolf.log.text().contains("Received resume event from an unregistered session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_streamer_with_the_same_certificate_resumes_and_its_stop_ends_the_first() {
    let ck = rcgen::generate_simple_self_signed(vec!["moonlight-shared".into()]).unwrap();
    let wolf = start_wolf().await;
    let mut first = Harness::start_with(wolf.clone(), &ck).await;
    let session_id = first.connect().await;
    first.stamps(3, Duration::from_secs(15)).await;

    let mut second = Harness::start_with(wolf.clone(), &ck).await;
    assert_eq!(second.connect().await, session_id, "the second streamer should resume the same Wolf session");
    assert_stamps_move(&second.stamps(10, Duration::from_secs(15)).await, stamp::WOLF_UI_TAG);
    assert_eq!(wolf.state.sessions().len(), 1);

    // The second tab leaves: its cascade cancels the shared session, and the first tab loses its
    // stream too (the certificate-collision symptom).
    second.to_streamer.send(ServerToStreamer::Stop).unwrap();
    assert_eq!(second.until_stop().await, StopReason::IpcStop);
    assert!(wolf.state.session(session_id).is_none());
    let reason = first.until_stop().await;
    assert!(matches!(reason, StopReason::WolfStreamClosed(_)), "{reason:?}");
    assert!(first.sent.contains(&json!("PeerDisconnect")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_wolf_fails_the_launch_and_runs_the_cascade() {
    let ck = rcgen::generate_simple_self_signed(vec!["moonlight-nowolf".into()]).unwrap();
    // A port that was just free: nothing answers there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let mut h = Harness::start_against(start_wolf().await, &ck, closed).await;
    h.pump(Duration::from_secs(20), |m| m == &json!({"StageStarting": {"stage": session::STAGE_MOONLIGHT}})).await;
    let reason = h.until_stop().await;
    assert!(matches!(reason, StopReason::LaunchFailed { already_streaming: false, .. }), "{reason:?}");
    assert!(h.sent.contains(&json!("PeerDisconnect")), "{:?}", h.sent);
    assert!(!h.sent.iter().any(|m| m.get("ConnectionComplete").is_some()));
    assert!(!h.stages().contains(&format!("StageComplete {}", session::STAGE_MOONLIGHT)));
}

/// A stop that arrives while the Moonlight stream is being started (here: Wolf accepts the
/// pairing request and never answers) ends the streamer at once. Before, the event loop sat in
/// the start until it finished, which on a peer the browser had just closed could be never, and
/// the Wolf session it had launched stayed behind (F7 on a clean stand-in, 1 default suite in 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_the_start_is_not_held_up_by_it() {
    let ck = rcgen::generate_simple_self_signed(vec!["moonlight-stall".into()]).unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    // Accept connections and hold them open without a byte of answer.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let mut h = Harness::start_against(start_wolf().await, &ck, addr).await;
    h.pump(Duration::from_secs(20), |m| m == &json!({"StageStarting": {"stage": session::STAGE_MOONLIGHT}})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    h.to_streamer.send(ServerToStreamer::Stop).unwrap();
    // The cascade starts by telling the browser on `general`; its /cancel then meets the same
    // silent Wolf and gives up after its step timeout, which is the cascade's business.
    let told = tokio::time::timeout(Duration::from_secs(10), h.general_texts.recv()).await.expect("nothing on general after Stop");
    assert_eq!(told.as_deref(), Some("\"ConnectionTerminated\""));
    assert!(asked.elapsed() < Duration::from_secs(1), "the stop waited {:?} for the start", asked.elapsed());
    let reason = h.until_stop().await;
    assert_eq!(reason, StopReason::IpcStop);
    assert!(!h.sent.iter().any(|m| m.get("ConnectionComplete").is_some()));
    held.abort();
}

#[tokio::test]
async fn stdin_eof_before_init_still_writes_stop() {
    let (stdin_test, stdin_streamer) = tokio::io::duplex(1024);
    let (stdout_streamer, stdout_test) = tokio::io::duplex(1024);
    drop(stdin_test);
    let reason = session::run_with(stdin_streamer, stdout_streamer, Options::default()).await.unwrap();
    assert_eq!(reason, StopReason::StdinClosed);
    let mut lines = BufReader::new(stdout_test).lines();
    let mut got = Vec::new();
    while let Ok(Some(l)) = lines.next_line().await {
        got.push(serde_json::from_str::<Value>(&l).unwrap());
    }
    assert_eq!(got, vec![json!({"WebSocket": "PeerDisconnect"}), json!("Stop")]);
}
