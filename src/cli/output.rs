//! Output helpers: aligned tables for people, JSON for programs, times in the configured zone.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::error::{Error, Result};

/// Prints rows under headers, each column padded to its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Runtime(format!("cannot encode JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// RFC 3339 in UTC (`2026-12-10T16:00:00Z`).
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with the zone's offset (`2026-12-02T08:00:00+08:00`).
pub fn zoned(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Compact local form for tables (`2026-12-02 08:00 +08:00`).
pub fn local_short(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

/// Whole days from `at` until `expires`, rounded down (negative once expired).
pub fn days_left(expires: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    (expires - at).num_seconds().div_euclid(86_400)
}

/// The DAYS LEFT cell: `12`, `<1` on the last day, `expired` after.
pub fn days_left_cell(expires: DateTime<Utc>, at: DateTime<Utc>) -> String {
    if expires <= at {
        "expired".to_owned()
    } else {
        match days_left(expires, at) {
            0 => "<1".to_owned(),
            d => d.to_string(),
        }
    }
}

/// A table cell holding a stored instant (`2026-12-02T00:00:00Z`): shown in `tz` like every
/// other time of the view; anything else is left as it is.
pub fn instant_cell(raw: &str, tz: Tz) -> String {
    match crate::domain::time::parse_instant(raw) {
        Ok(t) => local_short(t, tz),
        _ => raw.to_owned(),
    }
}

pub fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::domain::time::parse_instant(s).unwrap()
    }

    #[test]
    fn days_left_rounds_down_and_says_expired() {
        let e = t("2026-12-10T16:00:00Z");
        assert_eq!(days_left_cell(e, t("2026-12-01T16:00:00Z")), "9");
        assert_eq!(days_left_cell(e, t("2026-12-01T16:00:01Z")), "8");
        assert_eq!(days_left_cell(e, t("2026-12-10T15:00:00Z")), "<1");
        assert_eq!(days_left_cell(e, e), "expired");
        assert_eq!(days_left(e, t("2026-12-11T16:00:00Z")), -1);
    }

    #[test]
    fn instants_in_cells_take_the_view_zone() {
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(
            instant_cell("2026-12-02T00:00:00Z", tz),
            "2026-12-02 08:00 +08:00"
        );
        assert_eq!(instant_cell("renewed", tz), "renewed");
        assert_eq!(instant_cell("42", tz), "42");
    }
}
