//! Charts as inline SVG, made on the server: no script, no other origin. Colours come
//! from the stylesheet's `f-<status>` classes (dark mode included); every chart has a
//! `<title>` and the numbers are also in a table or legend beside it.

use maud::{html, Markup};
use nhc_core::{ReproStatus, Summary};

use super::{percent, status_label, thousands};

/// The five states in the order they stack: best at the bottom.
const STACK: [ReproStatus; 5] = ReproStatus::ALL;

/// One evaluation's summary as a horizontal stacked bar, with a legend.
pub(crate) fn summary_bar(s: &Summary) -> Markup {
    let total = s.total();
    // (status, count, x, width) of each segment, left to right.
    let mut segments = Vec::new();
    let mut x = 0f64;
    for st in STACK {
        let n = s.count(st);
        if n > 0 && total > 0 {
            let w = n as f64 * 1000.0 / total as f64;
            segments.push((st, n, x, w));
            x += w;
        }
    }
    html! {
        figure.summary {
            svg.bar viewBox="0 0 1000 28" preserveAspectRatio="none" role="img" aria-label={ "Share of each status among " (thousands(total)) " paths" } {
                title { "Share of each status among " (thousands(total)) " paths" }
                @if total == 0 {
                    rect class="f-no_builds" x="0" y="0" width="1000" height="28" {}
                }
                @for (st, n, x, w) in &segments {
                    rect class={ "f-" (st.as_str()) } x=(fmt(*x)) y="0" width=(fmt(*w)) height="28" {
                        title { (status_label(*st)) ": " (thousands(*n)) " (" (percent(*n, total)) ")" }
                    }
                }
            }
            figcaption { (legend(s)) }
        }
    }
}

/// The counts with their colours and words.
pub(crate) fn legend(s: &Summary) -> Markup {
    let total = s.total();
    html! {
        ul.legend {
            @for st in STACK {
                li {
                    span class={ "swatch f-" (st.as_str()) } aria-hidden="true" {}
                    (status_label(st)) ": "
                    strong { (thousands(s.count(st))) }
                    " (" (percent(s.count(st), total)) ")"
                }
            }
        }
    }
}

/// A history of summaries, oldest left: one column per evaluation, stacked shares.
pub(crate) fn trend(points: &[(String, Summary)]) -> Markup {
    const W: f64 = 800.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 40.0;
    let n = points.len().max(1) as f64;
    let col = (W - LEFT) / n;
    let gap = if col > 6.0 { col * 0.15 } else { 0.0 };
    html! {
        svg.trend viewBox={ "0 0 " (W) " " (H + 20.0) } role="img" aria-label="Share of each status per evaluation, oldest left" {
            title { "Share of each status over the last " (points.len()) " evaluations, oldest left" }
            @for pct in [0u32, 50, 100] {
                @let y = H - H * f64::from(pct) / 100.0;
                line.grid x1=(LEFT) x2=(W) y1=(fmt(y)) y2=(fmt(y)) {}
                text.axis x=(LEFT - 6.0) y=(fmt(y + 4.0)) text-anchor="end" { (pct) "%" }
            }
            @for (i, (rev, s)) in points.iter().enumerate() {
                @let total = s.total();
                @let x = LEFT + i as f64 * col + gap / 2.0;
                g {
                    title { (rev) ": " (percent(s.reproduced, total)) " reproduced of " (thousands(total)) " paths" }
                    @for (st, y, h) in column(s, H) {
                        rect class={ "f-" (st.as_str()) } x=(fmt(x)) y=(fmt(y)) width=(fmt(col - gap)) height=(fmt(h)) {}
                    }
                }
            }
            text.axis x=(LEFT) y=(H + 16.0) { "oldest" }
            text.axis x=(W) y=(H + 16.0) text-anchor="end" { "newest" }
        }
    }
}

/// The stacked segments (status, top, height) of one column of height `height`.
fn column(s: &Summary, height: f64) -> Vec<(ReproStatus, f64, f64)> {
    let total = s.total();
    let mut y = height;
    let mut out = Vec::new();
    for st in STACK {
        let n = s.count(st);
        if n > 0 && total > 0 {
            let h = height * n as f64 / total as f64;
            y -= h;
            out.push((st, y, h));
        }
    }
    out
}

/// A small line of the reproduced share over evaluations, oldest left.
pub(crate) fn sparkline(shares: &[f64]) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let step = if shares.len() > 1 { W / (shares.len() - 1) as f64 } else { 0.0 };
    let points: Vec<String> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{},{}", fmt(i as f64 * step), fmt(H - 2.0 - (H - 4.0) * s.clamp(0.0, 1.0))))
        .collect();
    html! {
        svg.spark viewBox={ "0 0 " (W) " " (H) } width="120" height="24" role="img"
            aria-label={ "Reproduced share over the last " (shares.len()) " evaluations" } {
            @if shares.len() > 1 {
                polyline points=(points.join(" ")) {}
            } @else if let Some(p) = points.first() {
                @let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                circle cx=(x) cy=(y) r="2" {}
            }
        }
    }
}

/// Activity: one bar per day, oldest left.
pub(crate) fn activity(days: &[(String, u64)]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 80.0;
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let col = W / days.len().max(1) as f64;
    html! {
        svg.activity viewBox={ "0 0 " (W) " " (H + 16.0) } role="img" aria-label="Attestations per day" {
            @for (i, (day, n)) in days.iter().enumerate() {
                @let h = H * *n as f64 / max;
                rect.f-bar x=(fmt(i as f64 * col + 1.0)) y=(fmt(H - h)) width=(fmt((col - 2.0).max(1.0))) height=(fmt(h)) {
                    title { (day) ": " (thousands(*n)) }
                }
            }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text.axis x="0" y=(H + 14.0) { (first.0) }
                text.axis x=(W) y=(H + 14.0) text-anchor="end" { (last.0) }
            }
        }
    }
}

/// SVG numbers: two decimals at most.
fn fmt(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
