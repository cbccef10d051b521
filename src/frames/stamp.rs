//! The machine-readable stamp every reference-stack picture carries.

/// Tag of the Wolf UI picture (a session not in any lobby).
pub const WOLF_UI_TAG: u16 = 0;

/// The tag a lobby's picture carries, derived from its id so the driver can compute it from
/// Wolf's API alone.
pub fn lobby_tag(lobby_id: &str) -> u16 {
    let _ = lobby_id;
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub tag: u16,
    pub counter: u16,
}

/// Decode the stamp from a luma plane (`width` x `height`, row-major).
pub fn decode(luma: &[u8], width: usize, height: usize) -> Option<Stamp> {
    let _ = (luma, width, height);
    None
}
