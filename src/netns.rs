//! Run inside a network namespace of the project's own, so WebRTC media between Chromium and
//! the stand-in never touches the machine's real interfaces (only loopback and a veth pair on
//! TEST-NET-2 addresses that exist nowhere else).
//!
//! The driver re-executes itself under `ip netns exec` when it can (root, `ip` present); the
//! namespace is removed when the child ends, whatever its outcome.

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
    let exe = std::env::current_exe().map_err(|e| NetnsError { name: name.clone(), cmd: "current_exe".into(), detail: e.to_string() })?;
    // Ctrl-C reaches the child directly (same terminal process group); the parent only waits.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV_MARK, &ns.name)
        .status()
        .map_err(|e| NetnsError { name: name.clone(), cmd: "ip netns exec".into(), detail: e.to_string() })?;
    drop(ns);
    Ok(status.code().unwrap_or(2))
}
