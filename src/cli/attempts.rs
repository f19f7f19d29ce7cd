//! `attempts list|settle`: the attempts whose outcome is not decided, and the one decision a
//! person makes — that a blocked request was not applied and never will be.

use clap::{Args, Subcommand};

use super::output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::SettleError;

#[derive(Debug, Subcommand)]
pub enum AttemptsCmd {
    /// Attempts without an outcome: open (resolved by the daemon with their own ClientToken) and
    /// blocked (waiting for `settle`).
    List(ListArgs),
    /// Settle a blocked attempt: you checked (console, billing) that no order with its
    /// ClientToken exists and none will. Its hosts are attempted again after a fresh read.
    Settle(SettleArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only blocked attempts.
    #[arg(long)]
    pub blocked: bool,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SettleArgs {
    /// The attempt id (`attempts list`, `audit attempts`).
    pub attempt: i64,
    /// Required: you confirm the request was not applied and will not be.
    #[arg(long)]
    pub not_applied: bool,
    /// Why you know, for the audit trail (ticket, order search, …).
    #[arg(long, default_value = "settled by an operator: not applied")]
    pub note: String,
    /// Print the settled attempt as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, cmd: AttemptsCmd) -> Result<()> {
    match cmd {
        AttemptsCmd::List(a) => list(config, &a).await,
        AttemptsCmd::Settle(a) => settle(config, &a).await,
    }
}

async fn list(config: &Config, args: &ListArgs) -> Result<()> {
    let store = crate::app::store(config).await?;
    let rows = store.undecided_attempts().await;
    store.close().await;
    let rows: Vec<_> = rows?
        .into_iter()
        .filter(|a| !args.blocked || a.blocked_reason.is_some())
        .collect();
    if args.json {
        return output::json(&rows);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            vec![
                a.attempt_id.to_string(),
                a.kind.clone(),
                a.client_token.clone(),
                a.region_id.clone(),
                a.hosts.join(","),
                a.sends.to_string(),
                a.blocked_reason
                    .clone()
                    .map_or_else(|| "open".to_owned(), |r| format!("BLOCKED: {r}")),
            ]
        })
        .collect();
    output::table(
        &[
            "ATTEMPT",
            "KIND",
            "CLIENT TOKEN",
            "REGION",
            "HOSTS",
            "SENDS",
            "STATE",
        ],
        &table,
    );
    for a in rows.iter().filter(|a| a.blocked_reason.is_some()) {
        println!(
            "\nattempt {}: {}",
            a.attempt_id,
            a.detail.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn settle(config: &Config, args: &SettleArgs) -> Result<()> {
    if !args.not_applied {
        return Err(Error::Usage(
            "settle needs --not-applied: confirm that no order with the attempt's ClientToken exists \
             and none will (check the console or billing first)"
                .into(),
        ));
    }
    let store = crate::app::store(config).await?;
    let result = store
        .settle(args.attempt, &args.note, chrono::Utc::now())
        .await;
    store.close().await;
    let settled = match result {
        Ok(s) => s,
        Err(SettleError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(Error::Runtime(e.to_string())),
    };
    if args.json {
        return output::json(&settled);
    }
    println!(
        "attempt {} (ClientToken {}) settled as not applied; {} will be attempted again after a fresh read",
        settled.attempt_id,
        settled.client_token,
        settled.hosts.join(", ")
    );
    Ok(())
}
