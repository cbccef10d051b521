//! The browser's own record of every peer connection, from `chrome://webrtc-internals`.
//!
//! The probe sees what the page's JavaScript sees; webrtc-internals sees what libwebrtc did
//! (every state change with its time, every stat series), across all tabs and contexts. A dump
//! here is built the way the page's own "Download the webrtc-internals dump" button builds its
//! file in Chromium 156 (`tests/fixtures/webrtc-internals/chromium-156.json` is such a file), so
//! the importers that read that file (rtcstats dump-importer, fippo's webrtc-dump-importer) open
//! a failed run's evidence.

use super::{cdp, deadline, BrowserError, Chromium, TAB_PARAM};
use crate::timeline::TabId;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The internals page the browser keeps open. `keepRemovedConnections` (read by the page's own
/// script) keeps a peer connection's record after its page closed, reloaded or dropped it, so
/// one dump at the end holds every connection of the run instead of only the ones still alive.
/// Chromium samples stats for this page once a second by itself; its page reads no interval
/// parameter.
pub(super) const INTERNALS_URL: &str = "chrome://webrtc-internals/?keepRemovedConnections";

/// Open the internals page in a browser context of its own, created `disposeOnDetach` like the
/// tabs': a run killed outright leaves no page behind in a remote browser that outlives it (one
/// internals page sees the peer connections of every context). The context goes with a failed
/// open.
pub(super) async fn open_page(browser: &chromiumoxide::Browser) -> Result<(chromiumoxide::Page, BrowserContextId), BrowserError> {
    let params = CreateBrowserContextParams::builder().dispose_on_detach(true).build();
    let context = cdp("create the webrtc-internals context", browser.create_browser_context(params)).await?;
    let target = CreateTargetParams::builder().url(INTERNALS_URL).browser_context_id(context.clone()).build().map_err(BrowserError::Internals)?;
    match cdp("open webrtc-internals", browser.new_page(target)).await {
        Ok(page) => Ok((page, context)),
        Err(e) => {
            let _ = cdp("dispose the webrtc-internals context", browser.dispose_browser_context(context)).await;
            Err(e)
        }
    }
}

/// How long reading the dump may take (a healthy page answers in well under a second).
const DUMP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The object the page's download button serialises (Chromium 156's `dump_creator.js`): the
/// machine's figures, the time, the page's own stores (their `toJSON` gives the file's shape)
/// and the user agent with its high-entropy `fullVersionList`. Serialised in the page so the
/// transfer is one string; undefined figures drop out as they do in the downloaded file.
const DUMP_JS: &str = r#"(async () => {
  const store = window.peerConnectionDataStore;
  if (!store) return null;
  const ua = navigator.userAgentData;
  return JSON.stringify({
    cpuPerformance: navigator.cpuPerformance,
    deviceMemory: navigator.deviceMemory,
    hardwareConcurrency: navigator.hardwareConcurrency,
    timestamp: Date.now(),
    getUserMedia: window.userMediaRequests || [],
    PeerConnections: store,
    UserAgent: navigator.userAgent,
    UserAgentData: ua ? await ua.getHighEntropyValues(['fullVersionList']) : {},
  });
})()"#;

/// What a dump would hold, cheaply: each peer connection's update-log length (no stats, no
/// serialisation of the store), to decide whether a full dump adds anything.
const DIGEST_JS: &str = r#"(() => {
  const store = window.peerConnectionDataStore;
  if (!store) return null;
  const out = {};
  for (const [key, pc] of Object.entries(store)) {
    const log = pc.toJSON().updateLog;
    out[key] = Array.isArray(log) ? log.length : 0;
  }
  return JSON.stringify(out);
})()"#;

/// Peer connection key (`<rid>-<lid>`) → how many update-log entries it had.
pub type DumpDigest = BTreeMap<String, usize>;

impl Chromium {
    /// A webrtc-internals dump of every peer connection the browser has had since it started
    /// (the page keeps closed and reloaded tabs' connections, see [`INTERNALS_URL`]).
    pub async fn internals_dump(&self) -> Result<Value, BrowserError> {
        let text = self.read_internals(DUMP_JS).await?;
        let dump: Value = serde_json::from_str(&text).map_err(|e| BrowserError::Internals(format!("unparsable store: {e}")))?;
        validate_dump(&dump).map_err(BrowserError::Internals)?;
        Ok(dump)
    }

    /// What [`Browser::internals_dump`] would hold now, in brief (see [`digest_of`]).
    pub async fn internals_digest(&self) -> Result<DumpDigest, BrowserError> {
        let text = self.read_internals(DIGEST_JS).await?;
        serde_json::from_str(&text).map_err(|e| BrowserError::Internals(format!("unparsable digest: {e}")))
    }

    /// Evaluate one of the page's readers, which answer a JSON string (or null before the page
    /// has loaded its stores).
    async fn read_internals(&self, js: &str) -> Result<String, BrowserError> {
        self.health.check(None)?;
        if let Some(why) = self.health.internals.get() {
            return Err(BrowserError::Internals(why.clone()));
        }
        let page = self.internals.as_ref().ok_or_else(|| BrowserError::Internals("page not open".into()))?;
        // A hung internals page must not hold the run for the standard 20 s at every snapshot:
        // it gets a shorter deadline once, and is then given up for dead.
        let result = match deadline("read webrtc-internals", DUMP_DEADLINE, async {
            page.evaluate_expression(js).await.map_err(BrowserError::cdp("read webrtc-internals"))
        })
        .await
        {
            Err(e @ BrowserError::Timeout { .. }) => {
                let _ = self.health.internals.set(format!("the webrtc-internals page stopped answering: {e}"));
                return Err(e);
            }
            r => r?,
        };
        match result.value() {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(BrowserError::Internals("peerConnectionDataStore is missing (page not loaded?)".into())),
        }
    }
}

/// One browser's webrtc-internals dump. A run with several browsers has one per browser (each
/// page knows only its own browser's connections); `browser` is the browser's place in the
/// run's list of remote browsers, `None` for a run's one local browser.
#[derive(Debug, Clone)]
pub struct BrowserDump {
    pub browser: Option<usize>,
    pub dump: Value,
}

impl BrowserDump {
    /// Where this browser's dumps go under `webrtc-internals/`: `""` for the local browser,
    /// `browser-<K>/` for the K-th remote one.
    pub fn dir(&self) -> String {
        browser_dir(self.browser)
    }
}

fn browser_dir(browser: Option<usize>) -> String {
    browser.map(|k| format!("browser-{k}/")).unwrap_or_default()
}

/// The digest of several browsers' stores: each connection keyed by its browser's directory
/// and its own key (two browsers number their connections alike).
pub fn digest_of_browsers(digests: impl IntoIterator<Item = (Option<usize>, DumpDigest)>) -> DumpDigest {
    digests.into_iter().flat_map(|(b, d)| d.into_iter().map(move |(k, n)| (format!("{}{k}", browser_dir(b)), n))).collect()
}

/// [`digest_of_browsers`] of the dumps themselves.
pub fn digest_of_dumps(dumps: &[BrowserDump]) -> DumpDigest {
    digest_of_browsers(dumps.iter().map(|d| (d.browser, digest_of(&d.dump))))
}

/// A dump's digest: each peer connection's update-log length. A dump adds information over
/// another when it has a connection the other lacks or a longer log for one (a state change,
/// an API call); stats alone do not count, as every later dump has more of them.
pub fn digest_of(dump: &Value) -> DumpDigest {
    let Some(pcs) = dump.get("PeerConnections").and_then(Value::as_object) else { return DumpDigest::new() };
    pcs.iter().map(|(k, pc)| (k.clone(), pc.get("updateLog").and_then(Value::as_array).map_or(0, Vec::len))).collect()
}

/// Whether `now` holds anything `before` did not (see [`digest_of`]).
pub fn digest_adds(now: &DumpDigest, before: &DumpDigest) -> bool {
    now.iter().any(|(k, n)| before.get(k).is_none_or(|b| n > b))
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

/// Checks a dump against the shape Chromium 156's page writes; the error names the first thing
/// that is off. What the page writes only in passing is accepted too: a connection whose record
/// exists before its initialisation arrived (`pid` -1, `rtcConfiguration` `[]`, `constraints`
/// `{}`), a stat series with no sample yet (`{}`), navigator figures the browser does not expose
/// (left out, as `JSON.stringify` drops them).
pub fn validate_dump(dump: &Value) -> Result<(), String> {
    let top = dump.as_object().ok_or("dump is not an object")?;
    for key in ["cpuPerformance", "deviceMemory", "hardwareConcurrency"] {
        if top.get(key).is_some_and(|v| !v.is_number()) {
            return Err(format!("{key} is not a number"));
        }
    }
    top.get("timestamp").and_then(Value::as_f64).ok_or("timestamp is not a number")?;
    top.get("getUserMedia").and_then(Value::as_array).ok_or("getUserMedia is not an array")?;
    top.get("UserAgent").and_then(Value::as_str).ok_or("UserAgent is not a string")?;
    let uad = top.get("UserAgentData").and_then(Value::as_object).ok_or("UserAgentData is not an object")?;
    if uad.get("brands").is_some_and(|b| !b.is_array()) {
        return Err("UserAgentData.brands is not an array".into());
    }
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
    pc.get("pid").and_then(Value::as_i64).ok_or("pid is not an integer")?;
    pc.get("url").and_then(Value::as_str).ok_or("url is not a string")?;
    match pc.get("rtcConfiguration") {
        Some(Value::String(cfg)) => {
            serde_json::from_str::<Value>(cfg).map_err(|e| format!("rtcConfiguration is not JSON: {e}"))?;
        }
        Some(Value::Array(a)) if a.is_empty() => {}
        _ => return Err("rtcConfiguration is not a string".into()),
    }
    if pc.get("constraints").is_some_and(|c| !c.is_string() && !c.is_object()) {
        return Err("constraints is neither a string nor an object".into());
    }
    let stats = pc.get("stats").and_then(Value::as_object).ok_or("stats is not an object")?;
    for (name, series) in stats {
        let series = series.as_object().ok_or(format!("stats[{name}] is not an object"))?;
        if series.is_empty() {
            continue;
        }
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
            return Err(format!("updateLog[{i}] is not {{type, value, timestamp}}"));
        }
    }
    Ok(())
}

/// A JSON value's type as the shape comparison names it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The shape two dumps must share to be read alike: `path → JSON type` for the top level, the
/// user agent data, the first peer connection (as `PeerConnections.*`), its first non-empty stat
/// series (`….stats.*`) and its first update-log entry (`….updateLog[]`).
pub fn dump_shape(dump: &Value) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    let mut level = |prefix: &str, v: &Value| {
        for (k, v) in v.as_object().into_iter().flatten() {
            out.insert(format!("{prefix}{k}"), json_type(v));
        }
    };
    level("", dump);
    level("UserAgentData.", &dump["UserAgentData"]);
    if let Some(pc) = dump["PeerConnections"].as_object().and_then(|pcs| pcs.values().next()) {
        level("PeerConnections.*.", pc);
        let series = pc["stats"].as_object().and_then(|s| s.values().find(|v| v.as_object().is_some_and(|o| !o.is_empty())));
        if let Some(series) = series {
            level("PeerConnections.*.stats.*.", series);
        }
        if let Some(entry) = pc["updateLog"].get(0) {
            level("PeerConnections.*.updateLog[].", entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The file Chromium 156's own download button wrote (see the fixture's README).
    const CHROMIUM_156: &str = include_str!("../../tests/fixtures/webrtc-internals/chromium-156.json");

    fn chromium() -> Value {
        serde_json::from_str(CHROMIUM_156).unwrap()
    }

    /// The fixture with its two connections moved to tabs 1 and 10.
    fn two_tabs() -> Value {
        let mut d = chromium();
        let pcs = d["PeerConnections"].as_object_mut().unwrap();
        let mut urls = ["http://127.0.0.1:1/x?e2e_tab=1", "http://127.0.0.1:1/x?a=b&e2e_tab=10#f"].into_iter();
        for pc in pcs.values_mut() {
            pc["url"] = json!(urls.next().unwrap());
        }
        d
    }

    #[test]
    fn accepts_the_file_chromium_itself_downloads() {
        let d = chromium();
        validate_dump(&d).unwrap();
        // The fixture is what it claims to be: Chromium 156's shape, with connections and stats.
        assert!(d["UserAgent"].as_str().unwrap().contains("Chrome/156."));
        assert!(d["UserAgentData"]["fullVersionList"].is_array());
        assert_eq!(d["PeerConnections"].as_object().unwrap().len(), 2);
        let shape = dump_shape(&d);
        for (k, t) in [("timestamp", "number"), ("UserAgentData", "object"), ("PeerConnections.*.rtcConfiguration", "string")] {
            assert_eq!(shape.get(k), Some(&t), "{shape:?}");
        }
        assert_eq!(shape.get("PeerConnections.*.stats.*.values"), Some(&"string"));
        assert_eq!(shape.get("PeerConnections.*.updateLog[].timestamp"), Some(&"number"));
    }

    #[test]
    fn rejects_what_chromium_does_not_write() {
        for (what, change, err) in [
            ("brands as an array", ("UserAgentData", json!([{"brand": "Chromium", "version": "156"}])), "UserAgentData"),
            ("a string figure", ("hardwareConcurrency", json!("2")), "hardwareConcurrency"),
            ("no time", ("timestamp", Value::Null), "timestamp"),
        ] {
            let mut d = chromium();
            d[change.0] = change.1;
            assert!(validate_dump(&d).unwrap_err().contains(err), "{what}");
        }
        let mut d = two_tabs();
        let key = d["PeerConnections"].as_object().unwrap().keys().next().unwrap().clone();
        d["PeerConnections"][&key]["updateLog"] = json!([{"type": "x", "value": "y"}]);
        assert!(validate_dump(&d).unwrap_err().contains("updateLog[0]"));
        let mut d = chromium();
        let pc = d["PeerConnections"][&key].clone();
        d["PeerConnections"].as_object_mut().unwrap().insert("nokey".into(), pc);
        assert!(validate_dump(&d).unwrap_err().contains("<rid>-<lid>"));
    }

    #[test]
    fn accepts_what_the_page_writes_in_passing() {
        let mut d = chromium();
        d.as_object_mut().unwrap().remove("cpuPerformance");
        d["PeerConnections"]
            .as_object_mut()
            .unwrap()
            .insert("9-1".into(), json!({"pid": -1, "constraints": {}, "rtcConfiguration": [], "stats": {"x": {}}, "updateLog": [], "url": ""}));
        validate_dump(&d).unwrap();
    }

    #[test]
    fn tab_filter_matches_whole_parameter() {
        let d = two_tabs();
        let keys: Vec<String> = d["PeerConnections"].as_object().unwrap().keys().cloned().collect();
        let of = |tab| peer_connections_of_tab(&d, tab).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(of(1), vec![keys[0].clone()]);
        assert_eq!(of(10), vec![keys[1].clone()]);
        assert!(of(2).is_empty());
    }

    #[test]
    fn a_dump_adds_information_with_a_connection_or_a_log_entry_not_with_stats() {
        let before = digest_of(&chromium());
        assert_eq!(before.len(), 2);
        let mut more_stats = chromium();
        for pc in more_stats["PeerConnections"].as_object_mut().unwrap().values_mut() {
            pc["stats"].as_object_mut().unwrap().clear();
        }
        assert!(!digest_adds(&digest_of(&more_stats), &before));
        assert!(!digest_adds(&before, &before));
        let mut logged = chromium();
        let key = before.keys().next().unwrap().clone();
        logged["PeerConnections"][&key]["updateLog"].as_array_mut().unwrap().push(json!({"type": "close", "value": "", "timestamp": 1.0}));
        assert!(digest_adds(&digest_of(&logged), &before));
        let mut fewer = chromium();
        fewer["PeerConnections"].as_object_mut().unwrap().remove(&key);
        assert!(!digest_adds(&digest_of(&fewer), &before));
        assert!(digest_adds(&before, &digest_of(&fewer)));
    }
}
