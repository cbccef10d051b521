//! The Docker side: the compose file as compose reads it, and service control plus log capture
//! against a real engine (ignored unless one runs: `.ci/run` starts it with
//! e2e/reference/engine.sh and builds the image with e2e/reference/build-images.sh).

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use helix_e2e::sut::control::docker::logs::{line_time_ns, Dest};
use helix_e2e::sut::control::docker::DockerServices;
use helix_e2e::sut::control::{Service, ServiceControl};
use helix_e2e::timeline::{Event, Timeline};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const COMPOSE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.e2e.yaml");

/// `docker compose` (v2) when the plugin is there, else `docker-compose` (v1, Debian's).
fn compose() -> Vec<String> {
    let works = |cmd: &[&str]| Command::new(cmd[0]).args(&cmd[1..]).output().map(|o| o.status.success()).unwrap_or(false);
    if works(&["docker", "compose", "version"]) {
        vec!["docker".into(), "compose".into()]
    } else if works(&["docker-compose", "version"]) {
        vec!["docker-compose".into()]
    } else {
        panic!("neither `docker compose` nor `docker-compose` runs here: install docker-compose (apt-get install -y docker-compose) to check docker-compose.e2e.yaml");
    }
}

fn compose_config(profile: &str) -> Value {
    let cmd = compose();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(["-f", COMPOSE_FILE, "--profile", profile, "config"])
        // The variables the file reads, as CI would set them; none is required.
        .env("HELIX_E2E_REFERENCE_IMAGE", "helix-e2e-reference:local")
        .env("HELIX_E2E_SOCKET_DIR", "/tmp/helix-e2e-compose")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cmd.join(" ")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} --profile {profile} config failed: {}{}", cmd.join(" "), String::from_utf8_lossy(&out.stderr), stdout);
    serde_yaml::from_str(&stdout).unwrap_or_else(|e| panic!("compose config output is not YAML ({e}):\n{stdout}"))
}

#[test]
fn compose_profiles_are_valid_and_use_the_host_network_only() {
    for (profile, expected) in [
        ("reference", &["wolf", "moonlight-web", "api"][..]),
        ("helix", &["helix-api", "helix-frontend", "helix-wolf", "helix-moonlight-web"][..]),
        ("browsers", &["browser-1", "browser-2"][..]),
    ] {
        let config = compose_config(profile);
        let services = config["services"].as_mapping().unwrap_or_else(|| panic!("{profile}: no services in {config:?}"));
        for name in expected {
            let s = &services[*name];
            assert!(s.is_mapping(), "{profile}: service {name} missing");
            assert_eq!(s["profiles"][0].as_str(), Some(profile), "{profile}: {name}");
        }
        for (name, s) in services {
            assert_eq!(s["network_mode"].as_str(), Some("host"), "{profile}: service {name:?} must use the host network only");
            assert!(s.get("networks").is_none(), "{profile}: service {name:?} joins networks: {:?}", s["networks"]);
            assert!(s.get("ports").is_none(), "{profile}: service {name:?} maps ports, which host networking ignores");
        }
        // No network of any kind is declared (compose v1 prints none; v2 prints an empty map at most).
        let networks = config.get("networks").and_then(Value::as_mapping).map(|m| m.len()).unwrap_or(0);
        assert_eq!(networks, 0, "{profile}: networks declared: {:?}", config["networks"]);
    }
    // The remote browsers: DevTools on loopback, each on its own port, the ports the example
    // target file lists.
    let browsers = compose_config("browsers");
    let target = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/targets/compose-browsers.toml")).unwrap();
    for (name, port) in [("browser-1", 9301), ("browser-2", 9302)] {
        let s = &browsers["services"][name];
        let args: Vec<&str> = s["entrypoint"].as_sequence().into_iter().chain(s["command"].as_sequence()).flatten().filter_map(Value::as_str).collect();
        assert!(args.contains(&"--remote-debugging-address=127.0.0.1"), "{name}: DevTools on loopback only: {args:?}");
        assert!(args.contains(&format!("--remote-debugging-port={port}").as_str()), "{name}: {args:?}");
        assert!(target.contains(&format!("\"http://127.0.0.1:{port}\"")), "compose-browsers.toml lists {name}");
    }
    let reference = compose_config("reference");
    let s = &reference["services"];
    for (name, container, port) in [("wolf", "helix-e2e-wolf", "47989"), ("moonlight-web", "helix-e2e-moonlight-web", "8081"), ("api", "helix-e2e-api", "8080")]
    {
        assert_eq!(s[name]["container_name"].as_str(), Some(container));
        let test: Vec<&str> = s[name]["healthcheck"]["test"].as_sequence().map(|t| t.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert_eq!(test, ["CMD", "/helix-e2e", "__probe", "--tcp", &format!("127.0.0.1:{port}")], "{name}");
        let command: Vec<&str> = s[name]["command"].as_sequence().map(|t| t.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert_eq!(&command[..4], ["service", name, "--dir", "/var/run/wolf"], "{name}");
        assert_eq!(s[name]["volumes"][0].as_str().map(|v| v.trim_end_matches(":rw")), Some("/tmp/helix-e2e-compose:/var/run/wolf"), "{name}");
    }
    assert_eq!(s["api"]["depends_on"]["wolf"]["condition"].as_str(), Some("service_healthy"));
    assert_eq!(s["moonlight-web"]["depends_on"]["wolf"]["condition"].as_str(), Some("service_healthy"));
}

/// The real stack's profile starts on a GPU host as the real images need it: the GPU through
/// the device reservation only (`runtime: nvidia` fails where no runtime of that name is
/// registered), and moonlight-web given a config under host networking: bound to the port the
/// target file names, which is not the API's, and with no ICE server beyond the host.
#[test]
fn the_helix_profile_starts_on_a_gpu_host_with_a_port_layout_that_fits_host_networking() {
    let config = compose_config("helix");
    let s = &config["services"];
    for (name, service) in s.as_mapping().unwrap() {
        assert!(service.get("runtime").is_none(), "{name:?}: `runtime:` set");
    }
    let gpu = serde_yaml::to_string(&s["helix-wolf"]["deploy"]).unwrap();
    assert!(gpu.contains("driver: nvidia") && gpu.contains("gpu"), "helix-wolf reserves no GPU: {gpu}");
    let mounts = serde_yaml::to_string(&s["helix-moonlight-web"]["volumes"]).unwrap();
    assert!(mounts.contains("e2e/targets/moonlight-web/config.json") && mounts.contains("/app/server/config.json"), "moonlight-web gets no config: {mounts}");
    let dir = env!("CARGO_MANIFEST_DIR");
    let mw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/e2e/targets/moonlight-web/config.json")).unwrap()).unwrap();
    let target: toml::Value = toml::from_str(&std::fs::read_to_string(format!("{dir}/e2e/targets/helix-dev.toml")).unwrap()).unwrap();
    let port = |url: &str| url.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
    let bind = mw["bind_address"].as_str().unwrap();
    assert_eq!(port(bind), port(target["moonlight_web"]["url"].as_str().unwrap()), "moonlight-web binds {bind}, the target file looks elsewhere");
    assert_ne!(port(bind), port(target["helix"]["url"].as_str().unwrap()), "moonlight-web would take the API's port");
    assert_eq!(mw["webrtc_ice_servers"], serde_json::json!([]), "ICE servers beyond the host");
    assert_eq!((mw["webrtc_port_range"]["min"].as_u64(), mw["webrtc_port_range"]["max"].as_u64()), (Some(40000), Some(40100)));
}

/// Removes the test container however the test ends.
struct ContainerGuard {
    name: String,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await; a runtime of its own on another thread can.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(d) = DockerServices::connect(vec![]).await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        d.client().remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() })),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

fn ready_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| l.contains("reference stack ready")).map(str::to_string).collect()
}

async fn wait_for_ready_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines = ready_lines(path);
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn started_at(d: &DockerServices, name: &str) -> String {
    let info = d.client().inspect_container(name, None).await.unwrap_or_else(|e| panic!("inspect {name}: {e}"));
    info.state.and_then(|s| s.started_at).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Docker engine: .ci/run starts one (e2e/reference/engine.sh)"]
async fn restart_through_the_engine_and_capture_logs_across_it() {
    let image = std::env::var("HELIX_E2E_REFERENCE_IMAGE").unwrap_or_else(|_| "helix-e2e-reference:local".into());
    let name = format!("helix-e2e-test-{}", std::process::id());
    let control = DockerServices::connect(vec![(Service::Wolf, name.clone())]).await.unwrap_or_else(|e| panic!("{e}"));
    let _guard = ContainerGuard { name: name.clone() };

    // The all-in-one stand-in runs until stopped; its Wolf socket is the health check.
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(["refstack", "--dir", "/tmp/x"].map(String::from).to_vec()),
        healthcheck: Some(HealthConfig {
            test: Some(["CMD", "/helix-e2e", "__probe", "--unix", "/tmp/x/wolf.sock"].map(String::from).to_vec()),
            interval: Some(500_000_000),
            timeout: Some(3_000_000_000),
            retries: Some(30),
            ..Default::default()
        }),
        host_config: Some(HostConfig { network_mode: Some("host".into()), ..Default::default() }),
        ..Default::default()
    };
    let before_run = SystemTime::now();
    control
        .client()
        .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
        .await
        .unwrap_or_else(|e| panic!("creating {name} from {image} (built by e2e/reference/build-images.sh?): {e}"));
    control.start(Service::Wolf).await.unwrap_or_else(|e| panic!("{e}"));
    let first_start = started_at(&control, &name).await;

    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-docker-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&artifacts);
    let capture = control.follow_logs(&[Service::Wolf], before_run, Dest::Dir(artifacts.join("logs")));
    // A watch's capture of the same container: straight onto a timeline, no file.
    let timeline = Timeline::unrecorded();
    let mut cursor = timeline.cursor();
    let stream = control.follow_logs(&[Service::Wolf], before_run, Dest::Timeline(timeline.clone()));
    assert!(stream.files().is_empty(), "a stream onto the timeline writes no file: {:?}", stream.files());
    let log: PathBuf = capture.files()[0].1.clone();
    assert_eq!(log, artifacts.join("logs/wolf.log"));
    assert_eq!(wait_for_ready_lines(&log, 1).await.len(), 1, "first run's lines in {}", log.display());

    // The engine records StartedAt only after the process is running (and may have logged), so
    // the moment of asking for the restart is the dividing line.
    let restart_asked = SystemTime::now();
    control.restart(Service::Wolf).await.unwrap_or_else(|e| panic!("{e}"));
    let second_start = started_at(&control, &name).await;
    assert_ne!(first_start, second_start, "StartedAt unchanged: the container did not restart");
    assert_eq!(wait_for_ready_lines(&log, 2).await.len(), 2, "second run's lines in {}", log.display());

    // A kill ends the follow stream too; start brings it back (and healthy).
    control.kill(Service::Wolf).await.unwrap_or_else(|e| panic!("{e}"));
    control.kill(Service::Wolf).await.unwrap_or_else(|e| panic!("killing what is down already: {e}"));
    control.start(Service::Wolf).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for_ready_lines(&log, 3).await.len(), 3);
    control.stop(Service::Wolf).await.unwrap_or_else(|e| panic!("{e}"));
    capture.stop().await;
    stream.stop().await;

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    // Every line carries the engine's stamp, in order, none twice (re-attaching repeats up to a
    // second of lines, which must be dropped).
    let times: Vec<i128> = lines.iter().map(|l| line_time_ns(l).unwrap_or_else(|| panic!("no docker timestamp: {l:?}"))).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "timestamps out of order:\n{text}");
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "duplicated lines:\n{text}");
    // Lines from before and after the restart, placed by the engine's time.
    let restart_ns = restart_asked.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
    let ready: Vec<i128> = ready_lines(&log).iter().filter_map(|l| line_time_ns(l)).collect();
    assert!(ready[0] < restart_ns && ready[1] >= restart_ns, "ready lines at {ready:?}, restart at {restart_ns}");
    // The monitor reads these lines with the engine's time.
    let (stamp, body) = helix_e2e::sut::wolf_log::unwrap_docker(lines[0]);
    assert!(stamp.is_some() && !body.is_empty(), "{:?}", lines[0]);
    // The stream put the same lines on the timeline, once each, at the engine's time, across
    // the restart and the kill.
    let mut streamed = Vec::new();
    timeline.take_new(&mut cursor, |o| {
        if let Event::Log { service, message, .. } = &o.event {
            streamed.push((service.clone(), message.clone(), o.at));
        }
    });
    assert_eq!(streamed.len(), lines.len(), "streamed {streamed:#?}\nfile:\n{text}");
    assert_eq!(streamed.iter().filter(|(_, m, _)| m.contains("reference stack ready")).count(), 3, "{streamed:#?}");
    for ((service, message, at), line) in streamed.iter().zip(&lines) {
        assert_eq!(service, "wolf");
        let engine_ms = line_time_ns(line).unwrap() as f64 / 1e6;
        assert!((at - engine_ms).abs() < 1.0, "{message:?} at {at}, the engine says {engine_ms}");
    }

    // Control of a container that does not exist names it.
    let missing = DockerServices::connect(vec![(Service::Api, "helix-e2e-no-such-container".into())]).await.unwrap_or_else(|e| panic!("{e}"));
    let err = missing.restart(Service::Api).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.starts_with("api: restart failed: container helix-e2e-no-such-container: engine answered 404"), "{err}");
    let _ = std::fs::remove_dir_all(&artifacts);
}
