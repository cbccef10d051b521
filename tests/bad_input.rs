//! Bad input and run-level errors: each ends with exit 2 and one clear line on stderr that
//! carries its cause once — a missing or malformed target file, an unset secret variable, an
//! unreachable Helix, a wrong password, a missing Wolf socket, no Docker engine, a replay file
//! asking for the impossible — and two runs of one seed started together never share a
//! directory. Input refused at the edge leaves no artifact directory at all; an error of the
//! run leaves a whole one (summary.json says `error`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_helix-e2e");

/// A test's own directory, removed when the test ends, passing or failing.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-badinput-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn helix_e2e(args: &[&str], env: &[(&str, &str)], artifacts: &Path) -> Output {
    let mut cmd = Command::new(EXE);
    cmd.args(args).arg("--artifacts").arg(artifacts).env_remove("HELIX_E2E_PASSWORD").env_remove("DOCKER_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run helix-e2e")
}

/// The one error line: exit 2, exactly one `error`/`ERROR` line on stderr, containing `cause`
/// exactly once.
fn assert_one_clear_line(out: &Output, cause: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("helix-e2e: error:") || l.starts_with("helix-e2e: ERROR")).collect();
    assert_eq!(lines.len(), 1, "one error line, got:\n{stderr}");
    assert_eq!(lines[0].matches(cause).count(), 1, "the cause {cause:?} once in {:?}", lines[0]);
    lines[0].to_string()
}

fn run_dirs(base: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(base).map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default()
}

fn target_file(dir: &Path, helix: &str, wolf: &Path, mlw: &str, extra: &str) -> PathBuf {
    let p = dir.join("target.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"bad-input\"\nreference = true\n[helix]\nurl = \"{helix}\"\nemail_env = \"HELIX_E2E_EMAIL\"\npassword_env = \"HELIX_E2E_PASSWORD\"\n[wolf]\nsocket = \"{}\"\n[moonlight_web]\nurl = \"{mlw}\"\ncredentials_env = \"MOONLIGHT_CREDENTIALS\"\n{extra}",
            wolf.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn input_refused_at_the_edge_leaves_no_artifact_directory() {
    let dir = scratch("edge");
    let arts = dir.join("artifacts");
    let out = helix_e2e(&["run", "no-such-scenario"], &[], &arts);
    assert_one_clear_line(&out, "unknown scenario \"no-such-scenario\"");

    let missing = dir.join("missing.toml");
    let out = helix_e2e(&["run", "second-connection", "--target", missing.to_str().unwrap()], &[], &arts);
    let line = assert_one_clear_line(&out, "No such file or directory");
    assert!(line.contains("cannot read target file") && line.matches("os error 2").count() == 1, "{line}");

    let malformed = dir.join("malformed.toml");
    std::fs::write(&malformed, "name = \n[helix\n").unwrap();
    let out = helix_e2e(&["run", "second-connection", "--target", malformed.to_str().unwrap()], &[], &arts);
    assert_one_clear_line(&out, "is not valid");

    let target = target_file(&dir, "http://127.0.0.1:1", Path::new("/nonexistent/wolf.sock"), "http://127.0.0.1:1", "");
    let out =
        helix_e2e(&["run", "second-connection", "--target", target.to_str().unwrap()], &[("HELIX_E2E_EMAIL", "a@b"), ("MOONLIGHT_CREDENTIALS", "x")], &arts);
    assert_one_clear_line(&out, "names environment variable HELIX_E2E_PASSWORD for the Helix login password, but it is not set");

    // A frame rule longer than the frames a viewer keeps could never fire.
    let thresholds = dir.join("thresholds.toml");
    std::fs::write(&thresholds, "freeze_secs = 60.0\n").unwrap();
    let out = helix_e2e(&["run", "second-connection", "--thresholds", thresholds.to_str().unwrap()], &[], &arts);
    assert_one_clear_line(&out, "freeze_secs = 60 is outside (0, 10] s");

    assert!(run_dirs(&arts).is_empty(), "refused input left {:?}", run_dirs(&arts));
}

/// `--shard K/N` is checked before anything starts: its syntax, K within 1..=N, a seed that every
/// shard shares, a shard that gets something to run; `merge` refuses a directory that is no shard.
#[test]
fn shard_input_is_refused_at_the_edge() {
    let dir = scratch("shard");
    let arts = dir.join("artifacts");
    let out = helix_e2e(&["run", "second-connection", "--seed", "1", "--shard", "1of2"], &[], &arts);
    assert_one_clear_line(&out, "--shard \"1of2\" is not K/N (e.g. 1/4)");
    let out = helix_e2e(&["run", "second-connection", "--seed", "1", "--shard", "3/2"], &[], &arts);
    assert_one_clear_line(&out, "--shard 3/2: K must be between 1 and N");
    let out = helix_e2e(&["run", "second-connection", "--shard", "1/2"], &[], &arts);
    assert_one_clear_line(&out, "--shard needs --seed");
    let out = helix_e2e(&["run", "second-connection", "soak", "--seed", "1", "--shard", "3/3"], &[], &arts);
    assert_one_clear_line(&out, "--shard 3/3 gets none of the 2 scenarios (second-connection, soak); use at most 2 shards");
    let out = helix_e2e(&["matrix", "--only", "F2", "--runs", "1", "--shard", "2/2"], &[], &arts);
    assert_one_clear_line(&out, "--shard 2/2 gets none of the matrix's runs");
    let out = helix_e2e(&["matrix", "--shard", "0/2"], &[], &arts);
    assert_one_clear_line(&out, "K must be between 1 and N");
    assert!(run_dirs(&arts).is_empty(), "refused input left {:?}", run_dirs(&arts));

    let merged = dir.join("merged");
    let out = Command::new(EXE).args(["merge"]).arg(&arts).arg("--out").arg(&merged).output().unwrap();
    assert_one_clear_line(&out, "not a run directory");
    assert!(!merged.exists());
}

/// `watch` refuses what it could not honour before it starts anything: metrics on an address
/// other machines reach, a probe interval it cannot parse or shorter than the health check's
/// 5 s, probe options without probes, faults for a stack it does not start.
#[test]
fn watch_input_is_refused_at_the_edge() {
    let watch = |args: &[&str]| Command::new(EXE).arg("watch").args(args).output().expect("run helix-e2e watch");
    assert_one_clear_line(&watch(&["--metrics", "0.0.0.0:9464"]), "0.0.0.0 is not a loopback address");
    assert_one_clear_line(&watch(&["--metrics", "localhost"]), "want IP:PORT");
    assert_one_clear_line(&watch(&["--probe-every", "2s"]), "--probe-every 2s: shorter than 5 s");
    assert_one_clear_line(&watch(&["--probe-every", "5 parsecs"]), "unknown time unit");
    assert_one_clear_line(&watch(&["--canary-session", "ses_1"]), "are for the probes: add --probe-every");
    assert_one_clear_line(&watch(&["--target", "e2e/targets/helix-dev.toml", "--fault", "stuck-session"]), "--fault switches apply to the embedded");
}

/// Replay reads files a person may have edited: a due time no run reaches is refused with its
/// line number, at once — before a stack or a browser starts.
#[test]
fn replay_refuses_an_impossible_plan_with_its_line() {
    let dir = scratch("replay");
    let rec = dir.join("run");
    std::fs::create_dir_all(&rec).unwrap();
    std::fs::write(rec.join("run.json"), r#"{"scenarios":["random-walk"],"seed":1,"time_scale":0.1,"params":{},"target":null,"faults":[],"sessions":[]}"#)
        .unwrap();
    std::fs::write(
        rec.join("ops.jsonl"),
        "{\"scenario\":\"random-walk\",\"step\":0,\"op\":\"create-sessions\",\"sessions\":[0]}\n{\"scenario\":\"random-walk\",\"step\":1,\"at_ms\":18446744073709551615,\"op\":\"idle\",\"ms\":5}\n",
    )
    .unwrap();
    let arts = dir.join("artifacts");
    let started = Instant::now();
    let out = helix_e2e(&["replay", rec.to_str().unwrap()], &[], &arts);
    let line = assert_one_clear_line(&out, "ops.jsonl line 2: at_ms 18446744073709551615 is longer than any run");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}: {line}", started.elapsed());
    assert!(run_dirs(&arts).is_empty());

    std::fs::write(rec.join("run.json"), r#"{"scenarios":["no-such"],"seed":1,"time_scale":0.1,"params":{},"target":null,"faults":[],"sessions":[]}"#).unwrap();
    let out = helix_e2e(&["replay", rec.to_str().unwrap()], &[], &arts);
    assert_one_clear_line(&out, "unknown scenario \"no-such\" in run.json");

    // run.json is the run specification, read back typed: a switch the stand-in lacks is refused.
    std::fs::write(
        rec.join("run.json"),
        r#"{"scenarios":["random-walk"],"seed":1,"time_scale":0.1,"params":{},"target":null,"faults":["no-such-switch"],"sessions":[]}"#,
    )
    .unwrap();
    let out = helix_e2e(&["replay", rec.to_str().unwrap()], &[], &arts);
    let line = assert_one_clear_line(&out, "is not a run specification");
    assert!(line.contains("no-such-switch"), "{line}");
    assert!(run_dirs(&arts).is_empty());
}

/// Two runs of one seed started in the same moment: two directories, each whole.
#[test]
fn runs_of_one_seed_started_together_never_share_a_directory() {
    let dir = scratch("ids");
    let arts = dir.join("artifacts");
    let target = target_file(&dir, "http://127.0.0.1:1", Path::new("/nonexistent/wolf.sock"), "http://127.0.0.1:1", "");
    let spawn = || -> Child {
        Command::new(EXE)
            .args(["run", "second-connection", "--seed", "42", "--target", target.to_str().unwrap(), "--artifacts", arts.to_str().unwrap()])
            .env("HELIX_E2E_EMAIL", "a@b")
            .env("HELIX_E2E_PASSWORD", "pw")
            .env("MOONLIGHT_CREDENTIALS", "x")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs: Vec<Child> = (0..3).map(|_| spawn()).collect();
    for r in runs {
        let out = r.wait_with_output().unwrap();
        // Helix on port 1 answers nothing: an error of the run, with its cause.
        assert_one_clear_line(&out, "logging in to Helix");
    }
    let dirs = run_dirs(&arts);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    for d in &dirs {
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("summary.json")).expect("summary.json")).unwrap();
        assert_eq!(s["verdict"], "error");
        assert!(common::all_files(d).iter().all(|f| !f.to_string_lossy().contains(".partial")), "{d:?}");
    }
}

/// The stand-in running alone (`helix-e2e refstack`), for errors that need a live Helix.
struct Stand {
    child: Child,
    endpoints: serde_json::Value,
}

impl Stand {
    fn start(dir: &Path) -> Stand {
        let announce = dir.join("endpoints.json");
        let child = Command::new(EXE).args(["refstack", "--announce"]).arg(&announce).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !announce.exists() {
            assert!(Instant::now() < deadline, "the stand-in did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let endpoints = serde_json::from_slice(&std::fs::read(&announce).unwrap()).unwrap();
        // It holds the stand-in's throwaway login; nothing of it stays behind.
        std::fs::remove_file(&announce).unwrap();
        Stand { child, endpoints }
    }

    fn get(&self, k: &str) -> String {
        self.endpoints[k].as_str().unwrap().to_string()
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn run_errors_say_their_cause_on_one_line() {
    let dir = scratch("run-errors");
    let arts = dir.join("artifacts");
    let stand = Stand::start(&dir);
    let (helix, mlw, wolf) = (stand.get("helix_url"), stand.get("moonlight_web_url"), PathBuf::from(stand.get("wolf_socket")));
    let email = stand.get("user_email");
    let password = stand.get("user_password");
    let creds = stand.get("moonlight_credentials");
    let env = |pw: &str| vec![("HELIX_E2E_EMAIL", email.clone()), ("HELIX_E2E_PASSWORD", pw.to_string()), ("MOONLIGHT_CREDENTIALS", creds.clone())];
    let run_scenario = |scenario: &str, target: &Path, env: Vec<(&str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        helix_e2e(&["run", scenario, "--target", target.to_str().unwrap()], &env, &arts)
    };
    let run = |target: &Path, env: Vec<(&str, String)>| run_scenario("second-connection", target, env);

    let good = target_file(&dir, &helix, &wolf, &mlw, "");
    let line = assert_one_clear_line(&run(&good, env("not-the-password")), "HTTP 401");
    assert!(line.contains("logging in to Helix"), "{line}");

    let no_wolf = target_file(&dir, &helix, Path::new("/nonexistent/wolf.sock"), &mlw, "");
    let line = assert_one_clear_line(&run(&no_wolf, env(&password)), "/nonexistent/wolf.sock");
    assert!(line.contains("wolf is unreachable"), "{line}");

    let unreachable = target_file(&dir, "http://127.0.0.1:1", &wolf, &mlw, "");
    assert_one_clear_line(&run(&unreachable, env(&password)), "helix is unreachable");

    let containers = target_file(&dir, &helix, &wolf, &mlw, "[containers]\nwolf = \"helix-e2e-wolf\"\n");
    let mut e = env(&password);
    e.push(("DOCKER_HOST", "unix:///nonexistent/docker.sock".into()));
    // Only a scenario that restarts services needs the engine (others run without the
    // containers' logs, saying so).
    let line = assert_one_clear_line(&run_scenario("restart-chaos", &containers, e), "/nonexistent/docker.sock");
    assert!(line.contains("restart-chaos restarts services, which needs the Docker engine"), "{line}");

    // Every one of these runs left a whole directory saying `error`, and no secret in it.
    let dirs = run_dirs(&arts);
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for d in dirs {
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["verdict"], "error", "{s:#}");
        for f in common::all_files(&d) {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(!text.contains(&password), "{} holds the password", f.display());
        }
    }
    drop(stand);
}
