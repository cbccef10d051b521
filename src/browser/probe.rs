//! The in-page probe and the decoding of what it reports.
//!
//! The probe (`probe.js`) is the only way to see what one viewer inside a page does: which
//! WebSocket carried which peer connection's signalling, which `<video>` shows which stream, and
//! what that video actually presents. It speaks the serde form of [`ProbeEvent`] directly, so the
//! driver side is a thin, strict decoder.

use crate::timeline::{EpochMs, ProbeEvent, LUMA_H, LUMA_W};
use serde::Deserialize;

const PROBE_SOURCE: &str = include_str!("probe.js");

/// The probe script with the binding name and the luma grid size filled in.
pub(super) fn script() -> String {
    PROBE_SOURCE
        .replace("__HELIX_BINDING__", super::PROBE_BINDING)
        .replace("__HELIX_LUMA_W__", &LUMA_W.to_string())
        .replace("__HELIX_LUMA_H__", &LUMA_H.to_string())
}

#[derive(Deserialize)]
struct Wire {
    t: EpochMs,
    #[serde(flatten)]
    event: ProbeEvent,
}

/// Decodes one binding payload (a JSON array of events, each with the page's `t`). Events that
/// do not decode are logged and skipped one by one, so one odd message never hides a batch.
pub(super) fn decode_batch(payload: &str) -> Vec<(EpochMs, ProbeEvent)> {
    let items: Vec<serde_json::Value> = match serde_json::from_str(payload) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(other) => vec![other],
        Err(e) => {
            tracing::warn!(error = %e, "probe payload is not JSON");
            return Vec::new();
        }
    };
    items
        .into_iter()
        .filter_map(|item| match serde_json::from_value::<Wire>(item.clone()) {
            Ok(w) => Some((w.t, w.event)),
            Err(e) => {
                tracing::warn!(error = %e, item = %truncate(&item.to_string(), 300), "undecodable probe event");
                None
            }
        })
        .collect()
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Direction, PcStateKind};

    #[test]
    fn script_has_no_placeholders_left() {
        let s = script();
        assert!(!s.contains("__HELIX_"), "unfilled placeholder in probe.js");
        assert!(s.contains(super::super::PROBE_BINDING));
        assert!(s.contains(&format!("const LUMA_W = {LUMA_W};")));
    }

    #[test]
    fn decodes_what_the_probe_sends() {
        let payload = r#"[
          {"kind":"ws_message","t":1700000000123.5,"ws":0,"dir":"received","msg":"PeerDisconnect"},
          {"kind":"pc_state","t":1700000000124,"pc":1,"which":"ice_connection","state":"connected"},
          {"kind":"stats","t":1700000000125,"pc":1,"stats":{"frames_decoded":30,"frames_received":null,
            "frame_width":320,"frame_height":180,"freeze_count":0,"total_freezes_duration":0,
            "packets_lost":0,"packets_received":100,"bytes_received":12345,
            "candidate_pair":"host 1.2.3.4:5 <-> prflx 6.7.8.9:10 (udp)"}},
          {"kind":"no_such_kind","t":1},
          {"kind":"frame","t":1700000000126,"video":0,"sample":{"video_width":320,"video_height":180,
            "presented":12,"mean_luma":88.5,"hash":"deadbeef","luma":""}}
        ]"#;
        let evs = decode_batch(payload);
        assert_eq!(evs.len(), 4, "the unknown kind is skipped, the rest kept: {evs:?}");
        assert_eq!(evs[0].0, 1700000000123.5);
        match &evs[0].1 {
            ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg } => assert_eq!(msg, "PeerDisconnect"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&evs[1].1, ProbeEvent::PcState { pc: 1, which: PcStateKind::IceConnection, state } if state == "connected"));
        match &evs[2].1 {
            ProbeEvent::Stats { pc: 1, stats } => {
                assert_eq!(stats.frames_decoded, Some(30));
                assert_eq!(stats.frames_received, None);
                assert_eq!(stats.candidate_pair.as_deref(), Some("host 1.2.3.4:5 <-> prflx 6.7.8.9:10 (udp)"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&evs[3].1, ProbeEvent::Frame { video: 0, sample } if sample.presented == 12));
    }

    #[test]
    fn garbage_is_dropped_not_fatal() {
        assert!(decode_batch("not json").is_empty());
        assert!(decode_batch("[]").is_empty());
    }
}
