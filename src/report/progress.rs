//! Live progress on a terminal: a line per finished operation and one status line, redrawn in
//! place, with the running operation and each tab's connection state and picture. Quiet when
//! stderr is not a terminal (CI logs get the runner's own lines and the reports instead).
//!
//! It reads the timeline rather than being called from every step, so scenarios need no hooks,
//! and folds only what arrived since its last redraw.

use super::digest::Digest;
use crate::timeline::{now_ms, Timeline};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Progress {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts redrawing when stderr is a terminal and `HELIX_E2E_PROGRESS` is not `0`.
    pub fn start(timeline: Timeline) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let wanted = std::io::stderr().is_terminal() && std::env::var("HELIX_E2E_PROGRESS").map(|v| v != "0").unwrap_or(true);
        let task = wanted.then(|| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut printed = 0;
                let started = now_ms();
                // One digest, fed what arrives: a redraw never reads the run again.
                let mut d = Digest::default();
                let mut cursor = timeline.cursor();
                while !stop.load(Ordering::Relaxed) {
                    timeline.take_new(&mut cursor, |o| d.ingest(o));
                    let (lines, done) = finished_steps(&d, printed);
                    printed = done;
                    {
                        let mut err = std::io::stderr().lock();
                        // Clear the status line, print finished steps above it, redraw it.
                        let _ = write!(err, "\r\x1b[2K");
                        for l in lines {
                            let _ = writeln!(err, "{l}");
                        }
                        let _ = write!(err, "{}\r", fit(&status_line(&d, started, now_ms()), terminal_width()));
                        let _ = err.flush();
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            })
        });
        Progress { stop, task }
    }

    /// Stops redrawing and clears the status line.
    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Lines for operations finished since the first `already` ones; returns them and the new count.
pub fn finished_steps(d: &Digest, already: usize) -> (Vec<String>, usize) {
    let done: Vec<_> = d.ops.iter().filter(|o| o.end.is_some()).collect();
    let lines = done
        .iter()
        .skip(already)
        .map(|o| match &o.failed {
            Some(e) => format!("  \u{2717} {} \u{2014} {e}", o.name),
            None => format!("  \u{2713} {} ({:.1} s)", o.name, (o.end.unwrap_or(o.start) - o.start) / 1000.0),
        })
        .collect();
    (lines, done.len().max(already))
}

/// `[ 12.3 s] ▶ open viewer tab for ses_x │ tab 0 connected 30 fps │ tab 1 connecting`.
pub fn status_line(d: &Digest, started: f64, now: f64) -> String {
    let mut parts = vec![format!("[{:>6.1} s]", (now - started) / 1000.0)];
    match d.ops.iter().rev().find(|o| o.end.is_none()) {
        Some(op) => parts.push(format!("\u{25b6} {}", op.name)),
        None => parts.push("waiting".into()),
    }
    for t in &d.tabs {
        if t.closed_at.is_some() {
            continue;
        }
        let state = t.state_at(now).unwrap_or("no peer connection");
        let fps = t.stats.last().filter(|s| now - s.at < 3000.0).map(|s| format!(" {:.0} fps", s.fps)).unwrap_or_default();
        let problem = if t.problems.is_empty() { String::new() } else { format!(" \u{26a0} {}", t.problems.len()) };
        parts.push(format!("tab {} {state}{fps}{problem}", t.tab));
    }
    parts.join(" \u{2502} ")
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(120)
}

/// Cut to `width` characters so the line never wraps (a wrapped line cannot be redrawn).
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() < width {
        s.to_string()
    } else {
        format!("{}\u{2026}", s.chars().take(width.saturating_sub(2)).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::digest::digest;
    use crate::timeline::{Event, OpPhase, PcStateKind, ProbeEvent};

    #[test]
    fn reports_steps_once_and_the_state_of_open_tabs() {
        let tl = Timeline::new();
        tl.push_at(1000.0, Event::Op { name: "create agent session".into(), phase: OpPhase::Start });
        tl.push_at(1200.0, Event::Op { name: "create agent session".into(), phase: OpPhase::Ok });
        tl.push_at(1300.0, Event::Op { name: "open viewer tab for ses_1".into(), phase: OpPhase::Start });
        tl.push_at(1400.0, Event::Tab { tab: 0, probe: ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connecting".into() } });
        tl.push_at(1500.0, Event::Tab { tab: 1, probe: ProbeEvent::Exception { text: "boom".into() } });
        let d = digest(&tl.snapshot());
        let (lines, n) = finished_steps(&d, 0);
        assert_eq!(lines, vec!["  \u{2713} create agent session (0.2 s)".to_string()]);
        assert_eq!(finished_steps(&d, n).0, Vec::<String>::new(), "a step is printed once");
        let s = status_line(&d, 0.0, 2000.0);
        assert_eq!(s, "[   2.0 s] \u{2502} \u{25b6} open viewer tab for ses_1 \u{2502} tab 0 connecting \u{2502} tab 1 no peer connection \u{26a0} 1");
        assert_eq!(fit("abcdef", 4), "ab\u{2026}");
    }
}
