//! The renewal engine through the real binary, against the real emulator over loopback, with a
//! real SQLite file: a 15-day simulation, batch isolation, idempotence, the one-actor lock.

mod common;

use std::collections::BTreeMap;

use common::Env;
use common::cloud::Cloud;
use serde_json::{Value, json};

const FLEET: &str =
    "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit
dh-auto-1,cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal,1,Month
dh-auto-2,cn-hangzhou,2026-12-11T01:00Z,PrePaid,AutoRenewal,1,Year
dh-auto-3,cn-hangzhou,2026-12-14T16:00Z,PrePaid,AutoRenewal,2,Week
dh-normal,cn-hangzhou,2026-12-08T16:00Z,PrePaid,Normal,1,Month
dh-notrenew,cn-hangzhou,2026-12-09T16:00Z,PrePaid,NotRenewal,1,Month
dh-post,cn-hangzhou,2999-09-08T16:00Z,PostPaid,,,
dh-poor,cn-hangzhou,2026-12-12T16:00Z,PrePaid,AutoRenewal,3,Month
dh-never,cn-hangzhou,2026-12-09T16:00Z,PrePaid,AutoRenewal,6,Month
";

fn cloud_fleet() -> Value {
    let mut v = Vec::new();
    for line in FLEET.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let mut h = json!({"DedicatedHostId": f[0], "RegionId": f[1], "ChargeType": f[3]});
        if f[3] == "PrePaid" {
            h["ExpiredTime"] = json!(f[2]);
        }
        v.push(h);
    }
    Value::Array(v)
}

/// Day `d` of December 2026 (or late November for d ≤ 0) at 08:00 UTC+8.
fn day(d: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-12-01T08:00:00+08:00").unwrap();
    (base + chrono::Duration::days(d - 1)).to_rfc3339()
}

fn tick(cloud: &Cloud, env: &Env, at: &str) -> Value {
    cloud.set_clock(at);
    env.json(&["tick", "--virtual-clock", "--at", at, "--json"])
}

fn ledger_by_host(cloud: &Cloud) -> BTreeMap<String, Vec<Value>> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in cloud.ledger() {
        m.entry(e["DedicatedHostId"].as_str().unwrap().to_owned())
            .or_default()
            .push(e);
    }
    m
}

#[test]
fn fifteen_days_at_eight_utc8() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    fifteen_days(&cloud, &env);
    // The ten queries of docs/audit.md run as written with the sqlite3 CLI against this database
    // while another process writes to it.
    run_audit_queries(&env);
    // Moved into PostgreSQL, the same ten questions get the same answers.
    postgres_gives_the_same_answers(&env);
    metrics_after(&cloud, &env);
}

/// The same fifteen days, with the store on PostgreSQL: the same payments, attempts, notices
/// and windows, through the same commands.
#[test]
fn fifteen_days_on_postgres() {
    let Some(pg) = common::pg::Postgres::start() else {
        return;
    };
    pg.create_db("ddh");
    let cloud = Cloud::start();
    let env = cloud.env_on_postgres(&pg, "ddh", "");
    fifteen_days(&cloud, &env);
}

/// Fifteen daily windows of the fleet against the emulator, faults included, and what the
/// ledger and the audit trail must show after them.
fn fifteen_days(cloud: &Cloud, env: &Env) {
    cloud.add(cloud_fleet());
    cloud.faults(1, json!([
        {"action": "RenewDedicatedHosts", "hosts": ["dh-poor"], "kind": "error", "status": 400, "code": "InsufficientBalance", "count": 3},
        {"action": "RenewDedicatedHosts", "hosts": ["dh-never"], "kind": "error", "status": 400, "code": "InsufficientBalance"},
        // One lost request: nothing applied, no answer; re-sent with the same ClientToken.
        {"action": "RenewDedicatedHosts", "hosts": ["dh-auto-3"], "kind": "reset", "count": 1}
    ]));
    // Renewed by the cloud's own auto-renew as well: must be skipped, never paid here.
    cloud.add(
        json!([{"DedicatedHostId": "dh-both", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid",
        "ExpiredTime": "2026-12-13T16:00Z", "RenewalStatus": "AutoRenewal", "Duration": 1}]),
    );
    env.import(FLEET);
    env.import(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status
dh-both,cn-hangzhou,2026-12-13T16:00Z,PrePaid,AutoRenewal
",
    );
    env.run(&["sync"]).expect(0);

    let mut first_renewal: BTreeMap<String, String> = BTreeMap::new();
    for d in -2..=12 {
        let at = day(d);
        let r = tick(cloud, env, &at);
        assert!(r["config_error"].is_null(), "{at}: {r}");
        for id in r["renewed"].as_array().unwrap() {
            first_renewal
                .entry(id.as_str().unwrap().to_owned())
                .or_insert(at.clone());
        }
    }
    let ledger = ledger_by_host(cloud);
    // AutoRenewal hosts: renewed exactly once, at their first window.
    for (id, first) in [("dh-auto-1", 2), ("dh-auto-2", 2), ("dh-auto-3", 6)] {
        assert_eq!(
            ledger[id].len(),
            1,
            "{id} renewed exactly once: {:?}",
            ledger[id]
        );
        assert_eq!(
            first_renewal[id],
            day(first),
            "{id} renewed at its first window"
        );
    }
    assert_eq!(
        ledger["dh-auto-1"][0]["ExpiredTimeAfter"],
        "2027-01-10T16:00Z"
    );
    assert_eq!(
        ledger["dh-auto-2"][0]["ExpiredTimeAfter"],
        "2027-12-11T01:00Z"
    );
    assert_eq!(
        ledger["dh-auto-3"][0]["ExpiredTimeAfter"],
        "2026-12-28T16:00Z"
    );
    // Normal, NotRenewal and PostPaid: never.
    for id in ["dh-normal", "dh-notrenew", "dh-post"] {
        assert!(!ledger.contains_key(id), "{id} must not be renewed");
    }
    // InsufficientBalance for 3 windows, renewed on the 4th, with a new token each window.
    assert_eq!(ledger["dh-poor"].len(), 1);
    assert_eq!(first_renewal["dh-poor"], day(7));
    let attempts = env.json(&["audit", "attempts", "--host", "dh-poor", "--json"]);
    let rows = attempts.as_array().unwrap();
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "renewed"]);
    let tokens: std::collections::HashSet<&str> = rows
        .iter()
        .map(|a| a["client_token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens.len(), 4, "a new ClientToken every window");
    assert_eq!(rows[3]["client_token"], ledger["dh-poor"][0]["ClientToken"]);
    assert_eq!(rows[0]["code"], "InsufficientBalance");
    // For people: a compact table by default, every column on request, a clear error for a typo.
    let table = env
        .run(&["audit", "attempts", "--host", "dh-poor"])
        .expect(0);
    let widest = table.stdout.lines().map(str::len).max().unwrap_or(0);
    assert!(
        widest < 200,
        "compact rows ({widest} wide):\n{}",
        table.stdout
    );
    assert!(!table.stdout.contains("params"), "{}", table.stdout);
    let chosen = env
        .run(&[
            "audit",
            "attempts",
            "--host",
            "dh-poor",
            "--columns",
            "attempt_id,code",
            "--csv",
        ])
        .expect(0);
    assert_eq!(chosen.stdout.lines().next(), Some("attempt_id,code"));
    assert_eq!(chosen.stdout.lines().count(), 5, "{}", chosen.stdout);
    let all = env
        .run(&["audit", "attempts", "--host", "dh-poor", "--columns", "all"])
        .expect(0);
    assert!(all.stdout.lines().next().unwrap().ends_with("params"));
    let typo = env
        .run(&["audit", "attempts", "--columns", "attempt_id,outcme"])
        .expect(2);
    assert!(
        typo.stderr.contains("no column \"outcme\"") && typo.stderr.contains("outcome"),
        "{}",
        typo.stderr
    );

    // Never payable: one attempt per window Dec 1..9, then it lapses once; nothing after.
    assert!(!ledger.contains_key("dh-never"));
    let never = env.json(&["audit", "attempts", "--host", "dh-never", "--json"]);
    assert_eq!(never.as_array().unwrap().len(), 9, "{never}");
    let notices = env.json(&["audit", "notices", "--json"]);
    let of = |kind: &str, host: &str| -> Vec<String> {
        notices
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == kind && n["host_id"] == host)
            .map(|n| n["day"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(of("lapsed", "dh-never"), ["2026-12-10"]);
    assert_eq!(of("renewal_failed", "dh-never").len(), 9);
    assert_eq!(
        of("renewal_failed", "dh-poor"),
        ["2026-12-04", "2026-12-05", "2026-12-06"]
    );
    assert_eq!(of("renewed", "dh-auto-1"), ["2026-12-02"]);
    // NotRenewal: one notice at the window three days before expiry (expires Dec 10 00:00 UTC+8).
    assert_eq!(of("not_renewing", "dh-notrenew"), ["2026-12-07"]);
    // Normal: reminders 7, 3 and 1 days before expiry (Dec 9 00:00 UTC+8).
    assert_eq!(
        of("expiry_reminder", "dh-normal"),
        ["2026-12-02", "2026-12-06", "2026-12-08"]
    );
    assert!(
        of("expiry_reminder", "dh-auto-1").is_empty() && of("not_renewing", "dh-normal").is_empty()
    );
    // Every window was recorded.
    let windows = env.json(&["audit", "windows", "--json"]);
    assert_eq!(windows.as_array().unwrap().len(), 15);
    // Plan agrees after the run.
    let plan = env.json(&["plan", "--json", "--at", &day(12)]);
    let state = |id: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|p| p["host_id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("dh-auto-1"), "renewed");
    assert_eq!(state("dh-never"), "lapsed");
}

fn metrics_after(cloud: &Cloud, env: &Env) {
    // A scrape of /metrics after the fifteen days passes promtool's lint.
    let text = cloud.rt.block_on(async {
        let store = ddh_renewd::store::Store::open(&env.db, Default::default())
            .await
            .unwrap();
        let mut config = ddh_renewd::config::Config::default();
        config.ecs.endpoint = cloud.emu().endpoint();
        let client = std::sync::Arc::new(
            ddh_renewd::ecs::EcsClient::new(
                &ddh_renewd::app::client_options(&config.ecs),
                ddh_renewd::ecs::Credentials::new(common::TEST_KEY_ID, common::TEST_SECRET),
            )
            .unwrap(),
        );
        let ops = ddh_renewd::ops::OpsState {
            store: store.clone(),
            health: std::sync::Arc::new(ddh_renewd::ops::Health::default()),
            client,
            schedule: Default::default(),
            clock: std::sync::Arc::new(ddh_renewd::engine::SettableClock::new(
                ddh_renewd::domain::time::parse_instant(&day(12)).unwrap(),
            )),
        };
        let text = ddh_renewd::ops::metrics::render(&ops).await.unwrap();
        store.close().await;
        text
    });
    assert!(
        text.contains("ddh_renewd_attempt_hosts_total{outcome=\"renewed\"}"),
        "{text}"
    );
    common::promtool_check(&text);
    // Every metric the shipped alerts and dashboard name is one this scrape exports.
    let families: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for file in [
        "contrib/prometheus/ddh-renewd.rules.yml",
        "contrib/grafana/ddh-renewd.json",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let body = std::fs::read_to_string(&path).unwrap();
        let mut named = 0;
        for (at, _) in body.match_indices("ddh_renewd_") {
            let name: String = body[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(f)))
                .unwrap_or(&name);
            assert!(
                families.contains(family),
                "{file} names {name}, which /metrics does not export"
            );
            named += 1;
        }
        assert!(named > 10, "{file}: only {named} metric names found");
    }
}

#[test]
fn a_bad_host_is_isolated_and_the_rest_renewed_in_the_same_window() {
    let cloud = Cloud::start();
    let mut hosts = Vec::new();
    let mut csv =
        String::from("dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n");
    for i in 0..20 {
        hosts.push(json!({"DedicatedHostId": format!("dh-b{i:02}"), "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2026-12-10T16:00Z"}));
        csv.push_str(&format!(
            "dh-b{i:02},cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal\n"
        ));
    }
    cloud.add(Value::Array(hosts));
    cloud.faults(1, json!([{"action": "RenewDedicatedHosts", "hosts": ["dh-b13"], "kind": "error", "status": 403, "code": "IncorrectHostStatus"}]));
    let env = cloud.env("");
    env.import(&csv);
    let r = tick(&cloud, &env, &day(3));
    assert_eq!(r["renewed"].as_array().unwrap().len(), 19, "{r}");
    assert_eq!(r["failed"], json!(["dh-b13"]));
    let ledger = ledger_by_host(&cloud);
    assert_eq!(ledger.len(), 19);
    assert!(ledger.values().all(|v| v.len() == 1));
    // The failed host is tried again in the next window, alone, with a new token.
    cloud.faults(1, json!([]));
    let r = tick(&cloud, &env, &day(4));
    assert_eq!(r["renewed"], json!(["dh-b13"]));
    assert_eq!(ledger_by_host(&cloud).len(), 20);
}

#[test]
fn a_pass_twice_in_one_window_sends_nothing_twice_and_dry_run_sends_nothing() {
    let cloud = Cloud::start();
    cloud.add(cloud_fleet());
    let env = cloud.env("");
    env.import(FLEET);
    let dry = env.json(&[
        "tick",
        "--virtual-clock",
        "--at",
        &day(2),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry["due"], json!(["dh-auto-1", "dh-auto-2", "dh-never"]));
    assert!(cloud.ledger().is_empty(), "dry run sends nothing");
    tick(&cloud, &env, &day(2));
    let again = tick(&cloud, &env, &day(2).replace("08:00:00", "09:30:00"));
    assert!(again["due"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(
        cloud.ledger().len(),
        3,
        "dh-never has no payment fault here, so three renewed"
    );
    // Renewed by hand outside ddh-renewd: recorded, not sent.
    cloud.emu().with_state(|s| {
        let h = s.hosts.get_mut("dh-auto-3").unwrap();
        h.host.expired_time = ddh_renewd::domain::time::parse_instant("2027-01-14T16:00Z").unwrap();
    });
    let r = tick(&cloud, &env, &day(6));
    assert_eq!(r["already_renewed"], json!(["dh-auto-3"]));
    assert_eq!(
        r["renewed"],
        json!(["dh-poor"]),
        "due since Dec 4, renewed at this pass"
    );
    assert!(
        cloud
            .ledger()
            .iter()
            .all(|e| e["DedicatedHostId"] != "dh-auto-3"),
        "nothing sent for the host renewed by hand"
    );
}

#[test]
fn manual_renew_validates_then_goes_through_the_engine() {
    let cloud = Cloud::start();
    cloud.add(cloud_fleet());
    let env = cloud.env("");
    env.import(FLEET);
    let r = env
        .run(&[
            "renew",
            "--region",
            "cn-hangzhou",
            "--ids",
            "dh-normal,dh-post",
            "--period",
            "1",
        ])
        .expect(3);
    assert!(
        r.stderr.starts_with("ChargeTypeViolation: "),
        "{}",
        r.stderr
    );
    let r = env
        .run(&[
            "renew",
            "--region",
            "cn-hangzhou",
            "--ids",
            "dh-normal",
            "--period",
            "10",
        ])
        .expect(3);
    assert!(
        r.stderr.starts_with("InvalidPeriod: ")
            && r.stderr
                .contains("1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 24, 36, 48, 60"),
        "{}",
        r.stderr
    );
    assert!(cloud.ledger().is_empty());
    let out = env.json(&[
        "renew",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-normal",
        "--period",
        "2",
        "--client-token",
        "ops-ticket-4711",
        "--json",
    ]);
    assert_eq!(out["renewed"], json!(["dh-normal"]));
    let l = cloud.ledger();
    assert_eq!(
        (l.len(), l[0]["ClientToken"].as_str()),
        (1, Some("ops-ticket-4711"))
    );
    assert_eq!(l[0]["ExpiredTimeAfter"], "2027-02-08T16:00Z");
    let show = env.json(&["hosts", "show", "dh-normal", "--json"]);
    assert_eq!(show["host"]["expired_time"], "2027-02-08T16:00:00Z");
    // The same ticket again is refused rather than paid twice.
    let r = env.run(&[
        "renew",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-normal",
        "--period",
        "2",
        "--client-token",
        "ops-ticket-4711",
    ]);
    // Refused by the window guard first: the cycle it would pay for was just renewed.
    let r = r.expect(1);
    assert!(r.stderr.contains("not renewed: dh-normal"), "{}", r.stderr);
    assert!(
        r.stdout.contains("no window of this cycle is open yet") && r.stdout.contains("--force"),
        "{}",
        r.stdout
    );
    // --force lifts that guard, not the token's: the ticket's token stays with its attempt.
    let r = env
        .run(&[
            "renew",
            "--region",
            "cn-hangzhou",
            "--ids",
            "dh-normal",
            "--period",
            "2",
            "--client-token",
            "ops-ticket-4711",
            "--force",
            "--yes",
        ])
        .expect(1);
    assert!(
        r.stderr
            .contains("not sent: ClientToken ops-ticket-4711 was used by an earlier attempt"),
        "{}\n{}",
        r.stderr,
        r.stdout
    );
    assert_eq!(cloud.ledger().len(), 1);
}

#[test]
fn manual_renew_with_a_token_records_a_renewal_made_elsewhere() {
    let cloud = Cloud::start();
    cloud.add(cloud_fleet());
    let env = cloud.env("");
    env.import(FLEET);
    // Renewed by hand in the console: the cloud's expiry moved, the inventory does not know yet.
    cloud.emu().with_state(|s| {
        let h = s.hosts.get_mut("dh-notrenew").unwrap();
        h.host.expired_time = ddh_renewd::domain::time::parse_instant("2027-01-09T16:00Z").unwrap();
    });
    let out = env.json(&[
        "renew",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-notrenew",
        "--period",
        "1",
        "--client-token",
        "ops-ticket-9",
        "--json",
    ]);
    assert_eq!(out["already_renewed"], json!(["dh-notrenew"]), "{out}");
    assert!(cloud.ledger().is_empty(), "nothing sent");
    let show = env.json(&["hosts", "show", "dh-notrenew", "--json"]);
    assert_eq!(
        show["host"]["expired_time"], "2027-01-09T16:00:00Z",
        "the new expiry is recorded"
    );
}

#[test]
fn one_actor_per_database() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    env.import(FLEET);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, actor) = rt
        .block_on(ddh_renewd::engine::take_database(
            &ddh_renewd::store::Location::Sqlite(env.db.clone()),
            Default::default(),
        ))
        .unwrap();
    let r = env
        .run(&["tick", "--virtual-clock", "--at", &day(2)])
        .expect(1);
    assert!(
        r.stderr.contains("already acting on")
            && r.stderr.contains(&std::process::id().to_string()),
        "{}",
        r.stderr
    );
    rt.block_on(store.close());
    drop(actor);
    env.run(&["tick", "--virtual-clock", "--at", &day(2)])
        .expect(0);
}

/// Extracts the ```sql blocks of docs/audit.md and runs each with `sqlite3 -readonly` while a
/// writer adds hosts to the same database.
fn run_audit_queries(env: &Env) {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit.md")).unwrap();
    let queries: Vec<String> = doc
        .split("```sql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim().to_owned())
        .collect();
    assert_eq!(queries.len(), 10, "docs/audit.md has ten queries");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, config) = (stop.clone(), env.config.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 500 {
                let out = std::process::Command::new(common::bin())
                    .arg("--config")
                    .arg(&config)
                    .args([
                        "hosts",
                        "add",
                        "--id",
                        &format!("dh-writer-{n}"),
                        "--region",
                        "cn-hangzhou",
                        "--expired-time",
                        "2027-03-01T16:00Z",
                    ])
                    .output()
                    .expect("writer");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut outputs = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        // The simulation runs from late November 2026: query 1 is given those two months, 9 a
        // horizon that takes in every host, 10 a host.
        let out = std::process::Command::new("sqlite3")
            .args(["-readonly", "-bail", "-cmd", ".timeout 5000"])
            .args(["-cmd", ".parameter set @since \"'2026-11-01'\""])
            .args(["-cmd", ".parameter set @until \"'2027-01-01'\""])
            .args(["-cmd", ".parameter set @host \"'dh-auto-1'\""])
            .args(["-cmd", ".parameter set @days 36500"])
            .arg(&env.db)
            .arg(q)
            .output()
            .expect("sqlite3 CLI (apt-get install sqlite3)");
        assert!(
            out.status.success(),
            "query {} failed: {}\n{q}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer was active");
    println!(
        "audit queries: 10 ran while a writer added {written} hosts; rows: {:?}",
        outputs
            .iter()
            .map(|o| o.lines().count())
            .collect::<Vec<_>>()
    );
    let rows = |i: usize| -> Vec<Vec<&str>> {
        outputs[i - 1]
            .lines()
            .map(|l| l.split('|').collect())
            .collect()
    };
    // 1: the four renewals of the period, each with its RequestId and ClientToken.
    let q1 = rows(1);
    let renewed: Vec<&str> = q1.iter().map(|r| r[1]).collect();
    assert_eq!(
        renewed,
        ["dh-auto-1", "dh-auto-2", "dh-auto-3", "dh-poor"],
        "{}",
        outputs[0]
    );
    assert!(
        q1.iter()
            .all(|r| r[6].len() == 36 && r[7].starts_with("ddh1-"))
    );
    // 2: the one lapse, with its notice.
    let q2 = rows(2);
    assert_eq!(q2.len(), 1, "{}", outputs[1]);
    assert_eq!(q2[0][..2], ["dh-never", "2026-12-09T16:00:00Z"]);
    assert!(q2[0][3].contains("without a renewal"), "{}", outputs[1]);
    // 3: the lost request, re-sent once with the same ClientToken, then renewed.
    let q3 = rows(3);
    assert_eq!(q3.len(), 1, "{}", outputs[2]);
    assert_eq!(
        (q3[0][3], q3[0][5]),
        ("2", "dh-auto-3: renewed"),
        "{}",
        outputs[2]
    );
    // 4: every policy came from the import.
    let q4: Vec<String> = rows(4).iter().map(|r| r[..4].join("|")).collect();
    assert_eq!(
        q4,
        [
            "import|hosts_import|AutoRenewal|6",
            "import|hosts_import|Normal|1",
            "import|hosts_import|NotRenewal|1"
        ]
    );
    // 5: the host renewed by the cloud's auto-renew as well.
    let q5 = rows(5);
    assert_eq!(q5.len(), 1, "{}", outputs[4]);
    assert_eq!(q5[0][0], "dh-both");
    // 6: the guarantee: nothing paid twice, nothing forced.
    assert!(
        outputs[5].trim().is_empty(),
        "no cycle renewed twice:\n{}",
        outputs[5]
    );
    // 7: 9 windows of dh-never and 3 of dh-poor refused for balance.
    let q7 = rows(7);
    assert!(
        q7.iter().all(|r| r[1] == "InsufficientBalance"),
        "{}",
        outputs[6]
    );
    let refused: usize = q7.iter().map(|r| r[2].parse::<usize>().unwrap()).sum();
    assert_eq!(refused, 12, "{}", outputs[6]);
    // 8: the nine windows with a failure (Dec 1..9, while dh-never was refused).
    let q8 = rows(8);
    assert_eq!(q8.len(), 9, "{}", outputs[7]);
    assert!(q8.iter().all(|r| r[9] == "failures"), "{}", outputs[7]);
    // 9: relative to now, so checked against `plan` at now; the writer's hosts are left out of
    // both sides.
    let q9: std::collections::BTreeSet<&str> = rows(9)
        .iter()
        .map(|r| r[0])
        .filter(|h| !h.starts_with("dh-writer"))
        .collect();
    let horizon = chrono::Utc::now() + chrono::Duration::days(36_500);
    let plan = env.json(&["plan", "--json"]);
    let expected: std::collections::BTreeSet<&str> = plan
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            [
                "due",
                "scheduled",
                "renewed",
                "not_managed",
                "undecided",
                "blocked",
            ]
            .contains(&p["state"].as_str().unwrap())
                && ddh_renewd::domain::time::parse_instant(p["expired_time"].as_str().unwrap())
                    .unwrap()
                    < horizon
        })
        .map(|p| p["host_id"].as_str().unwrap())
        .filter(|h| !h.starts_with("dh-writer"))
        .collect();
    assert_eq!(q9, expected, "query 9 agrees with plan:\n{}", outputs[8]);
    // 10: dh-auto-1's story: imported with its policy, renewed once, notified.
    let q10: Vec<String> = rows(10).iter().map(|r| r[1..].join("|")).collect();
    for want in [
        "host added|",
        "policy|(none) -> AutoRenewal",
        "host updated|expired_time: 2026-12-10T16:00:00Z -> 2027-01-10T16:00:00Z",
    ] {
        assert!(q10.iter().any(|l| l == want), "{want}:\n{}", outputs[9]);
    }
    assert!(
        q10.iter()
            .any(|l| l.starts_with("attempt ") && l.contains("|renewed token ddh1-"))
            && q10.iter().any(|l| l.starts_with("notice renewed|")),
        "story of dh-auto-1:\n{}",
        outputs[9]
    );
}

/// The ```sql (SQLite) or ```postgresql blocks of docs/audit.md.
fn audit_queries(fence: &str) -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit.md")).unwrap();
    doc.split(&format!("```{fence}\n"))
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim().to_owned())
        .collect()
}

/// A query's rows as a sorted list of JSON objects; the comma lists of `hosts`, `tokens` and
/// `which` sorted too (neither group_concat nor string_agg promises an order).
fn answer_set(json: &str) -> Vec<String> {
    let rows: Vec<serde_json::Map<String, Value>> = if json.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"))
    };
    let mut out: Vec<String> = rows
        .into_iter()
        .map(|mut r| {
            for k in ["hosts", "tokens", "which"] {
                if let Some(Value::String(list)) = r.get(k) {
                    let mut items: Vec<&str> = list.split(',').collect();
                    items.sort_unstable();
                    let sorted = items.join(",");
                    r.insert(k.into(), Value::String(sorted));
                }
            }
            Value::Object(r).to_string()
        })
        .collect();
    out.sort();
    out
}

/// `db copy` moves the 15-day database into a throw-away PostgreSQL cluster (checked row for
/// row by the command itself); a second copy into it is refused; then each of the ten queries
/// of docs/audit.md gives the same rows in its PostgreSQL form as in its SQLite form.
fn postgres_gives_the_same_answers(env: &Env) {
    let Some(pg) = common::pg::Postgres::start() else {
        return;
    };
    pg.create_db("ddh");
    let url = pg.url("ddh");
    // A host inside its windows now (the simulation's are all past or ahead), so that v_hosts'
    // next window is computed from the day count on both sides.
    let expiry = (chrono::Utc::now() + chrono::Duration::days(5)).format("%Y-%m-%dT%H:%MZ");
    env.import(&format!(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n\
         dh-due-now,cn-hangzhou,{expiry},PrePaid,AutoRenewal\n"
    ));
    let copy = |json: bool| {
        let mut args = vec!["db", "copy", "--to", url.as_str()];
        if json {
            args.push("--json");
        }
        common::Run::from_output(
            env.command(&args)
                .env("PGPASSWORD", common::pg::PASSWORD)
                .output()
                .expect("db copy"),
        )
    };
    // Not beside a daemon: what it wrote after the copy's snapshot would be lost.
    let daemon = ddh_renewd::engine::ActorLock::acquire(&env.db).unwrap();
    let refused = copy(false).expect(1);
    assert!(
        refused.stderr.contains("stop it before copying"),
        "{}",
        refused.stderr
    );
    drop(daemon);
    let first = copy(true).expect(0);
    let report: Value = serde_json::from_str(&first.stdout).unwrap();
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 21, "{report}");
    let rows_of = |t: &str| {
        tables.iter().find(|x| x["table"] == t).unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert!(rows_of("attempts") > 0 && rows_of("attempt_events") > 0 && rows_of("hosts") > 9);
    let again = copy(false).expect(1);
    assert!(
        again.stderr.contains("already holds ddh-renewd data"),
        "{}",
        again.stderr
    );
    // The append-only rules hold on PostgreSQL too, for every client.
    let denied = pg.psql("ddh", "UPDATE attempts SET params = ''");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("append-only"));
    // The auditor role of contrib/postgres reads everything and changes nothing.
    let role = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/postgres/auditor-role.sql"
    );
    let made = pg.psql_as(
        common::pg::USER,
        common::pg::PASSWORD,
        "ddh",
        &["-f", role],
        &[],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        pg.psql("ddh", "ALTER ROLE ddh_auditor PASSWORD 'audit-pw'")
            .status
            .success()
    );
    let auditor = |sql: &str| pg.psql_as("ddh_auditor", "audit-pw", "ddh", &["-c", sql], &[]);
    let read = auditor("SELECT count(*) FROM v_attempts");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    for write in [
        "INSERT INTO meta (key, value) VALUES ('x', 'y')",
        "UPDATE hosts SET status = 'x'",
        "SET default_transaction_read_only = off; DELETE FROM policies",
    ] {
        let out = auditor(write);
        assert!(!out.status.success(), "the auditor could run {write}");
    }

    // Every view has the same columns in the same order on both.
    for view in [
        "v_hosts",
        "v_attempts",
        "v_policy_changes",
        "v_notices",
        "v_notice_deliveries",
        "v_windows",
    ] {
        let out = std::process::Command::new("sqlite3")
            .args(["-readonly"])
            .arg(&env.db)
            .arg(format!(
                "SELECT group_concat(name, ',') FROM pragma_table_info('{view}')"
            ))
            .output()
            .expect("sqlite3");
        let lite = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let out = pg.psql(
            "ddh",
            &format!(
                "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) \
                 FROM information_schema.columns WHERE table_name = '{view}'"
            ),
        );
        let post = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!lite.is_empty(), "{view} has columns");
        assert_eq!(
            lite, post,
            "{view}: the same columns on SQLite and PostgreSQL"
        );
    }
    let (lite, post) = (audit_queries("sql"), audit_queries("postgresql"));
    assert_eq!(
        (lite.len(), post.len()),
        (10, 10),
        "ten queries in each dialect"
    );
    let mut answered = 0;
    for (i, (l, p)) in lite.iter().zip(&post).enumerate() {
        let out = std::process::Command::new("sqlite3")
            .args(["-readonly", "-bail", "-json"])
            .args(["-cmd", ".parameter set @since \"'2026-11-01'\""])
            .args(["-cmd", ".parameter set @until \"'2027-01-01'\""])
            .args(["-cmd", ".parameter set @host \"'dh-auto-1'\""])
            .args(["-cmd", ".parameter set @days 36500"])
            .arg(&env.db)
            .arg(l)
            .output()
            .expect("sqlite3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sqlite = answer_set(&String::from_utf8_lossy(&out.stdout));
        let wrapped = format!(
            "SELECT coalesce(json_agg(q), '[]'::json) FROM ({}) AS q",
            p.trim_end_matches(';')
        );
        let settings = "-c ddh.since=2026-11-01 -c ddh.until=2027-01-01 -c ddh.host=dh-auto-1 -c ddh.days=36500";
        let out = pg.psql_with("ddh", &wrapped, &[("PGOPTIONS", settings)]);
        assert!(
            out.status.success(),
            "PostgreSQL query {} failed: {}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        let postgres = answer_set(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(sqlite, postgres, "query {} answers differently", i + 1);
        answered += usize::from(!sqlite.is_empty());
    }
    // Query 6 (the guarantee) must be empty; the nine others all have rows here.
    assert_eq!(
        answered, 9,
        "nine of the ten queries have rows on this database"
    );
    println!(
        "db copy: {} rows in 21 tables; the ten audit queries answer the same on SQLite and PostgreSQL",
        report["rows"]
    );
}
