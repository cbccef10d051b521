//! `helix-e2e watch`: the run's server-side judgement, continuously, without a browser.
//!
//! Operators of a deployment want the failures a test run names while nobody runs a test: the
//! same monitor follows the deployment (Wolf's and moonlight-web's polls, Wolf's events, the
//! service logs, the probe of Wolf's HTTPS port), the same detectors' [`Model`] takes in each
//! observation, and every failure whose evidence is all on the servers ([`WATCHED`]) is printed
//! once per incident, as it happens, with the evidence the detector cites.
//!
//! Bounded for days: the timeline keeps only what the reader has not read
//! ([`Timeline::unrecorded`]), the model keeps a window of every kind of record
//! ([`Model::bounded`]), log lines are not copied anywhere, the incidents are keyed by failure
//! and forgotten when quiet, the agent sessions followed are those streaming now, and the
//! metrics keep the last answer of each poll.
//!
//! **Once per incident.** A detector answers from the evidence in its window, so while a
//! failure lasts (and for a window after) every evaluation names it again. An incident of a
//! failure opens when it is first named and stays open while evaluations keep naming it; it
//! closes once none has for [`QUIET_MS`], and a later detection is a new incident. Before a
//! detection is printed it must still stand [`SETTLE_MS`] later: a death's witness may be a
//! moment behind its victims' (the rule of `verdict/detectors/deaths.rs`, which the model
//! applies at every evaluation, then withdraws them before anyone saw them).

mod lines;
pub mod metrics;
pub mod probe;

pub use lines::{line, probe_line};

use crate::catalog::FailureId;
use crate::config::Target;
use crate::sut::control::docker::logs::{Dest, LogCapture};
use crate::sut::control::docker::DockerServices;
use crate::sut::control::Service;
use crate::sut::log_source::LogFeed;
use crate::sut::monitor::Monitor;
use crate::timeline::{now_ms, EpochMs, Event, Observation, Reply, Timeline};
use crate::verdict::detectors::{Detection, Model, Thresholds};
use crate::verdict::live::{IDLE_EVERY, SETTLE, SPACING};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// The failures a watch names: every detector whose evidence is all server-side. The others
/// need what only a run has: a tab's observations (F1, F2, F4, F8, F9, F12, F13, F14, F21, B1–B3),
/// the driver's own acts (F18 wants the tab the driver cut; F20 fits resources against the
/// connect/disconnect cycles the driver completed).
pub const WATCHED: &[FailureId] = {
    use FailureId::*;
    &[F3, F5, F6, F7, F10, F11, F15, F16, F17, F19, D1, D2]
};

/// How long a failure must go unnamed before its incident is over.
pub const QUIET_MS: f64 = 30_000.0;
/// How long a detection must stand before it is printed (the live detectors' settling time).
pub const SETTLE_MS: f64 = SETTLE.as_millis() as f64;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Connect(#[from] crate::sut::ConnectError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: SocketAddr, source: std::io::Error },
}

pub struct WatchOptions {
    pub target: Target,
    pub thresholds: Thresholds,
    /// One JSON object a line on stdout instead of lines for people.
    pub json: bool,
    /// Where to serve `/metrics`.
    pub metrics: Option<SocketAddr>,
    /// A canary viewer tab every so often (`--probe-every`).
    pub probe: Option<probe::ProbeOptions>,
}

/// What a watch saw, for its last word.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchSummary {
    pub watched_s: f64,
    /// Incidents named, by failure.
    pub named: BTreeMap<FailureId, u64>,
    pub observations: usize,
    /// Canary probes that saw their tab stream its own lobby, and those that did not.
    pub probes_ok: u64,
    pub probes_failed: u64,
}

impl WatchSummary {
    /// Whether the watch saw something wrong: a failure named or a probe failed.
    pub fn failed(&self) -> bool {
        !self.named.is_empty() || self.probes_failed > 0
    }
}

/// The open incidents, and the detections waiting out [`SETTLE_MS`]. Keyed by failure: a few
/// entries at most, whatever the age of the watch.
#[derive(Debug, Default)]
pub struct Incidents {
    /// Failure → when an evaluation last named it.
    open: BTreeMap<FailureId, EpochMs>,
    /// Failure → when an evaluation first named it, not yet printed.
    pending: BTreeMap<FailureId, EpochMs>,
}

impl Incidents {
    /// One evaluation's detections at `now`: the ones that open an incident now.
    pub fn observe(&mut self, now: EpochMs, found: Vec<Detection>) -> Vec<Detection> {
        let found: Vec<Detection> = found.into_iter().filter(|d| WATCHED.contains(&d.fault)).collect();
        let mut opened = Vec::new();
        for d in &found {
            if let Some(last) = self.open.get_mut(&d.fault) {
                *last = now;
                continue;
            }
            let since = *self.pending.entry(d.fault).or_insert(now);
            if now - since >= SETTLE_MS {
                self.pending.remove(&d.fault);
                self.open.insert(d.fault, now);
                opened.push(d.clone());
            }
        }
        // A detection that did not stand (a death explains it) is withdrawn unseen.
        self.pending.retain(|id, _| found.iter().any(|d| d.fault == *id));
        self.open.retain(|_, last| now - *last < QUIET_MS);
        opened
    }
}

/// The agent sessions whose Helix record the monitor polls (F10 compares Helix's belief with
/// Wolf's lobbies): those with a session in Wolf's or moonlight-web's latest answer — someone
/// is streaming them — and the probes' canary, which the watch knows is live. Another session
/// nobody streams is not followed: Helix may keep the lobby id of a stopped session in its
/// record, which is no ghost.
#[derive(Default)]
struct Followed {
    wolf: BTreeSet<String>,
    mlw: BTreeSet<String>,
    /// Followed whoever streams them: the canary (a Wolf restart ends its streams, and its lost
    /// lobby is exactly what F10 is about).
    pinned: BTreeSet<String>,
}

impl Followed {
    fn pin(&mut self, ses: &str, monitor: &Monitor) {
        if self.pinned.insert(ses.to_string()) {
            monitor.watch_session(ses);
        }
    }

    fn observe(&mut self, o: &Observation, monitor: &Monitor) {
        let Event::Poll { reply, .. } = &o.event else { return };
        let sessions =
            |ids: Vec<&str>| -> BTreeSet<String> { ids.into_iter().filter_map(crate::verdict::checks::agent_session_of).map(str::to_string).collect() };
        let before: BTreeSet<String> = self.wolf.union(&self.mlw).cloned().collect();
        match &**reply {
            Reply::WolfSessions(s) => self.wolf = sessions(s.iter().map(|w| w.client_unique_id.as_str()).collect()),
            Reply::MlwSessions(s) => self.mlw = sessions(s.iter().filter_map(|m| m.client_unique_id.as_deref()).collect()),
            _ => return,
        }
        let now: BTreeSet<String> = self.wolf.union(&self.mlw).cloned().collect();
        for ses in now.difference(&before) {
            monitor.watch_session(ses);
        }
        for ses in before.difference(&now).filter(|s| !self.pinned.contains(*s)) {
            monitor.unwatch_session(ses);
        }
    }
}

/// Watch `opts.target` until `stop` resolves.
pub async fn watch(opts: WatchOptions, stop: impl std::future::Future<Output = ()>) -> Result<WatchSummary, WatchError> {
    let started = std::time::Instant::now();
    let target = &opts.target;
    let timeline = Timeline::unrecorded();
    let crate::sut::Clients { helix, wolf, mlw } = target.connect(&timeline).await?;
    let listener = match opts.metrics {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| WatchError::Metrics { addr, source })?),
        None => None,
    };
    let (capture, streamed) = container_logs(target, &timeline).await;
    let mut missing = crate::sut::log_source::missing(&target.logs);
    missing.retain(|s| !streamed.contains(s));
    if let Some(m) = crate::sut::log_source::missing_logs_message(&missing) {
        eprintln!("helix-e2e watch: {m}");
    }
    // Lines are read, never copied: a watch keeps no file that grows.
    let feeds = target.logs.iter().map(|(service, source)| LogFeed { service: service.clone(), source: source.clone(), copy_to: None }).collect();
    let monitor = Monitor::start(wolf, target.wolf_https.clone(), mlw, helix.clone(), feeds, None, timeline.clone());
    let (stop_probes, probes_stop) = tokio::sync::watch::channel(false);
    let (probe_tx, mut probe_rx) = tokio::sync::mpsc::unbounded_channel();
    let prober = opts.probe.clone().map(|p| probe::start(p, target.clone(), helix, monitor.state.clone(), probe_tx, probes_stop));
    // Served once the monitor follows: a scraper that sees the endpoint sees what happens next.
    let metrics = metrics::Metrics::new();
    let server = listener.map(|l| {
        if let Ok(bound) = l.local_addr() {
            eprintln!("helix-e2e watch: metrics at http://{bound}/metrics");
        }
        metrics.serve(l)
    });
    let names: Vec<String> = WATCHED.iter().map(|id| format!("{id} {}", id.name())).collect();
    eprintln!("helix-e2e watch: watching {} ({}); Ctrl-C stops", target.name, names.join(", "));

    let t = &opts.thresholds;
    let mut model = Model::bounded(t);
    let mut incidents = Incidents::default();
    let mut followed = Followed::default();
    let mut last = metrics::Last::default();
    let mut cursor = timeline.cursor();
    let mut changed = timeline.changed();
    let mut named: BTreeMap<FailureId, u64> = BTreeMap::new();
    let mut observations = 0usize;
    let (mut probes_ok, mut probes_failed) = (0u64, 0u64);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(r) = probe_rx.recv() => {
                println!("{}", probe_line(&r, opts.json));
                metrics.probed(&r);
                if let Some(ses) = &r.session {
                    followed.pin(ses, &monitor);
                }
                if r.ok { probes_ok += 1 } else { probes_failed += 1 }
                continue;
            }
            // New evidence, or a deadline that may have passed meanwhile.
            _ = tokio::time::timeout(IDLE_EVERY, changed.changed()) => {}
        }
        timeline.take_new(&mut cursor, |o| {
            observations += 1;
            model.ingest(o);
            metrics.observe(&mut last, o);
            followed.observe(o, &monitor);
        });
        let now = now_ms();
        for d in incidents.observe(now, model.detect(t)) {
            println!("{}", line(&d, opts.json));
            metrics.named(d.fault);
            *named.entry(d.fault).or_default() += 1;
        }
        tokio::time::sleep(SPACING).await;
    }
    // The probe closes its browser and stops the canary it created before it ends.
    let _ = stop_probes.send(true);
    if let Some(p) = prober {
        let _ = p.await;
    }
    monitor.stop().await;
    if let Some(c) = capture {
        c.stop().await;
    }
    if let Some(s) = server {
        s.abort();
    }
    Ok(WatchSummary { watched_s: started.elapsed().as_secs_f64(), named, observations, probes_ok, probes_failed })
}

/// The logs of a deployment in containers that `[logs]` does not say where to find: from the
/// engine, straight onto the timeline from now on (a run's capture writes files; a watch must keep
/// none that grows). Returns the capture and the services it covers; without the engine the watch
/// goes on without those logs and says so (the missing-logs line names what that blinds).
async fn container_logs(target: &Target, timeline: &Timeline) -> (Option<LogCapture>, Vec<String>) {
    let wanted: Vec<Service> = target.logged_by_containers().iter().filter_map(|s| s.parse().ok()).collect();
    if wanted.is_empty() {
        return (None, Vec::new());
    }
    match DockerServices::for_target(&target.containers).await {
        Ok(docker) => {
            let names: Vec<String> = wanted.iter().map(|s| s.name().to_string()).collect();
            eprintln!("helix-e2e watch: following the logs of {} through the Docker engine at {}", names.join(", "), docker.endpoint());
            (Some(docker.follow_logs(&wanted, std::time::SystemTime::now(), Dest::Timeline(timeline.clone()))), names)
        }
        Err(e) => {
            eprintln!("helix-e2e watch: no container logs: {e}");
            (None, Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(fault: FailureId, first: EpochMs) -> Detection {
        Detection { fault, name: fault.name().into(), tab: None, message: format!("{fault} evidence"), first_symptom: first, decided_at: first }
    }

    #[test]
    fn a_failure_is_printed_once_per_incident_after_it_stood() {
        let mut i = Incidents::default();
        assert!(i.observe(1000.0, vec![d(FailureId::F5, 900.0)]).is_empty(), "not before it stood SETTLE_MS");
        let opened = i.observe(1000.0 + SETTLE_MS, vec![d(FailureId::F5, 900.0)]);
        assert_eq!(opened.iter().map(|d| d.fault).collect::<Vec<_>>(), [FailureId::F5]);
        // Named again and again while it lasts, and for the window after: one incident.
        for k in 1..100 {
            let now = 1000.0 + SETTLE_MS + 500.0 * k as f64;
            assert!(i.observe(now, vec![d(FailureId::F5, now - 2000.0)]).is_empty(), "printed again at {now}");
        }
        // Quiet for QUIET_MS: the incident is over, and a new one is printed.
        let later = 1000.0 + SETTLE_MS + 500.0 * 99.0 + QUIET_MS;
        assert!(i.observe(later, vec![]).is_empty());
        assert!(i.observe(later + 1.0, vec![d(FailureId::F5, later)]).is_empty());
        assert_eq!(i.observe(later + 1.0 + SETTLE_MS, vec![d(FailureId::F5, later)]).len(), 1);
    }

    #[test]
    fn a_detection_a_death_withdrew_before_it_stood_is_never_printed() {
        let mut i = Incidents::default();
        assert!(i.observe(1000.0, vec![d(FailureId::F7, 900.0)]).is_empty());
        // The death's witness arrived: the model now names the death alone.
        assert!(i.observe(1300.0, vec![d(FailureId::D2, 800.0)]).is_empty());
        let opened = i.observe(1300.0 + SETTLE_MS, vec![d(FailureId::D2, 800.0)]);
        assert_eq!(opened.iter().map(|d| d.fault).collect::<Vec<_>>(), [FailureId::D2]);
        // Had F7 come back later it would start its settling over, not print at once.
        assert!(i.observe(1400.0 + SETTLE_MS, vec![d(FailureId::D2, 800.0), d(FailureId::F7, 900.0)]).is_empty());
    }

    #[test]
    fn failures_that_need_a_tab_or_the_drivers_acts_are_not_named_by_a_watch() {
        let mut i = Incidents::default();
        let all: Vec<Detection> = FailureId::ALL.iter().map(|id| d(*id, 0.0)).collect();
        i.observe(0.0, all.clone());
        let named: Vec<FailureId> = i.observe(SETTLE_MS, all).into_iter().map(|d| d.fault).collect();
        assert_eq!(named, WATCHED);
        for id in [FailureId::F1, FailureId::F2, FailureId::F4, FailureId::F8, FailureId::F9, FailureId::F18, FailureId::F20, FailureId::B1] {
            assert!(!WATCHED.contains(&id), "{id} needs a tab or the driver");
        }
    }

    /// moonlight-web's `chunk too short`, three times within a second from `at` (F11), after a
    /// death of Wolf at 0.
    fn death_then_sctp_errors(at: EpochMs) -> Vec<Observation> {
        let died = Event::Died { what: crate::timeline::Casualty::Service { service: "wolf".into() }, detail: "exit status: 134".into() };
        let mut obs = vec![Observation { at: 0.0, event: died }];
        for k in 0..3 {
            let line = Event::Log {
                service: "moonlight-web".into(),
                level: "WARN".into(),
                message: "[Streamer s] unable to parse SCTP packet chunk too short".into(),
            };
            obs.push(Observation { at: at + 300.0 * k as f64, event: line });
        }
        obs
    }

    fn named_by(mut model: Model, obs: &[Observation]) -> Vec<FailureId> {
        for o in obs {
            model.ingest(o);
        }
        model.detect(&Thresholds::default()).into_iter().map(|d| d.fault).collect()
    }

    #[test]
    fn a_death_explains_what_follows_it_for_the_window_not_for_days() {
        let t = Thresholds::default();
        // Within the window, the death explains the SCTP errors, in a watch as in a run.
        let soon = death_then_sctp_errors(10_000.0);
        assert_eq!(named_by(Model::bounded(&t), &soon), [FailureId::D2]);
        // An hour later a run's model still takes them for the death's doing; a watch's has let
        // the death go with its window and names them.
        let later = death_then_sctp_errors(3_600_000.0);
        assert_eq!(named_by(Model::new(&t), &later), [FailureId::D2]);
        assert_eq!(named_by(Model::bounded(&t), &later), [FailureId::F11]);
    }
}
