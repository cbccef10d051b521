//! moonlight-web's in-memory sessions, keyed by `session_id`, and their streamer processes.

use crate::logfile::LogFile;
use crate::streamer::ipc::{ServerToStreamer, StreamerInit, StreamerToServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

/// What the WebSocket writer of a session is told to do.
#[derive(Debug)]
pub enum WsOut {
    Text(String),
    Close,
}

/// The browser socket currently attached to a session; `generation` tells a socket that was
/// replaced (join mode) from the current one.
#[derive(Clone)]
pub struct Attached {
    pub generation: u64,
    pub tx: mpsc::UnboundedSender<WsOut>,
}

pub struct Entry {
    pub client_unique_id: Option<String>,
    pub mode: String,
    pub ws: Option<Attached>,
    pub streamer: mpsc::UnboundedSender<ServerToStreamer>,
    pub streamer_pid: Option<u32>,
    pub streamer_alive: bool,
}

#[derive(Default, Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
    next_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Every streamer process started and not yet exited, whether a session still has it or
    /// not (one told to stop runs its stop cascade after its entry is gone).
    running: Arc<Mutex<Vec<Running>>>,
}

/// A streamer process from its start to its exit.
struct Running {
    client_unique_id: Option<String>,
    pid: Option<u32>,
    channel: mpsc::UnboundedSender<ServerToStreamer>,
    /// Set once its stop cascade is over (IPC `Stop`, after its `/cancel`) or it exited.
    done: watch::Sender<bool>,
    /// Set once it sent `ConnectionComplete` (its Moonlight stream is up).
    connected: watch::Sender<bool>,
}

/// A streamer whose session is gone (or went to a newer streamer) but whose stop cascade is not
/// over yet: it may still `/cancel` its client's Wolf session.
pub struct TearingDown {
    pub pid: Option<u32>,
    pub done: watch::Receiver<bool>,
}

impl Sessions {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.next_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The `/api/sessions` view.
    pub fn list(&self) -> Vec<Value> {
        let map = self.lock();
        let mut v: Vec<Value> = map
            .iter()
            .map(|(id, e)| {
                json!({
                    "session_id": id, "client_unique_id": e.client_unique_id, "mode": e.mode,
                    "has_websocket": e.ws.is_some(), "streamer_pid": e.streamer_pid, "streamer_alive": e.streamer_alive,
                })
            })
            .collect();
        v.sort_by(|a, b| a["session_id"].as_str().cmp(&b["session_id"].as_str()));
        v
    }

    /// Forward a streamer's message to the browser socket of the session that streamer serves.
    /// A streamer outliving its session (a reconnect reused the `session_id`) reaches nobody.
    pub fn send_to_browser(&self, session_id: &str, streamer: &mpsc::UnboundedSender<ServerToStreamer>, msg: &Value) {
        if let Some(ws) = self.lock().get(session_id).filter(|e| e.streamer.same_channel(streamer)).and_then(|e| e.ws.clone()) {
            let _ = ws.tx.send(WsOut::Text(msg.to_string()));
        }
    }

    /// Tell a session's streamer to stop, keeping the entry.
    pub fn stop_streamer(&self, session_id: &str) {
        if let Some(e) = self.lock().get(session_id) {
            let _ = e.streamer.send(ServerToStreamer::Stop);
        }
    }

    /// The streamers of `client_unique_id` still tearing down: no session has them any more and
    /// their stop cascade has not ended.
    pub fn tearing_down(&self, client_unique_id: &str) -> Vec<TearingDown> {
        let serving: Vec<mpsc::UnboundedSender<ServerToStreamer>> = self.lock().values().map(|e| e.streamer.clone()).collect();
        self.running()
            .iter()
            .filter(|r| r.client_unique_id.as_deref() == Some(client_unique_id) && !*r.done.borrow())
            .filter(|r| !serving.iter().any(|s| s.same_channel(&r.channel)))
            .map(|r| TearingDown { pid: r.pid, done: r.done.subscribe() })
            .collect()
    }

    /// Resolves to whether the streamer on `channel` has sent `ConnectionComplete`; `None` once it
    /// has exited.
    pub fn connected(&self, channel: &mpsc::UnboundedSender<ServerToStreamer>) -> Option<watch::Receiver<bool>> {
        self.running().iter().find(|r| r.channel.same_channel(channel)).map(|r| r.connected.subscribe())
    }

    /// Send `signal` to streamer `pid` while it is listed as running (so it reaches that
    /// streamer, not a process that reused the number). Returns whether it was sent.
    pub fn signal(&self, pid: u32, signal: i32) -> bool {
        let running = self.running();
        if !running.iter().any(|r| r.pid == Some(pid)) {
            return false;
        }
        // SAFETY: plain kill(2) on a child this moonlight-web started and has not reaped.
        unsafe { libc::kill(pid as i32, signal) == 0 }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_running(&self, channel: &mpsc::UnboundedSender<ServerToStreamer>, f: impl FnOnce(&Running)) {
        if let Some(r) = self.running().iter().find(|r| r.channel.same_channel(channel)) {
            f(r);
        }
    }

    fn exited(&self, channel: &mpsc::UnboundedSender<ServerToStreamer>) {
        self.running().retain(|r| {
            let this = r.channel.same_channel(channel);
            if this {
                r.done.send_replace(true);
            }
            !this
        });
    }

    /// Drop a session: close its socket and tell its streamer to stop.
    pub fn remove(&self, session_id: &str) {
        if let Some(e) = self.lock().remove(session_id) {
            if let Some(ws) = e.ws {
                let _ = ws.tx.send(WsOut::Close);
            }
            let _ = e.streamer.send(ServerToStreamer::Stop);
        }
    }
}

/// Start a streamer child for `session_id`, send it `Init`, and pump its IPC. Returns the
/// sender for server → streamer messages and the child's pid. `keep_dead` leaves the entry of a
/// finished create session listed (F6, `zombie-streamer=listed`).
pub fn spawn_streamer(
    exe: &Path,
    init: StreamerInit,
    sessions: Sessions,
    log: LogFile,
    keep_dead: bool,
) -> std::io::Result<(mpsc::UnboundedSender<ServerToStreamer>, Option<u32>)> {
    let session_id = init.session_id.clone();
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("__streamer").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(false);
    // A streamer must not outlive moonlight-web: the kernel kills it when its parent dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerToStreamer>();
    sessions.running().push(Running {
        client_unique_id: init.client_unique_id.clone(),
        pid,
        channel: tx.clone(),
        done: watch::channel(false).0,
        connected: watch::channel(false).0,
    });
    tx.send(ServerToStreamer::Init(init)).expect("fresh channel");

    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let mut line = serde_json::to_string(&msg).expect("ipc serialises");
            line.push('\n');
            if stdin.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            if matches!(msg, ServerToStreamer::Stop) {
                let _ = stdin.flush().await;
            }
        }
    });

    let log2 = log.clone();
    let sid = session_id.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log2.info(format!("[Streamer {sid}] {line}"));
        }
    });

    let own = tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<StreamerToServer>(&line) {
                Ok(StreamerToServer::WebSocket(msg)) => {
                    if msg.get("ConnectionComplete").is_some() {
                        sessions.with_running(&own, |r| {
                            r.connected.send_replace(true);
                        });
                    }
                    sessions.send_to_browser(&session_id, &own, &msg)
                }
                Ok(StreamerToServer::Stop) => {
                    sessions.with_running(&own, |r| {
                        r.done.send_replace(true);
                    });
                    log.info(format!("[Stream] Streamer of session {session_id} stopped"));
                    if !keep_dead {
                        close_if_create(&sessions, &session_id, &own);
                    }
                }
                Err(e) => log.warn(format!("[Stream] Bad IPC line from streamer of {session_id}: {e}")),
            }
        }
        let status = child.wait().await;
        sessions.exited(&own);
        log.info(format!("[Stream] Streamer of session {session_id} exited: {status:?}"));
        if let Some(e) = sessions.lock().get_mut(&session_id).filter(|e| e.streamer.same_channel(&own)) {
            e.streamer_alive = false;
            e.streamer_pid = None;
        }
        if !keep_dead {
            close_if_create(&sessions, &session_id, &own);
        }
    });
    Ok((tx, pid))
}

/// Create-mode sessions end with their streamer; keepalive ones stay listed (a known leak).
/// Only the entry this streamer serves: a reconnect may have reused the `session_id`.
fn close_if_create(sessions: &Sessions, session_id: &str, streamer: &mpsc::UnboundedSender<ServerToStreamer>) {
    let is_create = sessions.lock().get(session_id).is_some_and(|e| e.mode == "create" && e.streamer.same_channel(streamer));
    if is_create {
        sessions.remove(session_id);
    }
}
