//! RFC 3339 timestamps: printing publish times in log lines, and reading the
//! `--since` of `replay` (jiff): the only module that imports it. Offsets
//! only, no time-zone database.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;

/// `2026-11-26T07:04:47.123Z`: milliseconds, truncated. Times before the epoch
/// print as the epoch; times past jiff's range (the year 9999) as its end.
pub fn format(time: SystemTime) -> String {
    let time = Timestamp::try_from(time.max(UNIX_EPOCH)).unwrap_or(Timestamp::MAX);
    format!("{time:.3}")
}

/// `2026-11-26T07:04:47.123456Z`, for the `time` of a JSON log line:
/// microseconds, so that Cloud Logging keeps the order of lines written in
/// the same millisecond. Always UTC.
pub fn format_micros(time: SystemTime) -> String {
    let time = Timestamp::try_from(time.max(UNIX_EPOCH)).unwrap_or(Timestamp::MAX);
    format!("{time:.6}")
}

/// `2026-11-26 07:04:47.123`, UTC, as a `DATETIME(3)` column holds the
/// erasure record's `UTC_TIMESTAMP(3)`.
pub fn format_datetime(time: SystemTime) -> String {
    let time = Timestamp::try_from(time.max(UNIX_EPOCH)).unwrap_or(Timestamp::MAX);
    time.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Reads RFC 3339, `2026-11-26T07:00:00Z` or `2026-11-26 08:00:00.5+01:00`,
/// and what else jiff's grammar (Temporal's ISO 8601) reads as one instant:
/// `+0100`, `+01`, no seconds, `20261126T070000Z`. A time without an offset is
/// refused: its zone would be a guess. The problem it returns names the text.
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let time: Timestamp = text.parse().map_err(|e| {
        format!("{text:?} is not an RFC 3339 time such as 2026-11-26T07:00:00Z ({e})")
    })?;
    if time < Timestamp::UNIX_EPOCH {
        return Err(format!("{text:?} is before 1970"));
    }
    // Cannot fail on Unix from 1970 to the year 9999; an error, not a panic, if it did.
    SystemTime::try_from(time).map_err(|e| format!("{text:?} is out of range ({e})"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_datetime_is_utc_with_milliseconds() {
        let time = super::parse("2026-11-26T08:04:47.1234+01:00").unwrap();
        assert_eq!(super::format_datetime(time), "2026-11-26 07:04:47.123");
    }

    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(at(1_795_676_687, 123)), "2026-11-26T07:04:47.123Z");
        assert_eq!(format(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(format(at(951_868_800, 0)), "2000-03-01T00:00:00.000Z");
        // Milliseconds are cut, never rounded up into the next second.
        assert_eq!(
            format(at(1_709_251_199, 0) + Duration::from_nanos(999_999_999)),
            "2024-02-29T23:59:59.999Z"
        );
        // Before the epoch: printed as the epoch rather than panicking.
        assert_eq!(
            format(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
        // Past the year 9999, which jiff cannot hold: its last instant, no panic.
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(format(far).starts_with("9999-12-"), "{}", format(far));
    }

    #[test]
    fn log_times_have_microseconds() {
        assert_eq!(format_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let time = at(1_795_676_687, 123) + Duration::from_nanos(456_789);
        assert_eq!(format_micros(time), "2026-11-26T07:04:47.123456Z");
        assert_eq!(
            parse(&format_micros(time)),
            Ok(time - Duration::from_nanos(789))
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
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(UNIX_EPOCH));
        // Nanoseconds are kept, not cut to milliseconds.
        assert_eq!(
            parse("2026-11-26T07:04:47.000000001Z"),
            Ok(at(1_795_676_687, 0) + Duration::from_nanos(1))
        );
        // -00:00 ("offset unknown", RFC 3339 4.3) is the same instant as Z.
        assert_eq!(parse("2026-11-26T07:04:47-00:00"), Ok(at(1_795_676_687, 0)));
        for time in [at(0, 0), at(1_795_676_687, 5), at(4_102_444_800, 999)] {
            assert_eq!(parse(&format(time)), Ok(time));
        }
    }

    /// jiff reads more than RFC 3339: ISO 8601 forms that still name exactly
    /// one instant. An operator pasting `date +%z`'s offset or a backup tool's
    /// basic-format stamp gets the time meant, so these are accepted.
    #[test]
    fn iso8601_forms_that_name_one_instant_are_read_too() {
        let meant = Ok(at(1_795_676_640, 0)); // 2026-11-26T07:04:00Z
        for text in [
            "2026-11-26T08:04:00+0100",
            "2026-11-26T08:04:00+01",
            "2026-11-26T07:04Z",
            "20261126T070400Z",
            "2026-11-26T07:04:00,0Z",
            "2026-11-26T02:04:00-05:00[America/New_York]",
        ] {
            assert_eq!(parse(text), meant, "{text:?}");
        }
    }

    /// Offsets past RFC 3339's 23:59, up to jiff's 25:59 (as in POSIX zones),
    /// read as written, as the old parser read them; 26 hours and more are refused.
    #[test]
    fn offsets_read_as_written_up_to_25_59() {
        assert_eq!(parse("2026-11-27T07:04:47+24:00"), Ok(at(1_795_676_687, 0)));
        assert_eq!(parse("2026-11-27T09:03:47+25:59"), Ok(at(1_795_676_687, 0)));
    }

    /// A leap second reads as the second before it: a replay then starts one
    /// second early, the safe side (the old parser read the second after).
    #[test]
    fn a_leap_second_reads_as_the_second_before() {
        assert_eq!(parse("2016-12-31T23:59:60Z"), Ok(at(1_483_228_799, 0)));
    }

    #[test]
    fn other_text_is_refused_and_named() {
        for bad in [
            "",
            "yesterday",
            "2026-11-26",
            // No offset: local time, UTC or the database's zone? Not guessed.
            "2026-11-26T07:04:47",
            "2026-11-26 07:04:47",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T23:60:00Z",
            "2026-11-26T07:04:47.Z",
            // Digits past the nanosecond: the old parser cut them, jiff refuses.
            "2026-11-26T07:04:47.1234567891Z",
            "2026-11-26T07:04:47+26:00",
            "2026-11-26T07:04:47+01:60",
            "2026-11-26T07:04:47ZZ",
            " 2026-11-26T07:04:47Z",
            "2026-11-26T07:04:47Z ",
            "10000-01-01T00:00:00Z",
            "２026-11-26T07:04:47Z",
        ] {
            let problem = parse(bad).expect_err(bad);
            assert!(
                problem.starts_with(&format!(
                    "{bad:?} is not an RFC 3339 time such as 2026-11-26T07:00:00Z ("
                )),
                "{problem}"
            );
        }
    }

    #[test]
    fn times_before_1970_are_refused() {
        for bad in [
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "-000001-01-01T00:00:00Z",
        ] {
            assert_eq!(parse(bad), Err(format!("{bad:?} is before 1970")));
        }
    }
}
