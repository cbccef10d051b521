//! What a watch prints on stdout: each named failure and each probe's result, one line each, for
//! people or (`--json`) one object a line for machines. Times are RFC 3339 in UTC, to the
//! millisecond, as log shippers parse them.

use crate::catalog::FailureId;
use crate::timeline::EpochMs;
use crate::verdict::detectors::Detection;

/// A named failure as a line of `--json` output.
#[derive(serde::Serialize)]
struct NamedLine<'a> {
    event: &'static str,
    id: FailureId,
    name: &'a str,
    first_symptom: String,
    decided: String,
    message: &'a str,
}

fn rfc3339(ms: EpochMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}

/// How a named failure is printed on stdout.
pub fn line(d: &Detection, json: bool) -> String {
    if json {
        let l = NamedLine {
            event: "named",
            id: d.fault,
            name: &d.name,
            first_symptom: rfc3339(d.first_symptom),
            decided: rfc3339(d.decided_at),
            message: &d.message,
        };
        serde_json::to_string(&l).unwrap_or_default()
    } else {
        format!("{} {}: {} (first symptom {})", rfc3339(d.decided_at), d.label(), d.message, rfc3339(d.first_symptom))
    }
}

/// How a probe's result is printed on stdout.
pub fn probe_line(r: &super::probe::ProbeResult, json: bool) -> String {
    if json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["event"] = "probe".into();
        v["at"] = rfc3339(r.at).into();
        return v.to_string();
    }
    let first = r.first_frame_s.map(|s| format!(", first frame after {s:.2} s")).unwrap_or_default();
    let browser = r.browser_start_s.map(|s| format!(" (browser ready in {s:.2} s)")).unwrap_or_default();
    let ses = r.session.as_deref().unwrap_or("no session");
    let what = if r.ok { "ok" } else { "FAILED" };
    format!("{} probe {what} (canary {ses}): {}{first}{browser}", rfc3339(r.at), r.detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_line_carries_the_id_the_name_and_the_evidence() {
        let x = Detection {
            fault: FailureId::F7,
            name: "lobby-mismatch".into(),
            tab: None,
            message: "Wolf has kept session 42".into(),
            first_symptom: 1_795_238_654_000.0,
            decided_at: 1_795_238_655_500.0,
        };
        let v: serde_json::Value = serde_json::from_str(&line(&x, true)).unwrap();
        assert_eq!(v["event"], "named");
        assert_eq!(v["id"], "F7");
        assert_eq!(v["name"], "lobby-mismatch");
        assert_eq!(v["message"], "Wolf has kept session 42");
        assert_eq!(v["first_symptom"], "2026-11-21T05:24:14.000Z");
        assert_eq!(v["decided"], "2026-11-21T05:24:15.500Z");
        assert_eq!(line(&x, false), "2026-11-21T05:24:15.500Z F7 lobby-mismatch: Wolf has kept session 42 (first symptom 2026-11-21T05:24:14.000Z)");
    }
}
