//! `hosts list|show|add|import|remove`: the inventory by hand.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{self, or_dash, utc};
use crate::config::Config;
use crate::domain::HostId;
use crate::error::{Error, Result};
use crate::import;
use crate::store::{HostChange, HostRecord, PolicyChange, Source, StoreError};

#[derive(Debug, Subcommand)]
pub enum HostsCmd {
    /// List the hosts in the inventory.
    List {
        /// Include hosts marked removed.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one host with its policy and history.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a host, or replace the one with the same id.
    Add(AddArgs),
    /// Import hosts from CSV or JSON; all rows or none.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Mark a host removed: it leaves plans and renewals; its history stays.
    Remove { id: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub region: String,
    /// Expiry: yyyy-MM-ddTHH:mmZ (as ECS shows it) or RFC 3339.
    #[arg(long)]
    pub expired_time: String,
    /// PrePaid or PostPaid.
    #[arg(long, default_value = "PrePaid")]
    pub charge_type: String,
    /// AutoRenewal, Normal or NotRenewal.
    #[arg(long)]
    pub renewal_status: Option<String>,
    #[arg(long)]
    pub duration: Option<i64>,
    /// Week, Month or Year.
    #[arg(long)]
    pub period_unit: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct HostView<'a> {
    #[serde(flatten)]
    record: &'a HostRecord,
    effective_renewal_status: String,
}

#[derive(Serialize)]
struct HostDetail<'a> {
    #[serde(flatten)]
    host: HostView<'a>,
    policy_changes: &'a [PolicyChange],
    host_changes: &'a [HostChange],
}

fn parse_id(raw: &str) -> Result<HostId> {
    HostId::parse(raw).map_err(|m| {
        Error::Validation(crate::domain::ValidationError::new(
            "InvalidParameter.InvalidDedicatedHostId",
            400,
            "DedicatedHostId",
            m,
        ))
    })
}

pub async fn run(config: &Config, cmd: HostsCmd) -> Result<()> {
    match cmd {
        HostsCmd::List { all, json } => {
            let store = super::open_store(config).await?;
            let records = store.hosts(all).await?;
            store.close().await;
            if json {
                let view: Vec<HostView<'_>> = records.iter().map(view).collect();
                return output::json(&view);
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let p = r.effective_policy();
                    vec![
                        r.host.id.to_string(),
                        r.host.region_id.clone(),
                        r.host.charge_type.to_string(),
                        r.host.status.to_string(),
                        utc(r.host.expired_time),
                        format!("{} {} {}", p.status, p.period.n, p.period.unit),
                        or_dash(r.removed_at.map(utc)),
                    ]
                })
                .collect();
            output::table(
                &[
                    "HOST",
                    "REGION",
                    "CHARGE",
                    "STATUS",
                    "EXPIRES (UTC)",
                    "POLICY",
                    "REMOVED",
                ],
                &rows,
            );
            Ok(())
        }
        HostsCmd::Show { id, json } => {
            let id = parse_id(&id)?;
            let store = super::open_store(config).await?;
            let rec = store
                .host(&id)
                .await?
                .ok_or(StoreError::HostNotFound(id.clone()))?;
            let policy_changes = store.policy_changes(Some(&id)).await?;
            let host_changes = store.host_changes(&id).await?;
            store.close().await;
            if json {
                return output::json(&HostDetail {
                    host: view(&rec),
                    policy_changes: &policy_changes,
                    host_changes: &host_changes,
                });
            }
            let p = rec.effective_policy();
            let h = &rec.host;
            let fields = [
                ("host", h.id.to_string()),
                ("region", h.region_id.clone()),
                ("zone", or_dash(h.zone_id.clone())),
                ("charge type", h.charge_type.to_string()),
                ("status", h.status.to_string()),
                ("expires", utc(h.expired_time)),
                ("financial lock", h.financial_lock.to_string()),
                (
                    "policy",
                    format!(
                        "{} {} {}{}",
                        p.status,
                        p.period.n,
                        p.period.unit,
                        if rec.policy.is_none() {
                            " (default)"
                        } else {
                            ""
                        }
                    ),
                ),
                ("added", utc(rec.created_at)),
                ("updated", utc(rec.updated_at)),
                ("removed", or_dash(rec.removed_at.map(utc))),
            ];
            for (k, v) in fields {
                println!("{k:<15} {v}");
            }
            if !policy_changes.is_empty() {
                println!("\npolicy history:");
                for c in &policy_changes {
                    println!(
                        "  {}  {} -> {} {} {}  ({}, op {})",
                        c.changed_at,
                        c.old_renewal_status.as_deref().unwrap_or("(none)"),
                        c.new_renewal_status,
                        c.new_duration,
                        c.new_period_unit,
                        c.source,
                        c.op_id
                    );
                }
            }
            if !host_changes.is_empty() {
                println!("\nhost history:");
                for c in &host_changes {
                    match &c.field {
                        Some(f) => println!(
                            "  {}  {} {}: {} -> {}  ({})",
                            c.changed_at,
                            c.kind,
                            f,
                            c.old_value.as_deref().unwrap_or(""),
                            c.new_value.as_deref().unwrap_or(""),
                            c.source
                        ),
                        None => println!("  {}  {}  ({})", c.changed_at, c.kind, c.source),
                    }
                }
            }
            Ok(())
        }
        HostsCmd::Add(a) => {
            let input = import::host_from_fields(
                &a.id,
                &a.region,
                &a.expired_time,
                &a.charge_type,
                a.renewal_status.as_deref(),
                a.duration,
                a.period_unit.as_deref(),
            )
            .map_err(|source| Error::Import {
                file: "hosts add".into(),
                source,
            })?;
            let store = super::open_store(config).await?;
            let summary = store
                .upsert_hosts(
                    std::slice::from_ref(&input),
                    "hosts_add",
                    Source::Cli,
                    input.host.id.as_str(),
                    Utc::now(),
                )
                .await?;
            store.close().await;
            if a.json {
                return output::json(&summary);
            }
            let verb = if summary.added == 1 {
                "added"
            } else if summary.updated == 1 || summary.restored == 1 {
                "updated"
            } else {
                "unchanged"
            };
            println!(
                "{} {verb}{}",
                input.host.id,
                if summary.policies_changed == 1 {
                    ", policy set"
                } else {
                    ""
                }
            );
            Ok(())
        }
        HostsCmd::Import { file, json } => {
            let shown = file.display().to_string();
            let text = import::read_file(&file).map_err(Error::Usage)?;
            let inputs = import::parse(&text).map_err(|source| Error::Import {
                file: shown.clone(),
                source,
            })?;
            let store = super::open_store(config).await?;
            let summary = store
                .upsert_hosts(&inputs, "hosts_import", Source::Import, &shown, Utc::now())
                .await?;
            store.close().await;
            if json {
                return output::json(&summary);
            }
            println!(
                "imported {} rows from {shown}: {} added, {} updated, {} unchanged, {} restored, {} policies set",
                inputs.len(),
                summary.added,
                summary.updated,
                summary.unchanged,
                summary.restored,
                summary.policies_changed
            );
            Ok(())
        }
        HostsCmd::Remove { id } => {
            let id = parse_id(&id)?;
            let store = super::open_store(config).await?;
            let removed = store.remove_host(&id, Utc::now()).await?;
            store.close().await;
            if removed {
                println!("{id} removed (history kept; `hosts add` or an import restores it)");
            } else {
                println!("{id} was already removed");
            }
            Ok(())
        }
    }
}

fn view(record: &HostRecord) -> HostView<'_> {
    HostView {
        record,
        effective_renewal_status: record.effective_policy().status.to_string(),
    }
}
