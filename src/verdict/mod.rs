//! Verdicts: named invariants, each checked against the correlated state at one moment.
//!
//! A result names the invariant, says in one sentence what was wrong with which tab, and keeps
//! the moment it was decided so reports can show the state then.

pub mod checks;
pub mod detectors;
pub mod live;
pub mod restarts;

use crate::timeline::EpochMs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvariantResult {
    pub name: String,
    pub passed: bool,
    pub message: String,
    pub at: EpochMs,
}

impl InvariantResult {
    pub fn pass(name: &str, message: impl Into<String>) -> Self {
        Self { name: name.into(), passed: true, message: message.into(), at: crate::timeline::now_ms() }
    }
    pub fn fail(name: &str, message: impl Into<String>) -> Self {
        Self { name: name.into(), passed: false, message: message.into(), at: crate::timeline::now_ms() }
    }
}
