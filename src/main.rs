//! The `ddh-renewd` binary: parse the command line, run the library, map errors to exit codes.

use clap::Parser;
use ddh_renewd::cli::{self, Cli};
use ddh_renewd::error::Error;

/// Output piped into `head` and the like: die quietly on a closed pipe, as Unix tools do, instead
/// of panicking on the failed write. Not for the daemon, whose stderr may be a pipe it outlives.
fn default_sigpipe() {
    // SAFETY: called once at start, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, cli::Command::Run | cli::Command::Emulator(_)) {
        default_sigpipe();
    }
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
        // Colour only on a terminal: never escape codes in files and pipes.
        (cli::LogFormat::Text, false) => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
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
