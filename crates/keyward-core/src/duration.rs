//! Human durations of the API: `0s`, `90m`, `12h`, `30d`, `2w`, `6mo`, `1y`.

use chrono::Duration;

/// Parses a duration; months count 30 days and years 365.
pub fn parse(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 9 {
        return None;
    }
    let n: i64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        "mo" => n * 30 * 86_400,
        "y" => n * 365 * 86_400,
        _ => return None,
    };
    // Longer than 100 years is a typo, not a policy.
    (secs <= 100 * 365 * 86_400).then(|| Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("0s"), Some(Duration::zero()));
        assert_eq!(parse("12h"), Some(Duration::hours(12)));
        assert_eq!(parse("30d"), Some(Duration::days(30)));
        assert_eq!(parse("6mo"), Some(Duration::days(180)));
        assert_eq!(parse("1y"), Some(Duration::days(365)));
        assert_eq!(parse("90m"), Some(Duration::minutes(90)));
        for bad in ["", "d", "10", "1.5h", "-1d", "3x", "1000y", "99999999999s"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
