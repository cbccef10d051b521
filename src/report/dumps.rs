//! webrtc-internals dumps as artifacts: each browser's whole dump and one per tab, each in the
//! shape of the file Chromium's own download button writes, with secrets masked — and written only
//! when they add information.
//!
//! The internals page keeps every peer connection of the run (see `browser::internals`), so each
//! dump holds everything the earlier ones did: one dump at the end (`final.json`) is the record.
//! Dumps before it are checkpoints for a run that never gets there (the browser dies, the run is
//! interrupted): one at a time on disk, written only when a connection or a log entry is new, at
//! most every [`CHECKPOINT_EVERY`]; the final dump replaces it. A run used to leave a dump of the
//! whole store before every tab's close: hundreds of near-copies, and an empty `final.json`
//! because closed tabs' connections had left the store.
//!
//! The dump is the browser's own record, taken outside the timeline, so it never passed the
//! timeline's redaction: a TURN `credential` sits inside the `rtcConfiguration` string and in
//! `setConfiguration` log entries. Every string that holds JSON is masked by key as JSON, every
//! other string by the run's known secrets.

use super::{ArtifactDir, ArtifactError};
use crate::browser::{digest_adds, digest_of_dumps, peer_connections_of_tab, BrowserDump, DumpDigest, TAB_PARAM};
use crate::redact::Redactor;
use crate::timeline::TabId;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The least time between two checkpoints: what a run loses of the browser's record when it
/// never reaches its final dump, traded against rewriting a growing store at every step.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// The label of the dump written at the end of a run.
pub const FINAL: &str = "final";

/// The dumps this run has on disk, and what the last one held.
pub struct DumpLog {
    /// The checkpoint on disk, if any.
    checkpoint: Option<Written>,
    /// When the last checkpoint was written (the run's start before the first).
    since: Instant,
}

struct Written {
    label: String,
    digest: DumpDigest,
    files: Vec<PathBuf>,
}

impl DumpLog {
    pub fn new(now: Instant) -> Self {
        DumpLog { checkpoint: None, since: now }
    }

    /// Whether a checkpoint of a store with `digest` is due `now`: it would hold a connection or
    /// a log entry the one on disk lacks, and the last was written long enough ago.
    pub fn checkpoint_due(&self, digest: &DumpDigest, now: Instant) -> bool {
        let news = match &self.checkpoint {
            Some(w) => digest_adds(digest, &w.digest),
            None => !digest.is_empty(),
        };
        news && self.may_be_due(now)
    }

    /// Whether the last checkpoint is old enough for another: asked before reading the page's
    /// digest, which grows with every connection of the run (a soak's hundreds made it take
    /// seconds before each tab close).
    pub fn may_be_due(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= CHECKPOINT_EVERY
    }

    /// Write `dump` as the checkpoint `label`, then remove the one it replaces (whose content
    /// it holds: the store only grows).
    pub fn write_checkpoint(
        &mut self,
        artifacts: &ArtifactDir,
        label: &str,
        dump: &[BrowserDump],
        redactor: &Redactor,
        now: Instant,
    ) -> Result<Vec<PathBuf>, ArtifactError> {
        let files = write_internals(artifacts, label, dump, redactor)?;
        let before = self.checkpoint.replace(Written { label: label.to_string(), digest: digest_of_dumps(dump), files: files.clone() });
        self.since = now;
        if let Some(old) = before.filter(|old| old.label != label) {
            remove_stale(&old.files, &files);
        }
        Ok(files)
    }

    /// Write `final.json` (and per tab), then remove the checkpoint when the final dump holds all
    /// it did; one it does not cover (connections gone from the store) is kept beside it.
    pub fn write_final(&mut self, artifacts: &ArtifactDir, dump: &[BrowserDump], redactor: &Redactor) -> Result<Vec<PathBuf>, ArtifactError> {
        let files = write_internals(artifacts, FINAL, dump, redactor)?;
        if let Some(old) = self.checkpoint.take() {
            if digest_adds(&old.digest, &digest_of_dumps(dump)) {
                tracing::warn!("the final webrtc-internals dump lacks what checkpoint {} held; both kept", old.label);
                self.checkpoint = Some(old);
            } else {
                remove_stale(&old.files, &files);
            }
        }
        Ok(files)
    }

    /// The checkpoint on disk, if any (its label).
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_ref().map(|w| w.label.as_str())
    }
}

/// Remove the files of a replaced dump that the new one did not overwrite.
fn remove_stale(old: &[PathBuf], new: &[PathBuf]) {
    for f in old.iter().filter(|f| !new.contains(f)) {
        if let Err(e) = std::fs::remove_file(f) {
            tracing::warn!("removing the replaced dump {}: {e}", f.display());
        }
    }
}

/// `webrtc-internals/<label>.json` (everything; `webrtc-internals/browser-<K>/<label>.json` for
/// each of several remote browsers) and `webrtc-internals/tab-<N>/<label>.json` for every tab a
/// dump has peer connections of (a tab lives in one browser), indented by one space as Chromium
/// writes its file.
pub fn write_internals(artifacts: &ArtifactDir, label: &str, dumps: &[BrowserDump], redactor: &Redactor) -> Result<Vec<PathBuf>, ArtifactError> {
    let mut written = Vec::new();
    for d in dumps {
        let dump = redact_dump(&d.dump, redactor);
        written.push(write_as_chromium(artifacts, &format!("webrtc-internals/{}{label}.json", d.dir()), &dump)?);
        for tab in tabs_in(&dump) {
            written.push(write_as_chromium(artifacts, &format!("webrtc-internals/tab-{tab}/{label}.json"), &of_tab(&dump, tab))?);
        }
    }
    Ok(written)
}

/// `JSON.stringify(dump, null, 1)`'s layout.
fn write_as_chromium(artifacts: &ArtifactDir, rel: &str, dump: &Value) -> Result<PathBuf, ArtifactError> {
    let mut bytes = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, serde_json::ser::PrettyFormatter::with_indent(b" "));
    dump.serialize(&mut ser).map_err(|e| ArtifactError { path: artifacts.root().join(rel), source: std::io::Error::other(e) })?;
    artifacts.write(rel, &bytes)
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
    use crate::browser::{digest_of, validate_dump};
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
            "UserAgentData": {"brands": [], "mobile": false, "platform": "Linux"},
            "timestamp": 1700000000000_u64,
            "hardwareConcurrency": 2
        })
    }

    /// The run's one local browser's dump.
    fn local(dump: Value) -> Vec<BrowserDump> {
        vec![BrowserDump { browser: None, dump }]
    }

    fn files(art: &ArtifactDir) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![art.root().join("webrtc-internals")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(art.root()).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn checkpoints_only_with_news_one_at_a_time_and_final_replaces_them() {
        let base = std::env::temp_dir().join(format!("helix-e2e-dumplog-{}", std::process::id()));
        let art = ArtifactDir::create(&base, "run").unwrap();
        let redactor = Redactor::with_secrets(Vec::<String>::new());
        let t0 = Instant::now();
        let mut log = DumpLog::new(t0);
        let d = dump();
        let digest = digest_of(&d);
        assert!(!log.checkpoint_due(&digest, t0), "not before CHECKPOINT_EVERY since the start");
        assert!(!log.checkpoint_due(&DumpDigest::new(), t0 + CHECKPOINT_EVERY), "an empty store adds nothing");
        let t1 = t0 + CHECKPOINT_EVERY;
        assert!(log.checkpoint_due(&digest, t1));
        log.write_checkpoint(&art, "before-close-tab-0", &local(d.clone()), &redactor, t1).unwrap();
        assert!(!log.checkpoint_due(&digest, t1 + 10 * CHECKPOINT_EVERY), "nothing new since");
        // A new log entry in tab 2's connection, and tab 0's gone from the store.
        let mut later = d.clone();
        later["PeerConnections"]["7-2"]["updateLog"] = json!([{"timestamp": 3.0, "type": "close", "value": ""}]);
        later["PeerConnections"].as_object_mut().unwrap().remove("7-1");
        assert!(!log.checkpoint_due(&digest_of(&later), t1 + CHECKPOINT_EVERY / 2), "too soon");
        let t2 = t1 + CHECKPOINT_EVERY;
        assert!(log.checkpoint_due(&digest_of(&later), t2));
        log.write_checkpoint(&art, "before-reload-tab-2", &local(later.clone()), &redactor, t2).unwrap();
        assert_eq!(
            files(&art),
            ["webrtc-internals/before-reload-tab-2.json", "webrtc-internals/tab-2/before-reload-tab-2.json"],
            "the replaced checkpoint's files are gone"
        );
        // A final dump that lacks what the checkpoint held keeps it beside itself...
        let mut fin = d.clone();
        log.write_final(&art, &local(fin.clone()), &redactor).unwrap();
        assert_eq!(log.checkpoint(), Some("before-reload-tab-2"));
        assert!(files(&art).contains(&"webrtc-internals/before-reload-tab-2.json".to_string()));
        // ...and one that holds it all replaces it.
        fin["PeerConnections"]["7-2"]["updateLog"] = later["PeerConnections"]["7-2"]["updateLog"].clone();
        log.write_final(&art, &local(fin.clone()), &redactor).unwrap();
        assert_eq!(log.checkpoint(), None);
        assert_eq!(files(&art), ["webrtc-internals/final.json", "webrtc-internals/tab-0/final.json", "webrtc-internals/tab-2/final.json"]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn writes_chromiums_layout() {
        let base = std::env::temp_dir().join(format!("helix-e2e-dumplayout-{}", std::process::id()));
        let art = ArtifactDir::create(&base, "run").unwrap();
        write_internals(&art, "x", &local(dump()), &Redactor::with_secrets(Vec::<String>::new())).unwrap();
        let text = std::fs::read_to_string(art.root().join("webrtc-internals/x.json")).unwrap();
        assert!(text.starts_with("{\n \"PeerConnections\": {\n  \""), "{}", &text[..40]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn writes_whole_and_per_tab_dumps_in_the_importers_format_without_secrets() {
        let base = std::env::temp_dir().join(format!("helix-e2e-dumps-{}", std::process::id()));
        let art = ArtifactDir::create(&base, "run").unwrap();
        let redactor = Redactor::with_secrets(["known-secret-value".to_string()]);
        let written = write_internals(&art, "before-close-tab-0", &local(dump()), &redactor).unwrap();
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
    fn several_browsers_write_one_dump_each_and_tabs_as_one_browser_does() {
        let base = std::env::temp_dir().join(format!("helix-e2e-dumps-fleet-{}", std::process::id()));
        let art = ArtifactDir::create(&base, "run").unwrap();
        let (mut first, mut second) = (dump(), dump());
        first["PeerConnections"].as_object_mut().unwrap().remove("7-2");
        second["PeerConnections"].as_object_mut().unwrap().remove("7-1");
        // Both browsers number their connections alike: the digest keeps them apart.
        second["PeerConnections"] = json!({"7-1": second["PeerConnections"]["7-2"].clone()});
        let dumps = vec![BrowserDump { browser: Some(0), dump: first }, BrowserDump { browser: Some(1), dump: second }];
        assert_eq!(digest_of_dumps(&dumps).keys().collect::<Vec<_>>(), ["browser-0/7-1", "browser-1/7-1"]);
        let mut log = DumpLog::new(Instant::now());
        log.write_final(&art, &dumps, &Redactor::with_secrets(Vec::<String>::new())).unwrap();
        assert_eq!(
            files(&art),
            [
                "webrtc-internals/browser-0/final.json",
                "webrtc-internals/browser-1/final.json",
                "webrtc-internals/tab-0/final.json",
                "webrtc-internals/tab-2/final.json"
            ]
        );
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
