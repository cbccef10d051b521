//! What a container holds, for leak trends (F20): memory from the engine's stats, open
//! descriptors from `/proc` through the container's main pid where this host can see it.

use super::{DockerServices, CALL_DEADLINE};
use crate::sut::control::Service;
use crate::sut::replies::{Part, ResourceSample};

impl DockerServices {
    /// A container's memory from the engine's stats (usage less inactive page cache, as `docker
    /// stats` shows it) and its main process's descriptors from `/proc`, where its pid is
    /// visible from here (an engine in a VM or another pid namespace hides it: said so).
    pub(super) async fn container_resources(&self, service: Service) -> ResourceSample {
        use futures::StreamExt;
        let mut sample = ResourceSample { service, part: Part::Main, processes: 0, fds: None, memory_bytes: None, unavailable: Vec::new() };
        let name = match self.container(service) {
            Ok(n) => n.to_string(),
            Err(e) => {
                sample.unavailable.push(e.to_string());
                return sample;
            }
        };
        let opts = bollard::query_parameters::StatsOptions { stream: false, one_shot: true };
        let stats = self
            .call(service, "stats", CALL_DEADLINE, async {
                self.docker.stats(&name, Some(opts)).next().await.unwrap_or(Err(bollard::errors::Error::RequestTimeoutError))
            })
            .await;
        match stats {
            Ok(st) => {
                sample.processes = st.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0) as u32;
                match st.memory_stats.as_ref().and_then(|m| Some((m.usage?, m.stats.as_ref().and_then(|s| s.get("inactive_file").copied()).unwrap_or(0)))) {
                    Some((usage, inactive)) => sample.memory_bytes = Some(usage.saturating_sub(inactive)),
                    None => sample.unavailable.push(format!("container {name}: the engine's stats have no memory usage")),
                }
            }
            Err(e) => sample.unavailable.push(e.to_string()),
        }
        match self.inspect(service, "inspect").await.map(|i| i.state.and_then(|s| s.pid).filter(|p| *p > 0)) {
            Ok(Some(pid)) => match crate::sut::resources::fds(pid as u32) {
                Ok(n) => sample.fds = Some(n),
                Err(e) => sample.unavailable.push(format!("container {name}'s main process is not visible from here ({e})")),
            },
            Ok(None) => sample.unavailable.push(format!("container {name} is not running")),
            Err(e) => sample.unavailable.push(e.to_string()),
        }
        sample
    }
}
