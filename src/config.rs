//! A target: where the system under test lives and how to drive its viewer.
//!
//! One type serves both the embedded reference stack and a real Helix deployment (a TOML file
//! under `e2e/targets/`), so every scenario runs one code path against either.

use crate::browser::RemoteBrowser;
use crate::sut::log_source::{LogSource, ReadFrom};
use crate::sut::{Clients, ConnectError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub helix_url: String,
    pub login: Option<Login>,
    pub viewer: ViewerSpec,
    pub wolf_socket: PathBuf,
    /// Wolf's HTTPS (Moonlight) port, `host:port`, which the driver probes itself (F15); `None`
    /// when the target does not say where it is.
    pub wolf_https: Option<String>,
    pub moonlight_web_url: String,
    pub moonlight_credentials: Option<String>,
    /// Service name → container name, for restarts (Docker targets only).
    pub containers: Vec<(String, String)>,
    /// Whether pictures carry the reference stack's stamp (true only for the stand-in).
    pub stamped: bool,
    /// Service name → where its log comes from: the embedded stack's files, a target file's
    /// `[logs]`; the log capture of `[containers]` adds its files for the services `[logs]` does
    /// not name.
    pub logs: Vec<(String, LogSource)>,
    /// Where the browser opens the viewer's pages: Helix as the browser reaches it, which is
    /// `helix_url` unless a remote browser sees Helix under another address (`[helix]
    /// viewer_url`).
    pub viewer_base: String,
    /// Remote browsers to spread the tabs over (`browsers = [...]`); `--browser` flags win.
    pub browsers: Vec<RemoteBrowser>,
}

#[derive(Debug, Clone)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ViewerSpec {
    /// Page that shows one agent session's viewer, e.g. `/session/{session}`.
    pub session_url: String,
    /// Texts of buttons to click after the page loads, e.g. `["Live Stream"]`.
    #[serde(default)]
    pub clicks: Vec<String>,
    #[serde(default = "default_video_selector")]
    pub video_selector: String,
    /// Page with several viewers at once, e.g. `/projects/{project}/specs?sessions={sessions}`.
    #[serde(default)]
    pub board_url: Option<String>,
    /// The control a user presses to reconnect, as a CSS selector; by default whatever visible,
    /// enabled control is labelled `Reconnect` (the alert's button, else the toolbar's icon).
    #[serde(default)]
    pub reconnect_selector: Option<String>,
}

fn default_video_selector() -> String {
    "video".into()
}

impl ViewerSpec {
    /// The viewer of the reference stack (and of Helix's `/session/<id>` page).
    pub fn helix_default() -> Self {
        Self {
            session_url: "/session/{session}".into(),
            clicks: vec!["Live Stream".into()],
            video_selector: default_video_selector(),
            board_url: Some("/projects/{project}/specs?sessions={sessions}".into()),
            reconnect_selector: None,
        }
    }

    /// What [`crate::browser::Browser::press`] is given for a Reconnect: a selector or a label.
    pub fn reconnect_control(&self) -> String {
        match &self.reconnect_selector {
            Some(css) => format!("css:{css}"),
            None => "Reconnect".into(),
        }
    }

    pub fn session_page(&self, base: &str, session: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.session_url.replace("{session}", session))
    }

    pub fn board_page(&self, base: &str, project: &str, sessions: &[String]) -> Option<String> {
        let t = self.board_url.as_ref()?;
        Some(format!("{}{}", base.trim_end_matches('/'), t.replace("{project}", project).replace("{sessions}", &sessions.join(","))))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read target file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("target file {path} is not valid: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("target file {path} names environment variable {var} for {what}, but it is not set")]
    MissingEnv { path: PathBuf, var: String, what: &'static str },
}

/// The TOML layout of `e2e/targets/<name>.toml`. Secrets are never in the file: it names the
/// environment variables that hold them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    name: Option<String>,
    helix: HelixSection,
    viewer: Option<ViewerSpec>,
    wolf: WolfSection,
    moonlight_web: MlwSection,
    #[serde(default)]
    containers: std::collections::BTreeMap<String, String>,
    /// Service name → its log: `{ file = "…" }` or `{ command = ["…", …] }`.
    #[serde(default)]
    logs: std::collections::BTreeMap<String, LogEntry>,
    /// The target is the reference stack (e.g. as containers): its pictures carry the stamp.
    #[serde(default)]
    reference: bool,
    /// Remote browsers' DevTools endpoints, each `ws://…/devtools/browser/…` or `http://HOST:PORT`.
    #[serde(default)]
    browsers: Vec<RemoteBrowser>,
}

/// One service's entry in `[logs]`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogEntry {
    /// A file the deployment writes; followed from its end at run start, across rotations.
    file: Option<PathBuf>,
    /// A command whose stdout is the log, e.g. `["journalctl", "-f", "-o", "short-iso", "-u", "wolf"]`.
    command: Option<Vec<String>>,
}

impl LogEntry {
    fn source(self, service: &str) -> Result<LogSource, String> {
        match (self.file, self.command) {
            (Some(path), None) if path.as_os_str().is_empty() => Err(format!("[logs] {service}: the file path is empty")),
            // A deployment's file holds its history from before the run: only what comes after
            // the run starts is this run's.
            (Some(path), None) => Ok(LogSource::File { path, from: ReadFrom::End }),
            (None, Some(argv)) if argv.first().is_none_or(|p| p.trim().is_empty()) => Err(format!(
                "[logs] {service}: the command is empty (give the program and its arguments, e.g. [\"journalctl\", \"-f\", \"-u\", \"{service}\"])"
            )),
            (None, Some(argv)) => Ok(LogSource::Command(argv)),
            (Some(_), Some(_)) => Err(format!("[logs] {service}: give either file or command, not both")),
            (None, None) => Err(format!("[logs] {service}: give file = \"…\" or command = [\"…\", …]")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HelixSection {
    url: String,
    /// Helix as the (remote) browser reaches it, when that is not `url`.
    viewer_url: Option<String>,
    email_env: Option<String>,
    password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WolfSection {
    socket: PathBuf,
    /// `host:port` of Wolf's HTTPS (Moonlight) port, e.g. `127.0.0.1:47984`.
    https: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MlwSection {
    url: String,
    credentials_env: Option<String>,
}

impl Target {
    /// Reach a target as a run and a watch both do: log in to Helix, register every secret (the
    /// password, the token, moonlight-web's credentials) with `timeline` for redaction before
    /// anything could print it, and fail early and clearly when Wolf or moonlight-web is not there
    /// at all (later, a service's silence is a finding, D2).
    pub async fn connect(&self, timeline: &crate::timeline::Timeline) -> Result<Clients, ConnectError> {
        let mut helix = crate::sut::helix::HelixClient::new(&self.helix_url);
        if let Some(login) = &self.login {
            timeline.add_secret(login.password.clone());
            helix.login(&login.email, &login.password).await.map_err(ConnectError::Login)?;
            if let Some(t) = helix.token() {
                timeline.add_secret(t.to_string());
            }
        }
        if let Some(c) = &self.moonlight_credentials {
            timeline.add_secret(c.clone());
        }
        let wolf = crate::sut::wolf::WolfClient::new(&self.wolf_socket);
        let mlw = crate::sut::moonlight_web::MoonlightWebClient::new(&self.moonlight_web_url, self.moonlight_credentials.clone());
        wolf.apps().await.map_err(ConnectError::Unreachable)?;
        mlw.sessions().await.map_err(ConnectError::Unreachable)?;
        Ok(Clients { helix, wolf, mlw })
    }

    /// The services whose log is their container's output: those of `[containers]` that `[logs]`
    /// does not name (`[logs]` says where a service's log really is). A run's capture and a
    /// watch's stream both take their list from here.
    pub fn logged_by_containers(&self) -> Vec<String> {
        self.containers.iter().map(|(s, _)| s).filter(|s| !self.logs.iter().any(|(l, _)| l == *s)).cloned().collect()
    }

    pub fn load(path: &Path) -> Result<Target, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(path, &text, |k| std::env::var(k).ok())
    }

    /// Parse a target file; `env` resolves the variables it names (injectable for tests).
    pub fn parse(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Target, ConfigError> {
        let f: TargetFile = toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), detail: e.to_string() })?;
        let need = |var: &Option<String>, what: &'static str| -> Result<Option<String>, ConfigError> {
            match var {
                None => Ok(None),
                Some(v) => env(v).map(Some).ok_or_else(|| ConfigError::MissingEnv { path: path.into(), var: v.clone(), what }),
            }
        };
        let email = need(&f.helix.email_env, "the Helix login email")?;
        let password = need(&f.helix.password_env, "the Helix login password")?;
        let login = match (email, password) {
            (Some(email), Some(password)) => Some(Login { email, password }),
            _ => None,
        };
        let invalid = |detail: String| ConfigError::Parse { path: path.into(), detail };
        let mut logs = Vec::new();
        for (service, entry) in f.logs {
            service.parse::<crate::sut::control::Service>().map_err(|e| invalid(format!("[logs]: {e}")))?;
            let source = entry.source(&service).map_err(invalid)?;
            logs.push((service, source));
        }
        Ok(Target {
            name: f.name.unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
            viewer_base: f.helix.viewer_url.unwrap_or_else(|| f.helix.url.clone()),
            browsers: f.browsers,
            helix_url: f.helix.url,
            login,
            viewer: f.viewer.unwrap_or_else(ViewerSpec::helix_default),
            wolf_socket: f.wolf.socket,
            wolf_https: f.wolf.https,
            moonlight_web_url: f.moonlight_web.url,
            moonlight_credentials: need(&f.moonlight_web.credentials_env, "the moonlight-web credentials")?,
            containers: f.containers.into_iter().collect(),
            stamped: f.reference,
            logs,
        })
    }

    /// The target of a running embedded reference stack.
    pub fn embedded(e: &crate::refstack::Endpoints) -> Target {
        Target {
            name: "embedded reference stack".into(),
            helix_url: e.helix_url.clone(),
            viewer_base: e.helix_url.clone(),
            browsers: Vec::new(),
            login: Some(Login { email: e.user_email.clone(), password: e.user_password.clone() }),
            viewer: ViewerSpec::helix_default(),
            wolf_socket: e.wolf_socket.clone(),
            // The stand-in's Moonlight port (plain HTTP on loopback, in place of Wolf's TLS port).
            wolf_https: Some(e.wolf_moonlight_http.clone()),
            moonlight_web_url: e.moonlight_web_url.clone(),
            moonlight_credentials: Some(e.moonlight_credentials.clone()),
            containers: Vec::new(),
            stamped: true,
            // Written for this run by the stack's own processes: all of each is the run's.
            logs: e.logs.iter().map(|(s, p)| (s.clone(), LogSource::run_file(p.clone()))).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
