//! The command line (SPEC §4.1). Each command group lives in its own file and is a thin call into
//! the library; this file holds the clap definitions and the dispatch.

mod attempts;
mod attention;
mod audit;
mod config_cmd;
mod db;
mod demo;
mod emulator;
mod hosts;
mod notify;
mod output;
mod plan;
mod policy;
mod run;
mod sync;
mod tick;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config};
use crate::error::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "ddh-renewd",
    version,
    about = "Renews Alibaba Cloud ECS subscription dedicated hosts exactly once per cycle",
    long_about = None
)]
pub struct Cli {
    /// Config file (else $DDH_RENEWD_CONFIG, else /etc/ddh-renewd/ddh-renewd.toml if present,
    /// else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log format on stderr: text (plain and timestamp-free under journald) or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per host: expiry, effective policy, state, next window, last window before expiry.
    Plan(plan::PlanArgs),
    /// The inventory by hand: list, show, add, import, remove.
    #[command(subcommand)]
    Hosts(hosts::HostsCmd),
    /// Renewal policies with the meaning of ModifyDedicatedHostAutoRenewAttribute.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// The daemon: window passes at the configured time, catch-up, safety passes.
    Run,
    /// Run one window pass as of --at (default now) and exit.
    Tick(tick::TickArgs),
    /// Renew hosts now (RenewDedicatedHosts semantics), through the exactly-once machinery.
    Renew(tick::RenewArgs),
    /// Attempts whose outcome is not decided yet; settle a blocked one.
    #[command(subcommand)]
    Attempts(attempts::AttemptsCmd),
    /// The audit trail: attempts, policies, notices, windows.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Notice channels: send a sample notice through each and see what it answered.
    #[command(subcommand)]
    Notify(notify::NotifyCmd),
    /// Refresh the inventory from DescribeDedicatedHosts / DescribeDedicatedHostAutoRenew.
    Sync(sync::SyncArgs),
    /// The database itself: copy it into PostgreSQL.
    #[command(subcommand)]
    Db(db::DbCmd),
    /// Validate the config and print the effective values (secrets redacted).
    CheckConfig(config_cmd::CheckArgs),
    /// A self-contained run on embedded defaults: a sample fleet in a temporary database.
    Demo(demo::DemoArgs),
    /// Run the local ECS emulator (for tests, demos and staging).
    Emulator(emulator::EmulatorArgs),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--at`: RFC 3339 or the ECS form.
pub fn parse_at(raw: &str) -> std::result::Result<DateTime<Utc>, String> {
    crate::domain::time::parse_instant(raw).map_err(String::from)
}

/// Loads the effective config per the lookup order of SPEC §4.1.
pub fn load_config(flag: Option<&std::path::Path>) -> Result<Config> {
    let env = std::env::var("DDH_RENEWD_CONFIG").ok();
    match config::resolve_path(flag, env.as_deref()) {
        Some(path) => Ok(Config::load(&path)?),
        None => Ok(Config::default()),
    }
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Demo(_) if cli.config.is_some() => {
            return Err(Error::Usage(
                "demo runs on embedded defaults; it takes no --config".into(),
            ));
        }
        Command::Demo(args) => return demo::run(args).await,
        Command::Emulator(args) => return emulator::run(args).await,
        _ => {}
    }
    let config = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Plan(args) => plan::run(&config, &args).await,
        Command::Hosts(cmd) => hosts::run(&config, cmd).await,
        Command::Policy(cmd) => policy::run(&config, cmd).await,
        Command::Sync(args) => sync::run(&config, &args).await,
        Command::Run => run::run(&config).await,
        Command::Tick(args) => tick::tick(&config, &args).await,
        Command::Renew(args) => tick::renew(&config, &args).await,
        Command::Audit(cmd) => audit::run(&config, cmd).await,
        Command::Attempts(cmd) => attempts::run(&config, cmd).await,
        Command::Notify(cmd) => notify::run(&config, cmd).await,
        Command::CheckConfig(args) => config_cmd::run(&config, &args).await,
        Command::Db(cmd) => db::run(&config, cmd).await,
        Command::Demo(_) | Command::Emulator(_) => {
            Err(Error::Usage("dispatched before the config is read".into()))
        }
    }
}
