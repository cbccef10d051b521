//! Capture containers' logs, one stream per service: into files the monitor tails (a run, whose
//! artifacts keep them), or straight onto a timeline (a watch, which must keep no file that
//! grows for days).
//!
//! Each line is written as the engine gives it with `timestamps=true`: `<RFC3339Nano> <line>`.
//! The engine's timestamp is when the container wrote the line, which is the event time the
//! detectors need (Wolf's own stamp has no date). A follow stream ends whenever its container
//! stops, so a restart scenario would lose everything after the first restart: the follower
//! attaches again while the run lasts, from the last timestamp it wrote, and skips what it has
//! written already.

use crate::timeline::Timeline;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Pause before attaching again after a stream ended (container stopped or restarting).
const REATTACH_AFTER: Duration = Duration::from_millis(300);
/// Longer pause while the engine says no (container missing, engine gone).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// How long the last catch-up read may take when capture stops.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);
/// How long stopping waits for the followers before abandoning them.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// Running capture of some containers' logs; [`LogCapture::stop`] ends it.
pub struct LogCapture {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    files: Vec<(String, PathBuf)>,
}

impl LogCapture {
    /// Follow each `(service, container)` from `since` into `<dir>/<service>.log`, or, with
    /// [`Dest::Timeline`], onto the timeline as the service's log lines.
    pub fn start(docker: Docker, containers: Vec<(String, String)>, since: SystemTime, dest: Dest) -> LogCapture {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut files = Vec::new();
        let since_ns = since.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
        for (service, container) in containers {
            let sink = match &dest {
                Dest::Dir(dir) => {
                    let path = dir.join(format!("{service}.log"));
                    // A file that cannot be opened is never listed: the run then says that
                    // service's log is missing, as it would without capture.
                    match Sink::file(&path) {
                        Ok(sink) => {
                            files.push((service, path));
                            sink
                        }
                        Err(e) => {
                            tracing::warn!("log capture of container {container}: cannot open {}: {e}", path.display());
                            continue;
                        }
                    }
                }
                Dest::Timeline(t) => Sink::Timeline { service, timeline: t.clone() },
            };
            tasks.spawn(follow(docker.clone(), container, since_ns, sink, stop_rx.clone()));
        }
        LogCapture { stop, tasks, files }
    }

    /// Service name → log file, as `Monitor::start` takes them (none with [`Dest::Timeline`]).
    pub fn files(&self) -> &[(String, PathBuf)] {
        &self.files
    }

    /// Catch up once more, then stop following; returns within a few seconds whatever the engine does.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_DEADLINE, all_done).await.is_err() {
            tracing::warn!("log capture: followers did not stop within {} s; abandoning them", STOP_DEADLINE.as_secs());
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// Where captured lines go.
pub enum Dest {
    /// `<dir>/<service>.log`, each line with the engine's stamp in front.
    Dir(PathBuf),
    /// The timeline, as the service's log lines (placed at the engine's stamp), and nowhere else.
    Timeline(Timeline),
}

/// One follower's open destination.
enum Sink {
    File(tokio::fs::File),
    Timeline { service: String, timeline: Timeline },
}

impl Sink {
    /// Opened before the follower starts (creating and opening a file does not block for
    /// long), so that one that cannot be opened is known when capture starts.
    fn file(path: &Path) -> std::io::Result<Sink> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink::File(tokio::fs::File::from_std(f)))
    }

    /// Hand over complete lines (each ending in a newline).
    async fn write(&mut self, batch: &str) {
        match self {
            // A failed write loses lines, not the run: the monitor just sees fewer of them.
            Sink::File(f) => {
                if let Err(e) = f.write_all(batch.as_bytes()).await {
                    tracing::warn!("log capture: write failed: {e}");
                }
                let _ = f.flush().await;
            }
            Sink::Timeline { service, timeline } => batch.lines().for_each(|l| crate::sut::monitor::push_log_line(timeline, service, l)),
        }
    }
}

/// One container's follower: attach, copy lines, attach again when the stream ends.
async fn follow(docker: Docker, container: String, since_ns: i128, mut out: Sink, mut stop: watch::Receiver<bool>) {
    let mut written = Written::after(since_ns);
    let mut complained = false;
    loop {
        let opts = options(&written, true);
        let mut stream = docker.logs(&container, Some(opts));
        let mut pending = String::new();
        let ended_ok = loop {
            tokio::select! {
                _ = stop.changed() => {
                    drain(&docker, &container, &mut written, &mut out).await;
                    return;
                }
                item = stream.next() => match item {
                    Some(Ok(chunk)) => {
                        complained = false;
                        pending.push_str(&String::from_utf8_lossy(chunk.as_ref()));
                        write_complete_lines(&mut pending, &mut written, &mut out).await;
                    }
                    Some(Err(e)) => {
                        if !complained {
                            tracing::debug!("log capture of container {container}: {e}; attaching again");
                            complained = true;
                        }
                        break false;
                    }
                    None => break true,
                }
            }
        };
        if !pending.is_empty() {
            pending.push('\n');
            write_complete_lines(&mut pending, &mut written, &mut out).await;
        }
        let pause = if ended_ok { REATTACH_AFTER } else { RETRY_AFTER_ERROR };
        tokio::select! {
            _ = stop.changed() => {
                drain(&docker, &container, &mut written, &mut out).await;
                return;
            }
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// A last read without following: lines logged just before capture stopped.
async fn drain(docker: &Docker, container: &str, written: &mut Written, out: &mut Sink) {
    let read = async {
        let mut stream = docker.logs(container, Some(options(written, false)));
        let mut pending = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            pending.push_str(&String::from_utf8_lossy(chunk.as_ref()));
            write_complete_lines(&mut pending, written, out).await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_DEADLINE, read).await;
}

fn options(written: &Written, follow: bool) -> LogsOptions {
    LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        timestamps: true,
        // Whole seconds only in the API; `Written` drops the repeats within that second.
        since: i32::try_from(written.last_ns.div_euclid(1_000_000_000)).unwrap_or(0),
        ..Default::default()
    }
}

/// Write every complete line of `pending` that was not written before; keep the rest.
async fn write_complete_lines(pending: &mut String, written: &mut Written, out: &mut Sink) {
    let Some(end) = pending.rfind('\n') else { return };
    let complete: String = pending.drain(..=end).collect();
    let mut batch = String::new();
    for line in complete.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        if written.admit(line) {
            batch.push_str(line);
            batch.push('\n');
        }
    }
    if !batch.is_empty() {
        out.write(&batch).await;
    }
}

/// The engine's time of a captured line, in nanoseconds since the epoch.
pub fn line_time_ns(line: &str) -> Option<i128> {
    let stamp = line.split(' ').next()?;
    let t = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    Some(t.timestamp() as i128 * 1_000_000_000 + t.timestamp_subsec_nanos() as i128)
}

/// What has been written: the newest timestamp and the messages of the lines that carry exactly it. The engine
/// filters by whole seconds, so an attach repeats up to a second of lines; two different lines
/// can share a timestamp, so equality alone cannot tell a repeat.
#[derive(Debug)]
struct Written {
    last_ns: i128,
    at_last: Vec<String>,
}

impl Written {
    fn after(since_ns: i128) -> Written {
        Written { last_ns: since_ns, at_last: Vec::new() }
    }

    fn admit(&mut self, line: &str) -> bool {
        // A line without a stamp cannot be placed; keep it (the engine always stamps them).
        let Some(t) = line_time_ns(line) else { return true };
        if t < self.last_ns {
            return false;
        }
        // Compare what follows the stamp: the same instant may be spelled with or without
        // trailing zeros.
        let message = line.split_once(' ').map(|(_, m)| m).unwrap_or("");
        if t == self.last_ns {
            if self.at_last.iter().any(|m| m == message) {
                return false;
            }
            self.at_last.push(message.to_string());
            return true;
        }
        self.last_ns = t;
        self.at_last = vec![message.to_string()];
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lines_after_reattaching_are_written_once() {
        let start = line_time_ns("2026-11-21T07:00:00.500000000Z x").unwrap();
        let mut w = Written::after(start);
        // Before the run started (same second, as the engine's whole-second filter returns it).
        assert!(!w.admit("2026-11-21T07:00:00.100000000Z old"));
        assert!(w.admit("2026-11-21T07:00:01.000000001Z a"));
        assert!(w.admit("2026-11-21T07:00:01.000000001Z b"), "a different line with the same stamp");
        assert!(w.admit("2026-11-21T07:00:02.25Z c"));
        // Attached again from second 2: the engine repeats c.
        assert!(!w.admit("2026-11-21T07:00:02.250000000Z c"), "same instant written with trailing zeros");
        assert!(!w.admit("2026-11-21T07:00:01.000000001Z a"));
        assert!(w.admit("2026-11-21T07:00:02.300000000Z d"));
        assert_eq!(options(&w, true).since, 1_795_244_402);
    }

    #[tokio::test]
    async fn only_complete_lines_are_written() {
        let dir = std::env::temp_dir().join(format!("helix-e2e-logs-{}", std::process::id()));
        let path = dir.join("wolf.log");
        let mut out = Sink::file(&path).unwrap();
        let mut w = Written::after(0);
        let mut pending = "2026-11-21T07:00:01Z one\n2026-11-21T07:00:02Z tw".to_string();
        write_complete_lines(&mut pending, &mut w, &mut out).await;
        assert_eq!(pending, "2026-11-21T07:00:02Z tw");
        pending.push_str("o\n");
        write_complete_lines(&mut pending, &mut w, &mut out).await;
        assert!(pending.is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "2026-11-21T07:00:01Z one\n2026-11-21T07:00:02Z two\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
