//! Config resolution, validation and redaction through the real binary.

mod common;

use common::{Env, run_plain};

#[test]
fn unknown_key_exits_2_and_names_it() {
    let env = Env::with_config("[schedule]\nlead_dayz = 3\n");
    let r = env.run(&["check-config"]).expect(2);
    assert!(
        r.stderr.contains("lead_dayz") && r.stderr.contains("lead_days"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_value_exits_2_with_the_accepted_form() {
    let env = Env::with_config("[schedule]\nin_window_retry = \"half an hour\"\n");
    let r = env.run(&["plan"]).expect(2);
    assert!(
        r.stderr.contains("schedule.in_window_retry") && r.stderr.contains("\"30m\""),
        "{}",
        r.stderr
    );
}

#[test]
fn check_config_prints_effective_values_with_secrets_redacted() {
    let env = Env::with_config(
        "[notify]\nwebhook_url = \"https://hooks.example.com/services/SECRET-TOKEN\"\n[schedule]\nlead_days = 5\n",
    );
    let r = env.run(&["check-config"]).expect(0);
    assert!(r.stdout.contains("lead_days = 5"), "{}", r.stdout);
    assert!(
        r.stdout.contains("credentials: ok") && r.stdout.contains("LTAI5tTestKeyId000000000"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains(common::TEST_SECRET),
        "the AccessKey secret must never be printed"
    );
    assert!(r.stdout.contains("Asia/Shanghai"));
    assert!(!r.stdout.contains("SECRET-TOKEN"), "{}", r.stdout);
    let j = env.json(&["check-config", "--json"]);
    assert_eq!(j["schedule"]["in_window_retry"], "30m");
    assert!(!j.to_string().contains("SECRET-TOKEN"));
}

#[test]
fn env_var_names_the_config_and_defaults_apply_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[schedule]\nlead_days = 4\n").unwrap();
    let r = run_plain(
        &["check-config", "--json"],
        &[("DDH_RENEWD_CONFIG", &cfg)],
        dir.path(),
    )
    .expect(0);
    assert!(r.stdout.contains("\"lead_days\": 4"), "{}", r.stdout);
    // Neither flag nor variable: the system file if this machine has one, else the built-in
    // defaults. Both cases are checked, whichever this machine is.
    let system = std::path::Path::new("/etc/ddh-renewd/ddh-renewd.toml");
    let r = run_plain(&["check-config", "--json"], &[], dir.path()).expect(0);
    if system.exists() {
        let named = run_plain(
            &[
                "--config",
                system.to_str().unwrap(),
                "check-config",
                "--json",
            ],
            &[],
            dir.path(),
        )
        .expect(0);
        assert_eq!(r.stdout, named.stdout, "the fallback is the system file");
    } else {
        assert!(r.stdout.contains("\"lead_days\": 9"), "{}", r.stdout);
        assert!(
            r.stdout.contains("\"path\": \"ddh-renewd.db\""),
            "{}",
            r.stdout
        );
    }
    let r = run_plain(
        &["check-config"],
        &[("DDH_RENEWD_CONFIG", &dir.path().join("missing.toml"))],
        dir.path(),
    )
    .expect(2);
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
}

#[test]
fn unusable_database_is_a_clear_runtime_error() {
    let env = Env::with_config("");
    let bad = env.path("no/such/dir/x.db");
    let text = format!("[database]\npath = {:?}\n", bad.display().to_string());
    std::fs::write(&env.config, text).unwrap();
    let r = env.run(&["hosts", "list"]).expect(1);
    assert!(
        r.stderr.contains("cannot open database") && r.stderr.contains("no/such/dir"),
        "{}",
        r.stderr
    );

    let not_db = env.write("not.db", "this is not sqlite, just text that is long enough to have a header page............................................................");
    let text = format!("[database]\npath = {:?}\n", not_db.display().to_string());
    std::fs::write(&env.config, text).unwrap();
    let r = env.run(&["hosts", "list"]).expect(1);
    assert!(
        r.stderr.contains("not an SQLite database") || r.stderr.contains("not a database"),
        "{}",
        r.stderr
    );
}

#[test]
fn unusable_credentials_exit_2_naming_the_source() {
    let mut env = Env::with_config("[credentials]\nsource = \"systemd\"\n");
    env.set_env("CREDENTIALS_DIRECTORY", "");
    let r = env.run(&["check-config"]).expect(2);
    assert!(
        r.stderr.contains("CREDENTIALS_DIRECTORY") && r.stderr.contains("LoadCredential"),
        "{}",
        r.stderr
    );
    let key = env.write(
        "access.key.json",
        r#"{"AccessKeyId":"LTAIfile","AccessKeySecret":"file-secret-value"}"#,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let text = format!(
        "[database]\npath = {:?}\n[credentials]\nsource = \"file\"\nfile = {:?}\n",
        env.db.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(&env.config, text).unwrap();
    let r = env.run(&["check-config"]).expect(2);
    assert!(
        r.stderr.contains("group or others") && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("file-secret-value") && !r.stdout.contains("file-secret-value"));
}

#[test]
fn demo_runs_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_plain(&["demo"], &[], dir.path()).expect(0);
    for want in [
        "sync: 30 hosts pulled",
        "with the same ClientToken",
        "failed dh-broke (InsufficientBalance)",
        "batch split",
        "LAPSED dh-broke",
        "cycles renewed twice: 0",
        "every ledger ClientToken written ahead: yes",
        "window runs: 15",
    ] {
        assert!(
            r.stdout.contains(want),
            "demo output lacks {want:?}:\n{}",
            r.stdout
        );
    }
    // The line whose renewed list (the first "; "-separated part) names the late payer.
    let late = r
        .stdout
        .lines()
        .find(|l| {
            l.split("; ")
                .next()
                .is_some_and(|first| first.contains("renewed") && first.contains("dh-late-payer"))
        })
        .unwrap_or_default();
    // Expires 2026-12-13 00:00 UTC+8: windows from Dec 4; fails Dec 4 and 5, pays Dec 6.
    assert!(
        late.starts_with("2026-12-06"),
        "pays on the third window: {late}"
    );
    assert!(
        !dir.path().join("ddh-renewd.db").exists(),
        "demo must not write to the working directory"
    );
}

#[test]
fn demo_is_the_same_for_a_seed_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let a = run_plain(&["demo", "--seed", "3"], &[], dir.path()).expect(0);
    let b = run_plain(&["demo", "--seed", "3"], &[], dir.path()).expect(0);
    assert_eq!(a.stdout, b.stdout, "byte for byte");
    // `demo | head -1`: the reader goes away after one line.
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(common::bin())
        .arg("demo")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("ddh-renewd demo"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // --keep-db keeps a database that the closing hint can be run on.
    let kept = dir.path().join("kept.db");
    let r = run_plain(
        &["demo", "--keep-db", kept.to_str().unwrap()],
        &[],
        dir.path(),
    )
    .expect(0);
    assert!(
        kept.exists() && r.stdout.contains("kept.db"),
        "{}",
        r.stdout
    );
    run_plain(
        &["demo", "--keep-db", kept.to_str().unwrap()],
        &[],
        dir.path(),
    )
    .expect(2);
}
