//! What the stand-in Helix keeps across restarts, as the real API keeps it in its database:
//! the agent sessions with their lobbies, and the login tokens it issued (real tokens are
//! signed JWTs that outlive a restart). Everything else (the lobby watch, open proxies) is
//! memory only and is lost when the process is killed, as in the real API.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Crockford's base32 alphabet, lowercase, as Helix's ULID-based ids use it.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One agent session and the Wolf lobby it owns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// A value mirrored to a JSON file after every change (written whole, then renamed over the
/// old one, so a kill mid-write leaves the previous version).
pub struct Persisted<T> {
    path: PathBuf,
    value: Mutex<T>,
}

impl<T: Serialize + DeserializeOwned + Default> Persisted<T> {
    /// What the file holds, or the default when there is none yet. A file that cannot be read
    /// back is an error: starting empty would silently drop what the API stored.
    pub fn load(path: &Path) -> Result<Self, String> {
        let value = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("store {} is not valid: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(format!("cannot read store {}: {e}", path.display())),
        };
        Ok(Self { path: path.to_path_buf(), value: Mutex::new(value) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        // Every change is one whole-value update: a panic cannot leave it half-made.
        self.value.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.lock())
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = self.lock();
        let out = f(&mut v);
        if let Err(e) = self.write(&v) {
            tracing::error!("{e}");
        }
        out
    }

    fn write(&self, v: &T) -> Result<(), String> {
        let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &self.path)).map_err(|e| format!("cannot write store {}: {e}", self.path.display()))
    }
}

/// The stored part of the API: one file in the stack's directory.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stored {
    pub agents: BTreeMap<String, AgentSession>,
    pub tokens: BTreeSet<String>,
}

pub type Store = Persisted<Stored>;

impl Store {
    pub fn insert_agent(&self, s: AgentSession) {
        self.update(|st| st.agents.insert(s.id.clone(), s));
    }

    pub fn agent(&self, id: &str) -> Option<AgentSession> {
        self.read(|st| st.agents.get(id).cloned())
    }

    pub fn remove_agent(&self, id: &str) -> Option<AgentSession> {
        self.update(|st| st.agents.remove(id))
    }

    pub fn agents(&self) -> Vec<AgentSession> {
        self.read(|st| st.agents.values().cloned().collect())
    }

    pub fn add_token(&self, token: String) {
        self.update(|st| st.tokens.insert(token));
    }

    pub fn has_token(&self, token: &str) -> bool {
        self.read(|st| st.tokens.contains(token))
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
    fn the_store_survives_a_restart_and_refuses_a_corrupt_file() {
        let dir = std::env::temp_dir().join(format!("helix-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("helix-store.json");
        let a =
            AgentSession { id: new_session_id(), name: "n".into(), lobby_id: "l1".into(), pin: [1, 2, 3, 4], container_name: "c".into(), created: "t".into() };
        let store = Store::load(&path).unwrap();
        store.insert_agent(a.clone());
        store.add_token("tok".into());
        drop(store);
        let again = Store::load(&path).unwrap();
        assert_eq!(again.agent(&a.id), Some(a));
        assert!(again.has_token("tok") && !again.has_token("other"));
        std::fs::write(&path, "{not json").unwrap();
        assert!(Store::load(&path).err().is_some_and(|e| e.contains("not valid")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_ids_that_could_escape_a_path_or_page() {
        for bad in ["", "ses_", "abc", "ses_../x", "ses_<script>", "req_01k9"] {
            assert!(!is_session_id(bad), "{bad}");
        }
    }
}
