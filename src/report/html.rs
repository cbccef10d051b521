//! `report.html`: one self-contained page (inline CSS, a few lines of JS, screenshots embedded as
//! data URIs, charts as inline SVG) that lets a reader see which tab failed, when, why, and what
//! Wolf and moonlight-web said then — without the rest of the artifact directory.
//!
//! Why one file of over 400 lines: the page is one self-contained document whose sections share
//! escaping, time formatting and the digest; split, one page's layout would be scattered.

use super::digest::{brief_json, tabs_named, Digest, TabDigest};
use super::junit::{anchor, escape};
use super::{contact_sheet, ScenarioResult, Summary};
use crate::timeline::{EpochMs, TabId};
use base64::Engine;
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

const CSS: &str = include_str!("report.css");

/// Copy-to-clipboard for the replay command and the event filters. No errors on `file://`: the
/// clipboard promise may reject there, which is caught.
const JS: &str = r#"
document.querySelectorAll('button[data-copy]').forEach(function (b) {
  b.addEventListener('click', function () {
    var text = document.getElementById(b.dataset.copy).textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(function () { b.textContent = 'copied'; }, function () { b.textContent = 'select and copy'; });
  });
});
function applyFilters() {
  var on = {};
  document.querySelectorAll('#filters input').forEach(function (c) { on[c.value] = c.checked; });
  document.querySelectorAll('#events tbody tr').forEach(function (r) { r.hidden = !on[r.dataset.src]; });
}
document.querySelectorAll('#filters input').forEach(function (c) { c.addEventListener('change', applyFilters); });
applyFilters();
"#;

/// Width of the time axis in the swimlane and the sparklines, so both line up.
const PLOT_W: f64 = 1000.0;
const LABEL_W: f64 = 150.0;

fn clock(ms: EpochMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.format("%H:%M:%S%.3f").to_string()).unwrap_or_default()
}

struct Axis {
    start: EpochMs,
    end: EpochMs,
}

impl Axis {
    fn x(&self, at: EpochMs) -> f64 {
        let span = (self.end - self.start).max(1.0);
        LABEL_W + ((at - self.start) / span).clamp(0.0, 1.0) * PLOT_W
    }
    fn rel(&self, at: EpochMs) -> String {
        format!("+{:.1} s", (at - self.start) / 1000.0)
    }
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "connected" => "#2e9e5b",
        "connecting" => "#e0a526",
        "new" => "#9aa1ab",
        "disconnected" => "#e07b26",
        "failed" => "#d64545",
        "closed" => "#4a5160",
        _ => "#b8bec7",
    }
}

/// A stable hue per lobby tag, so each lobby's picture has its colour across tabs.
fn tag_colour(tag: u16) -> String {
    if tag == crate::frames::stamp::WOLF_UI_TAG {
        return "#6b7280".into();
    }
    let hue = (tag as u32).wrapping_mul(137) % 360;
    format!("hsl({hue},65%,48%)")
}

pub fn render(summary: &Summary, digest: &Digest, root: &Path) -> String {
    let axis = Axis { start: digest.start, end: digest.end.max(digest.start + 1.0) };
    let mut h = String::new();
    let what = summary.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let verdict = format!("{:?}", summary.verdict).to_uppercase();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>helix-e2e {verdict} {}</title><style>{CSS}</style></head><body>\n",
        escape(&what)
    );
    header(&mut h, summary, &verdict, &what);
    h.push_str("<nav><a href=\"#failures\">Failures</a><a href=\"#timeline\">Timeline</a><a href=\"#correlation\">State at failure</a><a href=\"#tabs\">Tabs</a><a href=\"#invariants\">Invariants</a><a href=\"#events\">Events</a><a href=\"#files\">Files</a>");
    if summary.resources.is_some() {
        h.push_str("<a href=\"#resources\">Resources</a>");
    }
    h.push_str("</nav>\n<main>\n");
    let events = event_rows(digest);
    let folded = folded_tabs(summary, digest);
    failures(&mut h, summary, digest, &axis, &events);
    swimlane(&mut h, summary, digest, &axis, &folded);
    correlation(&mut h, summary);
    tabs(&mut h, summary, digest, &axis, root, &folded);
    if let Some(g) = &summary.resources {
        h.push_str(&super::growth::html(g));
    }
    invariants(&mut h, summary, &axis);
    events_table(&mut h, summary, &axis, &events);
    files(&mut h, root);
    let _ = write!(h, "</main>\n<script>{JS}</script>\n</body></html>\n");
    h
}

/// When a reader looks: the first failure, else the end of the run.
fn moment(s: &Summary, d: &Digest) -> EpochMs {
    s.scenarios
        .iter()
        .flat_map(|sc| sc.invariants.iter())
        .filter(|i| !i.passed)
        .map(|i| i.at)
        .fold(None, |m: Option<EpochMs>, at| Some(m.map_or(at, |m| m.min(at))))
        .unwrap_or(d.end)
}

fn moment_words(s: &Summary) -> &'static str {
    if s.scenarios.iter().flat_map(|sc| sc.invariants.iter()).any(|i| !i.passed) {
        "the first failure"
    } else {
        "the end of the run"
    }
}

fn tab_list(tabs: &[TabId]) -> String {
    tabs.iter().map(|t| format!("tab {t}")).collect::<Vec<_>>().join(", ")
}

/// Folded tabs drawn at most (the ones closed last): a soak opens and closes hundreds, and each
/// drawn tab costs its lanes and card (about 60 KB), which would take the page past its budget.
/// The others are listed by number; their facts are in `summary.json` and `timeline.jsonl`.
const FOLDED_DRAWN: usize = 40;

/// Whether a folded tab is one of the [`FOLDED_DRAWN`] drawn ones.
fn drawn(folded: &[TabId], tab: TabId) -> bool {
    folded.iter().rev().take(FOLDED_DRAWN).any(|t| *t == tab)
}

/// Opens the `<details>` that folds the tabs closed before the moment that matters.
fn open_folded(h: &mut String, id: &str, folded: &[TabId], s: &Summary) {
    let _ = write!(h, "<details id=\"{id}\"><summary>{} tab(s) closed before {}: {}", folded.len(), moment_words(s), tab_list(folded));
    if folded.len() > FOLDED_DRAWN {
        let _ = write!(h, " (the {FOLDED_DRAWN} closed last are drawn; the others are in summary.json and timeline.jsonl)");
    }
    h.push_str("</summary>");
}

/// Tabs folded away (in a closed `<details>`): closed before the moment a reader looks at, and
/// neither named by a failure nor in a state at failure. A long run opens and closes dozens; the
/// failure's tabs stay in view.
fn folded_tabs(s: &Summary, d: &Digest) -> Vec<TabId> {
    let at = moment(s, d);
    let mut kept: Vec<TabId> = s.scenarios.iter().flat_map(|sc| sc.invariants.iter()).filter(|i| !i.passed).flat_map(|i| tabs_named(&i.message)).collect();
    for sc in &s.scenarios {
        let rows = sc.state_at_failure.as_ref().and_then(|st| st.get("correlation")).and_then(Value::as_array);
        kept.extend(rows.into_iter().flatten().filter_map(|r| r.get("tab").and_then(Value::as_u64)).map(|t| t as TabId));
    }
    d.tabs.iter().filter(|t| t.closed_at.is_some_and(|c| c < at) && !kept.contains(&t.tab)).map(|t| t.tab).collect()
}

fn header(h: &mut String, s: &Summary, verdict: &str, what: &str) {
    // The failing scenario's own command first: rerunning the whole suite takes minutes.
    let failing = s.first_failing();
    let (replay_label, replay) = match failing {
        Some(sc) => (format!("replay {} alone", sc.name), s.replay_of(sc)),
        None => ("replay".to_string(), s.replay.as_str()),
    };
    let _ = write!(
        h,
        "<header class=\"{}\"><h1><span class=\"badge\" id=\"verdict\">{verdict}</span><span class=\"what\">{}</span></h1>\
         <div class=\"meta\"><span>run <b>{}</b></span><span>target <b>{}</b></span><span>seed <b>{}</b></span><span>{:.1} s</span><span>started {}</span></div>\
         <div class=\"replay\"><span class=\"muted\">{}</span> <code id=\"replay\">{}</code><button data-copy=\"replay\" type=\"button\">copy</button></div>",
        s.verdict.as_str(),
        escape(if what.is_empty() { "no scenario ran" } else { what }),
        escape(&s.run_id),
        escape(&s.target),
        s.seed,
        s.duration_s,
        escape(&s.started_at),
        escape(&replay_label),
        escape(replay)
    );
    if failing.is_some() {
        let _ = write!(
            h,
            "<div class=\"replay\"><span class=\"muted\">the whole run</span> <code id=\"replay-run\">{}</code><button data-copy=\"replay-run\" type=\"button\">copy</button></div>",
            escape(&s.replay)
        );
    }
    if let Some(e) = &s.error {
        let _ = write!(h, "<div class=\"meta\"><span>error: <b>{}</b></span></div>", escape(e));
    }
    if let Some(l) = crate::sut::log_source::missing_logs_message(&s.logs_missing) {
        let _ = write!(h, "<div class=\"meta\" id=\"logs-missing\"><span>{}</span></div>", escape(&l));
    }
    if let Some(l) = s.merged_line() {
        let _ = write!(h, "<div class=\"meta\" id=\"merged-from\"><span>{}</span></div>", escape(&l));
    }
    for l in &s.input_latency {
        let _ = write!(h, "<div class=\"meta input-latency\"><span>input-to-picture latency, {}</span></div>", escape(&l.to_string()));
    }
    h.push_str("</header>\n");
}

/// One row of the merged event list.
struct EventRow {
    at: EpochMs,
    src: &'static str,
    who: String,
    text: String,
    level: &'static str,
}

fn event_rows(d: &Digest) -> Vec<EventRow> {
    let mut rows = Vec::new();
    for op in &d.ops {
        rows.push(EventRow { at: op.start, src: "op", who: "scenario".into(), text: format!("\u{25b6} {}", op.name), level: "" });
        if let Some(end) = op.end {
            let (text, level) = match &op.failed {
                Some(e) => (format!("\u{2717} {} failed: {e}", op.name), "error"),
                None => (format!("\u{2713} {} ({:.1} s)", op.name, (end - op.start) / 1000.0), ""),
            };
            rows.push(EventRow { at: end, src: "op", who: "scenario".into(), text, level });
        }
    }
    for t in &d.tabs {
        let who = t.name();
        rows.extend(t.states.iter().map(|m| EventRow {
            at: m.at,
            src: "tab",
            who: who.clone(),
            text: format!("connection {}", m.text),
            level: if m.text.ends_with("failed") { "error" } else { "" },
        }));
        rows.extend(t.stages.iter().map(|m| EventRow { at: m.at, src: "tab", who: who.clone(), text: m.text.clone(), level: "" }));
        rows.extend(t.problems.iter().map(|m| EventRow { at: m.at, src: "tab", who: who.clone(), text: m.text.clone(), level: "error" }));
    }
    rows.extend(d.wolf_events.iter().map(|m| EventRow { at: m.at, src: "wolf", who: "Wolf event".into(), text: m.text.clone(), level: "" }));
    for l in &d.logs {
        let level = match l.level.as_str() {
            "ERROR" | "FATAL" => "error",
            "WARN" | "WARNING" => "warn",
            _ => "",
        };
        let src = if level.is_empty() { "log" } else { "logwarn" };
        rows.push(EventRow { at: l.at, src, who: format!("{} log", l.service), text: l.message.clone(), level });
    }
    rows.sort_by(|a, b| a.at.total_cmp(&b.at));
    rows
}

/// Index of the first event at or after `at` minus a lead, to link a failure to its context.
fn event_near(events: &[EventRow], at: EpochMs) -> usize {
    events.iter().position(|e| e.at >= at - 3000.0).unwrap_or(events.len().saturating_sub(1))
}

fn failures(h: &mut String, s: &Summary, d: &Digest, axis: &Axis, events: &[EventRow]) {
    h.push_str("<section id=\"failures\"><h2>What failed</h2>\n");
    let mut any = false;
    for sc in &s.scenarios {
        if let Some(e) = &sc.error {
            any = true;
            let _ = write!(
                h,
                "<div class=\"card failure\"><h3><span class=\"pill {}\">{}</span> {} stopped with an error</h3><div class=\"msg\">{}</div><div class=\"facts\"><span>during <b>{}</b></span></div></div>",
                sc.verdict.as_str(),
                sc.verdict.as_str().to_uppercase(),
                escape(&sc.name),
                escape(e),
                escape(sc.failed_op.as_deref().unwrap_or("-"))
            );
        }
        for inv in sc.invariants.iter().filter(|i| !i.passed) {
            any = true;
            let _ = write!(
                h,
                "<div class=\"card failure\" id=\"{}\"><h3><span class=\"pill fail\">FAIL</span> {} <span class=\"muted\">/ {}</span></h3><div class=\"msg\">{}</div>\
                 <div class=\"facts\"><span>at <b>{}</b> ({})</span><span>{}</span><a href=\"#ev-{}\">events around it</a></div>",
                anchor(&sc.name, &inv.name),
                escape(&inv.name),
                escape(&sc.name),
                escape(&inv.message),
                axis.rel(inv.at),
                clock(inv.at),
                escape(&d.op_at(inv.at).unwrap_or_default()),
                event_near(events, inv.at)
            );
            for tab in tabs_named(&inv.message) {
                let Some(t) = d.tab(tab) else { continue };
                let problems: Vec<String> = t
                    .problems_before(inv.at, 3)
                    .iter()
                    .map(|p| format!("<b class=\"bad\">{}</b> <span class=\"muted\">{}</span>", escape(&p.text), axis.rel(p.at)))
                    .collect();
                let _ = write!(
                    h,
                    "<div class=\"facts\"><span><a href=\"#tab-{tab}\">tab {tab}</a>: <b style=\"color:{}\">{}</b></span>{}</div>",
                    state_colour(t.state_at(inv.at).unwrap_or("")),
                    escape(&t.connections_at(inv.at)),
                    if problems.is_empty() { String::new() } else { format!("<span>problems: {}</span>", problems.join(", ")) }
                );
            }
            h.push_str("</div>\n");
        }
    }
    if !any {
        let _ = writeln!(
            h,
            "<div class=\"card\"><span class=\"ok\">Nothing failed.</span> {} invariant(s) held.</div>",
            s.scenarios.iter().map(|s| s.invariants.len()).sum::<usize>()
        );
    }
    h.push_str("</section>\n");
}

fn swimlane(h: &mut String, s: &Summary, d: &Digest, axis: &Axis, folded: &[TabId]) {
    let mut lanes: Vec<(String, String)> = Vec::new();
    // Operations: alternate two rows so nested or back-to-back operations stay readable.
    let mut g = String::new();
    for (i, op) in d.ops.iter().enumerate() {
        let x0 = axis.x(op.start);
        let x1 = axis.x(op.end.unwrap_or(d.end)).max(x0 + 2.0);
        let y = if i % 2 == 0 { 5.0 } else { 15.0 };
        let colour = if op.failed.is_some() { "#d64545" } else { "#4f6bed" };
        let _ = write!(
            g,
            "<rect x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"9\" rx=\"2\" fill=\"{colour}\"><title>{} {}{}</title></rect>",
            x1 - x0,
            axis.rel(op.start),
            escape(&op.name),
            op.failed.as_ref().map(|e| format!(" \u{2014} failed: {}", escape(e))).unwrap_or_default()
        );
    }
    lanes.push(("operations".into(), g));
    let mut closed_lanes: Vec<(String, String)> = Vec::new();
    for t in d.tabs.iter().filter(|t| !folded.contains(&t.tab) || drawn(folded, t.tab)) {
        let into = if folded.contains(&t.tab) { &mut closed_lanes } else { &mut lanes };
        into.push((t.name(), tab_lane(t, d, axis)));
        if !t.frames.is_empty() {
            into.push((format!("{} pixels", t.name()), pixel_lane(t, axis)));
        }
    }
    let mut g = String::new();
    for m in &d.wolf_events {
        let x = axis.x(m.at);
        let _ = write!(g, "<path d=\"M{x:.1} 8 l5 7 l-5 7 l-5 -7z\" fill=\"#7c4dcc\"><title>{} {}</title></path>", axis.rel(m.at), escape(&m.text));
    }
    lanes.push(("Wolf events".into(), g));
    let mut services: Vec<&str> = d.logs.iter().map(|l| l.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for svc in services {
        let mut g = String::new();
        for l in d.logs.iter().filter(|l| l.service == svc) {
            let x = axis.x(l.at);
            let (colour, y, len) = match l.level.as_str() {
                "ERROR" | "FATAL" => ("#d64545", 3.0, 24.0),
                "WARN" | "WARNING" => ("#e0a526", 6.0, 18.0),
                _ => ("#9aa1ab", 10.0, 10.0),
            };
            let _ = write!(
                g,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y}\" y2=\"{:.0}\" stroke=\"{colour}\" stroke-width=\"1.5\"><title>{} {} {}</title></line>",
                y + len,
                axis.rel(l.at),
                escape(&l.level),
                escape(&l.message)
            );
        }
        lanes.push((format!("{svc} log"), g));
    }
    h.push_str("<section id=\"timeline\"><h2>Timeline: tabs against server events</h2><div class=\"swim\">");
    lanes_svg(h, &lanes, s, axis);
    h.push_str("<div class=\"legend\">");
    for st in ["new", "connecting", "connected", "disconnected", "failed", "closed"] {
        let _ = write!(h, "<span><i style=\"background:{}\"></i>{st}</span>", state_colour(st));
    }
    h.push_str("<span><i style=\"background:#4f6bed\"></i>operation</span><span><i style=\"background:#7c4dcc\"></i>Wolf event</span><span><i style=\"background:#222\"></i>stage (tick)</span><span><i style=\"background:#d64545\"></i>problem / failed invariant</span><span>pixels: one colour per lobby stamp, grey = Wolf UI, black = black picture</span></div>");
    if !closed_lanes.is_empty() {
        // Closed before the failure and not named by it: there, one click away, not in the way.
        open_folded(h, "closed-tabs-timeline", folded, s);
        lanes_svg(h, &closed_lanes, s, axis);
        h.push_str("</details>");
    }
    h.push_str("</div><p class=\"muted\">Hover a mark for its text.</p></section>\n");
}

/// Lanes of marks under a time axis, with the failed invariants across them.
fn lanes_svg(h: &mut String, lanes: &[(String, String)], s: &Summary, axis: &Axis) {
    const LANE: f64 = 30.0;
    let height = 24.0 + LANE * lanes.len() as f64 + 6.0;
    let width = LABEL_W + PLOT_W + 20.0;
    let _ = write!(h, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"timeline\">");
    // Axis with ticks at a round step.
    let span_s = (axis.end - axis.start) / 1000.0;
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0].into_iter().find(|s| span_s / s <= 12.0).unwrap_or(600.0);
    h.push_str("<g class=\"axis\">");
    let mut t = 0.0;
    while t <= span_s + 1e-9 {
        let x = axis.x(axis.start + t * 1000.0);
        let _ = write!(h, "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"18\" y2=\"{height}\" stroke=\"#eef0f3\"/><text x=\"{x:.1}\" y=\"13\" text-anchor=\"middle\">{t:.0} s</text>");
        t += step;
    }
    h.push_str("</g>");
    for (i, (label, g)) in lanes.iter().enumerate() {
        let y = 20.0 + LANE * i as f64;
        let _ = write!(h, "<g transform=\"translate(0,{y})\"><rect x=\"{LABEL_W}\" y=\"2\" width=\"{PLOT_W}\" height=\"{}\" fill=\"{}\"/><text x=\"{}\" y=\"18\" text-anchor=\"end\">{}</text>{g}</g>", LANE - 4.0, if i % 2 == 0 { "#fafbfc" } else { "#ffffff" }, LABEL_W - 8.0, escape(label));
    }
    // Failed invariants across all lanes.
    for sc in &s.scenarios {
        for inv in sc.invariants.iter().filter(|i| !i.passed) {
            let x = axis.x(inv.at);
            let _ = write!(h, "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"16\" y2=\"{height}\" stroke=\"#d64545\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"><title>FAIL {} {}: {}</title></line>", axis.rel(inv.at), escape(&inv.name), escape(&inv.message));
        }
    }
    h.push_str("</svg>");
}

fn tab_lane(t: &TabDigest, d: &Digest, axis: &Axis) -> String {
    let mut g = String::new();
    let end = t.closed_at.unwrap_or(d.end);
    let first = t.stages.first().map(|m| m.at).or(t.states.first().map(|m| m.at)).unwrap_or(end);
    let _ = write!(g, "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"13\" y2=\"13\" stroke=\"#cfd4db\" stroke-width=\"2\"/>", axis.x(first), axis.x(end));
    for (i, m) in t.states.iter().enumerate() {
        let until = t.states.get(i + 1).map(|n| n.at).unwrap_or(end).max(m.at);
        let state = m.text.split_once(": ").map(|(_, s)| s).unwrap_or(&m.text);
        let (x0, x1) = (axis.x(m.at), axis.x(until));
        let _ = write!(
            g,
            "<rect x=\"{x0:.1}\" y=\"6\" width=\"{:.1}\" height=\"14\" rx=\"2\" fill=\"{}\"><title>{} {}</title></rect>",
            (x1 - x0).max(2.0),
            state_colour(state),
            axis.rel(m.at),
            escape(&m.text)
        );
    }
    for m in &t.stages {
        let x = axis.x(m.at);
        let _ = write!(
            g,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"1\" y2=\"6\" stroke=\"#222\" stroke-width=\"1.2\"><title>{} {}</title></line>",
            axis.rel(m.at),
            escape(&m.text)
        );
    }
    for m in &t.problems {
        let x = axis.x(m.at);
        let _ = write!(
            g,
            "<path d=\"M{:.1} 8 l8 10 m0 -10 l-8 10\" stroke=\"#d64545\" stroke-width=\"2.2\"><title>{} {}</title></path>",
            x - 4.0,
            axis.rel(m.at),
            escape(&m.text)
        );
    }
    g
}

/// What a frame sample showed, as a colour and words; consecutive samples alike share one mark.
fn looks(f: &super::digest::FramePoint) -> (String, String) {
    match f.stamp {
        Some(s) => (tag_colour(s.tag), format!("stamp tag {}", s.tag)),
        None if f.mean_luma < crate::frames::analysis::BLACK_LUMA && f.presented > 0 => ("#111".into(), "black picture".into()),
        None if f.presented == 0 => ("#e6e8ec".into(), "no video".into()),
        None => ("#c3c8cf".into(), "no stamp".into()),
    }
}

/// Samples further apart than this are a gap in the lane, not one stretch.
const PIXEL_GAP_MS: f64 = 2000.0;

/// One mark per stretch of alike samples of a video (a healthy 10-minute stream is one mark,
/// not 3,000), so the page stays light however long the run.
fn pixel_lane(t: &TabDigest, axis: &Axis) -> String {
    let mut g = String::new();
    let mut videos: Vec<u32> = t.frames.iter().map(|f| f.video).collect();
    videos.sort_unstable();
    videos.dedup();
    for video in videos {
        let frames: Vec<&super::digest::FramePoint> = t.frames.iter().filter(|f| f.video == video).collect();
        let mut i = 0;
        while i < frames.len() {
            let (colour, what) = looks(frames[i]);
            let mut j = i + 1;
            while j < frames.len() && frames[j].at - frames[j - 1].at <= PIXEL_GAP_MS && looks(frames[j]).0 == colour {
                j += 1;
            }
            let (first, last) = (frames[i], frames[j - 1]);
            let end = frames.get(j).map(|n| n.at).filter(|n| n - last.at <= PIXEL_GAP_MS).unwrap_or(last.at + 500.0);
            let (x0, x1) = (axis.x(first.at), axis.x(end));
            let counters = match (first.stamp, last.stamp) {
                (Some(a), Some(b)) if j - i > 1 => format!(", counter {} \u{2192} {}", a.counter, b.counter),
                _ => String::new(),
            };
            let _ = write!(
                g,
                "<rect x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"6\" fill=\"{colour}\"><title>{} \u{2013} {} video {video}: {what}{counters}; {} sample(s), {} \u{2192} {} presented</title></rect>",
                4.0 + (video % 3) as f64 * 7.0,
                (x1 - x0).max(1.0),
                axis.rel(first.at),
                axis.rel(last.at),
                j - i,
                first.presented,
                last.presented
            );
            i = j;
        }
    }
    g
}

fn correlation(h: &mut String, s: &Summary) {
    h.push_str("<section id=\"correlation\"><h2>State at the moment of failure</h2>\n");
    let mut any = false;
    for sc in &s.scenarios {
        let Some(state) = &sc.state_at_failure else { continue };
        any = true;
        let _ = write!(
            h,
            "<div class=\"card\"><h3>{} \u{2014} when <a href=\"#{}\">{}</a> failed</h3>",
            escape(&sc.name),
            anchor(&sc.name, state.get("invariant").and_then(Value::as_str).unwrap_or("")),
            escape(state.get("invariant").and_then(Value::as_str).unwrap_or("?"))
        );
        if let Some(rows) = state.get("correlation").and_then(Value::as_array) {
            h.push_str("<div class=\"muted\">This scenario's tabs open at that moment, the tab the failure names first.</div>");
            let failing: Vec<u64> =
                state.get("failing_tabs").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
            h.push_str("<div class=\"scroll\"><table><thead><tr><th>tab</th><th>client_unique_id</th><th>mode</th><th>pc state</th><th>errors</th><th>moonlight-web session</th><th>ws</th><th>streamer</th><th>Wolf session</th><th>lobby</th><th>clients</th><th>pixels</th></tr></thead><tbody>");
            for r in rows {
                let txt = |k: &str| match r.get(k) {
                    None | Some(Value::Null) => "-".to_string(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                let pixels = r.get("pixels").map(super::pixel_word).unwrap_or("-");
                let bad = |ok: bool| if ok { "" } else { " class=\"bad\"" };
                let errors =
                    r.get("errors").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")).unwrap_or_default();
                let named = r.get("tab").and_then(Value::as_u64).is_some_and(|t| failing.contains(&t));
                let closed = if r.get("tab_open").and_then(Value::as_bool) == Some(false) { " (closed)" } else { "" };
                let _ = write!(
                    h,
                    "<tr{18}><td><a href=\"#tab-{0}\">{0}</a>{19}</td><td class=\"mono\">{1}</td><td>{2}</td><td{3}>{4}</td><td{5}>{6}</td><td class=\"mono\">{7}</td><td{8}>{9}</td><td{10}>{11}</td><td class=\"mono\">{12}</td><td class=\"mono\">{13}</td><td>{14}</td><td{15}>{16} {17}</td></tr>",
                    escape(&txt("tab")),
                    escape(&txt("client_unique_id")),
                    escape(&txt("mode")),
                    bad(txt("connection_state") == "connected"),
                    escape(&txt("connection_state")),
                    bad(errors.is_empty()),
                    escape(&errors),
                    escape(&txt("mlw_session")),
                    bad(txt("mlw_has_websocket") == "true"),
                    escape(&txt("mlw_has_websocket")),
                    bad(txt("mlw_streamer_alive") == "true"),
                    escape(&txt("mlw_streamer_alive")),
                    escape(&txt("wolf_session")),
                    escape(&txt("lobby")),
                    escape(&txt("lobby_client_count")),
                    bad(pixels == "moving"),
                    pixels,
                    escape(r.get("pixels_lobby").and_then(Value::as_str).unwrap_or("")),
                    if named { " class=\"failing\"" } else { "" },
                    closed
                );
            }
            h.push_str("</tbody></table></div>");
        }
        if let Some(servers) = state.get("servers").and_then(Value::as_object) {
            for (key, title) in
                [("wolf_sessions", "Wolf sessions"), ("lobbies", "Wolf lobbies"), ("mlw_sessions", "moonlight-web sessions"), ("errors", "monitor errors")]
            {
                if let Some(v) = servers.get(key) {
                    let _ = write!(h, "<h3 style=\"margin-top:14px\">{title}</h3>{}", json_table(v));
                }
            }
            if let Some(m) = servers.get("memory").filter(|m| !m.is_null()) {
                let _ =
                    write!(h, "<details><summary>Wolf memory</summary><pre>{}</pre></details>", escape(&serde_json::to_string_pretty(m).unwrap_or_default()));
            }
        }
        h.push_str("</div>\n");
    }
    if !any {
        h.push_str("<div class=\"card muted\">No invariant failed, so no state was kept.</div>\n");
    }
    h.push_str("</section>\n");
}

/// An array of objects as a table (columns: the union of keys in first-seen order); anything
/// else as preformatted JSON.
fn json_table(v: &Value) -> String {
    let Some(items) = v.as_array() else { return format!("<pre>{}</pre>", escape(&serde_json::to_string_pretty(v).unwrap_or_default())) };
    if items.is_empty() {
        return "<div class=\"muted\">none</div>".into();
    }
    if !items.iter().all(Value::is_object) {
        return format!(
            "<pre>{}</pre>",
            escape(&items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())).collect::<Vec<_>>().join("\n"))
        );
    }
    let mut cols: Vec<&str> = Vec::new();
    for i in items {
        for k in i.as_object().into_iter().flat_map(|o| o.keys()) {
            if !cols.contains(&k.as_str()) {
                cols.push(k);
            }
        }
    }
    let mut t = String::from("<div class=\"scroll\"><table><thead><tr>");
    for c in &cols {
        let _ = write!(t, "<th>{}</th>", escape(c));
    }
    t.push_str("</tr></thead><tbody>");
    for i in items {
        t.push_str("<tr>");
        for c in &cols {
            let cell = match i.get(*c) {
                None | Some(Value::Null) => "-".into(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => brief_json(v, 200),
            };
            let _ = write!(t, "<td class=\"mono\">{}</td>", escape(&cell));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table></div>");
    t
}

/// A sparkline on the shared time axis; `None` when there are fewer than two points.
fn sparkline(points: &[(EpochMs, f64)], axis: &Axis, colour: &str) -> Option<String> {
    if points.len() < 2 {
        return None;
    }
    let points = &decimate(points, axis);
    const H: f64 = 34.0;
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let path: Vec<String> = points.iter().map(|(at, v)| format!("{:.1},{:.1}", axis.x(*at) - LABEL_W, H - 2.0 - (v / max) * (H - 6.0))).collect();
    let first_x = axis.x(points[0].0) - LABEL_W;
    let last_x = axis.x(points[points.len() - 1].0) - LABEL_W;
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PLOT_W}\" height=\"{H}\" viewBox=\"0 0 {PLOT_W} {H}\"><rect width=\"{PLOT_W}\" height=\"{H}\" fill=\"#fafbfc\"/><polygon points=\"{first_x:.1},{H} {} {last_x:.1},{H}\" fill=\"{colour}\" fill-opacity=\".12\"/><polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\"/></svg>",
        path.join(" "),
        path.join(" ")
    ))
}

/// Columns of a sparkline: a line has no more detail than this across the plot.
const SPARK_COLUMNS: f64 = 500.0;

/// At most the lowest and the highest point of each column, in time order: the line looks the
/// same (dips and spikes stay) with a bounded number of points however long the run.
fn decimate(points: &[(EpochMs, f64)], axis: &Axis) -> Vec<(EpochMs, f64)> {
    if points.len() <= 2 * SPARK_COLUMNS as usize {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(2 * SPARK_COLUMNS as usize + 2);
    let flush = |out: &mut Vec<(EpochMs, f64)>, lo: (EpochMs, f64), hi: (EpochMs, f64)| {
        let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        out.push(a);
        if b != a {
            out.push(b);
        }
    };
    let column = |at: EpochMs| ((axis.x(at) - LABEL_W) / PLOT_W * SPARK_COLUMNS) as i64;
    // (column, lowest, highest) of the column being filled.
    type Column = (i64, (EpochMs, f64), (EpochMs, f64));
    let mut current: Option<Column> = None;
    for &p in points {
        let col = column(p.0);
        match &mut current {
            Some((c, lo, hi)) if *c == col => {
                if p.1 < lo.1 {
                    *lo = p;
                }
                if p.1 > hi.1 {
                    *hi = p;
                }
            }
            _ => {
                if let Some((_, lo, hi)) = current {
                    flush(&mut out, lo, hi);
                }
                current = Some((col, p, p));
            }
        }
    }
    if let Some((_, lo, hi)) = current {
        flush(&mut out, lo, hi);
    }
    out
}

/// Bytes of screenshots the page embeds at most (base64 grows them by a third); the rest are
/// links into `screenshots/`, so a run with many tabs still opens quickly.
const EMBED_BUDGET_BYTES: usize = 2_000_000;

fn tabs(h: &mut String, s: &Summary, d: &Digest, axis: &Axis, root: &Path, folded: &[TabId]) {
    h.push_str("<section id=\"tabs\"><h2>Tabs</h2><div class=\"tabgrid\">\n");
    let mut ids: Vec<usize> = d.tabs.iter().map(|t| t.tab).chain(s.tabs.iter().map(|t| t.tab)).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut embed_left = EMBED_BUDGET_BYTES;
    for &id in ids.iter().filter(|id| !folded.contains(id)) {
        tab_card(h, s, d, axis, root, id, &mut embed_left);
    }
    h.push_str("</div>");
    if !folded.is_empty() {
        open_folded(h, "closed-tabs", folded, s);
        h.push_str("<div class=\"tabgrid\">");
        // Folded away: embedded with what the tabs in view left of the budget.
        for &id in ids.iter().filter(|id| folded.contains(id) && drawn(folded, **id)) {
            tab_card(h, s, d, axis, root, id, &mut embed_left);
        }
        h.push_str("</div></details>");
    }
    h.push_str("</section>\n");
}

/// One tab's card: what it was, its stats on the run's axis, screenshots (embedded while
/// `embed_left` lasts, linked after), its marks.
fn tab_card(h: &mut String, s: &Summary, d: &Digest, axis: &Axis, root: &Path, id: TabId, embed_left: &mut usize) {
    let empty = TabDigest::default();
    {
        let t = d.tab(id).unwrap_or(&empty);
        let facts = s.tabs.iter().find(|f| f.tab == id);
        let failed = s.scenarios.iter().flat_map(|sc| sc.invariants.iter()).any(|i| !i.passed && tabs_named(&i.message).contains(&id));
        let _ = write!(
            h,
            "<div class=\"card{}\" id=\"tab-{id}\"><div class=\"tabhead\"><h3>tab {id} {}</h3><span class=\"muted mono\">{}</span></div>",
            if failed { " failure" } else { "" },
            if failed { "<span class=\"pill fail\">named in a failure</span>" } else { "" },
            escape(facts.map(|f| f.url.as_str()).or(t.url.as_deref()).unwrap_or(""))
        );
        if let Some(f) = facts {
            h.push_str("<dl class=\"kv\">");
            for (k, v) in [
                ("client_unique_id", &f.client_unique_ids),
                ("moonlight-web session", &f.session_ids),
                ("Wolf session", &f.wolf_sessions),
                ("connection states", &f.connection_states),
                ("errors", &f.errors),
            ] {
                let _ = write!(
                    h,
                    "<dt>{k}</dt><dd class=\"mono{}\">{}</dd>",
                    if k == "errors" && !v.is_empty() { " bad" } else { "" },
                    if v.is_empty() { "-".into() } else { escape(&v.join(", ")) }
                );
            }
            h.push_str("</dl>");
        }
        // Sparklines on the same axis as the swimlane.
        let fps: Vec<(EpochMs, f64)> = t.stats.iter().map(|p| (p.at, p.fps)).collect();
        let kbps: Vec<(EpochMs, f64)> = t.stats.iter().map(|p| (p.at, p.kbps)).collect();
        let lost: Vec<(EpochMs, f64)> = t.stats.iter().map(|p| (p.at, p.packets_lost as f64)).collect();
        let mut presented = Vec::new();
        for (i, f) in t.frames.iter().enumerate() {
            if let Some(prev) = t.frames[..i].iter().rev().find(|p| p.video == f.video) {
                let dt = (f.at - prev.at) / 1000.0;
                if dt > 0.0 {
                    presented.push((f.at, f.presented.saturating_sub(prev.presented) as f64 / dt));
                }
            }
        }
        let luma: Vec<(EpochMs, f64)> = t.frames.iter().map(|f| (f.at, f.mean_luma)).collect();
        for (label, pts, unit, colour) in [
            ("decoded fps", &fps, "fps", "#2e9e5b"),
            ("received kbit/s", &kbps, "kbit/s", "#4f6bed"),
            ("packets lost", &lost, "", "#d64545"),
            ("presented fps (video)", &presented, "fps", "#0e8fa8"),
            ("mean luma", &luma, "", "#7c4dcc"),
        ] {
            if let Some(svg) = sparkline(pts, axis, colour) {
                let last = pts.last().map(|p| p.1).unwrap_or(0.0);
                let max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
                let _ = write!(h, "<div class=\"spark\"><span class=\"label\">{label}</span>{svg}<span class=\"value\">last {last:.0} {unit}<br><span class=\"muted\">max {max:.0}</span></span></div>");
            }
        }
        if t.stats.is_empty() && t.frames.is_empty() {
            h.push_str("<div class=\"muted\">No stats or frames: this tab never received media.</div>");
        }
        let stamps: Vec<String> = {
            let mut v: Vec<String> =
                t.frames.iter().filter_map(|f| f.stamp).map(|s| format!("<span style=\"color:{}\">\u{25a0}</span> tag {}", tag_colour(s.tag), s.tag)).collect();
            v.dedup();
            v
        };
        if !stamps.is_empty() {
            let _ = write!(h, "<div class=\"muted\" style=\"margin-top:4px\">frame stamps seen: {}</div>", stamps.join(" \u{2192} "));
        }
        // Screenshots, embedded.
        let shots = contact_sheet::screenshots_of_tab(&root.join("screenshots"), id);
        if !shots.is_empty() {
            h.push_str("<div class=\"shots\">");
            for p in &shots {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let size = std::fs::metadata(p).map(|m| m.len() as usize).unwrap_or(usize::MAX);
                if size <= *embed_left {
                    if let Ok(bytes) = std::fs::read(p) {
                        *embed_left -= size;
                        let _ = write!(
                            h,
                            "<figure><a href=\"screenshots/{0}\"><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"></a><figcaption>{0}</figcaption></figure>",
                            escape(name),
                            base64::engine::general_purpose::STANDARD.encode(bytes)
                        );
                    }
                } else {
                    let _ = write!(h, "<figure class=\"linked\"><a href=\"screenshots/{0}\">{0}</a></figure>", escape(name));
                }
            }
            h.push_str("</div>");
        }
        let mut marks: Vec<(EpochMs, String, bool)> = t
            .states
            .iter()
            .map(|m| (m.at, format!("connection {}", m.text), false))
            .chain(t.stages.iter().map(|m| (m.at, m.text.clone(), false)))
            .chain(t.problems.iter().map(|m| (m.at, m.text.clone(), true)))
            .collect();
        marks.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !marks.is_empty() {
            let _ = write!(
                h,
                "<details{}><summary>{} stage(s), state change(s) and problem(s)</summary><div class=\"marks\">",
                if failed { " open" } else { "" },
                marks.len()
            );
            for (at, text, problem) in marks {
                let _ = write!(h, "<div{}><span class=\"t\">{}</span>{}</div>", if problem { " class=\"problem\"" } else { "" }, axis.rel(at), escape(&text));
            }
            h.push_str("</div></details>");
        }
        h.push_str("</div>\n");
    }
}

fn invariants(h: &mut String, s: &Summary, axis: &Axis) {
    h.push_str("<section id=\"invariants\"><h2>Invariants</h2><div class=\"card\"><table><thead><tr><th>scenario</th><th>invariant</th><th>result</th><th>at</th><th>message</th></tr></thead><tbody>");
    for sc in &s.scenarios {
        let ScenarioResult { name, invariants, .. } = sc;
        for i in invariants {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td><span class=\"pill {}\">{}</span></td><td class=\"muted\">{}</td><td>{}</td></tr>",
                escape(name),
                escape(&i.name),
                if i.passed { "pass" } else { "fail" },
                if i.passed { "PASS" } else { "FAIL" },
                axis.rel(i.at),
                escape(&i.message)
            );
        }
    }
    h.push_str("</tbody></table></div></section>\n");
}

fn events_table(h: &mut String, s: &Summary, axis: &Axis, events: &[EventRow]) {
    let first_fail = s.scenarios.iter().flat_map(|sc| sc.invariants.iter()).filter(|i| !i.passed).map(|i| i.at).fold(f64::INFINITY, f64::min);
    h.push_str("<section id=\"events\"><h2>Events</h2><div id=\"filters\">");
    for (src, label, on) in [
        ("op", "operations", true),
        ("tab", "tabs", true),
        ("wolf", "Wolf events", true),
        ("logwarn", "log warnings/errors", true),
        ("log", "other log lines", false),
    ] {
        let n = events.iter().filter(|e| e.src == src).count();
        let _ = write!(h, "<label><input type=\"checkbox\" value=\"{src}\"{}> {label} ({n})</label>", if on { " checked" } else { "" });
    }
    h.push_str("</div><div class=\"tablewrap\"><table><thead><tr><th>time</th><th>source</th><th>what</th></tr></thead><tbody>");
    for (i, e) in events.iter().enumerate() {
        let near = (e.at - first_fail).abs() <= 3000.0;
        let mut classes = Vec::new();
        if near {
            classes.push("at-failure".to_string());
        }
        if !e.level.is_empty() {
            classes.push(format!("lv-{}", e.level));
        }
        let _ = write!(
            h,
            "<tr id=\"ev-{i}\" data-src=\"{}\"{}><td class=\"t\" title=\"{}\">{}</td><td>{}</td><td class=\"m mono\">{}</td></tr>",
            e.src,
            if classes.is_empty() { String::new() } else { format!(" class=\"{}\"", classes.join(" ")) },
            clock(e.at),
            axis.rel(e.at),
            escape(&e.who),
            escape(&e.text)
        );
    }
    h.push_str("</tbody></table></div><p class=\"muted\">Rows within 3 s of the first failure are highlighted. Frames, stats and server polls are in <code>timeline.jsonl</code>.</p></section>\n");
}

fn files(h: &mut String, root: &Path) {
    h.push_str("<section id=\"files\"><h2>Files in this run's directory</h2><div class=\"card files\">");
    let mut all = Vec::new();
    collect(root, root, &mut all);
    all.sort();
    for rel in all {
        let _ = write!(h, "<a href=\"{0}\">{0}</a>", escape(&rel));
    }
    h.push_str("</div></section>\n");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            let rel = rel.to_string_lossy().to_string();
            if !rel.ends_with(".partial") {
                out.push(rel);
            }
        }
    }
}
