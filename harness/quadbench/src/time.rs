//! Wall-clock timestamps: RFC 3339 UTC for records (`started_at`, `finished_at`) and a compact
//! UTC stamp for directory names. Formatting is the `time` crate's; nothing here measures
//! durations (the runner uses monotonic clocks for that).
//!
//! The record format is fixed-width (always three fractional digits) so that timestamps sort as
//! strings in the order of the instants they name: the `time` crate's `Rfc3339` drops trailing
//! zeros (`…56.09Z`), and `"…56.09Z" > "…56.092Z"` as text, which once made two back-to-back
//! runs look as if they overlapped.

use time::OffsetDateTime;
use time::macros::format_description;

/// Now, UTC, as RFC 3339 with millisecond precision (`2026-11-30T00:21:05.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(fmt).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Now, UTC, as `YYYYMMDD-HHMMSS` (for directory names).
pub fn utc_stamp() -> String {
    let t = OffsetDateTime::now_utc();
    format!("{:04}{:02}{:02}-{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_796_000_000_123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2026-11-30T00:53:20.123Z");
        assert_eq!(utc_stamp().len(), 15);
    }

    #[test]
    fn rfc3339_keeps_trailing_zeros_so_text_order_is_time_order() {
        let at = |ns: i128| rfc3339(OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap());
        let (a, b) = (at(1_796_000_000_090_000_000), at(1_796_000_000_092_000_000));
        assert_eq!(a, "2026-11-30T00:53:20.090Z");
        assert!(a < b, "{a} sorts after {b}");
        assert_eq!(at(1_796_000_000_000_000_000), "2026-11-30T00:53:20.000Z");
    }
}
