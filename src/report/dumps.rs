//! webrtc-internals dumps as artifacts: the whole browser's dump and one per tab, each in the
//! format the dump importers read, with secrets masked.
//!
//! The dump is the browser's own record, taken outside the timeline, so it never passed the
//! timeline's redaction: a TURN `credential` sits inside the `rtcConfiguration` string and in
//! `setConfiguration` log entries. Every string that holds JSON is masked by key as JSON, every
//! other string by the run's known secrets.

use super::{ArtifactDir, ArtifactError};
use crate::browser::{peer_connections_of_tab, TAB_PARAM};
use crate::redact::Redactor;
use crate::timeline::TabId;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// `webrtc-internals/<label>.json` (everything) and `webrtc-internals/tab-<N>/<label>.json` for
/// every tab the dump has peer connections of.
pub fn write_internals(artifacts: &ArtifactDir, label: &str, dump: &Value, redactor: &Redactor) -> Result<Vec<PathBuf>, ArtifactError> {
    let dump = redact_dump(dump, redactor);
    let mut written = vec![artifacts.write_json(&format!("webrtc-internals/{label}.json"), &dump)?];
    for tab in tabs_in(&dump) {
        written.push(artifacts.write_json(&format!("webrtc-internals/tab-{tab}/{label}.json"), &of_tab(&dump, tab))?);
    }
    Ok(written)
}

/// The dump with only `tab`'s peer connections; everything else (user agent, getUserMedia) kept.
pub fn of_tab(dump: &Value, tab: TabId) -> Value {
    let mut out = dump.clone();
    if let Some(o) = out.as_object_mut() {
        let pcs: Map<String, Value> = peer_connections_of_tab(dump, tab).into_iter().collect();
        o.insert("PeerConnections".into(), Value::Object(pcs));
    }
    out
}

/// Tabs whose marker appears in a peer connection's URL, ascending.
pub fn tabs_in(dump: &Value) -> Vec<TabId> {
    let prefix = format!("{TAB_PARAM}=");
    let mut tabs: Vec<TabId> = dump
        .get("PeerConnections")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|pcs| pcs.values())
        .filter_map(|pc| pc.get("url").and_then(Value::as_str))
        .filter_map(|url| {
            let query = url.split_once('?')?.1.split('#').next()?;
            query.split('&').find_map(|kv| kv.strip_prefix(prefix.as_str())?.parse::<TabId>().ok())
        })
        .collect();
    tabs.sort_unstable();
    tabs.dedup();
    tabs
}

/// Mask secrets in every string of the dump, keeping JSON-in-a-string as a string.
pub fn redact_dump(dump: &Value, redactor: &Redactor) -> Value {
    match dump {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), redact_dump(v, redactor))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| redact_dump(v, redactor)).collect()),
        Value::String(s) => {
            let trimmed = s.trim_start();
            if trimmed.starts_with('{') || trimmed.starts_with('[') {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    return Value::String(redactor.json(&inner).to_string());
                }
            }
            Value::String(mask_key_values(&redactor.text(s)))
        }
        other => other.clone(),
    }
}

/// Chromium writes configurations in log entries as `credential: "…"`-like text that is not
/// JSON; mask the value after such a key.
fn mask_key_values(s: &str) -> String {
    const KEYS: &[&str] = &["credential", "password", "aes_key", "aes_iv", "token"];
    let mut out = s.to_string();
    for key in KEYS {
        let mut from = 0;
        while let Some(i) = out[from..].find(key).map(|i| i + from) {
            let after = i + key.len();
            let rest = &out[after..];
            // Key, optional quote, `:` or `=`, optional spaces and quote, then the value.
            let sep: usize = rest.chars().take_while(|c| matches!(c, '"' | '\'' | ' ' | ':' | '=')).map(char::len_utf8).sum();
            if sep == 0 || !rest[..sep].contains([':', '=']) {
                from = after;
                continue;
            }
            let value_start = after + sep;
            let value_len: usize = out[value_start..].chars().take_while(|c| !matches!(c, '"' | '\'' | ',' | '}' | ' ' | '\n' | ']')).map(char::len_utf8).sum();
            if value_len == 0 || out[value_start..value_start + value_len] == *crate::redact::MASK {
                from = value_start;
                continue;
            }
            out.replace_range(value_start..value_start + value_len, crate::redact::MASK);
            from = value_start + crate::redact::MASK.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::validate_dump;
    use serde_json::json;

    fn dump() -> Value {
        json!({
            "getUserMedia": [],
            "PeerConnections": {
                "7-1": {"pid": 10, "url": "http://127.0.0.1:1/session/ses_a?e2e_tab=0",
                        "rtcConfiguration": "{\"iceServers\":[{\"urls\":[\"turn:127.0.0.1:3478\"],\"username\":\"u\",\"credential\":\"turn-pass-1234\"}]}",
                        "stats": {"IT01V-framesDecoded": {"startTime": "a", "endTime": "b", "statsType": "inbound-rtp", "values": "[1,2,3]"}},
                        "updateLog": [{"timestamp": 1.0, "type": "setConfiguration", "value": "{ iceServers: [turn:127.0.0.1:3478], credential: turn-pass-1234 }"},
                                      {"timestamp": 2.0, "type": "icecandidate", "value": "sdpMid: 0, candidate: known-secret-value"}]},
                "7-2": {"pid": 10, "url": "http://127.0.0.1:1/session/ses_b?e2e_tab=2&x=1", "rtcConfiguration": "{}", "stats": {}, "updateLog": []}
            },
            "UserAgent": "HeadlessChrome/156",
            "UserAgentData": []
        })
    }

    #[test]
    fn writes_whole_and_per_tab_dumps_in_the_importers_format_without_secrets() {
        let base = std::env::temp_dir().join(format!("helix-e2e-dumps-{}", std::process::id()));
        let art = ArtifactDir::create(&base, "run").unwrap();
        let redactor = Redactor::with_secrets(["known-secret-value".to_string()]);
        let written = write_internals(&art, "before-close-tab-0", &dump(), &redactor).unwrap();
        assert_eq!(written.len(), 3, "{written:?}");
        for (rel, pcs) in [
            ("webrtc-internals/before-close-tab-0.json", vec!["7-1", "7-2"]),
            ("webrtc-internals/tab-0/before-close-tab-0.json", vec!["7-1"]),
            ("webrtc-internals/tab-2/before-close-tab-0.json", vec!["7-2"]),
        ] {
            let text = std::fs::read_to_string(art.root().join(rel)).unwrap();
            assert!(!text.contains("turn-pass-1234") && !text.contains("known-secret-value"), "{rel} leaks: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            validate_dump(&v).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let keys: Vec<&str> = v["PeerConnections"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, pcs, "{rel}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn masks_key_values_in_text_but_leaves_other_words() {
        assert_eq!(mask_key_values("{ credential: abc, urls: x }"), "{ credential: [redacted], urls: x }");
        assert_eq!(mask_key_values("\"token\":\"t0k\""), "\"token\":\"[redacted]\"");
        assert_eq!(mask_key_values("credentials are needed"), "credentials are needed");
        assert_eq!(tabs_in(&dump()), vec![0, 2]);
    }
}
