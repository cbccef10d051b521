//! helix-e2e: an end-to-end driver for browser game-streaming stacks built on Wolf lobbies and
//! moonlight-web, plus a reference stack that stands in for them.
//!
//! The driver (everything but `refstack`) talks to whatever it tests only through the real
//! interfaces: HTTP, WebSocket, Wolf's Unix socket, and real Chromium tabs. `refstack` is walled
//! off: the driver starts it as a child process and never calls into it.

pub mod bench;
pub mod browser;
pub mod catalog;
pub mod config;
pub mod correlate;
pub mod frames;
pub mod matrix;
pub mod netns;
pub mod probe;
pub mod procs;
pub mod redact;
pub mod refstack;
pub mod report;
pub mod scenario;
pub mod supervisor;
pub mod sut;
pub mod timeline;
pub mod verdict;
