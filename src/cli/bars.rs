//! Grouped bar charts for the demo (relevance per block, accuracy per view), in the same plain,
//! deterministic SVG as the scatter and line charts of `svg.rs`.

use super::svg::{escape, open_document};
use std::fmt::Write;

/// One group of bars: a value per category.
#[derive(Clone, Debug)]
pub struct BarSeries {
    /// Legend label.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// One value per category (non-finite: no bar).
    pub values: Vec<f64>,
}

/// A bar chart: categories along x, one bar per series within each category.
#[derive(Clone, Debug)]
pub struct BarChart {
    /// Title above the plot area.
    pub title: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Category names along x.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<BarSeries>,
    /// Bottom and top of the y axis (values are clipped to it).
    pub y_range: (f64, f64),
}

/// More colour-blind-safe colours (Okabe & Ito), after BLUE and ORANGE.
pub const GREEN: &str = "#009E73";
/// See [`GREEN`].
pub const GREY: &str = "#999999";
/// See [`GREEN`].
pub const VERMILLION: &str = "#D55E00";

impl BarChart {
    /// The chart as a standalone SVG document; the width grows with the number of bars.
    pub fn to_svg(&self) -> String {
        let (left, right, top, bottom) = (56.0, 16.0, 52.0, 70.0);
        let bars = self.series.len().max(1) as f64;
        let ncat = self.categories.len().max(1) as f64;
        // At least wide enough for a title of about 70 characters; the groups share the plot.
        let width = (left + (bars * 12.0 + 10.0).max(36.0) * ncat + right).max(560.0);
        let height = 360.0;
        let pw = width - left - right;
        let group_w = pw / ncat;
        let ph = height - top - bottom;
        let (y0, y1) = self.y_range;
        let sy = |y: f64| top + ph - (y.clamp(y0, y1) - y0) / (y1 - y0) * ph;
        let mut s = open_document(width, height, &self.title, 18.0);
        for k in 0..=5 {
            let v = y0 + (y1 - y0) * k as f64 / 5.0;
            let y = sy(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + pw,
                left - 4.0,
                y + 4.0,
                trim(v)
            );
        }
        for (c, name) in self.categories.iter().enumerate() {
            let gx = left + group_w * c as f64 + (group_w - 12.0 * bars + 2.0) / 2.0;
            for (k, ser) in self.series.iter().enumerate() {
                let Some(&v) = ser.values.get(c) else {
                    continue;
                };
                if !v.is_finite() {
                    continue;
                }
                let (ya, yb) = (sy(v.max(y0)), sy(y0.max(0.0).min(y1)));
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="10" height="{:.1}" fill="{}"><title>{}: {v:.3}</title></rect>"#,
                    gx + 12.0 * k as f64,
                    ya.min(yb),
                    (yb - ya).abs(),
                    ser.color,
                    escape(&ser.name)
                );
            }
            let cx = gx + (12.0 * bars - 2.0) / 2.0;
            let ly = top + ph + 12.0;
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-35 {cx:.1} {ly:.1})">{}</text>"#,
                escape(name)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
            top + ph / 2.0,
            top + ph / 2.0,
            escape(&self.y_label)
        );
        // Legend in one row under the title.
        let mut x = left;
        for ser in &self.series {
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="28" width="10" height="10" fill="{}"/><text x="{:.1}" y="37">{}</text>"#,
                ser.color,
                x + 14.0,
                escape(&ser.name)
            );
            x += 24.0 + 6.5 * ser.name.chars().count() as f64;
        }
        s.push_str("</svg>\n");
        s
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_per_series_and_category() {
        let c = BarChart {
            title: "relevance <blocks>".into(),
            y_label: "share".into(),
            categories: vec!["v".into(), "a*t".into()],
            series: vec![
                BarSeries {
                    name: "p=1".into(),
                    color: GREEN,
                    values: vec![0.4, 0.6],
                },
                BarSeries {
                    name: "p=2".into(),
                    color: GREY,
                    values: vec![0.5, f64::NAN],
                },
            ],
            y_range: (0.0, 1.0),
        };
        let svg = c.to_svg();
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("relevance &lt;blocks&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
