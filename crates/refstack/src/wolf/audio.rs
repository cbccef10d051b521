//! Wolf's audio: the PulseAudio-like server Wolf connects to, and Wolf's side of that
//! connection — the place of F17.
//!
//! Wolf talks to an audio server over a Unix socket. Its connection handler fulfils a promise
//! when the connection is ready, and its disconnect handler fulfils the same promise again; a
//! C++ promise set twice throws, nothing catches it, and Wolf dies with every stream at once
//! (`Unhandled exception: The state of the promise has already been set`). A healthy audio
//! server never drops Wolf, so the second set never happens; the `audio-disconnect` switch
//! makes the server drop it. The promise here is a [`OnceLock`], which refuses a second set in
//! the same way.

use crate::logfile::LogFile;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};

/// What Wolf dies with when its audio promise is set a second time.
pub const PROMISE_ALREADY_SET: &str = "Unhandled exception: The state of the promise has already been set";

/// The audio server: keeps every client's connection open, reading what it sends; with
/// `drop_after` (F17) it closes each one that long after it connected.
pub async fn serve(listener: UnixListener, drop_after: Option<Duration>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let read_all = async { while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {} };
            match drop_after {
                Some(after) => {
                    if tokio::time::timeout(after, read_all).await.is_err() {
                        tracing::info!("audio server: dropping the client's connection after {after:?} (audio-disconnect)");
                    }
                }
                None => read_all.await,
            }
        });
    }
}

pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

/// Wolf's client: connect to the audio server at `path` and watch the connection. Its end sets
/// the connection's promise a second time, which kills Wolf (see the module's comment).
pub fn connect(path: PathBuf, log: LogFile) {
    tokio::spawn(async move {
        let ready: Arc<OnceLock<&'static str>> = Arc::default();
        let mut conn = match UnixStream::connect(&path).await {
            Ok(c) => c,
            Err(e) => {
                log.warn(format!("[AUDIO] cannot connect to the audio server at {}: {e}", path.display()));
                return;
            }
        };
        let _ = ready.set("connected");
        log.info(format!("[AUDIO] Connected to the audio server at {}", path.display()));
        let mut buf = [0u8; 512];
        while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
        // The disconnect handler fulfils the promise the connect already fulfilled.
        if ready.set("disconnected").is_err() {
            log.error(PROMISE_ALREADY_SET);
            std::process::abort();
        }
    });
}
