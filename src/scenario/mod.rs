//! Scenarios and the runner that sets up a target, a browser and the observers, runs the
//! scenarios, always cleans up, and writes the run's artifacts.
//!
//! Why one file of over 400 lines: the runner's order of setup and teardown (stack, monitor,
//! browser, scenarios, cleanup, reports) is the lifecycle rule, and it reads top to bottom in one
//! place.

pub mod concurrent_sessions;
pub mod driver;
pub mod exec;
pub mod input_probe;
pub mod keep_alive;
pub mod multi_tab;
pub mod params;
pub mod plan;
pub mod random_walk;
pub mod rapid_cycles;
pub mod reconnect_holding_shift;
pub mod restart_chaos;
pub mod second_connection;
pub mod soak;
pub mod spec;
pub mod vanished_tab;

use crate::browser::{Browser, BrowserOptions};
use crate::config::Target;
use crate::refstack::faults::Fault;
use crate::report::progress::say;
use crate::report::{ArtifactDir, ScenarioResult, Summary, TabFacts, Verdict};
use crate::sut::control::docker::{logs::Dest, DockerServices};
use crate::sut::control::processes::ProcessStack;
use crate::sut::control::ServiceControl;
use crate::sut::monitor::Monitor;
use crate::timeline::Timeline;
use crate::verdict::detectors::Thresholds;
use crate::verdict::live::LiveDetectors;
use driver::Driver;
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::watch;

pub struct ScenarioInfo {
    pub name: &'static str,
    pub about: &'static str,
}

/// The catalogue; a scenario's index here also picks its stream of the seeded generator, so
/// append new scenarios at the end.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo { name: second_connection::NAME, about: second_connection::ABOUT },
    ScenarioInfo { name: rapid_cycles::NAME, about: rapid_cycles::ABOUT },
    ScenarioInfo { name: concurrent_sessions::NAME, about: concurrent_sessions::ABOUT },
    ScenarioInfo { name: restart_chaos::NAME, about: restart_chaos::ABOUT },
    ScenarioInfo { name: multi_tab::NAME, about: multi_tab::ABOUT },
    ScenarioInfo { name: random_walk::NAME, about: random_walk::ABOUT },
    ScenarioInfo { name: vanished_tab::NAME, about: vanished_tab::ABOUT },
    ScenarioInfo { name: soak::NAME, about: soak::ABOUT },
    ScenarioInfo { name: reconnect_holding_shift::NAME, about: reconnect_holding_shift::ABOUT },
];

/// The suite `helix-e2e run` runs when no scenario is named: every scenario, in this order.
pub const DEFAULT_SUITE: &[&str] =
    &[second_connection::NAME, multi_tab::NAME, concurrent_sessions::NAME, rapid_cycles::NAME, random_walk::NAME, restart_chaos::NAME];

/// The default suite's time scale when none is given: the design's suite must finish in under
/// five minutes, and rapid-cycles alone takes about three at the design's own times.
pub const DEFAULT_SUITE_TIME_SCALE: f64 = 0.2;

/// The seeded plan of a scenario, or `None` for one that follows a fixed procedure
/// (`second-connection`). Deterministic: same inputs, byte-identical plan.
pub fn make_plan(name: &str, seed: u64, params: &params::Params, time_scale: f64) -> Option<plan::Plan> {
    let index = SCENARIOS.iter().position(|s| s.name == name)?;
    let mut rng = plan::Rng::for_scenario(seed, index);
    match name {
        rapid_cycles::NAME => Some(rapid_cycles::plan(&mut rng, params, time_scale)),
        concurrent_sessions::NAME => Some(concurrent_sessions::plan(&mut rng, params, time_scale)),
        multi_tab::NAME => Some(multi_tab::plan(&mut rng, params, time_scale)),
        random_walk::NAME => Some(random_walk::plan(&mut rng, params, time_scale)),
        restart_chaos::NAME => Some(restart_chaos::plan(&mut rng, params, time_scale)),
        vanished_tab::NAME => Some(vanished_tab::plan(&mut rng, params, time_scale)),
        soak::NAME => Some(soak::plan(&mut rng, params, time_scale)),
        reconnect_holding_shift::NAME => Some(reconnect_holding_shift::plan(&mut rng, params, time_scale)),
        _ => None,
    }
}

pub enum TargetChoice {
    /// Start the reference stack's services as child processes of this executable
    /// (`helix-e2e` itself), with these fault switches.
    Embedded {
        exe: PathBuf,
        faults: Vec<Fault>,
    },
    File(PathBuf),
}

pub struct RunOptions {
    /// What the run is (scenarios, seed, parameters, target, faults, …): `run.json`.
    pub spec: spec::RunSpec,
    /// How the target is reached: the embedded stack (from this executable) or a target file.
    pub target: TargetChoice,
    pub artifacts_base: PathBuf,
    pub browser: BrowserOptions,
    /// Detector thresholds (the spec's file, read and checked, or the defaults).
    pub thresholds: Thresholds,
    /// Plans to run instead of generating them from the seed (`helix-e2e replay`).
    pub plans: Option<Vec<plan::Plan>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown scenario {0:?} (see `helix-e2e list`)")]
    UnknownScenario(String),
    #[error(transparent)]
    Artifacts(#[from] crate::report::ArtifactError),
}

/// Run the scenarios; errors of the system under test become a verdict, not an `Err`.
pub async fn run(opts: RunOptions) -> Result<Summary, RunError> {
    let spec = &opts.spec;
    for s in &spec.scenarios {
        if !SCENARIOS.iter().any(|i| i.name == s) {
            return Err(RunError::UnknownScenario(s.clone()));
        }
    }
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    // Time and seed say what a run is; the suffix keeps two runs of one seed started in the same
    // second apart.
    let run_id = format!("{}-{:016x}-{}", started_at.format("%Y%m%dT%H%M%SZ"), spec.seed, &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let artifacts = ArtifactDir::create(&opts.artifacts_base, &run_id)?;
    say!("helix-e2e: run {run_id}, seed {}, artifacts in {}", spec.seed, artifacts.root().display());
    // The plans exist, and are on disk, before the first operation runs.
    let plans: Vec<plan::Plan> = match &opts.plans {
        Some(p) => p.clone(),
        None => spec.scenarios.iter().filter_map(|s| make_plan(s, spec.seed, &spec.params.get(s).cloned().unwrap_or_default(), spec.time_scale)).collect(),
    };
    artifacts.write("ops.jsonl", &plans.iter().flat_map(|p| p.to_jsonl()).collect::<Vec<u8>>())?;
    artifacts.write_json("run.json", spec)?;
    let mut summary = Summary {
        run_id: run_id.clone(),
        verdict: Verdict::Error,
        seed: spec.seed,
        target: String::new(),
        started_at: started_at.to_rfc3339(),
        duration_s: 0.0,
        replay: spec.command(),
        scenarios: Vec::new(),
        tabs: Vec::new(),
        artifacts: artifacts.root().display().to_string(),
        error: None,
        logs_missing: Vec::new(),
        resources: None,
        input_latency: Vec::new(),
        shard: spec.shard.as_ref().map(|s| s.shard),
        merged_from: Vec::new(),
    };

    let stop = interrupt_signal();
    let timeline = Timeline::new();
    // Every observation goes to disk as it arrives, so even a killed run leaves its timeline.
    if let Err(e) = timeline.stream_to(&artifacts.root().join("timeline.jsonl")) {
        tracing::warn!("cannot write timeline.jsonl: {e}");
    }
    let progress = crate::report::progress::Progress::start(timeline.clone());
    let outcome = run_inner(&opts, &plans, &artifacts, &mut summary, timeline.clone(), stop.clone()).await;
    progress.finish().await;
    if let Err(e) = outcome {
        summary.error = Some(e);
        summary.verdict = Verdict::Error;
    }
    if let Some(why) = interrupted_by(&stop) {
        summary.verdict = Verdict::Interrupted;
        summary.error.get_or_insert(why);
    }
    summary.duration_s = started.elapsed().as_secs_f64();
    let observations = timeline.snapshot();
    summary.resources = crate::verdict::detectors::leak::growth_of(&observations, opts.thresholds.leak_warmup_cycles);
    summary.input_latency = crate::frames::input::latencies(&observations);
    crate::report::write_reports(&artifacts, &summary, &observations);
    artifacts.write_json("summary.json", &summary)?;
    Ok(summary)
}

/// How long an interrupted run spends closing tabs and stopping the sessions it created, so it
/// still ends within a few seconds of the signal.
const CLEANUP_IN_A_HURRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the run stops early, when it does: the signal that asked for it.
pub type Stop = watch::Receiver<Option<&'static str>>;

/// Turns SIGINT, SIGTERM and SIGHUP into a flag the run checks at every step, so cleanup still
/// runs and the summary says `interrupted` (a supervisor forwards every signal it gets here, once;
/// see [`crate::supervisor`]). A second signal exits at once; the supervisor cleans up after it.
fn interrupt_signal() -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(None);
    let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(mut s) => {
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.borrow().is_some() {
                        say!("helix-e2e: {name} again; stopping at once");
                        std::process::exit(2);
                    }
                    say!("\nhelix-e2e: {name}: interrupted; cleaning up (signal again to stop at once)");
                    let _ = tx.send(Some(name));
                }
            });
        }
        Err(e) => tracing::warn!("cannot listen for {name}: {e}"),
    };
    listen(SignalKind::interrupt(), "SIGINT");
    listen(SignalKind::terminate(), "SIGTERM");
    listen(SignalKind::hangup(), "SIGHUP");
    rx
}

fn interrupted_by(stop: &Stop) -> Option<String> {
    stop.borrow().map(|sig| format!("interrupted by {sig}"))
}

/// Run `fut` unless the run is interrupted first.
async fn unless_interrupted<T>(stop: &Stop, fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    let mut stop = stop.clone();
    tokio::select! {
        v = fut => Ok(v),
        r = stop.wait_for(|s| s.is_some()) => Err(r.ok().and_then(|s| s.map(|sig| format!("interrupted by {sig}"))).unwrap_or_else(|| "interrupted".into())),
    }
}

async fn run_inner(
    opts: &RunOptions,
    plans: &[plan::Plan],
    artifacts: &ArtifactDir,
    summary: &mut Summary,
    timeline: Timeline,
    stop: Stop,
) -> Result<(), String> {
    let run_start = std::time::SystemTime::now();
    let mut stack = None;
    let mut deaths_watch = None;
    let mut target = match &opts.target {
        TargetChoice::Embedded { exe, faults } => {
            say!("helix-e2e: starting the embedded reference stack");
            let s = unless_interrupted(&stop, ProcessStack::start_temp(exe, faults.clone())).await?.map_err(|e| e.to_string())?;
            let t = Target::embedded(&s.endpoints());
            let s = std::sync::Arc::new(s);
            deaths_watch = Some(s.watch_deaths(timeline.clone()));
            stack = Some(s);
            t
        }
        TargetChoice::File(p) => Target::load(p).map_err(|e| e.to_string())?,
    };
    summary.target = target.name.clone();
    let mut services: Option<std::sync::Arc<dyn ServiceControl>> = match &stack {
        Some(s) => Some(s.clone()),
        None => None,
    };
    // A deployment in containers: restarts and logs go through the Docker engine. Logs land in
    // a private directory first (they are unredacted) and reach the artifacts redacted below.
    let mut capture = None;
    let log_dir = private_log_dir(&summary.run_id);
    // Without the engine a run goes on, short of what only it gives: restarts (a scenario that
    // needs one fails by saying so) and the containers' logs (listed as missing below).
    let docker = if target.containers.is_empty() {
        None
    } else {
        match unless_interrupted(&stop, DockerServices::for_target(&target.containers)).await? {
            Ok(d) => Some(d),
            Err(e) => {
                // Refused up front when a plan restarts a service: it could only fail later.
                let restarts = |p: &crate::scenario::plan::Plan| p.steps.iter().any(|s| matches!(s.op, crate::scenario::plan::Op::RestartService { .. }));
                if let Some(p) = plans.iter().find(|p| restarts(p)) {
                    return Err(format!("{} restarts services, which needs the Docker engine: {e}", p.scenario));
                }
                say!("helix-e2e: no restarts and no container logs this run: {e}");
                None
            }
        }
    };
    if let Some(docker) = docker {
        say!("helix-e2e: controlling containers through the Docker engine at {}", docker.endpoint());
        // Every container's output is kept for the artifacts; the monitor reads those of the
        // services whose log it is.
        let all: Vec<_> = docker.containers().iter().map(|(s, _)| *s).collect();
        let c = docker.follow_logs(&all, run_start, Dest::Dir(log_dir.clone()));
        let from_containers = target.logged_by_containers();
        for (service, path) in c.files() {
            if from_containers.contains(service) {
                target.logs.push((service.clone(), crate::sut::log_source::LogSource::run_file(path.clone())));
            }
        }
        capture = Some(c);
        services = Some(std::sync::Arc::new(docker));
    }
    // A run that cannot read a service's log must say so: the detectors that read it are blind.
    summary.logs_missing = crate::sut::log_source::missing(&target.logs);
    if let Some(m) = crate::sut::log_source::missing_logs_message(&summary.logs_missing) {
        say!("helix-e2e: {m}");
    }
    let stage = Stage { opts, plans, artifacts, target: &target, services, stop: &stop };
    let result = drive(stage, summary, timeline.clone()).await;
    if let Some(c) = capture {
        c.stop().await;
    }
    // The timeline is written whatever happened.
    if let Err(e) = timeline.finish_stream() {
        tracing::warn!("cannot finish timeline.jsonl: {e}");
    }
    // Service logs, redacted, for people; the stack's own directory holds its credentials.
    let redactor = timeline.redactor();
    for (service, source) in &target.logs {
        let feed = crate::sut::log_source::LogFeed::new(service, source, &log_dir);
        if let Some(Ok(text)) = feed.run_lines().map(std::fs::read_to_string) {
            let _ = artifacts.write(&format!("logs/{service}.log"), redactor.text(&text).as_bytes());
        }
    }
    if let Some(w) = deaths_watch {
        w.abort();
    }
    if let Some(s) = stack {
        // Its directory goes with its last reference.
        s.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    result
}

/// Where the run keeps service logs before they reach the artifacts redacted: the Docker
/// capture's files and copies of what other sources gave.
fn private_log_dir(run_id: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("helix-e2e-logs-{run_id}"))
}

/// What [`drive`] works with: the run's settings, and what [`run_inner`] set up for it.
struct Stage<'a> {
    opts: &'a RunOptions,
    plans: &'a [plan::Plan],
    artifacts: &'a ArtifactDir,
    target: &'a Target,
    services: Option<std::sync::Arc<dyn ServiceControl>>,
    stop: &'a Stop,
}

/// Log in, start the monitor and the browser, run each scenario with its live detectors, and
/// record its result in `summary`.
async fn drive(stage: Stage<'_>, summary: &mut Summary, timeline: Timeline) -> Result<(), String> {
    let Stage { opts, plans, artifacts, target, services, stop } = stage;
    let crate::sut::Clients { helix, wolf, mlw } = unless_interrupted(stop, target.connect(&timeline)).await?.map_err(|e| e.to_string())?;
    let log_dir = private_log_dir(&summary.run_id);
    let feeds = target.logs.iter().map(|(service, source)| crate::sut::log_source::LogFeed::new(service, source, &log_dir)).collect();
    let monitor = Monitor::start(wolf, target.wolf_https.clone(), mlw, helix.clone(), feeds, services.clone(), timeline.clone());
    // The flags win over the target file, as parameter flags win over their file.
    let remotes = if opts.spec.browsers.is_empty() { &target.browsers } else { &opts.spec.browsers };
    match remotes.len() {
        0 => say!("helix-e2e: launching Chromium"),
        n => say!("helix-e2e: connecting to {n} remote browser(s)"),
    }
    // A shard numbers its tabs apart from the other shards' (`TabIds::of_shard`).
    let tab_ids = opts.spec.shard.as_ref().map(|s| crate::browser::TabIds::of_shard(s.shard)).unwrap_or_default();
    let browser_opts = BrowserOptions { tab_ids, ..opts.browser.clone() };
    let browser = unless_interrupted(stop, Browser::start(browser_opts, remotes, timeline.clone())).await?.map_err(|e| e.to_string())?;
    let mut d = Driver::new(timeline, browser, helix, monitor, target.clone(), artifacts.clone(), services).with_given_sessions(opts.spec.sessions.clone());
    let keep_alive =
        opts.spec.keep_alive_input.then(|| keep_alive::KeepAlive::start(d.browser.clone(), d.timeline.clone(), target.viewer.video_selector.clone()));
    let input_probes = input_probe::InputProbes::start(d.keyboard.clone(), target.viewer.video_selector.clone());
    let mut verdict = Verdict::Pass;
    for name in &opts.spec.scenarios {
        say!("helix-e2e: scenario {name}");
        let t0 = Instant::now();
        d.begin_scenario();
        if stop.borrow().is_some() {
            break;
        }
        let plan = plans.iter().find(|p| &p.scenario == name);
        let live = LiveDetectors::start(d.timeline.clone(), opts.thresholds.clone(), crate::timeline::now_ms());
        let scenario = async {
            match (name.as_str(), plan) {
                (second_connection::NAME, _) => second_connection::run(&mut d).await,
                (_, Some(plan)) => exec::execute(&mut d, plan, &opts.spec).await,
                (other, None) => Err(driver::OpError { op: "plan".into(), detail: format!("no plan of operations for {other}") }),
            }
        };
        let named = live.first_named();
        let stop_early = async {
            if opts.spec.keep_going {
                std::future::pending::<()>().await
            } else {
                named.await
            }
        };
        let outcome = tokio::select! {
            r = unless_interrupted(stop, scenario) => r.unwrap_or_else(|e| Err(driver::OpError { op: "interrupted".into(), detail: e })),
            // Fail fast: a named failure is the verdict; the rest of the scenario would only
            // wait out deadlines it can no longer meet.
            _ = stop_early => Ok(()),
        };
        // Interrupted: the user wants the run to end now (within seconds), not a tidy one.
        let hurry = stop.borrow().is_some();
        if !live.is_empty() && !hurry {
            // What each open tab showed when the failure was named.
            for tab in d.tabs().iter().filter(|t| t.open).map(|t| t.id).collect::<Vec<_>>() {
                d.screenshot(tab, "at-failure").await;
            }
        }
        let detections = live.finish(outcome.is_err()).await;
        d.set_phase("");
        for det in &detections {
            d.check(crate::verdict::InvariantResult::fail(&det.label(), det.message.clone()));
        }
        let error = outcome.err().and_then(|e| {
            d.note_failed_op(&e.op);
            match detections.iter().find(|det| det.explains_failed_op(&e.op)).map(|det| det.label()) {
                // An operation cut short by a death (a tab opening in a browser that died), or
                // refused by a named failure (F19's session start), is that failure's doing,
                // already named: the verdict is the failure, not an error.
                Some(label) => {
                    tracing::info!("{e} — explained by {label}");
                    None
                }
                None => Some(e.to_string()),
            }
        });
        if hurry {
            if tokio::time::timeout(CLEANUP_IN_A_HURRY, d.cleanup()).await.is_err() {
                tracing::warn!("cleanup cut short after {:?}: the run was interrupted", CLEANUP_IN_A_HURRY);
            }
        } else {
            d.cleanup().await;
        }
        let v = if error.is_some() {
            Verdict::Error
        } else if d.results().iter().all(|r| r.passed) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        for r in d.results() {
            say!("  {} {}: {}", if r.passed { "PASS" } else { "FAIL" }, r.name, r.message);
        }
        if let Some(e) = &error {
            say!("  ERROR {e}");
        }
        say!(
            "{} {name} ({:.1} s)",
            match v {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                _ => "ERROR",
            },
            t0.elapsed().as_secs_f64()
        );
        verdict = verdict.worst(v);
        summary.scenarios.push(ScenarioResult {
            name: name.clone(),
            verdict: v,
            invariants: d.results().to_vec(),
            failed_op: d.failed_op().map(str::to_string),
            state_at_failure: d.state_at_failure().cloned(),
            detections,
            error,
            duration_s: t0.elapsed().as_secs_f64(),
            replay: opts.spec.scenario_command(name, d.broke_after_ops()),
            evidence_dir: None,
        });
        if let Some(why) = d.browser.death() {
            let rest: Vec<&str> = opts.spec.scenarios.iter().skip_while(|s| *s != name).skip(1).map(String::as_str).collect();
            if !rest.is_empty() {
                say!("helix-e2e: {why}; not running {}", rest.join(", "));
            }
            break;
        }
    }
    if let Some(k) = keep_alive {
        k.stop().await;
    }
    input_probes.stop().await;
    let hurry = stop.borrow().is_some();
    if !hurry && d.browser.death().is_none() {
        d.final_internals().await;
    }
    summary.tabs = tab_facts(&d);
    summary.verdict = verdict;
    let Driver { browser, monitor, keyboard, .. } = d;
    // The keyboard holds a share of the browser; close needs the last one.
    drop(keyboard);
    match std::sync::Arc::try_unwrap(browser) {
        Ok(b) if hurry => b.kill(),
        Ok(b) => {
            if let Err(e) = b.close().await {
                tracing::warn!("closing Chromium: {e}");
            }
        }
        Err(_) => tracing::warn!("browser still shared at the end of the run; its Drop kills Chromium"),
    }
    monitor.stop().await;
    Ok(())
}

fn tab_facts(d: &Driver) -> Vec<TabFacts> {
    let viewers = d.viewers();
    d.tabs()
        .iter()
        .map(|t| {
            let vs: Vec<_> = viewers.iter().filter(|v| v.tab == t.id).collect();
            let kind = vs.first().map(|v| v.kind).unwrap_or_default();
            TabFacts {
                tab: t.id,
                kind,
                url: t.url.clone(),
                client_unique_ids: vs.iter().filter_map(|v| v.client_unique_id.clone()).collect(),
                session_ids: vs.iter().filter_map(|v| v.session_id.clone()).collect(),
                wolf_sessions: vs.iter().filter_map(|v| v.client_id.clone()).collect(),
                connection_states: vs.iter().map(|v| v.connection_state.clone().unwrap_or_default()).collect(),
                errors: vs.iter().flat_map(|v| v.errors.iter().map(|e| e.message.clone())).collect(),
                screenshot: t.screenshot.clone(),
                // A synthetic viewer runs in the run's own process, in no browser.
                browser: if kind == crate::timeline::ViewerKind::Synthetic { "none".into() } else { d.browser.placement(t.id) },
            }
        })
        .collect()
}
