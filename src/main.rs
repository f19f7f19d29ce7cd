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

/// Logs go to stderr, or — when stderr is the journal (systemd's JOURNAL_STREAM names it) — to
/// journald natively, every event field as a journal field (`HOST_ID`, `CLIENT_TOKEN`,
/// `REQUEST_ID`…), so that `journalctl -o json` and journal queries see them.
fn init_logging(format: cli::LogFormat, filter: tracing_subscriber::EnvFilter) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    if format == cli::LogFormat::Text
        && stderr_is_journal()
        && let Ok(layer) = tracing_journald::layer()
    {
        let layer = layer
            .with_field_prefix(None)
            .with_syslog_identifier("ddh-renewd".to_owned());
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init();
        return;
    }
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match (format, journal) {
        (cli::LogFormat::Json, _) => fmt.json().init(),
        // The journal adds time, and colour is noise there.
        (cli::LogFormat::Text, true) => fmt.without_time().with_ansi(false).init(),
        // Colour only on a terminal: never escape codes in files and pipes.
        (cli::LogFormat::Text, false) => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// JOURNAL_STREAM is "<device>:<inode>" of the journal stream systemd connected stderr to; a
/// command started from such a unit with stderr redirected elsewhere keeps the variable.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let meta = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata());
    meta.is_ok_and(|m| dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()))
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
    init_logging(cli.log_format, filter);
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
