//! Times are UTC unix seconds inside Ferry; wire formats are produced at the edges.

use time::OffsetDateTime;

/// Unix seconds, UTC.
pub type Timestamp = i64;

/// RFC 3339 rendering of a timestamp (e.g. `2026-11-22T09:00:00+00:00`), as Globus Auth and Groups print times.
pub fn rfc3339(ts: Timestamp) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    dt.format(&fmt).unwrap_or_default()
}

/// The Transfer API's file times: `2023-12-18 16:52:50+00:00`.
pub fn transfer_time(ts: Timestamp) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]+00:00");
    dt.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20+00:00");
        assert_eq!(
            super::transfer_time(1_700_000_000),
            "2023-11-14 22:13:20+00:00"
        );
    }
}
