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
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    #[arg(long)]
    pub csv: bool,
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
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let table: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(text).collect()).collect();
    output::table(&cols, &table);
    Ok(())
}
