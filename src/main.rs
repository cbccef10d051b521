//! `helix-e2e`: the command line over the library. Progress goes to stderr, machine output
//! (`--json`) to stdout. Exit codes: 0 pass, 1 fail, 2 error or interrupted.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use helix_e2e::browser::BrowserOptions;
use helix_e2e::refstack::faults::Fault;
use helix_e2e::scenario::{self, RunOptions, TargetChoice};
use helix_e2e::{netns, refstack};
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
    Run(RunArgs),
    /// List the scenarios.
    List,
    /// Run the detection matrix: every fault's exposing scenario N times, plus N clean runs.
    Matrix(MatrixArgs),
    /// Run the reference stack alone until Ctrl-C.
    Refstack(RefstackArgs),
    /// The streamer child of the stand-in moonlight-web (internal).
    #[command(name = "__streamer", hide = true)]
    Streamer,
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
    /// Where run directories are created.
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Do not run inside a private network namespace even when possible.
    #[arg(long)]
    no_netns: bool,
    /// Do not install Chromium with apt-get when it is missing.
    #[arg(long)]
    no_install: bool,
    /// Chromium executable.
    #[arg(long, env = "CHROMIUM", default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    /// Show the browser window (needs a display).
    #[arg(long)]
    headed: bool,
    /// Run the embedded stack with a fault switch on: NAME[=VALUE], repeatable.
    #[arg(long = "fault")]
    faults: Vec<Fault>,
    /// Detector thresholds (TOML, see e2e/detectors.toml); built-in defaults otherwise.
    #[arg(long)]
    thresholds: Option<PathBuf>,
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// Runs per fault (and clean runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Only these rows: fault ids (F1, F2, ...) or `clean`; repeatable.
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
}

#[derive(clap::Args)]
struct RefstackArgs {
    /// Directory for the Wolf socket and the service logs (a temporary one by default).
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
        Command::Refstack(args) => {
            init_tracing("info");
            runtime().block_on(run_refstack(args)).map(|_| 0)
        }
        Command::Run(args) => {
            // chromiumoxide warns about every CDP event newer than its generated types.
            init_tracing("warn,chromiumoxide=error");
            run(args)
        }
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("helix-e2e: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HELIX_E2E_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for people: streamer and stand-in logs are captured into files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    if !args.no_netns && !netns::inside() && args.target.is_none() && netns::available() {
        eprintln!("helix-e2e: running inside a private network namespace (use --no-netns to skip)");
        return Ok(netns::reexec_inside()?);
    }
    if args.target.is_some() && !args.faults.is_empty() {
        bail!("--fault switches apply to the embedded reference stack only, not to --target");
    }
    ensure_chromium(&args)?;
    let seed = args.seed.unwrap_or_else(rand_seed);
    let exe = std::env::current_exe().context("locating the helix-e2e executable")?;
    let scenarios = if args.scenarios.is_empty() { scenario::DEFAULT_SUITE.iter().map(|s| s.to_string()).collect() } else { args.scenarios.clone() };
    let mut replay = format!("helix-e2e run {} --seed {seed}", scenarios.join(" "));
    if let Some(t) = &args.target {
        replay.push_str(&format!(" --target {}", t.display()));
    }
    for s in &args.sessions {
        replay.push_str(&format!(" --session {s}"));
    }
    for f in &args.faults {
        replay.push_str(&format!(" --fault {f}"));
    }
    let target = match &args.target {
        Some(p) => TargetChoice::File(p.clone()),
        None => TargetChoice::Embedded { exe, args: args.faults.iter().flat_map(|f| ["--fault".to_string(), f.to_string()]).collect() },
    };
    let browser = BrowserOptions { executable: args.chromium.clone(), headless: !args.headed, ..BrowserOptions::default() };
    let thresholds = match &args.thresholds {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading thresholds {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("thresholds file {} is not valid", p.display()))?
        }
        None => Default::default(),
    };
    let opts = RunOptions { scenarios, seed, target, artifacts_base: args.artifacts.clone(), browser, replay, sessions: args.sessions.clone(), thresholds };
    let summary = runtime().block_on(scenario::run(opts))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    eprintln!("helix-e2e: {} — artifacts in {}", format!("{:?}", summary.verdict).to_uppercase(), summary.artifacts);
    if summary.verdict != helix_e2e::report::Verdict::Pass {
        eprintln!("helix-e2e: replay with: {}", summary.replay);
    }
    Ok(summary.verdict.exit_code())
}

fn run_matrix(args: MatrixArgs) -> anyhow::Result<i32> {
    let id = format!("matrix-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
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
    };
    let rows = helix_e2e::matrix::run(&opts)?;
    helix_e2e::matrix::write(&dir, &rows)?;
    println!("{}", helix_e2e::matrix::markdown(&rows));
    eprintln!("helix-e2e: matrix written to {}", dir.display());
    Ok(0)
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((std::process::id() as u64) << 32)
}

/// Chromium is a system package; install it when missing (as root with apt-get), because the
/// first command a newcomer runs should just work.
fn ensure_chromium(args: &RunArgs) -> anyhow::Result<()> {
    if args.chromium.exists() {
        return Ok(());
    }
    if args.no_install || unsafe { libc::geteuid() } != 0 || !PathBuf::from("/usr/bin/apt-get").exists() {
        bail!("Chromium not found at {} (install it, e.g. `apt-get install -y chromium`, or pass --chromium PATH)", args.chromium.display());
    }
    eprintln!("helix-e2e: Chromium not found; installing it with apt-get (skip with --no-install)");
    for cmd in [&["update", "-qq"][..], &["install", "-y", "-qq", "chromium"][..]] {
        let ok = std::process::Command::new("apt-get").args(cmd).env("DEBIAN_FRONTEND", "noninteractive").status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            bail!("`apt-get {}` failed; install Chromium by hand", cmd.join(" "));
        }
    }
    if !args.chromium.exists() {
        bail!("Chromium still not found at {} after installing", args.chromium.display());
    }
    Ok(())
}

async fn run_refstack(args: RefstackArgs) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("helix-e2e-refstack-{}", std::process::id())),
    };
    let opts = refstack::Options { dir: dir.clone(), streamer_exe: std::env::current_exe()?, faults: args.faults.clone() };
    let endpoints = refstack::start(&opts).await?;
    let json = serde_json::to_string_pretty(&endpoints)?;
    if let Some(path) = &args.announce {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &json)?;
        std::fs::rename(&tmp, path)?;
    }
    eprintln!("reference stack ready:\n  Helix API + viewer: {}\n  moonlight-web:      {}\n  Wolf socket:        {}\n  login:              {} (password in {})\n  logs:               {}",
        endpoints.helix_url, endpoints.moonlight_web_url, endpoints.wolf_socket.display(), endpoints.user_email,
        args.announce.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "--announce FILE".into()), dir.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = std::fs::remove_file(&endpoints.wolf_socket);
    Ok(())
}
