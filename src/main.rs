//! The `ddh-renewd` binary: parse the command line, run the library, map errors to exit codes.

use clap::Parser;
use ddh_renewd::cli::{self, Cli};
use ddh_renewd::error::Error;

fn main() {
    let cli = Cli::parse();
    // The demo prints its own timeline; everything else logs warnings (notices) by default.
    let default = match cli.command {
        cli::Command::Demo(_) => "error",
        cli::Command::Run | cli::Command::Emulator(_) => "info,tokio_cron_scheduler=warn",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DDH_RENEWD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under journald (JOURNAL_STREAM set) the journal adds time and colour is noise.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (cli.log_format, journald) {
        (cli::LogFormat::Json, _) => fmt.json().init(),
        (cli::LogFormat::Text, true) => fmt.without_time().with_ansi(false).init(),
        (cli::LogFormat::Text, false) => fmt.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(cli::run(cli)) {
        match &e {
            // A §2 validation error prints `CODE: message (field …; valid values: …)`.
            Error::Validation(v) => eprintln!("{v}"),
            other => eprintln!("error: {other}"),
        }
        std::process::exit(e.exit_code());
    }
}
