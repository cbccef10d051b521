//! Service logs from wherever a deployment keeps them: a file (followed like `tail -F`) or a
//! command whose stdout is the log (`journalctl -f …`, `kubectl logs -f …`).
//!
//! Why: most failure detectors read service log lines, and a run that reads none is blind to
//! them without saying so. The embedded stack and the Docker capture write files made for the
//! run; a real deployment's logs are a long-lived file that rotates, or a journal, or a pod. So
//! a source is typed once (from the target file) and followed here for as long as the run lasts:
//! a file across appearance, rotation and truncation, a command across its exits (restarted
//! with a bounded backoff). Nothing started here outlives the run: a command runs in its own
//! process group, which is killed when its follower is dropped (the monitor aborts it when it
//! stops), and it dies with the driver's thread if the driver is killed.
//!
//! [`LOG_READERS`] is the one list of which detectors read which service's log; the run's
//! warning, the report and the README are made from it.
//!
//! Why one file of over 400 lines: files and commands are two sources of one feed, with the same
//! line framing, restarts and shutdown.

use crate::catalog::FailureId;
use crate::timeline::{Event, Reply, Timeline};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

/// How often a file at its end is looked at again (and checked for rotation).
const FILE_POLL: Duration = Duration::from_millis(100);
/// How often a file that is not there yet is looked for.
const FILE_WAIT: Duration = Duration::from_millis(200);
/// First pause before a command that ended is started again; it doubles up to
/// [`RESTART_MAX`], so a command that cannot run (a unit that does not exist, no cluster) does
/// not spin, and one that ends now and then comes back quickly.
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A command that ran this long was healthy: its next restart starts the backoff over.
const HEALTHY_FOR: Duration = Duration::from_secs(60);
/// How long a command whose stdout closed may take to exit before its group is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Where following an existing file begins. An explicit choice of whoever made the source,
/// never guessed from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// From its first byte: the file was made for this run (the embedded stack's, the Docker
    /// capture's), so all of it is the run's.
    Start,
    /// From its end as it is when following starts: a deployment's file, whose history from
    /// before the run would mislead the detectors. A file that appears later, or replaces it in
    /// a rotation, is read from its start.
    End,
}

/// A service's log, as a target names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    File {
        path: PathBuf,
        from: ReadFrom,
    },
    /// Program and arguments; never empty (the target file's parser refuses that).
    Command(Vec<String>),
}

impl LogSource {
    /// A file written for this run only, read from its start.
    pub fn run_file(path: PathBuf) -> LogSource {
        LogSource::File { path, from: ReadFrom::Start }
    }

    /// The file that holds exactly this run's log, when the source is one: it can be copied
    /// as it is. Other sources' lines are copied by their follower as they are read.
    pub fn run_file_path(&self) -> Option<&Path> {
        match self {
            LogSource::File { path, from: ReadFrom::Start } => Some(path),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LogSource::File { path, .. } => format!("file {}", path.display()),
            LogSource::Command(argv) => format!("command `{}`", argv.join(" ")),
        }
    }
}

/// One service's log as the monitor follows it.
#[derive(Debug, Clone)]
pub struct LogFeed {
    pub service: String,
    pub source: LogSource,
    /// Where to append each line read (for the run's artifacts), when the source itself is not
    /// a file of this run's lines.
    pub copy_to: Option<PathBuf>,
}

impl LogFeed {
    /// The feed of a run whose private (unredacted) log directory is `private_dir`: a source
    /// that is not a file of the run's own lines is copied as it is read to
    /// `<private_dir>/read/<service>.log`.
    pub fn new(service: &str, source: &LogSource, private_dir: &Path) -> LogFeed {
        let copy_to = source.run_file_path().is_none().then(|| private_dir.join("read").join(format!("{service}.log")));
        LogFeed { service: service.to_string(), source: source.clone(), copy_to }
    }

    /// The file that holds this run's lines of the feed, for the artifacts.
    pub fn run_lines(&self) -> Option<&Path> {
        self.copy_to.as_deref().or_else(|| self.source.run_file_path())
    }
}

/// Follow one feed until the future is dropped, pushing each line onto the timeline.
pub async fn follow(feed: LogFeed, timeline: Timeline) {
    let copy = feed.copy_to.as_deref().and_then(|p| {
        let opened = p.parent().map(std::fs::create_dir_all).unwrap_or(Ok(())).and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(p));
        opened.map_err(|e| tracing::warn!("{} log: cannot keep a copy in {}: {e}", feed.service, p.display())).ok()
    });
    let mut out = Out { service: feed.service.clone(), timeline, copy };
    tracing::debug!("{} log: following {}", feed.service, feed.source.describe());
    match &feed.source {
        LogSource::File { path, from } => follow_file(path, *from, &mut out).await,
        LogSource::Command(argv) => follow_command(argv, &mut out).await,
    }
}

/// Where a follower's lines go.
struct Out {
    service: String,
    timeline: Timeline,
    copy: Option<std::fs::File>,
}

impl Out {
    fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if let Some(f) = &mut self.copy {
            // A lost copy loses the artifact's lines, not the detectors'.
            let _ = writeln!(f, "{text}");
        }
        super::monitor::push_log_line(&self.timeline, &self.service, text);
    }

    /// That the follower's source ended, on the timeline under `monitor` (a `Poll` of a
    /// service's name would count as that service answering).
    fn note_ended(&self, data: serde_json::Value) {
        self.timeline.push(Event::Poll { service: "monitor".into(), reply: std::sync::Arc::new(Reply::LogSourceEnded(data)) });
    }
}

/// What identifies a file across renames: a rotated path names another inode.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// A file the path named before a rotation: writers may still add to it until they reopen the
/// path, so it is read alongside its successor for [`RETIRED_FOR`].
struct Retired {
    reader: BufReader<tokio::fs::File>,
    pending: Vec<u8>,
    until: tokio::time::Instant,
}

/// How long a rotated-away file is still read.
const RETIRED_FOR: Duration = Duration::from_secs(5);

/// Read what the retired file has gained; let it go (its last piece of a line with it) once
/// its time is over.
async fn read_retired(retired: &mut Option<Retired>, out: &mut Out) {
    let Some(r) = retired else { return };
    drain(&mut r.reader, &mut r.pending, out).await;
    if tokio::time::Instant::now() >= r.until {
        out.line(&std::mem::take(&mut r.pending));
        *retired = None;
    }
}

/// Open `path`, waiting for it to exist (and reading a retired file meanwhile); also says
/// whether it was there at the first try.
async fn open_when_there(path: &Path, retired: &mut Option<Retired>, out: &mut Out) -> (tokio::fs::File, bool) {
    let mut first_try = true;
    let mut complained = false;
    loop {
        match tokio::fs::File::open(path).await {
            Ok(f) => return (f, first_try),
            Err(e) => {
                if !complained && e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("log file {}: {e}; trying again", path.display());
                    complained = true;
                }
            }
        }
        first_try = false;
        read_retired(retired, out).await;
        tokio::time::sleep(FILE_WAIT).await;
    }
}

/// `tail -F`: wait for the file, follow its appends; when the path names another file
/// (rename and create, or removed) read the new one from its start, and the old one still for
/// a while (its writer may not have reopened the path yet); when the file shrank below what was
/// read (truncated in place), read it again from its start. A truncation followed, before the
/// next look, by more writing than was read before is not seen (as with `tail`): the first
/// bytes written after it are skipped.
async fn follow_file(path: &Path, from: ReadFrom, out: &mut Out) {
    let mut from_end = from == ReadFrom::End;
    let mut retired: Option<Retired> = None;
    loop {
        let (file, was_there) = open_when_there(path, &mut retired, out).await;
        let id = match file.metadata().await {
            Ok(m) => identity(&m),
            Err(e) => {
                tracing::warn!("log file {}: {e}", path.display());
                tokio::time::sleep(FILE_WAIT).await;
                continue;
            }
        };
        let mut reader = BufReader::new(file);
        // Bytes of this file consumed so far, to tell a truncation.
        let mut pos: u64 = 0;
        if from_end && was_there {
            match reader.seek(std::io::SeekFrom::End(0)).await {
                Ok(end) => pos = end,
                Err(e) => tracing::warn!("log file {}: cannot skip to its end: {e}", path.display()),
            }
        }
        // Only the file there when following began holds the history; its successors are new.
        from_end = false;
        let mut pending = Vec::new();
        loop {
            match reader.read_until(b'\n', &mut pending).await {
                Ok(0) => {
                    read_retired(&mut retired, out).await;
                    match tokio::fs::metadata(path).await {
                        Ok(m) if identity(&m) == id && m.len() < pos => {
                            tracing::info!("log file {} was truncated; reading it from its start", path.display());
                            // What was written before the truncation without its newline is
                            // all of that line there will be.
                            out.line(&std::mem::take(&mut pending));
                            if reader.seek(std::io::SeekFrom::Start(0)).await.is_err() {
                                break;
                            }
                            pos = 0;
                        }
                        Ok(m) if identity(&m) == id => tokio::time::sleep(FILE_POLL).await,
                        _ => {
                            tracing::info!("log file {} was replaced; following the new one from its start", path.display());
                            if let Some(mut r) = retired.take() {
                                drain(&mut r.reader, &mut r.pending, out).await;
                                out.line(&r.pending);
                            }
                            drain(&mut reader, &mut pending, out).await;
                            retired = Some(Retired { reader, pending, until: tokio::time::Instant::now() + RETIRED_FOR });
                            break;
                        }
                    }
                }
                Ok(n) => {
                    pos += n as u64;
                    if pending.ends_with(b"\n") {
                        out.line(&std::mem::take(&mut pending));
                    }
                }
                Err(e) => {
                    tracing::warn!("log file {}: {e}; opening it again", path.display());
                    tokio::time::sleep(FILE_WAIT).await;
                    break;
                }
            }
        }
    }
}

/// Read what a file has to its end, emitting complete lines; a piece of a line stays pending.
async fn drain(reader: &mut BufReader<tokio::fs::File>, pending: &mut Vec<u8>, out: &mut Out) {
    while let Ok(n) = reader.read_until(b'\n', pending).await {
        if n == 0 {
            return;
        }
        if pending.ends_with(b"\n") {
            out.line(&std::mem::take(pending));
        }
    }
}

/// Run the command while the run lasts; each time it ends, note it and start it again after a
/// pause.
async fn follow_command(argv: &[String], out: &mut Out) {
    let mut pause = RESTART_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let ended = run_once(argv, out).await;
        if started.elapsed() >= HEALTHY_FOR {
            pause = RESTART_FIRST;
        }
        tracing::warn!("{} log: `{}` {ended}; starting it again in {:.0} s", out.service, argv.join(" "), pause.as_secs_f64());
        out.note_ended(serde_json::json!({"service": out.service, "command": argv, "ended": ended, "restart_in_ms": pause.as_millis() as u64}));
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RESTART_MAX);
    }
}

/// Kills a command's whole process group when dropped: the command may have children of its
/// own (a shell, `kubectl`'s helpers), and tokio's `kill_on_drop` reaches only the leader.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) on the group this follower created with `process_group(0)`; the
            // leader is not reaped before this runs unless it already exited, and the group's
            // id stays taken while any member lives. No memory is touched.
            unsafe {
                libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}

/// One life of the command: its stdout lines are log lines, its stderr goes to the driver's
/// own log (it says why the command fails, it is not the service's log). Returns how it ended.
async fn run_once(argv: &[String], out: &mut Out) -> String {
    let Some((program, args)) = argv.split_first() else { return "is empty".into() };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.kill_on_drop(true).process_group(0);
    // SAFETY: prctl in the child before exec; async-signal-safe, touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            // Dies with the driver however the driver ends.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("could not start: {e}"),
    };
    let _group = Group(child.id());
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else { return "has no stdout".into() };
    let mut stdout = BufReader::new(stdout);
    let stderr = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut err = Stderr { lines: stderr, buf: Vec::new(), last: String::new(), open: true };
    loop {
        tokio::select! {
            r = stdout.read_until(b'\n', &mut line) => match r {
                Ok(0) | Err(_) => {
                    out.line(&std::mem::take(&mut line));
                    break;
                }
                Ok(_) => if line.ends_with(b"\n") {
                    out.line(&std::mem::take(&mut line));
                },
            },
            r = err.lines.read_until(b'\n', &mut err.buf), if err.open => err.took(r, &out.service),
        }
    }
    // Its stdout is closed: what it says last on stderr (why it ended) comes with its exit,
    // unless something it started holds stderr open.
    let rest_of_stderr = async {
        while err.open {
            let r = err.lines.read_until(b'\n', &mut err.buf).await;
            err.took(r, &out.service);
        }
    };
    let _ = tokio::time::timeout(EXIT_GRACE, rest_of_stderr).await;
    let last_err = std::mem::take(&mut err.last);
    let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(s)) => s.to_string(),
        Ok(Err(e)) => format!("cannot be waited for: {e}"),
        // Its stdout is closed, so it gives nothing more; `_group` kills it on return.
        Err(_) => format!("closed its stdout and was still running {} s later", EXIT_GRACE.as_secs()),
    };
    if last_err.is_empty() {
        status
    } else {
        format!("{status} (stderr: {last_err})")
    }
}

/// A command's stderr, read line by line; the last line says why it failed.
struct Stderr {
    lines: BufReader<tokio::process::ChildStderr>,
    buf: Vec<u8>,
    last: String,
    open: bool,
}

impl Stderr {
    fn took(&mut self, r: std::io::Result<usize>, service: &str) {
        match r {
            Ok(0) | Err(_) => self.open = false,
            Ok(_) if self.buf.ends_with(b"\n") => {
                let text = String::from_utf8_lossy(&self.buf).trim_end().to_string();
                if !text.is_empty() {
                    tracing::debug!("{service} log command stderr: {text}");
                    self.last = text;
                }
                self.buf.clear();
            }
            Ok(_) => {}
        }
    }
}

/// Which detectors read which service's log: (fault, service, whether the detector is blind
/// without that log). A detector that is not blind names its failure from other evidence too
/// and only loses the log's (a quicker or more specific decision). The README's table under
/// "Pointing it at a real Helix" is checked against this list by a test.
pub const LOG_READERS: &[(FailureId, &str, bool)] = &[
    // `[HTTPS] Received resume event from an unregistered session`.
    (FailureId::F1, "wolf", true),
    // `[LOBBY] Session S joining lobby L`.
    (FailureId::F3, "wolf", true),
    // `[ENET] disconnected client` and `Moonlight stream S over, leaving lobby`.
    (FailureId::F4, "wolf", true),
    // `Unhandled exception: The state of the promise has already been set` before Wolf's death.
    (FailureId::F17, "wolf", true),
    // `Failed to acquire buffer from pool` shortens the wait for black frames.
    (FailureId::F8, "wolf", false),
    // The streamer's `could not listen udp`.
    (FailureId::F2, "moonlight-web", false),
    // `[Admin Status] N zombie sessions detected`.
    (FailureId::F6, "moonlight-web", false),
    // `chunk too short`.
    (FailureId::F11, "moonlight-web", true),
    // `Error(Connect, TimedOut)`.
    (FailureId::F12, "moonlight-web", false),
    // Streamer lines: `resuming app`, `stop: cancelling the Wolf session`, `[Stream] New …`.
    (FailureId::F14, "moonlight-web", true),
    // `Streamer of session … exited` with a signal.
    (FailureId::D1, "moonlight-web", true),
];

/// The services whose logs a run can read.
pub const SERVICES: [&str; 3] = ["wolf", "moonlight-web", "api"];

/// The detectors that are blind, and those that lose evidence, without these services' logs.
pub fn affected(missing: &[impl AsRef<str>]) -> (Vec<FailureId>, Vec<FailureId>) {
    let of = |blind: bool| LOG_READERS.iter().filter(|(_, s, b)| *b == blind && missing.iter().any(|m| m.as_ref() == *s)).map(|(f, _, _)| *f).collect();
    (of(true), of(false))
}

/// The services of [`SERVICES`] that have no source in `logs`.
pub fn missing(logs: &[(String, LogSource)]) -> Vec<String> {
    SERVICES.iter().filter(|s| !logs.iter().any(|(l, _)| l == *s)).map(|s| s.to_string()).collect()
}

/// What a run without some services' logs cannot see, in one sentence (no trailing period):
/// `no logs for wolf, moonlight-web: detectors F1, F3 are blind; F8 loses its log evidence`.
pub fn missing_logs_message(missing: &[impl AsRef<str>]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(|m| m.as_ref()).collect();
    let (blind, weaker) = affected(missing);
    let mut m = format!("no logs for {}", names.join(", "));
    if !blind.is_empty() {
        m.push_str(&format!(": detectors {} {} blind", ids(&blind), if blind.len() == 1 { "is" } else { "are" }));
    }
    if !weaker.is_empty() {
        m.push_str(&format!(
            "{} {} {}",
            if blind.is_empty() { ":" } else { ";" },
            ids(&weaker),
            if weaker.len() == 1 { "loses its log evidence" } else { "lose their log evidence" }
        ));
    }
    if blind.is_empty() && weaker.is_empty() {
        m.push_str(" (no detector reads them)");
    }
    Some(m)
}

/// `F1, F3, F4`.
fn ids(v: &[FailureId]) -> String {
    v.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
}

/// The README's row for one service: `| wolf | F1, F3, F4 | F8 |`.
pub fn readme_row(service: &str) -> String {
    let (blind, weaker) = affected(&[service]);
    let list = |v: Vec<FailureId>| if v.is_empty() { "–".to_string() } else { ids(&v) };
    format!("| {service} | {} | {} |", list(blind), list(weaker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Observation;

    /// A test's own directory, removed when the test ends, passing or failing.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(tag: &str) -> TestDir {
            let d = std::env::temp_dir().join(format!("helix-e2e-logsrc-{tag}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&d).unwrap();
            TestDir(d)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn messages(t: &Timeline) -> Vec<String> {
        t.snapshot().into_iter().filter_map(|o: Observation| if let Event::Log { message, .. } = o.event { Some(message) } else { None }).collect()
    }

    /// Wait until the timeline's log lines satisfy `done` (or fail after 10 s).
    async fn wait_for(t: &Timeline, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = messages(t);
            if done(&m) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "waiting for {what}; lines so far: {m:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn start(service: &str, source: LogSource, copy_to: Option<PathBuf>) -> (Timeline, tokio::task::JoinHandle<()>) {
        let t = Timeline::new();
        let h = tokio::spawn(follow(LogFeed { service: service.into(), source, copy_to }, t.clone()));
        (t, h)
    }

    #[tokio::test]
    async fn a_file_is_followed_across_appends_rotation_and_truncation_each_line_once() {
        let guard = TestDir::new("rotate");
        let dir = &guard.0;
        let path = dir.join("wolf.log");
        let copy = dir.join("copy/wolf.log");
        // Not there yet: the follower waits for it.
        let (t, h) = start("wolf", LogSource::File { path: path.clone(), from: ReadFrom::End }, Some(copy.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Appeared after following began: new, so read from its start (even with `End`).
        append(&path, "one\ntwo\n");
        wait_for(&t, "the first lines", |m| m.len() == 2).await;
        // A line written in two pieces is one line.
        append(&path, "thr");
        tokio::time::sleep(Duration::from_millis(250)).await;
        append(&path, "ee\n");
        wait_for(&t, "an appended line", |m| m.len() == 3).await;
        // Rotation: the writer adds a last line to the old file, it is renamed, a new file is
        // created; the writer adds to the old file until it reopens the path.
        append(&path, "four\n");
        let rotated = dir.join("wolf.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        append(&rotated, "five\n");
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(&path, "six\nseven\n");
        wait_for(&t, "the new file's lines", |m| m.len() == 7).await;
        append(&rotated, "eight, late in the old file\n");
        wait_for(&t, "the old file's late line", |m| m.len() == 8).await;
        // Truncation in place (copytruncate), then fewer bytes than were there.
        std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(&path, "9\n");
        wait_for(&t, "the truncated file's line", |m| m.len() == 9).await;
        append(&path, "ten\n");
        wait_for(&t, "a line after the truncation", |m| m.len() == 10).await;
        // Nothing more comes, and nothing came twice.
        tokio::time::sleep(Duration::from_millis(400)).await;
        h.abort();
        let _ = h.await;
        let want = ["one", "two", "three", "four", "five", "six", "seven", "eight, late in the old file", "9", "ten"];
        assert_eq!(messages(&t), want);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), want.map(|l| format!("{l}\n")).concat());
    }

    #[tokio::test]
    async fn a_deployment_file_that_was_there_is_read_from_its_end_a_run_file_from_its_start() {
        let guard = TestDir::new("end");
        let path = guard.0.join("moonlight-web.log");
        append(&path, "[2026-11-21T05:24:14.804Z ERROR moonlight_web] yesterday's trouble\n");
        let (t, h) = start("moonlight-web", LogSource::File { path: path.clone(), from: ReadFrom::End }, None);
        let (t_run, h_run) = start("moonlight-web", LogSource::run_file(path.clone()), None);
        wait_for(&t_run, "the run file's old line", |m| m.len() == 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(&path, "today\n");
        wait_for(&t, "the new line", |m| !m.is_empty()).await;
        wait_for(&t_run, "the new line in the run file", |m| m.len() == 2).await;
        h.abort();
        h_run.abort();
        assert_eq!(messages(&t), ["today"]);
        let obs = t_run.snapshot();
        // The line's own stamp is its time, however late it was read.
        assert_eq!(obs[0].at, 1_795_238_654_804.0);
    }

    /// Processes below this test process whose command line contains `needle`.
    fn ours(needle: &str) -> Vec<crate::procs::Proc> {
        crate::procs::descendants(std::process::id()).into_iter().filter(|p| p.cmdline.contains(needle)).collect()
    }

    #[tokio::test]
    async fn a_command_is_followed_restarted_when_it_ends_and_killed_with_its_follower() {
        // A unique sleep so that this test finds its own processes among parallel tests'.
        let script = "echo a; echo b; sleep 31.25; echo never";
        let (t, h) = start("wolf", LogSource::Command(vec!["sh".into(), "-c".into(), script.into()]), None);
        wait_for(&t, "the command's lines", |m| m.len() == 2).await;
        let procs = ours("31.25");
        assert!(!procs.is_empty(), "the command's processes are running");
        // The monitor stops its followers by aborting them.
        h.abort();
        let _ = h.await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while procs.iter().any(|p| p.alive()) {
            assert!(
                std::time::Instant::now() < deadline,
                "still running after the follower stopped: {:?}",
                procs.iter().filter(|p| p.alive()).map(|p| &p.cmdline).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(messages(&t), ["a", "b"]);

        // A command that ends is noted and started again.
        let (t, h) = start("moonlight-web", LogSource::Command(vec!["sh".into(), "-c".into(), "echo once; echo oops >&2; exit 3".into()]), None);
        wait_for(&t, "the restarted command's line", |m| m.len() == 2).await;
        h.abort();
        let _ = h.await;
        assert_eq!(messages(&t), ["once", "once"]);
        let ended: Vec<serde_json::Value> = t
            .snapshot()
            .into_iter()
            .filter_map(|o| match o.event {
                Event::Poll { service, reply } if service == "monitor" => match &*reply {
                    Reply::LogSourceEnded(data) => Some(data.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert!(!ended.is_empty());
        assert_eq!(ended[0]["service"], "moonlight-web");
        let why = ended[0]["ended"].as_str().unwrap();
        assert!(why.contains("exit status: 3") && why.contains("oops"), "{why}");

        // One that cannot start says so and is tried again later, not in a loop.
        let (t, h) = start("api", LogSource::Command(vec!["/nonexistent/helix-e2e-no-such-program".into()]), None);
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.abort();
        let _ = h.await;
        let notes: Vec<String> = t
            .snapshot()
            .into_iter()
            .filter_map(|o| match o.event {
                Event::Poll { reply, .. } => match &*reply {
                    Reply::LogSourceEnded(data) => Some(data["ended"].as_str().unwrap_or("").to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("could not start"), "{notes:?}");
    }

    #[test]
    fn the_blind_detectors_are_named_from_one_list() {
        for (_, service, _) in LOG_READERS {
            assert!(SERVICES.contains(service), "{service}");
        }
        assert_eq!(missing_logs_message(&Vec::<String>::new()), None);
        assert_eq!(missing_logs_message(&["wolf"]).unwrap(), "no logs for wolf: detectors F1, F3, F4, F17 are blind; F8 loses its log evidence");
        assert_eq!(missing_logs_message(&["api"]).unwrap(), "no logs for api (no detector reads them)");
        let all = missing_logs_message(&SERVICES).unwrap();
        assert_eq!(all, "no logs for wolf, moonlight-web, api: detectors F1, F3, F4, F17, F11, F14, D1 are blind; F8, F2, F6, F12 lose their log evidence");
        let sources = vec![("wolf".to_string(), LogSource::run_file("/x".into()))];
        assert_eq!(missing(&sources), ["moonlight-web", "api"]);
        // The README says the same.
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for s in SERVICES {
            let row = readme_row(s);
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }
}
