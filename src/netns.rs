//! Run inside a network namespace of the project's own, so WebRTC media between Chromium and
//! the stand-in never touches the machine's real interfaces (only loopback and a veth pair on
//! TEST-NET-2 addresses that exist nowhere else).
//!
//! The driver re-executes itself under `ip netns exec` when it can (root, `ip` present); the
//! namespace is removed when the child ends, whatever its outcome. With `--netns NAME` it joins
//! an existing namespace instead (where a Docker engine for the containerised stack runs) and
//! leaves it in place.

use std::process::Command;

/// Set in the re-executed child so it does not try again.
pub const ENV_MARK: &str = "HELIX_E2E_NETNS";

#[derive(Debug, thiserror::Error)]
#[error("network namespace {name}: `{cmd}` failed: {detail}")]
pub struct NetnsError {
    pub name: String,
    pub cmd: String,
    pub detail: String,
}

pub fn inside() -> bool {
    std::env::var_os(ENV_MARK).is_some()
}

/// Whether this process may create namespaces.
pub fn available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false)
}

fn ip(name: &str, args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip").args(args).output().map_err(|e| NetnsError { name: name.into(), cmd: format!("ip {}", args.join(" ")), detail: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError { name: name.into(), cmd: format!("ip {}", args.join(" ")), detail: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// A namespace with `lo` and a veth pair whose ends both stay inside, plus a default route
/// (Chromium gathers no candidates without one). Removed on drop.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        let _ = ip(name, &["netns", "del", name]);
        ip(name, &["netns", "add", name])?;
        let ns = Namespace { name: name.to_string() };
        for args in [
            vec!["-n", name, "link", "set", "lo", "up"],
            vec!["-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            vec!["-n", name, "addr", "add", "198.51.100.2/24", "dev", "v0"],
            vec!["-n", name, "addr", "add", "198.51.100.3/24", "dev", "v1"],
            vec!["-n", name, "link", "set", "v0", "up"],
            vec!["-n", name, "link", "set", "v1", "up"],
            vec!["-n", name, "route", "add", "default", "dev", "v0"],
        ] {
            ip(name, &args)?;
        }
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&self.name, &["netns", "del", &self.name]);
    }
}

/// Re-run this very command inside a fresh namespace and return its exit code.
pub fn reexec_inside() -> Result<i32, NetnsError> {
    let name = format!("helix-e2e-{}", std::process::id());
    let ns = Namespace::create(&name)?;
    let code = exec_in(&ns.name);
    drop(ns);
    code
}

/// Re-run this very command inside an existing named namespace (one made by someone else, such
/// as `e2e/reference/engine.sh`, whose Docker engine runs there) and return its exit code. The
/// namespace is left as it was.
pub fn reexec_into(name: &str) -> Result<i32, NetnsError> {
    let path = std::path::Path::new("/var/run/netns").join(name);
    if name.is_empty() || name.contains('/') || !path.exists() {
        return Err(NetnsError { name: name.into(), cmd: "join".into(), detail: format!("{} does not exist (create it first, e.g. `bash e2e/reference/engine.sh start`)", path.display()) });
    }
    exec_in(name)
}

fn exec_in(name: &str) -> Result<i32, NetnsError> {
    let exe = std::env::current_exe().map_err(|e| NetnsError { name: name.into(), cmd: "current_exe".into(), detail: e.to_string() })?;
    // Ctrl-C reaches the child directly (same terminal process group); the parent only waits.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let status = Command::new("ip")
        .args(["netns", "exec", name])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV_MARK, name)
        .status()
        .map_err(|e| NetnsError { name: name.into(), cmd: "ip netns exec".into(), detail: e.to_string() })?;
    Ok(status.code().unwrap_or(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_a_missing_namespace_says_how_to_make_it() {
        let err = reexec_into("helix-e2e-no-such-namespace").unwrap_err().to_string();
        assert!(err.contains("/var/run/netns/helix-e2e-no-such-namespace does not exist") && err.contains("engine.sh start"), "{err}");
        assert!(reexec_into("../etc").is_err());
    }
}
