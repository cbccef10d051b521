//! The stand-in Wolf: REST API on a Unix socket, the Moonlight host side (pairing, launch, and
//! the per-session video/control stream), lobbies, and logs in Wolf's format.

pub mod api;
pub mod audio;
pub mod input;
pub mod moonlight;
pub mod state;
pub mod stream;
