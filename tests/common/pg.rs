//! A throw-away PostgreSQL cluster for one test: Debian's `postgresql` binaries, a data directory
//! in a temp dir, the server on a free loopback port as a non-root user, password (SCRAM) auth
//! over TCP, stopped when dropped. `.ci/run` installs the package and sets
//! `DDH_REQUIRE_POSTGRES=1`, so CI fails rather than skips when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const USER: &str = "ddh";
pub const PASSWORD: &str = "pg-test-password-7d1c";

pub struct Postgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/N/bin` with `initdb` in it.
fn bindir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn id_of(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

impl Postgres {
    /// Starts a cluster, or returns None (with a note) where PostgreSQL is not installed and not
    /// required.
    pub fn start() -> Option<Self> {
        let Some(bin) = bindir() else {
            assert!(
                std::env::var_os("DDH_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL is required here but /usr/lib/postgresql/*/bin/initdb is missing"
            );
            eprintln!("PostgreSQL not installed; `apt-get install postgresql` to run this part");
            return None;
        };
        // Not under the test artifacts: the cluster is tens of MB, and its content is the copy
        // of a database kept there already.
        let dir = tempfile::tempdir().expect("tempdir");
        // The server refuses to run as root: as root, run it as `postgres` (or `nobody`).
        let run_as = is_root().then(|| {
            let user = if id_of("-u", "postgres").is_some() {
                "postgres"
            } else {
                "nobody"
            };
            (
                id_of("-u", user).expect("uid"),
                id_of("-g", user).expect("gid"),
            )
        });
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("pwfile");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown");
        }
        let port = super::free_port();
        let pg = Self {
            _dir: dir,
            data,
            bin,
            run_as,
            port,
        };
        let out = pg
            .tool("initdb")
            .args([
                "-U",
                USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ])
            .arg("--pwfile")
            .arg(&pwfile)
            .arg("-D")
            .arg(&pg.data)
            .output()
            .expect("initdb");
        check("initdb", &out);
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=400",
            pg.data.parent().unwrap_or(Path::new("/tmp")).display()
        );
        let out = pg
            .tool("pg_ctl")
            .args(["-w", "-t", "60", "-o", &opts, "-l"])
            .arg(pg.data.join("server.log"))
            .arg("-D")
            .arg(&pg.data)
            .arg("start")
            .output()
            .expect("pg_ctl start");
        check("pg_ctl start", &out);
        Some(pg)
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            c.uid(uid)
                .gid(gid)
                .env("HOME", self.data.parent().unwrap_or(Path::new("/tmp")));
        }
        c
    }

    /// `postgres://ddh@127.0.0.1:PORT/DB` (the password goes in PGPASSWORD).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn create_db(&self, db: &str) {
        let out = self.psql("postgres", &format!("CREATE DATABASE {db}"));
        check("CREATE DATABASE", &out);
    }

    /// `psql` over TCP with the password, unaligned and quiet, stopping at the first error.
    pub fn psql(&self, db: &str, sql: &str) -> Output {
        self.psql_with(db, sql, &[])
    }

    pub fn psql_with(&self, db: &str, sql: &str, env: &[(&str, &str)]) -> Output {
        self.psql_as(USER, PASSWORD, db, &["-c", sql], env)
    }

    /// `psql` as `user` with `args` (`-c SQL`, `-f FILE`).
    pub fn psql_as(
        &self,
        user: &str,
        password: &str,
        db: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-U", user, "-p", &self.port.to_string(), "-d", db])
            .args(args)
            .env("PGPASSWORD", password)
            .envs(env.iter().copied())
            .output()
            .expect("psql")
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}
