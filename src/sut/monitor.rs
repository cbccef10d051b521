//! Server truth, continuously: polls Wolf and moonlight-web (and Helix, for the lobby it
//! believes each of the run's sessions owns), follows Wolf's event stream and service logs
//! (from the sources of `log_source`), pushing everything onto the timeline (which masks
//! secrets) and keeping the latest typed snapshot for the correlation table.
//!
//! Why one file of over 400 lines: it is under 360 without its tests; every poll loop feeds one
//! `ServerState` and one timeline, and their cadence is read together.

use super::control::ServiceControl;
use super::helix::HelixClient;
use super::log_source::{self, LogFeed};
use super::moonlight_web::{MlwSession, MoonlightWebClient};
use super::wolf::{WolfClient, WolfLobby, WolfMemory, WolfSession};
use super::wolf_log;
use crate::timeline::{now_ms, EpochMs, Event, Reply, Timeline};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long the probe of Wolf's HTTPS port waits for an answer, and the pause between probes.
/// Two silent probes in a row are the port silent for twice this long (F15).
pub const HTTPS_PROBE_WAIT: Duration = Duration::from_secs(3);
const HTTPS_PROBE_PAUSE: Duration = Duration::from_secs(1);
/// How often the services' descriptors and memory are sampled: a leak trend needs a point per
/// connect/disconnect cycle, and a cycle takes seconds.
pub const RESOURCES_EVERY: Duration = Duration::from_millis(500);

/// The latest view of the servers. Errors are kept as text: an unreachable service is a fact
/// of the run, not a reason to stop observing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerState {
    pub at: EpochMs,
    pub wolf_sessions: Vec<WolfSession>,
    pub lobbies: Vec<WolfLobby>,
    pub memory: Option<WolfMemory>,
    pub mlw_sessions: Vec<MlwSession>,
    /// Agent session → the lobby Helix believes it owns, for the sessions being watched.
    pub helix_lobbies: Vec<HelixLobby>,
    pub errors: Vec<String>,
}

pub use super::replies::HelixLobby;

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
    watched: Watched,
}

/// The agent sessions whose Helix record is polled.
type Watched = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Monitor {
    /// Start observing. Each log feed is followed until [`Monitor::stop`] (or the monitor's
    /// drop) aborts it, which also kills a feed's command.
    /// `wolf_https` is Wolf's HTTPS (Moonlight) port, `host:port`, when the target names it.
    /// `services`, where the run controls them, is also asked what they hold (leak trends).
    pub fn start(
        wolf: WolfClient,
        wolf_https: Option<String>,
        mlw: MoonlightWebClient,
        helix: HelixClient,
        logs: Vec<LogFeed>,
        services: Option<Arc<dyn ServiceControl>>,
        timeline: Timeline,
    ) -> Monitor {
        let (tx, rx) = watch::channel(ServerState::default());
        let watched = Watched::default();
        let mut tasks = JoinSet::new();
        if let Some(addr) = wolf_https {
            tasks.spawn(https_probe_loop(addr, timeline.clone()));
        }
        tasks.spawn(poll_loop(wolf.clone(), mlw, (helix, watched.clone()), timeline.clone(), tx));
        tasks.spawn(event_loop(wolf, timeline.clone()));
        if let Some(services) = services {
            tasks.spawn(resource_loop(services, timeline.clone()));
        }
        for feed in logs {
            tasks.spawn(log_source::follow(feed, timeline.clone()));
        }
        Monitor { tasks, state: rx, watched }
    }

    /// Poll Helix's record of this agent session from now on.
    pub fn watch_session(&self, ses: &str) {
        let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        if !w.iter().any(|s| s == ses) {
            w.push(ses.to_string());
        }
    }

    pub fn unwatch_session(&self, ses: &str) {
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).retain(|s| s != ses);
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

async fn poll_loop(wolf: WolfClient, mlw: MoonlightWebClient, (helix, watched): (HelixClient, Watched), timeline: Timeline, tx: watch::Sender<ServerState>) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replies = Replies::default();
    let r = &mut replies;
    loop {
        tick.tick().await;
        let mut st = ServerState { at: now_ms(), ..Default::default() };
        let watching = watched.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (sessions, lobbies, memory, health, mlw_sessions, beliefs) =
            tokio::join!(wolf.get_raw("/api/v1/sessions"), wolf.lobbies(), wolf.memory(), wolf.health(), mlw.sessions(), helix_lobbies(&helix, &watching));
        // Wolf's sessions come raw (the typed list leaves secrets out): parse once, here.
        match sessions.map(|raw| Reply::parse("wolf", "sessions", raw["sessions"].clone())) {
            Ok(Reply::WolfSessions(s)) => {
                st.wolf_sessions = s.clone();
                push(&timeline, r, "wolf", Reply::WolfSessions(s));
            }
            Ok(other) => {
                st.errors.push(format!("wolf /api/v1/sessions: {}", describe(&other)));
                push(&timeline, r, "wolf", other);
            }
            Err(e) => poll_failed(&timeline, r, &mut st, e),
        }
        match lobbies {
            Ok(l) => {
                push(&timeline, r, "wolf", Reply::WolfLobbies(l.clone()));
                st.lobbies = l;
            }
            Err(e) => poll_failed(&timeline, r, &mut st, e),
        }
        match memory {
            Ok(m) => {
                push(&timeline, r, "wolf", Reply::WolfMemory(m.clone()));
                st.memory = Some(m);
            }
            Err(e) => poll_failed(&timeline, r, &mut st, e),
        }
        match health {
            Ok(raw) => push(&timeline, r, "wolf", Reply::parse("wolf", "health", raw)),
            // Upstream Wolf has no health endpoint (it is the Helix fork's): nothing to say.
            Err(crate::sut::SutError::Status { status: 404, .. }) => {}
            Err(e) => poll_failed(&timeline, r, &mut st, e),
        }
        match mlw_sessions {
            Ok(s) => {
                push(&timeline, r, "moonlight-web", Reply::MlwSessions(s.clone()));
                st.mlw_sessions = s;
            }
            Err(e) => poll_failed(&timeline, r, &mut st, e),
        }
        match beliefs {
            Ok(b) => {
                if !b.is_empty() {
                    push(&timeline, r, "api", Reply::HelixLobbies(b.clone()));
                }
                st.helix_lobbies = b;
            }
            Err(e) => poll_failed(&timeline, r, &mut st, e),
        }
        if tx.send(st).is_err() {
            return;
        }
    }
}

/// Probe Wolf's HTTPS port one probe after the other, each result on the timeline.
async fn https_probe_loop(addr: String, timeline: Timeline) {
    loop {
        let seen = super::https_probe::probe(&addr, HTTPS_PROBE_WAIT).await;
        timeline.push(Event::Poll { service: "wolf".into(), reply: Arc::new(Reply::WolfHttps(seen)) });
        tokio::time::sleep(HTTPS_PROBE_PAUSE).await;
    }
}

/// A failed poll is a fact about the server: one that answers nothing at all is evidence of
/// its death (D2, by service); any other error is kept as it is.
fn poll_failed(timeline: &Timeline, replies: &mut Replies, st: &mut ServerState, e: crate::sut::SutError) {
    use crate::sut::SutError;
    let (service, reply) = match &e {
        SutError::Unreachable { service, .. } => (*service, Reply::Unreachable(e.to_string())),
        SutError::Malformed { service, .. } => (*service, Reply::Malformed(e.to_string())),
        SutError::Status { service, .. } | SutError::Refused { service, .. } | SutError::Timeout { service, .. } => (*service, Reply::Failed(e.to_string())),
    };
    push(timeline, replies, if service == "helix" { "api" } else { service }, reply);
    st.errors.push(e.to_string());
}

/// The last reply of each kind per service, so an unchanged one is shared (see [`Event::Poll`]).
#[derive(Default)]
pub struct Replies {
    last: std::collections::HashMap<(&'static str, std::mem::Discriminant<Reply>), Arc<Reply>>,
}

impl Replies {
    pub fn share(&mut self, service: &'static str, reply: Reply) -> Arc<Reply> {
        let key = (service, std::mem::discriminant(&reply));
        match self.last.get(&key) {
            Some(prev) if **prev == reply => prev.clone(),
            _ => {
                let r = Arc::new(reply);
                self.last.insert(key, r.clone());
                r
            }
        }
    }
}

fn push(timeline: &Timeline, replies: &mut Replies, service: &'static str, reply: Reply) {
    timeline.push(Event::Poll { service: service.into(), reply: replies.share(service, reply) });
}

fn describe(r: &Reply) -> String {
    match r {
        Reply::Malformed(e) | Reply::Failed(e) | Reply::Unreachable(e) => e.clone(),
        other => format!("{other:?}"),
    }
}

async fn helix_lobbies(helix: &HelixClient, sessions: &[String]) -> Result<Vec<HelixLobby>, crate::sut::SutError> {
    let answers = futures::future::join_all(sessions.iter().map(|s| helix.session_lobby(s))).await;
    sessions.iter().zip(answers).map(|(s, a)| a.map(|lobby_id| HelixLobby { session: s.clone(), lobby_id })).collect()
}

/// Sample what each service holds, on its own clock: a slow engine's stats must not delay the
/// polls of server state.
async fn resource_loop(services: Arc<dyn ServiceControl>, timeline: Timeline) {
    let mut tick = tokio::time::interval(RESOURCES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let samples = services.resources().await;
        if !samples.is_empty() {
            timeline.push(Event::Resources { samples });
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
                timeline.push(Event::Poll { service: "wolf".into(), reply: Arc::new(Reply::EventsEnded) });
            }
            Err(e) => tracing::debug!("wolf events: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Put one line of a service's log on the timeline at the time it was written, when the line
/// says it: reading it comes later, and detectors compare log lines with browser events to the
/// millisecond.
pub(crate) fn push_log_line(timeline: &Timeline, service: &str, text: &str) {
    let read_at = now_ms();
    let (at, level, message) = parse_log_line(text, read_at);
    timeline.push_at(at.unwrap_or(read_at), Event::Log { service: service.to_string(), level, message });
}

/// A log line's event time (when it can be read from the line), level and message. Wolf lines
/// are parsed; other services' lines are kept whole, less Docker's or the journal's wrapping.
fn parse_log_line(text: &str, read_at: EpochMs) -> (Option<EpochMs>, String, String) {
    match journal_prefix(text) {
        Some((stamp, whole_second, body)) => {
            // The service's own stamp, where its line has one, is finer than the journal's
            // (Wolf's time of day is placed on the journal's day).
            let (own, level, message) = parse_service_line(body, stamp);
            // A whole-second stamp says the line was written in that second, and not after it
            // was read: the latest such instant is nearest for a line read as it comes.
            let journal = if whole_second { read_at.clamp(stamp, stamp + 999.0) } else { stamp };
            (Some(own.unwrap_or(journal)), level, message)
        }
        None => parse_service_line(text, read_at),
    }
}

/// A service's own line, maybe wrapped by Docker; `near` places a bare time of day.
fn parse_service_line(text: &str, near: EpochMs) -> (Option<EpochMs>, String, String) {
    match wolf_log::parse_line(text) {
        Some(r) => (r.docker_time.as_deref().and_then(rfc3339_ms).or_else(|| time_of_day_ms(&r.time, near)), r.level, r.message),
        None => {
            // Lines captured from Docker carry the engine's stamp in front; the service's own
            // line follows it.
            let (docker_time, body) = wolf_log::unwrap_docker(text);
            let at = docker_time.and_then(rfc3339_ms).or_else(|| rfc3339_prefix_ms(body));
            (at, env_logger_level(body).unwrap_or("INFO").to_string(), body.to_string())
        }
    }
}

/// `journalctl -o short-iso` (or `short-iso-precise`) wraps each line as
/// `2026-11-21T05:24:14+0000 host wolf[1234]: <line>`: its stamp (ms since the epoch), whether
/// the stamp is whole seconds, and the line.
fn journal_prefix(text: &str) -> Option<(EpochMs, bool, &str)> {
    let (stamp, rest) = text.split_once(' ')?;
    // Cheap refusal first: most lines are not the journal's.
    // A `Z` stamp is Docker's or kubectl's (`--timestamps`), handled with the service's line.
    if stamp.len() < 20 || !stamp.as_bytes()[0].is_ascii_digit() || stamp.as_bytes().get(10) != Some(&b'T') || stamp.ends_with('Z') {
        return None;
    }
    let t = chrono::DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.f%z").ok()?;
    let (_host, rest) = rest.split_once(' ')?;
    let (ident, body) = rest.split_once(": ").or_else(|| rest.strip_suffix(':').map(|i| (i, "")))?;
    // `wolf[1234]` or `wolf`: one word.
    if ident.is_empty() || ident.contains(' ') {
        return None;
    }
    Some((t.timestamp_micros() as f64 / 1000.0, !stamp.contains('.'), body))
}

/// Wolf writes only the UTC time of day: place it on the day that puts it nearest to `near`.
fn time_of_day_ms(time: &str, near: EpochMs) -> Option<EpochMs> {
    let t = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()?;
    let day_ms = 86_400_000.0;
    let midnight = (near / day_ms).floor() * day_ms;
    let of_day = t.signed_duration_since(chrono::NaiveTime::MIN).num_microseconds()? as f64 / 1000.0;
    [midnight - day_ms, midnight, midnight + day_ms].into_iter().map(|m| m + of_day).min_by(|a, b| (a - near).abs().total_cmp(&(b - near).abs()))
}

/// `[2026-11-21T05:24:14.804Z INFO  target] …` as env_logger writes it.
fn rfc3339_prefix_ms(line: &str) -> Option<EpochMs> {
    rfc3339_ms(line.strip_prefix('[')?.split_whitespace().next()?)
}

fn rfc3339_ms(stamp: &str) -> Option<EpochMs> {
    chrono::DateTime::parse_from_rfc3339(stamp).ok().map(|t| t.timestamp_micros() as f64 / 1000.0)
}

fn env_logger_level(line: &str) -> Option<&'static str> {
    let head = line.get(..48)?;
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].into_iter().find(|l| head.contains(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_become_epoch_milliseconds() {
        // 2026-11-21T05:50:20.746Z
        let near = 1_795_240_220_803.0;
        assert_eq!(time_of_day_ms("05:50:20.746655614", near).map(|t| t.round()), Some(1_795_240_220_747.0));
        // Just after midnight, a line from just before it belongs to the previous day.
        let after_midnight = 1_795_219_200_500.0; // 2026-11-21T00:00:00.5Z
        assert_eq!(time_of_day_ms("23:59:59.900000000", after_midnight).map(|t| t.round()), Some(1_795_219_199_900.0));
        assert_eq!(rfc3339_prefix_ms("[2026-11-21T05:24:14.804Z INFO  moonlight_web] x"), Some(1_795_238_654_804.0));
        assert_eq!(rfc3339_prefix_ms("no stamp"), None);
        assert_eq!(rfc3339_ms("2026-11-21T05:24:14.804123456Z"), Some(1_795_238_654_804.123));
    }

    fn parse(text: &str) -> (Option<EpochMs>, String, String) {
        parse_log_line(text, 1_795_238_654_000.0)
    }

    #[test]
    fn docker_stamped_lines_take_the_engines_time() {
        // Wolf's own time of day says 05:24:14.000; the engine's stamp is the instant used.
        let (at, level, message) = parse("2026-11-21T05:24:14.804Z wolf-1  | 05:24:14.000000000 WARN  | [HTTPS] x");
        assert_eq!((at, level.as_str(), message.as_str()), (Some(1_795_238_654_804.0), "WARN", "[HTTPS] x"));
        let (at, level, message) = parse("2026-11-21T05:24:14.900Z [2026-11-21T05:24:14.804Z ERROR moonlight_web] boom");
        assert_eq!((at, level.as_str(), message.as_str()), (Some(1_795_238_654_900.0), "ERROR", "[2026-11-21T05:24:14.804Z ERROR moonlight_web] boom"));
        let (at, _, message) = parse("[2026-11-21T05:24:14.804Z INFO  moonlight_web] plain");
        assert_eq!((at, message.as_str()), (Some(1_795_238_654_804.0), "[2026-11-21T05:24:14.804Z INFO  moonlight_web] plain"));
    }

    #[test]
    fn journal_lines_take_the_services_time_or_the_journals() {
        // 2026-11-21T05:24:14Z is 1_795_238_654_000: read 120 ms into that second.
        let read_at = 1_795_238_654_120.0;
        // A Wolf line: Wolf's own time of day (finer) on the journal's day; the message as Wolf wrote it.
        let (at, level, message) =
            parse_log_line("2026-11-21T05:24:14+0000 gpu-host wolf[812]: 05:24:14.100000000 INFO  | [LOBBY] Session 1 joining lobby x", read_at);
        assert_eq!((at.map(f64::round), level.as_str(), message.as_str()), (Some(1_795_238_654_100.0), "INFO", "[LOBBY] Session 1 joining lobby x"));
        // The colon form of the offset (newer journalctl), an env_logger line with its own stamp.
        let (at, level, message) =
            parse_log_line("2026-11-21T05:24:14+00:00 h moonlight-web[9]: [2026-11-21T05:24:14.050Z WARN  moonlight_web] chunk too short", read_at);
        assert_eq!(
            (at, level.as_str(), message.as_str()),
            (Some(1_795_238_654_050.0), "WARN", "[2026-11-21T05:24:14.050Z WARN  moonlight_web] chunk too short")
        );
        // No stamp of its own: the journal's second, as late in it as the reading allows.
        let (at, _, message) = parse_log_line("2026-11-21T05:24:14+0000 h api: started", read_at);
        assert_eq!((at, message.as_str()), (Some(read_at), "started"));
        let (at, _, _) = parse_log_line("2026-11-21T05:24:14+0000 h api: started", read_at + 60_000.0);
        assert_eq!(at, Some(1_795_238_654_999.0), "read long after: the end of its second");
        // `short-iso-precise` is exact; another zone is converted.
        let (at, _, _) = parse_log_line("2026-11-21T06:24:14.804321+01:00 h api[3]: x", read_at);
        assert_eq!(at, Some(1_795_238_654_804.321));
        // Not the journal's: kept whole.
        let (at, _, message) = parse_log_line("2026-11-21 is a date, not a stamp: ok", read_at);
        assert_eq!((at, message.as_str()), (None, "2026-11-21 is a date, not a stamp: ok"));
    }
}
