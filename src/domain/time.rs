//! Instants as ECS writes them (`yyyy-MM-ddTHH:mmZ`, UTC, no seconds) and as we store them
//! (RFC 3339 UTC with seconds, so that text order is time order in SQLite).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

use super::error::{ParseError, Parsed};

/// Parses the ECS form `2026-12-10T16:00Z` or any RFC 3339 instant (`2026-12-10T16:00:00+00:00`).
pub fn parse_instant(raw: &str) -> Result<DateTime<Utc>, ParseError> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(body) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))
        && let Ok(t) = NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M")
    {
        return Ok(t.and_utc());
    }
    Err(ParseError::new(
        Parsed::Instant,
        format!(
            "{} is not a time: use the ECS form yyyy-MM-ddTHH:mmZ (e.g. 2026-12-10T16:00Z) or RFC 3339 (e.g. 2026-12-10T16:00:00Z)",
            super::error::quote(raw)
        ),
    ))
}

/// The storage form: RFC 3339, UTC, whole seconds, `Z` suffix. Lexicographic order = time order.
pub fn to_db(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The ECS wire form, minutes precision.
pub fn to_ecs(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_and_rfc3339_agree() {
        let a = parse_instant("2026-12-10T16:00Z").unwrap();
        let b = parse_instant("2026-12-11T00:00:00+08:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(to_db(a), "2026-12-10T16:00:00Z");
        assert_eq!(to_ecs(a), "2026-12-10T16:00Z");
    }

    #[test]
    fn garbage_is_refused_with_the_forms() {
        let err = parse_instant("10/12/2026").unwrap_err();
        assert!(err.message.contains("yyyy-MM-ddTHH:mmZ"));
        assert_eq!(err.what, Parsed::Instant);
    }
}
