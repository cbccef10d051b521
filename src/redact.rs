//! Secrets never reach logs or artifacts: Wolf's `aes_key`/`aes_iv`, tokens, passwords,
//! moonlight-web credentials, TURN credentials. Redaction happens where data enters the
//! timeline, so every later rendering is safe by construction.

use serde_json::Value;

pub const MASK: &str = "[redacted]";

/// JSON keys whose values are always secret.
const SECRET_KEYS: &[&str] = &["aes_key", "aes_iv", "credentials", "credential", "token", "password", "access_token", "refresh_token", "pin", "authorization"];

/// Redacts by key everywhere, and by value for secrets known to this run.
#[derive(Clone, Default)]
pub struct Redactor {
    known: Vec<String>,
}

impl Redactor {
    /// Also mask these exact strings wherever they appear (short ones are ignored: they would
    /// mask innocent text).
    pub fn with_secrets(secrets: impl IntoIterator<Item = String>) -> Self {
        Self { known: secrets.into_iter().filter(|s| s.len() >= 6).collect() }
    }

    pub fn add(&mut self, secret: impl Into<String>) {
        let s = secret.into();
        if s.len() >= 6 && !self.known.contains(&s) {
            self.known.push(s);
        }
    }

    pub fn json(&self, v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) && !v.is_null() {
                            (k.clone(), Value::String(MASK.into()))
                        } else {
                            (k.clone(), self.json(v))
                        }
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.json(v)).collect()),
            Value::String(s) => Value::String(self.text(s)),
            other => other.clone(),
        }
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for k in &self.known {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_keys_nested_and_known_values_in_text() {
        let r = Redactor::with_secrets(["s3cret-token".to_string()]);
        let v = r.json(&json!({"sessions":[{"aes_key":"ABCD","client_id":"1","note":"Bearer s3cret-token"}],"AuthenticateAndInit":{"credentials":"x"}}));
        let s = v.to_string();
        assert!(!s.contains("ABCD") && !s.contains("s3cret-token") && !s.contains("\"x\""), "{s}");
        assert!(s.contains("\"client_id\":\"1\""));
    }
}
