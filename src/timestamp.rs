//! RFC 3339 timestamps: printing publish times in log lines, and reading the
//! `--since` of `replay`. Pure functions, no time-zone database: offsets only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-26T07:04:47.123Z`. Times before the epoch print as the epoch.
pub fn format(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`, `z` and a space
/// separator accepted too). The problem it returns names what is wrong.
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time such as 2026-11-26T07:00:00Z");
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = text.get(range).ok_or_else(bad)?;
        if digits.bytes().all(|c| c.is_ascii_digit()) {
            digits.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        for (i, c) in fraction[..digits].bytes().take(9).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let hours = number(text.len() - 5..text.len() - 3)?;
            let minutes = number(text.len() - 2..text.len())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3_600 + minutes * 60)
        }
        _ => return Err(bad()),
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01 (the inverse of the above).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(at(1_795_676_687, 123)), "2026-11-26T07:04:47.123Z");
        assert_eq!(format(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(format(at(951_868_800, 0)), "2000-03-01T00:00:00.000Z");
        // Before the epoch: printed as the epoch rather than panicking.
        assert_eq!(
            format(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rfc3339_times_are_read() {
        assert_eq!(parse("2026-11-26T07:04:47Z"), Ok(at(1_795_676_687, 0)));
        assert_eq!(
            parse("2026-11-26T07:04:47.123Z"),
            Ok(at(1_795_676_687, 123))
        );
        assert_eq!(parse("2026-11-26T08:04:47+01:00"), Ok(at(1_795_676_687, 0)));
        assert_eq!(
            parse("2026-11-26t02:04:47.123-05:00"),
            Ok(at(1_795_676_687, 123))
        );
        assert_eq!(
            parse("2024-02-29 23:59:59.999z"),
            Ok(at(1_709_251_199, 999))
        );
        for time in [at(0, 0), at(1_795_676_687, 5), at(4_102_444_800, 999)] {
            assert_eq!(parse(&format(time)), Ok(time));
        }
    }

    #[test]
    fn other_text_is_refused() {
        for bad in [
            "",
            "yesterday",
            "2026-11-26",
            "2026-11-26T07:04:47",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T07:04:47.Z",
            "2026-11-26T07:04:47+0100",
            "1969-12-31T23:59:59Z",
            "2026-11-26T07:04:47ZZ",
            "２026-11-26T07:04:47Z",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
