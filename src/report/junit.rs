//! `junit.xml`: the run as CI systems read test results — one suite per scenario, one test case
//! for the scenario itself and one per invariant, failures carrying the message and where the
//! evidence is.
//!
//! The shape follows the Ant JUnit schema most CI importers validate against: `testsuites`
//! holds `testsuite`s (name, tests, failures, errors, skipped, time, timestamp, hostname, id,
//! package), each holding `properties`, `testcase`s (name, classname, time) with
//! `failure`/`error` (message, type), then `system-out` and `system-err`.

use super::digest::tabs_named;
use super::{ScenarioResult, Summary, Verdict};
use crate::verdict::InvariantResult;
use std::fmt::Write;

/// Escape for XML text and attribute values; characters XML 1.0 forbids are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Where a reader finds the evidence of one failed invariant.
pub fn evidence(summary: &Summary, scenario: &ScenarioResult, inv: &InvariantResult) -> Vec<String> {
    let mut out = vec![format!("report.html#{}", anchor(&scenario.name, &inv.name))];
    let first = scenario.state_at_failure.as_ref().and_then(|s| s.get("invariant")).and_then(|v| v.as_str()) == Some(inv.name.as_str());
    if first {
        out.push("summary.json (scenarios[].state_at_failure: correlation table and server state at this failure)".into());
    }
    out.push(format!("timeline.jsonl (at {:.0} ms since the epoch)", inv.at));
    for tab in tabs_named(&inv.message) {
        if let Some(t) = summary.tabs.iter().find(|t| t.tab == tab) {
            if let Some(s) = &t.screenshot {
                out.push(s.clone());
            }
        }
        out.push(format!("contact-sheets/tab-{tab}.png"));
        out.push(format!("webrtc-internals/tab-{tab}/"));
    }
    out.push("logs/".into());
    out
}

/// An HTML id for an invariant of a scenario, shared by this file and the HTML report.
pub fn anchor(scenario: &str, invariant: &str) -> String {
    let slug: String = format!("{scenario}--{invariant}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("inv-{slug}")
}

pub fn render(summary: &Summary, hostname: &str) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    let mut suites = String::new();
    for (id, sc) in summary.scenarios.iter().enumerate() {
        let s = suite(summary, sc, id, hostname);
        tests += s.tests;
        failures += s.failures;
        errors += s.errors;
        suites.push_str(&s.xml);
    }
    // A run that failed outside any scenario (no browser, no stack, Ctrl-C between scenarios)
    // is still a test that errs, or CI would read it as green.
    let scenario_erred = summary.scenarios.iter().any(|s| matches!(s.verdict, Verdict::Error | Verdict::Interrupted));
    let run_erred = matches!(summary.verdict, Verdict::Error | Verdict::Interrupted) && !scenario_erred;
    if summary.scenarios.is_empty() || run_erred {
        let mut s = String::new();
        let _ = write!(
            s,
            "  <testsuite name=\"helix-e2e\" tests=\"1\" failures=\"0\" errors=\"{}\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\" hostname=\"{}\" id=\"{}\" package=\"helix-e2e\">\n    <properties>\n{}    </properties>\n    <testcase name=\"run\" classname=\"helix-e2e\" time=\"{:.3}\">",
            u8::from(run_erred),
            summary.duration_s,
            escape(&timestamp(summary)),
            escape(hostname),
            summary.scenarios.len(),
            properties(summary),
            summary.duration_s
        );
        if run_erred {
            let msg = summary.error.clone().unwrap_or_else(|| verdict_word(summary.verdict).to_string());
            let _ = write!(
                s,
                "\n      <error message=\"{}\" type=\"{}\">{}</error>\n    ",
                escape(&msg),
                verdict_word(summary.verdict),
                escape(&format!("{msg}\nreplay: {}\nevidence: report.html, timeline.jsonl, logs/", summary.replay))
            );
        }
        s.push_str("</testcase>\n    <system-out></system-out>\n    <system-err></system-err>\n  </testsuite>\n");
        tests += 1;
        errors += usize::from(run_erred);
        suites.push_str(&s);
    }
    let _ = writeln!(
        x,
        "<testsuites name=\"helix-e2e {}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
        escape(&summary.run_id),
        summary.duration_s
    );
    x.push_str(&suites);
    x.push_str("</testsuites>\n");
    x
}

struct Suite {
    xml: String,
    tests: usize,
    failures: usize,
    errors: usize,
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
        Verdict::Interrupted => "interrupted",
    }
}

fn timestamp(summary: &Summary) -> String {
    // The schema's xs:dateTime without a zone: cut the RFC 3339 offset and fraction.
    summary.started_at.get(..19).unwrap_or(&summary.started_at).to_string()
}

fn properties(summary: &Summary) -> String {
    let mut p = String::new();
    for (k, v) in [
        ("run_id", summary.run_id.as_str()),
        ("seed", &summary.seed.to_string()),
        ("target", &summary.target),
        ("replay", &summary.replay),
        ("artifacts", &summary.artifacts),
        ("verdict", verdict_word(summary.verdict)),
    ] {
        let _ = writeln!(p, "      <property name=\"{}\" value=\"{}\"/>", escape(k), escape(v));
    }
    p
}

fn suite(summary: &Summary, sc: &ScenarioResult, id: usize, hostname: &str) -> Suite {
    let mut cases = String::new();
    let (mut failures, mut errors) = (0, 0);
    // The scenario as a whole: fails with its first failure, errs with its error.
    let _ = write!(cases, "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">", escape(&sc.name), escape(&sc.name), sc.duration_s);
    match sc.verdict {
        Verdict::Pass => {}
        Verdict::Fail => {
            failures += 1;
            let failed: Vec<&InvariantResult> = sc.invariants.iter().filter(|i| !i.passed).collect();
            let msg = format!("{} invariant(s) failed: {}", failed.len(), failed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "));
            let body =
                format!("{msg}\nduring operation: {}\nreplay: {}\nevidence: report.html, report.md", sc.failed_op.as_deref().unwrap_or("-"), summary.replay);
            let _ = write!(cases, "\n      <failure message=\"{}\" type=\"fail\">{}</failure>\n    ", escape(&msg), escape(&body));
        }
        Verdict::Error | Verdict::Interrupted => {
            errors += 1;
            let msg = sc.error.clone().or_else(|| summary.error.clone()).unwrap_or_else(|| verdict_word(sc.verdict).to_string());
            // A scenario cut short by Ctrl-C erred because of the interruption, not the system.
            let kind = if summary.verdict == Verdict::Interrupted { "interrupted" } else { verdict_word(sc.verdict) };
            let body = format!(
                "{msg}\nduring operation: {}\nreplay: {}\nevidence: report.html, timeline.jsonl, logs/",
                sc.failed_op.as_deref().unwrap_or("-"),
                summary.replay
            );
            let _ = write!(cases, "\n      <error message=\"{}\" type=\"{}\">{}</error>\n    ", escape(&msg), kind, escape(&body));
        }
    }
    cases.push_str("</testcase>\n");
    for inv in &sc.invariants {
        let _ = write!(cases, "    <testcase name=\"{}\" classname=\"{}.invariants\" time=\"0.000\">", escape(&inv.name), escape(&sc.name));
        if !inv.passed {
            failures += 1;
            let body = format!("{}\nevidence:\n  {}", inv.message, evidence(summary, sc, inv).join("\n  "));
            let _ = write!(cases, "\n      <failure message=\"{}\" type=\"invariant\">{}</failure>\n    ", escape(&inv.message), escape(&body));
        }
        cases.push_str("</testcase>\n");
    }
    let tests = 1 + sc.invariants.len();
    let out = sc.invariants.iter().map(|i| format!("{} {}: {}", if i.passed { "PASS" } else { "FAIL" }, i.name, i.message)).collect::<Vec<_>>().join("\n");
    let xml = format!(
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\" hostname=\"{}\" id=\"{id}\" package=\"helix-e2e\">\n    <properties>\n{}    </properties>\n{cases}    <system-out>{}</system-out>\n    <system-err>{}</system-err>\n  </testsuite>\n",
        escape(&sc.name),
        sc.duration_s,
        escape(&timestamp(summary)),
        escape(hostname),
        properties(summary),
        escape(&out),
        escape(sc.error.as_deref().unwrap_or("")),
    );
    Suite { xml, tests, failures, errors }
}

/// This machine's name for `hostname=`; "localhost" when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(verdict: Verdict, scenarios: Vec<ScenarioResult>) -> Summary {
        Summary {
            run_id: "r".into(),
            verdict,
            seed: 1,
            target: "t".into(),
            started_at: "2026-01-01T00:00:00+00:00".into(),
            duration_s: 1.0,
            replay: "helix-e2e run x --seed 1".into(),
            scenarios,
            tabs: vec![],
            artifacts: "a".into(),
            error: Some("interrupted by Ctrl-C".into()),
            logs_missing: vec![],
        }
    }

    fn passed() -> ScenarioResult {
        ScenarioResult {
            name: "x".into(),
            verdict: Verdict::Pass,
            invariants: vec![InvariantResult::pass("i", "ok")],
            detections: vec![],
            failed_op: None,
            state_at_failure: None,
            error: None,
            duration_s: 1.0,
            replay: "helix-e2e run x --seed 1".into(),
        }
    }

    #[test]
    fn a_run_interrupted_between_scenarios_is_an_error_not_green() {
        let x = render(&summary(Verdict::Interrupted, vec![passed()]), "h");
        assert!(x.contains("<testsuites name=\"helix-e2e r\" tests=\"3\" failures=\"0\" errors=\"1\""), "{x}");
        assert!(x.contains("<error message=\"interrupted by Ctrl-C\" type=\"interrupted\">"), "{x}");
        let x = render(&summary(Verdict::Pass, vec![passed()]), "h");
        assert!(x.contains("tests=\"2\" failures=\"0\" errors=\"0\"") && !x.contains("<error"), "{x}");
    }

    #[test]
    fn a_scenario_cut_short_by_ctrl_c_errs_as_interrupted() {
        let mut sc = passed();
        sc.verdict = Verdict::Error;
        sc.error = Some("interrupted: interrupted by Ctrl-C".into());
        let x = render(&summary(Verdict::Interrupted, vec![sc]), "h");
        assert!(x.contains("errors=\"1\"") && x.contains("type=\"interrupted\""), "{x}");
        assert!(!x.contains("name=\"run\""), "no extra run case when a scenario carries the error: {x}");
    }

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}\n"), "a&lt;b&gt;&amp;&quot;c&apos;\n");
    }
}
