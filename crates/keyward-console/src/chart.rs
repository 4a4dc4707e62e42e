//! Usage charts as SVG drawn on the server: no script, readable by a screen reader (a
//! summary label, a title per bar) and shown with a table of the same numbers.

use std::fmt::Write;

use keyward_core::wire::usage::UsageBucket;

const W: f64 = 720.0;
const H: f64 = 160.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 20.0;

/// Bars of each bucket's total; refused verifications (any code but `VALID`) drawn on top in
/// the second tone.
pub(crate) fn bars(buckets: &[UsageBucket], label: &str) -> String {
    let max = buckets.iter().map(|b| b.total).max().unwrap_or(0).max(1) as f64;
    let total: u64 = buckets.iter().map(|b| b.total).sum();
    let n = buckets.len().max(1) as f64;
    let slot = W / n;
    let bar = (slot * 0.8).max(1.0);
    let plot = H - TOP - BOTTOM;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{label}: {total} verifications in {} buckets, at most {max} in one" xmlns="http://www.w3.org/2000/svg">"#,
        buckets.len()
    );
    let _ = write!(svg, r#"<line class="axis" x1="0" y1="{y}" x2="{W}" y2="{y}"/>"#, y = H - BOTTOM);
    for (i, b) in buckets.iter().enumerate() {
        let valid = b.by_code.get("VALID").copied().unwrap_or(0);
        let refused = b.total.saturating_sub(valid);
        let x = i as f64 * slot + (slot - bar) / 2.0;
        let h_valid = plot * valid as f64 / max;
        let h_refused = plot * refused as f64 / max;
        let base = H - BOTTOM;
        let when = b.start.format("%Y-%m-%d %H:%M");
        let _ = write!(svg, r#"<g><title>{when}: {} ({valid} valid, {refused} refused)</title>"#, b.total);
        let _ = write!(
            svg,
            r#"<rect class="valid" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h_valid:.1}"/>"#,
            base - h_valid
        );
        if refused > 0 {
            let _ = write!(
                svg,
                r#"<rect class="refused" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h_refused:.1}"/>"#,
                base - h_valid - h_refused
            );
        }
        svg.push_str("</g>");
    }
    if let (Some(first), Some(last)) = (buckets.first(), buckets.last()) {
        let _ = write!(
            svg,
            r#"<text x="0" y="{H}">{}</text><text x="{W}" y="{H}" text-anchor="end">{}</text>"#,
            first.start.format("%m-%d %H:%M"),
            last.start.format("%m-%d %H:%M")
        );
    }
    let _ = write!(svg, r#"<text x="0" y="12">max {max}</text></svg>"#);
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn bucket(h: u32, valid: u64, refused: u64) -> UsageBucket {
        let mut by_code = std::collections::BTreeMap::new();
        by_code.insert("VALID".to_string(), valid);
        by_code.insert("REVOKED".to_string(), refused);
        UsageBucket { start: Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap(), total: valid + refused, by_code }
    }

    #[test]
    fn one_bar_per_bucket_scaled_to_the_largest() {
        let svg = bars(&[bucket(0, 10, 0), bucket(1, 5, 5), bucket(2, 0, 0)], "Usage");
        assert_eq!(svg.matches("<title>").count(), 3);
        assert_eq!(svg.matches(r#"class="refused""#).count(), 1);
        // The largest bucket fills the plot's height (160 - 16 - 20).
        assert!(svg.contains(r#"height="124.0""#), "{svg}");
        assert!(svg.contains("20 verifications in 3 buckets"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn no_buckets_draws_an_empty_chart() {
        let svg = bars(&[], "Usage");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
