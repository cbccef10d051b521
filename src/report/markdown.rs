//! `report.md`: a short, issue-ready account of a run (what failed, in which tab, during which
//! operation, the state then, how to replay), for `gh issue create --body-file`.

use super::digest::{tabs_named, Digest};
use super::junit::evidence;
use super::{Summary, Verdict};
use std::fmt::Write;

/// Keeps a table cell on one line and from closing the table.
fn cell(s: &str) -> String {
    // `<` would start HTML in GitHub's renderer.
    s.replace('&', "&amp;").replace('<', "&lt;").replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn render(summary: &Summary, digest: &Digest) -> String {
    let mut m = String::new();
    let verdict = format!("{:?}", summary.verdict).to_uppercase();
    let names: Vec<&str> = summary.scenarios.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(m, "## helix-e2e {verdict}: {}\n", if names.is_empty() { "(no scenario ran)".to_string() } else { names.join(", ") });
    let _ = writeln!(m, "- **run** `{}` against **{}**, seed `{}`, {:.1} s", summary.run_id, summary.target, summary.seed, summary.duration_s);
    // The failing scenario alone first: the whole suite takes minutes to say the same.
    match summary.first_failing() {
        Some(sc) => {
            let _ = writeln!(m, "- **replay** {} alone: `{}`", sc.name, summary.replay_of(sc));
            let _ = writeln!(m, "- **replay the whole run**: `{}`", summary.replay);
        }
        None => {
            let _ = writeln!(m, "- **replay**: `{}`", summary.replay);
        }
    }
    if let Some(e) = &summary.error {
        let _ = writeln!(m, "- **error**: {}", cell(e));
    }
    if let Some(l) = crate::sut::log_source::missing_logs_message(&summary.logs_missing) {
        let _ = writeln!(m, "- **logs**: {}", cell(&l));
    }
    if let Some(l) = summary.merged_line() {
        let _ = writeln!(m, "- **shards**: {}", cell(&l));
    }
    for l in &summary.input_latency {
        let _ = writeln!(m, "- **input-to-picture latency**, {l}");
    }
    m.push('\n');
    for sc in &summary.scenarios {
        let failed: Vec<_> = sc.invariants.iter().filter(|i| !i.passed).collect();
        let _ = writeln!(m, "### {} \u{2014} {:?} ({} of {} invariants failed)\n", sc.name, sc.verdict, failed.len(), sc.invariants.len());
        if let Some(op) = &sc.failed_op {
            let _ = writeln!(m, "Failed during operation **{}**.\n", cell(op));
        }
        if sc.verdict != Verdict::Pass {
            let _ = writeln!(m, "Replay it alone: `{}`\n", summary.replay_of(sc));
        }
        if let Some(e) = &sc.error {
            let _ = writeln!(m, "Error: {}\n", cell(e));
        }
        for inv in &failed {
            let rel = (inv.at - digest.start) / 1000.0;
            let during = digest.op_at(inv.at).map(|op| format!(", {}", cell(&op))).unwrap_or_default();
            let _ = writeln!(m, "- \u{274c} **{}** (+{rel:.1} s{during}): {}", inv.name, cell(&inv.message));
            for tab in tabs_named(&inv.message) {
                if let Some(t) = digest.tab(tab) {
                    let problems: Vec<String> = t.problems_before(inv.at, 3).iter().map(|p| cell(&p.text)).collect();
                    let problems = if problems.is_empty() { String::new() } else { format!("; problems: {}", problems.join(", ")) };
                    let _ = writeln!(m, "  - tab {tab}: {}{problems}", t.connections_at(inv.at));
                }
            }
            let _ = writeln!(
                m,
                "  - evidence: {}",
                evidence(summary, sc, inv).iter().map(|e| format!("`{}`", e.split(" (").next().unwrap_or(e))).collect::<Vec<_>>().join(", ")
            );
        }
        if !failed.is_empty() {
            m.push('\n');
        }
        if let Some(rows) = sc.state_at_failure.as_ref().and_then(|s| s.get("correlation")).and_then(|c| c.as_array()) {
            let _ = writeln!(m, "Correlation at the first failure (this scenario's tabs open then, the failing tab first):\n");
            m.push_str("| tab | client_unique_id | pc state | moonlight-web session (ws/streamer) | Wolf session | lobby (clients) | pixels |\n|---|---|---|---|---|---|---|\n");
            for r in rows {
                let s = |k: &str| {
                    r.get(k)
                        .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| if v.is_null() { "-".into() } else { v.to_string() }))
                        .unwrap_or_else(|| "-".into())
                };
                let pixels = r.get("pixels").map(super::pixel_word).unwrap_or("-");
                // A closed tab is here only because the failure names it.
                let tab = if r.get("tab_open").and_then(|v| v.as_bool()) == Some(false) { format!("{} (closed)", s("tab")) } else { s("tab") };
                let _ = writeln!(
                    m,
                    "| {} | `{}` | {} | {} ({}/{}) | {} | {} ({}) | {} {} |",
                    tab,
                    cell(&s("client_unique_id")),
                    cell(&s("connection_state")),
                    cell(&s("mlw_session")),
                    s("mlw_has_websocket"),
                    s("mlw_streamer_alive"),
                    cell(&s("wolf_session")),
                    cell(&s("lobby")),
                    s("lobby_client_count"),
                    pixels,
                    if s("pixels_lobby") == "-" { String::new() } else { cell(&s("pixels_lobby")) },
                );
            }
            m.push('\n');
        }
    }
    if let Some(g) = &summary.resources {
        m.push_str(&super::growth::markdown(g));
    }
    let warn: Vec<_> = digest.logs.iter().filter(|l| l.level == "ERROR" || l.level == "WARN" || l.level == "WARNING").collect();
    if !warn.is_empty() {
        let _ = writeln!(m, "<details><summary>{} warning/error log line(s)</summary>\n\n```", warn.len());
        for l in warn.iter().take(30) {
            let _ = writeln!(m, "+{:>7.1}s {} {} {}", (l.at - digest.start) / 1000.0, l.service, l.level, l.message.replace("```", "'''"));
        }
        let _ = writeln!(m, "```\n</details>\n");
    }
    if summary.verdict != Verdict::Pass {
        m.push_str("Open `report.html` from the run's artifacts for the per-tab timeline against Wolf and moonlight-web events, screenshots and stats.\n");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_logs_says_which_detectors_were_blind() {
        let mut s = Summary {
            run_id: "r".into(),
            verdict: super::super::Verdict::Pass,
            seed: 1,
            target: "t".into(),
            started_at: "2026-01-01T00:00:00+00:00".into(),
            duration_s: 1.0,
            replay: "helix-e2e run x --seed 1".into(),
            scenarios: vec![],
            tabs: vec![],
            artifacts: "a".into(),
            error: None,
            logs_missing: vec!["wolf".into()],
            resources: None,
            input_latency: vec![],
            shard: None,
            merged_from: vec![],
        };
        let d = super::super::digest::digest(&[]);
        let m = render(&s, &d);
        assert!(m.contains("- **logs**: no logs for wolf: detectors F1, F3, F4, F17 are blind; F8 loses its log evidence\n"), "{m}");
        let h = super::super::html::render(&s, &d, std::path::Path::new("/nonexistent"));
        assert!(h.contains("id=\"logs-missing\"><span>no logs for wolf: detectors F1, F3, F4, F17 are blind"), "{h}");
        s.logs_missing.clear();
        assert!(!render(&s, &d).contains("**logs**"));
        assert!(!super::super::html::render(&s, &d, std::path::Path::new("/nonexistent")).contains("logs-missing"));
    }
}
