//! Frame analysis: what a tab's video shows (black, frozen, missing, whose lobby).

pub mod analysis;
pub mod input;
pub use helix_e2e_shared::stamp;
