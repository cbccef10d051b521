//! The streamer: one child process per moonlight-web session (`helix-e2e __streamer`).
//!
//! It speaks JSON lines with moonlight-web on stdin/stdout, holds the real webrtc-rs peer, and
//! forwards the H.264 it receives from Wolf to the browser.

pub mod ipc;

/// Placeholder until the streamer lands (it is being written on the media branch).
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("streamer not built yet")
}
