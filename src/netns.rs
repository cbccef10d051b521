//! Network namespaces of the project's own, so WebRTC media between Chromium and the stand-in
//! never touches the machine's real interfaces (only loopback and a veth pair on TEST-NET-2
//! addresses that exist nowhere else).
//!
//! [`crate::supervisor`] creates one per run (or joins an existing one with `--netns NAME`, such
//! as the one where `e2e/reference/engine.sh` runs a Docker engine) and starts the run in it with
//! `setns(2)` only — not `ip netns exec`, whose private mount namespace would keep the run from
//! deleting the namespace itself when its supervisor is gone.

use std::process::Command;

#[derive(Debug, thiserror::Error)]
#[error("network namespace {name}: `{cmd}` failed: {detail}")]
pub struct NetnsError {
    pub name: String,
    pub cmd: String,
    pub detail: String,
}

/// Whether this process may create namespaces.
pub fn available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false)
}

fn ip(name: &str, args: &[&str]) -> Result<(), NetnsError> {
    let out =
        Command::new("ip").args(args).output().map_err(|e| NetnsError { name: name.into(), cmd: format!("ip {}", args.join(" ")), detail: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError { name: name.into(), cmd: format!("ip {}", args.join(" ")), detail: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// A namespace with `lo` and a veth pair whose ends both stay inside, plus a default route
/// (Chromium gathers no candidates without one). Deleted again when any step fails.
pub fn create(name: &str) -> Result<(), NetnsError> {
    let _ = ip(name, &["netns", "del", name]);
    ip(name, &["netns", "add", name])?;
    for args in [
        vec!["-n", name, "link", "set", "lo", "up"],
        vec!["-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        vec!["-n", name, "addr", "add", "198.51.100.2/24", "dev", "v0"],
        vec!["-n", name, "addr", "add", "198.51.100.3/24", "dev", "v1"],
        vec!["-n", name, "link", "set", "v0", "up"],
        vec!["-n", name, "link", "set", "v1", "up"],
        vec!["-n", name, "route", "add", "default", "dev", "v0"],
    ] {
        if let Err(e) = ip(name, &args) {
            delete(name);
            return Err(e);
        }
    }
    Ok(())
}

/// Delete a namespace (its name; the kernel frees it once its last process leaves).
pub fn delete(name: &str) {
    if std::path::Path::new("/var/run/netns").join(name).exists() {
        if let Err(e) = ip(name, &["netns", "del", name]) {
            tracing::warn!("{e}");
        }
    }
}

/// The namespace's file, for `setns(2)`.
pub fn open(name: &str) -> Result<std::fs::File, NetnsError> {
    let path = std::path::Path::new("/var/run/netns").join(name);
    if name.is_empty() || name.contains('/') || !path.exists() {
        return Err(NetnsError {
            name: name.into(),
            cmd: "join".into(),
            detail: format!("{} does not exist (create it first, e.g. `bash e2e/reference/engine.sh start`)", path.display()),
        });
    }
    std::fs::File::open(&path).map_err(|e| NetnsError { name: name.into(), cmd: "join".into(), detail: format!("{}: {e}", path.display()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_a_missing_namespace_says_how_to_make_it() {
        let err = open("helix-e2e-no-such-namespace").unwrap_err().to_string();
        assert!(err.contains("/var/run/netns/helix-e2e-no-such-namespace does not exist") && err.contains("engine.sh start"), "{err}");
        assert!(open("../etc").is_err());
    }
}
