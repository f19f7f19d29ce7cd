//! Inventory import: CSV (`dedicated_host_id,region_id,expired_time,charge_type[,renewal_status,
//! duration,period_unit]`) or JSON (an array of objects with those keys). Parsing is all or
//! nothing: the first bad row stops it with its line (CSV) or element number (JSON) and field.

use std::collections::HashMap;
use std::fmt;

use crate::domain::error::quote;
use crate::domain::policy::parse_policy;
use crate::domain::time::parse_instant;
use crate::domain::{ChargeType, Host, HostId, HostStatus};
use crate::store::HostInput;

const REQUIRED: [&str; 4] = [
    "dedicated_host_id",
    "region_id",
    "expired_time",
    "charge_type",
];
const OPTIONAL: [&str; 3] = ["renewal_status", "duration", "period_unit"];

/// Where in the file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// "line 17" for CSV, "element 3" for JSON.
    pub location: String,
    pub field: String,
    /// The documented API code when the row breaks a rule of §2 (e.g. `ChargeTypeViolation`).
    pub code: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, field {}: ", self.location, self.field)?;
        if let Some(code) = self.code {
            write!(f, "{code}: ")?;
        }
        write!(f, "{}; nothing was imported", self.message)
    }
}

impl std::error::Error for ImportError {}

/// The fields of one record, as text.
#[derive(Default)]
struct RawRow {
    id: String,
    region: String,
    expired: String,
    charge: String,
    status: String,
    duration: String,
    unit: String,
}

/// Largest import file read: a million hosts in CSV are about 80 MB.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// Reads an import file, refusing one larger than [`MAX_FILE_BYTES`] (or endless, like
/// `/dev/zero`) without reading more than that.
pub fn read_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is larger than {} MiB; split it (imports are all-or-nothing per file)",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{shown} is not UTF-8 text (byte {} is not); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Parses either format, chosen by content: after an optional byte-order mark, `[` is a JSON
/// array; `{` is JSON too (refused: an import is an array of host objects); else CSV.
pub fn parse(text: &str) -> Result<Vec<HostInput>, ImportError> {
    let mut out = Vec::new();
    parse_each(text, &mut |h| {
        out.push(h);
        true
    })?;
    Ok(out)
}

/// [`parse`], handing over `chunk` hosts at a time (the last chunk may be shorter); stops early,
/// without an error, when `f` returns false. A later row's error is still an error of the whole
/// file: the caller writes chunks inside one transaction and drops it on an error.
pub fn parse_chunks(
    text: &str,
    chunk: usize,
    f: &mut dyn FnMut(Vec<HostInput>) -> bool,
) -> Result<(), ImportError> {
    let mut buf = Vec::with_capacity(chunk);
    let mut open = true;
    parse_each(text, &mut |h| {
        buf.push(h);
        if buf.len() >= chunk {
            open = f(std::mem::take(&mut buf));
        }
        open
    })?;
    if open && !buf.is_empty() {
        f(buf);
    }
    Ok(())
}

/// Parses `text`, handing each host to `sink` in file order; stops when it returns false.
fn parse_each(text: &str, sink: &mut dyn FnMut(HostInput) -> bool) -> Result<(), ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.trim_start().chars().next();
    if first == Some('{') {
        return Err(ImportError {
            location: "line 1".into(),
            field: "document".into(),
            code: None,
            message: "a JSON object; an import file holds a JSON array of host objects (or CSV)"
                .into(),
        });
    }
    if first == Some('[') {
        parse_json(text, sink)
    } else {
        parse_csv(text, sink)
    }
}

fn parse_csv(text: &str, sink: &mut dyn FnMut(HostInput) -> bool) -> Result<(), ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header_err = |message: String| ImportError {
        location: "line 1".into(),
        field: "header".into(),
        code: None,
        message,
    };
    let headers = rdr
        .headers()
        .map_err(|e| header_err(format!("cannot read the header: {e}")))?
        .clone();
    let mut col: HashMap<&str, usize> = HashMap::new();
    for (i, name) in headers.iter().enumerate() {
        let known = REQUIRED.iter().chain(OPTIONAL.iter()).find(|k| **k == name);
        let Some(k) = known else {
            return Err(header_err(format!(
                "unknown column {name:?}; columns are {} and optionally {}",
                REQUIRED.join(","),
                OPTIONAL.join(",")
            )));
        };
        if col.insert(k, i).is_some() {
            return Err(header_err(format!("column {name:?} appears twice")));
        }
    }
    for k in REQUIRED {
        if !col.contains_key(k) {
            return Err(header_err(format!(
                "missing column {k:?}; the header must name {}",
                REQUIRED.join(",")
            )));
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            ImportError {
                location: format!("line {line}"),
                field: "row".into(),
                code: None,
                message: format!("malformed CSV row: {e}"),
            }
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let cell = |k: &str| {
            col.get(k)
                .and_then(|i| rec.get(*i))
                .unwrap_or_default()
                .to_owned()
        };
        let raw = RawRow {
            id: cell("dedicated_host_id"),
            region: cell("region_id"),
            expired: cell("expired_time"),
            charge: cell("charge_type"),
            status: cell("renewal_status"),
            duration: cell("duration"),
            unit: cell("period_unit"),
        };
        if !sink(row_to_input(&raw, &format!("line {line}"), &mut seen)?) {
            break;
        }
    }
    Ok(())
}

/// One element of a JSON import: an object as its key/value pairs in order (so a repeated key
/// is seen, not silently overwritten), or what else it was.
enum Element {
    Object(Vec<(String, serde_json::Value)>),
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Element, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    pairs.push((k, v));
                }
                Ok(Element::Object(pairs))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Element, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Element::Other("an array"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element, E> {
                Ok(Element::Other("a string"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
                Ok(Element::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
                Ok(Element::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Element, E> {
                Ok(Element::Other("a number"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element, E> {
                Ok(Element::Other("a boolean"))
            }
            fn visit_unit<E>(self) -> Result<Element, E> {
                Ok(Element::Other("null"))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_json(text: &str, sink: &mut dyn FnMut(HostInput) -> bool) -> Result<(), ImportError> {
    let items: Vec<Element> = serde_json::from_str(text).map_err(|e| ImportError {
        location: format!("line {}", e.line()),
        field: "document".into(),
        code: None,
        message: format!("not a JSON array of host objects: {e}"),
    })?;
    let mut seen = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let location = format!("element {}", i + 1);
        let pairs = match item {
            Element::Object(pairs) => pairs,
            Element::Other(what) => {
                return Err(ImportError {
                    location,
                    field: "element".into(),
                    code: None,
                    message: format!("{what}, not a JSON object"),
                });
            }
        };
        let mut obj: HashMap<&str, &serde_json::Value> = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            if !REQUIRED.contains(&key.as_str()) && !OPTIONAL.contains(&key.as_str()) {
                return Err(ImportError {
                    location,
                    field: quote(key),
                    code: None,
                    message: format!(
                        "unknown key; keys are {} and optionally {}",
                        REQUIRED.join(", "),
                        OPTIONAL.join(", ")
                    ),
                });
            }
            if obj.insert(key.as_str(), value).is_some() {
                return Err(ImportError {
                    location,
                    field: key.clone(),
                    code: None,
                    message:
                        "the key appears twice in this object; which one is meant is not guessed"
                            .into(),
                });
            }
        }
        let text_of = |k: &'static str| -> Result<String, ImportError> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(String::new()),
                Some(serde_json::Value::String(s)) => Ok(s.trim().to_owned()),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Some(other) => Err(ImportError {
                    location: location.clone(),
                    field: k.into(),
                    code: None,
                    message: format!(
                        "expected a string or number, found {}",
                        quote(&other.to_string())
                    ),
                }),
            }
        };
        let raw = RawRow {
            id: text_of("dedicated_host_id")?,
            region: text_of("region_id")?,
            expired: text_of("expired_time")?,
            charge: text_of("charge_type")?,
            status: text_of("renewal_status")?,
            duration: text_of("duration")?,
            unit: text_of("period_unit")?,
        };
        if !sink(row_to_input(&raw, &location, &mut seen)?) {
            break;
        }
    }
    Ok(())
}

/// Builds one host from individual fields (used by `hosts add`), with the same rules as a row.
pub fn host_from_fields(
    id: &str,
    region: &str,
    expired: &str,
    charge: &str,
    renewal_status: Option<&str>,
    duration: Option<i64>,
    period_unit: Option<&str>,
) -> Result<HostInput, ImportError> {
    let raw = RawRow {
        id: id.trim().to_owned(),
        region: region.trim().to_owned(),
        expired: expired.trim().to_owned(),
        charge: charge.trim().to_owned(),
        status: renewal_status.unwrap_or_default().to_owned(),
        duration: duration.map(|d| d.to_string()).unwrap_or_default(),
        unit: period_unit.unwrap_or_default().to_owned(),
    };
    row_to_input(&raw, "arguments", &mut HashMap::new())
}

/// An error at this row's location.
fn row_err(
    location: &str,
    field: &str,
    code: Option<&'static str>,
    message: String,
) -> ImportError {
    ImportError {
        location: location.to_owned(),
        field: field.to_owned(),
        code,
        message,
    }
}

fn row_to_input(
    raw: &RawRow,
    location: &str,
    seen: &mut HashMap<String, String>,
) -> Result<HostInput, ImportError> {
    let err = |field: &str, code, message| row_err(location, field, code, message);
    let id = HostId::parse(&raw.id).map_err(|m| {
        err(
            "dedicated_host_id",
            Some("InvalidParameter.InvalidDedicatedHostId"),
            m.into(),
        )
    })?;
    if let Some(first) = seen.insert(raw.id.clone(), location.to_owned()) {
        return Err(err(
            "dedicated_host_id",
            None,
            format!("{id} already appears at {first}"),
        ));
    }
    if !crate::domain::ids::valid_region(&raw.region) {
        return Err(err(
            "region_id",
            None,
            format!(
                "{} is not a region id (lowercase letters, digits and -, at most {} characters, e.g. cn-hangzhou)",
                quote(&raw.region),
                crate::domain::ids::MAX_REGION_LEN
            ),
        ));
    }
    let expired_time =
        parse_instant(&raw.expired).map_err(|m| err("expired_time", None, m.into()))?;
    let charge_type = ChargeType::parse(&raw.charge).ok_or_else(|| {
        err(
            "charge_type",
            None,
            format!(
                "{} is not a charge type; valid values: {}",
                quote(&raw.charge),
                ChargeType::VALID
            ),
        )
    })?;
    let policy = row_policy(raw, location, &id, charge_type)?;
    Ok(HostInput {
        host: Host {
            id,
            region_id: raw.region.clone(),
            zone_id: None,
            charge_type,
            status: HostStatus::available(),
            expired_time,
            sale_cycle: None,
            financial_lock: false,
        },
        policy,
    })
}

/// The row's policy columns, if any is filled: only a PrePaid host takes one.
fn row_policy(
    raw: &RawRow,
    location: &str,
    id: &HostId,
    charge_type: ChargeType,
) -> Result<Option<crate::domain::Policy>, ImportError> {
    let err = |field: &str, code, message| row_err(location, field, code, message);
    if raw.status.is_empty() && raw.duration.is_empty() && raw.unit.is_empty() {
        return Ok(None);
    }
    if charge_type == ChargeType::PostPaid {
        return Err(err(
            "renewal_status",
            Some("ChargeTypeViolation"),
            format!("{id} is PostPaid; only PrePaid hosts take a renewal policy"),
        ));
    }
    let duration = if raw.duration.is_empty() {
        None
    } else {
        Some(raw.duration.parse::<i64>().map_err(|_| {
            err(
                "duration",
                Some("InvalidParameter.Duration"),
                format!("{} is not a whole number", quote(&raw.duration)),
            )
        })?)
    };
    let status = (!raw.status.is_empty()).then_some(raw.status.as_str());
    let unit = (!raw.unit.is_empty()).then_some(raw.unit.as_str());
    let policy = parse_policy(None, status, duration, unit).map_err(|v| {
        let field = match v.field {
            "RenewalStatus" => "renewal_status",
            "Duration" => "duration",
            _ => "period_unit",
        };
        let mut m = v.message;
        if let Some(valid) = v.valid {
            m.push_str(&format!("; valid values: {valid}"));
        }
        err(field, Some(v.code), m)
    })?;
    Ok(Some(policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RenewalStatus;

    const GOOD: &str =
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit
dh-a,cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal,1,Month
dh-b,cn-hangzhou,2026-12-11T01:00:00Z,prepaid,,,
dh-c,cn-shanghai,2027-01-01T16:00Z,PostPaid,,,
";

    #[test]
    fn csv_with_and_without_policy() {
        let rows = parse(GOOD).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].policy.unwrap().status, RenewalStatus::AutoRenewal);
        assert!(rows[1].policy.is_none());
        assert_eq!(rows[1].host.charge_type, ChargeType::PrePaid);
    }

    #[test]
    fn minimal_header() {
        let rows = parse("dedicated_host_id,region_id,expired_time,charge_type\ndh-a,cn-hangzhou,2026-12-10T16:00Z,PrePaid\n").unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn bad_row_names_line_and_field() {
        let text = GOOD.replace("2027-01-01T16:00Z", "tomorrow");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.location, "line 4");
        assert_eq!(e.field, "expired_time");
        let text = GOOD.replace("AutoRenewal,1,Month", "AutoRenewal,5,Month");
        let e = parse(&text).unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.field.as_str(), e.code),
            ("line 2", "duration", Some("InvalidParameter.Duration"))
        );
        let text = GOOD.replace("PostPaid,,,", "PostPaid,AutoRenewal,,");
        assert_eq!(parse(&text).unwrap_err().code, Some("ChargeTypeViolation"));
        let text = GOOD.replace("dh-b", "dh-a");
        assert!(parse(&text).unwrap_err().message.contains("line 2"));
    }

    #[test]
    fn header_problems() {
        assert!(
            parse("id,region\n")
                .unwrap_err()
                .message
                .contains("unknown column")
        );
        assert!(
            parse("dedicated_host_id,region_id\n")
                .unwrap_err()
                .message
                .contains("missing column")
        );
    }

    #[test]
    fn json_form() {
        let rows = parse(r#"[{"dedicated_host_id":"dh-a","region_id":"cn-hangzhou","expired_time":"2026-12-10T16:00Z","charge_type":"PrePaid","duration":12,"renewal_status":"AutoRenewal"}]"#).unwrap();
        assert_eq!(rows[0].policy.unwrap().period.n, 12);
        let e = parse(r#"[{"dedicated_host_id":"dh-a","region_id":"cn-hangzhou","expired_time":"2026-12-10T16:00Z","charge_type":"Free"}]"#).unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.field.as_str()),
            ("element 1", "charge_type")
        );
    }

    #[test]
    fn bounded_input_and_content_detection() {
        const ROW: &str = r#""region_id":"cn-hangzhou","expired_time":"2026-12-10T16:00Z","charge_type":"PrePaid""#;
        // A byte-order mark, then JSON: detected as JSON.
        let rows = parse(&format!(
            "\u{feff}[{{\"dedicated_host_id\":\"dh-a\",{ROW}}}]"
        ))
        .unwrap();
        assert_eq!(rows.len(), 1);
        // A JSON object is JSON, and refused as such (not parsed as CSV).
        let e = parse(&format!("{{\"dedicated_host_id\":\"dh-a\",{ROW}}}")).unwrap_err();
        assert!(e.message.contains("JSON array"), "{e}");
        // A repeated key is refused, not silently won by the last one.
        let e = parse(&format!(
            "[{{\"dedicated_host_id\":\"dh-a\",\"dedicated_host_id\":\"dh-b\",{ROW}}}]"
        ))
        .unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        // Huge bad values are quoted by a bounded prefix only; long regions are refused.
        let huge = "x".repeat(5 << 20);
        let e = parse(&format!(
            "dedicated_host_id,region_id,expired_time,charge_type\ndh-{huge},cn-hangzhou,2026-12-10T16:00Z,PrePaid\n"
        ))
        .unwrap_err();
        assert!(e.to_string().len() < 500, "{} bytes", e.to_string().len());
        let e = parse(&format!(
            "dedicated_host_id,region_id,expired_time,charge_type\ndh-a,{},2026-12-10T16:00Z,PrePaid\n",
            "a".repeat(65)
        ))
        .unwrap_err();
        assert_eq!(e.field, "region_id");
    }

    #[test]
    fn an_endless_file_is_refused_without_reading_it_all() {
        let e = read_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
    }
}
