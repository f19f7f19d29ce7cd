//! `policy set|show`: renewal policies with the meaning of ModifyDedicatedHostAutoRenewAttribute.

use chrono::Utc;
use clap::{ArgAction, Args, Subcommand};

use super::output::{self, or_dash};
use crate::config::Config;
use crate::domain::HostId;
use crate::domain::ids::parse_id_list;
use crate::domain::policy::PolicyRequest;
use crate::error::{Error, Result};
use crate::store::Source;

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Set the policy of 1–100 hosts of one region: all of them, or none on any error.
    Set(SetArgs),
    /// Show current policies, or with --history every recorded change.
    Show {
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// Show the policy history instead of the current policies.
        #[arg(long)]
        history: bool,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The region of every host in --ids (e.g. cn-hangzhou).
    #[arg(long)]
    pub region: String,
    /// Host ids: a comma list (dh-a,dh-b) or a JSON array.
    #[arg(long)]
    pub ids: String,
    /// true or false; used when --renewal-status is not given.
    #[arg(long, action = ArgAction::Set, value_name = "BOOL")]
    pub auto_renew: Option<bool>,
    /// AutoRenewal, Normal or NotRenewal (takes precedence over --auto-renew).
    #[arg(long)]
    pub renewal_status: Option<String>,
    /// Renewal length: Week 1-4; Month 1,2,3,6,12,24,36,48,60; Year 1-5. Default 1.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: Option<i64>,
    /// Week, Month or Year. Default Month.
    #[arg(long)]
    pub period_unit: Option<String>,
    /// Print the outcome (changed and unchanged hosts, operation id) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Set(a) => set(config, a).await,
        PolicyCmd::Show {
            host,
            history,
            json,
        } => {
            let host = host
                .map(|h| HostId::parse(&h))
                .transpose()
                .map_err(|e| Error::Validation(e.invalid(400, "host")))?;
            let store = crate::app::store(config).await?;
            if history {
                show_history(store, host.as_ref(), json).await
            } else {
                show_current(store, host.as_ref(), json).await
            }
        }
    }
}

async fn set(config: &Config, a: SetArgs) -> Result<()> {
    let ids =
        parse_id_list(&a.ids).map_err(|e| Error::Validation(e.invalid(403, "DedicatedHostIds")))?;
    let req = PolicyRequest {
        region_id: a.region,
        ids,
        auto_renew: a.auto_renew,
        renewal_status: a.renewal_status,
        duration: a.duration,
        period_unit: a.period_unit,
    };
    let store = crate::app::store(config).await?;
    let outcome = store.set_policy(&req, Source::Cli, Utc::now()).await?;
    let ids: Vec<HostId> = req
        .ids
        .iter()
        .filter_map(|id| HostId::parse(id).ok())
        .collect();
    let records = store.hosts_by_ids(&ids).await?;
    store.close().await;
    super::attention::warn(records.iter().filter(|r| r.removed_at.is_none()), config);
    if a.json {
        return output::json(&outcome);
    }
    let p = outcome.policy;
    println!(
        "policy {} {} {}: {} changed, {} already so (op {})",
        p.status,
        p.period.n,
        p.period.unit,
        outcome.changed.len(),
        outcome.unchanged.len(),
        outcome.op_id
    );
    Ok(())
}

/// `policy show --history`: every recorded change.
async fn show_history(store: crate::store::Store, host: Option<&HostId>, json: bool) -> Result<()> {
    let changes = store.policy_changes(host).await?;
    store.close().await;
    if json {
        return output::json(&changes);
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            let old = c.old_renewal_status.as_ref().map(|s| {
                format!(
                    "{s} {} {}",
                    c.old_duration.unwrap_or_default(),
                    c.old_period_unit.as_deref().unwrap_or("")
                )
            });
            vec![
                c.change_id.to_string(),
                c.changed_at.clone(),
                c.host_id.clone(),
                or_dash(old),
                format!(
                    "{} {} {}",
                    c.new_renewal_status, c.new_duration, c.new_period_unit
                ),
                c.source.clone(),
                c.operation.clone(),
            ]
        })
        .collect();
    output::table(
        &["CHANGE", "AT", "HOST", "OLD", "NEW", "SOURCE", "OPERATION"],
        &rows,
    );
    Ok(())
}

/// `policy show`: the current policies of PrePaid hosts.
async fn show_current(store: crate::store::Store, host: Option<&HostId>, json: bool) -> Result<()> {
    let records = match host {
        Some(h) => store
            .host(h)
            .await?
            .into_iter()
            .filter(|r| r.removed_at.is_none())
            .collect(),
        None => store.hosts(false).await?,
    };
    store.close().await;
    #[derive(serde::Serialize)]
    struct Row {
        host_id: String,
        region_id: String,
        renewal_status: String,
        duration: u32,
        period_unit: String,
        explicit: bool,
    }
    let rows: Vec<Row> = records
        .iter()
        .filter(|r| r.host.charge_type == crate::domain::ChargeType::PrePaid)
        .map(|r| {
            let p = r.effective_policy();
            Row {
                host_id: r.host.id.to_string(),
                region_id: r.host.region_id.clone(),
                renewal_status: p.status.to_string(),
                duration: p.period.n,
                period_unit: p.period.unit.to_string(),
                explicit: r.policy.is_some(),
            }
        })
        .collect();
    if json {
        return output::json(&rows);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.host_id.clone(),
                r.region_id.clone(),
                r.renewal_status.clone(),
                format!("{} {}", r.duration, r.period_unit),
                if r.explicit {
                    "set".into()
                } else {
                    "default".into()
                },
            ]
        })
        .collect();
    output::table(
        &["HOST", "REGION", "RENEWAL STATUS", "DURATION", "ORIGIN"],
        &table,
    );
    Ok(())
}
