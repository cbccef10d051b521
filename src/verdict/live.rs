//! Detectors, live: the [`Model`] takes in each new observation as it arrives, and the
//! detectors run over it when new evidence came — so a failure is named within a fraction of a
//! second of its evidence, and recorded once, with the moment the driver knew. Nothing here
//! reads the run's history again: an evaluation costs what the model holds (a window of recent
//! evidence), however long the run has been going.

use super::detectors::{Detection, Model, Thresholds};
use crate::timeline::{now_ms, EpochMs, Event, Timeline};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The least time between two evaluations: evidence arrives in bursts (a probe batch, a poll
/// round), and one evaluation per burst is enough. Detection latency is at most this plus the
/// evaluation.
pub const SPACING: Duration = Duration::from_millis(100);
/// An evaluation at least this often without new evidence, for the rules that decide on a
/// deadline passing (F2's ICE deadline, F12's launch stall).
pub const IDLE_EVERY: Duration = Duration::from_millis(500);
/// How long the last evaluation waits for late evidence once something was named: the log
/// followers read every 100 ms and a poll round takes a few ms.
pub const SETTLE: Duration = Duration::from_millis(600);

pub struct LiveDetectors {
    found: Arc<Mutex<Vec<Detection>>>,
    count: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
    state: Arc<Mutex<Watcher>>,
}

/// The model and where it is in the timeline.
struct Watcher {
    timeline: Timeline,
    thresholds: Thresholds,
    since: EpochMs,
    cursor: crate::timeline::Cursor,
    model: Model,
}

impl LiveDetectors {
    /// Watch observations from `since` on.
    pub fn start(timeline: Timeline, thresholds: Thresholds, since: EpochMs) -> Self {
        let found = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = tokio::sync::watch::channel(0);
        let model = Model::new(&thresholds);
        let state = Arc::new(Mutex::new(Watcher { cursor: timeline.cursor(), timeline, thresholds, since, model }));
        let task = tokio::spawn(run(state.clone(), found.clone(), count_tx));
        LiveDetectors { found, count, task, state }
    }

    /// Resolves once some failure has been named.
    pub fn first_named(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut count = self.count.clone();
        async move {
            let _ = count.wait_for(|n| *n > 0).await;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self.count.borrow() == 0
    }

    /// Stop watching; a last evaluation catches evidence of the final moments. When something
    /// was named, or the scenario's operation failed (`op_failed`: a DevTools call can fail on a
    /// closed connection a moment before the browser's watcher sees the process gone), the
    /// witnesses of a death that explains it may still be writing it down (a log line a moment
    /// behind a poll): they get [`SETTLE`] first, and the rule of
    /// [`super::detectors::deaths`] is applied to everything named.
    pub async fn finish(self, op_failed: bool) -> Vec<Detection> {
        self.task.abort();
        if op_failed || !self.is_empty() {
            tokio::time::sleep(SETTLE).await;
        }
        evaluate(&self.state, &self.found);
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let before: Vec<String> = found.iter().map(|d| d.label()).collect();
        super::detectors::deaths::explained_by_deaths(&mut found);
        for label in before.iter().filter(|l| !found.iter().any(|d| &d.label() == *l)) {
            tracing::warn!("{label} withdrawn: a death explains it");
        }
        found
    }
}

async fn run(state: Arc<Mutex<Watcher>>, found: Arc<Mutex<Vec<Detection>>>, count: tokio::sync::watch::Sender<usize>) {
    let mut changed = state.lock().unwrap_or_else(|e| e.into_inner()).timeline.changed();
    loop {
        // New evidence, or a deadline that may have passed meanwhile.
        let _ = tokio::time::timeout(IDLE_EVERY, changed.changed()).await;
        let (s, f) = (state.clone(), found.clone());
        // Detecting is CPU work; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || evaluate(&s, &f)).await;
        let n = found.lock().unwrap_or_else(|e| e.into_inner()).len();
        count.send_if_modified(|c| std::mem::replace(c, n) != n);
        tokio::time::sleep(SPACING).await;
    }
}

/// Take in what arrived, then record detections of faults not yet recorded, stamped with the
/// time the driver knew.
fn evaluate(state: &Mutex<Watcher>, found: &Mutex<Vec<Detection>>) {
    let mut w = state.lock().unwrap_or_else(|e| e.into_inner());
    let Watcher { timeline, thresholds, since, cursor, model } = &mut *w;
    timeline.take_new(cursor, |o| {
        if o.at >= *since {
            model.ingest(o);
        }
    });
    let now = now_ms();
    let detections = model.detect(thresholds);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    for mut d in detections {
        if found.iter().any(|f| f.fault == d.fault) {
            continue;
        }
        // The evidence may be older than this evaluation: the driver knew only now.
        d.decided_at = now.max(d.decided_at);
        tracing::warn!("{}: {}", d.label(), d.message);
        timeline.push(Event::Detection { fault: d.fault, name: d.name.to_string(), tab: d.tab, message: d.message.clone(), first_symptom: d.first_symptom });
        found.push(d);
    }
}
