//! Detectors, live: re-evaluated on the timeline every 250 ms while a scenario runs, so a
//! failure is named within a fraction of a second of its evidence — and recorded once, with the
//! moment the driver knew.

use super::detectors::{detect, Detection, Thresholds};
use crate::timeline::{now_ms, EpochMs, Event, Timeline};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const EVERY: Duration = Duration::from_millis(250);
/// How long the last evaluation waits for late evidence once something was named: the log
/// followers read every 100 ms and a poll round takes a few ms.
pub const SETTLE: Duration = Duration::from_millis(600);

pub struct LiveDetectors {
    found: Arc<Mutex<Vec<Detection>>>,
    count: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
    timeline: Timeline,
    thresholds: Thresholds,
    since: EpochMs,
}

impl LiveDetectors {
    /// Watch observations from `since` on.
    pub fn start(timeline: Timeline, thresholds: Thresholds, since: EpochMs) -> Self {
        let found = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = tokio::sync::watch::channel(0);
        let task = tokio::spawn(run(timeline.clone(), thresholds.clone(), since, found.clone(), count_tx));
        LiveDetectors { found, count, task, timeline, thresholds, since }
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
    /// was named, the witnesses of a death that explains it may still be writing it down (a log
    /// line a moment behind a poll): they get [`SETTLE`] first, and the rule of
    /// [`super::detectors::deaths`] is applied to everything named.
    pub async fn finish(self) -> Vec<Detection> {
        self.task.abort();
        if !self.is_empty() {
            tokio::time::sleep(SETTLE).await;
        }
        evaluate(&self.timeline, &self.thresholds, self.since, &self.found);
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let before: Vec<String> = found.iter().map(|d| d.label()).collect();
        super::detectors::deaths::explained_by_deaths(&mut found);
        for label in before.iter().filter(|l| !found.iter().any(|d| &d.label() == *l)) {
            tracing::warn!("{label} withdrawn: a death explains it");
        }
        found
    }
}

async fn run(timeline: Timeline, thresholds: Thresholds, since: EpochMs, found: Arc<Mutex<Vec<Detection>>>, count: tokio::sync::watch::Sender<usize>) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let t = timeline.clone();
        let th = thresholds.clone();
        let f = found.clone();
        // Folding the timeline is CPU work; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || evaluate(&t, &th, since, &f)).await;
        let n = found.lock().unwrap_or_else(|e| e.into_inner()).len();
        count.send_if_modified(|c| std::mem::replace(c, n) != n);
    }
}

/// Record detections of faults not yet recorded, stamped with the time the driver knew.
fn evaluate(timeline: &Timeline, thresholds: &Thresholds, since: EpochMs, found: &Mutex<Vec<Detection>>) {
    let obs: Vec<_> = timeline.snapshot().into_iter().filter(|o| o.at >= since).collect();
    let now = now_ms();
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    for mut d in detect(&obs, thresholds) {
        if found.iter().any(|f| f.fault == d.fault) {
            continue;
        }
        // The evidence may be older than this evaluation: the driver knew only now.
        d.decided_at = now.max(d.decided_at);
        tracing::warn!("{}: {}", d.label(), d.message);
        timeline.push(Event::Detection { fault: d.fault.to_string(), name: d.name.to_string(), tab: d.tab, message: d.message.clone(), first_symptom: d.first_symptom });
        found.push(d);
    }
}
