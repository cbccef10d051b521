//! The CI workflows cannot run here, so check what can be checked: they parse as YAML in the
//! shape GitHub Actions reads (jobs with a runner and steps, each step either `uses` or `run`),
//! they do what they are for, and every file they name exists.

use serde_yaml::Value;
use std::path::Path;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

/// Every step's `run` script of every job, checking the structure on the way.
fn scripts(wf: &Value, name: &str) -> Vec<String> {
    assert!(wf.get("name").and_then(Value::as_str).is_some(), "{name}: no name");
    // YAML 1.1 readers turn a bare `on` into `true`; serde_yaml keeps the string, as Actions does.
    assert!(wf.get("on").is_some(), "{name}: no triggers");
    let jobs = wf.get("jobs").and_then(Value::as_mapping).unwrap_or_else(|| panic!("{name}: no jobs"));
    assert!(!jobs.is_empty());
    let mut out = Vec::new();
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap();
        assert!(job.get("runs-on").is_some(), "{name}/{job_name}: no runs-on");
        let steps = job.get("steps").and_then(Value::as_sequence).unwrap_or_else(|| panic!("{name}/{job_name}: no steps"));
        for (i, step) in steps.iter().enumerate() {
            let has_uses = step.get("uses").is_some();
            let run = step.get("run").and_then(Value::as_str);
            assert!(has_uses != run.is_some(), "{name}/{job_name} step {i}: exactly one of uses/run");
            if let Some(r) = run {
                assert!(!r.contains("${{ github.event.inputs"), "{name}/{job_name} step {i}: inputs pasted into a script");
                out.push(r.to_string());
            }
        }
    }
    out
}

fn uses(wf: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (_, job) in wf["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            if let Some(u) = step.get("uses").and_then(Value::as_str) {
                out.push((u.to_string(), step.get("with").cloned().unwrap_or(Value::Null)));
            }
        }
    }
    out
}

#[test]
fn gpu_workflow_installs_what_it_needs_brings_up_the_helix_stack_publishes_and_files_an_issue() {
    let wf = load("e2e-gpu.yml");
    let runs = scripts(&wf, "e2e-gpu.yml");
    let job = wf["jobs"].as_mapping().unwrap().values().next().unwrap();
    let labels: Vec<&str> = job["runs-on"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(labels.contains(&"self-hosted") && labels.contains(&"gpu"), "{labels:?}");
    let all = runs.join("\n");
    // Toolchain, Chromium and compose come from the job, not from the runner's luck.
    let actions: Vec<String> = uses(&wf).into_iter().map(|(u, _)| u).collect();
    assert!(actions.iter().any(|u| u.starts_with("dtolnay/rust-toolchain@")), "{actions:?}");
    assert!(all.contains("bash e2e/ci/deps.sh"), "{all}");
    assert!(all.contains("bash e2e/ci/compose.sh --profile helix up"), "{all}");
    assert!(!all.contains("docker compose ") && !all.contains("docker-compose "), "compose only through e2e/ci/compose.sh (v1 or v2):\n{all}");
    assert!(all.contains("--target e2e/targets/helix-dev.toml"));
    assert!(all.contains("gh issue create") && all.contains("--body-file") && all.contains("report.md"));
    assert!(all.contains("GITHUB_STEP_SUMMARY"), "report.md as the step summary");
    assert!(all.contains("--profile helix down"), "the stack is stopped");
    assert!(!all.contains("sudo "), "root only through e2e/ci/as-root.sh:\n{all}");
    let upload = uses(&wf).into_iter().find(|(u, _)| u.starts_with("actions/upload-artifact@")).expect("an upload step");
    assert_eq!(upload.1["path"].as_str(), Some("artifacts/"));
    let junit = uses(&wf).into_iter().find(|(u, _)| u.starts_with("mikepenz/action-junit-report@")).expect("JUnit published to the run's test summary");
    assert!(junit.1["report_paths"].as_str().unwrap().ends_with("junit.xml"));
    // The issue step runs only on a failed suite (exit code 1), not on errors of the runner.
    let steps = job["steps"].as_sequence().unwrap();
    let issue = steps.iter().find(|s| s.get("run").and_then(Value::as_str).is_some_and(|r| r.contains("gh issue create"))).unwrap();
    let cond = issue["if"].as_str().unwrap();
    assert!(cond.contains("failure()") && cond.contains("exit_code == '1'"), "{cond}");
    assert!(!issue["run"].as_str().unwrap().contains("${{"), "expressions go through env, not into the script");
    for f in ["docker-compose.e2e.yaml", "e2e/targets/helix-dev.toml"] {
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(f).exists(), "{f} named by the workflow is missing");
    }
    every_named_script_exists(&all);
}

#[test]
fn reference_workflow_tests_and_runs_the_containers_on_a_hosted_runner() {
    let wf = load("reference.yml");
    let all = scripts(&wf, "reference.yml").join("\n");
    let jobs = wf["jobs"].as_mapping().unwrap();
    for (name, job) in jobs {
        assert!(job["runs-on"].as_str().is_some_and(|r| r.starts_with("ubuntu-")), "{name:?}: a GitHub-hosted Ubuntu runner");
    }
    assert!(all.contains("bash e2e/ci/as-root.sh cargo test"), "{all}");
    assert!(all.contains("bash e2e/ci/containers.sh"), "{all}");
    assert!(!all.contains("sudo "), "root only through e2e/ci/as-root.sh (sudo's secure_path hides the toolchain):\n{all}");
    assert!(uses(&wf).iter().any(|(u, _)| u.starts_with("mikepenz/action-junit-report@")), "JUnit published");
    every_named_script_exists(&all);
}

/// The sharded layout: a `strategy.matrix` of shards, each running its share with one seed and
/// uploading its artifacts under its own name; a final job that needs them all, runs even when a
/// shard failed, downloads every shard's artifacts and merges them.
#[test]
fn sharded_workflow_runs_shards_in_a_matrix_and_merges_them_in_a_final_job() {
    let wf = load("sharded.yml");
    let all = scripts(&wf, "sharded.yml").join("\n");
    let jobs = wf["jobs"].as_mapping().unwrap();
    let shard = &wf["jobs"]["shard"];
    let shards: Vec<u64> = shard["strategy"]["matrix"]["shard"].as_sequence().expect("strategy.matrix.shard").iter().filter_map(Value::as_u64).collect();
    assert!(shards.len() >= 2 && shards.iter().copied().eq(1..=shards.len() as u64), "shards 1..=N: {shards:?}");
    assert_eq!(shard["strategy"]["fail-fast"].as_bool(), Some(false), "one failing shard must not cancel the others");
    let run_step = shard["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s.get("run").and_then(Value::as_str).is_some_and(|r| r.contains("--shard")))
        .expect("a step running its shard");
    assert_eq!(run_step["env"]["SHARD"].as_str(), Some("${{ matrix.shard }}/${{ strategy.job-total }}"), "K/N from the matrix itself");
    assert!(run_step["env"]["SEED"].as_str().is_some_and(|s| s.contains("github.run_id")), "one seed for every shard");
    let script = run_step["run"].as_str().unwrap();
    assert!(script.contains("--shard \"$SHARD\"") && script.contains("--seed \"$SEED\"") && !script.contains("${{"), "{script}");
    let step_uses = |job: &Value, prefix: &str| -> Vec<Value> {
        job["steps"].as_sequence().unwrap().iter().filter(|s| s.get("uses").and_then(Value::as_str).is_some_and(|u| u.starts_with(prefix))).cloned().collect()
    };
    let upload = step_uses(shard, "actions/upload-artifact@").pop().expect("each shard uploads");
    assert_eq!(upload["with"]["name"].as_str(), Some("shard-${{ matrix.shard }}"));
    assert_eq!(upload["if"].as_str(), Some("always()"), "a failed shard's artifacts are uploaded too");
    let merge = &wf["jobs"]["merge"];
    assert_eq!(merge["needs"].as_str(), Some("shard"));
    assert_eq!(merge["if"].as_str(), Some("always()"));
    let download = step_uses(merge, "actions/download-artifact@").pop().expect("the final job downloads the shards");
    assert_eq!((download["with"]["pattern"].as_str(), download["with"]["path"].as_str()), (Some("shard-*"), Some("shards")));
    assert!(all.contains("helix-e2e\" merge shards/shard-*/*/ --out artifacts/merged"), "{all}");
    assert!(step_uses(merge, "mikepenz/action-junit-report@").iter().any(|s| s["with"]["report_paths"].as_str() == Some("artifacts/merged/junit.xml")));
    assert_eq!(jobs.len(), 2);
    for (name, job) in jobs {
        assert!(job["runs-on"].as_str().is_some_and(|r| r.starts_with("ubuntu-")), "{name:?}: a GitHub-hosted Ubuntu runner");
    }
    assert!(!all.contains("sudo "), "{all}");
    every_named_script_exists(&all);
}

/// Every `bash FILE` a workflow runs is in the repository.
fn every_named_script_exists(all: &str) {
    for word in all.split_whitespace().collect::<Vec<_>>().windows(2) {
        if word[0] == "bash" && (word[1].starts_with("e2e/") || word[1].starts_with(".ci/")) {
            assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(word[1]).exists(), "{} named by a workflow is missing", word[1]);
        }
    }
}

/// A GitHub-hosted runner, as far as the `containers` job can tell: a Docker engine that is not
/// ours already answers on the Docker socket, and the job's shell shares that engine's host
/// network. Here the "host" is a namespace of the test's own (this project's machines allow
/// loopback only); the engine is a plain dockerd in it.
struct HostedRunner {
    ns: &'static str,
    dockerd: std::process::Child,
}

const RUNNER_NS: &str = "helix-e2e-runner";
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

impl HostedRunner {
    fn start() -> HostedRunner {
        let sh = |cmd: &str| {
            let ok = std::process::Command::new("sh").args(["-c", cmd]).status().map(|s| s.success()).unwrap_or(false);
            assert!(ok, "`{cmd}` failed");
        };
        assert!(!engine_answers(), "an engine already answers on {DOCKER_SOCKET}: stop it first (e2e/reference/engine.sh stop)");
        let _ = std::process::Command::new("ip").args(["netns", "del", RUNNER_NS]).status();
        sh(&format!(
            "ip netns add {RUNNER_NS} && ip -n {RUNNER_NS} link set lo up && ip -n {RUNNER_NS} link add v0 type veth peer name v1 \
             && ip -n {RUNNER_NS} addr add 198.51.100.2/24 dev v0 && ip -n {RUNNER_NS} addr add 198.51.100.3/24 dev v1 \
             && ip -n {RUNNER_NS} link set v0 up && ip -n {RUNNER_NS} link set v1 up && ip -n {RUNNER_NS} route add default dev v0"
        ));
        let log = std::fs::File::create("/var/tmp/helix-e2e-runner-dockerd.log").unwrap();
        let dockerd = std::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{RUNNER_NS}"))
            .args(["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--host", &format!("unix://{DOCKER_SOCKET}"), "--data-root", "/var/lib/helix-e2e-docker"])
            .args(["--exec-root", "/var/run/helix-e2e-runner-docker", "--pidfile", "/var/run/helix-e2e-runner-docker.pid"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs (apt-get install -y docker.io)");
        let runner = HostedRunner { ns: RUNNER_NS, dockerd };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !engine_answers() {
            assert!(std::time::Instant::now() < deadline, "the runner's dockerd did not answer within 60 s (/var/tmp/helix-e2e-runner-dockerd.log)");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        runner
    }

    /// Run one step's script as the runner does: `bash -e`, in the job's directory, with the
    /// workflow's, the job's and the step's environment and the runner's own variables — and
    /// nothing of this test's: cargo runs tests with `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and
    /// more set, which a step's own cargo would take for a changed build (build scripts rerun
    /// when those change) and rebuild half the dependency tree.
    fn run_step(&self, script: &str, env: &[(String, String)], outputs: &Path) -> bool {
        let machine = ["PATH", "HOME", "USER", "LANG", "TERM", "CARGO_HOME", "RUSTUP_HOME"];
        std::process::Command::new("ip")
            .args(["netns", "exec", self.ns, "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| machine.contains(&k.as_str())))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", outputs.join("output"))
            .env("GITHUB_STEP_SUMMARY", outputs.join("summary"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for HostedRunner {
    fn drop(&mut self) {
        unsafe { libc::kill(self.dockerd.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.dockerd.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        let _ = std::process::Command::new("ip").args(["netns", "del", self.ns]).status();
    }
}

fn engine_answers() -> bool {
    std::process::Command::new("timeout")
        .args(["5", "docker", "-H", &format!("unix://{DOCKER_SOCKET}"), "info"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn env_of(v: &Value) -> Vec<(String, String)> {
    v.get("env").and_then(Value::as_mapping).into_iter().flatten().map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string())).collect()
}

/// The reference workflow's `containers` job, its `run` steps in order, read from the workflow
/// file, against a runner whose own dockerd already runs. The `uses` steps (checkout, toolchain,
/// cache, uploads) are the runner's business and already done here: the clone and the toolchain
/// are this machine's.
#[test]
#[ignore = "needs root and dockerd, and no engine running: .ci/run runs it"]
fn hosted_runner_runs_the_containers_job_on_its_own_docker_engine() {
    let wf = load("reference.yml");
    let job = &wf["jobs"]["containers"];
    let steps = job["steps"].as_sequence().expect("a containers job with steps");
    let mut env = env_of(&wf);
    env.extend(env_of(job));
    assert!(env.iter().all(|(_, v)| !v.contains("${{")), "the job's environment needs no expressions here: {env:?}");
    let outputs = std::env::temp_dir().join(format!("helix-e2e-runner-{}", std::process::id()));
    std::fs::create_dir_all(&outputs).unwrap();
    let runner = HostedRunner::start();
    let mut ran = 0;
    for (i, step) in steps.iter().enumerate() {
        let name = step.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(action) = step.get("uses").and_then(Value::as_str) {
            let known = ["actions/checkout@", "dtolnay/rust-toolchain@", "actions/cache@", "actions/upload-artifact@", "mikepenz/action-junit-report@"];
            assert!(known.iter().any(|k| action.starts_with(k)), "step {i}: {action} is not one the runner's own setup stands for");
            continue;
        }
        let cond = step.get("if").and_then(Value::as_str).unwrap_or("success()");
        if cond.contains("failure()") {
            continue;
        }
        let mut step_env = env.clone();
        step_env.extend(env_of(step));
        let script = step["run"].as_str().unwrap();
        eprintln!("hosted runner: step {i} {name}");
        let started = std::time::Instant::now();
        let ok = runner.run_step(script, &step_env, &outputs);
        eprintln!("hosted runner: step {i} {} after {:.0} s", if ok { "passed" } else { "FAILED" }, started.elapsed().as_secs_f64());
        assert!(ok, "step {i} ({name}) of the containers job failed:\n{script}");
        ran += 1;
    }
    drop(runner);
    let _ = std::fs::remove_dir_all(&outputs);
    assert!(ran >= 3, "only {ran} steps ran");
    assert!(!std::path::Path::new(&format!("/var/run/netns/{RUNNER_NS}")).exists(), "the runner's namespace is left");
}
