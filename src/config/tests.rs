//! Target files parse into one `Target`: the real ones shipped under `e2e/targets/`, and each
//! malformed section refused with a line naming the file and the cause.

use super::*;

#[test]
fn real_target_file_parses_and_names_missing_secrets() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/targets/helix-dev.toml")).unwrap();
    let p = Path::new("helix-dev.toml");
    let t = Target::parse(p, &text, |k| Some(format!("value-of-{k}"))).unwrap();
    assert_eq!(t.wolf_socket, PathBuf::from("/var/run/wolf/wolf.sock"));
    assert_eq!(t.wolf_https.as_deref(), Some("localhost:47984"), "the driver probes Wolf's HTTPS port (F15)");
    assert!(t.login.is_some());
    assert_eq!(t.viewer.session_page("http://h:8080", "ses_1"), "http://h:8080/session/ses_1");
    let err = Target::parse(p, &text, |_| None).unwrap_err().to_string();
    assert!(err.contains("HELIX_E2E_EMAIL"), "{err}");
    let err = Target::parse(p, "helix = 3", |_| None).unwrap_err().to_string();
    assert!(err.contains("not valid"), "{err}");
    assert!(!t.stamped, "a real deployment's pictures carry no stamp");
    // Its logs come through the container capture (`[logs]` is commented out).
    assert!(t.logs.is_empty());
    let example = |r: &&str| ["[logs]", "wolf = {", "moonlight-web = {", "api = {"].iter().any(|p| r.starts_with(p));
    let uncommented = text.lines().map(|l| l.strip_prefix("# ").filter(example).unwrap_or(l)).collect::<Vec<_>>().join("\n");
    let t = Target::parse(p, &uncommented, |k| Some(format!("value-of-{k}"))).unwrap();
    assert_eq!(t.logs.len(), 3, "the commented example is a valid [logs] section: {:?}", t.logs);
}

fn with_logs(logs: &str) -> Result<Target, ConfigError> {
    let text = format!("[helix]\nurl = \"http://h\"\n[wolf]\nsocket = \"/w.sock\"\n[moonlight_web]\nurl = \"http://m\"\n{logs}");
    Target::parse(Path::new("t.toml"), &text, |_| None)
}

#[test]
fn the_reconnect_control_is_the_labelled_one_unless_the_target_names_a_selector() {
    assert_eq!(ViewerSpec::helix_default().reconnect_control(), "Reconnect");
    let text = "[helix]\nurl = \"http://h\"\n[viewer]\nsession_url = \"/s/{session}\"\nreconnect_selector = \"[role=alert] button\"\n[wolf]\nsocket = \"/w.sock\"\n[moonlight_web]\nurl = \"http://m\"\n";
    let t = Target::parse(Path::new("t.toml"), text, |_| None).unwrap();
    assert_eq!(t.viewer.reconnect_control(), "css:[role=alert] button");
}

#[test]
fn logs_section_takes_files_and_commands_and_refuses_the_rest() {
    assert!(with_logs("").unwrap().logs.is_empty());
    let t = with_logs("[logs]\nwolf = { file = \"/var/log/wolf.log\" }\nmoonlight-web = { command = [\"journalctl\", \"-f\", \"-o\", \"short-iso\", \"-u\", \"moonlight-web\"] }\napi = { command = [\"kubectl\", \"logs\", \"-f\", \"deploy/api\"] }").unwrap();
    let mut logs = t.logs.clone();
    logs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        logs,
        vec![
            ("api".to_string(), LogSource::Command(["kubectl", "logs", "-f", "deploy/api"].map(String::from).to_vec())),
            ("moonlight-web".to_string(), LogSource::Command(["journalctl", "-f", "-o", "short-iso", "-u", "moonlight-web"].map(String::from).to_vec())),
            // A deployment's file: only what it gains during the run.
            ("wolf".to_string(), LogSource::File { path: "/var/log/wolf.log".into(), from: ReadFrom::End }),
        ]
    );
    let err = |logs: &str| with_logs(logs).unwrap_err().to_string();
    let e = err("[logs]\nwolff = { file = \"/x\" }");
    assert!(e.contains("unknown service `wolff`") && e.contains("wolf, moonlight-web or api") && e.contains("t.toml"), "{e}");
    let e = err("[logs]\nwolf = { command = [] }");
    assert!(e.contains("[logs] wolf: the command is empty"), "{e}");
    let e = err("[logs]\nwolf = { command = [\"\"] }");
    assert!(e.contains("the command is empty"), "{e}");
    let e = err("[logs]\nwolf = { file = \"/x\", command = [\"cat\"] }");
    assert!(e.contains("not both"), "{e}");
    let e = err("[logs]\nwolf = {}");
    assert!(e.contains("give file"), "{e}");
    let e = err("[logs]\nwolf = { path = \"/x\" }");
    assert!(e.contains("not valid") && e.contains("path"), "{e}");
    let e = err("[logs]\nwolf = { file = \"\" }");
    assert!(e.contains("the file path is empty"), "{e}");
}

#[test]
fn the_embedded_stacks_logs_are_its_own_files_read_from_their_start() {
    let e = crate::refstack::Endpoints {
        helix_url: "http://h".into(),
        moonlight_web_url: "http://m".into(),
        moonlight_credentials: "c".into(),
        wolf_socket: "/w".into(),
        wolf_moonlight_http: "w".into(),
        user_email: "e".into(),
        user_password: "p".into(),
        logs: vec![("wolf".into(), "/s/wolf.log".into())],
    };
    assert_eq!(Target::embedded(&e).logs, vec![("wolf".to_string(), LogSource::File { path: "/s/wolf.log".into(), from: ReadFrom::Start })]);
}

#[test]
fn compose_browsers_target_lists_its_remote_browsers_in_order_and_refuses_a_page_url() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/targets/compose-browsers.toml")).unwrap();
    let t = Target::parse(Path::new("compose-browsers.toml"), &text, |k| Some(format!("value-of-{k}"))).unwrap();
    let browsers: Vec<String> = t.browsers.iter().map(ToString::to_string).collect();
    assert_eq!(browsers, ["http://127.0.0.1:9301", "http://127.0.0.1:9302"]);
    assert_eq!(t.viewer_base, t.helix_url, "the browsers reach Helix where the driver does");
    let elsewhere = text.replace("[helix]\n", "[helix]\nviewer_url = \"http://10.0.0.5:8080\"\n");
    let t = Target::parse(Path::new("b.toml"), &elsewhere, |k| Some(k.to_string())).unwrap();
    assert_eq!(t.viewer.session_page(&t.viewer_base, "ses_1"), "http://10.0.0.5:8080/session/ses_1");
    let page = text.replace("http://127.0.0.1:9302", "ws://127.0.0.1:9302/devtools/page/1");
    let e = Target::parse(Path::new("b.toml"), &page, |k| Some(k.to_string())).unwrap_err().to_string();
    assert!(e.contains("/devtools/page/"), "{e}");
}

#[test]
fn compose_reference_target_is_the_stamped_stand_in_in_containers() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/targets/compose-reference.toml")).unwrap();
    let t = Target::parse(Path::new("compose-reference.toml"), &text, |k| Some(format!("value-of-{k}"))).unwrap();
    assert_eq!(t.name, "compose-reference");
    assert!(t.stamped);
    assert_eq!((t.helix_url.as_str(), t.moonlight_web_url.as_str()), ("http://127.0.0.1:8080", "http://127.0.0.1:8081"));
    assert_eq!(t.wolf_socket, PathBuf::from("/tmp/helix-e2e-compose/wolf.sock"));
    assert_eq!(t.moonlight_credentials.as_deref(), Some("value-of-MOONLIGHT_CREDENTIALS"));
    assert_eq!(t.login.as_ref().map(|l| l.email.as_str()), Some("value-of-HELIX_E2E_EMAIL"));
    let mut containers = t.containers.clone();
    containers.sort();
    assert_eq!(
        containers,
        [("api", "helix-e2e-api"), ("moonlight-web", "helix-e2e-moonlight-web"), ("wolf", "helix-e2e-wolf")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Every container key is a service service control knows.
    assert!(t.containers.iter().all(|(s, _)| s.parse::<crate::sut::control::Service>().is_ok()));
    // Without `[logs]`, every service's log is its container's output; `[logs]` takes a service out.
    let mut from_containers = t.logged_by_containers();
    from_containers.sort();
    assert_eq!(from_containers, ["api", "moonlight-web", "wolf"]);
    let with_wolf_log = format!("{text}\n[logs]\nwolf = {{ file = \"/var/log/wolf.log\" }}\n");
    let t2 = Target::parse(Path::new("x.toml"), &with_wolf_log, |k| Some(format!("value-of-{k}"))).unwrap();
    let mut from_containers = t2.logged_by_containers();
    from_containers.sort();
    assert_eq!(from_containers, ["api", "moonlight-web"]);
    let err = Target::parse(Path::new("x.toml"), &text.replace("reference = true", "reference = \"yes\""), |_| Some(String::new())).unwrap_err().to_string();
    assert!(err.contains("not valid"), "{err}");
}
