//! `db copy`: moving an existing SQLite database into PostgreSQL, the whole history with it.

use std::str::FromStr;

use clap::{Args, Subcommand};
use sqlx::postgres::PgConnectOptions;

use crate::app;
use crate::config::Config;
use crate::engine::ActorLock;
use crate::error::{Error, Result};

#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// Copy this database ([database] path), every table and its whole history, into an empty
    /// PostgreSQL database; each row is read back and checked before the copy commits.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The target, `postgres://USER@HOST:PORT/DBNAME`. No password in it: give it in PGPASSWORD or
    /// in the credential file `postgres-password` ($CREDENTIALS_DIRECTORY).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Print the tables copied as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, cmd: DbCmd) -> Result<()> {
    match cmd {
        DbCmd::Copy(args) => copy(config, &args).await,
    }
}

async fn copy(config: &Config, args: &CopyArgs) -> Result<()> {
    if config.database.url.is_some() {
        return Err(Error::Usage(
            "db copy moves a SQLite database ([database] path) into PostgreSQL; this config's store is PostgreSQL already ([database] url)".into(),
        ));
    }
    let target = postgres_target(&args.to, &|k| std::env::var(k).ok())?;
    let db = &config.database.path;
    if !db.exists() {
        return Err(Error::Usage(format!(
            "{} does not exist: there is nothing to copy",
            db.display()
        )));
    }
    // No daemon may write while the copy reads: what it wrote after the snapshot would be lost.
    let _lock = ActorLock::acquire(db).map_err(|e| {
        Error::Runtime(format!(
            "{e}; stop it before copying (systemctl stop ddh-renewd)"
        ))
    })?;
    let store = app::store(config).await?;
    let started = std::time::Instant::now();
    let copied = store.copy_to_postgres(&target, &args.to).await;
    store.close().await;
    let copied = copied.map_err(|e| Error::Runtime(e.to_string()))?;
    let rows: u64 = copied.iter().map(|t| t.rows).sum();
    if args.json {
        let out = serde_json::json!({ "target": args.to, "rows": rows, "tables": copied });
        println!("{out:#}");
        return Ok(());
    }
    println!("{:<20} {:>10}  sha256 (sent = read back)", "table", "rows");
    for t in &copied {
        println!("{:<20} {:>10}  {}", t.table, t.rows, &t.sha256[..16]);
    }
    println!(
        "copied {rows} rows in {} tables to {} in {:.1} s; every table read back identical",
        copied.len(),
        args.to,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Parses a `postgres://` URL that carries no password; the password comes from the credential
/// file, else PGPASSWORD (read by the driver), else none (trust, peer or .pgpass-free setups).
pub fn postgres_target(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PgConnectOptions> {
    crate::config::check_postgres_url(url).map_err(Error::Usage)?;
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Usage(format!("{url:?} is not a valid PostgreSQL URL: {e}")))?;
    if let Some(password) = crate::app::pg_password(env)? {
        options = options.password(&password);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::PG_PASSWORD_CREDENTIAL as PASSWORD_CREDENTIAL;

    #[test]
    fn a_password_in_the_url_is_refused_and_the_credential_file_is_read() {
        let none = |_: &str| None;
        let e = postgres_target("postgres://ddh:secret@127.0.0.1:5432/ddh", &none).unwrap_err();
        assert!(e.to_string().contains("PGPASSWORD") && !e.to_string().contains("secret"));
        assert_eq!(e.exit_code(), 2);
        let e = postgres_target("mysql://127.0.0.1/x", &none).unwrap_err();
        assert!(e.to_string().contains("postgres://USER@HOST"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PASSWORD_CREDENTIAL), "s3cret\n").unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        let env = move |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone());
        let o = postgres_target("postgres://ddh@127.0.0.1:5432/ddh", &env).unwrap();
        assert_eq!(o.get_host(), "127.0.0.1");
        assert_eq!(o.get_database(), Some("ddh"));
    }
}
