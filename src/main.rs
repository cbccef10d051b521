//! `helix-e2e`: the command line over the library. Progress goes to stderr, machine output
//! (`--json`) to stdout. Exit codes: 0 pass, 1 fail, 2 error or interrupted.
//!
//! Why one file of over 400 lines: it holds the flag structs (clap derive), their translation
//! into the library's types, and the steps that belong to a process (install Chromium, supervise,
//! print the verdict, exit); everything a run does is in the library.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use helix_e2e::browser::BrowserOptions;
use helix_e2e::refstack::faults::Fault;
use helix_e2e::scenario::params::Params;
use helix_e2e::scenario::spec::RunSpec;
use helix_e2e::scenario::{self, RunOptions, TargetChoice};
use helix_e2e::sut::control::processes::ProcessStack;
use helix_e2e::{netns, probe, refstack, supervisor};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "helix-e2e", version, about = "End-to-end driver for Wolf lobbies + moonlight-web streaming stacks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios (the default suite when none is named) against the embedded reference
    /// stack, or against a real deployment with --target.
    Run(Box<RunArgs>),
    /// List the scenarios.
    List,
    /// Run the detection matrix: every fault's exposing scenario N times, plus N clean runs.
    Matrix(MatrixArgs),
    /// Join the artifact directories of every shard of one sharded run or matrix (`--shard K/N`)
    /// into one summary.json, junit.xml and report (or one matrix table).
    Merge(MergeArgs),
    /// Run again exactly the operations of an earlier run (its ops.jsonl), on the same target,
    /// faults, parameters and time scale (its run.json).
    Replay(ReplayArgs),
    /// Measure what reading a run costs the driver per observation, early and late in a long
    /// run (a synthetic healthy timeline through the model, detectors and progress line).
    Bench(BenchArgs),
    /// Follow a live deployment (or the embedded reference stack) without a browser until
    /// stopped: name each failure whose evidence is server-side once, as it happens, and
    /// optionally serve Prometheus metrics.
    Watch(WatchArgs),
    /// Run the reference stack alone until Ctrl-C: its three services as child processes.
    Refstack(RefstackArgs),
    /// Run one service of the reference stack (what each process and container runs).
    Service(ServiceArgs),
    /// The streamer child of the stand-in moonlight-web (internal).
    #[command(name = "__streamer", hide = true)]
    Streamer,
    /// Exit 0 if a connection succeeds within 2 s, else 1: the reference images' health check
    /// (they are FROM scratch, with nothing else to run).
    #[command(name = "__probe", hide = true)]
    Probe(ProbeArgs),
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ProbeArgs {
    /// HOST:PORT to connect to.
    #[arg(long)]
    tcp: Option<String>,
    /// Unix socket to connect to.
    #[arg(long)]
    unix: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenarios to run (see `helix-e2e list`).
    scenarios: Vec<String>,
    /// Seed of all randomness; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// A target file such as e2e/targets/helix-dev.toml; the embedded reference stack otherwise.
    #[arg(long)]
    target: Option<PathBuf>,
    /// An existing agent session (ses_...) to use instead of creating one; repeatable. Given
    /// sessions are never stopped by the run.
    #[arg(long = "session")]
    sessions: Vec<String>,
    #[command(flatten)]
    runner: RunnerArgs,
    /// Do not install Chromium with apt-get when it is missing.
    #[arg(long)]
    no_install: bool,
    /// Run the embedded stack with a fault switch on: NAME[=VALUE], repeatable.
    #[arg(long = "fault")]
    faults: Vec<Fault>,
    /// Detector thresholds (TOML, see e2e/detectors.toml); built-in defaults otherwise.
    #[arg(long)]
    thresholds: Option<PathBuf>,
    /// Go on after a documented failure has been named (a scenario stops there by default).
    #[arg(long)]
    keep_going: bool,
    /// Move the mouse in every open viewer once a second (real input on its `mouseRelative`
    /// channel), to tell "Wolf drops sessions without input" (F4) from other causes.
    #[arg(long)]
    keep_alive_input: bool,
    /// A Chromium already running elsewhere, by its DevTools endpoint (ws://HOST:PORT/devtools/browser/…
    /// or http://HOST:PORT), instead of launching one; repeatable: tabs go round-robin over them.
    /// The run then uses the host's network, not a private namespace (README "Remote browsers").
    #[arg(long = "browser", value_name = "URL")]
    browsers: Vec<helix_e2e::browser::RemoteBrowser>,
    /// Multiply every wait of the scenarios (active/idle/hold times) by this; 0.1 for CI.
    /// Default: 1 (the design's times) for named scenarios, 0.2 for the default suite so it
    /// stays under the design's five minutes.
    #[arg(long)]
    time_scale: Option<f64>,
    /// Scenario parameters from a TOML file (e.g. e2e/scenarios/rapid-cycles.toml); the flags
    /// below win over it.
    #[arg(long)]
    params: Option<PathBuf>,
    /// Agent sessions a scenario starts (rapid-cycles, concurrent-sessions; the random walk's maximum).
    #[arg(long)]
    agent_sessions: Option<usize>,
    /// Connect/disconnect cycles: per session (rapid-cycles), in all (soak).
    #[arg(long)]
    cycles: Option<usize>,
    /// Tabs on one session (multi-tab-same-lobby; the random walk's maximum).
    #[arg(long)]
    tabs: Option<usize>,
    /// Tabs closed (multi-tab-same-lobby) or sessions dropped (concurrent-sessions).
    #[arg(long)]
    drop: Option<usize>,
    /// Operations of the random walk.
    #[arg(long)]
    ops: Option<usize>,
    /// Seconds the random walk may take.
    #[arg(long)]
    budget_s: Option<f64>,
    /// Seconds the viewers are watched at each check before the verdict.
    #[arg(long)]
    hold_s: Option<f64>,
    /// Run only the K-th of N parts of the scenarios (CI shards; needs --seed); join the
    /// shards' artifact directories with `helix-e2e merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Synthetic viewers (browserless, real WebRTC and H.264) beside the real tabs, spread over
    /// their agent sessions (concurrent-sessions).
    #[arg(long)]
    synthetic_viewers: Option<usize>,
    /// Which pictures synthetic viewers decode: every one, or only the keyframes (cheaper).
    #[arg(long, value_enum)]
    synthetic_decode: Option<helix_e2e::timeline::SyntheticDecode>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The run directory, e.g. artifacts/20251108T101500Z-00000000000004d2.
    dir: PathBuf,
    #[command(flatten)]
    runner: RunnerArgs,
}

/// How a run is carried out and reported, whether `run` or `replay` chose its operations.
#[derive(clap::Args)]
struct RunnerArgs {
    /// Where run directories are created.
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Do not run inside a private network namespace even when possible.
    #[arg(long, conflicts_with = "netns")]
    no_netns: bool,
    /// Run inside this existing network namespace (e.g. `helix-e2e-docker`, where
    /// e2e/reference/engine.sh runs the Docker engine) instead of a fresh one; it is not removed.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Chromium executable.
    #[arg(long, env = "CHROMIUM", default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    /// Show the browser window (needs a display).
    #[arg(long)]
    headed: bool,
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// Runs per fault (and clean runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Only these rows: fault ids (F1, F2, ...), `clean` (every clean row) or
    /// `clean:<scenario>`; repeatable.
    #[arg(long = "only")]
    only: Vec<String>,
    /// Detector thresholds for the runs.
    #[arg(long, default_value = "e2e/detectors-matrix.toml")]
    thresholds: PathBuf,
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Seed of the first run; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only the K-th of N parts of the rows' runs (CI shards); join the shards' matrix
    /// directories with `helix-e2e merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// The shards' artifact directories: run directories (`--shard` of `run`) or matrix
    /// directories (`--shard` of `matrix`), every shard once.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the merged summary.json, junit.xml and reports (or matrix tables) go.
    #[arg(long, default_value = "artifacts/merged")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Streaming tabs in the synthetic run.
    #[arg(long, default_value_t = 8)]
    tabs: usize,
    /// Length of the synthetic run (run time, not wall time).
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct WatchArgs {
    /// A target file such as e2e/targets/helix-dev.toml; the embedded reference stack otherwise.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Start the embedded stack with a fault switch on: NAME[=VALUE], repeatable.
    #[arg(long = "fault")]
    faults: Vec<Fault>,
    /// Detector thresholds (TOML, see e2e/detectors.toml); built-in defaults otherwise.
    #[arg(long)]
    thresholds: Option<PathBuf>,
    /// One JSON object a line on stdout (each named failure, then the summary) instead of lines
    /// for people.
    #[arg(long)]
    json: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (a loopback address:
    /// README "Watching a deployment" says how to expose it further).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Every so long (e.g. 5m, 30s), open one real viewer tab on a canary agent session, check it
    /// streams its own lobby, and record its time to the first frame.
    #[arg(long, value_name = "DURATION")]
    probe_every: Option<String>,
    /// The canary agent session the probes view; by default one is created at the first probe
    /// and stopped when the watch ends.
    #[arg(long, value_name = "SESSION")]
    canary_session: Option<String>,
    /// Chromium executable for the probes.
    #[arg(long, env = "CHROMIUM", default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    /// Probe with a Chromium already running elsewhere (its DevTools endpoint) instead of
    /// launching one; the target file's `browsers` otherwise.
    #[arg(long = "browser", value_name = "URL")]
    browsers: Vec<helix_e2e::browser::RemoteBrowser>,
}

/// `--metrics`: an address on this machine only. The endpoint answers anyone who reaches it,
/// and a monitor must not open the deployment's state to the network by a typo.
fn loopback_addr(s: &str) -> anyhow::Result<std::net::SocketAddr> {
    let a: std::net::SocketAddr = s.parse().map_err(|e| anyhow::anyhow!("--metrics {s:?}: {e} (want IP:PORT, e.g. 127.0.0.1:9464)"))?;
    if !a.ip().is_loopback() {
        bail!("--metrics {s}: {} is not a loopback address; metrics are served on 127.0.0.0/8 or ::1 only", a.ip());
    }
    Ok(a)
}

/// `--probe-every`: at least the design's health-check period (5 s). Probes never overlap: one
/// that outlasts the interval is followed by the next at once.
fn probe_interval(s: &str) -> anyhow::Result<std::time::Duration> {
    let d = humantime::parse_duration(s).map_err(|e| anyhow::anyhow!("--probe-every {s:?}: {e} (e.g. 5m, 90s)"))?;
    if d < std::time::Duration::from_secs(5) {
        bail!("--probe-every {s}: shorter than 5 s");
    }
    Ok(d)
}

#[derive(clap::Args)]
struct ServiceArgs {
    service: helix_e2e::sut::control::Service,
    #[command(flatten)]
    layout: refstack::Layout,
}

#[derive(clap::Args)]
struct RefstackArgs {
    /// Directory for the Wolf socket, the API's store and the service logs (a temporary one by
    /// default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the endpoints as JSON to this file once ready (atomically).
    #[arg(long)]
    announce: Option<PathBuf>,
    /// Reproduce a documented failure: NAME[=VALUE], repeatable (e.g. webrtc-port-range=40000-40001).
    #[arg(long = "fault")]
    faults: Vec<Fault>,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Streamer => {
            init_tracing("info");
            runtime().block_on(refstack::streamer::session::run()).map(|_| 0)
        }
        Command::Probe(args) => {
            let target = match (args.tcp, args.unix) {
                (Some(a), _) => probe::ProbeTarget::Tcp(a),
                (None, Some(p)) => probe::ProbeTarget::Unix(p),
                // clap's group makes one of them required.
                (None, None) => probe::ProbeTarget::Tcp(String::new()),
            };
            match probe::probe(&target, probe::PROBE_DEADLINE) {
                Ok(()) => Ok(0),
                Err(e) => {
                    eprintln!("helix-e2e __probe: {e}");
                    Ok(1)
                }
            }
        }
        Command::List => {
            for s in scenario::SCENARIOS {
                println!("{:<22} {}", s.name, s.about);
            }
            Ok(0)
        }
        Command::Matrix(args) => {
            init_tracing("warn");
            run_matrix(args)
        }
        Command::Merge(args) => {
            init_tracing("warn");
            merge(args)
        }
        Command::Bench(args) => {
            init_tracing("warn");
            run_bench(args)
        }
        Command::Watch(args) => {
            // The probes' browser: chromiumoxide warns about every CDP event newer than its types.
            init_tracing("warn,chromiumoxide=error");
            watch(args)
        }
        Command::Refstack(args) => {
            init_tracing("info");
            runtime().block_on(run_refstack(args)).map(|_| 0)
        }
        Command::Service(args) => {
            init_tracing("info");
            runtime().block_on(run_service(args)).map(|_| 0)
        }
        Command::Run(args) => {
            // chromiumoxide warns about every CDP event newer than its generated types.
            init_tracing("warn,chromiumoxide=error");
            run(*args)
        }
        Command::Replay(args) => {
            init_tracing("warn,chromiumoxide=error");
            replay(args)
        }
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("helix-e2e: error: {}", one_line(&e));
            std::process::exit(2);
        }
    }
}

/// An error and its causes on one line, each cause once: many errors already quote their source
/// (`reading x: No such file (os error 2)`), and anyhow's chain would say it again.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// `bench`: exit 0 when a late observation costs under twice an early one and peak memory stays
/// under 100 MB (issue 13's bounds), else 1.
fn run_bench(args: BenchArgs) -> anyhow::Result<i32> {
    if args.tabs == 0 || args.minutes < 2 {
        anyhow::bail!("bench needs --tabs of at least 1 and --minutes of at least 2");
    }
    let b = helix_e2e::bench::model(args.tabs, args.minutes);
    let ok = b.ratio < 2.0 && b.peak_rss_mb < 100.0 && b.detections.is_empty();
    if args.json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!("{} tabs, {} min of run time, {} observations", b.tabs, b.minutes, b.observations);
        println!("cost per observation: {:.1} µs in the first minutes, {:.1} µs in the last ({:.2}x)", b.early_us_per_obs, b.late_us_per_obs, b.ratio);
        println!("records the detectors' model holds: {} early, {} late", b.early_held, b.late_held);
        println!("observations the timeline holds in memory at the end: {} of {} (the rest is on disk)", b.timeline_held, b.observations);
        println!(
            "peak memory: {:.1} MB; failures named: {}",
            b.peak_rss_mb,
            if b.detections.is_empty() { "none".to_string() } else { b.detections.join(", ") }
        );
        println!("{}", if ok { "within bounds (< 2x, < 100 MB, nothing named)" } else { "OUT OF BOUNDS" });
    }
    Ok(if ok { 0 } else { 1 })
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HELIX_E2E_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for people (streamer and stand-in logs are captured into files), and not
    // for those who said NO_COLOR. The writer keeps log lines above the progress line.
    let ansi = helix_e2e::report::progress::colour_wanted(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(helix_e2e::report::progress::StderrAboveBar).with_ansi(ansi).try_init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

impl RunArgs {
    /// The run specification these flags describe. Without `--seed` a seed is drawn: the
    /// process that runs draws its own, so only it prints one.
    fn spec(&self) -> anyhow::Result<RunSpec> {
        let scenarios: Vec<String> =
            if self.scenarios.is_empty() { scenario::DEFAULT_SUITE.iter().map(|s| s.to_string()).collect() } else { self.scenarios.clone() };
        let time_scale = self.time_scale.unwrap_or(if self.scenarios.is_empty() { scenario::DEFAULT_SUITE_TIME_SCALE } else { 1.0 });
        let overrides = Params {
            sessions: self.agent_sessions,
            cycles: self.cycles,
            tabs: self.tabs,
            drop: self.drop,
            ops: self.ops,
            budget_s: self.budget_s,
            hold_s: self.hold_s,
            synthetic_viewers: self.synthetic_viewers,
            synthetic_decode: self.synthetic_decode,
            ..Params::default()
        };
        overrides.validate()?;
        let mut params = std::collections::BTreeMap::new();
        for s in &scenarios {
            let file = match &self.params {
                Some(p) => Params::load_for(p, s)?,
                None => Params::default(),
            };
            params.insert(s.clone(), file.overlay(&overrides));
        }
        if self.shard.is_some() && self.seed.is_none() {
            bail!("--shard needs --seed: every shard must draw the same plans from the same seed");
        }
        let spec = RunSpec {
            scenarios,
            seed: self.seed.unwrap_or_else(rand_seed),
            time_scale,
            params_file: self.params.clone(),
            overrides,
            params,
            target: self.target.clone(),
            faults: self.faults.clone(),
            sessions: self.sessions.clone(),
            thresholds: self.thresholds.clone(),
            keep_going: self.keep_going,
            keep_alive_input: self.keep_alive_input,
            shard: None,
            browsers: self.browsers.clone(),
        };
        Ok(match shard_arg(&self.shard)? {
            Some(shard) => spec.sharded(shard)?,
            None => spec,
        })
    }
}

/// `--shard K/N`, parsed once, here at the edge.
fn shard_arg(arg: &Option<String>) -> anyhow::Result<Option<helix_e2e::shard::Shard>> {
    Ok(arg.as_deref().map(str::parse).transpose()?)
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    let spec = args.spec()?;
    launch(spec, &args.runner, args.no_install, None)
}

/// Refuse what cannot run, then run it: in a supervised child when this is the process the user
/// started, or here when this is that child.
fn launch(spec: RunSpec, runner: &RunnerArgs, no_install: bool, plans: Option<Vec<scenario::plan::Plan>>) -> anyhow::Result<i32> {
    // Refuse what cannot run before starting anything (a namespace, Chromium, the stack).
    for s in &spec.scenarios {
        if !scenario::SCENARIOS.iter().any(|i| i.name == s) {
            bail!("unknown scenario {s:?} (see `helix-e2e list`)");
        }
    }
    if !(spec.time_scale > 0.0 && spec.time_scale.is_finite()) {
        bail!("--time-scale must be a positive number, not {}", spec.time_scale);
    }
    if spec.target.is_some() && !spec.faults.is_empty() {
        bail!("--fault switches apply to the embedded reference stack only, not to --target");
    }
    // Bad input is refused here, before a namespace, a temp directory or an artifact directory
    // exists: the target file (and the secrets it names), the thresholds file.
    if let Some(p) = &spec.target {
        helix_e2e::config::Target::load(p)?;
    }
    let thresholds = load_thresholds(spec.thresholds.as_deref())?;
    let Some(inner) = supervisor::Inner::from_env() else {
        // Chromium is installed here, outside any namespace (apt needs the network).
        ensure_chromium(runner, no_install)?;
        let choice = match &runner.netns {
            Some(name) => {
                eprintln!("helix-e2e: running inside network namespace {name}");
                supervisor::NetnsChoice::Join(name.clone())
            }
            // Remote browsers are outside any namespace of the run's: they could neither be
            // reached nor reach the stack inside one.
            None if !spec.browsers.is_empty() => {
                eprintln!("helix-e2e: remote browsers given: running in the host's network (no private namespace)");
                supervisor::NetnsChoice::Host
            }
            None if !runner.no_netns && spec.target.is_none() && netns::available() => {
                eprintln!("helix-e2e: running inside a private network namespace (use --no-netns to skip)");
                supervisor::NetnsChoice::Fresh
            }
            None => supervisor::NetnsChoice::Host,
        };
        return Ok(supervisor::supervise(choice)?);
    };
    let code = run_supervised(spec, runner, thresholds, plans);
    // Whoever survives cleans up: when the supervisor is gone, nobody else deletes these.
    inner.cleanup();
    code
}

/// The thresholds file (refused when it is not valid), or the built-in defaults.
fn load_thresholds(path: Option<&std::path::Path>) -> anyhow::Result<helix_e2e::verdict::detectors::Thresholds> {
    let Some(p) = path else { return Ok(Default::default()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading thresholds {}", p.display()))?;
    let t: helix_e2e::verdict::detectors::Thresholds = toml::from_str(&text).with_context(|| format!("thresholds file {} is not valid", p.display()))?;
    t.check().map_err(|e| anyhow::anyhow!("thresholds file {}: {e}", p.display()))?;
    Ok(t)
}

/// `watch`: refuse bad input, then watch in a supervised child (on the machine's own network:
/// the stand-in it may start is there for someone to use) until a signal. Exit 1 when
/// something was named, 0 when nothing was.
fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    if args.target.is_some() && !args.faults.is_empty() {
        bail!("--fault switches apply to the embedded reference stack only, not to --target");
    }
    let metrics = args.metrics.as_deref().map(loopback_addr).transpose()?;
    let probe_every = args.probe_every.as_deref().map(probe_interval).transpose()?;
    if probe_every.is_none() && (args.canary_session.is_some() || !args.browsers.is_empty()) {
        bail!("--canary-session and --browser are for the probes: add --probe-every");
    }
    let target = args.target.as_deref().map(helix_e2e::config::Target::load).transpose()?;
    let thresholds = load_thresholds(args.thresholds.as_deref())?;
    let Some(inner) = supervisor::Inner::from_env() else {
        return Ok(supervisor::supervise(supervisor::NetnsChoice::Host)?);
    };
    let code = runtime().block_on(async {
        let mut stack = None;
        let target = match target {
            Some(t) => t,
            None => {
                let s = ProcessStack::start_temp(&std::env::current_exe()?, args.faults.clone()).await?;
                let e = s.endpoints();
                eprintln!(
                    "helix-e2e watch: embedded reference stack in {}:\n  Helix API + viewer: {}\n  moonlight-web:      {}\n  Wolf socket:        {}\n  switch faults on while it runs: {}",
                    s.dir().display(),
                    e.helix_url,
                    e.moonlight_web_url,
                    e.wolf_socket.display(),
                    s.dir().join(refstack::faults::CONTROL_FILE).display()
                );
                stack = Some(s);
                helix_e2e::config::Target::embedded(&e)
            }
        };
        let probe = probe_every.map(|every| helix_e2e::watch::probe::ProbeOptions {
            every,
            browser: BrowserOptions { executable: args.chromium.clone(), ..BrowserOptions::default() },
            remotes: if args.browsers.is_empty() { target.browsers.clone() } else { args.browsers.clone() },
            session: args.canary_session.clone(),
        });
        let opts = helix_e2e::watch::WatchOptions { target, thresholds, json: args.json, metrics, probe };
        let (tx, rx) = tokio::sync::oneshot::channel::<&'static str>();
        tokio::spawn(async move {
            let signal = wait_for_stop_named().await.unwrap_or("an error waiting for signals");
            let _ = tx.send(signal);
        });
        let stopped = std::sync::Arc::new(std::sync::Mutex::new(None));
        let s2 = stopped.clone();
        let result = helix_e2e::watch::watch(opts, async move {
            let sig = rx.await.unwrap_or("SIGTERM");
            *s2.lock().unwrap_or_else(|e| e.into_inner()) = Some(sig);
        })
        .await;
        if let Some(s) = stack {
            s.shutdown().await;
        }
        let summary = result?;
        let signal = stopped.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or("end");
        let named: Vec<String> = summary.named.iter().map(|(id, n)| if *n == 1 { format!("{id} {}", id.name()) } else { format!("{id} {} ({n} incidents)", id.name()) }).collect();
        if args.json {
            println!(
                "{}",
                serde_json::json!({"event": "stopped", "signal": signal, "watched_s": summary.watched_s, "observations": summary.observations,
                    "named": summary.named, "probes_ok": summary.probes_ok, "probes_failed": summary.probes_failed})
            );
        }
        eprintln!(
            "helix-e2e watch: stopped by {signal} after {:.0} s ({} observations): {}",
            summary.watched_s,
            summary.observations,
            if named.is_empty() { "nothing named".to_string() } else { format!("named {}", named.join(", ")) }
        );
        if summary.probes_ok + summary.probes_failed > 0 {
            eprintln!("helix-e2e watch: canary probes: {} ok, {} failed", summary.probes_ok, summary.probes_failed);
        }
        anyhow::Ok(if summary.failed() { 1 } else { 0 })
    });
    // Whoever survives cleans up: when the supervisor is gone, nobody else deletes these.
    inner.cleanup();
    code
}

/// The run itself, in the supervised child.
fn run_supervised(
    spec: RunSpec,
    runner: &RunnerArgs,
    thresholds: helix_e2e::verdict::detectors::Thresholds,
    plans: Option<Vec<scenario::plan::Plan>>,
) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("locating the helix-e2e executable")?;
    let target = match &spec.target {
        Some(p) => TargetChoice::File(p.clone()),
        None => TargetChoice::Embedded { exe, faults: spec.faults.clone() },
    };
    let browser = BrowserOptions { executable: runner.chromium.clone(), headless: !runner.headed, ..BrowserOptions::default() };
    let opts = RunOptions { spec, target, artifacts_base: runner.artifacts.clone(), browser, thresholds, plans };
    let summary = runtime().block_on(scenario::run(opts))?;
    if runner.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    // A run-level error (a login refused, a service not there) is said here, once, with its cause.
    match &summary.error {
        Some(e) => eprintln!("helix-e2e: {}: {e} — artifacts in {}", format!("{:?}", summary.verdict).to_uppercase(), summary.artifacts),
        None => eprintln!("helix-e2e: {} — artifacts in {}", format!("{:?}", summary.verdict).to_uppercase(), summary.artifacts),
    }
    if summary.verdict != helix_e2e::report::Verdict::Pass {
        eprintln!("helix-e2e: replay with: {}  (or exactly: helix-e2e replay {})", summary.replay, summary.artifacts);
    }
    Ok(summary.verdict.exit_code())
}

fn run_matrix(args: MatrixArgs) -> anyhow::Result<i32> {
    let shard = shard_arg(&args.shard)?;
    let mut id = format!("matrix-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    if let Some(s) = shard {
        id.push_str(&format!("-shard-{}-of-{}", s.index, s.count));
    }
    let dir = args.artifacts.join(&id);
    let thresholds = args.thresholds.exists().then(|| args.thresholds.clone());
    if thresholds.is_none() {
        eprintln!("helix-e2e: {} not found; using built-in thresholds", args.thresholds.display());
    }
    let opts = helix_e2e::matrix::MatrixOptions {
        exe: std::env::current_exe()?,
        runs: args.runs,
        only: args.only.clone(),
        thresholds,
        artifacts: dir.join("runs"),
        first_seed: args.seed,
        shard,
    };
    let spec = opts.spec();
    let share = helix_e2e::matrix::share(&spec)?;
    if share.is_empty() {
        bail!("--shard {} gets none of the matrix's runs; use fewer shards", args.shard.unwrap_or_default());
    }
    helix_e2e::matrix::write(&dir, &spec, &[])?;
    let mut rows = Vec::new();
    for (case, runs) in share {
        rows.push(helix_e2e::matrix::run_case(&opts, case, &runs)?);
        // Rewritten after every row, so a long matrix stopped half way keeps what it measured.
        helix_e2e::matrix::write(&dir, &spec, &rows)?;
    }
    println!("{}", helix_e2e::matrix::markdown(&rows));
    eprintln!("helix-e2e: matrix written to {}", dir.display());
    Ok(0)
}

/// `merge`: the merged run's exit code (its verdict's), 0 for a matrix; refusals are errors (2).
fn merge(args: MergeArgs) -> anyhow::Result<i32> {
    match helix_e2e::merge::merge(&args.dirs, &args.out)? {
        helix_e2e::merge::Merged::Run(summary) => {
            eprintln!(
                "helix-e2e: {} shards merged: {} — artifacts in {}",
                summary.merged_from.len(),
                summary.verdict.as_str().to_uppercase(),
                summary.artifacts
            );
            Ok(summary.verdict.exit_code())
        }
        helix_e2e::merge::Merged::Matrix(rows) => {
            println!("{}", helix_e2e::matrix::markdown(&rows));
            eprintln!("helix-e2e: matrix shards merged into {}", args.out.display());
            Ok(0)
        }
    }
}

/// Set up the recorded run again and hand it the recorded plans instead of the seed's.
fn replay(args: ReplayArgs) -> anyhow::Result<i32> {
    let path = |name: &str| args.dir.join(name);
    let read = |name: &str| std::fs::read_to_string(path(name)).with_context(|| format!("reading {}", path(name).display()));
    let spec: RunSpec = serde_json::from_str(&read("run.json")?).with_context(|| format!("{} is not a run specification", path("run.json").display()))?;
    let known: Vec<&str> = scenario::SCENARIOS.iter().map(|s| s.name).collect();
    for s in &spec.scenarios {
        if !known.contains(&s.as_str()) {
            bail!("{}: unknown scenario {s:?} in run.json (known: {})", path("run.json").display(), known.join(", "));
        }
    }
    let groups = scenario::plan::parse_jsonl(&read("ops.jsonl")?, &known).with_context(|| path("ops.jsonl").display().to_string())?;
    let plans = groups
        .into_iter()
        .map(|(name, steps)| {
            // Budgets and stop rules belong to the scenario, not to the file: take them from a
            // fresh plan of the same scenario.
            let fresh = scenario::make_plan(&name, spec.seed, spec.params.get(&name).unwrap_or(&Params::default()), spec.time_scale);
            let mut p = fresh.unwrap_or_else(|| scenario::plan::Plan::new(&name));
            p.steps = steps;
            p
        })
        .collect();
    eprintln!("helix-e2e: replaying {} ({}, seed {})", args.dir.display(), spec.scenarios.join(" "), spec.seed);
    // The plans embody the recorded parameters; the spec is recorded again as it was.
    launch(spec, &args.runner, false, Some(plans))
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((std::process::id() as u64) << 32)
}

/// Chromium is a system package; install it when missing (as root with apt-get), because the
/// first command a newcomer runs should just work.
fn ensure_chromium(runner: &RunnerArgs, no_install: bool) -> anyhow::Result<()> {
    if runner.chromium.exists() {
        return Ok(());
    }
    if no_install || unsafe { libc::geteuid() } != 0 || !PathBuf::from("/usr/bin/apt-get").exists() {
        bail!("Chromium not found at {} (install it, e.g. `apt-get install -y chromium`, or pass --chromium PATH)", runner.chromium.display());
    }
    eprintln!("helix-e2e: Chromium not found; installing it with apt-get (skip with --no-install)");
    for cmd in [&["update", "-qq"][..], &["install", "-y", "-qq", "chromium"][..]] {
        let ok = std::process::Command::new("apt-get").args(cmd).env("DEBIAN_FRONTEND", "noninteractive").status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            bail!("`apt-get {}` failed; install Chromium by hand", cmd.join(" "));
        }
    }
    if !runner.chromium.exists() {
        bail!("Chromium still not found at {} after installing", runner.chromium.display());
    }
    Ok(())
}

async fn run_refstack(args: RefstackArgs) -> anyhow::Result<()> {
    // A directory of our own making goes when we do: it holds the stand-in's stores (login
    // tokens) and unredacted logs.
    let (dir, ours) = match args.dir {
        Some(d) => (d, false),
        None => (std::env::temp_dir().join(format!("helix-e2e-refstack-{}", std::process::id())), true),
    };
    let stack = ProcessStack::start(&std::env::current_exe()?, &dir, args.faults.clone()).await?;
    let endpoints = stack.endpoints();
    if let Some(path) = &args.announce {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&endpoints)?)?;
        std::fs::rename(&tmp, path)?;
    }
    eprintln!("reference stack ready:\n  Helix API + viewer: {}\n  moonlight-web:      {}\n  Wolf socket:        {}\n  login:              {} (password in {})\n  logs:               {}",
        endpoints.helix_url, endpoints.moonlight_web_url, endpoints.wolf_socket.display(), endpoints.user_email,
        args.announce.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "--announce FILE".into()), dir.display());
    wait_for_stop().await?;
    stack.shutdown().await;
    if ours {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

async fn run_service(args: ServiceArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    tokio::select! {
        r = refstack::serve(args.service, &args.layout, exe) => r?,
        r = wait_for_stop() => r?,
    }
    if args.service == helix_e2e::sut::control::Service::Wolf {
        let _ = std::fs::remove_file(args.layout.wolf_socket());
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (`docker stop`, the supervisor).
async fn wait_for_stop() -> anyhow::Result<()> {
    wait_for_stop_named().await.map(drop)
}

/// [`wait_for_stop`], saying which signal it was (SIGHUP too: a closed terminal ends a watch).
async fn wait_for_stop_named() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    })
}
