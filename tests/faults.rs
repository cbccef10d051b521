//! Every fault switch of the reference stack shows its symptom chain: the service log line, the
//! API state, and what a client receives on its WebSocket.
//!
//! The "browser" here is a webrtc-rs peer that follows the viewer page's script (offer after the
//! negotiation stage, answer the server's second offer, trickle candidates) over moonlight-web's
//! real WebSocket, so the real streamer processes run their real cascade. All media stays on
//! loopback.

mod common;

use futures::{SinkExt, StreamExt};
use helix_e2e::refstack::{self, streamer::rtc};
use helix_e2e::sut::control::processes::ProcessStack;
use helix_e2e::sut::helix::HelixClient;
use helix_e2e::sut::moonlight_web::{MlwSession, MoonlightWebClient};
use helix_e2e::sut::replies::HttpsProbe;
use helix_e2e::sut::wolf::WolfClient;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::RTCPeerConnection;

const UNREGISTERED: &str = "WARN  | [HTTPS] Received resume event from an unregistered session, ip: 127.0.0.1";

struct Stack {
    processes: Arc<ProcessStack>,
    e: refstack::Endpoints,
    mlw: MoonlightWebClient,
    wolf: WolfClient,
}

async fn stack(faults: &[&str]) -> Stack {
    // The streamer children inherit this: their peers gather loopback candidates only.
    std::env::set_var(rtc::LOOPBACK_ONLY_ENV, "1");
    let faults = faults.iter().map(|f| f.parse().unwrap()).collect();
    // Its directory (stores, unredacted logs, Wolf's socket) goes with the stack.
    let processes = ProcessStack::start_temp(env!("CARGO_BIN_EXE_helix-e2e").as_ref(), faults).await.unwrap();
    let e = processes.endpoints();
    let mlw = MoonlightWebClient::new(&e.moonlight_web_url, Some(e.moonlight_credentials.clone()));
    let wolf = WolfClient::new(e.wolf_socket.clone());
    Stack { processes: Arc::new(processes), e, mlw, wolf }
}

impl Stack {
    fn log(&self, service: &str) -> String {
        let path = &self.e.logs.iter().find(|(n, _)| n == service).unwrap().1;
        std::fs::read_to_string(path).unwrap()
    }

    async fn sessions(&self) -> Vec<MlwSession> {
        self.mlw.sessions().await.unwrap()
    }

    /// Poll `what` until it returns `Some`, or fail naming `why`.
    async fn until<T, F: std::future::Future<Output = Option<T>>>(&self, within: Duration, why: &str, mut what: impl FnMut() -> F) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = what().await {
                return v;
            }
            assert!(Instant::now() < deadline, "{why} (waited {within:?})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn init(credentials: &str, session_id: &str, client_unique_id: &str) -> String {
    json!({"AuthenticateAndInit": {"credentials": credentials, "session_id": session_id, "mode": "create",
        "client_unique_id": client_unique_id, "host_id": 0, "app_id": 134906179, "bitrate": 40000, "packet_size": 1024,
        "fps": 60, "width": 3840, "height": 2160, "video_sample_queue_size": 100, "play_audio_local": false,
        "audio_sample_queue_size": 20, "video_supported_formats": 1, "video_colorspace": "Rec709", "video_color_range_full": true}})
    .to_string()
}

/// One viewer: the WebSocket, the peer, and every server message in order.
struct Tab {
    msgs: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    pc: Arc<RTCPeerConnection>,
    channels: Vec<Arc<RTCDataChannel>>,
    close: mpsc::UnboundedSender<()>,
    /// The task that owns the socket: aborting it drops the socket without a close frame.
    task: tokio::task::JoinHandle<()>,
}

async fn open_tab(s: &Stack, session_id: &str, client_unique_id: &str, with_peer: bool) -> Tab {
    let url = format!("{}/api/host/stream", s.e.moonlight_web_url.replace("http://", "ws://"));
    open_tab_at(&url, &s.e.moonlight_credentials, session_id, client_unique_id, with_peer).await
}

/// A viewer on the socket at `url` (moonlight-web's own, or Helix's proxy with a Helix token).
async fn open_tab_at(url: &str, credentials: &str, session_id: &str, client_unique_id: &str, with_peer: bool) -> Tab {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::text(init(credentials, session_id, client_unique_id))).await.unwrap();
    let pc = rtc::new_peer(&rtc::PeerOptions { loopback_only: true, ..Default::default() }).await.unwrap();
    let mut channels = Vec::new();
    for label in rtc::INPUT_CHANNELS {
        channels.push(pc.create_data_channel(label, None).await.unwrap());
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let cand_tx = out_tx.clone();
    pc.on_ice_candidate(Box::new(move |c| {
        let tx = cand_tx.clone();
        Box::pin(async move {
            if let Some(c) = c {
                let _ = tx.send(rtc::candidate_message(&c.to_json().unwrap(), "0").to_string());
            }
        })
    }));
    let (msg_tx, msgs) = mpsc::unbounded_channel();
    let (close, mut close_rx) = mpsc::unbounded_channel::<()>();
    let peer = Arc::clone(&pc);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = stream.next() => {
                    let Some(Ok(Message::Text(t))) = m else { return };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if with_peer {
                        common::peer_signal(&peer, &v, &out_tx).await;
                    }
                    let _ = msg_tx.send(v);
                }
                Some(out) = out_rx.recv() => { let _ = sink.send(Message::text(out)).await; }
                _ = close_rx.recv() => { let _ = sink.close().await; return; }
            }
        }
    });
    Tab { msgs, seen: Vec::new(), pc, channels, close, task }
}

impl Tab {
    /// Read until a message matches `pred`; returns it.
    async fn until(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.msgs.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return m;
                    }
                }
                Ok(None) => panic!("socket closed; got {:#?}", self.seen),
                Err(_) => panic!("nothing matched within {within:?}; got {:#?}", self.seen),
            }
        }
    }

    /// Wolf's session id from `ConnectionComplete`.
    async fn connected(&mut self) -> String {
        let cc = self.until(Duration::from_secs(20), |m| m.get("ConnectionComplete").is_some()).await;
        cc["ConnectionComplete"]["client_id"].as_str().unwrap().to_owned()
    }

    async fn peer_disconnect(&mut self, within: Duration) {
        self.until(within, |m| m == &json!("PeerDisconnect")).await;
    }

    /// Messages that arrive within `d`.
    async fn drain(&mut self, d: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = Instant::now() + d;
        while let Ok(Some(m)) = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.msgs.recv()).await {
            got.push(m);
        }
        self.seen.extend(got.clone());
        got
    }

    async fn close(self) {
        let _ = self.close.send(());
        let _ = self.pc.close().await;
    }

    /// Vanish as a tab whose renderer crashed does: the socket's TCP connection ends without a
    /// close frame, and the peer goes with it.
    async fn vanish(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = self.pc.close().await;
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false)
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: the pid is a streamer child of the stack this test started.
    unsafe { libc::kill(pid as i32, signal) };
}

fn kill(pid: u32) {
    // SAFETY: the pid is a streamer child this test started and just checked to be alive.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_second_client_with_a_colliding_subject_is_taken_for_a_resume_and_cancelled() {
    let s = stack(&["cert-subject-collision"]).await;
    let mut first = open_tab(&s, "agent-ses_a-1", "helix-agent-ses_a-L1-1", true).await;
    let first_wolf = first.connected().await;

    let mut second = open_tab(&s, "agent-ses_b-2", "helix-agent-ses_b-L2-2", true).await;
    second.until(Duration::from_secs(20), |m| m == &json!({"StageStarting": {"stage": "Moonlight Stream"}})).await;
    second.peer_disconnect(Duration::from_secs(10)).await;
    assert!(!second.seen.iter().any(|m| m.get("ConnectionComplete").is_some()), "{:#?}", second.seen);

    // The resume, then the cascade's /cancel, which comes after PeerDisconnect (Wolf logs the
    // same text for both).
    s.until(Duration::from_secs(5), "no unregistered-session line for the resume and the cancel", || async {
        (s.log("wolf").matches(UNREGISTERED).count() == 2).then_some(())
    })
    .await;
    let sessions = s.wolf.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].client_unique_id, "helix-agent-ses_a-L1-1");
    assert_eq!(sessions[0].client_id, first_wolf);
    // The first viewer is unaffected: still streaming, no disconnect.
    assert!(first.drain(Duration::from_millis(500)).await.iter().all(|m| m != &json!("PeerDisconnect")));
    let left: Vec<String> = s
        .until(Duration::from_secs(5), "second moonlight-web session not removed", || async {
            let v = s.sessions().await;
            (v.len() == 1).then(|| v.into_iter().map(|x| x.session_id).collect())
        })
        .await;
    assert_eq!(left, ["agent-ses_a-1"]);
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_a_lobby_session_without_input_is_dropped_and_the_tab_gets_peer_disconnect() {
    let s = stack(&["control-idle-timeout=1"]).await;
    let mut tab = open_tab(&s, "agent-ses_c-1", "helix-agent-ses_c-L-1", true).await;
    let sid = tab.connected().await;
    let body = json!({"profile_id": "helix-sessions", "name": "Agent 0001", "multi_user": true, "stop_when_everyone_leaves": false,
        "video_settings": {"width": 320, "height": 180, "refresh_rate": 30}, "audio_settings": {"channel_count": 2}, "runner": {"type": "docker", "env": []}});
    let lobby = s.wolf.create_lobby(&body).await.unwrap();
    s.wolf.join_lobby(&lobby, &sid, None).await.unwrap();
    let joined = Instant::now();
    tab.peer_disconnect(Duration::from_secs(8)).await;
    assert!(joined.elapsed() >= Duration::from_millis(900), "dropped before the idle limit");
    let log = s.log("wolf");
    let enet = log.find("[ENET] disconnected client: 127.0.0.1:").expect("ENet disconnect logged");
    assert!(log.find(&format!("[LOBBY] Session {sid} joining lobby {lobby}")).unwrap() < enet, "{log}");
    assert!(log.contains(&format!("[LOBBY] Moonlight stream {sid} over, leaving lobby {lobby}")), "{log}");
    assert_eq!(s.wolf.memory().await.unwrap().lobbies[0].client_count, 0);
    tab.close().await;

    // The same stack keeps a viewer that sends real mouseRelative input after the join.
    let mut tab = open_tab(&s, "agent-ses_c-2", "helix-agent-ses_c-L-2", true).await;
    let sid = tab.connected().await;
    s.wolf.join_lobby(&lobby, &sid, None).await.unwrap();
    let mouse = Arc::clone(&tab.channels[3]);
    assert_eq!(mouse.label(), "mouseRelative");
    let input = tokio::spawn(async move {
        loop {
            let _ = mouse.send(&bytes::Bytes::from_static(&[0, 0, 3, 255, 253])).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let got = tab.drain(Duration::from_millis(2500)).await;
    input.abort();
    assert!(!got.contains(&json!("PeerDisconnect")), "{got:?}");
    assert!(s.wolf.sessions().await.unwrap().iter().any(|w| w.client_id == sid));
    tab.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_stuck_session_keeps_a_socketless_create_session_with_a_live_streamer() {
    let s = stack(&["stuck-session"]).await;
    let mut tab = open_tab(&s, "agent-ses_d-1", "helix-agent-ses_d-L-1", false).await;
    tab.until(Duration::from_secs(10), |m| m == &json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})).await;
    tab.close().await;
    let stuck = s.until(Duration::from_secs(5), "socket close not seen", || async { s.sessions().await.into_iter().find(|x| !x.has_websocket) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = s.sessions().await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!now[0].has_websocket && now[0].streamer_alive && now[0].mode == "create", "{now:?}");
    let pid = stuck.streamer_pid.expect("pid");
    assert!(alive(pid));
    kill(pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_zombie_streamer_outlives_its_socket_and_its_entry() {
    let s = stack(&["zombie-streamer"]).await;
    let mut tab = open_tab(&s, "agent-ses_e-1", "helix-agent-ses_e-L-1", false).await;
    tab.until(Duration::from_secs(10), |m| m == &json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})).await;
    let pid = s.sessions().await[0].streamer_pid.expect("pid");
    tab.close().await;
    s.until(Duration::from_secs(5), "session not removed", || async { s.sessions().await.is_empty().then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alive(pid), "the streamer obeyed Stop");
    assert!(s.log("moonlight-web").contains("[Streamer agent-ses_e-1]"), "streamer logs reach moonlight-web's log");
    kill(pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_listed_a_dead_streamer_stays_listed_and_admin_status_reports_it() {
    let s = stack(&["zombie-streamer=listed"]).await;
    let mut tab = open_tab(&s, "agent-ses_f-1", "helix-agent-ses_f-L-1", false).await;
    tab.until(Duration::from_secs(10), |m| m == &json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})).await;
    let pid = s.sessions().await[0].streamer_pid.expect("pid");
    tab.close().await;
    let dead = s.until(Duration::from_secs(10), "streamer never exited", || async { s.sessions().await.into_iter().find(|x| !x.streamer_alive) }).await;
    assert_eq!((dead.has_websocket, dead.streamer_pid, dead.session_id.as_str()), (false, None, "agent-ses_f-1"));
    assert!(!alive(pid));
    let status = s.mlw.status().await.unwrap();
    assert_eq!((status.total_sessions, status.active_websockets), (1, 0));
    let log = s.log("moonlight-web");
    assert!(log.contains("[Admin Status] 1 zombie sessions detected (dead process but not cleaned up)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_wolf_keeps_the_session_of_a_closed_tab() {
    let s = stack(&["orphan-wolf-session"]).await;
    let mut tab = open_tab(&s, "agent-ses_g-1", "helix-agent-ses_g-L-1", true).await;
    let sid = tab.connected().await;
    tab.close().await;
    s.until(Duration::from_secs(10), "moonlight-web kept the session", || async { s.sessions().await.is_empty().then_some(()) }).await;
    let log = s.log("moonlight-web");
    s.until(Duration::from_secs(10), "streamer never finished", || async {
        s.log("moonlight-web").contains("[Stream] Streamer of session agent-ses_g-1 exited").then_some(())
    })
    .await;
    let wolf = s.wolf.sessions().await.unwrap();
    assert_eq!(wolf.iter().map(|w| w.client_id.as_str()).collect::<Vec<_>>(), [sid.as_str()], "{log}");
    assert!(!s.log("wolf").contains("[ENET] disconnected client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_wolf_health_reports_the_frozen_producer() {
    let s = stack(&["freeze-after=1"]).await;
    let body = json!({"profile_id": "helix-sessions", "name": "Agent 0002", "multi_user": true, "stop_when_everyone_leaves": false,
        "video_settings": {}, "audio_settings": {}, "runner": {"type": "docker", "env": []}});
    s.wolf.create_lobby(&body).await.unwrap();
    assert_eq!(s.wolf.health().await.unwrap()["overall_status"], "healthy");
    let h = s
        .until(Duration::from_secs(8), "no stuck thread", || async {
            let h = s.wolf.health().await.unwrap();
            (h["stuck_thread_count"] == 1).then_some(h)
        })
        .await;
    assert_eq!(h["overall_status"], "degraded");
    assert_eq!(h["total_thread_count"], 8, "Wolf's seven threads and the lobby's producer");
    assert_eq!(h["can_create_new_pipelines"], true, "a frozen producer is not a lost type lock (F16)");
    assert!(h["threads"].as_array().unwrap().iter().any(|t| t["is_stuck"] == true && t["seconds_since_heartbeat"].as_f64().unwrap() >= 3.0));
    s.until(Duration::from_secs(3), "no degraded line", || async { s.log("wolf").contains("WARN  | System degraded: 1/8 threads stuck").then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_the_streamer_logs_chunk_too_short_repeatedly_through_moonlight_web() {
    let s = stack(&["sctp-errors"]).await;
    let mut tab = open_tab(&s, "agent-ses_h-1", "helix-agent-ses_h-L-1", true).await;
    tab.connected().await;
    let lines = s
        .until(Duration::from_secs(5), "no repeated SCTP errors", || async {
            let log = s.log("moonlight-web");
            let lines: Vec<String> =
                log.lines().filter(|l| l.contains("[Streamer agent-ses_h-1]") && l.contains("chunk too short")).map(str::to_owned).collect();
            (lines.len() >= 3).then_some(lines)
        })
        .await;
    assert!(lines[0].contains("unable to parse SCTP packet"), "{lines:?}");
    tab.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_slow_wolf_stalls_the_tab_in_moonlight_stream_until_the_streamer_times_out() {
    // Longer than the streamer's 10 s deadline per request.
    let s = stack(&["slow-tls=12000"]).await;
    let mut tab = open_tab(&s, "agent-ses_i-1", "helix-agent-ses_i-L-1", true).await;
    tab.until(Duration::from_secs(20), |m| m == &json!({"StageStarting": {"stage": "Moonlight Stream"}})).await;
    let stalled = Instant::now();
    tab.peer_disconnect(Duration::from_secs(15)).await;
    assert!(stalled.elapsed() >= Duration::from_secs(9), "no stall: {:?}", stalled.elapsed());
    assert!(!tab.seen.iter().any(|m| m.get("ConnectionComplete").is_some()));
    let log = s.log("moonlight-web");
    assert!(log.lines().any(|l| l.contains("[Streamer agent-ses_i-1]") && l.contains("Error(Connect, TimedOut)")), "{log}");
    assert!(s.wolf.sessions().await.unwrap().is_empty());
    tab.close().await;
}

/// The boot data a Helix page embeds.
async fn boot(helix: &str, path: &str, token: &str) -> Value {
    let page =
        reqwest::Client::new().get(format!("{helix}{path}")).header("cookie", format!("access_token={token}")).send().await.unwrap().text().await.unwrap();
    let start = page.find(r#"id="helix-boot">"#).unwrap() + r#"id="helix-boot">"#.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_every_viewer_of_an_agent_gets_one_session_id_and_the_second_is_already_streaming() {
    let s = stack(&["session-id-reuse"]).await;
    let mut helix = HelixClient::new(&s.e.helix_url);
    helix.login(&s.e.user_email, &s.e.user_password).await.unwrap();
    let ses = helix.create_agent_session("F13").await.unwrap();
    let token = helix.token().unwrap().to_owned();
    let a = boot(&s.e.helix_url, &format!("/session/{ses}"), &token).await;
    let b = boot(&s.e.helix_url, &format!("/projects/p1/specs?sessions={ses}"), &token).await;
    let id = a["sessions"][0]["moonlight_session_id"].as_str().expect("reused id served").to_owned();
    assert!(id.starts_with(&format!("agent-{ses}-")), "{id}");
    assert_eq!(b["sessions"][0]["moonlight_session_id"], id.as_str(), "one id per agent session, whatever the page");

    let mut first = open_tab(&s, &id, &format!("helix-agent-{ses}-L-1"), false).await;
    first.until(Duration::from_secs(10), |m| m == &json!({"StageComplete": {"stage": "Launch Streamer"}})).await;
    let mut second = open_tab(&s, &id, &format!("helix-agent-{ses}-L-2"), false).await;
    assert_eq!(second.until(Duration::from_secs(10), |_| true).await, json!("AlreadyStreaming"));
    first.close().await;
    second.close().await;

    let healthy = stack(&[]).await;
    let mut helix = HelixClient::new(&healthy.e.helix_url);
    helix.login(&healthy.e.user_email, &healthy.e.user_password).await.unwrap();
    let ses = helix.create_agent_session("ok").await.unwrap();
    let boot = boot(&healthy.e.helix_url, &format!("/session/{ses}"), helix.token().unwrap()).await;
    assert!(boot["sessions"][0].get("moonlight_session_id").is_none(), "{boot}");
}

/// Press the viewer's Reconnect as the page does: its socket closes, then its peer, and a new
/// socket with the same `session_id` and `client_unique_id` opens at once.
async fn reconnect(s: &Stack, old: Tab, session_id: &str, client_unique_id: &str) -> Tab {
    let closed = format!("[Stream] WebSocket of session {session_id} closed");
    let before = s.log("moonlight-web").matches(&closed).count();
    let _ = old.close.send(());
    s.until(Duration::from_secs(2), "moonlight-web never saw the socket close", || async {
        (s.log("moonlight-web").matches(&closed).count() > before).then_some(())
    })
    .await;
    let _ = old.pc.close().await;
    open_tab(s, session_id, client_unique_id, true).await
}

/// The streamer lines (`[Streamer <session>] … streamer{pid=P}: …`) of moonlight-web's log
/// that contain `text`: (line number, pid).
fn streamer_lines(log: &str, text: &str) -> Vec<(usize, u32)> {
    log.lines()
        .enumerate()
        .filter(|(_, l)| l.contains("[Streamer ") && l.contains(text))
        .filter_map(|(i, l)| Some((i, l.split("streamer{pid=").nth(1)?.split('}').next()?.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f14_a_reconnect_during_teardown_resumes_the_session_the_old_streamer_then_cancels() {
    let (sid, cuid) = ("agent-ses_j-1", "helix-agent-ses_j-L-1");
    let s = stack(&["reconnect-teardown-race"]).await;
    let mut tab = open_tab(&s, sid, cuid, true).await;
    let wolf_id = tab.connected().await;
    let body = json!({"profile_id": "helix-sessions", "name": "Agent 0003", "multi_user": true, "stop_when_everyone_leaves": false,
        "video_settings": {"width": 320, "height": 180, "refresh_rate": 30}, "audio_settings": {"channel_count": 2}, "runner": {"type": "docker", "env": []}});
    let lobby = s.wolf.create_lobby(&body).await.unwrap();
    s.wolf.join_lobby(&lobby, &wolf_id, None).await.unwrap();
    let old_pid = s.sessions().await[0].streamer_pid.expect("pid");

    let mut tab = reconnect(&s, tab, sid, cuid).await;
    // The new streamer finds the client's Wolf session still there and resumes it...
    assert_eq!(tab.connected().await, wolf_id, "the same Wolf session, resumed");
    let new_pid = s.sessions().await.iter().find(|x| x.session_id == sid).and_then(|x| x.streamer_pid).expect("new pid");
    assert_ne!(new_pid, old_pid);
    // ...and the old streamer's stop cascade cancels it under the new one.
    tab.peer_disconnect(Duration::from_secs(10)).await;
    let log = s.log("moonlight-web");
    let resumed = streamer_lines(&log, "resuming app");
    assert!(matches!(resumed[..], [(_, p)] if p == new_pid), "{resumed:?}\n{log}");
    let cancels = streamer_lines(&log, &format!("stop: cancelling the Wolf session {wolf_id}"));
    assert!(cancels.iter().any(|(i, p)| *p == old_pid && *i > resumed[0].0), "the old streamer's cancel after the resume: {cancels:?}\n{log}");
    // Wolf saw a cancel, not a lost control peer: the old connection had been superseded.
    let wolf = s.log("wolf");
    assert!(!wolf.contains("[ENET] disconnected client"), "{wolf}");
    assert!(wolf.contains(&format!("[LOBBY] Moonlight stream {wolf_id} over, leaving lobby {lobby}")), "{wolf}");
    assert_eq!(s.wolf.memory().await.unwrap().lobbies[0].client_count, 0);
    assert!(s.wolf.sessions().await.unwrap().is_empty());
    tab.close().await;

    // The healthy moonlight-web starts the new streamer only once the old one has cancelled. A
    // healthy cascade may end before the new socket comes, so the old streamer is held (as a
    // loaded host would) for a second: moonlight-web must wait it out.
    let s = stack(&[]).await;
    let mut tab = open_tab(&s, sid, cuid, true).await;
    let wolf_id = tab.connected().await;
    let old_pid = s.sessions().await[0].streamer_pid.expect("pid");
    signal(old_pid, libc::SIGSTOP);
    let held = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        signal(old_pid, libc::SIGCONT);
    });
    let mut tab = reconnect(&s, tab, sid, cuid).await;
    assert_eq!(tab.connected().await, wolf_id, "the client's certificate names its session");
    held.await.unwrap();
    assert!(!tab.drain(Duration::from_millis(1500)).await.contains(&json!("PeerDisconnect")), "{:#?}", tab.seen);
    let log = s.log("moonlight-web");
    assert!(log.contains(&format!("[Stream] Client {cuid} reconnects while its previous streamer (pid {old_pid}) tears down; waiting for it")), "{log}");
    let waited: f64 = log
        .split(&format!("[Stream] Previous streamer of client {cuid} done after "))
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(waited >= 0.5, "waited only {waited} s for a streamer held for 1 s");
    assert!(streamer_lines(&log, "resuming app").is_empty(), "{log}");
    let cancel = streamer_lines(&log, "stop: cancelling the Wolf session");
    let launches = streamer_lines(&log, "launching app");
    assert!(matches!((&cancel[..], &launches[..]), ([(c, p)], [_, (l, _)]) if *p == old_pid && c < l), "{cancel:?} {launches:?}\n{log}");
    assert_eq!(s.wolf.sessions().await.unwrap().iter().map(|w| w.client_unique_id.as_str()).collect::<Vec<_>>(), [cuid]);
    tab.close().await;
}

/// The driver's probe of Wolf's HTTPS port, with a short wait.
async fn probe_https(s: &Stack) -> HttpsProbe {
    helix_e2e::sut::https_probe::probe(&s.e.wolf_moonlight_http, Duration::from_secs(2)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f15_a_cancel_racing_its_teardown_deadlocks_the_https_port_for_good() {
    let s = stack(&["https-deadlock"]).await;
    let mut running = open_tab(&s, "agent-ses_k-1", "helix-agent-ses_k-L-1", true).await;
    let running_id = running.connected().await;
    let mut closing = open_tab(&s, "agent-ses_k-2", "helix-agent-ses_k-L-2", true).await;
    closing.connected().await;
    assert!(matches!(probe_https(&s).await, HttpsProbe::Answered { .. }), "the healthy port answers the hello");

    // The closing tab's stop cascade closes its stream (Wolf tears the session down) and then
    // sends /cancel, which waits for that teardown for ever.
    closing.close().await;
    s.until(Duration::from_secs(20), "the cancel did not hang", || async {
        s.log("moonlight-web").lines().any(|l| l.contains("[Streamer agent-ses_k-2]") && l.contains("stop: cancel timed out")).then_some(())
    })
    .await;
    // The port accepts and answers nothing; the API answers; the running stream goes on.
    assert!(matches!(probe_https(&s).await, HttpsProbe::Silent { .. }));
    let sessions = s.wolf.sessions().await.expect("Wolf's API answers");
    assert_eq!(sessions.iter().map(|w| w.client_id.as_str()).collect::<Vec<_>>(), [running_id.as_str()]);
    assert!(!running.drain(Duration::from_millis(500)).await.contains(&json!("PeerDisconnect")));

    // A new viewer stalls at launch and moonlight-web reports Wolf's silence.
    let mut new = open_tab(&s, "agent-ses_l-1", "helix-agent-ses_l-L-1", true).await;
    new.until(Duration::from_secs(20), |m| m == &json!({"StageStarting": {"stage": "Moonlight Stream"}})).await;
    new.peer_disconnect(Duration::from_secs(15)).await;
    assert!(!new.seen.iter().any(|m| m.get("ConnectionComplete").is_some()));
    let log = s.log("moonlight-web");
    assert!(log.lines().any(|l| l.contains("[Streamer agent-ses_l-1]") && l.contains("Error(Connect, TimedOut)")), "{log}");
    // It never recovers.
    assert!(matches!(probe_https(&s).await, HttpsProbe::Silent { .. }));
    running.close().await;
    new.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f16_a_lost_type_lock_stops_every_producer_and_new_sessions_get_no_first_frame() {
    let s = stack(&["pipeline-lock=3"]).await;
    let body = |name: &str| {
        json!({"profile_id": "helix-sessions", "name": name, "multi_user": true, "stop_when_everyone_leaves": false,
            "video_settings": {}, "audio_settings": {}, "runner": {"type": "docker", "env": []}})
    };
    s.wolf.create_lobby(&body("Agent 0004")).await.unwrap();
    s.wolf.create_lobby(&body("Agent 0005")).await.unwrap();
    assert_eq!(s.wolf.health().await.unwrap()["can_create_new_pipelines"], true, "the lock is lost only after 3 s");
    s.until(Duration::from_secs(8), "Wolf never said it cannot create pipelines", || async {
        (s.wolf.health().await.unwrap()["can_create_new_pipelines"] == false).then_some(())
    })
    .await;
    let mut tab = open_tab(&s, "agent-ses_m-1", "helix-agent-ses_m-L-1", true).await;
    tab.connected().await;
    // Wait out the watchdog's stuck limit; the session's pipeline is still being created.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let log = s.log("moonlight-web");
    assert!(!log.lines().any(|l| l.contains("[Streamer agent-ses_m-1]") && l.contains("first access unit from Wolf")), "{log}");
    let h = s.wolf.health().await.expect("Wolf's API answers");
    let threads = h["threads"].as_array().unwrap();
    let stuck: Vec<&str> = threads.iter().filter(|t| t["is_stuck"] == true).map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(stuck.iter().filter(|n| n.starts_with("producer-")).count(), 2, "both producers stopped together: {h}");
    assert_eq!(stuck.iter().filter(|n| n.starts_with("pipeline-")).count(), 1, "the new session's pipeline waits: {h}");
    assert!(2 * stuck.len() < threads.len(), "a minority of Wolf's threads: {h}");
    assert_eq!((h["can_create_new_pipelines"].clone(), h["overall_status"].clone()), (json!(false), json!("degraded")));
    tab.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f17_an_audio_disconnect_crashes_wolf_with_every_stream_and_its_supervisor_restarts_it() {
    let s = stack(&["audio-disconnect=2"]).await;
    let timeline = helix_e2e::timeline::Timeline::new();
    let _watch = s.processes.watch_deaths(timeline.clone());
    let mut a = open_tab(&s, "agent-ses_n-1", "helix-agent-ses_n-L-1", true).await;
    a.connected().await;
    let mut b = open_tab(&s, "agent-ses_n-2", "helix-agent-ses_n-L-2", true).await;
    b.connected().await;
    // Both lose their stream when Wolf dies, 2 s after its first session connected it to audio.
    a.peer_disconnect(Duration::from_secs(10)).await;
    b.peer_disconnect(Duration::from_secs(3)).await;
    let wolf = s.log("wolf");
    let connected = wolf.find("[AUDIO] Connected to the audio server").expect("Wolf connected to its audio server");
    let crash = wolf.find("ERROR | Unhandled exception: The state of the promise has already been set").expect("the crash line");
    assert!(connected < crash, "{wolf}");
    let died = s
        .until(Duration::from_secs(5), "the supervisor saw no death", || async {
            timeline.snapshot().into_iter().find_map(|o| match o.event {
                helix_e2e::timeline::Event::Died { what: helix_e2e::timeline::Casualty::Service { service }, detail } if service == "wolf" => Some(detail),
                _ => None,
            })
        })
        .await;
    assert!(died.contains("SIGABRT"), "{died}");
    // Restarted, as its container's restart policy would: the API answers again, empty.
    let sessions = s.until(Duration::from_secs(10), "Wolf did not come back", || async { s.wolf.sessions().await.ok() }).await;
    assert!(sessions.is_empty(), "{sessions:?}");
    a.close().await;
    b.close().await;
}

/// A viewer through Helix's proxy, as the page opens it (the Helix token in the first message).
async fn proxied_tab(s: &Stack, ses: &str, n: u32) -> Tab {
    let mut helix = HelixClient::new(&s.e.helix_url);
    helix.login(&s.e.user_email, &s.e.user_password).await.unwrap();
    let url = format!("{}/moonlight/host/stream", s.e.helix_url.replace("http://", "ws://"));
    open_tab_at(&url, helix.token().unwrap(), &format!("agent-{ses}-{n}"), &format!("helix-agent-{ses}-L-{n}"), true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f18_a_tab_gone_without_a_close_frame_keeps_its_sessions_as_if_connected() {
    let s = stack(&["no-silent-close-detection"]).await;
    let mut tab = proxied_tab(&s, "ses_v", 1).await;
    let sid = tab.connected().await;
    let pid = s.sessions().await[0].streamer_pid.expect("pid");
    tab.vanish().await;
    // Past webrtc-rs's 5 s to a disconnected peer, after which a healthy streamer has stopped.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let now = s.sessions().await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].has_websocket && now[0].streamer_alive && now[0].mode == "create", "held as if connected: {now:?}");
    assert!(alive(pid));
    let wolf = s.wolf.sessions().await.unwrap();
    assert_eq!(wolf.iter().map(|w| w.client_id.as_str()).collect::<Vec<_>>(), [sid.as_str()]);
    let log = s.log("moonlight-web");
    assert!(!log.contains("WebSocket of session agent-ses_v-1 closed"), "{log}");
    assert!(s.log("api").contains("stream proxy: the browser's socket ended without a close frame"));
    kill(pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f18_without_the_switch_a_vanished_tab_ends_its_sessions() {
    let s = stack(&[]).await;
    let mut tab = proxied_tab(&s, "ses_w", 1).await;
    tab.connected().await;
    tab.vanish().await;
    s.until(Duration::from_secs(10), "moonlight-web kept the vanished tab's session", || async { s.sessions().await.is_empty().then_some(()) }).await;
    s.until(Duration::from_secs(10), "Wolf kept the vanished tab's session", || async { s.wolf.sessions().await.unwrap().is_empty().then_some(()) }).await;
    assert!(s.log("moonlight-web").contains("[Stream] WebSocket of session agent-ses_w-1 closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f19_failed_lobby_setups_leak_their_display_sockets_until_every_setup_times_out() {
    use std::os::unix::fs::FileTypeExt;
    let s = stack(&["lobby-socket-leak=4"]).await;
    let displays = s.e.wolf_socket.parent().unwrap().join("wolf-displays");
    let sockets = || std::fs::read_dir(&displays).unwrap().filter(|e| e.as_ref().unwrap().file_type().unwrap().is_socket()).count();
    let body = json!({"profile_id": "helix-sessions", "name": "Agent 0001", "multi_user": true, "stop_when_everyone_leaves": false, "pin": [1, 2, 3, 4],
        "video_settings": {"width": 320, "height": 180, "refresh_rate": 30}, "audio_settings": {"channel_count": 2}, "runner": {"type": "docker", "env": []}});
    let failed = |r: Result<String, helix_e2e::sut::SutError>| r.expect_err("the setup succeeded").to_string();
    assert!(failed(s.wolf.create_lobby(&body).await).contains("Lobby setup failed"));
    let first = s.wolf.create_lobby(&body).await.unwrap();
    assert!(failed(s.wolf.create_lobby(&body).await).contains("Lobby setup failed"));
    s.wolf.create_lobby(&body).await.unwrap();
    assert_eq!(sockets(), 4, "two lobbies and two failed setups each hold a display socket");
    let t = Instant::now();
    assert!(failed(s.wolf.create_lobby(&body).await).contains("Lobby setup timed out"));
    assert!(t.elapsed() >= Duration::from_secs(2), "answered before the setup deadline");
    // The healthy teardown frees its socket; the next setup takes it and leaks it again.
    s.wolf.stop_lobby(&first, Some(&[1, 2, 3, 4])).await.unwrap();
    assert_eq!(sockets(), 3);
    assert!(failed(s.wolf.create_lobby(&body).await).contains("Lobby setup failed"));
    assert_eq!(sockets(), 4);
    // Helix tries again, and then relays Wolf's words to the session start.
    let mut helix = HelixClient::new(&s.e.helix_url);
    helix.login(&s.e.user_email, &s.e.user_password).await.unwrap();
    let refused = helix.create_agent_session("F19").await.expect_err("a session started").to_string();
    assert!(refused.contains("failed to create Wolf lobby: Lobby setup timed out"), "{refused}");
    let log = s.log("wolf");
    assert_eq!(log.matches("[LOBBY] Lobby setup timed out").count(), 4, "{log}");
    assert!(log.contains("[LOBBY] Failed to create a display socket for lobby"), "{log}");
}

/// Open descriptors of this stack's Wolf process, counted in `/proc` (the test's own reading, not
/// the driver's sampler). The other tests of this binary run their own stacks at the same time:
/// this one's Wolf is the one started with its directory.
fn wolf_fds(s: &Stack) -> usize {
    let dir = format!(" --dir {} ", s.processes.dir().display());
    let wolf = helix_e2e::procs::descendants(std::process::id())
        .into_iter()
        .find(|p| p.cmdline.contains(" service wolf ") && p.cmdline.contains(&dir))
        .expect("the stack's Wolf process");
    std::fs::read_dir(format!("/proc/{}/fd", wolf.pid)).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_every_connect_disconnect_cycle_leaves_n_more_descriptors_in_wolf() {
    const N: usize = 5;
    let s = stack(&[&format!("leak-per-cycle={N}")]).await;
    let gone = || async { s.wolf.sessions().await.unwrap().is_empty().then_some(()) };
    let before = wolf_fds(&s);
    let mut after = Vec::new();
    for k in 0..4 {
        let mut tab = open_tab(&s, &format!("agent-ses_l-{k}"), &format!("helix-agent-ses_l-L-{k}"), true).await;
        tab.connected().await;
        // While the session streams its pipeline holds the handles …
        assert!(wolf_fds(&s) >= before + (k + 1) * N, "cycle {k}: the pipeline's handles are open");
        tab.close().await;
        s.until(Duration::from_secs(10), "Wolf never ended the session", gone).await;
        // … and its teardown keeps them: settle a moment for the stream's sockets to close.
        tokio::time::sleep(Duration::from_millis(300)).await;
        after.push(wolf_fds(&s) as i64 - before as i64);
    }
    // N more per cycle, give or take a socket still closing.
    for (k, grown) in after.iter().enumerate() {
        let want = ((k + 1) * N) as i64;
        assert!((grown - want).abs() <= 2, "after {} cycles Wolf holds {grown} more descriptors, expected {want}: {after:?}", k + 1);
    }
    // Nothing else stays: no session, no lobby of the cycles.
    assert!(s.wolf.sessions().await.unwrap().is_empty());
}

/// The input echo of every picture the peer's video track carries (real H.264, decoded).
fn echoes_of(pc: &RTCPeerConnection) -> mpsc::UnboundedReceiver<helix_e2e::frames::stamp::InputEcho> {
    use helix_e2e_shared::h264::{decode_track, Decode};
    let (tx, rx) = mpsc::unbounded_channel();
    pc.on_track(Box::new(move |track, _, _| {
        let tx = tx.clone();
        Box::pin(async move {
            tokio::spawn(decode_track(track, Decode::Every, move |f| {
                if let Some(e) = f.picture.and_then(|p| helix_e2e::frames::stamp::decode_echo(&p.luma, p.width, p.height)) {
                    let _ = tx.send(e);
                }
            }));
        })
    }));
    rx
}

/// The first echo within `within` that satisfies `pred`.
async fn echo_until(
    rx: &mut mpsc::UnboundedReceiver<helix_e2e::frames::stamp::InputEcho>,
    within: Duration,
    pred: impl Fn(&helix_e2e::frames::stamp::InputEcho) -> bool,
) -> helix_e2e::frames::stamp::InputEcho {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            other => panic!("no matching echo within {within:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f21_a_shift_held_across_a_reconnect_stays_latched_on_the_lobby_desktop() {
    use helix_e2e::frames::stamp::Modifiers;
    for (faults, latched) in [(&["lost-key-release"][..], true), (&[][..], false)] {
        let (sid, cuid) = ("agent-ses_k-1", "helix-agent-ses_k-L-1");
        let s = stack(faults).await;
        let tab = open_tab(&s, sid, cuid, true).await;
        let mut echoes = echoes_of(&tab.pc);
        let mut tab = tab;
        let wolf_id = tab.connected().await;
        let body = json!({"profile_id": "helix-sessions", "name": "Agent 0004", "multi_user": true, "stop_when_everyone_leaves": false,
            "video_settings": {"width": 320, "height": 180, "refresh_rate": 30}, "audio_settings": {"channel_count": 2}, "runner": {"type": "docker", "env": []}});
        let lobby = s.wolf.create_lobby(&body).await.unwrap();
        s.wolf.join_lobby(&lobby, &wolf_id, None).await.unwrap();
        // Shift down on the keyboard channel, in the viewer's format: the lobby's desktop holds it.
        let keyboard = Arc::clone(&tab.channels[0]);
        assert_eq!(keyboard.label(), "keyboard");
        keyboard.send(&bytes::Bytes::from_static(&[1, 0, 0x10, 1])).await.unwrap();
        echo_until(&mut echoes, Duration::from_secs(5), |e| e.key == 0x10 && e.modifiers == Modifiers::SHIFT).await;
        // Reconnect; the release has no open channel to go to and is lost.
        let tab = reconnect(&s, tab, sid, cuid).await;
        let mut echoes = echoes_of(&tab.pc);
        let mut tab = tab;
        let new_id = tab.connected().await;
        s.wolf.join_lobby(&lobby, &new_id, None).await.unwrap();
        // A plain F24 now: it arrives with Shift held only under the switch.
        let keyboard = Arc::clone(&tab.channels[0]);
        for down in [1u8, 0] {
            keyboard.send(&bytes::Bytes::from(vec![down, 0, 0x87, 0])).await.unwrap();
        }
        let e = echo_until(&mut echoes, Duration::from_secs(5), |e| e.key == 0x87).await;
        assert_eq!(e.modifiers, if latched { Modifiers::SHIFT } else { Modifiers::NONE }, "faults {faults:?}: {e:?}");
        tab.close().await;
    }
}
