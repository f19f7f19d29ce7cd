//! `demo`: a self-contained run on embedded defaults. It builds a temporary database from the
//! sample fleet shipped in `config/sample-hosts.csv`, changes one policy, and shows the plan at a
//! fixed instant — no config, network or credentials needed.

use chrono::{DateTime, Utc};
use clap::Args;

use super::output::{self, or_dash};
use crate::domain::policy::PolicyRequest;
use crate::error::{Error, Result};
use crate::import;
use crate::store::{Source, Store};

const SAMPLE: &str = include_str!("../../config/sample-hosts.csv");
const DEFAULT_AT: &str = "2026-12-04T09:00:00+08:00";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The instant to plan at.
    #[arg(long, value_parser = super::parse_at, default_value = DEFAULT_AT)]
    pub at: DateTime<Utc>,
}

pub async fn run(args: &DemoArgs) -> Result<()> {
    let dir = tempfile::tempdir()
        .map_err(|e| Error::Runtime(format!("cannot make a temporary directory: {e}")))?;
    let db = dir.path().join("demo.db");
    let config = crate::config::Config::default();
    let schedule = config.schedule.schedule();
    let store = Store::open(&db, schedule).await?;

    println!("ddh-renewd demo — temporary database {}", db.display());
    println!(
        "schedule: windows at {} {}, from {} days before expiry\n",
        schedule.time.format("%H:%M:%S"),
        schedule.tz,
        schedule.lead_days
    );

    let inputs = import::parse(SAMPLE).map_err(|source| Error::Import {
        file: "sample-hosts.csv".into(),
        source,
    })?;
    let s = store
        .upsert_hosts(
            &inputs,
            "hosts_import",
            Source::Import,
            "embedded sample-hosts.csv",
            args.at,
        )
        .await?;
    println!(
        "1. imported the sample fleet: {} hosts, {} with an explicit policy",
        s.added, s.policies_changed
    );

    let req = PolicyRequest {
        region_id: "cn-hangzhou".into(),
        ids: vec!["dh-demo-05".into(), "dh-demo-07".into()],
        renewal_status: Some("AutoRenewal".into()),
        duration: Some(6),
        ..Default::default()
    };
    match store.set_policy(&req, Source::Cli, args.at).await {
        Err(e) => println!(
            "2. policy set AutoRenewal 6 Month on dh-demo-05,dh-demo-07 -> refused, nothing applied:\n   {}",
            Error::from(e)
        ),
        Ok(_) => {
            return Err(Error::Runtime(
                "demo: a PostPaid host unexpectedly took a policy".into(),
            ));
        }
    }
    let req = PolicyRequest {
        ids: vec!["dh-demo-05".into()],
        ..req
    };
    let o = store.set_policy(&req, Source::Cli, args.at).await?;
    println!(
        "3. policy set AutoRenewal 6 Month on dh-demo-05 -> {} changed (op {})\n",
        o.changed.len(),
        o.op_id
    );

    println!("4. plan at {}:", output::zoned(args.at, schedule.tz));
    let records = store.hosts(false).await?;
    let entries = super::plan::build(&records, &Default::default(), &schedule, args.at, None);
    super::plan::print(&entries, &schedule, false)?;

    println!("\n5. policy history (v_policy_changes):");
    let changes = store.policy_changes(None).await?;
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            vec![
                c.change_id.to_string(),
                c.host_id.clone(),
                or_dash(c.old_renewal_status.clone()),
                format!(
                    "{} {} {}",
                    c.new_renewal_status, c.new_duration, c.new_period_unit
                ),
                c.source.clone(),
            ]
        })
        .collect();
    output::table(&["CHANGE", "HOST", "OLD", "NEW", "SOURCE"], &rows);
    store.close().await;
    println!(
        "\nThe database is removed on exit. Try it on your own inventory: `ddh-renewd hosts import FILE && ddh-renewd plan`."
    );
    Ok(())
}
