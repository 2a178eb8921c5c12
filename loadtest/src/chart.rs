//! The charts of the report's timeline: requests per second and p99 per
//! second, the engine in blue and the baseline (when there is one) in grey.
//! The SVG is written by hand here; the PNG is drawn by `plot.rs`. Both take
//! their series and title from here, so they always show the same thing.

use std::fmt::Write;

use crate::report::{Report, Second};

const WIDTH: f64 = 800.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 50.0;

/// The engine's and the baseline's (maybe empty) full seconds: the last one
/// is partial (the run ends inside it) and is left out.
pub fn series(report: &Report) -> (&[Second], &[Second]) {
    let engine = &report.timeline;
    let baseline = report.baseline.as_ref().map(|b| b.timeline.as_slice()).unwrap_or(&[]);
    let full = |t: &[Second]| t.len().saturating_sub(1).max(t.len().min(1));
    (&engine[..full(engine)], &baseline[..full(baseline)])
}

pub fn title(report: &Report) -> String {
    format!(
        "{:?} against {}: {} loop, {} connections",
        report.scenario, report.target, report.model, report.connections
    )
}

pub fn svg(report: &Report) -> String {
    let (engine, baseline) = series(report);
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let grey = if baseline.is_empty() { "" } else { " (grey: baseline)" };
    let title = format!("{}{grey}", title(report));
    let _ = writeln!(s, r#"<text x="{LEFT}" y="20" font-size="14">{}</text>"#, escape(&title));
    let seconds = engine.len().max(baseline.len()).max(1) as f64;
    panel(&mut s, TOP, "requests/s", seconds, engine, baseline, |x| x.requests as f64);
    panel(&mut s, TOP + PANEL + GAP, "p99 ms", seconds, engine, baseline, |x| x.p99_ms);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds after warm-up</text>"#,
        WIDTH / 2.0,
        height - 8.0
    );
    s.push_str("</svg>\n");
    s
}

fn panel(
    s: &mut String,
    top: f64,
    label: &str,
    seconds: f64,
    engine: &[Second],
    baseline: &[Second],
    value: fn(&Second) -> f64,
) {
    let max = engine.iter().chain(baseline).map(value).fold(0.0, f64::max).max(1e-9) * 1.1;
    let plot_w = WIDTH - LEFT - RIGHT;
    let bottom = top + PANEL;
    let _ = writeln!(s, r#"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="grey"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, LEFT - 6.0, top + 10.0, number(max));
    let _ = writeln!(s, r#"<text x="{}" y="{bottom}" text-anchor="end">0</text>"#, LEFT - 6.0);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="{}">{label}</text>"#, top - 6.0);
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{seconds}</text>"#, LEFT + plot_w, bottom + 14.0);
    for (series, colour) in [(baseline, "grey"), (engine, "#1f5fbf")] {
        if series.is_empty() {
            continue;
        }
        let points: Vec<String> = series
            .iter()
            .map(|x| {
                let px = LEFT + (x.second as f64 + 0.5) / seconds * plot_w;
                let py = bottom - value(x) / max * PANEL;
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ =
            writeln!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, points.join(" "));
    }
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
