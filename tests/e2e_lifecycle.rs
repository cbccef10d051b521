//! End to end: whatever ends a run — a signal to the process the user started or to its group,
//! SIGKILL of the supervisor or of the run inside it, a killed renderer, browser or streamer —
//! the run ends within 5 s with the right exit code and verdict, names what died, writes
//! `summary.json` when a process survived to write it, and leaves no process, network namespace
//! or temp directory behind 5 s later.

mod common;

use common::{leftovers_of, marked_processes, MARK};
use helix_e2e::report::{Summary, Verdict};
use helix_e2e::verdict::detectors::Detection;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One run at a time: they share two cores, and the timings are part of what is checked.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The most a run may take to end after a signal or a death.
const END_WITHIN: Duration = Duration::from_secs(5);

struct Run {
    child: Child,
    mark: String,
    base: PathBuf,
    stderr_path: PathBuf,
}

impl Run {
    /// `second-connection` against the embedded stack, in its own process group (as a shell
    /// starts a job), with a mark every process of the run inherits.
    fn start(label: &str) -> Run {
        common::become_subreaper();
        let mark =
            format!("lifecycle-{label}-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-lifecycle-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let stderr_path = base.with_extension("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_helix-e2e"))
            .args(["run", "second-connection", "--artifacts"])
            .arg(&base)
            .env(MARK, &mark)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .process_group(0)
            .spawn()
            .expect("start helix-e2e");
        Run { child, mark, base, stderr_path }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Live processes of the run whose command line contains `needle` (and not `not`).
    fn processes(&self, needle: &str, not: Option<&str>) -> Vec<u32> {
        common::descendants(self.child.id())
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(needle) && not.is_none_or(|n| !cmd.contains(n)))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Wait until the first tab streams (its streamer runs) and a moment more.
    fn wait_until_streaming(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.processes("__streamer", None).is_empty() {
            assert!(self.child.try_wait().unwrap().is_none(), "the run ended before it streamed:\n{}", self.stderr());
            assert!(Instant::now() < deadline, "no streamer within 90 s:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    /// The supervised run inside the process the test started.
    fn inner_pid(&self) -> u32 {
        let inner: Vec<u32> = self.processes("helix-e2e run", None).into_iter().filter(|pid| common::environ_has(*pid, "HELIX_E2E_INNER")).collect();
        assert_eq!(inner.len(), 1, "one supervised run: {inner:?}");
        inner[0]
    }

    /// Wait for the started process to exit; its status and how long after `since` it took.
    fn wait_exit(&mut self, since: Instant) -> (std::process::ExitStatus, Duration) {
        let deadline = since + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s, since.elapsed());
            }
            if Instant::now() > deadline {
                unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
                panic!("the run did not end within 60 s:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The run's summary, when one was written, read as the driver's own type.
    fn summary(&self) -> Option<Summary> {
        let dir = std::fs::read_dir(&self.base).ok()?.flatten().map(|e| e.path()).find(|p| p.is_dir())?;
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).ok()?).ok()
    }

    /// Nothing of the run remains `END_WITHIN` after `since` (processes, the namespace, the
    /// run's temp root).
    fn assert_nothing_left(&self, since: Instant) {
        let deadline = since + END_WITHIN + Duration::from_secs(5);
        loop {
            // The mark finds what kept its environment; orphans re-parented to this test (a
            // subreaper) find the rest, Chromium's helpers included.
            let mut procs = marked_processes(&self.mark);
            procs.extend(common::orphans(&[]));
            let other = leftovers_of(self.child.id());
            if procs.is_empty() && other.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "left behind {:.1} s after the end: processes {procs:?}, {other:?}\nstderr:\n{}",
                since.elapsed().as_secs_f64(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Run {
    /// A failed assertion must not leave the run (or its files) behind either.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.base);
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

fn signal_run(how: &str, sig: libc::c_int, sig_name: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut run = Run::start(&format!("{how}-{sig_name}"));
    run.wait_until_streaming();
    let target = if how == "group" { -run.pid() } else { run.pid() };
    let at = Instant::now();
    assert_eq!(unsafe { libc::kill(target, sig) }, 0);
    let (status, took) = run.wait_exit(at);
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(2), "{sig_name} to the {how}: exit code; stderr:\n{stderr}");
    assert!(took <= END_WITHIN, "{sig_name} to the {how}: ended {:.1} s after the signal\n{stderr}", took.as_secs_f64());
    let summary = run.summary().unwrap_or_else(|| panic!("{sig_name} to the {how}: no summary.json\n{stderr}"));
    assert_eq!(summary.verdict, Verdict::Interrupted, "{summary:#?}");
    assert_eq!(summary.error.as_deref(), Some(format!("interrupted by {sig_name}").as_str()), "{summary:#?}");
    run.assert_nothing_left(Instant::now());
    eprintln!("{sig_name} to the {how}: exit 2 after {:.2} s", took.as_secs_f64());
}

#[test]
fn sigint_to_the_started_process() {
    signal_run("process", libc::SIGINT, "SIGINT");
}

#[test]
fn sigint_to_the_group() {
    signal_run("group", libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_to_the_started_process() {
    signal_run("process", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigterm_to_the_group() {
    signal_run("group", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sighup_to_the_started_process() {
    signal_run("process", libc::SIGHUP, "SIGHUP");
}

#[test]
fn sighup_to_the_group() {
    signal_run("group", libc::SIGHUP, "SIGHUP");
}

/// SIGKILL of the supervisor: the run inside gets SIGTERM from the kernel, ends as interrupted,
/// writes its summary and removes the namespace and temp root itself.
#[test]
fn sigkill_of_the_started_process() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut run = Run::start("kill-outer");
    run.wait_until_streaming();
    let at = Instant::now();
    assert_eq!(unsafe { libc::kill(run.pid(), libc::SIGKILL) }, 0);
    let _ = run.wait_exit(at);
    // The run itself goes on to its end; it must be over within the limit.
    let deadline = at + END_WITHIN;
    while !marked_processes(&run.mark).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = at.elapsed();
    assert!(
        marked_processes(&run.mark).is_empty(),
        "the run outlived its supervisor by {:.1} s: {:?}\n{}",
        took.as_secs_f64(),
        marked_processes(&run.mark),
        run.stderr()
    );
    let summary = run.summary().unwrap_or_else(|| panic!("no summary.json\n{}", run.stderr()));
    assert_eq!(summary.verdict, Verdict::Interrupted, "{summary:#?}");
    assert_eq!(summary.error.as_deref(), Some("interrupted by SIGTERM"), "{summary:#?}");
    run.assert_nothing_left(Instant::now());
    eprintln!("SIGKILL of the supervisor: the run ended {:.2} s later", took.as_secs_f64());
}

/// SIGKILL of the run inside: the supervisor kills what it left (Chromium, the services,
/// streamers: re-parented to it), removes the namespace and the temp root, and says so.
#[test]
fn sigkill_of_the_run_inside() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut run = Run::start("kill-inner");
    run.wait_until_streaming();
    let inner = run.inner_pid();
    let at = Instant::now();
    assert_eq!(unsafe { libc::kill(inner as i32, libc::SIGKILL) }, 0);
    let (status, took) = run.wait_exit(at);
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(took <= END_WITHIN, "the supervisor took {:.1} s\n{stderr}", took.as_secs_f64());
    assert!(stderr.contains("the run process was killed by signal 9"), "{stderr}");
    run.assert_nothing_left(at);
    eprintln!("SIGKILL of the run inside: supervisor exit 2 after {:.2} s", took.as_secs_f64());
}

/// A death mid-run: the verdict is a failure named after what died, decided within a second of
/// the death and never a catalog fault of the stack; the run ends within 5 s of it.
fn death_run(label: &str, kill: impl FnOnce(&Run) -> Vec<u32>, want: &str) {
    death_run_with(label, kill, libc::SIGKILL, END_WITHIN, want)
}

fn death_run_with(label: &str, kill: impl FnOnce(&Run) -> Vec<u32>, sig: libc::c_int, end_within: Duration, want: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut run = Run::start(label);
    run.wait_until_streaming();
    let victims = kill(&run);
    assert!(!victims.is_empty(), "nothing to kill for {label}");
    let at = Instant::now();
    for pid in &victims {
        unsafe { libc::kill(*pid as i32, sig) };
    }
    let (status, took) = run.wait_exit(at);
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(1), "{label}: exit code\n{stderr}");
    assert!(took <= end_within, "{label}: the run ended {:.1} s after the death\n{stderr}", took.as_secs_f64());
    let summary = run.summary().unwrap_or_else(|| panic!("{label}: no summary.json\n{stderr}"));
    let detections: Vec<&Detection> = summary.scenarios.iter().flat_map(|s| &s.detections).collect();
    let labels: Vec<String> = detections.iter().map(|d| d.label()).collect();
    assert!(labels.iter().any(|l| l == want), "{label}: {want} not named, got {labels:?}\n{stderr}");
    assert!(detections.iter().all(|d| d.fault.is_death()), "{label}: a catalog fault blamed for a death: {labels:?}\n{stderr}");
    let d = detections.iter().find(|d| d.label() == want).unwrap();
    let latency = d.decided_at - d.first_symptom;
    assert!(latency < 1000.0, "{label}: decided {latency:.0} ms after the death");
    run.assert_nothing_left(Instant::now());
    eprintln!("{label}: {want} named {latency:.0} ms after the death; exit 1 after {:.2} s", took.as_secs_f64());
}

#[test]
fn a_killed_renderer_is_a_crashed_tab() {
    death_run("renderer", |r| r.processes("--type=renderer", None), "B1 tab-crashed");
}

#[test]
fn a_killed_browser_is_a_dead_browser() {
    // The browser process: Chromium's own binary without a `--type=` (its helpers have one).
    death_run(
        "browser",
        |r| r.processes("chromium", Some("--type=")).into_iter().filter(|p| common::exe_name(*p).as_deref() == Some("chromium")).collect(),
        "B2 browser-died",
    );
}

#[test]
fn a_killed_streamer_is_a_dead_streamer() {
    death_run("streamer", |r| r.processes("__streamer", None).into_iter().take(1).collect(), "D1 streamer-died");
}

/// A renderer that stops (SIGSTOP: alive, silent) is a tab that stopped answering: named once
/// it has not answered DevTools for 3 s, and the run still ends (a hung page never holds it).
#[test]
fn a_hung_renderer_is_an_unresponsive_tab() {
    death_run_with("hung-renderer", |r| r.processes("--type=renderer", None), libc::SIGSTOP, Duration::from_secs(10), "B3 tab-unresponsive");
}
