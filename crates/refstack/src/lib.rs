//! The reference stack: a faithful stand-in for Wolf, moonlight-web and the Helix API + viewer.
//!
//! It exists so the driver has a real target on a machine without a GPU, and so every
//! documented failure can be reproduced on demand. The driver uses only what it needs to start
//! it (`Layout`, `Endpoints`, the fault switches) and runs each service as a child process
//! (`helix-e2e service …`), talking to it through the same interfaces as to the real services.
//! This crate depends on `helix-e2e-shared` and never on the driver: its Helix has its own Wolf
//! client, so the client under test is not part of the stack that tests it.

pub mod faults;
pub mod helix;
pub mod logfile;
pub mod moonlight_web;
pub mod picture;
pub mod streamer;
pub mod wolf;

use crate::logfile::{LogFile, Style};
use helix_e2e_shared::Service;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where every service of one stand-in stack listens and what it shares: fixed for the life of
/// the stack, so a restarted service comes back where its clients look for it. The supervisor
/// (`sut::control::processes`) and `docker-compose.e2e.yaml` pass the same flags to each of the
/// three service processes.
#[derive(Debug, Clone, clap::Args)]
pub struct Layout {
    /// Holds the Wolf socket (`wolf.sock`) and the API's store file.
    #[arg(long)]
    pub dir: PathBuf,
    /// Wolf's Moonlight HTTP port (pairing, launch).
    #[arg(long, default_value_t = 47989)]
    pub wolf_http_port: u16,
    /// Wolf's stream port (the per-session H.264 stream).
    #[arg(long, default_value_t = 48010)]
    pub wolf_stream_port: u16,
    #[arg(long, default_value_t = 8081)]
    pub moonlight_web_port: u16,
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Reproduce a documented failure: NAME[=VALUE], repeatable (e.g. webrtc-port-range=40000-40001).
    #[arg(long = "fault")]
    pub faults: Vec<faults::Fault>,
    /// moonlight-web's credentials, which the API's proxy puts into `AuthenticateAndInit`.
    #[arg(long, env = "MOONLIGHT_CREDENTIALS", hide_env_values = true)]
    pub moonlight_credentials: String,
    #[arg(long, env = "HELIX_E2E_EMAIL", default_value = "e2e@helix.local")]
    pub user_email: String,
    #[arg(long, env = "HELIX_E2E_PASSWORD", hide_env_values = true)]
    pub user_password: String,
}

impl Layout {
    pub fn fault_set(&self) -> faults::FaultSet {
        faults::FaultSet::new(&self.faults)
    }

    pub fn wolf_socket(&self) -> PathBuf {
        self.dir.join("wolf.sock")
    }

    /// The stand-in's own switchboard while it runs (`faults::CONTROL_FILE`).
    pub fn control_file(&self) -> PathBuf {
        self.dir.join(faults::CONTROL_FILE)
    }

    /// The command-line flags that reproduce this layout, secrets excepted (they travel in
    /// the environment, see [`Layout::env`]).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--dir".into(),
            self.dir.display().to_string(),
            "--wolf-http-port".into(),
            self.wolf_http_port.to_string(),
            "--wolf-stream-port".into(),
            self.wolf_stream_port.to_string(),
            "--moonlight-web-port".into(),
            self.moonlight_web_port.to_string(),
            "--api-port".into(),
            self.api_port.to_string(),
        ];
        for f in &self.faults {
            a.push("--fault".into());
            a.push(f.to_string());
        }
        a
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MOONLIGHT_CREDENTIALS", self.moonlight_credentials.clone()),
            ("HELIX_E2E_EMAIL", self.user_email.clone()),
            ("HELIX_E2E_PASSWORD", self.user_password.clone()),
        ]
    }

    pub fn endpoints(&self, logs: Vec<(String, PathBuf)>) -> Endpoints {
        Endpoints {
            helix_url: format!("http://127.0.0.1:{}", self.api_port),
            moonlight_web_url: format!("http://127.0.0.1:{}", self.moonlight_web_port),
            moonlight_credentials: self.moonlight_credentials.clone(),
            wolf_socket: self.wolf_socket(),
            wolf_moonlight_http: format!("127.0.0.1:{}", self.wolf_http_port),
            user_email: self.user_email.clone(),
            user_password: self.user_password.clone(),
            logs,
        }
    }
}

/// Where a running stand-in can be reached, as the driver needs it. Credentials here are
/// throwaway values of a local test stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    pub helix_url: String,
    pub moonlight_web_url: String,
    pub moonlight_credentials: String,
    pub wolf_socket: PathBuf,
    pub wolf_moonlight_http: String,
    pub user_email: String,
    pub user_password: String,
    /// Service name → log file.
    pub logs: Vec<(String, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RefstackError {
    #[error("reference stack: cannot prepare {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("reference stack: cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RefstackError + '_ {
    move |source| RefstackError::Io { path: path.to_path_buf(), source }
}

async fn listen(port: u16) -> Result<tokio::net::TcpListener, RefstackError> {
    let addr = format!("127.0.0.1:{port}");
    tokio::net::TcpListener::bind(&addr).await.map_err(|source| RefstackError::Bind { addr, source })
}

/// Run one service of the stand-in until the process is told to stop. Its log lines go to
/// stdout in the service's own format, as in a container.
pub async fn serve(service: Service, layout: &Layout, streamer_exe: PathBuf) -> Result<(), RefstackError> {
    std::fs::create_dir_all(&layout.dir).map_err(io_err(&layout.dir))?;
    let faults = layout.fault_set();
    if faults != faults::FaultSet::default() {
        let names: Vec<String> = layout.faults.iter().map(ToString::to_string).collect();
        tracing::info!("{service} with faults: {}", names.join(" "));
    }
    match service {
        Service::Wolf => {
            let log = LogFile::stdout(Style::Wolf);
            let paired = layout.dir.join("wolf-paired.json");
            let audio = layout.dir.join("audio.sock");
            let audio_listener = wolf::audio::bind(&audio).map_err(io_err(&audio))?;
            let displays = layout.dir.join("wolf-displays");
            let wolf = Arc::new(
                wolf::state::WolfState::with_faults(log.clone(), faults)
                    .with_paired_file(paired.clone())
                    .map_err(io_err(&paired))?
                    .with_display_dir(displays.clone())
                    .map_err(io_err(&displays))?
                    .with_audio_socket(audio),
            );
            if let Some(after) = faults.pipeline_lock {
                wolf.lose_type_lock_after(after);
            }
            let socket = layout.wolf_socket();
            let api_listener = wolf::api::bind(&socket).map_err(io_err(&socket))?;
            let stream_listener = listen(layout.wolf_stream_port).await?;
            let http_listener = listen(layout.wolf_http_port).await?;
            tokio::spawn(wolf::api::serve(api_listener, wolf.clone()));
            tokio::spawn(wolf::stream::serve(stream_listener, wolf.clone()));
            tokio::spawn(wolf::moonlight::serve(http_listener, wolf.clone(), layout.wolf_stream_port));
            tokio::spawn(wolf.clone().watchdog());
            tokio::spawn(wolf::audio::serve(audio_listener, faults.audio_disconnect));
            let said = log.clone();
            wolf.faults.follow(layout.control_file(), move |line| said.info(line));
            log.info(format!("Wolf API listening on {}", socket.display()));
            std::future::pending::<()>().await;
        }
        Service::MoonlightWeb => {
            let log = LogFile::stdout(Style::EnvLogger("moonlight_web"));
            let listener = listen(layout.moonlight_web_port).await?;
            let addr = format!("127.0.0.1:{}", layout.moonlight_web_port);
            let config = moonlight_web::MlwConfig {
                credentials: Some(layout.moonlight_credentials.clone()),
                bind_address: addr.clone(),
                webrtc_ice_servers: Vec::new(),
                webrtc_port_range: faults.webrtc_port_range,
                pair_device_name: "roth".into(),
                streamer_path: streamer_exe,
                wolf_http: format!("127.0.0.1:{}", layout.wolf_http_port),
                faults,
            };
            log.info(format!("Listening on {addr}"));
            let live = faults::LiveFaults::new(faults);
            let said = log.clone();
            live.follow(layout.control_file(), move |line| said.info(line));
            moonlight_web::serve_live(listener, config, log, live).await.map_err(|source| RefstackError::Bind { addr, source })?;
        }
        Service::Api => {
            let listener = listen(layout.api_port).await?;
            let cfg = helix::HelixConfig {
                wolf_socket: layout.wolf_socket(),
                moonlight_web: format!("http://127.0.0.1:{}", layout.moonlight_web_port),
                moonlight_credentials: Some(layout.moonlight_credentials.clone()),
                user_email: layout.user_email.clone(),
                user_password: layout.user_password.clone(),
                runner_token: helix::DEFAULT_RUNNER_TOKEN.into(),
                store: layout.dir.join("helix-store.json"),
                faults,
            };
            let addr = format!("127.0.0.1:{}", layout.api_port);
            helix::serve(listener, cfg).await.map_err(|source| RefstackError::Bind { addr, source })?;
        }
    }
    Ok(())
}
