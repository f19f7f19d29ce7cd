//! Shared helpers for the integration tests: a temp dir with a config file pointing at a fresh
//! SQLite database, and a runner for the real `ddh-renewd` binary.

#![allow(dead_code)]

pub mod cloud;
pub mod hostile;
pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The emulator's built-in test key pair; every test command gets it in the environment.
pub const TEST_KEY_ID: &str = "LTAI5tTestKeyId000000000";
pub const TEST_SECRET: &str = "TestSecret0123456789abcdefghijk";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    extra_env: Vec<(String, String)>,
}

/// A temp dir; under $DDH_TEST_ARTIFACTS (kept after the test) when that is set.
pub fn test_dir() -> tempfile::TempDir {
    match std::env::var_os("DDH_TEST_ARTIFACTS") {
        Some(root) => {
            std::fs::create_dir_all(&root).expect("artifact dir");
            let mut d = tempfile::Builder::new()
                .prefix("t-")
                .tempdir_in(root)
                .expect("tempdir");
            d.disable_cleanup(true);
            d
        }
        None => tempfile::tempdir().expect("tempdir"),
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Self {
        Self::from(o)
    }

    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with both streams if the exit code is not `code`.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// The binary under test: this build's, or `$DDH_RENEWD_BIN` (to run a test against another
/// build, e.g. to show that a regression test fails on the code before a fix).
pub fn bin() -> String {
    std::env::var("DDH_RENEWD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ddh-renewd").to_owned())
}

impl Env {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A config with `extra` TOML appended after the `[database]` table.
    pub fn with_config(extra: &str) -> Self {
        Self::with_database(None, extra)
    }

    /// A config whose store is the PostgreSQL database `db` of `pg` (the password in the
    /// environment of every command), with `extra` appended.
    pub fn on_postgres(pg: &pg::Postgres, db: &str, extra: &str) -> Self {
        let mut env = Self::with_database(Some(&pg.url(db)), extra);
        // Standbys in tests try to take over four times a second (default 2 s).
        env.set_env("PGPASSWORD", pg::PASSWORD);
        env
    }

    fn with_database(url: Option<&str>, extra: &str) -> Self {
        let dir = test_dir();
        let db = dir.path().join("inventory.db");
        let config = dir.path().join("ddh-renewd.toml");
        let database = match url {
            Some(url) => format!("url = {url:?}\ntakeover_poll = \"250ms\""),
            None => format!("path = {:?}", db.display().to_string()),
        };
        let text = format!("[database]\n{database}\n{extra}\n");
        std::fs::write(&config, text).expect("write config");
        Self {
            dir,
            config,
            db,
            extra_env: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// The command for `args` with `--config <this env's config>` and the test credentials.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("DDH_RENEWD_CONFIG")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SECRET)
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    /// Runs the binary with `--config <this env's config>` and `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        let o = self.command(args).output().expect("run ddh-renewd");
        self.keep_log(args, &o);
        Run::from(o)
    }

    /// Starts the binary in the background (stdout and stderr discarded).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ddh-renewd")
    }

    /// Sets an environment variable for every later `run`.
    pub fn set_env(&mut self, k: &str, v: &str) {
        self.extra_env.push((k.to_owned(), v.to_owned()));
    }

    /// With $DDH_TEST_ARTIFACTS set, every command's output is kept beside the database so CI
    /// can search it for secrets after the whole suite.
    fn keep_log(&self, args: &[&str], o: &Output) {
        if std::env::var_os("DDH_TEST_ARTIFACTS").is_none() {
            return;
        }
        use std::io::Write;
        let path = self.dir.path().join("commands.log");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "$ ddh-renewd {}", args.join(" "));
            let _ = f.write_all(&o.stdout);
            let _ = f.write_all(&o.stderr);
        }
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let r = self.run(args).expect(0);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
    }

    pub fn import(&self, csv: &str) {
        let f = self.write("hosts.csv", csv);
        self.run(&["hosts", "import", f.to_str().expect("utf-8 path")])
            .expect(0);
    }
}

/// Runs the binary without any `--config`, with the given environment.
pub fn run_plain(args: &[&str], env: &[(&str, &Path)], cwd: &Path) -> Run {
    let mut c = Command::new(bin());
    c.args(args)
        .current_dir(cwd)
        .env_remove("DDH_RENEWD_CONFIG")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SECRET);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().expect("run ddh-renewd"))
}

/// A CSV with the full header and `n` PrePaid AutoRenewal hosts `dh-bulk-000000…`.
pub fn bulk_csv(n: usize) -> String {
    let mut s = String::from(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\n",
    );
    for i in 0..n {
        let day = 1 + (i % 28);
        let region = if i % 2 == 0 {
            "cn-hangzhou"
        } else {
            "cn-shanghai"
        };
        s.push_str(&format!(
            "dh-bulk-{i:06},{region},2027-01-{day:02}T16:00Z,PrePaid,AutoRenewal,1,Month\n"
        ));
    }
    s
}

/// `promtool check metrics` on a scrape: the lint Prometheus itself applies. promtool comes with
/// Debian's `prometheus` package; `.ci/run` installs it and sets `DDH_REQUIRE_PROMTOOL=1`, so CI
/// fails rather than skips when it is missing.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("DDH_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here but cannot run: {e}"
            );
            eprintln!(
                "promtool not installed ({e}); `apt-get install prometheus` to lint /metrics"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("promtool check metrics: ok");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A plain HTTP/1.0 GET on loopback: status line, headers and body as text.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A plain connection to the database file, as an auditor's `sqlite3` would open it: for
/// checks the `Store` API does not (and should not) offer.
pub async fn auditor(db: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(std::time::Duration::from_secs(10));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("open the database file")
}
