//! Starting and stopping the Chromium process.
//!
//! Two traps live here. chromiumoxide 0.9 mangles `--flag` arguments (upstream issue #306), so
//! every switch goes in as a bare key or a `(key, value)` pair. And Chromium is a process tree
//! (zygote, renderers, GPU, network service): a run that dies half-way must not leave any of it
//! behind, so stopping falls back to killing every process that descended from the browser.

use super::{deadline, BrowserError, BrowserOptions, CDP_DEADLINE};
use crate::procs::{descendants, Proc};
use chromiumoxide::{BrowserConfig, Handler};
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Switches this machine kind needs (see the project's browser notes): no outside traffic, no
/// QUIC, no GPU, and media that plays without a user gesture.
const SWITCHES: &[&str] = &[
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "no-first-run",
    "disable-quic",
    "disable-gpu",
    "use-fake-ui-for-media-stream",
];
const VALUED_SWITCHES: &[(&str, &str)] = &[("autoplay-policy", "no-user-gesture-required")];

/// What Chromium appends to its TMPDIR for its singleton socket:
/// `/org.chromium.Chromium.XXXXXX/SingletonSocket`.
const SINGLETON_SUFFIX_LEN: usize = 46;

/// How long Chromium gets to print its DevTools address.
const LAUNCH_DEADLINE: Duration = Duration::from_secs(30);
/// How long a polite `Browser.close` plus process exit may take before the tree is killed.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

pub(super) struct Launched {
    pub browser: chromiumoxide::Browser,
    pub handler: JoinHandle<()>,
    pub pid: u32,
    pub temp_dir: Option<PathBuf>,
}

pub(super) async fn start(opts: &BrowserOptions) -> Result<Launched, BrowserError> {
    if !opts.executable.exists() {
        return Err(BrowserError::MissingExecutable(opts.executable.clone()));
    }
    let (data_dir, temp_dir) = match &opts.user_data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("helix-e2e-chromium-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
            (d.clone(), Some(d))
        }
    };
    std::fs::create_dir_all(&data_dir)?;
    let remove_temp = |temp: &Option<PathBuf>| {
        if let Some(d) = temp {
            let _ = std::fs::remove_dir_all(d);
        }
    };

    let mut builder = BrowserConfig::builder()
        .chrome_executable(&opts.executable)
        .no_sandbox()
        .user_data_dir(&data_dir)
        .viewport(None)
        .window_size(opts.window.0, opts.window.1)
        .launch_timeout(LAUNCH_DEADLINE)
        .request_timeout(CDP_DEADLINE);
    builder = if opts.headless { builder.new_headless_mode() } else { builder.with_head() };
    // Chromium's own temp files (its singleton socket among them) go inside the profile we remove,
    // not into the machine's /tmp, where a killed browser would leave them.
    // The socket's path must fit a Unix socket address (108 bytes); where the profile's path is
    // too long for that, Chromium keeps the inherited TMPDIR (a supervised run's is private).
    if let Some(d) = temp_dir.as_ref().filter(|d| d.as_os_str().len() + SINGLETON_SUFFIX_LEN < 108) {
        builder = builder.env("TMPDIR", d.display().to_string());
    }
    for s in SWITCHES {
        builder = builder.arg(*s);
    }
    for (k, v) in VALUED_SWITCHES {
        builder = builder.arg((*k, *v));
    }
    for extra in &opts.extra_args {
        let extra = extra.trim_start_matches('-');
        builder = match extra.split_once('=') {
            Some((k, v)) => builder.arg((k, v)),
            None => builder.arg(extra),
        };
    }
    let config = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            remove_temp(&temp_dir);
            return Err(BrowserError::Launch(e));
        }
    };

    // chromiumoxide enforces its own launch timeout; the outer one guards the rest of the setup.
    let launched = tokio::time::timeout(LAUNCH_DEADLINE + Duration::from_secs(5), chromiumoxide::Browser::launch(config)).await;
    let (mut browser, handler) = match launched {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            remove_temp(&temp_dir);
            return Err(BrowserError::Launch(e.to_string()));
        }
        Err(_) => {
            remove_temp(&temp_dir);
            return Err(BrowserError::Timeout { what: "chromium launch".into(), after: LAUNCH_DEADLINE });
        }
    };
    let pid = browser.get_mut_child().and_then(|c| c.as_mut_inner().id());
    let Some(pid) = pid else {
        let _ = browser.kill().await;
        remove_temp(&temp_dir);
        return Err(BrowserError::Launch("chromium exited right after start".into()));
    };
    Ok(Launched { browser, handler: tokio::spawn(drive(handler)), pid, temp_dir })
}

/// Polls the DevTools connection for as long as it lives. One bad message (Chromium 156 sends
/// events the generated types do not know) must not stop it: every page would hang otherwise.
pub(super) async fn drive(mut handler: Handler) {
    let mut consecutive_errors = 0u32;
    while let Some(item) = handler.next().await {
        match item {
            Ok(()) => consecutive_errors = 0,
            Err(e) => {
                consecutive_errors += 1;
                tracing::debug!(error = %e, "chromium handler error");
                // A dead socket repeats its error forever; only then give up.
                if consecutive_errors > 1000 {
                    tracing::warn!(error = %e, "chromium connection keeps failing; handler stops");
                    break;
                }
            }
        }
    }
    tracing::debug!("chromium handler ended");
}

/// Asks Chromium to quit and waits for it; kills the tree when it takes too long. Either way,
/// stray children that outlived the browser process are killed too.
pub(super) async fn stop(mut browser: chromiumoxide::Browser, pid: u32) -> Result<(), BrowserError> {
    let tree = descendants(pid);
    let polite = deadline("close chromium", EXIT_DEADLINE, async {
        if let Err(e) = browser.close().await {
            tracing::debug!(error = %e, "Browser.close failed; waiting for exit anyway");
        }
        browser.wait().await.map_err(BrowserError::Io)
    })
    .await;
    let result = match polite {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(pid, error = %e, "chromium did not exit; killing it");
            kill_tree(pid);
            match deadline("reap chromium", EXIT_DEADLINE, async { browser.wait().await.map_err(BrowserError::Io) }).await {
                Ok(_) => Ok(()),
                Err(e2) => Err(e2),
            }
        }
    };
    // Children are reparented once the browser exits; they normally follow it within a few
    // hundred ms (a hung renderer never does).
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while tree.iter().any(|p| p.alive()) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in tree.iter().filter(|p| p.alive()) {
        tracing::warn!(pid = p.pid, "chromium child outlived the browser; killing it");
        p.kill();
    }
    result
}

/// How the browser process ended, once it has; `None` while it runs. Checked without reaping
/// it (`WNOWAIT`), so chromiumoxide's own `wait` still works.
pub(super) fn exit_of(pid: u32) -> Option<String> {
    // SAFETY: waitid fills a zeroed siginfo_t for a child of ours; no other memory is touched.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    if r != 0 {
        // Reaped already, or never ours: it is gone either way.
        return Some("is gone".into());
    }
    // SAFETY: the fields of a siginfo_t filled by waitid for SIGCHLD.
    let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
    if child == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => format!("exited with code {status}"),
        libc::CLD_KILLED | libc::CLD_DUMPED => format!("was killed by signal {status}"),
        _ => "ended".into(),
    })
}

/// Synchronous last resort for `Drop`: SIGKILL the browser and everything below it.
pub(super) fn kill_tree(pid: u32) {
    let mut tree = descendants(pid);
    if let Some(root) = Proc::read(pid) {
        tree.insert(0, root);
    }
    for p in &tree {
        p.kill();
    }
}
