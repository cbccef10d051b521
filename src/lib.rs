//! helix-e2e: an end-to-end driver for browser game-streaming stacks built on Wolf lobbies and
//! moonlight-web, plus a reference stack that stands in for them.
//!
//! The driver (this crate) talks to whatever it tests only through the real interfaces: HTTP,
//! WebSocket, Wolf's Unix socket, and real Chromium tabs. The reference stack is another crate
//! (`helix-refstack`, re-exported as [`refstack`]) that depends only on `helix-e2e-shared`: the
//! driver starts it as child processes, and the compiler keeps it from using the driver.

pub mod bench;
pub mod browser;
pub mod catalog;
pub mod config;
pub mod correlate;
pub mod frames;
pub mod matrix;
pub mod merge;
pub mod netns;
pub mod probe;
pub mod procs;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod shard;
pub mod supervisor;
pub mod sut;
pub mod synthetic;
pub mod timeline;
pub mod verdict;
pub mod watch;

/// The reference stack, a crate of its own (`crates/refstack`) that cannot import the driver.
pub use helix_refstack as refstack;
