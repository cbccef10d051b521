//! Server truth, continuously: polls Wolf and moonlight-web, follows Wolf's event stream and
//! tails service logs, pushing everything onto the timeline (which masks secrets) and keeping
//! the latest typed snapshot for the correlation table.

use super::moonlight_web::{MlwSession, MoonlightWebClient};
use super::wolf::{WolfClient, WolfLobby, WolfMemory, WolfSession};
use super::wolf_log;
use crate::timeline::{now_ms, EpochMs, Event, Timeline};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// The latest view of the servers. Errors are kept as text: an unreachable service is a fact
/// of the run, not a reason to stop observing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerState {
    pub at: EpochMs,
    pub wolf_sessions: Vec<WolfSession>,
    pub lobbies: Vec<WolfLobby>,
    pub memory: Option<WolfMemory>,
    pub mlw_sessions: Vec<MlwSession>,
    pub errors: Vec<String>,
}

impl ServerState {
    pub fn client_count(&self, lobby_id: &str) -> Option<u64> {
        self.memory.as_ref()?.lobbies.iter().find(|l| l.lobby_id == lobby_id).map(|l| l.client_count)
    }

    pub fn lobby_of_session(&self, wolf_session: &str) -> Option<&WolfLobby> {
        self.lobbies.iter().find(|l| l.connected_sessions.iter().any(|s| s == wolf_session))
    }
}

pub struct Monitor {
    tasks: JoinSet<()>,
    pub state: watch::Receiver<ServerState>,
}

impl Monitor {
    pub fn start(wolf: WolfClient, mlw: MoonlightWebClient, logs: Vec<(String, PathBuf)>, timeline: Timeline) -> Monitor {
        let (tx, rx) = watch::channel(ServerState::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(poll_loop(wolf.clone(), mlw, timeline.clone(), tx));
        tasks.spawn(event_loop(wolf, timeline.clone()));
        for (service, path) in logs {
            tasks.spawn(tail_log(service, path, timeline.clone()));
        }
        Monitor { tasks, state: rx }
    }

    pub fn latest(&self) -> ServerState {
        self.state.borrow().clone()
    }

    /// Poll once more right now (used before a verdict so it sees fresh state).
    pub async fn refresh(&mut self) {
        let _ = tokio::time::timeout(POLL_EVERY * 3, self.state.changed()).await;
    }

    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn poll_loop(wolf: WolfClient, mlw: MoonlightWebClient, timeline: Timeline, tx: watch::Sender<ServerState>) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut st = ServerState { at: now_ms(), ..Default::default() };
        let (sessions, lobbies, memory, mlw_sessions) = tokio::join!(wolf.get_raw("/api/v1/sessions"), wolf.lobbies(), wolf.memory(), mlw.sessions());
        match sessions {
            Ok(raw) => {
                timeline.push(Event::Poll { service: "wolf".into(), what: "sessions".into(), data: raw["sessions"].clone() });
                st.wolf_sessions = serde_json::from_value(raw["sessions"].clone()).unwrap_or_default();
            }
            Err(e) => st.errors.push(e.to_string()),
        }
        match lobbies {
            Ok(l) => {
                timeline.push(Event::Poll { service: "wolf".into(), what: "lobbies".into(), data: serde_json::to_value(&l).unwrap_or_default() });
                st.lobbies = l;
            }
            Err(e) => st.errors.push(e.to_string()),
        }
        match memory {
            Ok(m) => {
                timeline.push(Event::Poll { service: "wolf".into(), what: "memory".into(), data: serde_json::to_value(&m).unwrap_or_default() });
                st.memory = Some(m);
            }
            Err(e) => st.errors.push(e.to_string()),
        }
        match mlw_sessions {
            Ok(s) => {
                timeline.push(Event::Poll { service: "moonlight-web".into(), what: "sessions".into(), data: serde_json::to_value(&s).unwrap_or_default() });
                st.mlw_sessions = s;
            }
            Err(e) => st.errors.push(e.to_string()),
        }
        for e in &st.errors {
            timeline.push(Event::Poll { service: "monitor".into(), what: "error".into(), data: serde_json::Value::String(e.clone()) });
        }
        if tx.send(st).is_err() {
            return;
        }
    }
}

async fn event_loop(wolf: WolfClient, timeline: Timeline) {
    loop {
        match wolf.events().await {
            Ok(mut rx) => {
                while let Some(ev) = rx.recv().await {
                    let data = serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::String(ev.data.clone()));
                    let name = ev.name.rsplit("::").next().unwrap_or(&ev.name).to_string();
                    timeline.push(Event::WolfEvent { name, data });
                }
                timeline.push(Event::Poll { service: "wolf".into(), what: "events-ended".into(), data: serde_json::Value::Null });
            }
            Err(e) => tracing::debug!("wolf events: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Follow a log file from its start; Wolf lines are parsed, other services' lines kept whole.
async fn tail_log(service: String, path: PathBuf, timeline: Timeline) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let file = loop {
        match tokio::fs::File::open(&path).await {
            Ok(f) => break f,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(_) => {
                let text = line.trim_end().to_string();
                let (level, message) = match wolf_log::parse_line(&text) {
                    Some(r) => (r.level, r.message),
                    None => (env_logger_level(&text).unwrap_or("INFO").to_string(), text),
                };
                timeline.push(Event::Log { service: service.clone(), level, message });
            }
            Err(_) => return,
        }
    }
}

fn env_logger_level(line: &str) -> Option<&'static str> {
    let head = line.get(..48)?;
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].into_iter().find(|l| head.contains(l))
}
