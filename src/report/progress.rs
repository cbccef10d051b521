//! Live progress on a terminal: a line per finished operation and one status line, redrawn in
//! place, with the running operation and each tab's connection state and picture. Hidden when
//! stderr is not a terminal (CI logs get the runner's own lines and the reports instead).
//!
//! It reads the timeline rather than being called from every step, so scenarios need no hooks,
//! and folds only what arrived since its last redraw. indicatif draws it: it knows the
//! terminal's width (a line that wraps cannot be redrawn and leaves fragments) and hides itself
//! off a terminal. Whatever else writes to stderr while it is up — the run's own lines
//! ([`say_line`]) and the log ([`StderrAboveBar`]) — goes above the status line, never through it.

use super::digest::Digest;
use crate::timeline::{now_ms, Timeline};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

/// The status line on show, if any: what [`say_line`] and the log writer print above.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

pub struct Progress {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts redrawing when stderr is a terminal and `HELIX_E2E_PROGRESS` is not `0`.
    pub fn start(timeline: Timeline) -> Progress {
        let wanted = std::io::stderr().is_terminal() && std::env::var("HELIX_E2E_PROGRESS").map(|v| v != "0").unwrap_or(true);
        if !wanted {
            return Progress { bar: None, task: None };
        }
        let bar = status_bar(ProgressDrawTarget::stderr());
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        let task = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut printed = 0;
                let started = now_ms();
                // One digest, fed what arrives: a redraw never reads the run again.
                let mut d = Digest::default();
                let mut cursor = timeline.cursor();
                loop {
                    timeline.take_new(&mut cursor, |o| d.ingest(o));
                    let (lines, done) = finished_steps(&d, printed);
                    printed = done;
                    for l in lines {
                        bar.println(l);
                    }
                    bar.set_message(status_line(&d, started, now_ms()));
                    bar.tick();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };
        Progress { bar: Some(bar), task: Some(task) }
    }

    /// Stops redrawing and clears the status line.
    pub async fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(bar) = self.bar.take() {
            SHOWN.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status line: a spinner and the status, cut to the terminal's width.
fn status_bar(target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(ProgressStyle::with_template("{spinner} {wide_msg}").expect("a fixed template"));
    bar
}

/// Whether to colour output for a stream that `is_terminal`: never when `NO_COLOR` is set to
/// anything but the empty string (no-color.org).
pub fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A line of the run's own for stderr, above the status line when one is shown.
pub fn say_line(line: impl AsRef<str>) {
    let line = line.as_ref();
    let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match shown {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// `eprintln!` for the run's own lines: [`say_line`] with `format!`'s arguments.
macro_rules! say {
    ($($t:tt)*) => { $crate::report::progress::say_line(format!($($t)*)) };
}
pub(crate) use say;

/// The log's writer: stderr, with the status line lifted out of the way of each line.
pub struct StderrAboveBar;

impl Write for StderrAboveBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match shown {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrAboveBar {
    type Writer = StderrAboveBar;

    fn make_writer(&'a self) -> Self::Writer {
        StderrAboveBar
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
        parts.push(format!("{} {state}{fps}{problem}", t.name()));
    }
    parts.join(" \u{2502} ")
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
    }

    #[test]
    fn on_an_80_column_terminal_the_status_fits_and_redraws_leave_no_fragments() {
        let term = indicatif::InMemoryTerm::new(10, 80);
        let bar = status_bar(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let long = (0..8).map(|t| format!("tab {t} connected 60 fps")).collect::<Vec<_>>().join(" \u{2502} ");
        bar.set_message(format!("[  12.0 s] \u{2502} \u{25b6} open viewer tab for ses_01abcdefgh \u{2502} {long}"));
        bar.tick();
        bar.println("  \u{2713} create agent session (0.2 s)");
        bar.set_message("[  13.0 s] \u{2502} waiting");
        bar.tick();
        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(lines, vec!["  \u{2713} create agent session (0.2 s)", lines[1]], "{screen}");
        // The shorter status replaced the longer one whole: nothing of the old one is left.
        assert!(lines[1].ends_with("[  13.0 s] \u{2502} waiting"), "{screen}");
        assert!(!screen.contains("tab 7"), "{screen}");
        bar.set_message(format!("[  14.0 s] \u{2502} {long}"));
        bar.tick();
        assert!(term.contents().lines().all(|l| l.chars().count() <= 80), "{}", term.contents());
    }
}
