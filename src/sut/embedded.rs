//! Start the embedded reference stack as a child process (`helix-e2e refstack`) and learn where
//! it listens. The driver never links to the stand-in's code paths at run time: it only reads
//! the announced endpoints and talks to them.

use crate::refstack::Endpoints;
use std::path::{Path, PathBuf};
use std::time::Duration;

const START_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot start the reference stack ({exe}): {source}")]
    Spawn { exe: PathBuf, source: std::io::Error },
    #[error("the reference stack exited before it was ready ({status}); see {log}")]
    Exited { status: String, log: PathBuf },
    #[error("the reference stack did not announce its endpoints within {0:?}")]
    Timeout(Duration),
}

pub struct EmbeddedStack {
    child: tokio::process::Child,
    dir: PathBuf,
    pub endpoints: Endpoints,
}

impl EmbeddedStack {
    /// `dir` receives the socket, the service logs and the announce file.
    pub async fn start(exe: &Path, dir: &Path, extra_args: &[String]) -> Result<Self, EmbeddedError> {
        let spawn_err = |source| EmbeddedError::Spawn { exe: exe.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(spawn_err)?;
        let announce = dir.join("endpoints.json");
        let _ = std::fs::remove_file(&announce);
        let stderr_log = dir.join("refstack.stderr.log");
        let stderr = std::fs::File::create(&stderr_log).map_err(spawn_err)?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("refstack").arg("--dir").arg(dir).arg("--announce").arg(&announce).args(extra_args);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(stderr);
        cmd.kill_on_drop(true).process_group(0);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&announce) {
                if let Ok(endpoints) = serde_json::from_str::<Endpoints>(&text) {
                    return Ok(Self { child, dir: dir.to_path_buf(), endpoints });
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EmbeddedError::Exited { status: status.to_string(), log: stderr_log });
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(EmbeddedError::Timeout(START_DEADLINE));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop the stack and every process it started (its process group).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            unsafe {
                libc::kill(-(pid as i32), libc::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await.is_err() {
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
        }
        let _ = self.child.wait().await;
    }
}
