//! The embedded reference stack as three supervised child processes (`helix-e2e service
//! wolf|moonlight-web|api`), one process group each.
//!
//! A restart kills a service's whole group (moonlight-web's streamers go with it, as they do
//! with its container) and starts it again on the same ports, so it comes back knowing nothing
//! it kept in memory, exactly like the real service. Each service's stdout and stderr are
//! appended to `<dir>/<service>.log` across restarts; the monitor follows those files.

use super::{ControlError, Service, ServiceControl, READY_DEADLINE};
use crate::refstack::faults::Fault;
use crate::refstack::{Endpoints, Layout};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How long a service gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

pub struct ProcessStack {
    exe: PathBuf,
    layout: Layout,
    children: Mutex<BTreeMap<Service, Child>>,
    /// The directory is ours (made by [`ProcessStack::start_temp`]) and goes with the stack: it
    /// holds the services' stores (login tokens) and unredacted logs.
    owns_dir: bool,
}

impl ProcessStack {
    /// Start Wolf, moonlight-web and the API (in that order, each ready before the next) on
    /// free loopback ports, sharing `dir`.
    pub async fn start(exe: &Path, dir: &Path, faults: Vec<Fault>) -> Result<Self, ControlError> {
        std::fs::create_dir_all(dir).map_err(|e| ControlError::Failed {
            service: Service::Wolf,
            action: "prepare",
            detail: format!("{}: {e}", dir.display()),
        })?;
        let ports =
            free_ports(4).map_err(|e| ControlError::Failed { service: Service::Wolf, action: "prepare", detail: format!("no free loopback port: {e}") })?;
        let layout = Layout {
            dir: dir.to_path_buf(),
            wolf_http_port: ports[0],
            wolf_stream_port: ports[1],
            moonlight_web_port: ports[2],
            api_port: ports[3],
            faults,
            moonlight_credentials: format!("mlw-{}", uuid::Uuid::new_v4().simple()),
            user_email: "e2e@helix.local".into(),
            user_password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
        };
        let stack = ProcessStack { exe: exe.to_path_buf(), layout, children: Mutex::new(BTreeMap::new()), owns_dir: false };
        for s in Service::ALL {
            if let Err(e) = stack.start_service(s).await {
                stack.shutdown().await;
                return Err(e);
            }
        }
        Ok(stack)
    }

    /// [`ProcessStack::start`] in a fresh temporary directory that is removed when the stack is
    /// dropped (after its services are gone).
    pub async fn start_temp(exe: &Path, faults: Vec<Fault>) -> Result<Self, ControlError> {
        let dir = std::env::temp_dir().join(format!("helix-e2e-stack-{}", uuid::Uuid::new_v4().simple()));
        match Self::start(exe, &dir, faults).await {
            Ok(mut s) => {
                s.owns_dir = true;
                Ok(s)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        self.layout.endpoints(Service::ALL.iter().map(|s| (s.name().to_string(), self.log_path(*s))).collect())
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    fn log_path(&self, s: Service) -> PathBuf {
        self.layout.dir.join(format!("{}.log", s.name()))
    }

    fn spawn(&self, s: Service) -> Result<Child, ControlError> {
        let failed = |detail: String| ControlError::Failed { service: s, action: "start", detail };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(s)).map_err(|e| failed(format!("log file: {e}")))?;
        let log2 = log.try_clone().map_err(|e| failed(format!("log file: {e}")))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("service").arg(s.name()).args(self.layout.args()).envs(self.layout.env());
        cmd.stdin(std::process::Stdio::null()).stdout(log).stderr(log2);
        cmd.kill_on_drop(true).process_group(0);
        // The services must not outlive the driver, whatever kills it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.spawn().map_err(|e| failed(format!("{}: {e}", self.exe.display())))
    }

    async fn start_service(&self, s: Service) -> Result<(), ControlError> {
        let mut children = self.children.lock().await;
        if children.contains_key(&s) {
            return Ok(());
        }
        let mut child = self.spawn(s)?;
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if self.ready(s).await {
                children.insert(s, child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ControlError::Failed {
                    service: s,
                    action: "start",
                    detail: format!("exited ({status}) before it was ready; see {}", self.log_path(s).display()),
                });
            }
            if tokio::time::Instant::now() > deadline {
                kill_group(&mut child, Duration::ZERO).await;
                return Err(ControlError::NotReady {
                    service: s,
                    action: "start",
                    secs: READY_DEADLINE.as_secs_f64(),
                    last: Some(format!("see {}", self.log_path(s).display())),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Listening where its clients connect: the API socket and both TCP ports for Wolf.
    async fn ready(&self, s: Service) -> bool {
        let tcp = |port: u16| async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() };
        match s {
            Service::Wolf => {
                tokio::net::UnixStream::connect(self.layout.wolf_socket()).await.is_ok()
                    && tcp(self.layout.wolf_http_port).await
                    && tcp(self.layout.wolf_stream_port).await
            }
            Service::MoonlightWeb => tcp(self.layout.moonlight_web_port).await,
            Service::Api => tcp(self.layout.api_port).await,
        }
    }

    async fn end(&self, s: Service, grace: Duration) {
        let child = self.children.lock().await.remove(&s);
        if let Some(mut child) = child {
            kill_group(&mut child, grace).await;
        }
    }

    /// Stop every service at once (SIGTERM, then SIGKILL after a grace period).
    pub async fn shutdown(&self) {
        futures::future::join_all(Service::ALL.into_iter().map(|s| self.end(s, STOP_GRACE))).await;
    }

    /// Watch the services for deaths the driver did not cause (it takes a service out of the
    /// watched set before it stops one): each lands in the timeline with its exit status (D2).
    /// Wolf is then started again, as its container's restart policy does in Helix's compose
    /// (F17's chain ends with Wolf restarting); moonlight-web and the API are left down, as a
    /// crashed one would be.
    pub fn watch_deaths(self: &std::sync::Arc<Self>, timeline: crate::timeline::Timeline) -> tokio::task::JoinHandle<()> {
        let stack = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(stack) = stack.upgrade() else { return };
                let mut children = stack.children.lock().await;
                let dead: Vec<(Service, std::process::ExitStatus, Option<u32>)> = children
                    .iter_mut()
                    .filter_map(|(s, c)| {
                        let pid = c.id();
                        c.try_wait().ok().flatten().map(|st| (*s, st, pid))
                    })
                    .collect();
                for (s, _, _) in &dead {
                    children.remove(s);
                }
                drop(children);
                for (s, status, pid) in dead {
                    let detail = format!("{} (pid {}) {status}", s.name(), pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()));
                    tracing::error!("service died: {detail}");
                    timeline.push(crate::timeline::Event::Died { what: crate::timeline::Casualty::Service { service: s.name().to_string() }, detail });
                    if s == Service::Wolf {
                        match stack.start_service(s).await {
                            Ok(()) => tracing::warn!("wolf restarted by its restart policy"),
                            Err(e) => tracing::error!("wolf not restarted: {e}"),
                        }
                    }
                }
            }
        })
    }
}

impl ServiceControl for ProcessStack {
    fn describe(&self) -> String {
        format!("reference stack processes in {}", self.layout.dir.display())
    }

    fn restart(&self, s: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            self.end(s, STOP_GRACE).await;
            self.start_service(s).await
        })
    }

    fn stop(&self, s: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            self.end(s, STOP_GRACE).await;
            Ok(())
        })
    }

    fn start(&self, s: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(self.start_service(s))
    }

    fn kill(&self, s: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            self.end(s, Duration::ZERO).await;
            Ok(())
        })
    }

    /// From `/proc`: each service's own process, and moonlight-web's streamers apart.
    fn resources(&self) -> BoxFuture<'_, Vec<crate::sut::replies::ResourceSample>> {
        Box::pin(async move {
            let pids: Vec<(Service, u32)> = self.children.lock().await.iter().filter_map(|(s, c)| Some((*s, c.id()?))).collect();
            let mut out = Vec::new();
            for (s, pid) in pids {
                out.push(crate::sut::resources::of_process(s, pid));
                if s == Service::MoonlightWeb {
                    out.push(crate::sut::resources::of_children(s, pid));
                }
            }
            out
        })
    }
}

impl Drop for ProcessStack {
    fn drop(&mut self) {
        // Last resort when `shutdown` was not awaited (a panic, an early return): no orphans.
        for child in self.children.get_mut().values() {
            if let Some(pid) = child.id() {
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.layout.dir);
        }
    }
}

/// Signal the child's process group: SIGTERM and a grace period, then SIGKILL.
async fn kill_group(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let group = -(pid as i32);
        if !grace.is_zero() {
            unsafe {
                libc::kill(group, libc::SIGTERM);
            }
            if tokio::time::timeout(grace, child.wait()).await.is_ok() {
                // The leader is gone; its streamers may not be.
                unsafe {
                    libc::kill(group, libc::SIGKILL);
                }
                return;
            }
        }
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
    }
    let _ = tokio::time::timeout(STOP_GRACE, child.wait()).await;
}

/// Ports the kernel hands out now; the services bind them a moment later. Nothing else runs in
/// the driver's namespace to take them in between.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}
