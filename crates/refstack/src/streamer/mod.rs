//! The streamer: one child process per moonlight-web session (`helix-e2e __streamer`).
//!
//! It speaks JSON lines with moonlight-web on stdin/stdout, holds the real webrtc-rs peer, and
//! forwards the H.264 it receives from Wolf to the browser.

pub mod host;
pub mod ipc;
pub mod rtc;
pub mod session;
#[cfg(test)]
mod testwolf;
