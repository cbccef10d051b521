//! `helix-e2e __probe`: the health check of the reference images. They are `FROM scratch`
//! (no shell, no curl), so the binary itself checks that its service accepts connections.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How long a probe waits for the connection; compose's own timeout is above this.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub enum ProbeTarget {
    /// `HOST:PORT`, resolved at probe time.
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeTarget::Tcp(a) => write!(f, "tcp {a}"),
            ProbeTarget::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

/// Whether a connection succeeds within `deadline`; the error says why not.
pub fn probe(target: &ProbeTarget, deadline: Duration) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let t = target.clone();
    // Name resolution and a Unix connect have no timeout of their own: connect on a thread
    // and stop waiting for it at the deadline (the process exits right after anyway).
    std::thread::spawn(move || {
        let result = match &t {
            ProbeTarget::Tcp(addr) => connect_tcp(addr, deadline),
            ProbeTarget::Unix(path) => std::os::unix::net::UnixStream::connect(path).map(drop).map_err(|e| e.to_string()),
        };
        let _ = tx.send(result);
    });
    match rx.recv_timeout(deadline) {
        Ok(r) => r.map_err(|e| format!("{target}: {e}")),
        Err(_) => Err(format!("{target}: no connection within {} s", deadline.as_secs_f64())),
    }
}

fn connect_tcp(addr: &str, deadline: Duration) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let mut last = format!("{addr} resolves to no address");
    for a in addr.to_socket_addrs().map_err(|e| e.to_string())? {
        match std::net::TcpStream::connect_timeout(&a, deadline) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_succeed_on_listeners_and_fail_otherwise() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert_eq!(probe(&ProbeTarget::Tcp(addr.clone()), PROBE_DEADLINE), Ok(()));
        drop(l);
        let err = probe(&ProbeTarget::Tcp(addr.clone()), PROBE_DEADLINE).unwrap_err();
        assert!(err.starts_with(&format!("tcp {addr}")), "{err}");

        let dir = std::env::temp_dir().join(format!("helix-e2e-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        let _ = std::fs::remove_file(&sock);
        let u = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(probe(&ProbeTarget::Unix(sock.clone()), PROBE_DEADLINE), Ok(()));
        drop(u);
        let _ = std::fs::remove_file(&sock);
        assert!(probe(&ProbeTarget::Unix(sock), PROBE_DEADLINE).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
