//! Durations in the config: `30s`, `15m`, `6h`, `2d` (and combinations), read and written.

use std::time::Duration;

use super::{ConfigError, invalid};

pub(super) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Parses `"30m"`, `"1h"`, `"45s"`, `"500ms"`, `"1h30m"`, `"2d"`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let form = "a duration such as \"500ms\", \"45s\", \"30m\", \"1h\", \"1h30m\" or \"2d\"";
    if s.is_empty() {
        return Err(format!("empty value; expected {form}"));
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{raw:?} is not {form}"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("{raw:?} is not {form}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("{raw:?} is not {form}")),
        };
        rest = &rest[unit_len..];
        total_ms = total_ms
            .checked_add(n.checked_mul(unit_ms).ok_or("duration too large")?)
            .ok_or("duration too large")?;
    }
    let ms = u64::try_from(total_ms).map_err(|_| "duration too large".to_owned())?;
    Ok(Duration::from_millis(ms))
}

/// The shortest exact form of a duration in the units `parse_duration` reads.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

pub(super) fn dur(
    v: Option<String>,
    default: &str,
    key: &'static str,
) -> Result<Duration, ConfigError> {
    parse_duration(v.as_deref().unwrap_or(default)).map_err(|m| invalid(key, m))
}
