//! The agent sessions this Helix started, kept in memory like the real API's agent map: a
//! restart of the stand-in forgets them, as a restart of Helix's API did in Nov 2025.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Crockford's base32 alphabet, lowercase, as Helix's ULID-based ids use it.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One agent session and the Wolf lobby it owns.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentSession {
    pub id: String,
    pub name: String,
    pub lobby_id: String,
    pub pin: [u8; 4],
    pub container_name: String,
    pub created: String,
}

impl AgentSession {
    /// The PIN as Helix stores it in session metadata: four digits as one string.
    pub fn pin_string(&self) -> String {
        self.pin.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

#[derive(Default)]
pub struct Agents {
    map: Mutex<BTreeMap<String, AgentSession>>,
}

impl Agents {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AgentSession>> {
        // A panic while holding the map cannot leave it half-written (single inserts/removes).
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, s: AgentSession) {
        self.lock().insert(s.id.clone(), s);
    }

    pub fn get(&self, id: &str) -> Option<AgentSession> {
        self.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<AgentSession> {
        self.lock().remove(id)
    }

    pub fn all(&self) -> Vec<AgentSession> {
        self.lock().values().cloned().collect()
    }
}

/// A `ses_` id shaped like Helix's: a ULID (48-bit millisecond time, 80 random bits) in
/// lowercase Crockford base32, so ids sort by creation time as the real ones do.
pub fn new_session_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let random = u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes()) & ((1u128 << 80) - 1);
    let value = ((millis & ((1u128 << 48) - 1)) << 80) | random;
    let mut out = String::with_capacity(30);
    out.push_str("ses_");
    // 26 symbols × 5 bits = 130 bits: the top two are always zero, as in any ULID.
    for i in (0..26).rev() {
        out.push(CROCKFORD[((value >> (i * 5)) & 31) as usize] as char);
    }
    out
}

/// Four random digits, the lobby PIN Helix generates per agent.
pub fn new_pin() -> [u8; 4] {
    let b = uuid::Uuid::new_v4().into_bytes();
    [b[0] % 10, b[1] % 10, b[2] % 10, b[3] % 10]
}

/// True for strings that can be a `ses_` id; anything else never reaches Wolf or a page.
pub fn is_session_id(s: &str) -> bool {
    s.strip_prefix("ses_").is_some_and(|rest| !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_look_like_helix_ulids_and_sort_by_time() {
        let a = new_session_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_session_id();
        for id in [&a, &b] {
            let rest = id.strip_prefix("ses_").expect("ses_ prefix");
            assert_eq!(rest.len(), 26, "{id}");
            assert!(rest.bytes().all(|c| CROCKFORD.contains(&c)), "{id}");
            assert!(is_session_id(id));
        }
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn pins_are_digits_and_vary() {
        let pins: std::collections::HashSet<[u8; 4]> = (0..50).map(|_| new_pin()).collect();
        assert!(pins.iter().all(|p| p.iter().all(|d| *d < 10)));
        assert!(pins.len() > 40, "50 random PINs should rarely collide");
    }

    #[test]
    fn rejects_ids_that_could_escape_a_path_or_page() {
        for bad in ["", "ses_", "abc", "ses_../x", "ses_<script>", "req_01k9"] {
            assert!(!is_session_id(bad), "{bad}");
        }
    }
}
