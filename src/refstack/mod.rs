//! The reference stack: a faithful stand-in for Wolf, moonlight-web and the Helix API + viewer.
//!
//! It exists so the driver has a real target on a machine without a GPU, and so every
//! documented failure can be reproduced on demand. The driver never calls into this module: it
//! starts `helix-e2e refstack` as a child process and talks to it through the same interfaces as
//! to the real services.

pub mod faults;
pub mod helix;
pub mod logfile;
pub mod moonlight_web;
pub mod picture;
pub mod streamer;
pub mod wolf;

use crate::refstack::logfile::{LogFile, Style};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to start the stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// Holds the Wolf socket and the service logs.
    pub dir: PathBuf,
    /// The executable that runs `__streamer` (this binary).
    pub streamer_exe: PathBuf,
    pub faults: Vec<faults::Fault>,
}

impl Options {
    /// The switches as each service asks for them.
    pub fn fault_set(&self) -> faults::FaultSet {
        faults::FaultSet::new(&self.faults)
    }
}

/// Where the running stand-in can be reached: what `helix-e2e refstack` prints and the driver
/// reads. Credentials here are throwaway values of a local test stack.
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
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RefstackError + '_ {
    move |source| RefstackError::Io { path: path.to_path_buf(), source }
}

async fn loopback_listener(dir: &Path) -> Result<tokio::net::TcpListener, RefstackError> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(io_err(dir))
}

/// Start Wolf, moonlight-web and Helix on free loopback ports; they run until the process ends.
pub async fn start(opts: &Options) -> Result<Endpoints, RefstackError> {
    std::fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
    let log_path = |name: &str| opts.dir.join(format!("{name}.log"));
    let wolf_log = LogFile::open(&log_path("wolf"), Style::Wolf).map_err(io_err(&opts.dir))?;
    let mlw_log = LogFile::open(&log_path("moonlight-web"), Style::EnvLogger("moonlight_web")).map_err(io_err(&opts.dir))?;

    // Wolf
    let faults = opts.fault_set();
    if faults != faults::FaultSet::default() {
        let names: Vec<String> = opts.faults.iter().map(ToString::to_string).collect();
        tracing::info!("reference stack with faults: {}", names.join(" "));
    }
    let wolf = Arc::new(wolf::state::WolfState::with_faults(wolf_log.clone(), faults.clone()));
    let socket = opts.dir.join("wolf.sock");
    let api_listener = wolf::api::bind(&socket).map_err(io_err(&socket))?;
    let stream_listener = loopback_listener(&opts.dir).await?;
    let stream_port = stream_listener.local_addr().map_err(io_err(&opts.dir))?.port();
    let http_listener = loopback_listener(&opts.dir).await?;
    let wolf_http = http_listener.local_addr().map_err(io_err(&opts.dir))?.to_string();
    tokio::spawn(wolf::api::serve(api_listener, wolf.clone()));
    tokio::spawn(wolf::stream::serve(stream_listener, wolf.clone()));
    tokio::spawn(wolf::moonlight::serve(http_listener, wolf.clone(), stream_port));
    tokio::spawn(wolf.clone().watchdog());
    wolf_log.info(format!("Wolf API listening on {}", socket.display()));

    // moonlight-web
    let credentials = format!("mlw-{}", uuid::Uuid::new_v4().simple());
    let mlw_listener = loopback_listener(&opts.dir).await?;
    let mlw_addr = mlw_listener.local_addr().map_err(io_err(&opts.dir))?;
    let mlw_config = moonlight_web::MlwConfig {
        credentials: Some(credentials.clone()),
        bind_address: mlw_addr.to_string(),
        webrtc_ice_servers: Vec::new(),
        webrtc_port_range: faults.webrtc_port_range,
        pair_device_name: "roth".into(),
        streamer_path: opts.streamer_exe.clone(),
        wolf_http: wolf_http.clone(),
        faults: faults.clone(),
    };
    mlw_log.info(format!("Listening on {mlw_addr}"));
    tokio::spawn(moonlight_web::serve(mlw_listener, mlw_config, mlw_log));

    // Helix
    let helix_listener = loopback_listener(&opts.dir).await?;
    let helix_addr = helix_listener.local_addr().map_err(io_err(&opts.dir))?;
    let user_email = "e2e@helix.local".to_string();
    let user_password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let helix_cfg = helix::HelixConfig {
        wolf_socket: socket.clone(),
        moonlight_web: format!("http://{mlw_addr}"),
        moonlight_credentials: Some(credentials.clone()),
        user_email: user_email.clone(),
        user_password: user_password.clone(),
        runner_token: "oh-hallo-insecure-token".into(),
        session_id_reuse: faults.session_id_reuse,
    };
    tokio::spawn(helix::serve(helix_listener, helix_cfg));

    Ok(Endpoints {
        helix_url: format!("http://{helix_addr}"),
        moonlight_web_url: format!("http://{mlw_addr}"),
        moonlight_credentials: credentials,
        wolf_socket: socket,
        wolf_moonlight_http: wolf_http,
        user_email,
        user_password,
        logs: vec![
            ("wolf".into(), log_path("wolf")),
            ("moonlight-web".into(), log_path("moonlight-web")),
        ],
    })
}
