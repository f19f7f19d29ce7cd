//! `hosts list|show|add|import|remove`: the inventory by hand.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::attention::{self, Attention};
use super::output::{self, or_dash};
use super::plan::PlanEntry;
use crate::config::Config;
use crate::domain::HostId;
use crate::error::{Error, Result};
use crate::import;
use futures_util::StreamExt;

use crate::store::{
    EncodedHosts, HostChange, HostRecord, PolicyChange, Source, StoreError, UpsertSummary,
};

#[derive(Debug, Subcommand)]
pub enum HostsCmd {
    /// List the hosts in the inventory.
    List {
        /// Include hosts marked removed.
        #[arg(long)]
        all: bool,
        /// Print one JSON array (with state, days_left and attention).
        #[arg(long)]
        json: bool,
    },
    /// Show one host with its policy and history.
    Show {
        /// The host id (dh-…).
        id: String,
        /// Print the host and its history as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Add a host, or replace the one with the same id.
    Add(AddArgs),
    /// Import hosts from CSV or JSON; all rows or none.
    Import {
        /// A CSV file with a header row, or a JSON array of host objects (detected by content).
        file: PathBuf,
        /// Print the import summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark a host removed: it leaves plans and renewals; its history stays.
    Remove {
        /// The host id (dh-…).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The host id (dh-…, at most 64 characters).
    #[arg(long)]
    pub id: String,
    /// The region id (e.g. cn-hangzhou).
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
    /// Renewal length of the policy: Week 1-4; Month 1,2,3,6,12,24,36,48,60; Year 1-5. Default 1.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: Option<i64>,
    /// Week, Month or Year.
    #[arg(long)]
    pub period_unit: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct HostView<'a> {
    #[serde(flatten)]
    record: &'a HostRecord,
    effective_renewal_status: String,
    /// As `plan` shows it now (`None` for removed hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    days_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attention: Option<Vec<Attention>>,
}

#[derive(Serialize)]
struct HostDetail<'a> {
    #[serde(flatten)]
    host: HostView<'a>,
    policy_changes: &'a [PolicyChange],
    host_changes: &'a [HostChange],
}

fn parse_id(raw: &str) -> Result<HostId> {
    HostId::parse(raw).map_err(|e| Error::Validation(e.invalid(400, "DedicatedHostId")))
}

pub async fn run(config: &Config, cmd: HostsCmd) -> Result<()> {
    match cmd {
        HostsCmd::List { all, json } => list(config, all, json).await,
        HostsCmd::Show { id, json } => show(config, &id, json).await,
        HostsCmd::Add(a) => add(config, &a).await,
        HostsCmd::Import { file, json } => import_file(config, &file, json).await,
        HostsCmd::Remove { id } => remove(config, &id).await,
    }
}

/// `hosts list`: JSON is streamed; the table is aligned over every row.
async fn list(config: &Config, all: bool, json: bool) -> Result<()> {
    let store = crate::app::store(config).await?;
    let now = Utc::now();
    let mut planner = super::plan::Planner::new(config);
    let mut hosts = store.planned_hosts(all);
    let mut out = json.then(output::JsonArray::stdout);
    let mut rows: Vec<Vec<String>> = Vec::new();
    while let Some(ph) = hosts.next().await {
        let ph = ph?;
        let plan = if ph.record.removed_at.is_none() {
            planner.entry(&ph, now, None)
        } else {
            None
        };
        match &mut out {
            Some(out) => out.push(&view(&ph.record, plan.as_ref()))?,
            None => rows.push(list_row(&ph.record, plan.as_ref(), config, now)),
        }
    }
    drop(hosts);
    store.close().await;
    if let Some(out) = out {
        return out.finish();
    }
    output::table(
        &[
            "HOST",
            "REGION",
            "CHARGE",
            "STATUS",
            "EXPIRES",
            "DAYS LEFT",
            "POLICY",
            "STATE",
            "ATTENTION",
            "REMOVED",
        ],
        &rows,
    );
    Ok(())
}

fn list_row(
    r: &HostRecord,
    plan: Option<&PlanEntry>,
    config: &Config,
    now: chrono::DateTime<Utc>,
) -> Vec<String> {
    let tz = config.display.timezone;
    let p = r.effective_policy();
    vec![
        r.host.id.to_string(),
        r.host.region_id.clone(),
        r.host.charge_type.to_string(),
        r.host.status.to_string(),
        output::local_short(r.host.expired_time, tz),
        match plan {
            Some(pl) if pl.days_left.is_some() => output::days_left_cell(r.host.expired_time, now),
            _ => "-".to_owned(),
        },
        format!("{} {} {}", p.status, p.period.n, p.period.unit),
        plan.map_or_else(|| "removed".to_owned(), |pl| pl.state.clone()),
        plan.map_or_else(|| "-".to_owned(), |pl| attention::cell(&pl.attention)),
        or_dash(r.removed_at.map(|t| output::local_short(t, tz))),
    ]
}

async fn show(config: &Config, id: &str, json: bool) -> Result<()> {
    let id = parse_id(id)?;
    let store = crate::app::store(config).await?;
    let ph = store
        .planned_host(&id)
        .await?
        .ok_or(StoreError::HostNotFound(id.clone()))?;
    let policy_changes = store.policy_changes(Some(&id)).await?;
    let host_changes = store.host_changes(&id).await?;
    store.close().await;
    let now = Utc::now();
    let plan = if ph.record.removed_at.is_none() {
        super::plan::Planner::new(config).entry(&ph, now, None)
    } else {
        None
    };
    let plan = plan.as_ref();
    let rec = &ph.record;
    if json {
        return output::json(&HostDetail {
            host: view(rec, plan),
            policy_changes: &policy_changes,
            host_changes: &host_changes,
        });
    }
    let tz = config.display.timezone;
    for (k, v) in detail_fields(rec, plan, tz, now) {
        println!("{k:<15} {v}");
    }
    print_history(&policy_changes, &host_changes, tz);
    Ok(())
}

/// The lines of `hosts show` for people, label and value.
fn detail_fields(
    rec: &HostRecord,
    plan: Option<&PlanEntry>,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let at = |t| output::local_short(t, tz);
    let p = rec.effective_policy();
    let h = &rec.host;
    vec![
        ("host", h.id.to_string()),
        ("region", h.region_id.clone()),
        ("zone", or_dash(h.zone_id.clone())),
        ("charge type", h.charge_type.to_string()),
        ("status", h.status.to_string()),
        ("expires", at(h.expired_time)),
        (
            "days left",
            match plan {
                Some(pl) if pl.days_left.is_some() => output::days_left_cell(h.expired_time, now),
                _ => "-".to_owned(),
            },
        ),
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
        (
            "state",
            plan.map_or_else(|| "removed".to_owned(), |pl| pl.state.clone()),
        ),
        (
            "next window",
            or_dash(
                plan.and_then(|pl| pl.next_window.as_deref())
                    .map(|w| output::instant_cell(w, tz)),
            ),
        ),
        (
            "attention",
            plan.map_or_else(|| "-".to_owned(), |pl| attention::cell(&pl.attention)),
        ),
        ("added", at(rec.created_at)),
        ("updated", at(rec.updated_at)),
        ("removed", or_dash(rec.removed_at.map(at))),
    ]
}

fn print_history(policy_changes: &[PolicyChange], host_changes: &[HostChange], tz: chrono_tz::Tz) {
    if !policy_changes.is_empty() {
        println!("\npolicy history:");
        for c in policy_changes {
            println!(
                "  {}  {} -> {} {} {}  ({}, op {})",
                output::instant_cell(&c.changed_at, tz),
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
        for c in host_changes {
            match &c.field {
                Some(f) => println!(
                    "  {}  {} {}: {} -> {}  ({})",
                    output::instant_cell(&c.changed_at, tz),
                    c.kind,
                    f,
                    c.old_value
                        .as_deref()
                        .map_or_else(String::new, |v| output::instant_cell(v, tz)),
                    c.new_value
                        .as_deref()
                        .map_or_else(String::new, |v| output::instant_cell(v, tz)),
                    c.source
                ),
                None => println!(
                    "  {}  {}  ({})",
                    output::instant_cell(&c.changed_at, tz),
                    c.kind,
                    c.source
                ),
            }
        }
    }
}

async fn add(config: &Config, a: &AddArgs) -> Result<()> {
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
    let store = crate::app::store(config).await?;
    let summary = store
        .upsert_hosts(
            std::slice::from_ref(&input),
            "hosts_add",
            Source::Cli,
            input.host.id.as_str(),
            Utc::now(),
        )
        .await?;
    let written = store.host(&input.host.id).await?;
    store.close().await;
    attention::warn(written.iter(), config);
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

/// `hosts import`: the file is parsed on a thread of its own while the chunks already parsed
/// are written, all in one transaction: a bad row anywhere rolls back everything. The store is
/// opened only once the first chunk parsed, so a file that is wrong from its start creates
/// nothing.
async fn import_file(config: &Config, file: &std::path::Path, json: bool) -> Result<()> {
    let shown = file.display().to_string();
    let text = import::read_file(file).map_err(Error::Usage)?;
    // The parsing thread also encodes each chunk's rows, so that the database's thread, the
    // import's bottleneck, is not kept waiting for either.
    let schedule = config.schedule.schedule();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<EncodedHosts>>(2);
    let parser = tokio::task::spawn_blocking(move || {
        import::parse_chunks(&text, crate::store::WRITE_CHUNK, &mut |c| {
            let encoded = EncodedHosts::new(&schedule, c).map_err(Error::from);
            tx.blocking_send(encoded).is_ok()
        })
    });
    let parsed = |r: std::result::Result<_, tokio::task::JoinError>| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Error::Import {
            file: shown.clone(),
            source,
        }),
        Err(e) => Err(Error::Runtime(format!("parsing {shown} stopped: {e}"))),
    };
    let Some(first) = rx.recv().await else {
        // Nothing to write: an error, or a file with a header and no rows.
        parsed(parser.await)?;
        return report(json, &shown, 0, &Default::default());
    };
    let store = crate::app::store(config).await?;
    let mut writer = store
        .begin_upsert("hosts_import", Source::Import, &shown, Utc::now())
        .await?;
    let mut warnings = attention::Warnings::default();
    let mut rows = 0;
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        let c = c?;
        rows += c.len();
        for rec in writer.write(&c).await? {
            warnings.add(&rec, config);
        }
        chunk = rx.recv().await;
    }
    // A parse error after the first chunk: the writer is dropped, its transaction rolled back.
    parsed(parser.await)?;
    let summary = writer.commit().await?;
    store.close().await;
    warnings.finish();
    report(json, &shown, rows, &summary)
}

fn report(json: bool, shown: &str, rows: usize, summary: &UpsertSummary) -> Result<()> {
    if json {
        return output::json(summary);
    }
    println!(
        "imported {rows} rows from {shown}: {} added, {} updated, {} unchanged, {} restored, {} policies set",
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.restored,
        summary.policies_changed
    );
    Ok(())
}

async fn remove(config: &Config, id: &str) -> Result<()> {
    let id = parse_id(id)?;
    let store = crate::app::store(config).await?;
    let removed = store.remove_host(&id, Utc::now()).await?;
    store.close().await;
    if removed {
        println!("{id} removed (history kept; `hosts add` or an import restores it)");
    } else {
        println!("{id} was already removed");
    }
    Ok(())
}

fn view<'a>(record: &'a HostRecord, plan: Option<&PlanEntry>) -> HostView<'a> {
    HostView {
        record,
        effective_renewal_status: record.effective_policy().status.to_string(),
        state: plan.map(|p| p.state.clone()),
        days_left: plan.and_then(|p| p.days_left),
        attention: plan.map(|p| p.attention.clone()),
    }
}
