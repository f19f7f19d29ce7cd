//! The inventory and policy commands through the real binary and a real SQLite file.

mod common;

use common::{Env, bulk_csv};
use serde_json::Value;

const FLEET: &str =
    "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit
dh-a,cn-hangzhou,2026-12-10T16:00Z,PrePaid,Normal,1,Month
dh-b,cn-hangzhou,2026-12-11T01:00Z,PrePaid,,,
dh-c,cn-hangzhou,2027-03-01T16:00Z,PrePaid,NotRenewal,1,Month
dh-post,cn-hangzhou,2999-09-08T16:00Z,PostPaid,,,
dh-sh,cn-shanghai,2027-01-01T16:00Z,PrePaid,,,
";

fn fleet() -> Env {
    let env = Env::new();
    env.import(FLEET);
    env
}

/// Runs `policy set` and returns (exit code, stderr).
fn policy_set(env: &Env, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["policy", "set", "--region", "cn-hangzhou"];
    args.extend_from_slice(extra);
    let r = env.run(&args);
    (r.code, r.stderr)
}

fn policy_change_count(env: &Env) -> usize {
    env.json(&["policy", "show", "--history", "--json"])
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn policy_set_reproduces_every_documented_error() {
    let env = fleet();
    let before = policy_change_count(&env);
    let many = (0..101)
        .map(|i| format!("dh-x{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--ids", ""],
            "MissingParameter.DedicatedHostId",
            "1 to 100",
        ),
        (
            vec!["--ids", &many],
            "InvalidParameter.ToManyDedicatedHostIds",
            "1 to 100",
        ),
        (
            vec!["--ids", "i-notahost"],
            "InvalidParameter.InvalidDedicatedHostId",
            "dh-",
        ),
        (
            vec!["--ids", "dh-unknown"],
            "InvalidParameter.InvalidDedicatedHostId",
            "dh-unknown",
        ),
        (vec!["--ids", "dh-post"], "ChargeTypeViolation", "PostPaid"),
        (
            vec!["--ids", "dh-a", "--duration", "5"],
            "InvalidParameter.Duration",
            "1, 2, 3, 6, 12, 24, 36, 48, 60",
        ),
        (
            vec!["--ids", "dh-a", "--renewal-status", "Always"],
            "InvalidParameter.RenewalStatus",
            "AutoRenewal, Normal, NotRenewal",
        ),
        (
            vec!["--ids", "dh-a", "--period-unit", "Day"],
            "InvalidPeriodUnit.ValueNotSupported",
            "Week, Month, Year",
        ),
    ];
    for (args, code, hint) in cases {
        let (exit, stderr) = policy_set(&env, &args);
        assert_eq!(exit, 3, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("{code}: ")),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(hint),
            "{args:?} should mention {hint:?}: {stderr}"
        );
    }
    // A released host: mark one released through the public history path (sync will do this;
    // here the test writes the row the way sync would, through the library).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = ddh_renewd::store::Store::open(&env.db, Default::default())
            .await
            .unwrap();
        sqlx::query("UPDATE hosts SET status = 'Released' WHERE host_id = 'dh-c'")
            .execute(&common::auditor(&env.db).await)
            .await
            .unwrap();
        store.close().await;
    });
    let (exit, stderr) = policy_set(&env, &["--ids", "dh-c", "--auto-renew", "true"]);
    assert_eq!(exit, 3);
    assert!(stderr.starts_with("IncorrectHostStatus: "), "{stderr}");
    assert_eq!(
        policy_change_count(&env),
        before,
        "no refused call may leave a history row"
    );
}

#[test]
fn policy_set_is_all_or_nothing_and_audited() {
    let env = fleet();
    let before = policy_change_count(&env);
    // One bad host among good ones: nothing changes.
    let (exit, stderr) = policy_set(
        &env,
        &[
            "--ids",
            "dh-a,dh-b,dh-post",
            "--renewal-status",
            "AutoRenewal",
        ],
    );
    assert_eq!(exit, 3, "{stderr}");
    assert_eq!(policy_change_count(&env), before);
    let shown = env.json(&["policy", "show", "--json"]);
    let status_of = |id: &str| {
        shown
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host_id"] == id)
            .unwrap()["renewal_status"]
            .clone()
    };
    assert_eq!(status_of("dh-a"), "Normal");
    assert_eq!(status_of("dh-b"), "Normal");

    // The same call without the bad host applies to both (JSON array form of the ids).
    env.run(&[
        "policy",
        "set",
        "--region",
        "cn-hangzhou",
        "--ids",
        r#"["dh-a","dh-b"]"#,
        "--auto-renew",
        "true",
        "--duration",
        "12",
    ])
    .expect(0);
    let history = env.json(&["policy", "show", "--history", "--json"]);
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), before + 2);
    let a = rows.iter().rev().find(|r| r["host_id"] == "dh-a").unwrap();
    assert_eq!(a["old_renewal_status"], "Normal");
    assert_eq!(a["old_duration"], 1);
    assert_eq!(a["new_renewal_status"], "AutoRenewal");
    assert_eq!(a["new_duration"], 12);
    assert_eq!(a["operation"], "policy_set");
    let b = rows.iter().rev().find(|r| r["host_id"] == "dh-b").unwrap();
    assert_eq!(
        b["old_renewal_status"],
        Value::Null,
        "dh-b had no policy before"
    );
    assert_eq!(a["op_id"], b["op_id"], "one call, one operation");

    // RenewalStatus wins over AutoRenew.
    env.run(&[
        "policy",
        "set",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-a",
        "--auto-renew",
        "true",
        "--renewal-status",
        "NotRenewal",
    ])
    .expect(0);
    let p = env.json(&["policy", "show", "--host", "dh-a", "--json"]);
    assert_eq!(p[0]["renewal_status"], "NotRenewal");
}

#[test]
fn wrong_region_is_unknown_id() {
    let env = fleet();
    let r = env
        .run(&[
            "policy",
            "set",
            "--region",
            "cn-hangzhou",
            "--ids",
            "dh-sh",
            "--auto-renew",
            "true",
        ])
        .expect(3);
    assert!(
        r.stderr
            .starts_with("InvalidParameter.InvalidDedicatedHostId: "),
        "{}",
        r.stderr
    );
}

#[test]
fn plan_json_matches_the_spec_examples() {
    let env = Env::new();
    env.import(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status
dh-e1,cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal
dh-e2,cn-hangzhou,2026-12-11T01:00Z,PrePaid,AutoRenewal
",
    );
    let plan = env.json(&["plan", "--json", "--at", "2026-12-01T00:00:00Z"]);
    let rows = plan.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "host_id",
        "region_id",
        "charge_type",
        "expired_time",
        "renewal_status",
        "duration",
        "period_unit",
        "state",
        "next_window",
        "last_window",
        "days_left",
        "attention",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected, "exactly the documented keys");
    assert_eq!(rows[0]["host_id"], "dh-e1");
    assert_eq!(rows[0]["expired_time"], "2026-12-10T16:00:00Z");
    assert_eq!(rows[0]["state"], "scheduled");
    // 2026-12-01T00:00Z to 2026-12-10T16:00Z: 9 days and 16 hours.
    assert_eq!(rows[0]["days_left"], 9);
    assert_eq!(rows[0]["attention"], Value::Array(vec![]));
    assert_eq!(rows[0]["next_window"], "2026-12-02T08:00:00+08:00");
    assert_eq!(rows[0]["last_window"], "2026-12-10T08:00:00+08:00");
    assert_eq!(rows[1]["next_window"], "2026-12-02T08:00:00+08:00");
    assert_eq!(rows[1]["last_window"], "2026-12-11T08:00:00+08:00");

    // Later: due, pointing at the latest window; after expiry: lapsed with no next window.
    let plan = env.json(&["plan", "--json", "--at", "2026-12-05T12:00:00+08:00"]);
    assert_eq!(plan[0]["state"], "due");
    assert_eq!(plan[0]["next_window"], "2026-12-05T08:00:00+08:00");
    let plan = env.json(&["plan", "--json", "--at", "2026-12-11T00:00:00+08:00"]);
    assert_eq!(plan[0]["state"], "lapsed");
    assert_eq!(plan[0]["next_window"], Value::Null);
    assert_eq!(plan[1]["state"], "due");
}

#[test]
fn plan_states_and_days_filter() {
    let env = fleet();
    let plan = env.json(&["plan", "--json", "--at", "2026-12-01T00:00:00Z"]);
    let state = |id: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|r| r["host_id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("dh-a"), "not_managed");
    assert_eq!(state("dh-post"), "postpaid");
    env.run(&[
        "policy",
        "set",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-a,dh-c",
        "--auto-renew",
        "true",
    ])
    .expect(0);
    let soon = env.json(&[
        "plan",
        "--json",
        "--at",
        "2026-12-01T00:00:00Z",
        "--days",
        "5",
    ]);
    let ids: Vec<&str> = soon
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dh-a"], "dh-c's first window is in February");
    let r = env.run(&["plan", "--days", "0"]).expect(2);
    assert!(r.stderr.contains("--days"), "{}", r.stderr);
}

#[test]
fn import_is_atomic_and_names_line_and_field() {
    let env = Env::new();
    let mut csv = bulk_csv(500);
    csv = csv.replace(
        "dh-bulk-000321,cn-shanghai,2027-01-14T16:00Z",
        "dh-bulk-000321,cn-shanghai,2027-13-14T16:00Z",
    );
    let f = env.write("bad.csv", &csv);
    let r = env.run(&["hosts", "import", f.to_str().unwrap()]).expect(3);
    // Header is line 1, so host 321 is line 323.
    assert!(
        r.stderr.contains("line 323, field expired_time"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    assert_eq!(
        env.json(&["hosts", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let csv = bulk_csv(500).replace(
        "dh-bulk-000007,cn-shanghai,2027-01-08T16:00Z,PrePaid,AutoRenewal,1,Month",
        "dh-bulk-000007,cn-shanghai,2027-01-08T16:00Z,PrePaid,AutoRenewal,7,Month",
    );
    let f = env.write("bad2.csv", &csv);
    let r = env.run(&["hosts", "import", f.to_str().unwrap()]).expect(3);
    assert!(
        r.stderr
            .contains("line 9, field duration: InvalidParameter.Duration"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("valid values"), "{}", r.stderr);
    assert_eq!(
        env.json(&["hosts", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn import_ten_thousand_rows_and_reimport_is_a_no_op() {
    let env = Env::new();
    let f = env.write("bulk.csv", &bulk_csv(10_000));
    let r = env
        .run(&["hosts", "import", f.to_str().unwrap(), "--json"])
        .expect(0);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s["added"], 10_000);
    assert_eq!(s["policies_changed"], 10_000);
    let r = env
        .run(&["hosts", "import", f.to_str().unwrap(), "--json"])
        .expect(0);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (
            s["added"].as_u64(),
            s["unchanged"].as_u64(),
            s["policies_changed"].as_u64()
        ),
        (Some(0), Some(10_000), Some(0))
    );
}

#[test]
fn json_import_and_host_changes() {
    let env = Env::new();
    let f = env.write("hosts.json", r#"[
        {"dedicated_host_id": "dh-j1", "region_id": "cn-hangzhou", "expired_time": "2026-12-10T16:00Z", "charge_type": "PrePaid", "renewal_status": "AutoRenewal", "duration": 1, "period_unit": "Year"},
        {"dedicated_host_id": "dh-j2", "region_id": "cn-hangzhou", "expired_time": "2026-12-11T00:00:00+08:00", "charge_type": "Prepaid"}
    ]"#);
    env.run(&["hosts", "import", f.to_str().unwrap()]).expect(0);
    // Expiry moves: recorded as a field change.
    env.run(&[
        "hosts",
        "add",
        "--id",
        "dh-j2",
        "--region",
        "cn-hangzhou",
        "--expired-time",
        "2027-01-10T16:00Z",
    ])
    .expect(0);
    let show = env.json(&["hosts", "show", "dh-j2", "--json"]);
    let changes = show["host_changes"].as_array().unwrap();
    assert_eq!(changes[0]["kind"], "added");
    assert_eq!(changes[1]["field"], "expired_time");
    assert_eq!(changes[1]["old_value"], "2026-12-10T16:00:00Z");
    assert_eq!(changes[1]["new_value"], "2027-01-10T16:00:00Z");
    // Remove keeps the row and its history; list hides it; re-adding restores.
    env.run(&["hosts", "remove", "dh-j1"]).expect(0);
    assert_eq!(
        env.json(&["hosts", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json(&["hosts", "list", "--all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = env.run(&["hosts", "show", "dh-nope"]).expect(3);
    assert!(
        r.stderr.contains("InvalidDedicatedHostId.NotFound"),
        "{}",
        r.stderr
    );
}

#[test]
fn history_rows_cannot_be_updated_or_deleted() {
    let env = fleet();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = ddh_renewd::store::Store::open(&env.db, Default::default())
            .await
            .unwrap();
        for sql in [
            "UPDATE policy_changes SET new_renewal_status = 'AutoRenewal'",
            "DELETE FROM policy_changes",
            "UPDATE host_changes SET kind = 'removed'",
            "DELETE FROM host_changes",
            "DELETE FROM operations",
            "DELETE FROM hosts",
        ] {
            let err = sqlx::query(sql)
                .execute(&common::auditor(&env.db).await)
                .await
                .expect_err(sql);
            let msg = err.to_string();
            assert!(
                msg.contains("append-only") || msg.contains("never deleted"),
                "{sql}: {msg}"
            );
        }
        store.close().await;
    });
}

#[test]
fn v_hosts_agrees_with_plan_now() {
    let env = Env::new();
    let now = chrono::Utc::now();
    let csv = format!(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n\
         dh-soon,cn-hangzhou,{},PrePaid,AutoRenewal\n\
         dh-later,cn-hangzhou,{},PrePaid,AutoRenewal\n\
         dh-manual,cn-hangzhou,{},PrePaid,Normal\n\
         dh-gone,cn-hangzhou,{},PrePaid,AutoRenewal\n",
        (now + chrono::Duration::days(4)).format("%Y-%m-%dT16:00Z"),
        (now + chrono::Duration::days(40)).format("%Y-%m-%dT16:00Z"),
        (now + chrono::Duration::days(4)).format("%Y-%m-%dT16:00Z"),
        (now - chrono::Duration::days(2)).format("%Y-%m-%dT16:00Z"),
    );
    env.import(&csv);
    let plan = env.json(&["plan", "--json"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let view: Vec<(String, String, Option<String>)> = rt.block_on(async {
        let store = ddh_renewd::store::Store::open(&env.db, Default::default())
            .await
            .unwrap();
        let rows =
            sqlx::query_as("SELECT host_id, state, next_window FROM v_hosts ORDER BY host_id")
                .fetch_all(&common::auditor(&env.db).await)
                .await
                .unwrap();
        store.close().await;
        rows
    });
    for (id, state, next) in view {
        let p = plan
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host_id"] == id.as_str())
            .unwrap();
        assert_eq!(p["state"], state.as_str(), "{id}");
        let plan_next = p["next_window"].as_str().map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        });
        let view_next = next.map(|s| {
            chrono::DateTime::parse_from_rfc3339(&s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        });
        assert_eq!(plan_next, view_next, "{id}");
    }
}

/// Several commands opening a new database at once: the migrations run once, none fails.
#[test]
fn concurrent_first_opens_migrate_once() {
    let env = Env::new();
    let children: Vec<_> = (0..6)
        .map(|_| {
            env.command(&["hosts", "list", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn views_for_people_use_one_zone_and_say_what_needs_attention() {
    let env = Env::with_config("[display]\ntimezone = \"UTC\"\n");
    let csv = env.write(
        "h.csv",
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status
dh-home,cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal
dh-away,eu-central-1,2026-12-11T01:00Z,PrePaid,AutoRenewal
",
    );
    let r = env
        .run(&["hosts", "import", csv.to_str().unwrap()])
        .expect(0);
    assert!(
        r.stderr
            .contains("warning: dh-away is in region eu-central-1, which is not in [ecs] regions")
            && !r.stderr.contains("dh-home"),
        "{}",
        r.stderr
    );
    let plan = env.run(&["plan", "--at", "2026-12-01T00:00:00Z"]).expect(0);
    let header = plan.stdout.lines().next().unwrap();
    for col in ["EXPIRES", "DAYS LEFT", "NEXT WINDOW", "ATTENTION"] {
        assert!(header.contains(col), "{header}");
    }
    let home = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("dh-home"))
        .unwrap();
    // Expiry and windows in the one display zone (UTC here), days left from --at.
    assert!(
        home.contains("2026-12-10 16:00 +00:00")
            && home.contains("2026-12-02 00:00 +00:00")
            && home.contains("  9  "),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("+08:00"),
        "one zone per view:\n{}",
        plan.stdout
    );
    let away = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("dh-away"))
        .unwrap();
    assert!(away.contains("region not in [ecs] regions"), "{away}");
    let list = env.run(&["hosts", "list"]).expect(0);
    assert!(list.stdout.lines().next().unwrap().contains("DAYS LEFT"));
}

/// An import is parsed while its first chunks are already written, in one transaction: a bad
/// row in a later chunk leaves nothing behind, neither hosts nor history nor an operation.
#[test]
fn a_bad_row_after_the_first_chunks_rolls_the_whole_import_back() {
    let env = Env::new();
    env.import("dedicated_host_id,region_id,expired_time,charge_type\ndh-before,cn-hangzhou,2027-06-01T16:00Z,PrePaid\n");
    let good = common::bulk_csv(12_000);
    let bad = good.replace(
        "dh-bulk-011000,cn-hangzhou,2027-01-25T16:00Z,PrePaid",
        "dh-bulk-011000,cn-hangzhou,2027-01-25T16:00Z,Spot",
    );
    assert_ne!(good, bad, "the row to break is in the file");
    let file = env.write("big.csv", &bad);
    let r = env
        .run(&["hosts", "import", file.to_str().unwrap()])
        .expect(3);
    assert!(
        r.stderr.contains("line 11002, field charge_type")
            && r.stderr.contains("nothing was imported"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("warning:"),
        "no warnings for rows not imported: {}",
        r.stderr
    );
    let hosts = env.json(&["hosts", "list", "--all", "--json"]);
    assert_eq!(
        hosts.as_array().unwrap().len(),
        1,
        "only the host from before"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ops, changes): (i64, i64) = rt.block_on(async {
        let pool = common::auditor(&env.db).await;
        let ops = sqlx::query_scalar("SELECT count(*) FROM operations")
            .fetch_one(&pool)
            .await
            .unwrap();
        let changes = sqlx::query_scalar("SELECT count(*) FROM host_changes")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        (ops, changes)
    });
    assert_eq!(
        (ops, changes),
        (1, 1),
        "the first import's operation and row only"
    );
    // The same file mended imports whole.
    let file = env.write("big.csv", &good);
    env.run(&["hosts", "import", file.to_str().unwrap()])
        .expect(0);
    let hosts = env.json(&["hosts", "list", "--json"]);
    assert_eq!(hosts.as_array().unwrap().len(), 12_001);
}

/// An import large against the inventory sets the expiry indexes of `hosts` aside and
/// rebuilds them at commit. A bad row after they were set aside leaves them as they were; the
/// mended file's rebuild leaves the same definitions, each holding every host.
#[test]
fn a_bulk_import_rebuilds_the_indexes_it_set_aside_or_leaves_them_untouched() {
    let env = Env::new();
    env.import("dedicated_host_id,region_id,expired_time,charge_type\ndh-before,cn-hangzhou,2027-06-01T16:00Z,PrePaid\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let schema = || {
        rt.block_on(async {
            let pool = common::auditor(&env.db).await;
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_schema
                 WHERE type = 'index' AND tbl_name = 'hosts' AND sql IS NOT NULL ORDER BY name",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            pool.close().await;
            rows
        })
    };
    let before = schema();
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "hosts_by_cloud_first_window",
            "hosts_by_expiry",
            "hosts_by_first_window",
            "hosts_by_region"
        ]
    );

    // 60,000 rows: the indexes are set aside once 50,000 are written; row 55,000 is bad.
    let good = common::bulk_csv(60_000);
    let bad = good.replace(
        "dh-bulk-055000,cn-hangzhou,2027-01-09T16:00Z,PrePaid",
        "dh-bulk-055000,cn-hangzhou,2027-01-09T16:00Z,Spot",
    );
    assert!(good != bad, "the row to break is in the file");
    let file = env.write("bulk.csv", &bad);
    let r = env
        .run(&["hosts", "import", file.to_str().unwrap()])
        .expect(3);
    assert!(
        r.stderr.contains("line 55002, field charge_type"),
        "{}",
        r.stderr
    );
    assert_eq!(schema(), before, "the indexes are as they were");

    let file = env.write("bulk.csv", &good);
    env.run(&["hosts", "import", file.to_str().unwrap()])
        .expect(0);
    assert_eq!(schema(), before, "the same indexes, rebuilt");
    let (check, counts): (String, Vec<i64>) = rt.block_on(async {
        let pool = common::auditor(&env.db).await;
        let check = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut counts = Vec::new();
        for q in [
            "SELECT count(*) FROM hosts INDEXED BY hosts_by_expiry WHERE removed_at IS NULL AND expired_time > ''",
            "SELECT count(*) FROM hosts INDEXED BY hosts_by_first_window WHERE removed_at IS NULL AND first_window > ''",
            "SELECT count(*) FROM hosts INDEXED BY hosts_by_region WHERE removed_at IS NULL AND region_id > ''",
        ] {
            counts.push(sqlx::query_scalar(q).fetch_one(&pool).await.unwrap());
        }
        pool.close().await;
        (check, counts)
    });
    assert_eq!(check, "ok", "every index agrees with the table");
    assert_eq!(
        counts,
        [60_001, 60_001, 60_001],
        "each index holds every host"
    );
    let hosts = env.json(&["hosts", "list", "--json"]);
    assert_eq!(hosts.as_array().unwrap().len(), 60_001);
}
