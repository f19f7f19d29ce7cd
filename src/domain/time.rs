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

/// Reads a stored instant: the storage form ([`to_db`]) directly, as a million-host read does
/// millions of times; anything else through [`parse_instant`].
pub fn from_db(s: &str) -> Result<DateTime<Utc>, ParseError> {
    storage_form(s.as_bytes()).map_or_else(|| parse_instant(s), Ok)
}

/// `yyyy-MM-ddTHH:mm:ssZ` exactly, with a valid date and time.
fn storage_form(b: &[u8]) -> Option<DateTime<Utc>> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        n0,
        n1,
        b':',
        s0,
        s1,
        b'Z',
    ] = *b
    else {
        return None;
    };
    let num = |ds: &[u8]| -> Option<u32> {
        ds.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(&[y0, y1, y2, y3])?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, num(&[m0, m1])?, num(&[d0, d1])?)?;
    let time = chrono::NaiveTime::from_hms_opt(num(&[h0, h1])?, num(&[n0, n1])?, num(&[s0, s1])?)?;
    Some(date.and_time(time).and_utc())
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
    fn the_storage_form_is_read_as_parse_instant_reads_it() {
        for s in [
            "2026-12-10T16:00:00Z",
            "1970-01-01T00:00:00Z",
            "2028-02-29T23:59:59Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(from_db(s).unwrap(), parse_instant(s).unwrap(), "{s}");
            assert_eq!(to_db(from_db(s).unwrap()), s);
        }
        // Not the storage form: the general parser decides, errors included.
        for s in [
            "2026-12-10T16:00Z",
            "2026-12-11T00:00:00+08:00",
            "2026-12-10T16:00:00.5Z",
            " 2026-12-10T16:00:00Z",
        ] {
            assert_eq!(from_db(s).unwrap(), parse_instant(s).unwrap(), "{s}");
        }
        for s in [
            "2027-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-10T24:00:00Z",
            "2026-12-1xT16:00:00Z",
            "",
        ] {
            assert!(from_db(s).is_err(), "{s}");
            assert!(parse_instant(s).is_err(), "{s}");
        }
    }

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
