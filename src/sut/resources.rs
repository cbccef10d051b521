//! What a service holds: open file descriptors and resident memory, read from `/proc` (the
//! stand-in's processes, and a container's main process where its pid is visible from here).
//!
//! Why `/proc` and not a crate: a directory count and one line of `statm` per process are all
//! a leak trend needs, sampled once a second, and they cost microseconds. A process that
//! vanished between listing and reading (a streamer ending) is simply not counted.

use super::replies::{Part, ResourceSample};
use helix_e2e_shared::Service;

/// Open descriptors of `pid` (the entries of `/proc/<pid>/fd`).
pub fn fds(pid: u32) -> Result<u64, String> {
    let dir = format!("/proc/{pid}/fd");
    std::fs::read_dir(&dir).map(|d| d.count() as u64).map_err(|e| format!("{dir}: {e}"))
}

/// Resident memory of `pid` in bytes (`/proc/<pid>/statm`'s second field, in pages).
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/statm");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let pages: u64 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).ok_or_else(|| format!("{path}: no resident size in {text:?}"))?;
    Ok(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running kernel.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// The direct children of `pid`, from every one of its threads (a child is listed under the
/// thread that forked it, and tokio forks from its workers).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out: Vec<u32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// One process as a service's [`Part::Main`] sample.
pub fn of_process(service: Service, pid: u32) -> ResourceSample {
    let mut unavailable = Vec::new();
    let fds = fds(pid).map_err(|e| unavailable.push(e)).ok();
    let memory_bytes = rss_bytes(pid).map_err(|e| unavailable.push(e)).ok();
    ResourceSample { service, part: Part::Main, processes: 1, fds, memory_bytes, unavailable }
}

/// The children of `pid` summed, as its [`Part::Streamers`] sample: no streamer is zero of each.
pub fn of_children(service: Service, pid: u32) -> ResourceSample {
    let (mut processes, mut fd_sum, mut mem_sum) = (0, 0, 0);
    for child in children(pid) {
        // A child that ended between the listing and the reading is not counted at all.
        if let (Ok(f), Ok(m)) = (fds(child), rss_bytes(child)) {
            processes += 1;
            fd_sum += f;
            mem_sum += m;
        }
    }
    ResourceSample { service, part: Part::Streamers, processes, fds: Some(fd_sum), memory_bytes: Some(mem_sum), unavailable: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_descriptors_memory_and_its_children_are_found() {
        let me = std::process::id();
        let s = of_process(Service::Api, me);
        assert!(s.fds.is_some_and(|n| n >= 3) && s.memory_bytes.is_some_and(|m| m > 1 << 20), "{s:?}");
        let before = fds(me).unwrap();
        let extra: Vec<std::fs::File> = (0..5).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
        assert!(fds(me).unwrap() >= before + 5, "the five opened files are counted");
        drop(extra);
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let kids = of_children(Service::MoonlightWeb, me);
        assert!(kids.processes >= 1 && kids.fds.is_some_and(|n| n > 0), "{kids:?}");
        let _ = child.kill();
        let _ = child.wait();
        assert!(fds(u32::MAX).unwrap_err().contains("/proc/4294967295/fd"));
    }
}
