//! The per-cycle growth of every service (F20's fits, `summary.json`'s `resources`) in the
//! reports: a table in both, and in `report.html` one small chart per service and resource
//! (inline SVG: the value at each completed cycle, the warm-up grey, the fitted line dashed).

use crate::verdict::detectors::leak::{Resource, ResourceGrowth, SeriesGrowth};
use std::fmt::Write;

fn interval(s: &SeriesGrowth) -> [String; 4] {
    match &s.trend {
        Some(t) => [format!("{:+.3}", t.slope), format!("{:+.3} … {:+.3}", t.low, t.high), format!("{:.2}", t.r2), format!("{:.1} → {:.1}", t.first, t.last)],
        None => ["-".into(), "too few cycles".into(), "-".into(), "-".into()],
    }
}

/// The table as Markdown rows (GitHub renders no inline SVG: the chart is in `report.html`).
pub fn markdown(g: &ResourceGrowth) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "### Resource growth per connect/disconnect cycle\n");
    let _ = writeln!(m, "{} cycles completed; the first {} left out of the fits (warm-up). Charts in `report.html`.\n", g.cycles, g.warmup_cycles);
    m.push_str("| service | resource | per cycle | 95 % interval | R² | fitted | first → last |\n|---|---|---|---|---|---|---|\n");
    for s in &g.series {
        let [slope, ci, r2, range] = interval(s);
        let n = s.trend.map(|t| t.points).unwrap_or(0);
        let _ = writeln!(m, "| {} | {} | {slope} | {ci} | {r2} | {n} | {range} |", s.label, s.unit);
    }
    for u in &g.unavailable {
        let _ = writeln!(m, "\n- unavailable: {}", u.replace('|', "\\|"));
    }
    m.push('\n');
    m
}

/// The table and the charts as an HTML section.
pub fn html(g: &ResourceGrowth) -> String {
    let esc = crate::report::junit::escape;
    let mut h = String::new();
    h.push_str("<section id=\"resources\"><h2>Resource growth per cycle</h2><div class=\"card\">");
    let _ = write!(h, "<p>{} connect/disconnect cycles completed; the first {} are left out of the fits (warm-up).</p>", g.cycles, g.warmup_cycles);
    h.push_str("<table><thead><tr><th>service</th><th>resource</th><th>per cycle</th><th>95 % interval</th><th>R²</th><th>fitted</th><th>first → last</th></tr></thead><tbody>");
    for s in &g.series {
        let [slope, ci, r2, range] = interval(s);
        let n = s.trend.map(|t| t.points).unwrap_or(0);
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{slope}</td><td>{ci}</td><td>{r2}</td><td>{n}</td><td>{range}</td></tr>", esc(&s.label), esc(&s.unit));
    }
    h.push_str("</tbody></table>");
    for u in &g.unavailable {
        let _ = write!(h, "<p>unavailable: {}</p>", esc(u));
    }
    h.push_str("<div class=\"charts\">");
    for s in g.series.iter().filter(|s| s.resource != Resource::Live) {
        if let Some(svg) = chart(s, g.warmup_cycles) {
            let _ = write!(h, "<figure style=\"display:inline-block;margin:4px\">{svg}<figcaption>{} {}</figcaption></figure>", esc(&s.label), esc(&s.unit));
        }
    }
    h.push_str("</div></div></section>\n");
    h
}

const W: f64 = 260.0;
const H: f64 = 90.0;
const PAD: f64 = 4.0;

/// Value against cycle; `None` without two points.
fn chart(s: &SeriesGrowth, warmup: u64) -> Option<String> {
    if s.points.len() < 2 {
        return None;
    }
    let (x_max, (lo, hi)) = (
        s.points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64,
        s.points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.1), h.max(p.1))),
    );
    let span = if hi > lo { hi - lo } else { 1.0 };
    let px = |x: f64| PAD + x / x_max * (W - 2.0 * PAD);
    let py = |y: f64| H - PAD - (y - lo) / span * (H - 2.0 * PAD);
    let path = |pts: &mut dyn Iterator<Item = &(u64, f64)>| pts.map(|(x, y)| format!("{:.1},{:.1}", px(*x as f64), py(*y))).collect::<Vec<_>>().join(" ");
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><rect width=\"{W}\" height=\"{H}\" fill=\"#fafafa\" stroke=\"#ddd\"/>");
    let warm = path(&mut s.points.iter().filter(|p| p.0 <= warmup));
    let fitted = path(&mut s.points.iter().filter(|p| p.0 >= warmup));
    let _ = write!(svg, "<polyline fill=\"none\" stroke=\"#aaa\" points=\"{warm}\"/><polyline fill=\"none\" stroke=\"#1f6feb\" points=\"{fitted}\"/>");
    if let Some(t) = &s.trend {
        // The line through the fitted points' mean, with the fitted slope.
        let fit: Vec<&(u64, f64)> = s.points.iter().filter(|p| p.0 > warmup).collect();
        let n = fit.len().max(1) as f64;
        let (mx, my) = (fit.iter().map(|p| p.0 as f64).sum::<f64>() / n, fit.iter().map(|p| p.1).sum::<f64>() / n);
        let (x0, x1) = (warmup as f64, x_max);
        let _ = write!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#d73a49\" stroke-dasharray=\"4 3\"/>",
            px(x0),
            py(my + t.slope * (x0 - mx)),
            px(x1),
            py(my + t.slope * (x1 - mx))
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"12\" font-size=\"10\">{hi:.1}</text><text x=\"{PAD}\" y=\"{}\" font-size=\"10\">{lo:.1}</text></svg>",
        H - PAD - 2.0
    );
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sut::replies::Part;
    use crate::verdict::detectors::leak::Trend;
    use helix_e2e_shared::Service;

    #[test]
    fn the_table_and_chart_show_each_series() {
        let trend = Trend {
            slope: 14.0,
            se: 0.1,
            low: 13.8,
            high: 14.2,
            r2: 0.99,
            points: 10,
            first_cycle: 6,
            last_cycle: 15,
            first: 100.0,
            last: 240.0,
            first_at: 0.0,
            last_at: 1.0,
        };
        let s = SeriesGrowth {
            label: "wolf".into(),
            service: Service::Wolf,
            part: Part::Main,
            resource: Resource::Fds,
            unit: "fds".into(),
            trend: Some(trend),
            points: (0..15).map(|i| (i, 30.0 + 14.0 * i as f64)).collect(),
        };
        let g = ResourceGrowth { cycles: 15, warmup_cycles: 5, series: vec![s], unavailable: vec!["api: <hidden>".into()] };
        let md = markdown(&g);
        assert!(md.contains("| wolf | fds | +14.000 | +13.800 … +14.200 | 0.99 | 10 | 100.0 → 240.0 |"), "{md}");
        let html = html(&g);
        assert!(html.contains("<svg") && html.contains("stroke-dasharray") && html.contains("&lt;hidden&gt;"), "{html}");
    }
}
