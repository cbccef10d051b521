//! The browser's own record of every peer connection, from `chrome://webrtc-internals`.
//!
//! The probe sees what the page's JavaScript sees; webrtc-internals sees what libwebrtc did
//! (every state change with its time, every stat series), across all tabs and contexts. Saving it
//! in the format of the page's own "Create a WebRTC-Internals dump" button lets the usual
//! importers (rtcstats dump-importer, fippo's webrtc-dump-importer) open a failed run's evidence.

use super::{deadline, Browser, BrowserError, TAB_PARAM};
use crate::timeline::TabId;
use serde_json::{Map, Value};

/// Serialising in the page keeps the transfer to one string and uses the store's own `toJSON`,
/// which is exactly the dump format in Chromium 156 (`record_` with `pid`, `url`,
/// `rtcConfiguration`, `stats`, `updateLog`).
/// How long reading the dump may take (a healthy page answers in well under a second).
const DUMP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

const DUMP_JS: &str = r#"(() => {
  const store = window.peerConnectionDataStore;
  if (!store) return null;
  const ua = navigator.userAgentData;
  return JSON.stringify({
    getUserMedia: window.userMediaRequests || [],
    PeerConnections: store,
    UserAgent: navigator.userAgent,
    UserAgentData: ua && ua.brands ? ua.brands : [],
  });
})()"#;

impl Browser {
    /// A webrtc-internals dump of every peer connection the browser currently has (closed and
    /// reloaded tabs' connections are gone: dump before destructive steps).
    pub async fn internals_dump(&self) -> Result<Value, BrowserError> {
        self.health.check(None)?;
        if let Some(why) = self.health.internals.get() {
            return Err(BrowserError::Internals(why.clone()));
        }
        let page = self.internals.as_ref().ok_or_else(|| BrowserError::Internals("page not open".into()))?;
        // A hung internals page must not hold the run for the standard 20 s at every snapshot:
        // it gets a shorter deadline once, and is then given up for dead.
        let result = match deadline("read webrtc-internals", DUMP_DEADLINE, async {
            page.evaluate_expression(DUMP_JS).await.map_err(BrowserError::cdp("read webrtc-internals"))
        })
        .await
        {
            Err(e @ BrowserError::Timeout { .. }) => {
                let _ = self.health.internals.set(format!("the webrtc-internals page stopped answering: {e}"));
                return Err(e);
            }
            r => r?,
        };
        let text = match result.value() {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(BrowserError::Internals("peerConnectionDataStore is missing (page not loaded?)".into())),
        };
        let raw: Value = serde_json::from_str(&text).map_err(|e| BrowserError::Internals(format!("unparsable store: {e}")))?;
        let dump = normalize(raw);
        validate_dump(&dump).map_err(BrowserError::Internals)?;
        Ok(dump)
    }
}

/// `e2e_tab=<tab>`: the marker every tab's URL carries.
pub fn tab_marker(tab: TabId) -> String {
    format!("{TAB_PARAM}={tab}")
}

/// The dump's peer connections that belong to `tab`, keyed as in the dump.
pub fn peer_connections_of_tab(dump: &Value, tab: TabId) -> Vec<(String, Value)> {
    let marker = tab_marker(tab);
    let Some(pcs) = dump.get("PeerConnections").and_then(Value::as_object) else { return Vec::new() };
    pcs.iter()
        .filter(|(_, pc)| {
            let url = pc.get("url").and_then(Value::as_str).unwrap_or("");
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            let query = query.split('#').next().unwrap_or("");
            query.split('&').any(|kv| kv == marker)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Brings older or partial shapes to the documented one: `rtcConfiguration` and stat `values`
/// as JSON strings, `updateLog` entries with a numeric `timestamp`.
fn normalize(mut dump: Value) -> Value {
    if let Some(pcs) = dump.get_mut("PeerConnections").and_then(Value::as_object_mut) {
        for pc in pcs.values_mut() {
            let Some(pc) = pc.as_object_mut() else { continue };
            if let Some(cfg) = pc.get_mut("rtcConfiguration") {
                if !cfg.is_string() {
                    *cfg = Value::String(cfg.to_string());
                }
            }
            if let Some(stats) = pc.get_mut("stats").and_then(Value::as_object_mut) {
                for series in stats.values_mut() {
                    if let Some(values) = series.get_mut("values") {
                        if !values.is_string() {
                            *values = Value::String(values.to_string());
                        }
                    }
                }
            }
            if let Some(log) = pc.get_mut("updateLog").and_then(Value::as_array_mut) {
                for entry in log.iter_mut().filter_map(Value::as_object_mut) {
                    if !entry.contains_key("timestamp") {
                        if let Some(t) = entry.get("time").filter(|t| t.is_number()).cloned() {
                            entry.insert("timestamp".into(), t);
                        }
                    }
                }
            }
        }
    }
    if dump.get("getUserMedia").is_none() {
        if let Some(o) = dump.as_object_mut() {
            o.insert("getUserMedia".into(), Value::Array(Vec::new()));
        }
    }
    dump
}

/// Checks the documented dump shape; the error names the first thing that is off.
pub fn validate_dump(dump: &Value) -> Result<(), String> {
    let top = dump.as_object().ok_or("dump is not an object")?;
    top.get("getUserMedia").and_then(Value::as_array).ok_or("getUserMedia is not an array")?;
    top.get("UserAgent").and_then(Value::as_str).ok_or("UserAgent is not a string")?;
    top.get("UserAgentData").and_then(Value::as_array).ok_or("UserAgentData is not an array")?;
    let pcs = top.get("PeerConnections").and_then(Value::as_object).ok_or("PeerConnections is not an object")?;
    for (key, pc) in pcs {
        check_pc(key, pc).map_err(|e| format!("PeerConnections[{key}]: {e}"))?;
    }
    Ok(())
}

fn check_pc(key: &str, pc: &Value) -> Result<(), String> {
    let (rid, lid) = key.split_once('-').ok_or("key is not <rid>-<lid>")?;
    if rid.parse::<u64>().is_err() || lid.parse::<u64>().is_err() {
        return Err("key is not <rid>-<lid>".into());
    }
    let pc: &Map<String, Value> = pc.as_object().ok_or("not an object")?;
    pc.get("pid").and_then(Value::as_u64).ok_or("pid is not a number")?;
    pc.get("url").and_then(Value::as_str).ok_or("url is not a string")?;
    let cfg = pc.get("rtcConfiguration").and_then(Value::as_str).ok_or("rtcConfiguration is not a string")?;
    serde_json::from_str::<Value>(cfg).map_err(|e| format!("rtcConfiguration is not JSON: {e}"))?;
    let stats = pc.get("stats").and_then(Value::as_object).ok_or("stats is not an object")?;
    for (name, series) in stats {
        let ok = ["startTime", "endTime", "statsType"].iter().all(|k| series.get(*k).is_some_and(Value::is_string));
        if !ok {
            return Err(format!("stats[{name}] lacks startTime/endTime/statsType"));
        }
        let values = series.get("values").and_then(Value::as_str).ok_or(format!("stats[{name}].values is not a string"))?;
        match serde_json::from_str::<Value>(values) {
            Ok(Value::Array(_)) => {}
            _ => return Err(format!("stats[{name}].values is not a JSON array")),
        }
    }
    let log = pc.get("updateLog").and_then(Value::as_array).ok_or("updateLog is not an array")?;
    for (i, entry) in log.iter().enumerate() {
        let ok = entry.get("timestamp").is_some_and(Value::is_number)
            && entry.get("type").is_some_and(Value::is_string)
            && entry.get("value").is_some_and(Value::is_string);
        if !ok {
            return Err(format!("updateLog[{i}] is not {{timestamp, type, value}}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "getUserMedia": [],
            "PeerConnections": {
                "8-1": {"pid": 13065, "url": "http://127.0.0.1:1/x?e2e_tab=1", "rtcConfiguration": {"iceServers": []},
                        "stats": {"IT01V1-[framesDecoded/s]": {"startTime": "a", "endTime": "b", "statsType": "inbound-rtp", "values": [1, 2]}},
                        "updateLog": [{"time": 1700000000000.0, "type": "onconnectionstatechange", "value": "\"connected\""}]},
                "8-2": {"pid": 13065, "url": "http://127.0.0.1:1/x?e2e_tab=10", "rtcConfiguration": "{}",
                        "stats": {}, "updateLog": []}
            },
            "UserAgent": "HeadlessChrome/156",
            "UserAgentData": [{"brand": "Chromium", "version": "156"}]
        })
    }

    #[test]
    fn normalizes_older_shapes_into_the_documented_one() {
        let raw = sample();
        assert!(validate_dump(&raw).is_err(), "object rtcConfiguration must be rejected before normalizing");
        let d = normalize(raw);
        validate_dump(&d).unwrap();
        assert_eq!(d["PeerConnections"]["8-1"]["stats"]["IT01V1-[framesDecoded/s]"]["values"], "[1,2]");
        assert_eq!(d["PeerConnections"]["8-1"]["updateLog"][0]["timestamp"], 1700000000000.0);
    }

    #[test]
    fn tab_filter_matches_whole_parameter() {
        let d = normalize(sample());
        let one: Vec<String> = peer_connections_of_tab(&d, 1).into_iter().map(|(k, _)| k).collect();
        assert_eq!(one, vec!["8-1".to_string()]);
        let ten: Vec<String> = peer_connections_of_tab(&d, 10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(ten, vec!["8-2".to_string()]);
        assert!(peer_connections_of_tab(&d, 2).is_empty());
    }

    #[test]
    fn rejects_bad_keys_and_logs() {
        let mut d = normalize(sample());
        d["PeerConnections"]["8-2"]["updateLog"] = json!([{"type": "x", "value": "y"}]);
        assert!(validate_dump(&d).unwrap_err().contains("updateLog[0]"));
        let mut d = normalize(sample());
        let pc = d["PeerConnections"]["8-2"].clone();
        d["PeerConnections"].as_object_mut().unwrap().insert("nokey".into(), pc);
        assert!(validate_dump(&d).unwrap_err().contains("<rid>-<lid>"));
    }
}
