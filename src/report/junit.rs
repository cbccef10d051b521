//! `junit.xml`: the run as CI systems read test results, so a CI UI (Jenkins, GitLab, GitHub
//! test reporters) shows what broke, once, with the command that reproduces it.
//!
//! Why one file of over 400 lines: the counting rule below and the two schemas' constraints
//! bind every element written here; half of the file is the tests of that rule.
//!
//! Shape: one `testsuite` per scenario, one `testcase` per invariant check of it (classname: the
//! scenario). Counting rule — every broken thing is exactly one non-passing test case, and a run
//! that was not green never reads as green:
//! - an invariant check is one test case; a failed check is one `<failure type="invariant">`;
//! - a named detection (`F4 …`, `B2 browser-died`) is a failed check: the runner records it
//!   among the scenario's invariants under its label, and that test case is the detection's
//!   (`type="detection"`, with its first symptom and decision time). A detection that is not
//!   among the invariants (a summary written by another path) gets a test case of its own —
//!   never a second one;
//! - a scenario that erred (an operation failed, the run was interrupted) gets one more test case,
//!   `error`, with one `<error>`: an error is not an invariant, so nothing counts it twice;
//! - a scenario whose verdict is not `pass` but has no non-passing case yet gets one `verdict`
//!   failure;
//! - a run that failed outside any scenario (no browser, no stack, Ctrl-C between scenarios) gets
//!   a `helix-e2e` suite whose one `run` case errs; a run without scenarios still has that case.
//!
//! Every failure and error body carries the scenario's minimal replay command
//! (`ScenarioResult::replay`), the operation that was running, and where the evidence is.
//!
//! The document validates against both schemas CI importers use (tests/junit_schemas.rs checks
//! it with xmllint): Jenkins' junit-10.xsd and the Ant JUnit.xsd. The Ant schema is the strict
//! one: no attributes on `testsuites`; `testsuite` needs name, timestamp (no zone), hostname,
//! tests, failures, errors, time, id and package, and holds `properties`, `testcase`s,
//! `system-out`, `system-err` in that order; a `testcase` (name, classname, time) holds at most
//! one `failure` or `error` and nothing else.
//!
//! Written by hand rather than with quick-junit: quick-junit always puts attributes on
//! `testsuites`, zones its timestamps and leaves out empty `properties`, all of which the Ant
//! schema rejects.

use super::digest::tabs_named;
use super::{ScenarioResult, Summary, Verdict};
use crate::verdict::detectors::Detection;
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

/// Escape for an attribute value: as [`escape`], and line breaks and tabs as character
/// references, which a parser would otherwise turn into spaces.
fn attr(s: &str) -> String {
    escape(s).replace('\t', "&#9;").replace('\n', "&#10;").replace('\r', "&#13;")
}

/// An attribute the Ant schema requires to be a non-empty token.
fn token(s: &str) -> String {
    if escape(s).trim().is_empty() {
        "(unnamed)".into()
    } else {
        attr(s.trim())
    }
}

/// Seconds as both schemas' decimal (never `NaN` or negative).
fn secs(s: f64) -> String {
    format!("{:.3}", if s.is_finite() && s >= 0.0 { s } else { 0.0 })
}

/// A file of the scenario's own evidence (timeline, screenshots, dumps, logs): beside
/// `junit.xml`, or, in a merged run, in the shard directory where it stayed. The report and the
/// summary are always beside `junit.xml`.
fn of_scenario(sc: &ScenarioResult, path: &str) -> String {
    match &sc.evidence_dir {
        Some(dir) => format!("{}/{path}", dir.trim_end_matches('/')),
        None => path.to_string(),
    }
}

/// Where a reader finds the evidence of one failed invariant.
pub fn evidence(summary: &Summary, scenario: &ScenarioResult, inv: &InvariantResult) -> Vec<String> {
    let mut out = vec![format!("report.html#{}", anchor(&scenario.name, &inv.name))];
    let first = scenario.state_at_failure.as_ref().and_then(|s| s.get("invariant")).and_then(|v| v.as_str()) == Some(inv.name.as_str());
    if first {
        out.push("summary.json (scenarios[].state_at_failure: correlation table and server state at this failure)".into());
    }
    out.push(of_scenario(scenario, &format!("timeline.jsonl (at {:.0} ms since the epoch)", inv.at)));
    for tab in tabs_named(&inv.message) {
        if let Some(t) = summary.tabs.iter().find(|t| t.tab == tab) {
            if let Some(s) = &t.screenshot {
                out.push(of_scenario(scenario, s));
            }
        }
        out.push(of_scenario(scenario, &format!("contact-sheets/tab-{tab}.png")));
        out.push(of_scenario(scenario, &format!("webrtc-internals/tab-{tab}/")));
    }
    out.push(of_scenario(scenario, "logs/"));
    out
}

/// An HTML id for an invariant of a scenario, shared by this file and the HTML report.
pub fn anchor(scenario: &str, invariant: &str) -> String {
    let slug: String = format!("{scenario}--{invariant}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("inv-{slug}")
}

/// What a test case came to.
enum Outcome {
    Passed,
    /// A check that did not hold: `kind` is the `type` attribute (`invariant`, `detection`,
    /// `verdict`).
    Failed {
        kind: &'static str,
        message: String,
        body: String,
    },
    /// The scenario or run could not go on: `kind` is `error` or `interrupted`.
    Erred {
        kind: &'static str,
        message: String,
        body: String,
    },
}

struct Case {
    name: String,
    classname: String,
    time_s: f64,
    outcome: Outcome,
}

struct Suite {
    name: String,
    time_s: f64,
    properties: Vec<(&'static str, String)>,
    cases: Vec<Case>,
    system_out: String,
    system_err: String,
}

impl Suite {
    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.outcome, Outcome::Failed { .. })).count()
    }
    fn errors(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.outcome, Outcome::Erred { .. })).count()
    }
}

pub fn render(summary: &Summary, hostname: &str) -> String {
    let mut suites: Vec<Suite> = summary.scenarios.iter().map(|sc| scenario_suite(summary, sc)).collect();
    // A run that failed outside any scenario is still a test that errs, or CI would read it as
    // green; so is a run whose verdict no case carries.
    let scenario_erred = summary.scenarios.iter().any(|s| matches!(s.verdict, Verdict::Error | Verdict::Interrupted));
    let run_erred = matches!(summary.verdict, Verdict::Error | Verdict::Interrupted) && !scenario_erred;
    let nothing_failed = suites.iter().all(|s| s.failures() + s.errors() == 0);
    let unexplained = summary.verdict != Verdict::Pass && nothing_failed;
    if summary.scenarios.is_empty() || run_erred || unexplained {
        suites.push(run_suite(summary, run_erred || unexplained));
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    let timestamp = timestamp(summary);
    let host = token(hostname);
    for (id, s) in suites.iter().enumerate() {
        write_suite(&mut x, s, id, &timestamp, &host);
    }
    x.push_str("</testsuites>\n");
    x
}

fn write_suite(x: &mut String, s: &Suite, id: usize, timestamp: &str, host: &str) {
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{}\" timestamp=\"{timestamp}\" hostname=\"{host}\" id=\"{id}\" package=\"helix-e2e\">",
        token(&s.name),
        s.cases.len(),
        s.failures(),
        s.errors(),
        secs(s.time_s),
    );
    x.push_str("    <properties>\n");
    for (k, v) in &s.properties {
        let _ = writeln!(x, "      <property name=\"{k}\" value=\"{}\"/>", attr(v));
    }
    x.push_str("    </properties>\n");
    for c in &s.cases {
        let _ = write!(x, "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"", token(&c.name), token(&c.classname), secs(c.time_s));
        match &c.outcome {
            Outcome::Passed => x.push_str("/>\n"),
            Outcome::Failed { kind, message, body } => {
                let _ = write!(x, ">\n      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n    </testcase>\n", attr(message), escape(body));
            }
            Outcome::Erred { kind, message, body } => {
                let _ = write!(x, ">\n      <error message=\"{}\" type=\"{kind}\">{}</error>\n    </testcase>\n", attr(message), escape(body));
            }
        }
    }
    let _ = write!(x, "    <system-out>{}</system-out>\n    <system-err>{}</system-err>\n  </testsuite>\n", escape(&s.system_out), escape(&s.system_err));
}

/// The Ant schema's `xs:dateTime` without a zone or fraction: the run's local start time.
fn timestamp(summary: &Summary) -> String {
    chrono::DateTime::parse_from_rfc3339(&summary.started_at)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00".into())
}

fn properties(summary: &Summary, replay: &str, verdict: Verdict) -> Vec<(&'static str, String)> {
    vec![
        ("run_id", summary.run_id.clone()),
        ("seed", summary.seed.to_string()),
        ("target", summary.target.clone()),
        ("replay", replay.to_string()),
        ("run_replay", summary.replay.clone()),
        ("artifacts", summary.artifacts.clone()),
        ("verdict", verdict.as_str().to_string()),
        // Per streaming tab: median, p95, probes and lost probes (`frames::input`).
        ("input_latency", summary.input_latency.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
    ]
}

/// The lines every failure and error body ends with: how to get it again, during what, where to
/// look.
fn context(summary: &Summary, sc: &ScenarioResult, evidence: &[String]) -> String {
    format!(
        "scenario: {}\nduring operation: {}\nreplay (this scenario alone): {}\nreplay (the whole run): {}\nevidence:\n  {}",
        sc.name,
        sc.failed_op.as_deref().unwrap_or("-"),
        summary.replay_of(sc),
        summary.replay,
        evidence.join("\n  ")
    )
}

fn invariant_case(summary: &Summary, sc: &ScenarioResult, inv: &InvariantResult) -> Case {
    let outcome = if inv.passed {
        Outcome::Passed
    } else {
        let detection = sc.detections.iter().find(|d| d.label() == inv.name);
        let mut body = format!("{}\n", inv.message);
        if let Some(d) = detection {
            let _ = writeln!(body, "named {:.1} s after its first symptom ({:.0} ms since the epoch)", d.latency_ms() / 1000.0, d.first_symptom);
        }
        body.push_str(&context(summary, sc, &evidence(summary, sc, inv)));
        Outcome::Failed { kind: if detection.is_some() { "detection" } else { "invariant" }, message: inv.message.clone(), body }
    };
    Case { name: inv.name.clone(), classname: sc.name.clone(), time_s: 0.0, outcome }
}

/// A detection the invariants do not carry, as the failed check it is.
fn detection_case(summary: &Summary, sc: &ScenarioResult, d: &Detection) -> Case {
    let inv = InvariantResult { name: d.label(), passed: false, message: d.message.clone(), at: d.decided_at };
    let mut case = invariant_case(summary, sc, &inv);
    if let Outcome::Failed { kind, .. } = &mut case.outcome {
        *kind = "detection";
    }
    case
}

fn scenario_suite(summary: &Summary, sc: &ScenarioResult) -> Suite {
    let mut cases: Vec<Case> = sc.invariants.iter().map(|inv| invariant_case(summary, sc, inv)).collect();
    for d in &sc.detections {
        if !sc.invariants.iter().any(|i| !i.passed && i.name == d.label()) {
            cases.push(detection_case(summary, sc, d));
        }
    }
    match sc.verdict {
        Verdict::Pass => {}
        Verdict::Error | Verdict::Interrupted => {
            let message = sc.error.clone().or_else(|| summary.error.clone()).unwrap_or_else(|| sc.verdict.as_str().to_string());
            // A scenario cut short by Ctrl-C erred because of the interruption, not the system.
            let kind = if summary.verdict == Verdict::Interrupted || sc.verdict == Verdict::Interrupted { "interrupted" } else { "error" };
            let evidence = ["report.html#failures".to_string(), of_scenario(sc, "timeline.jsonl"), of_scenario(sc, "logs/")];
            let body = format!("{message}\n{}", context(summary, sc, &evidence));
            cases.push(Case { name: "error".into(), classname: sc.name.clone(), time_s: sc.duration_s, outcome: Outcome::Erred { kind, message, body } });
        }
        Verdict::Fail => {
            if cases.iter().all(|c| matches!(c.outcome, Outcome::Passed)) {
                let message = format!("the scenario's verdict is {} though no check failed", sc.verdict.as_str());
                let evidence = ["report.html".to_string(), "summary.json".into()];
                let body = format!("{message}\n{}", context(summary, sc, &evidence));
                cases.push(Case {
                    name: "verdict".into(),
                    classname: sc.name.clone(),
                    time_s: sc.duration_s,
                    outcome: Outcome::Failed { kind: "verdict", message, body },
                });
            }
        }
    }
    let system_out =
        sc.invariants.iter().map(|i| format!("{} {}: {}", if i.passed { "PASS" } else { "FAIL" }, i.name, i.message)).collect::<Vec<_>>().join("\n");
    Suite {
        name: sc.name.clone(),
        time_s: sc.duration_s,
        properties: properties(summary, summary.replay_of(sc), sc.verdict),
        cases,
        system_out,
        system_err: sc.error.clone().unwrap_or_default(),
    }
}

/// The run itself as one test case: it errs (or fails) when the run's verdict is carried by no
/// scenario's case.
fn run_suite(summary: &Summary, not_green: bool) -> Suite {
    let outcome = if not_green {
        let message = summary.error.clone().unwrap_or_else(|| summary.verdict.as_str().to_string());
        // A merged run's timelines and logs stayed in its shards' directories.
        let rest: String = if summary.merged_from.is_empty() {
            "\n  timeline.jsonl\n  logs/".into()
        } else {
            summary.merged_from.iter().map(|m| format!("\n  {}/ (shard {})", m.artifacts.trim_end_matches('/'), m.shard)).collect()
        };
        let body = format!("{message}\nreplay: {}\nevidence:\n  report.html{rest}", summary.replay);
        match summary.verdict {
            Verdict::Fail => Outcome::Failed { kind: "verdict", message, body },
            _ => Outcome::Erred { kind: summary.verdict.as_str(), message, body },
        }
    } else {
        Outcome::Passed
    };
    Suite {
        name: "helix-e2e".into(),
        time_s: summary.duration_s,
        properties: properties(summary, &summary.replay, summary.verdict),
        cases: vec![Case { name: "run".into(), classname: "helix-e2e".into(), time_s: summary.duration_s, outcome }],
        system_out: String::new(),
        system_err: summary.error.clone().unwrap_or_default(),
    }
}

/// This machine's name for `hostname=`; "localhost" when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::FailureId;

    fn summary(verdict: Verdict, scenarios: Vec<ScenarioResult>) -> Summary {
        Summary {
            run_id: "r".into(),
            verdict,
            seed: 1,
            target: "t".into(),
            started_at: "2026-01-01T00:00:00+00:00".into(),
            duration_s: 1.0,
            replay: "helix-e2e run x y --seed 1".into(),
            scenarios,
            tabs: vec![],
            artifacts: "a".into(),
            error: Some("interrupted by Ctrl-C".into()),
            logs_missing: vec![],
            resources: None,
            input_latency: vec![],
            shard: None,
            merged_from: vec![],
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
            evidence_dir: None,
        }
    }

    fn detection() -> Detection {
        Detection {
            fault: FailureId::F4,
            name: "no-input-drop".into(),
            tab: Some(1),
            message: "tab 1 lost its session".into(),
            first_symptom: 1000.0,
            decided_at: 3500.0,
        }
    }

    /// (tests, failures, errors) summed over the suites, and the `type`s of the non-passing cases.
    fn counts(x: &str) -> (usize, usize, usize, Vec<String>) {
        let doc = roxmltree::Document::parse(x).unwrap_or_else(|e| panic!("{e}\n{x}"));
        let root = doc.root_element();
        assert_eq!(root.attributes().len(), 0, "the Ant schema allows no attributes on <testsuites>: {x}");
        let (mut t, mut f, mut e, mut kinds) = (0, 0, 0, Vec::new());
        for s in root.children().filter(|n| n.has_tag_name("testsuite")) {
            let n = |a: &str| s.attribute(a).unwrap().parse::<usize>().unwrap();
            let cases: Vec<_> = s.children().filter(|c| c.has_tag_name("testcase")).collect();
            let fails = cases.iter().filter(|c| c.children().any(|k| k.has_tag_name("failure"))).count();
            let errs = cases.iter().filter(|c| c.children().any(|k| k.has_tag_name("error"))).count();
            assert_eq!((n("tests"), n("failures"), n("errors")), (cases.len(), fails, errs), "{x}");
            kinds.extend(cases.iter().flat_map(|c| c.children()).filter(|k| k.is_element()).map(|k| k.attribute("type").unwrap().to_string()));
            t += cases.len();
            f += fails;
            e += errs;
        }
        (t, f, e, kinds)
    }

    #[test]
    fn a_run_interrupted_between_scenarios_is_an_error_not_green() {
        let x = render(&summary(Verdict::Interrupted, vec![passed()]), "h");
        assert_eq!(counts(&x), (2, 0, 1, vec!["interrupted".into()]), "{x}");
        assert!(x.contains("<error message=\"interrupted by Ctrl-C\" type=\"interrupted\">"), "{x}");
        let x = render(&summary(Verdict::Pass, vec![passed()]), "h");
        assert_eq!(counts(&x), (1, 0, 0, vec![]), "{x}");
        assert!(!x.contains("<error") && !x.contains("name=\"run\""), "{x}");
    }

    #[test]
    fn a_scenario_cut_short_by_ctrl_c_errs_once_as_interrupted() {
        let mut sc = passed();
        sc.verdict = Verdict::Error;
        sc.error = Some("interrupted: interrupted by Ctrl-C".into());
        let x = render(&summary(Verdict::Interrupted, vec![sc]), "h");
        assert_eq!(counts(&x), (2, 0, 1, vec!["interrupted".into()]), "{x}");
        assert!(!x.contains("name=\"run\""), "no extra run case when a scenario carries the error: {x}");
    }

    #[test]
    fn two_broken_invariants_are_two_failures_in_one_suite_per_scenario() {
        let mut sc = passed();
        sc.verdict = Verdict::Fail;
        sc.failed_op = Some("open viewer tab 1".into());
        sc.replay = "helix-e2e run random-walk --seed 1 --ops 4".into();
        sc.invariants.push(InvariantResult::fail("a", "tab 1 is dark"));
        sc.invariants.push(InvariantResult::fail("b", "tab 2 is dark"));
        let x = render(&summary(Verdict::Fail, vec![sc]), "h");
        assert_eq!(counts(&x), (3, 2, 0, vec!["invariant".into(), "invariant".into()]), "{x}");
        assert_eq!(x.matches("<testsuite ").count(), 1, "{x}");
        assert!(!x.contains(".invariants"), "{x}");
        assert!(x.contains("replay (this scenario alone): helix-e2e run random-walk --seed 1 --ops 4"), "{x}");
        assert!(x.contains("during operation: open viewer tab 1"), "{x}");
    }

    #[test]
    fn an_operation_error_is_one_error_besides_the_failed_checks() {
        let mut sc = passed();
        sc.verdict = Verdict::Error;
        sc.error = Some("open viewer tab 1: timeout".into());
        sc.invariants.push(InvariantResult::fail("a", "tab 1 is dark"));
        let x = render(&summary(Verdict::Error, vec![sc]), "h");
        assert_eq!(counts(&x), (3, 1, 1, vec!["invariant".into(), "error".into()]), "{x}");
    }

    #[test]
    fn a_detection_is_one_failure_whether_or_not_the_invariants_carry_it() {
        let mut sc = passed();
        sc.verdict = Verdict::Fail;
        sc.detections.push(detection());
        // Not among the invariants: a case of its own.
        let x = render(&summary(Verdict::Fail, vec![sc.clone()]), "h");
        assert_eq!(counts(&x), (2, 1, 0, vec!["detection".into()]), "{x}");
        assert!(x.contains("name=\"F4 no-input-drop\"") && x.contains("named 2.5 s after its first symptom"), "{x}");
        // Among them (as the runner records it): that case, not a second.
        sc.invariants.push(InvariantResult::fail("F4 no-input-drop", "tab 1 lost its session"));
        let x = render(&summary(Verdict::Fail, vec![sc]), "h");
        assert_eq!(counts(&x), (2, 1, 0, vec!["detection".into()]), "{x}");
    }

    #[test]
    fn a_verdict_no_case_carries_still_fails() {
        let mut sc = passed();
        sc.verdict = Verdict::Fail;
        let x = render(&summary(Verdict::Fail, vec![sc]), "h");
        assert_eq!(counts(&x), (2, 1, 0, vec!["verdict".into()]), "{x}");
        let x = render(&summary(Verdict::Error, vec![]), "h");
        assert_eq!(counts(&x), (1, 0, 1, vec!["error".into()]), "{x}");
    }

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}\n"), "a&lt;b&gt;&amp;&quot;c&apos;\n");
        assert_eq!(attr("a\nb\tc"), "a&#10;b&#9;c");
        assert_eq!(token(" \u{1} "), "(unnamed)");
        assert_eq!(secs(f64::NAN), "0.000");
    }
}
