//! `audit attempts|policies|notices|windows`: the audit trail for people, programs and
//! spreadsheets.

use clap::{Args, Subcommand};

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
    let store = super::open_store(config).await?;
    let (columns, rows) = store
        .audit(kind, args.host.as_deref(), since.as_deref())
        .await?;
    store.close().await;
    let table = !args.json && !args.csv;
    let chosen = choose(
        &columns,
        args.columns.as_deref(),
        table.then(|| compact(kind)),
    )?;
    let columns: Vec<String> = chosen.iter().map(|&i| columns[i].clone()).collect();
    let rows: Vec<Vec<serde_json::Value>> = rows
        .into_iter()
        .map(|r| chosen.iter().map(|&i| r[i].clone()).collect())
        .collect();
    if args.json {
        let objs: Vec<serde_json::Map<String, serde_json::Value>> = rows
            .iter()
            .map(|r| columns.iter().cloned().zip(r.iter().cloned()).collect())
            .collect();
        return output::json(&objs);
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if args.csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        let io = |e: csv::Error| Error::Runtime(format!("cannot write CSV: {e}"));
        w.write_record(&columns).map_err(io)?;
        for r in &rows {
            w.write_record(r.iter().map(text)).map_err(io)?;
        }
        w.flush()
            .map_err(|e| Error::Runtime(format!("cannot write CSV: {e}")))?;
        return Ok(());
    }
    // For people: every instant in the view's zone (JSON and CSV keep the stored UTC form).
    let tz = config.display.timezone;
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| output::instant_cell(&text(v), tz))
                .collect()
        })
        .collect();
    output::table(&cols, &table);
    Ok(())
}
