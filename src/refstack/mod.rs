//! The reference stack: a faithful stand-in for Wolf, moonlight-web and the Helix API + viewer.
//!
//! It exists so the driver has a real target on a machine without a GPU, and so every
//! documented failure can be reproduced on demand. The driver never calls into this module: it
//! starts `helix-e2e refstack` as a child process and talks to it through the same interfaces as
//! to the real services.

pub mod helix;
pub mod logfile;
pub mod moonlight_web;
pub mod picture;
pub mod streamer;
pub mod wolf;
