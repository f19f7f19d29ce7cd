//! Output helpers: aligned tables for people, JSON for programs, times in the configured zone.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use std::io::Write;

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

/// A JSON array written element by element, byte for byte what [`json`] prints for the whole
/// array: a million elements never sit in memory at once.
pub struct JsonArray<W: Write> {
    out: W,
    n: usize,
}

impl JsonArray<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    pub fn stdout() -> Self {
        Self::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        ))
    }
}

impl<W: Write> JsonArray<W> {
    pub fn new(out: W) -> Self {
        Self { out, n: 0 }
    }

    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let sep: &[u8] = if self.n == 0 { b"[\n  " } else { b",\n  " };
        self.n += 1;
        self.out.write_all(sep).map_err(write_error)?;
        let mut ser = serde_json::Serializer::with_formatter(&mut self.out, Nested::default());
        value
            .serialize(&mut ser)
            .map_err(|e| Error::Runtime(format!("cannot encode JSON output: {e}")))
    }

    pub fn finish(mut self) -> Result<()> {
        let end: &[u8] = if self.n == 0 { b"[]\n" } else { b"\n]\n" };
        self.out.write_all(end).map_err(write_error)?;
        self.out.flush().map_err(write_error)
    }
}

/// serde_json's pretty layout (two spaces a level) for a value that is itself an element of
/// the top-level array: every line one level deeper.
#[derive(Default)]
struct Nested {
    level: usize,
    has_value: bool,
}

impl Nested {
    fn indent<W: ?Sized + Write>(&self, w: &mut W) -> std::io::Result<()> {
        for _ in 0..=self.level {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, b: &[u8]) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, b: &[u8]) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            self.indent(w)?;
        }
        w.write_all(b)
    }

    fn item<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(w)
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

fn write_error(e: std::io::Error) -> Error {
    Error::Runtime(format!("cannot write the output: {e}"))
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

    #[derive(Serialize)]
    struct E {
        a: u32,
        b: Vec<&'static str>,
        c: Option<String>,
    }

    #[test]
    fn a_streamed_array_is_byte_for_byte_the_whole_arrays_text() {
        let items = [
            E {
                a: 1,
                b: vec!["x", "line\nbreak"],
                c: None,
            },
            E {
                a: 2,
                b: vec![],
                c: Some("q\"uote".into()),
            },
        ];
        for n in 0..=items.len() {
            let mut out = Vec::new();
            let mut arr = JsonArray::new(&mut out);
            for e in &items[..n] {
                arr.push(e).unwrap();
            }
            arr.finish().unwrap();
            let whole = serde_json::to_string_pretty(&items[..n]).unwrap() + "\n";
            assert_eq!(String::from_utf8(out).unwrap(), whole, "{n} elements");
        }
    }
}
