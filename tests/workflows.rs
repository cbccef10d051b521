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
fn gpu_workflow_brings_up_the_helix_stack_runs_the_suite_uploads_and_files_an_issue() {
    let wf = load("e2e-gpu.yml");
    let runs = scripts(&wf, "e2e-gpu.yml");
    let job = wf["jobs"].as_mapping().unwrap().values().next().unwrap();
    let labels: Vec<&str> = job["runs-on"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(labels.contains(&"self-hosted") && labels.contains(&"gpu"), "{labels:?}");
    let all = runs.join("\n");
    assert!(all.contains("docker compose -f docker-compose.e2e.yaml --profile helix up"), "{all}");
    assert!(all.contains("--target e2e/targets/helix-dev.toml"));
    assert!(all.contains("gh issue create") && all.contains("--body-file") && all.contains("report.md"));
    assert!(all.contains("--profile helix down"), "the stack is stopped");
    let upload = uses(&wf).into_iter().find(|(u, _)| u.starts_with("actions/upload-artifact@")).expect("an upload step");
    assert_eq!(upload.1["path"].as_str(), Some("artifacts/"));
    // The issue step runs only on a failed suite (exit code 1), not on errors of the runner.
    let steps = job["steps"].as_sequence().unwrap();
    let issue = steps.iter().find(|s| s.get("run").and_then(Value::as_str).is_some_and(|r| r.contains("gh issue create"))).unwrap();
    let cond = issue["if"].as_str().unwrap();
    assert!(cond.contains("failure()") && cond.contains("exit_code == '1'"), "{cond}");
    for f in ["docker-compose.e2e.yaml", "e2e/targets/helix-dev.toml"] {
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(f).exists(), "{f} named by the workflow is missing");
    }
    // The compose file has the profile the workflow starts.
    let compose: Value =
        serde_yaml::from_str(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.e2e.yaml")).unwrap()).unwrap();
    let has_helix =
        compose["services"].as_mapping().unwrap().values().any(|s| s["profiles"].as_sequence().is_some_and(|p| p.iter().any(|x| x.as_str() == Some("helix"))));
    assert!(has_helix);
}

#[test]
fn reference_workflow_runs_the_ci_script_on_an_ordinary_runner() {
    let wf = load("reference.yml");
    let all = scripts(&wf, "reference.yml").join("\n");
    assert!(all.contains("bash .ci/run"), "{all}");
    let job = wf["jobs"].as_mapping().unwrap().values().next().unwrap();
    assert_eq!(job["runs-on"].as_str(), Some("ubuntu-latest"));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run").exists());
}
