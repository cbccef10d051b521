//! The process a user starts supervises; the run happens in a child of it.
//!
//! Why two processes: a run owns things the kernel does not clean up when a process dies — a
//! network namespace, a temp directory holding unredacted logs and login tokens, Chromium's
//! process tree (which chromiumoxide starts without a parent-death signal), the stand-in's
//! services and streamers. Whatever signal hits whichever process, one of the two survives to
//! clean up:
//!
//! - The supervisor creates the namespace and a private temp root (`TMPDIR` of the child, so
//!   every temp file of the run, Chromium's profile included, lives below it), becomes a *child
//!   subreaper* (orphans of the run are re-parented to it, not to init) and starts the child in
//!   the namespace, in a process group of its own, with SIGTERM as its parent-death signal.
//! - SIGINT, SIGTERM and SIGHUP reaching the supervisor — alone (`kill PID`) or with its group (a
//!   terminal's Ctrl-C, a CI runner's cancel, `docker stop`) — are forwarded to the child once.
//!   The child is in another group, so a group signal never reaches it twice, and Chromium and
//!   the services never see it: the child stops them in order. If the child has not exited
//!   [`BACKSTOP`] after the first signal, it is killed.
//! - When the child exits, however it exits (SIGKILL included), the supervisor kills whatever it
//!   left (every process re-parented here), deletes the namespace and the temp root.
//! - When the supervisor dies (SIGKILL), the child gets SIGTERM from the kernel, ends the run as
//!   interrupted, and deletes the namespace and temp root itself ([`Inner::cleanup`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Set in the child: `<namespace>|<owned 0/1>|<temp root>`. Its presence means "you are the run".
pub const ENV_INNER: &str = "HELIX_E2E_INNER";

/// How long the child gets to end its run after the first forwarded signal before it is killed
/// (the run's own interrupted path takes about 1–3 s; users and CI expect an end within 5 s).
pub const BACKSTOP: Duration = Duration::from_millis(4500);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// Where the run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsChoice {
    /// A fresh namespace of our own, deleted at the end.
    Fresh,
    /// An existing one made by someone else (e.g. `e2e/reference/engine.sh`); left in place.
    Join(String),
    /// The machine's own network.
    Host,
}

/// What the child knows about the run's supervision (from [`ENV_INNER`]).
#[derive(Debug, Clone)]
pub struct Inner {
    netns: Option<String>,
    owned_netns: bool,
    temp_root: PathBuf,
}

impl Inner {
    /// `Some` in the child of a supervisor.
    pub fn from_env() -> Option<Inner> {
        Inner::parse(&std::env::var(ENV_INNER).ok()?)
    }

    fn parse(v: &str) -> Option<Inner> {
        let mut parts = v.splitn(3, '|');
        let ns = parts.next()?.to_string();
        let owned = parts.next()? == "1";
        let temp_root = PathBuf::from(parts.next()?);
        Some(Inner { netns: (!ns.is_empty()).then_some(ns), owned_netns: owned, temp_root })
    }

    fn encode(netns: Option<&str>, owned: bool, temp_root: &Path) -> String {
        format!("{}|{}|{}", netns.unwrap_or(""), if owned { 1 } else { 0 }, temp_root.display())
    }

    /// Delete what the supervisor would: the namespace (if the run made it) and the temp root.
    /// Called at the end of the child's run; harmless when the supervisor does it again.
    pub fn cleanup(&self) {
        remove_owned(self.netns.as_deref().filter(|_| self.owned_netns), &self.temp_root);
    }
}

fn remove_owned(netns: Option<&str>, temp_root: &Path) {
    if let Some(name) = netns {
        crate::netns::delete(name);
    }
    if let Err(e) = std::fs::remove_dir_all(temp_root) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %temp_root.display(), error = %e, "could not remove the run's temp directory");
        }
    }
}

/// Labels an I/O error with what the supervisor was doing.
fn io(what: &str) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let what = what.to_string();
    move |source| SupervisorError::Io { what, source }
}

/// Run this very command again as a supervised child and return the exit code to use.
pub fn supervise(choice: NetnsChoice) -> Result<i32, SupervisorError> {
    let pid = std::process::id();
    let temp_root = std::env::temp_dir().join(format!("helix-e2e-{pid}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir(&temp_root).map_err(io("creating the run's temp directory"))?;
    std::fs::set_permissions(&temp_root, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(io("restricting the run's temp directory"))?;
    let (netns, owned) = match &choice {
        NetnsChoice::Fresh => {
            let name = format!("helix-e2e-{pid}");
            if let Err(e) = crate::netns::create(&name) {
                remove_owned(None, &temp_root);
                return Err(e.into());
            }
            (Some(name), true)
        }
        NetnsChoice::Join(name) => (Some(name.clone()), false),
        NetnsChoice::Host => (None, false),
    };
    let result = run_child(netns.as_deref(), owned, &temp_root);
    reap_orphans();
    remove_owned(netns.as_deref().filter(|_| owned), &temp_root);
    result
}

fn run_child(netns: Option<&str>, owned: bool, temp_root: &Path) -> Result<i32, SupervisorError> {
    // SAFETY: prctl on this process only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let ns_file = match netns {
        Some(name) => Some(crate::netns::open(name)?),
        None => None,
    };
    let exe = std::env::current_exe().map_err(io("locating the helix-e2e executable"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(ENV_INNER, Inner::encode(netns, owned, temp_root)).env("TMPDIR", temp_root).process_group(0);
    let ns_fd = ns_file.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = ns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The supervisor may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io("starting the supervisor's runtime"))?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut child = tokio::process::Command::from(cmd).spawn().map_err(io("starting the run"))?;
        drop(ns_file);
        let child_pid = child.id().unwrap_or(0) as libc::pid_t;
        let mut int = signal(SignalKind::interrupt()).map_err(io("listening for SIGINT"))?;
        let mut term = signal(SignalKind::terminate()).map_err(io("listening for SIGTERM"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io("listening for SIGHUP"))?;
        let mut backstop: Option<tokio::time::Instant> = None;
        let status = loop {
            let forward = tokio::select! {
                s = child.wait() => break s.map_err(io("waiting for the run"))?,
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
                _ = sleep_until(backstop) => {
                    eprintln!("helix-e2e: the run did not end within {:.1} s of the signal; killing it", BACKSTOP.as_secs_f64());
                    // SAFETY: the child's own process group.
                    unsafe { libc::kill(-child_pid, libc::SIGKILL) };
                    backstop = None;
                    continue;
                }
            };
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child_pid, forward) };
            backstop.get_or_insert_with(|| tokio::time::Instant::now() + BACKSTOP);
        };
        Ok(exit_code(status))
    })
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The child's exit code; a child killed by a signal never wrote its verdict, so it is an error.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => {
            eprintln!("helix-e2e: the run process was killed by signal {sig}; what it left behind was cleaned up");
            2
        }
        _ => 2,
    }
}

/// Kill and reap every process re-parented to this subreaper (what the run left behind), until
/// none is left or a deadline passes.
fn reap_orphans() {
    let me = std::process::id();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let kids = crate::procs::children_of(me);
        for &pid in &kids {
            // SAFETY: our own children: their pids cannot be reused before we reap them.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        // SAFETY: reaping our own children without blocking.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if kids.is_empty() || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_settings_round_trip() {
        let inner = Inner::parse(&Inner::encode(Some("helix-e2e-7"), true, Path::new("/tmp/helix-e2e-7-abcd"))).unwrap();
        assert_eq!((inner.netns.as_deref(), inner.owned_netns, inner.temp_root.as_path()), (Some("helix-e2e-7"), true, Path::new("/tmp/helix-e2e-7-abcd")));
        let host = Inner::parse(&Inner::encode(None, false, Path::new("/tmp/x|y"))).unwrap();
        assert_eq!((host.netns, host.owned_netns, host.temp_root), (None, false, PathBuf::from("/tmp/x|y")));
        assert!(Inner::parse("garbage").is_none());
    }
}
