//! The `ddh-renewd` binary: parse the command line, run the library, map errors to exit codes.

use clap::Parser;
use ddh_renewd::cli::{self, Cli};
use ddh_renewd::error::Error;

fn main() {
    let cli = Cli::parse();
    // The demo prints its own timeline; everything else logs warnings (notices) by default.
    let default = match cli.command {
        cli::Command::Demo(_) => "error",
        cli::Command::Run | cli::Command::Emulator(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DDH_RENEWD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
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
