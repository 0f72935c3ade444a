//! Numbers, durations and dates as the app prints them (no window needed, unit-tested).

/// A duration for a table cell or a progress line: `42 s`, `3 min 05 s`, `2 h 07 min`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".into();
    }
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// A Unix time (seconds, UTC) as `YYYY-MM-DD HH:MM` UTC.
pub fn date_utc(unix_secs: f64) -> String {
    if !unix_secs.is_finite() {
        return "—".into();
    }
    let secs = unix_secs.floor() as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        of_day / 3600,
        (of_day % 3600) / 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A task metric with four decimals (`0.9128`), as the CLI prints it; not a percentage, so a
/// negative Matthews correlation reads as what it is.
pub fn metric(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "—".into()
    }
}

/// Training throughput: `1234 ex/s`, `12.3 ex/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "—".into()
    } else if per_sec >= 100.0 {
        format!("{per_sec:.0} ex/s")
    } else {
        format!("{per_sec:.1} ex/s")
    }
}

/// A count with thousands separators: `113,569`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(113_569), "113,569");
        assert_eq!(count(22_713_986), "22,713,986");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(7620.0), "2 h 07 min");
        assert_eq!(duration(f64::NAN), "—");
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(date_utc(0.0), "1970-01-01 00:00");
        // 2024-02-29 12:34:56 UTC (a leap day).
        assert_eq!(date_utc(1_709_210_096.0), "2024-02-29 12:34");
        assert_eq!(date_utc(951_782_400.0), "2000-02-29 00:00");
    }

    #[test]
    fn metrics_and_rates_read_plainly() {
        assert_eq!(metric(0.912_84), "0.9128");
        assert_eq!(metric(f64::INFINITY), "—");
        assert_eq!(rate(1234.4), "1234 ex/s");
        assert_eq!(rate(12.34), "12.3 ex/s");
        assert_eq!(rate(0.0), "—");
    }
}
