//! A check that real Chromium decodes the streamer's H.264, with moonlight-web's signalling order.
//!
//! webrtc-rs talking to webrtc-rs proves little about the browser: Chromium offers only data
//! channels, answers a server-side renegotiation, hides its host candidates behind mDNS and
//! decodes with its own H.264 stack. This test puts a bare page (no viewer code) in front of the
//! streamer through a tiny WebSocket bridge and reads the stamp back from the page's own 64x36
//! canvas sample, exactly the path the driver's probe uses.
//!
//! It is `#[ignore]`d: it needs Chromium and must run inside a network namespace of the project's
//! own (media must not touch the host's interfaces), e.g.
//! `ip netns exec media-net cargo test --lib chromium_check -- --ignored`.

use super::ipc::{ServerToStreamer, StreamerInit, StreamerToServer};
use super::session::{self, Options, StopReason};
use crate::frames::stamp;
use crate::timeline::{LUMA_H, LUMA_W};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const PAGE: &str = r#"<!doctype html><html><body><video id="v" autoplay muted playsinline></video><script>
const report = (o) => fetch('/result', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(o)});
const errors = [], general = [], stages = [];
const ws = new WebSocket(`ws://${location.host}/ws`);
const pc = new RTCPeerConnection({iceServers: []});
for (const l of ['keyboard', 'mouseClicks', 'mouseAbsolute', 'mouseRelative', 'touch', 'controllers']) pc.createDataChannel(l);
const opened = [];
pc.ondatachannel = (e) => { opened.push(e.channel.label); e.channel.onmessage = (m) => general.push(String(m.data)); };
const video = document.getElementById('v');
pc.ontrack = (e) => { video.srcObject = e.streams[0] || new MediaStream([e.track]); };
pc.onicecandidate = (e) => {
  if (e.candidate && e.candidate.candidate) ws.send(JSON.stringify({Signaling: {AddIceCandidate: {candidate: e.candidate.candidate,
    sdp_mid: e.candidate.sdpMid, sdp_mline_index: e.candidate.sdpMLineIndex, username_fragment: e.candidate.usernameFragment}}}));
};
let chain = Promise.resolve();
async function handle(msg) {
  if (msg.StageStarting || msg.StageComplete) stages.push(JSON.stringify(msg));
  if (msg.StageStarting && msg.StageStarting.stage === 'WebRTC Peer Negotiation') {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    ws.send(JSON.stringify({Signaling: {Description: {ty: 'offer', sdp: offer.sdp}}}));
  } else if (msg.Signaling && msg.Signaling.Description) {
    const d = msg.Signaling.Description;
    await pc.setRemoteDescription({type: d.ty, sdp: d.sdp});
    if (d.ty === 'offer') {
      const a = await pc.createAnswer();
      await pc.setLocalDescription(a);
      ws.send(JSON.stringify({Signaling: {Description: {ty: 'answer', sdp: a.sdp}}}));
    }
  } else if (msg.Signaling && msg.Signaling.AddIceCandidate) {
    const c = msg.Signaling.AddIceCandidate;
    await pc.addIceCandidate({candidate: c.candidate, sdpMid: c.sdp_mid, sdpMLineIndex: c.sdp_mline_index});
  }
}
ws.onmessage = (ev) => { const msg = JSON.parse(ev.data); chain = chain.then(() => handle(msg)).catch((e) => errors.push(String(e))); };
const canvas = document.createElement('canvas'); canvas.width = 64; canvas.height = 36;
const ctx = canvas.getContext('2d', {willReadFrequently: true});
async function sample() {
  let decoded = 0;
  (await pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') decoded = r.framesDecoded; });
  const luma = [];
  if (video.videoWidth) {
    ctx.drawImage(video, 0, 0, 64, 36);
    const px = ctx.getImageData(0, 0, 64, 36).data;
    for (let i = 0; i < px.length; i += 4) luma.push(Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
  }
  return {decoded, width: video.videoWidth, height: video.videoHeight, luma, state: pc.connectionState};
}
setTimeout(async () => {
  const a = await sample();
  await new Promise((r) => setTimeout(r, 1000));
  const b = await sample();
  ws.close();
  await new Promise((r) => setTimeout(r, 1500));
  report({a, b, errors, general, stages, opened});
}, 8000);
</script></body></html>"#;

#[derive(Clone)]
struct Bridge {
    result: Arc<Mutex<Option<tokio::sync::oneshot::Sender<Value>>>>,
    stop_reason: Arc<Mutex<Option<tokio::sync::oneshot::Sender<StopReason>>>>,
    init: StreamerInit,
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn result(State(b): State<Bridge>, Json(v): Json<Value>) -> &'static str {
    if let Some(tx) = b.result.lock().unwrap().take() {
        let _ = tx.send(v);
    }
    "ok"
}

async fn ws(State(b): State<Bridge>, upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(move |socket| bridge(socket, b))
}

/// moonlight-web's part, reduced to the pipe: socket text ↔ streamer IPC, `Stop` when the socket
/// closes.
async fn bridge(mut socket: WebSocket, b: Bridge) {
    let (stdin_test, stdin_streamer) = tokio::io::duplex(1 << 16);
    let (stdout_streamer, stdout_test) = tokio::io::duplex(1 << 16);
    let reason_tx = b.stop_reason.lock().unwrap().take();
    tokio::spawn(async move {
        let r = session::run_with(stdin_streamer, stdout_streamer, Options { loopback_only: false }).await.expect("streamer");
        if let Some(tx) = reason_tx {
            let _ = tx.send(r);
        }
    });
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
    to_streamer.send(ServerToStreamer::Init(b.init.clone())).unwrap();
    let mut lines = BufReader::new(stdout_test).lines();
    let mut socket_open = true;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => match serde_json::from_str::<StreamerToServer>(&l).expect("IPC line") {
                    StreamerToServer::WebSocket(m) => { let _ = socket.send(Message::Text(m.to_string().into())).await; }
                    StreamerToServer::Stop => return,
                },
                _ => return,
            },
            msg = socket.recv(), if socket_open => match msg {
                Some(Ok(Message::Text(t))) => { let _ = to_streamer.send(ServerToStreamer::WebSocket(serde_json::from_str(&t).expect("json"))); }
                _ => {
                    socket_open = false;
                    let _ = to_streamer.send(ServerToStreamer::Stop);
                }
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium inside a network namespace"]
async fn chromium_decodes_the_streamers_h264_and_reads_the_stamp() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("helix_e2e=debug").try_init();
    let wolf = super::testwolf::start_wolf().await;
    let ck = rcgen::generate_simple_self_signed(vec!["moonlight-chromium".into()]).unwrap();
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    let (reason_tx, reason_rx) = tokio::sync::oneshot::channel();
    let b = Bridge {
        result: Arc::new(Mutex::new(Some(result_tx))),
        stop_reason: Arc::new(Mutex::new(Some(reason_tx))),
        init: StreamerInit {
            session_id: "agent-ses_chromium-1".into(),
            client_unique_id: Some("helix-agent-chromium".into()),
            mode: "create".into(),
            wolf_http: wolf.http.clone(),
            app_id: wolf.state.app_id.clone(),
            cert_pem: ck.cert.pem(),
            key_pem: ck.key_pair.serialize_pem(),
            width: 320,
            height: 180,
            fps: 30,
            bitrate: 500,
            ice_servers: vec![],
            port_range: Some(super::ipc::PortRange { min: 40000, max: 40100 }),
        },
    };
    let app = Router::new().route("/", get(page)).route("/ws", get(ws)).route("/result", post(result)).with_state(b);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let profile = std::env::temp_dir().join(format!("media-chromium-{}", uuid::Uuid::new_v4()));
    let chromium = std::env::var("HELIX_E2E_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut child = tokio::process::Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let report = tokio::time::timeout(Duration::from_secs(40), result_rx).await.expect("no report from the page").unwrap();
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&profile);

    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let read = |s: &Value| -> Option<stamp::Stamp> {
        let luma: Vec<u8> = s["luma"].as_array()?.iter().map(|v| v.as_u64().unwrap_or(0) as u8).collect();
        stamp::decode(&luma, LUMA_W, LUMA_H)
    };
    let (a, b) = (&report["a"], &report["b"]);
    assert_eq!((b["width"].as_u64(), b["height"].as_u64()), (Some(320), Some(180)), "{report:#}");
    assert!(b["decoded"].as_u64().unwrap_or(0) > a["decoded"].as_u64().unwrap_or(0) + 15, "not decoding ~30 fps: {report:#}");
    let (sa, sb) = (read(a).expect("stamp in sample a"), read(b).expect("stamp in sample b"));
    assert_eq!((sa.tag, sb.tag), (stamp::WOLF_UI_TAG, stamp::WOLF_UI_TAG));
    assert_ne!(sa.counter, sb.counter, "picture frozen");
    assert!(report["general"].as_array().is_some_and(|g| g.contains(&Value::from("ConnectionTerminated"))), "{report:#}");
    // Closing the socket made moonlight-web's part send IPC Stop; the cascade ran.
    let reason = tokio::time::timeout(Duration::from_secs(10), reason_rx).await.expect("streamer did not stop").unwrap();
    assert_eq!(reason, StopReason::IpcStop);
    assert!(wolf.state.sessions().is_empty());
}
