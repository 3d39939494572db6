//! Wall-clock timestamps: RFC 3339 UTC for records (`started_at`, `finished_at`) and a compact
//! UTC stamp for directory names. Formatting is the `time` crate's; nothing here measures
//! durations (the runner uses monotonic clocks for that).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, UTC, as RFC 3339 with millisecond precision (`2026-11-30T00:21:05.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t);
    ms.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
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
}
