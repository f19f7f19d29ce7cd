//! `sync`: refresh the inventory from ECS.

use clap::Args;

use super::output;
use crate::config::Config;

use crate::engine::sync::{SyncError, SyncReport, sync_and_record};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Region to sync (repeatable); default: [ecs] regions.
    #[arg(long = "region", value_name = "R")]
    pub regions: Vec<String>,
    /// Mark hosts released even when more than a fifth of a region disappears at once (by
    /// default that is taken for a broken answer and changes nothing).
    #[arg(long)]
    pub allow_mass_release: bool,
    /// Give up after this long in all (e.g. "10m"); every read also gives up after a minute.
    #[arg(long, default_value = "10m", value_parser = crate::config::parse_duration)]
    pub timeout: std::time::Duration,
    /// Print the per-region report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: &SyncArgs) -> Result<()> {
    let regions = if args.regions.is_empty() {
        config.ecs.regions.clone()
    } else {
        args.regions.clone()
    };
    let client = crate::app::client(config)?;
    let store = crate::app::store(config).await?;
    let work = sync_and_record(
        &store,
        &client,
        &regions,
        config.ecs.takeover,
        args.allow_mass_release,
        "cli",
    );
    let result = tokio::time::timeout(args.timeout, work).await;
    store.close().await;
    let Ok(result) = result else {
        return Err(Error::Runtime(format!(
            "sync did not finish within {}; nothing of an unfinished region was applied (each region is applied whole, in one transaction)",
            crate::config::format_duration(args.timeout)
        )));
    };
    let report = match result {
        Ok(r) => r,
        Err(e) if e.is_configuration() => return Err(Error::Usage(e.to_string())),
        Err(SyncError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(Error::Runtime(e.to_string())),
    };
    if args.json {
        return output::json(&report);
    }
    print_report(&report);
    Ok(())
}

/// The report for people: a row per region, then what needs attention, then the calls made.
fn print_report(report: &SyncReport) {
    let rows: Vec<Vec<String>> = report
        .regions
        .iter()
        .map(|r| {
            vec![
                r.region.clone(),
                r.seen.to_string(),
                r.added.to_string(),
                r.updated.to_string(),
                r.unchanged.to_string(),
                r.released.len().to_string(),
                r.cloud_renewal_changed.to_string(),
                r.double_renew_risk.len().to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "REGION",
            "HOSTS",
            "ADDED",
            "UPDATED",
            "UNCHANGED",
            "RELEASED",
            "CLOUD RENEWAL CHANGED",
            "DOUBLE-RENEW RISK",
        ],
        &rows,
    );
    for r in &report.regions {
        if !r.released_held_back.is_empty() {
            println!(
                "{}: {} hosts are no longer returned but were NOT marked released (too many at once to believe); if they were released, run again with --allow-mass-release",
                r.region,
                r.released_held_back.len()
            );
        }
        if !r.changed_meanwhile.is_empty() {
            println!(
                "{}: {} hosts changed while this sync read the cloud and were left as they are",
                r.region,
                r.changed_meanwhile.len()
            );
        }
        for id in &r.double_renew_risk {
            println!(
                "double_renew_risk: {id} is AutoRenewal here and in the cloud; skipped until resolved (or set [ecs] takeover = true)"
            );
        }
    }
    if !report.taken_over.is_empty() {
        println!(
            "takeover: cloud-side auto-renew set to Normal for {} hosts",
            report.taken_over.len()
        );
    }
    let calls: Vec<String> = report
        .calls
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect();
    println!(
        "{} calls ({}) in {} ms",
        report.calls.values().sum::<u64>(),
        calls.join(", "),
        report.elapsed_ms
    );
}
