//! The store suite, run on both backends: SQLite (a temp file) and PostgreSQL (a throw-away
//! cluster). The same inventory operations through the real binary must leave the same answers
//! on both; the protocol's fence and token rules and the database's own rules (append-only
//! history, never-deleted hosts, the row version) must hold on both.

mod common;

use chrono::{TimeZone, Utc};
use common::Env;
use common::pg::Postgres;
use ddh_renewd::domain::protocol::{AttemptKind, EventKind, NoticeKind, PassResult, Trigger};
use ddh_renewd::domain::{ClientToken, HostId, Period, PeriodUnit};
use ddh_renewd::store::deliveries::DeliveryTry;
use ddh_renewd::store::{
    Event, Location, NewAttempt, NoticeRow, Store, WindowRun, WriteAheadError,
};
use serde_json::Value;

/// Both backends (PostgreSQL where installed; CI requires it).
fn backends(pg: Option<&Postgres>) -> Vec<(&'static str, Env)> {
    let mut v = vec![("sqlite", Env::new())];
    if let Some(pg) = pg {
        pg.create_db("inventory");
        v.push(("postgres", Env::on_postgres(pg, "inventory", "")));
    }
    v
}

/// Where the backend `name` of [`backends`] keeps `env`'s store.
fn location(name: &str, env: &Env, pg: Option<&Postgres>) -> Location {
    match pg {
        Some(pg) if name == "postgres" => Location::Postgres {
            url: pg.url("inventory"),
            password: Some(common::pg::PASSWORD.into()),
        },
        _ => Location::Sqlite(env.db.clone()),
    }
}

/// A JSON answer without the fields that record when it was made.
fn timeless(mut v: Value) -> Value {
    match &mut v {
        Value::Array(a) => a.iter_mut().for_each(|x| *x = timeless(x.take())),
        Value::Object(o) => {
            o.retain(|k, _| !k.ends_with("_at") && k != "at" && k != "op_id");
            o.values_mut().for_each(|x| *x = timeless(x.take()));
        }
        _ => {}
    }
    v
}

#[test]
fn the_inventory_answers_the_same_on_both_backends() {
    let pg = Postgres::start();
    let mut answers: Vec<(&str, Vec<Value>)> = Vec::new();
    for (name, env) in backends(pg.as_ref()) {
        // 2,500 hosts: more than one page of every streamed read.
        env.import(&common::bulk_csv(2_500));
        env.run(&[
            "policy",
            "set",
            "--region",
            "cn-hangzhou",
            "--ids",
            "dh-bulk-000006,dh-bulk-000008",
            "--renewal-status",
            "NotRenewal",
        ])
        .expect(0);
        env.run(&["hosts", "remove", "dh-bulk-000009"]).expect(0);
        env.run(&["hosts", "remove", "dh-bulk-000009"]).expect(0);
        let restored = env.json(&[
            "hosts",
            "import",
            "--json",
            &env.write("again.csv", &common::bulk_csv(10))
                .display()
                .to_string(),
        ]);
        let list = env.json(&["hosts", "list", "--json"]);
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["host"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 2_500, "{name}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{name}: hosts in id order"
        );
        let plan = env.json(&["plan", "--json", "--at", "2026-12-20T00:00:00Z"]);
        answers.push((
            name,
            vec![
                timeless(restored),
                timeless(list),
                timeless(plan),
                timeless(env.json(&["audit", "policies", "--json"])),
                timeless(env.json(&["hosts", "show", "dh-bulk-000009", "--json"])),
            ],
        ));
    }
    if answers.len() == 2 {
        for (i, what) in [
            "import",
            "hosts list",
            "plan",
            "audit policies",
            "hosts show",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                answers[0].1[i], answers[1].1[i],
                "{what} differs between SQLite and PostgreSQL"
            );
        }
        println!("store suite: the same inventory answers on SQLite and PostgreSQL");
    }
}

fn attempt(token: &str, at: chrono::DateTime<Utc>) -> NewAttempt<'static> {
    NewAttempt {
        kind: AttemptKind::Scheduled,
        window_at: at,
        region_id: "cn-hangzhou",
        period: Period {
            n: 1,
            unit: PeriodUnit::Month,
        },
        client_token: ClientToken::parse(token).unwrap(),
        params: vec![("DedicatedHostIds".into(), "[\"dh-bulk-000000\"]".into())],
        parent: None,
        hosts: vec![(
            HostId::parse("dh-bulk-000000").unwrap(),
            at + chrono::Duration::days(5),
        )],
        forced: false,
    }
}

#[test]
fn the_fence_the_token_and_the_databases_own_rules_hold_on_both_backends() {
    let pg = Postgres::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (name, env) in backends(pg.as_ref()) {
        env.import(&common::bulk_csv(3));
        let at = location(name, &env, pg.as_ref());
        rt.block_on(async {
            let store = Store::open_at(&at, Default::default()).await.unwrap();
            let now = Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap();
            let old = store.claim_epoch(1, now).await.unwrap();
            let new = store.claim_epoch(2, now).await.unwrap();
            assert!(new.get() > old.get(), "{name}");
            // A fenced actor opens nothing; the current one does, once per token.
            let e = store
                .write_ahead(old, attempt("ddh1-fence-a", now), now)
                .await
                .unwrap_err();
            assert!(matches!(e, WriteAheadError::Fenced { .. }), "{name}: {e}");
            let a = store
                .write_ahead(new, attempt("ddh1-fence-a", now), now)
                .await
                .unwrap();
            let e = store
                .write_ahead(new, attempt("ddh1-fence-a", now), now)
                .await
                .unwrap_err();
            assert!(matches!(e, WriteAheadError::TokenInUse(_)), "{name}: {e}");
            let sent = Event {
                kind: EventKind::Sent,
                http_status: None,
                code: None,
                message: None,
                request_id: None,
            };
            store.record_event(a.attempt_id, sent, now).await.unwrap();
            let open = store.open_attempts().await.unwrap();
            assert_eq!(open.len(), 1, "{name}");
            assert_eq!(open[0].client_token.as_str(), "ddh1-fence-a");
            assert_eq!(open[0].hosts, a.hosts, "{name}");
            let s = store.attempt_summaries(&[a.attempt_id]).await.unwrap();
            assert_eq!((s[0].sends, s[0].outcome.as_str()), (1, "open"), "{name}");
            store.close().await;
        });
        // The database itself refuses to rewrite history, whoever asks.
        let refused = |sql: &str| -> bool {
            match &pg {
                Some(pg) if name == "postgres" => !pg.psql("inventory", sql).status.success(),
                _ => !std::process::Command::new("sqlite3")
                    .arg(&env.db)
                    .arg(sql)
                    .output()
                    .expect("sqlite3")
                    .status
                    .success(),
            }
        };
        for sql in [
            "UPDATE attempts SET params = ''",
            "DELETE FROM attempt_events",
            "DELETE FROM hosts WHERE host_id = 'dh-bulk-000001'",
            "UPDATE policy_changes SET source = 'x'",
            "DELETE FROM actor_epochs",
        ] {
            assert!(refused(sql), "{name}: {sql} was allowed");
        }
        assert!(!refused(
            "UPDATE hosts SET status = 'Available' WHERE host_id = 'dh-bulk-000001'"
        ));
        let version = env.json(&["hosts", "show", "dh-bulk-000001", "--json"]);
        assert_eq!(
            version["row_version"], 1,
            "{name}: any update moves the row version: {version}"
        );
    }
}

#[test]
fn notices_deliveries_windows_and_the_trail_count_the_same_on_both_backends() {
    let pg = Postgres::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut seen = Vec::new();
    for (name, env) in backends(pg.as_ref()) {
        env.import(&common::bulk_csv(3));
        let at = location(name, &env, pg.as_ref());
        let counts = rt.block_on(async {
            let store = Store::open_at(&at, Default::default()).await.unwrap();
            let now = Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap();
            let notice = |host: &str, kind| NoticeRow {
                host_id: host.into(),
                cycle: "2026-12-20T00:00:00Z".into(),
                kind,
                message: format!("{host} needs a look"),
            };
            let rows = [
                notice("dh-bulk-000000", NoticeKind::RenewalFailed),
                notice("dh-bulk-000001", NoticeKind::Renewed),
                notice("dh-bulk-000002", NoticeKind::ExpiryReminder),
            ];
            // Once per host, cycle, kind and day.
            assert_eq!(store.notices_now(&rows, now).await.unwrap(), 3, "{name}");
            assert_eq!(store.notices_now(&rows, now).await.unwrap(), 0, "{name}");
            store
                .register_channel("oncall", "webhook", now - chrono::Duration::days(1), now)
                .await
                .unwrap();
            let pending = store
                .pending_notices("oncall", &["renewal_failed", "renewed"])
                .await
                .unwrap();
            let hosts: Vec<&str> = pending.iter().map(|p| p.host_id.as_str()).collect();
            assert_eq!(
                hosts,
                ["dh-bulk-000000", "dh-bulk-000001"],
                "{name}: only the kinds asked for"
            );
            let attempt = |id, delivered| DeliveryTry {
                notice_id: id,
                channel: "oncall",
                try_no: 1,
                at: now,
                http_status: Some(if delivered { 200 } else { 503 }),
                error: (!delivered).then_some("503 from the receiver"),
                delivered,
            };
            store
                .record_delivery(&attempt(pending[0].notice_id, false))
                .await
                .unwrap();
            store
                .record_delivery(&attempt(pending[1].notice_id, true))
                .await
                .unwrap();
            let left = store
                .pending_notices("oncall", &["renewal_failed", "renewed"])
                .await
                .unwrap();
            assert_eq!(
                (left.len(), left[0].tries),
                (1, 1),
                "{name}: the delivered one is done"
            );
            let run = WindowRun {
                window_at: "2026-12-06T00:00:00Z".into(),
                trigger: Trigger::Cron,
                started_at: "2026-12-06T00:00:00Z".into(),
                finished_at: "2026-12-06T00:00:05Z".into(),
                due: 3,
                renewed: 2,
                already_renewed: 0,
                failed: 1,
                lapsed: 0,
                attempts: 2,
                result: PassResult::Failures,
            };
            store.record_window_run(&run).await.unwrap();
            assert!(store.window_was_run(now).await.unwrap(), "{name}");
            let c = store.trail_counts().await.unwrap();
            let (_, notices) = store
                .audit_all(ddh_renewd::store::AuditKind::Notices, None, None)
                .await
                .unwrap();
            store.close().await;
            format!(
                "{:?} {:?} {:?} {:?} {}",
                c.notices,
                c.window_runs,
                c.deliveries,
                c.last_window,
                notices.len()
            )
        });
        seen.push(counts);
    }
    if seen.len() == 2 {
        assert_eq!(
            seen[0], seen[1],
            "the trail counts the same on SQLite and PostgreSQL"
        );
    }
}

#[test]
fn a_postgres_database_of_another_application_is_refused_untouched() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    pg.create_db("other");
    assert!(
        pg.psql("other", "CREATE TABLE customers (id int)")
            .status
            .success()
    );
    let env = Env::on_postgres(&pg, "other", "");
    let r = env.run(&["hosts", "list"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("not a ddh-renewd database") && r.stderr.contains("customers"),
        "{}",
        r.stderr
    );
    let out = pg.psql(
        "other",
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "nothing was created"
    );
}
