//! Docker flavour of service control: the services are containers, bounced through the engine
//! API (bollard) the way `docker compose restart|stop|start|kill` does.
//!
//! The engine is reached over its Unix socket only (`/var/run/docker.sock`, or `DOCKER_HOST` when
//! that is a `unix://` path): the machines this runs on allow loopback traffic only, and a TCP
//! engine endpoint would be a way around that.

pub mod logs;
mod stats;

use super::{ControlError, Service, ServiceControl, READY_DEADLINE};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, RestartPolicyNameEnum};
use bollard::query_parameters::{KillContainerOptions, RestartContainerOptions, StopContainerOptions};
use bollard::Docker;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Seconds a container gets to exit after SIGTERM before the engine kills it; compose's default.
const STOP_GRACE_SECS: i32 = 10;
/// Deadline of one engine call that does not wait on a container (inspect, kill, ping).
const CALL_DEADLINE: Duration = Duration::from_secs(15);
/// A stop or restart waits for the grace period inside the engine; allow for it.
const STOP_DEADLINE: Duration = Duration::from_secs(STOP_GRACE_SECS as u64 + 20);
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Where the engine listens, from `DOCKER_HOST` (as the docker CLI reads it) or the default.
pub fn engine_socket(docker_host: Option<&str>) -> Result<PathBuf, String> {
    match docker_host.map(str::trim).filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(h) => match h.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(format!("DOCKER_HOST={h} is not a unix:// socket path; only a local engine socket is supported")),
        },
    }
}

/// Containers of one deployment, each standing for a [`Service`].
pub struct DockerServices {
    docker: Docker,
    endpoint: String,
    containers: Vec<(Service, String)>,
}

impl DockerServices {
    /// Connect to the local engine (see [`engine_socket`]) and agree on an API version with it;
    /// an engine that is not there is an `Engine` error that says so.
    pub async fn connect(containers: Vec<(Service, String)>) -> Result<Self, ControlError> {
        let host = std::env::var("DOCKER_HOST").ok();
        let socket = engine_socket(host.as_deref()).map_err(|detail| ControlError::Engine { endpoint: host.clone().unwrap_or_default(), detail })?;
        Self::connect_socket(&socket, containers).await
    }

    pub async fn connect_socket(socket: &std::path::Path, containers: Vec<(Service, String)>) -> Result<Self, ControlError> {
        let endpoint = format!("unix://{}", socket.display());
        let engine_err = |detail: String| ControlError::Engine { endpoint: endpoint.clone(), detail };
        // bollard's own timeout covers waiting for response headers only; every call here has
        // its own deadline as well, so this is a backstop above the longest of them.
        let docker = Docker::connect_with_unix(&endpoint, STOP_DEADLINE.as_secs() + 30, bollard::API_DEFAULT_VERSION).map_err(|e| {
            engine_err(match e {
                bollard::errors::Error::SocketNotFoundError(_) => "no socket there: is Docker running? (`systemctl start docker`; on a machine that allows loopback only, `bash e2e/reference/engine.sh start`)".to_string(),
                other => other.to_string(),
            })
        })?;
        // Engines refuse clients newer than themselves (Debian's docker.io 20.10 speaks API
        // 1.41); bollard starts at its newest.
        let docker = match tokio::time::timeout(CALL_DEADLINE, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(engine_err(format!("does not answer: {e}"))),
            Err(_) => return Err(engine_err(format!("no answer within {} s", CALL_DEADLINE.as_secs()))),
        };
        Ok(Self { docker, endpoint, containers })
    }

    /// From a target file's `[containers]` table (service name → container name).
    pub async fn for_target(containers: &[(String, String)]) -> Result<Self, ControlError> {
        let mut list = Vec::new();
        for (service, container) in containers {
            let s: Service = service.parse().map_err(|detail| ControlError::Engine { endpoint: "(target file [containers])".into(), detail })?;
            list.push((s, container.clone()));
        }
        Self::connect(list).await
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn containers(&self) -> &[(Service, String)] {
        &self.containers
    }

    /// The engine client, for log capture and tests.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Ask the engine whether it is there, with a deadline.
    pub async fn check_engine(&self) -> Result<(), ControlError> {
        match tokio::time::timeout(CALL_DEADLINE, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.engine_err(e.to_string())),
            Err(_) => Err(self.engine_err(format!("no answer to ping within {} s", CALL_DEADLINE.as_secs()))),
        }
    }

    fn engine_err(&self, detail: String) -> ControlError {
        ControlError::Engine { endpoint: self.endpoint.clone(), detail }
    }

    fn container(&self, service: Service) -> Result<&str, ControlError> {
        self.containers
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, c)| c.as_str())
            .ok_or_else(|| ControlError::Unknown { service, detail: "no container is named for it in the target's [containers] table".into() })
    }

    /// Run one engine call under a deadline; transport failures become `Engine` errors, the
    /// engine's own answers (no such container, ...) `Failed` ones naming the container.
    async fn call<T>(
        &self,
        service: Service,
        action: &'static str,
        deadline: Duration,
        fut: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, ControlError> {
        let container = self.container(service)?;
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(service, action, container, e)),
            Err(_) => Err(ControlError::Failed {
                service,
                action,
                detail: format!("container {container}: no answer from the engine within {} s", deadline.as_secs()),
            }),
        }
    }

    fn classify(&self, service: Service, action: &'static str, container: &str, e: bollard::errors::Error) -> ControlError {
        match e {
            bollard::errors::Error::DockerResponseServerError { status_code, message } => {
                ControlError::Failed { service, action, detail: format!("container {container}: engine answered {status_code}: {message}") }
            }
            other => self.engine_err(format!("{action} of container {container}: {other}")),
        }
    }

    async fn inspect(&self, service: Service, action: &'static str) -> Result<ContainerInspectResponse, ControlError> {
        let name = self.container(service)?.to_string();
        self.call(service, action, CALL_DEADLINE, self.docker.inspect_container(&name, None)).await
    }

    /// Wait until the container runs (and is healthy, where it has a health check). `previous`
    /// is the start time seen before a restart: a container still on that run has not restarted.
    async fn wait_ready(&self, service: Service, action: &'static str, previous: Option<String>) -> Result<(), ControlError> {
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            let info = self.inspect(service, action).await?;
            let seen = Seen::of(&info);
            let fresh = previous.is_none() || seen.started_at != previous;
            if fresh && seen.running && seen.health.as_ref().is_none_or(|h| h == "healthy") {
                return Ok(());
            }
            if seen.gone_for_good() {
                return Err(ControlError::NotReady { service, action, secs: 0.0, last: Some(seen.describe()) });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError::NotReady { service, action, secs: READY_DEADLINE.as_secs_f64(), last: Some(seen.describe()) });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Wait until the container no longer runs.
    async fn wait_down(&self, service: Service, action: &'static str) -> Result<(), ControlError> {
        let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
        loop {
            let seen = Seen::of(&self.inspect(service, action).await?);
            if !seen.running {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError::Failed {
                    service,
                    action,
                    detail: format!("still running {} s later ({})", STOP_DEADLINE.as_secs(), seen.describe()),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn do_restart(&self, service: Service) -> Result<(), ControlError> {
        let before = Seen::of(&self.inspect(service, "restart").await?).started_at;
        let name = self.container(service)?.to_string();
        let opts = RestartContainerOptions { t: Some(STOP_GRACE_SECS), signal: None };
        self.call(service, "restart", STOP_DEADLINE, self.docker.restart_container(&name, Some(opts))).await?;
        self.wait_ready(service, "restart", before).await
    }

    async fn do_stop(&self, service: Service) -> Result<(), ControlError> {
        let name = self.container(service)?.to_string();
        let opts = StopContainerOptions { t: Some(STOP_GRACE_SECS), signal: None };
        // The engine answers 304 for a container already stopped; bollard treats that as success.
        self.call(service, "stop", STOP_DEADLINE, self.docker.stop_container(&name, Some(opts))).await?;
        self.wait_down(service, "stop").await
    }

    async fn do_start(&self, service: Service) -> Result<(), ControlError> {
        let name = self.container(service)?.to_string();
        self.call(service, "start", CALL_DEADLINE, self.docker.start_container(&name, None)).await?;
        self.wait_ready(service, "start", None).await
    }

    async fn do_kill(&self, service: Service) -> Result<(), ControlError> {
        let name = self.container(service)?.to_string();
        let opts = KillContainerOptions { signal: "SIGKILL".into() };
        match tokio::time::timeout(CALL_DEADLINE, self.docker.kill_container(&name, Some(opts))).await {
            Ok(Ok(())) => {}
            // 409 "is not running": it is down already, which is what a kill is for.
            Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. })) => {}
            Ok(Err(e)) => return Err(self.classify(service, "kill", &name, e)),
            Err(_) => {
                return Err(ControlError::Failed {
                    service,
                    action: "kill",
                    detail: format!("container {name}: no answer from the engine within {} s", CALL_DEADLINE.as_secs()),
                })
            }
        }
        self.wait_down(service, "kill").await
    }

    /// Follow the logs of the containers of `services` from `since` on, into `dest` (see [`logs`]):
    /// files for a run's artifacts, or straight onto a timeline for a watch, which runs for days
    /// and must keep no copy.
    pub fn follow_logs(&self, services: &[Service], since: std::time::SystemTime, dest: logs::Dest) -> logs::LogCapture {
        let list = self.containers.iter().filter(|(s, _)| services.contains(s)).map(|(s, c)| (s.name().to_string(), c.clone())).collect();
        logs::LogCapture::start(self.docker.clone(), list, since, dest)
    }
}

/// What one inspection says about a container, as far as readiness goes.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    status: String,
    running: bool,
    started_at: Option<String>,
    health: Option<String>,
    exit_code: Option<i64>,
    restarts_itself: bool,
    last_probe: Option<String>,
}

impl Seen {
    fn of(info: &ContainerInspectResponse) -> Seen {
        let state = info.state.as_ref();
        let health = state.and_then(|s| s.health.as_ref());
        Seen {
            status: state.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default(),
            running: state.and_then(|s| s.running).unwrap_or(false) && state.and_then(|s| s.status) == Some(ContainerStateStatusEnum::RUNNING),
            started_at: state.and_then(|s| s.started_at.clone()),
            // A container without a health check reports none (or nothing at all).
            health: health.and_then(|h| h.status).filter(|s| !matches!(s, HealthStatusEnum::NONE | HealthStatusEnum::EMPTY)).map(|s| s.to_string()),
            exit_code: state.and_then(|s| s.exit_code),
            restarts_itself: info
                .host_config
                .as_ref()
                .and_then(|h| h.restart_policy.as_ref())
                .and_then(|p| p.name)
                .is_some_and(|n| !matches!(n, RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO)),
            last_probe: health.and_then(|h| h.log.as_ref()).and_then(|l| l.last()).and_then(|r| r.output.clone()).map(|o| o.trim().chars().take(200).collect()),
        }
    }

    /// Exited and nothing will start it again: waiting longer cannot help.
    fn gone_for_good(&self) -> bool {
        matches!(self.status.as_str(), "exited" | "dead") && !self.restarts_itself
    }

    fn describe(&self) -> String {
        let mut s = if self.status.is_empty() { "state unknown".to_string() } else { self.status.clone() };
        if !self.running {
            if let Some(code) = self.exit_code {
                s.push_str(&format!(", exit code {code}"));
            }
        }
        if let Some(h) = &self.health {
            s.push_str(&format!(", health {h}"));
            if h != "healthy" {
                if let Some(p) = self.last_probe.as_ref().filter(|p| !p.is_empty()) {
                    s.push_str(&format!(" (last probe: {p})"));
                }
            }
        }
        s
    }
}

impl ServiceControl for DockerServices {
    fn describe(&self) -> String {
        let names: Vec<String> = self.containers.iter().map(|(s, c)| format!("{s}={c}")).collect();
        format!("Docker containers via {} ({})", self.endpoint, names.join(", "))
    }

    fn restart(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        self.do_restart(service).boxed()
    }

    fn stop(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        self.do_stop(service).boxed()
    }

    fn start(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        self.do_start(service).boxed()
    }

    fn kill(&self, service: Service) -> BoxFuture<'_, Result<(), ControlError>> {
        self.do_kill(service).boxed()
    }

    fn resources(&self) -> BoxFuture<'_, Vec<crate::sut::replies::ResourceSample>> {
        async move { futures::future::join_all(self.containers.iter().map(|(s, _)| self.container_resources(*s))).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_socket_comes_from_docker_host_when_it_is_a_unix_path() {
        assert_eq!(engine_socket(None), Ok(PathBuf::from("/var/run/docker.sock")));
        assert_eq!(engine_socket(Some("")), Ok(PathBuf::from("/var/run/docker.sock")));
        assert_eq!(engine_socket(Some("unix:///tmp/d.sock")), Ok(PathBuf::from("/tmp/d.sock")));
        let err = engine_socket(Some("tcp://127.0.0.1:2375")).unwrap_err();
        assert!(err.contains("not a unix://"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_socket_is_an_engine_error_that_says_what_to_do() {
        let err =
            DockerServices::connect_socket(std::path::Path::new("/nonexistent/docker.sock"), vec![]).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("unix:///nonexistent/docker.sock") && err.contains("is Docker running?"), "{err}");
        // A path that is there but no engine.
        let err = DockerServices::connect_socket(std::path::Path::new("/dev/null"), vec![]).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("Docker engine at unix:///dev/null: does not answer"), "{err}");
    }

    #[test]
    fn readiness_reads_state_health_and_restart_policy() {
        let info: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "State": {"Status": "running", "Running": true, "StartedAt": "2026-11-21T07:00:00.1Z",
                      "Health": {"Status": "starting", "Log": [{"ExitCode": 1, "Output": "connect refused\n"}]}},
            "HostConfig": {"RestartPolicy": {"Name": "no"}}
        }))
        .unwrap();
        let seen = Seen::of(&info);
        assert!(seen.running);
        assert_eq!(seen.health.as_deref(), Some("starting"));
        assert_eq!(seen.describe(), "running, health starting (last probe: connect refused)");
        let info: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "State": {"Status": "exited", "Running": false, "ExitCode": 2}, "HostConfig": {"RestartPolicy": {"Name": ""}}
        }))
        .unwrap();
        let seen = Seen::of(&info);
        assert!(seen.gone_for_good());
        assert_eq!(seen.describe(), "exited, exit code 2");
        let info: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "State": {"Status": "exited", "Running": false, "ExitCode": 2}, "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}
        }))
        .unwrap();
        assert!(!Seen::of(&info).gone_for_good());
    }

    #[test]
    fn a_service_without_a_container_is_named() {
        let Ok(docker) = Docker::connect_with_unix("/dev/null", 1, bollard::API_DEFAULT_VERSION) else {
            panic!("connect_with_unix only checks that the path exists");
        };
        let d = DockerServices { docker, endpoint: "unix:///dev/null".into(), containers: vec![(Service::Wolf, "w".into())] };
        let err = d.container(Service::Api).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("api:") && err.contains("[containers]"), "{err}");
        assert_eq!(d.container(Service::Wolf).ok(), Some("w"));
    }
}
