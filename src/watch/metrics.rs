//! `watch --metrics ADDR`: what the watch sees, as Prometheus metrics (OpenMetrics text, which
//! Prometheus scrapes), from the same observations the detectors read.
//!
//! Gauges say what the last poll of each service answered; counters count what the watch saw
//! happen since it started. The registry and the exposition are the Prometheus project's Rust
//! crate (`prometheus-client`): its names get the `helix_e2e_` prefix and counters their
//! `_total`, and the text is what its encoder writes, so the format is not ours to get wrong.
//!
//! Why a lock around updates and scrapes: a poll replaces the per-lobby series (lobbies come and
//! go; a series of a lobby that is gone must go too, or labels pile up over days), and a scrape
//! in the middle of that replacement would see a lobby missing.

use crate::catalog::FailureId;
use crate::sut::moonlight_web::MlwSession;
use crate::sut::wolf::{LobbyMemory, WolfSession};
use crate::timeline::{Event, Observation, Reply};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// What moonlight-web's log says when a streamer's SCTP layer met a mangled chunk (F11).
const SCTP_ERROR: &str = "chunk too short";
/// What moonlight-web's log says when it starts a session's streamer.
const MLW_NEW_SESSION: &str = "[Stream] New ";
/// What moonlight-web's log says when a streamer's launch against Wolf timed out (F12, F15).
const LAUNCH_TIMEOUT: &str = "Error(Connect, TimedOut)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LobbyLabels {
    lobby_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MlwLabels {
    has_websocket: String,
    streamer_alive: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    id: String,
    name: String,
}

/// The metrics and the registry that exposes them. Cheap to clone (every metric is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Held while a poll's gauges are replaced and while the text is written (see the module).
    consistent: Arc<Mutex<()>>,
    wolf_sessions: Gauge,
    wolf_lobbies: Gauge,
    lobby_clients: Family<LobbyLabels, Gauge>,
    mlw_sessions: Family<MlwLabels, Gauge>,
    stuck: Gauge,
    zombie: Gauge,
    mismatched: Gauge,
    created: Family<ServiceLabels, Counter>,
    log_lines: Family<ServiceLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    sctp_lines: Counter,
    launch_timeouts: Counter,
    probes: Family<ProbeLabels, Counter>,
    first_frame: Histogram,
    browser_start: Histogram,
}

/// What the previous polls answered, to count sessions that are new and Wolf sessions without
/// a moonlight-web session. Only the last answer of each: nothing here grows with time.
#[derive(Default)]
pub struct Last {
    wolf: Option<Vec<WolfSession>>,
    mlw: Option<Vec<MlwSession>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("helix_e2e");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            consistent: Arc::default(),
            wolf_sessions: Gauge::default(),
            wolf_lobbies: Gauge::default(),
            lobby_clients: Family::default(),
            mlw_sessions: Family::default(),
            stuck: Gauge::default(),
            zombie: Gauge::default(),
            mismatched: Gauge::default(),
            created: Family::default(),
            log_lines: Family::default(),
            failures: Family::default(),
            sctp_lines: Counter::default(),
            launch_timeouts: Counter::default(),
            probes: Family::default(),
            // 0.25 s to 32 s: a healthy stand-in's first frame comes in about a second, a slow
            // deployment's in several, and a probe gives up at 30 s.
            first_frame: Histogram::new(exponential_buckets(0.25, 2.0, 8)),
            // 0.125 s to 16 s: a remote browser answers in milliseconds, a warm local Chromium
            // starts in about a second, a cold one on a busy host in several.
            browser_start: Histogram::new(exponential_buckets(0.125, 2.0, 8)),
        };
        r.register("wolf_sessions", "Wolf's streaming sessions (GET /api/v1/sessions), as last polled", m.wolf_sessions.clone());
        r.register("wolf_lobbies", "Wolf's lobbies (GET /api/v1/lobbies), as last polled", m.wolf_lobbies.clone());
        r.register("wolf_lobby_clients", "client_count of each Wolf lobby (GET /api/v1/system/memory), as last polled", m.lobby_clients.clone());
        r.register(
            "moonlight_web_sessions",
            "moonlight-web's sessions (GET /api/sessions) by has_websocket and streamer_alive, as last polled",
            m.mlw_sessions.clone(),
        );
        r.register("stuck_sessions", "moonlight-web sessions without their WebSocket whose streamer runs (F5's state), as last polled", m.stuck.clone());
        r.register("zombie_sessions", "moonlight-web sessions listed with a dead streamer (F6's state), as last polled", m.zombie.clone());
        r.register("mismatched_wolf_sessions", "Wolf sessions of a client moonlight-web has no session for (F7's state), as last polled", m.mismatched.clone());
        r.register(
            "sessions_created",
            "Sessions created since the watch started: Wolf's StreamSession events, moonlight-web's `[Stream] New … session` log lines",
            m.created.clone(),
        );
        r.register(
            "log_lines",
            "Service log lines read, by service: one that stops growing while its service works is a detector gone blind",
            m.log_lines.clone(),
        );
        r.register("failures_named", "Failures the watch named, by catalog id (each incident once)", m.failures.clone());
        r.register("sctp_error_lines", "moonlight-web log lines `chunk too short` (SCTP corruption, F11)", m.sctp_lines.clone());
        r.register(
            "launch_timeouts",
            "moonlight-web log lines `Error(Connect, TimedOut)` (a launch against Wolf timed out: F12, F15)",
            m.launch_timeouts.clone(),
        );
        r.register("probes", "Canary viewer probes (--probe-every) by result: ok (streamed its own lobby) or failed", m.probes.clone());
        r.register(
            "probe_time_to_first_frame_seconds",
            "Seconds from a canary probe asking for the viewer page to its first decoded frame",
            m.first_frame.clone(),
        );
        r.register(
            "probe_browser_start_seconds",
            "Seconds a canary probe's browser took to be ready (launched, or reached when remote) before it asked for the page",
            m.browser_start.clone(),
        );
        // Every failure the watch can name has its series from the start (at 0), so a rate or
        // an alert on it needs no "absent" case.
        for id in super::WATCHED {
            let _ = m.failures.get_or_create(&FailureLabels { id: id.to_string(), name: id.name().to_string() });
        }
        for result in ["ok", "failed"] {
            let _ = m.probes.get_or_create(&ProbeLabels { result: result.into() });
        }
        for service in ["wolf", "moonlight-web"] {
            let _ = m.created.get_or_create(&ServiceLabels { service: service.into() });
        }
        for service in crate::sut::log_source::SERVICES {
            let _ = m.log_lines.get_or_create(&ServiceLabels { service: service.into() });
        }
        Metrics { registry: Arc::new(r), ..m }
    }

    /// Take in one observation (the watch's reader hands each one here and to the detectors).
    pub fn observe(&self, last: &mut Last, o: &Observation) {
        if let Event::Log { service, .. } = &o.event {
            self.log_lines.get_or_create(&ServiceLabels { service: service.clone() }).inc();
        }
        match &o.event {
            Event::Poll { reply, .. } => match &**reply {
                Reply::WolfSessions(s) => {
                    let _g = self.consistent.lock().unwrap_or_else(|e| e.into_inner());
                    self.wolf_sessions.set(s.len() as i64);
                    last.wolf = Some(s.clone());
                    self.mismatched.set(mismatched(last) as i64);
                }
                Reply::MlwSessions(s) => {
                    let _g = self.consistent.lock().unwrap_or_else(|e| e.into_inner());
                    for ws in [true, false] {
                        for alive in [true, false] {
                            let n = s.iter().filter(|m| m.has_websocket == ws && m.streamer_alive == alive).count();
                            self.mlw_sessions.get_or_create(&MlwLabels { has_websocket: ws.to_string(), streamer_alive: alive.to_string() }).set(n as i64);
                        }
                    }
                    self.stuck.set(s.iter().filter(|m| m.stuck()).count() as i64);
                    self.zombie.set(s.iter().filter(|m| m.zombie()).count() as i64);
                    last.mlw = Some(s.clone());
                    self.mismatched.set(mismatched(last) as i64);
                }
                Reply::WolfLobbies(l) => {
                    self.wolf_lobbies.set(l.len() as i64);
                }
                Reply::WolfMemory(m) => self.lobby_counts(&m.lobbies),
                _ => {}
            },
            // Wolf says itself when it creates a session: exact, however short the session.
            Event::WolfEvent { name, .. } if name == "StreamSession" => {
                self.created.get_or_create(&ServiceLabels { service: "wolf".into() }).inc();
            }
            Event::Log { service, message, .. } if service == "moonlight-web" => {
                // moonlight-web's line for each session's streamer (F14 reads it too): exact,
                // however short the session, where its log is followed.
                if message.contains(MLW_NEW_SESSION) {
                    self.created.get_or_create(&ServiceLabels { service: "moonlight-web".into() }).inc();
                }
                if message.contains(SCTP_ERROR) {
                    self.sctp_lines.inc();
                }
                if message.contains(LAUNCH_TIMEOUT) {
                    self.launch_timeouts.inc();
                }
            }
            _ => {}
        }
    }

    fn lobby_counts(&self, lobbies: &[LobbyMemory]) {
        let _g = self.consistent.lock().unwrap_or_else(|e| e.into_inner());
        self.lobby_clients.clear();
        for l in lobbies {
            self.lobby_clients.get_or_create(&LobbyLabels { lobby_id: l.lobby_id.clone() }).set(l.client_count as i64);
        }
    }

    /// A failure the watch named (one incident).
    pub fn named(&self, id: FailureId) {
        self.failures.get_or_create(&FailureLabels { id: id.to_string(), name: id.name().to_string() }).inc();
    }

    /// A canary probe's result.
    pub fn probed(&self, r: &super::probe::ProbeResult) {
        self.probes.get_or_create(&ProbeLabels { result: if r.ok { "ok" } else { "failed" }.into() }).inc();
        if let Some(s) = r.first_frame_s {
            self.first_frame.observe(s);
        }
        if let Some(s) = r.browser_start_s {
            self.browser_start.observe(s);
        }
    }

    /// The exposition: OpenMetrics text, as Prometheus scrapes it.
    pub fn text(&self) -> String {
        let _g = self.consistent.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Serve [`Metrics::text`] at `GET /metrics` on `listener` until the task is aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let me = me.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], me.text()) }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("the metrics endpoint stopped: {e}");
            }
        })
    }
}

/// The OpenMetrics text format's media type (what `prometheus-client` writes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Wolf sessions whose client has no moonlight-web session, in the last answers of both.
fn mismatched(last: &Last) -> usize {
    let (Some(wolf), Some(mlw)) = (&last.wolf, &last.mlw) else { return 0 };
    let known: BTreeSet<&str> = mlw.iter().filter_map(|m| m.client_unique_id.as_deref()).collect();
    wolf.iter().filter(|w| !known.contains(w.client_unique_id.as_str())).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn poll(service: &str, what: &str, data: serde_json::Value) -> Observation {
        Observation { at: 0.0, event: Event::Poll { service: service.into(), reply: Arc::new(Reply::parse(service, what, data)) } }
    }

    fn line(text: &str) -> Observation {
        Observation { at: 0.0, event: Event::Log { service: "moonlight-web".into(), level: "WARN".into(), message: text.into() } }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn polls_and_lines_become_gauges_and_counters() {
        let m = Metrics::new();
        let mut last = Last::default();
        let wolf = |ids: &[&str]| {
            let s: Vec<_> = ids.iter().map(|i| json!({"app_id": "1", "client_id": i, "client_ip": "127.0.0.1", "client_unique_id": format!("u{i}")})).collect();
            poll("wolf", "sessions", json!(s))
        };
        let mlw = |sessions: serde_json::Value| poll("moonlight-web", "sessions", sessions);
        m.observe(&mut last, &wolf(&["1"]));
        let created = Observation { at: 0.0, event: Event::WolfEvent { name: "StreamSession".into(), data: json!({"client_id": "2"}) } };
        m.observe(&mut last, &created);
        m.observe(&mut last, &mlw(json!([{"session_id": "a", "client_unique_id": "u1", "mode": "create", "has_websocket": true, "streamer_alive": true}])));
        m.observe(&mut last, &wolf(&["1", "2"]));
        m.observe(
            &mut last,
            &mlw(json!([
                {"session_id": "a", "client_unique_id": "u1", "mode": "create", "has_websocket": false, "streamer_alive": true},
                {"session_id": "b", "client_unique_id": "u3", "mode": "create", "has_websocket": false, "streamer_alive": false}
            ])),
        );
        m.observe(&mut last, &line("[Streamer x] chunk too short"));
        m.observe(&mut last, &line("[Stream] New create session agent-ses_a-u for client helix-agent-ses_a-L-u (streamer pid 7)"));
        m.observe(&mut last, &line("Error(Connect, TimedOut)"));
        let memory = |lobbies: serde_json::Value| poll("wolf", "memory", json!({"lobbies": lobbies, "clients": []}));
        m.observe(
            &mut last,
            &memory(json!([{"lobby_id": "L1", "lobby_name": "a", "client_count": 2}, {"lobby_id": "L2", "lobby_name": "b", "client_count": 0}])),
        );
        m.named(FailureId::F5);
        let t = m.text();
        assert_eq!(value(&t, "helix_e2e_wolf_sessions"), Some(2.0), "{t}");
        // Wolf's own event and moonlight-web's own line count, not the polls.
        assert_eq!(value(&t, "helix_e2e_sessions_created_total{service=\"wolf\"}"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_sessions_created_total{service=\"moonlight-web\"}"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_stuck_sessions"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_zombie_sessions"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_mismatched_wolf_sessions"), Some(1.0), "Wolf's session 2 (u2) has no moonlight-web session: {t}");
        assert_eq!(value(&t, "helix_e2e_moonlight_web_sessions{has_websocket=\"false\",streamer_alive=\"true\"}"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_moonlight_web_sessions{has_websocket=\"true\",streamer_alive=\"true\"}"), Some(0.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_sctp_error_lines_total"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_launch_timeouts_total"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_log_lines_total{service=\"moonlight-web\"}"), Some(3.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_log_lines_total{service=\"wolf\"}"), Some(0.0), "every service from the start: {t}");
        assert_eq!(value(&t, "helix_e2e_failures_named_total{id=\"F5\",name=\"stuck-session\"}"), Some(1.0), "{t}");
        assert_eq!(value(&t, "helix_e2e_failures_named_total{id=\"F7\",name=\"lobby-mismatch\"}"), Some(0.0), "every watched id from the start: {t}");
        assert_eq!(value(&t, "helix_e2e_wolf_lobby_clients{lobby_id=\"L1\"}"), Some(2.0), "{t}");
        // A lobby that is gone takes its series with it.
        m.observe(&mut last, &memory(json!([{"lobby_id": "L2", "lobby_name": "b", "client_count": 1}])));
        let t = m.text();
        assert_eq!(value(&t, "helix_e2e_wolf_lobby_clients{lobby_id=\"L1\"}"), None, "{t}");
        assert_eq!(value(&t, "helix_e2e_wolf_lobby_clients{lobby_id=\"L2\"}"), Some(1.0), "{t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
    }
}
