//! Charts drawn on the server as SVG: a bar per bin or per day, the axis labelled, each bar titled with its figure
//! (a browser shows it on hover, a screen reader reads it). No script library: the dashboard works on a course
//! network cut off from the internet, and the page's Content-Security-Policy allows only the gateway's own files.
//! Every text that goes into a chart is escaped here; only numbers and labels the gateway made reach it anyway.

use std::fmt::Write;

/// One bar: its label under the axis, its value, and the text shown on hover.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub title: String,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 36.0;
const TOP: f64 = 12.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A number for an axis or a title: whole numbers without decimals, others with at most two.
pub fn figure(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        let t = format!("{x:.2}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A bar chart, as an `<svg>` element; `id` names it for the page and for tests, `unit` labels the value axis.
pub fn bars(id: &str, bars: &[Bar], unit: &str) -> String {
    let mut svg = String::new();
    let top = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    // Four gridlines a round step apart (1, 2, 2.5 or 5 times a power of ten), the top one at or above the highest
    // bar (at least 4, so an empty chart still has an axis).
    let scale = {
        let raw = top.max(4.0) / 4.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|step| step * 4.0 >= top)
            .unwrap_or(raw);
        step * 4.0
    };
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let _ = write!(
        svg,
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">"#,
        id = escape(id),
        label = escape(unit),
    );
    for i in 0..=4 {
        let v = scale * f64::from(i) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e2e5ea"/><text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="10" fill="#5a6270">{v}</text>"##,
            x2 = WIDTH - 8.0,
            tx = LEFT - 4.0,
            ty = y + 3.0,
            v = figure(v),
        );
    }
    let _ = write!(
        svg,
        r##"<text x="4" y="{y}" font-size="10" fill="#5a6270">{unit}</text>"##,
        y = TOP - 2.0,
        unit = escape(unit),
    );
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    // Labels thin out so they never overlap: at most one per 40 pixels.
    let every = ((40.0 / slot).ceil() as usize).max(1);
    for (i, b) in bars.iter().enumerate() {
        let h = plot_h * b.value / scale;
        let x = LEFT + slot * i as f64 + slot * 0.1;
        let _ = write!(
            svg,
            r##"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#0063b1" data-value="{v}"><title>{title}</title></rect>"##,
            y = TOP + plot_h - h,
            w = slot * 0.8,
            v = figure(b.value),
            title = escape(&b.title),
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{x:.1}" y="{y}" text-anchor="middle" font-size="10" fill="#5a6270">{label}</text>"##,
                x = LEFT + slot * (i as f64 + 0.5),
                y = HEIGHT - BOTTOM + 14.0,
                label = escape(&b.label),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Scores binned into ten equal bins from 0 to `max` (the last bin holds `max` itself), as bars.
pub fn histogram(scores: &[f64], max: f64) -> Vec<Bar> {
    let max = if max > 0.0 {
        max
    } else {
        scores.iter().copied().fold(1.0, f64::max)
    };
    let bins = 10;
    let width = max / bins as f64;
    let mut counts = vec![0u32; bins];
    for &s in scores {
        let i = ((s / width).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (lo, hi) = (width * i as f64, width * (i + 1) as f64);
            Bar {
                label: figure(lo),
                value: f64::from(c),
                title: format!(
                    "{c} team(s) scored {} to {}{}",
                    figure(lo),
                    if i + 1 == bins { "" } else { "under " },
                    figure(hi)
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_fall_in_ten_bins_and_the_maximum_in_the_last() {
        let bars = histogram(&[0.0, 4.9, 5.0, 10.0, 10.0, 9.99], 10.0);
        let counts: Vec<f64> = bars.iter().map(|b| b.value).collect();
        assert_eq!(counts, [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 3.0]);
        assert_eq!(bars[9].title, "3 team(s) scored 9 to 10");
        assert_eq!(bars[4].title, "1 team(s) scored 4 to under 5");
    }

    #[test]
    fn a_chart_has_a_bar_per_value_and_escapes_its_text() {
        let svg = bars(
            "h",
            &[
                Bar {
                    label: "<b>".into(),
                    value: 3.0,
                    title: "x & y".into(),
                },
                Bar {
                    label: "2".into(),
                    value: 7.0,
                    title: "t".into(),
                },
            ],
            "GPU-hours",
        );
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(
            svg.contains("&lt;b&gt;") && svg.contains("x &amp; y"),
            "{svg}"
        );
        assert!(!svg.contains("<b>"));
        // The axis tops out at a round figure above the highest bar.
        assert!(
            svg.contains(">8</text>") && svg.contains(">6</text>"),
            "{svg}"
        );
        assert!(svg.contains("data-value=\"7\""));
    }
}
