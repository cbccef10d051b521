//! The detection matrix: for every documented fault, run the scenario that exposes it N times
//! with the fault switched on, plus N clean runs, and tabulate how often the driver named the
//! failure correctly, how often it named something else, how fast it decided, and — on clean
//! runs — how often it raised a false alarm.
//!
//! Each run is a separate `helix-e2e run` process (its own stack, browser and namespace), so
//! runs cannot leak state into one another.
//!
//! Why one file of over 400 lines: it is under 350 without its tests; the rows, the kills the
//! harness injects and the tabulation are one table's.

use crate::catalog::FailureId;
use crate::report::{Summary, Verdict};
use crate::shard::Shard;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One row of the matrix: a fault switch, the scenario that exposes it, the expected name.
pub struct Case {
    /// The failure the row brings about; `None` for a clean row.
    pub fault: Option<FailureId>,
    pub switch: Option<&'static str>,
    pub scenario: &'static str,
}

/// The cases, in catalog order; then the clean baselines, one per scenario the faults use (a
/// detector that decides early must stay silent wherever it runs).
pub const CASES: &[Case] = &[
    Case { fault: Some(FailureId::F1), switch: Some("cert-subject-collision"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F2), switch: Some("webrtc-port-range=40000-40000"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F3), switch: Some("join-not-counted"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F4), switch: Some("control-idle-timeout=3"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F5), switch: Some("stuck-session"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F6), switch: Some("zombie-streamer"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F6), switch: Some("zombie-streamer=listed"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F7), switch: Some("orphan-wolf-session"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F8), switch: Some("black-after=2"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F9), switch: Some("freeze-after=3"), scenario: "second-connection" },
    // Ghosts need a restart of Wolf under streaming tabs.
    Case { fault: Some(FailureId::F10), switch: Some("no-lobby-recreate"), scenario: "restart-chaos" },
    Case { fault: Some(FailureId::F11), switch: Some("sctp-errors"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F12), switch: Some("slow-tls=15000"), scenario: "second-connection" },
    // Reuse needs two viewers of one agent session.
    Case { fault: Some(FailureId::F13), switch: Some("session-id-reuse"), scenario: "multi-tab-same-lobby" },
    // The race needs a Reconnect press on a streaming viewer; the walk presses one (seed 7 at
    // its 4th operation) and stops at the first failure.
    Case { fault: Some(FailureId::F14), switch: Some("reconnect-teardown-race"), scenario: "random-walk" },
    // Closing the first phase's tabs sends the /cancel that races its session's teardown; the
    // second phase's viewers then stall at launch.
    Case { fault: Some(FailureId::F15), switch: Some("https-deadlock"), scenario: "second-connection" },
    // 12 s after Wolf started: as the first viewers stream (or before, on a slow machine).
    Case { fault: Some(FailureId::F16), switch: Some("pipeline-lock=12"), scenario: "second-connection" },
    // 3 s after the first session connected Wolf to its audio server, while it streams.
    Case { fault: Some(FailureId::F17), switch: Some("audio-disconnect=3"), scenario: "second-connection" },
    Case { fault: Some(FailureId::F18), switch: Some("no-silent-close-detection"), scenario: "vanished-tab" }, // a tab cut off, no close frame
    Case { fault: Some(FailureId::F19), switch: Some("lobby-socket-leak=4"), scenario: "concurrent-sessions" }, // 5 starts; 4 sockets last 2
    // A leak shows only over many cycles: the soak's rounds of connects and disconnects.
    Case { fault: Some(FailureId::F20), switch: Some("leak-per-cycle=14"), scenario: "soak" },
    // A latched modifier needs a key held across a Reconnect, released while it reconnects.
    Case { fault: Some(FailureId::F21), switch: Some("lost-key-release"), scenario: "reconnect-holding-shift" },
    Case { fault: None, switch: None, scenario: "second-connection" },
    Case { fault: None, switch: None, scenario: "restart-chaos" },
    Case { fault: None, switch: None, scenario: "multi-tab-same-lobby" },
    Case { fault: None, switch: None, scenario: "random-walk" },
    Case { fault: None, switch: None, scenario: "rapid-cycles" },
    Case { fault: None, switch: None, scenario: "concurrent-sessions" },
    Case { fault: None, switch: None, scenario: "vanished-tab" },
    Case { fault: None, switch: None, scenario: "soak" },
    Case { fault: None, switch: None, scenario: "reconnect-holding-shift" },
    // Deaths the harness injects at a seeded moment while the first tab streams: each must be
    // named for what died, never as a fault of the stack.
    Case { fault: Some(FailureId::B1), switch: Some("kill:renderer"), scenario: "second-connection" },
    Case { fault: Some(FailureId::B2), switch: Some("kill:browser"), scenario: "second-connection" },
    Case { fault: Some(FailureId::D1), switch: Some("kill:streamer"), scenario: "second-connection" },
    Case { fault: Some(FailureId::D2), switch: Some("kill:wolf"), scenario: "second-connection" },
    Case { fault: Some(FailureId::D2), switch: Some("kill:moonlight-web"), scenario: "second-connection" },
    Case { fault: Some(FailureId::D2), switch: Some("kill:api"), scenario: "second-connection" },
];

impl Case {
    /// `F2`, or `clean`: the first column of the tables.
    pub fn label(&self) -> String {
        self.fault.map(|f| f.to_string()).unwrap_or_else(|| "clean".into())
    }

    /// Whether a named failure (`F2 webrtc-ports-exhausted`, `D2 service-died wolf`) is the
    /// one this case expects: a kill row wants its exact label, a fault row its catalog id.
    pub fn expects(&self, label: &str) -> bool {
        match self.switch.and_then(Kill::of) {
            Some(k) => label == k.expected(),
            None => self.fault.is_some_and(|f| label.split_whitespace().next() == Some(f.to_string().as_str())),
        }
    }
}

/// A death the harness injects instead of a fault switch: the process it kills (SIGKILL) at a
/// seeded moment while the first tab streams. Written in the `switch` column as `kill:<what>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Every renderer of the run's browser (the viewer tabs' and webrtc-internals').
    Renderers,
    /// Chromium's browser process.
    Browser,
    /// One streamer of the stand-in's moonlight-web.
    Streamer,
    /// A service process of the stand-in: `wolf`, `moonlight-web` or `api`.
    Service(&'static str),
}

impl Kill {
    /// `kill:<what>` in a case's switch column.
    pub fn of(switch: &str) -> Option<Kill> {
        Some(match switch.strip_prefix("kill:")? {
            "renderer" => Kill::Renderers,
            "browser" => Kill::Browser,
            "streamer" => Kill::Streamer,
            "wolf" => Kill::Service("wolf"),
            "moonlight-web" => Kill::Service("moonlight-web"),
            "api" => Kill::Service("api"),
            _ => return None,
        })
    }

    /// The label a correct verdict names.
    pub fn expected(self) -> String {
        match self {
            Kill::Renderers => "B1 tab-crashed".into(),
            Kill::Browser => "B2 browser-died".into(),
            Kill::Streamer => "D1 streamer-died".into(),
            Kill::Service(s) => format!("D2 service-died {s}"),
        }
    }

    /// Which of the run's processes are the victims.
    fn matches(self, cmdline: &str) -> bool {
        match self {
            Kill::Renderers => cmdline.contains("--type=renderer"),
            // chromiumoxide starts the browser with a debugging port; its helpers have a type.
            Kill::Browser => cmdline.contains("--remote-debugging-port") && !cmdline.contains("--type="),
            Kill::Streamer => cmdline.ends_with(" __streamer") || cmdline.contains(" __streamer "),
            Kill::Service(s) => cmdline.contains(&format!(" service {s} ")),
        }
    }
}

/// Wait until the run below `root` streams (a streamer runs), then a seeded 0.5–3 s more, and
/// kill the victims. Returns what it killed, or why it could not.
fn inject(root: u32, kill: Kill, seed: u64) -> Result<Vec<u32>, String> {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(120);
    let streams = || crate::procs::descendants(root).iter().any(|p| Kill::Streamer.matches(&p.cmdline));
    while !streams() {
        if Instant::now() > deadline {
            return Err("the run never streamed".into());
        }
        if crate::procs::Proc::read(root).is_none_or(|p| !p.alive()) {
            return Err("the run ended before it streamed".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A splitmix64 step of the seed: the moment is part of what the seed replays.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    std::thread::sleep(Duration::from_millis(500 + (z ^ (z >> 31)) % 2500));
    let mut victims: Vec<crate::procs::Proc> = crate::procs::descendants(root).into_iter().filter(|p| kill.matches(&p.cmdline)).collect();
    if kill == Kill::Streamer {
        victims.truncate(1);
    }
    if victims.is_empty() {
        return Err(format!("nothing to kill for {kill:?}"));
    }
    for v in &victims {
        v.kill();
    }
    Ok(victims.iter().map(|v| v.pid).collect())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    pub seed: u64,
    pub verdict: Verdict,
    /// Failures the detectors named, e.g. `["F2 webrtc-ports-exhausted"]`.
    pub named: Vec<String>,
    /// Latency of the expected detection, first symptom → verdict.
    pub latency_ms: Option<f64>,
    pub artifacts: String,
    pub error: Option<String>,
}

impl RunOutcome {
    /// A run that could not be judged (no summary, a kill not injected).
    fn error(seed: u64, why: String) -> Self {
        RunOutcome { seed, verdict: Verdict::Error, named: vec![], latency_ms: None, artifacts: String::new(), error: Some(why) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub fault: String,
    pub switch: Option<String>,
    pub scenario: String,
    pub runs: usize,
    /// Runs whose detections include the expected fault.
    pub named_correctly: usize,
    /// Runs that named some other fault (for the clean row: false alarms).
    pub misnamed: usize,
    pub median_latency_ms: Option<f64>,
    pub outcomes: Vec<RunOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("unknown fault {0:?} for the matrix (known: {list})", list = CASES.iter().map(Case::label).collect::<Vec<_>>().join(", "))]
    UnknownFault(String),
    #[error("cannot run {exe}: {source}")]
    Spawn { exe: PathBuf, source: std::io::Error },
}

pub struct MatrixOptions {
    pub exe: PathBuf,
    pub runs: usize,
    /// Only these rows (fault ids, `clean`, or `clean:<scenario>`); all when empty.
    pub only: Vec<String>,
    pub thresholds: Option<PathBuf>,
    pub artifacts: PathBuf,
    pub first_seed: u64,
    /// Only this shard's share of the rows' runs (`--shard K/N`).
    pub shard: Option<Shard>,
}

/// What a matrix is, apart from where it runs: `matrix-spec.json`, so `helix-e2e merge` can tell
/// the shards of one matrix from those of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSpec {
    pub runs: usize,
    /// The `--only` selection, sorted (its order selects nothing).
    pub only: Vec<String>,
    pub thresholds: Option<PathBuf>,
    pub first_seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

impl MatrixOptions {
    pub fn spec(&self) -> MatrixSpec {
        let mut only = self.only.clone();
        only.sort();
        only.dedup();
        MatrixSpec { runs: self.runs, only, thresholds: self.thresholds.clone(), first_seed: self.first_seed, shard: self.shard }
    }
}

/// The cases `--only` selects (all when empty), in catalog order.
pub fn selected(only: &[String]) -> Result<Vec<&'static Case>, MatrixError> {
    // `clean` is every clean row; `clean:<scenario>` one of them.
    let picks = |o: &str, c: &Case| o == c.label() || (c.fault.is_none() && o.strip_prefix("clean:") == Some(c.scenario));
    for f in only {
        if !CASES.iter().any(|c| picks(f, c)) {
            return Err(MatrixError::UnknownFault(f.clone()));
        }
    }
    Ok(CASES.iter().filter(|c| only.is_empty() || only.iter().any(|o| picks(o, c))).collect())
}

/// The selected cases with the runs (0-based; run i has seed `first_seed + i`) this shard
/// makes of each: every case's runs, one after the other, split round-robin
/// (`crate::shard`); a case with none here is left out.
pub fn share(spec: &MatrixSpec) -> Result<Vec<(&'static Case, Vec<usize>)>, MatrixError> {
    let cases = selected(&spec.only)?;
    let runs = spec.runs;
    let items: Vec<(usize, usize)> = (0..cases.len()).flat_map(|c| (0..runs).map(move |i| (c, i))).collect();
    let mine: Vec<usize> = match spec.shard {
        Some(s) => s.take(&items),
        None => (0..items.len()).collect(),
    };
    let mut out: Vec<(&'static Case, Vec<usize>)> = Vec::new();
    for (c, i) in mine.into_iter().map(|p| items[p]) {
        match out.last_mut() {
            Some((case, runs)) if std::ptr::eq(*case, cases[c]) => runs.push(i),
            _ => out.push((cases[c], vec![i])),
        }
    }
    Ok(out)
}

/// The case a row (read back from `matrix.json`) tabulates.
pub fn case_of(row: &Row) -> Option<&'static Case> {
    CASES.iter().find(|c| c.label() == row.fault && c.switch == row.switch.as_deref() && c.scenario == row.scenario)
}

/// Run one case's `runs` (0-based run numbers); progress on stderr.
pub fn run_case(opts: &MatrixOptions, case: &Case, runs: &[usize]) -> Result<Row, MatrixError> {
    let mut outcomes = Vec::new();
    for &i in runs {
        let seed = opts.first_seed + i as u64;
        let o = run_once(opts, case, seed)?;
        eprintln!(
            "matrix: {} run {}/{}: {} named {:?}{}",
            case.label(),
            i + 1,
            opts.runs,
            format!("{:?}", o.verdict).to_lowercase(),
            o.named,
            o.latency_ms.map(|l| format!(" in {l:.0} ms")).unwrap_or_default()
        );
        outcomes.push(o);
    }
    Ok(tabulate(case, outcomes))
}

fn run_once(opts: &MatrixOptions, case: &Case, seed: u64) -> Result<RunOutcome, MatrixError> {
    let mut cmd = Command::new(&opts.exe);
    // Scenario waits at a fifth of the design's times: a run only has to expose the fault.
    cmd.args(["run", case.scenario, "--json", "--seed", &seed.to_string(), "--time-scale", "0.2", "--artifacts"]).arg(&opts.artifacts);
    let kill = case.switch.and_then(Kill::of);
    if let Some(s) = case.switch.filter(|_| kill.is_none()) {
        cmd.args(["--fault", s]);
    }
    if let Some(t) = &opts.thresholds {
        cmd.arg("--thresholds").arg(t);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| MatrixError::Spawn { exe: opts.exe.clone(), source })?;
    let injected = kill.map(|k| {
        let root = child.id();
        std::thread::spawn(move || inject(root, k, seed))
    });
    let out = child.wait_with_output().map_err(|source| MatrixError::Spawn { exe: opts.exe.clone(), source })?;
    if let Some(Err(why)) = injected.map(|h| h.join().unwrap_or_else(|_| Err("the injector panicked".into()))) {
        return Ok(RunOutcome::error(seed, format!("kill not injected: {why}")));
    }
    let summary: Summary = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            return Ok(RunOutcome::error(seed, format!("no summary ({e}): {tail}")));
        }
    };
    let detections: Vec<_> = summary.scenarios.iter().flat_map(|s| &s.detections).collect();
    let mut named: Vec<String> = detections.iter().map(|d| d.label()).collect();
    named.dedup();
    let latency_ms = detections.iter().find(|d| case.expects(&d.label())).map(|d| d.latency_ms());
    Ok(RunOutcome { seed, verdict: summary.verdict, named, latency_ms, artifacts: summary.artifacts, error: summary.error })
}

pub(crate) fn tabulate(case: &Case, outcomes: Vec<RunOutcome>) -> Row {
    let named_correctly = outcomes.iter().filter(|o| o.named.iter().any(|n| case.expects(n))).count();
    let misnamed = outcomes.iter().filter(|o| o.named.iter().any(|n| !case.expects(n))).count();
    let mut lat: Vec<f64> = outcomes.iter().filter_map(|o| o.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    let median_latency_ms =
        (!lat.is_empty()).then(|| if lat.len() % 2 == 1 { lat[lat.len() / 2] } else { (lat[lat.len() / 2 - 1] + lat[lat.len() / 2]) / 2.0 });
    Row {
        fault: case.label(),
        switch: case.switch.map(str::to_string),
        scenario: case.scenario.into(),
        runs: outcomes.len(),
        named_correctly,
        misnamed,
        median_latency_ms,
        outcomes,
    }
}

/// The table people read (also pasted into the README).
pub fn markdown(rows: &[Row]) -> String {
    let mut md = String::from("| fault | switch | scenario | named correctly | misnamed / false alarms | median latency |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let (named, mis) = if r.fault == "clean" {
            ("–".to_string(), format!("{}/{}", r.misnamed, r.runs))
        } else {
            (format!("{}/{}", r.named_correctly, r.runs), format!("{}/{}", r.misnamed, r.runs))
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.fault,
            r.switch.as_deref().map(|s| format!("`{s}`")).unwrap_or("(none)".into()),
            r.scenario,
            named,
            mis,
            r.median_latency_ms.map(|l| format!("{:.2} s", l / 1000.0)).unwrap_or("–".into())
        ));
    }
    md
}

/// Write `matrix-spec.json`, `matrix.md` and `matrix.json` into `dir`.
pub fn write(dir: &Path, spec: &MatrixSpec, rows: &[Row]) -> Result<(), crate::report::ArtifactError> {
    let a = crate::report::ArtifactDir::open(dir)?;
    a.write_json("matrix-spec.json", spec)?;
    a.write_json("matrix.json", &rows)?;
    a.write("matrix.md", markdown(rows).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(named: &[&str], latency: Option<f64>) -> RunOutcome {
        RunOutcome {
            seed: 1,
            verdict: Verdict::Fail,
            named: named.iter().map(|s| s.to_string()).collect(),
            latency_ms: latency,
            artifacts: String::new(),
            error: None,
        }
    }

    #[test]
    fn only_picks_faults_every_clean_row_or_one_clean_row() {
        let only = |only: &[&str]| only.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let names = |o: &[&str]| selected(&only(o)).unwrap().iter().map(|c| format!("{} {}", c.label(), c.scenario)).collect::<Vec<_>>();
        assert_eq!(names(&["clean:random-walk", "F14"]), ["F14 random-walk", "clean random-walk"]);
        assert_eq!(names(&["clean"]).len(), CASES.iter().filter(|c| c.fault.is_none()).count());
        assert!(selected(&only(&["clean:no-such-scenario"])).is_err());
        assert!(selected(&only(&["F99"])).is_err());
    }

    fn opts(only: &[&str], runs: usize, shard: Option<&str>) -> MatrixOptions {
        MatrixOptions {
            exe: "x".into(),
            runs,
            only: only.iter().map(|s| s.to_string()).collect(),
            thresholds: None,
            artifacts: "a".into(),
            first_seed: 1,
            shard: shard.map(|s| s.parse().unwrap()),
        }
    }

    /// (row label and scenario, run) pairs a shard makes.
    fn runs_of(o: &MatrixOptions) -> Vec<(String, usize)> {
        share(&o.spec()).unwrap().into_iter().flat_map(|(c, runs)| runs.into_iter().map(move |i| (format!("{} {:?}", c.label(), c.switch), i))).collect()
    }

    #[test]
    fn shards_make_every_run_of_every_row_once_in_any_only_order() {
        let whole = runs_of(&opts(&["F2", "clean:soak", "F9"], 3, None));
        assert_eq!(whole.len(), 9);
        for count in 1..=4 {
            let mut parts: Vec<(String, usize)> = Vec::new();
            for index in 1..=count {
                let shard = format!("{index}/{count}");
                let mine = runs_of(&opts(&["F2", "clean:soak", "F9"], 3, Some(&shard)));
                // Deterministic, and the order of --only selects nothing.
                assert_eq!(mine, runs_of(&opts(&["F9", "F2", "clean:soak"], 3, Some(&shard))));
                parts.extend(mine);
            }
            parts.sort();
            let mut want = whole.clone();
            want.sort();
            assert_eq!(parts, want, "{count} shards");
        }
        // Round-robin over a row's runs: one row's three runs go to three shards.
        assert_eq!(runs_of(&opts(&["F2"], 3, Some("2/3"))), [("F2 Some(\"webrtc-port-range=40000-40000\")".to_string(), 1)]);
        let spec = opts(&["F9", "F2", "F2"], 3, Some("1/2")).spec();
        assert_eq!(spec.only, ["F2", "F9"]);
        let back: MatrixSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn rows_count_correct_and_other_names_and_take_the_median() {
        let case = &CASES[1];
        let r = tabulate(
            case,
            vec![
                outcome(&["F2 webrtc-ports-exhausted"], Some(300.0)),
                outcome(&["F2 webrtc-ports-exhausted", "F4 control-stream-timeout"], Some(500.0)),
                outcome(&[], None),
            ],
        );
        assert_eq!((r.named_correctly, r.misnamed), (2, 1));
        assert_eq!(r.median_latency_ms, Some(400.0));
        let md = markdown(&[r]);
        assert!(md.contains("| F2 | `webrtc-port-range=40000-40000` | second-connection | 2/3 | 1/3 | 0.40 s |"), "{md}");
    }

    #[test]
    fn a_kill_row_wants_its_exact_death_and_its_victims_are_told_apart() {
        let wolf = Case { fault: Some(FailureId::D2), switch: Some("kill:wolf"), scenario: "second-connection" };
        assert!(wolf.expects("D2 service-died wolf"));
        assert!(!wolf.expects("D2 service-died api") && !wolf.expects("F4 control-stream-timeout"));
        // A fault row matches by catalog id, and F1 is not F10.
        let f1 = Case { fault: Some(FailureId::F1), switch: Some("cert-subject-collision"), scenario: "second-connection" };
        assert!(f1.expects("F1 treated-as-resume") && !f1.expects("F10 restart-ghost"));
        assert!(Kill::of("kill:nothing").is_none() && Kill::of("webrtc-port-range=1-2").is_none());
        let browser = "/usr/lib/chromium/chromium --headless=new --remote-debugging-port=0 --user-data-dir=/tmp/x";
        assert!(Kill::Browser.matches(browser) && !Kill::Renderers.matches(browser));
        assert!(Kill::Renderers.matches("/usr/lib/chromium/chromium --type=renderer --lang=en"));
        assert!(!Kill::Browser.matches("/usr/lib/chromium/chromium --type=renderer --remote-debugging-port=0"));
        assert!(Kill::Service("wolf").matches("/x/helix-e2e service wolf --dir /tmp/a"));
        assert!(!Kill::Service("wolf").matches("/x/helix-e2e service moonlight-web --dir /tmp/a"));
        assert!(Kill::Streamer.matches("/x/helix-e2e __streamer"));
    }
}
