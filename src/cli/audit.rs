//! `audit attempts|policies|notices|windows`: the audit trail for people, programs and
//! spreadsheets.

use clap::{Args, Subcommand};
use futures_util::StreamExt;

use super::output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::AuditKind;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Every renewal attempt, one row per host (v_attempts).
    Attempts(AuditArgs),
    /// Every policy change (v_policy_changes).
    Policies(AuditArgs),
    /// Every notice (v_notices).
    Notices(AuditArgs),
    /// Every window pass (v_windows).
    Windows(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only rows about this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only rows at or after this instant (RFC 3339 or a date).
    #[arg(long)]
    pub since: Option<String>,
    /// Columns to show, comma-separated, or `all`. Default: a compact set for the table, every
    /// column for --json and --csv.
    #[arg(long, value_name = "LIST")]
    pub columns: Option<String>,
    /// Print one JSON array of objects (every column unless --columns).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV with a header row (every column unless --columns).
    #[arg(long)]
    pub csv: bool,
}

/// The table's default columns: enough to read a row on one line.
fn compact(kind: AuditKind) -> &'static [&'static str] {
    match kind {
        AuditKind::Attempts => &[
            "attempt_id",
            "window_at",
            "host_id",
            "kind",
            "outcome",
            "code",
            "sends",
            "client_token",
            "expiry_after",
        ],
        AuditKind::Policies => &[
            "changed_at",
            "host_id",
            "old_renewal_status",
            "new_renewal_status",
            "new_duration",
            "new_period_unit",
            "source",
        ],
        AuditKind::Notices => &["created_at", "kind", "host_id", "message", "delivered_at"],
        AuditKind::Windows => &[
            "window_at",
            "trigger",
            "due",
            "renewed",
            "already_renewed",
            "failed",
            "lapsed",
            "result",
        ],
    }
}

/// The indexes of the chosen columns, in the order asked for.
fn choose(columns: &[String], asked: Option<&str>, default: Option<&[&str]>) -> Result<Vec<usize>> {
    let names: Vec<&str> = match (asked, default) {
        (Some(list), _) if list.trim() != "all" => list.split(',').map(str::trim).collect(),
        (None, Some(d)) => d.to_vec(),
        _ => return Ok((0..columns.len()).collect()),
    };
    names
        .iter()
        .map(|n| {
            columns.iter().position(|c| c == n).ok_or_else(|| {
                Error::Usage(format!(
                    "--columns: no column {}; valid: {} (or all)",
                    crate::domain::error::quote(n),
                    columns.join(", ")
                ))
            })
        })
        .collect()
}

pub async fn run(config: &Config, cmd: AuditCmd) -> Result<()> {
    let (kind, args) = match cmd {
        AuditCmd::Attempts(a) => (AuditKind::Attempts, a),
        AuditCmd::Policies(a) => (AuditKind::Policies, a),
        AuditCmd::Notices(a) => (AuditKind::Notices, a),
        AuditCmd::Windows(a) => (AuditKind::Windows, a),
    };
    let since = match &args.since {
        None => None,
        Some(s) => Some(match crate::domain::time::parse_instant(s) {
            Ok(t) => crate::domain::time::to_db(t),
            Err(_) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => s.clone(),
            Err(e) => return Err(Error::Usage(format!("--since: {e} (or a date yyyy-mm-dd)"))),
        }),
    };
    let store = crate::app::store(config).await?;
    let (columns, mut rows) = store.audit(kind, args.host.as_deref(), since.as_deref());
    let table = !args.json && !args.csv;
    let chosen = choose(
        &columns,
        args.columns.as_deref(),
        table.then(|| compact(kind)),
    )?;
    let columns: Vec<String> = chosen.iter().map(|&i| columns[i].clone()).collect();
    let mut sink = Sink::new(&args, &columns, config.display.timezone)?;
    while let Some(r) = rows.next().await {
        let mut r = r?;
        sink.row(chosen.iter().map(|&i| std::mem::take(&mut r[i])).collect())?;
    }
    drop(rows);
    store.close().await;
    sink.finish()
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where audit rows go: JSON and CSV are written as they come; the table is aligned over all
/// rows, every instant in the view's zone (JSON and CSV keep the stored UTC form).
enum Sink<'c> {
    Json(
        output::JsonArray<std::io::BufWriter<std::io::StdoutLock<'static>>>,
        &'c [String],
    ),
    Csv(Box<csv::Writer<std::io::StdoutLock<'static>>>),
    Table(&'c [String], chrono_tz::Tz, Vec<Vec<String>>),
}

fn csv_error(e: csv::Error) -> Error {
    Error::Runtime(format!("cannot write CSV: {e}"))
}

impl<'c> Sink<'c> {
    fn new(args: &AuditArgs, columns: &'c [String], tz: chrono_tz::Tz) -> Result<Self> {
        if args.json {
            return Ok(Self::Json(output::JsonArray::stdout(), columns));
        }
        if args.csv {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(columns).map_err(csv_error)?;
            return Ok(Self::Csv(Box::new(w)));
        }
        Ok(Self::Table(columns, tz, Vec::new()))
    }

    fn row(&mut self, r: Vec<serde_json::Value>) -> Result<()> {
        match self {
            Self::Json(out, columns) => {
                let obj: serde_json::Map<String, serde_json::Value> =
                    columns.iter().cloned().zip(r).collect();
                out.push(&obj)
            }
            Self::Csv(w) => w.write_record(r.iter().map(text)).map_err(csv_error),
            Self::Table(_, tz, rows) => {
                rows.push(
                    r.iter()
                        .map(|v| output::instant_cell(&text(v), *tz))
                        .collect(),
                );
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Self::Json(out, _) => out.finish(),
            Self::Csv(mut w) => w
                .flush()
                .map_err(|e| Error::Runtime(format!("cannot write CSV: {e}"))),
            Self::Table(columns, _, rows) => {
                let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
                output::table(&cols, &rows);
                Ok(())
            }
        }
    }
}
