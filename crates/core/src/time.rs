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

/// Parses an ISO 8601 time as clients send it: RFC 3339 (`2026-12-01T00:00:00Z`, `+02:00`, fractions), or
/// without an offset (taken as UTC, also with a space instead of `T`), or a bare date (its midnight, UTC).
pub fn parse_iso8601(s: &str) -> Option<Timestamp> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let t = s.replacen(' ', "T", 1);
    if let Ok(t) = OffsetDateTime::parse(&t, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let local = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = time::PrimitiveDateTime::parse(&t, &local) {
        return Some(t.assume_utc().unix_timestamp());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_client_times() {
        use super::parse_iso8601 as p;
        assert_eq!(p("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(p("2023-11-14T23:13:20+01:00"), Some(1_700_000_000));
        assert_eq!(p("2023-11-14 22:13:20+00:00"), Some(1_700_000_000));
        assert_eq!(p("2023-11-14T22:13:20"), Some(1_700_000_000));
        assert_eq!(p("2023-11-14T22:13:20.5"), Some(1_700_000_000));
        assert_eq!(p("2023-11-14"), Some(1_699_920_000));
        assert_eq!(p("yesterday"), None);
        assert_eq!(p("2023-13-01"), None);
    }

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
