//! `junit.xml` as the CI importers validate it: every shape of run (passing, failing invariants,
//! an operation error, an interruption, named detections, text that needs escaping) is written
//! by the report writer and checked with `xmllint --schema` against both schemas in use —
//! Jenkins' junit-10.xsd and the Ant JUnit.xsd (tests/fixtures/junit/README.md says where they
//! come from). A document one schema rejects is a report some CI UI drops or misreads.
//!
//! xmllint (Debian/Ubuntu package libxml2-utils) is required: without it these tests fail with
//! that advice, never skip, so a CI that lacks it cannot pass silently.

use helix_e2e::catalog::FailureId;
use helix_e2e::report::{junit, ScenarioResult, Summary, Verdict};
use helix_e2e::verdict::detectors::Detection;
use helix_e2e::verdict::InvariantResult;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMAS: [&str; 2] = ["junit-10.xsd", "JUnit.xsd"];

/// Text with everything XML must escape or cannot carry: markup, quotes, control characters,
/// non-ASCII, line breaks.
const NASTY: &str = "tab 1 <b>&\"x'</b> \u{1}\u{7}\u{1b}[0m\u{fffe} café ✓ 日本\nsecond line\ttab";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit")
}

/// `xmllint --schema` on a document (given on stdin: no file to leave behind); the error text
/// when the schema rejects it.
fn validate(xml: &str, schema: &str, name: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(fixtures().join(schema))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("cannot run xmllint ({e}): install it (apt-get install -y libxml2-utils); these tests need it and do not skip"),
    };
    child.stdin.take().unwrap().write_all(xml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

fn assert_valid(xml: &str, name: &str) {
    for schema in SCHEMAS {
        if let Err(e) = validate(xml, schema, name) {
            panic!("{name}: junit.xml is invalid against {schema}:\n{e}\n{xml}");
        }
    }
}

fn summary(verdict: Verdict, scenarios: Vec<ScenarioResult>, error: Option<&str>) -> Summary {
    Summary {
        run_id: "20260101T000000Z-0000000000000007".into(),
        verdict,
        seed: 7,
        target: "embedded reference stack".into(),
        started_at: "2026-01-01T10:00:00.123+01:00".into(),
        duration_s: 12.5,
        replay: "helix-e2e run --seed 7".into(),
        scenarios,
        tabs: vec![],
        artifacts: "artifacts/20260101T000000Z-0000000000000007".into(),
        error: error.map(str::to_string),
        logs_missing: vec![],
        resources: None,
        input_latency: vec![helix_e2e::frames::input::InputLatency { tab: 0, probes: 3, lost: 0, median_ms: Some(41.0), p95_ms: Some(77.0) }],
        shard: None,
        merged_from: vec![],
    }
}

fn scenario(name: &str, verdict: Verdict, invariants: Vec<InvariantResult>) -> ScenarioResult {
    ScenarioResult {
        name: name.into(),
        verdict,
        invariants,
        failed_op: (verdict != Verdict::Pass).then(|| "open viewer tab for ses_1".into()),
        state_at_failure: None,
        detections: vec![],
        error: None,
        duration_s: 6.25,
        replay: format!("helix-e2e run {name} --seed 7"),
        evidence_dir: None,
    }
}

fn ok(name: &str) -> InvariantResult {
    InvariantResult::pass(name, "held")
}

fn broken(name: &str, message: &str) -> InvariantResult {
    InvariantResult::fail(name, message)
}

/// (tests, failures, errors) over the document's cases.
fn counts(xml: &str) -> (usize, usize, usize) {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    let with = |tag: &str| cases.iter().filter(|c| c.children().any(|k| k.has_tag_name(tag))).count();
    (cases.len(), with("failure"), with("error"))
}

#[test]
fn a_passing_run_is_valid_and_green() {
    let s = summary(Verdict::Pass, vec![scenario("second-connection", Verdict::Pass, vec![ok("a"), ok("b")])], None);
    let x = junit::render(&s, "ci-host");
    assert_valid(&x, "passing");
    assert_eq!(counts(&x), (2, 0, 0));
}

#[test]
fn failing_invariants_are_valid_and_counted_once() {
    let sc = scenario("multi-tab-same-lobby", Verdict::Fail, vec![ok("a"), broken("b", "tab 1 is dark"), broken("c", "tab 2 is dark")]);
    let s = summary(Verdict::Fail, vec![sc, scenario("second-connection", Verdict::Pass, vec![ok("a")])], None);
    let x = junit::render(&s, "ci-host");
    assert_valid(&x, "failing");
    assert_eq!(counts(&x), (4, 2, 0), "2 broken invariants are 2 failures: {x}");
    assert!(x.contains("replay (this scenario alone): helix-e2e run multi-tab-same-lobby --seed 7"), "{x}");
}

#[test]
fn an_operation_error_is_valid_and_one_error() {
    let mut sc = scenario("rapid-cycles", Verdict::Error, vec![ok("a")]);
    sc.error = Some("open viewer tab for ses_1: Chromium did not answer".into());
    let x = junit::render(&summary(Verdict::Error, vec![sc], None), "ci-host");
    assert_valid(&x, "error");
    assert_eq!(counts(&x), (2, 0, 1), "{x}");
}

#[test]
fn an_interrupted_run_is_valid_and_never_green() {
    // Interrupted between scenarios: every scenario passed, the run did not finish.
    let s = summary(Verdict::Interrupted, vec![scenario("second-connection", Verdict::Pass, vec![ok("a")])], Some("interrupted by SIGTERM"));
    let x = junit::render(&s, "ci-host");
    assert_valid(&x, "interrupted-between");
    assert_eq!(counts(&x), (2, 0, 1), "{x}");
    // Interrupted inside a scenario.
    let mut sc = scenario("random-walk", Verdict::Error, vec![]);
    sc.error = Some("interrupted: interrupted by SIGINT".into());
    let x = junit::render(&summary(Verdict::Interrupted, vec![sc], Some("interrupted by SIGINT")), "ci-host");
    assert_valid(&x, "interrupted-inside");
    assert_eq!(counts(&x), (1, 0, 1), "{x}");
    // Before any scenario (no stack, no browser).
    let x = junit::render(&summary(Verdict::Error, vec![], Some("Chromium did not start")), "ci-host");
    assert_valid(&x, "no-scenario");
    assert_eq!(counts(&x), (1, 0, 1), "{x}");
}

#[test]
fn detections_are_valid_and_visible_as_failures() {
    let det = |fault, name: &'static str, tab| Detection {
        fault,
        name: name.into(),
        tab: Some(tab),
        message: format!("tab {tab}: the browser process died"),
        first_symptom: 1_800_000_000_000.0,
        decided_at: 1_800_000_001_500.0,
    };
    let f4 = det(FailureId::F4, "no-input-drop", 1);
    let b2 = det(FailureId::B2, "browser-died", 2);
    // F4 as the runner records it (a failed check under its label); B2 only as a detection.
    let mut sc = scenario("random-walk", Verdict::Fail, vec![ok("a"), broken(&f4.label(), &f4.message)]);
    sc.detections = vec![f4, b2];
    let x = junit::render(&summary(Verdict::Fail, vec![sc], None), "ci-host");
    assert_valid(&x, "detections");
    assert_eq!(counts(&x), (3, 2, 0), "{x}");
    assert!(x.contains("name=\"F4 no-input-drop\"") && x.contains("name=\"B2 browser-died\""), "{x}");
    assert_eq!(x.matches("type=\"detection\"").count(), 2, "{x}");
}

#[test]
fn text_that_needs_escaping_is_valid_and_kept() {
    let mut sc = scenario(NASTY, Verdict::Error, vec![broken(NASTY, NASTY), ok("\u{1}")]);
    sc.error = Some(NASTY.into());
    sc.failed_op = Some(NASTY.into());
    sc.replay = format!("helix-e2e run '{NASTY}'");
    let mut s = summary(Verdict::Error, vec![sc], Some(NASTY));
    s.run_id = NASTY.into();
    s.target = NASTY.into();
    s.started_at = "not a time".into();
    let x = junit::render(&s, "\u{1}");
    assert_valid(&x, "escaping");
    assert_eq!(counts(&x), (3, 1, 1), "{x}");
    // The message comes back as written, less what XML 1.0 cannot carry.
    let doc = roxmltree::Document::parse(&x).unwrap();
    let failure = doc.descendants().find(|n| n.has_tag_name("failure")).unwrap();
    let kept: String = NASTY.chars().filter(|c| !matches!(c, '\u{1}' | '\u{7}' | '\u{1b}' | '\u{fffe}')).collect();
    assert_eq!(failure.attribute("message"), Some(kept.as_str()));
    assert!(failure.text().unwrap().contains("café ✓ 日本"));
}

/// The check can fail: documents each schema rejects are rejected.
#[test]
fn the_schemas_reject_what_they_forbid() {
    let ok = junit::render(&summary(Verdict::Pass, vec![scenario("x", Verdict::Pass, vec![ok("a")])], None), "h");
    // Attributes on <testsuites> (what quick-junit writes): Ant rejects them, Jenkins accepts.
    let attrs = ok.replacen("<testsuites>", "<testsuites name=\"r\" tests=\"1\" failures=\"0\" errors=\"0\">", 1);
    assert!(validate(&attrs, "JUnit.xsd", "attrs").is_err(), "{attrs}");
    assert!(validate(&attrs, "junit-10.xsd", "attrs").is_ok());
    // A suite without its name: both reject it.
    let nameless = ok.replacen("<testsuite name=\"x\"", "<testsuite", 1);
    for schema in SCHEMAS {
        assert!(validate(&nameless, schema, "nameless").is_err(), "{schema} took {nameless}");
    }
}
