//! Time helpers: Unix seconds in, RFC 3339 UTC out.

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    Utc::now().timestamp()
}

/// RFC 3339 in UTC with second precision (`2026-11-26T10:00:00Z`); `None` when out of range.
pub fn rfc3339(unix: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(unix, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// A short human form for messages (`2026-11-26 10:00 UTC`).
pub fn human(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{unix} (Unix seconds)"))
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(human(1_795_687_200), "2026-11-26 10:00 UTC");
        assert_eq!(parse_rfc3339("2026-11-26T10:00:00Z"), Some(1_795_687_200));
        assert_eq!(
            parse_rfc3339("2026-11-26T11:00:00+01:00"),
            Some(1_795_687_200)
        );
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }
}
