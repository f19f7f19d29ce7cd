//! Webhook delivery of notices: receiver down, then up; nothing lost, nothing sent twice, also
//! across a restart; the URL's token is never stored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::{Duration, Utc};
use ddh_renewd::config::Config;
use ddh_renewd::domain::protocol::NoticeKind;
use ddh_renewd::ops::notify::Notifier;
use ddh_renewd::store::{NoticeRow, Store};
use serde_json::Value;

type Seen = Arc<Mutex<HashMap<i64, (usize, String)>>>;

async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: String) -> &'static str {
    let v: Value = serde_json::from_str(&body).expect("JSON body");
    let id = v["notice_id"].as_i64().expect("notice_id");
    let key = headers
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut s = seen.lock().unwrap();
    let e = s.entry(id).or_insert((0, key));
    e.0 += 1;
    "ok"
}

fn webhook(port: u16) -> Notifier {
    let text = format!("[notify]\nwebhook_url = \"http://127.0.0.1:{port}/hooks/T0KEN-s3cret\"\n");
    let channels = Config::parse(&text, "test").unwrap().notify.channels;
    Notifier::new(channels, std::time::Duration::from_secs(2)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn receiver_down_then_up_nothing_lost_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let store = Store::open(&db, Default::default()).await.unwrap();
    let now = Utc::now();
    let mut rows: Vec<NoticeRow> = (0..5)
        .map(|i| NoticeRow {
            host_id: format!("dh-w{i}"),
            cycle: "2026-12-10T16:00:00Z".into(),
            kind: NoticeKind::Renewed,
            message: format!("dh-w{i} renewed"),
        })
        .collect();
    rows.push(NoticeRow {
        host_id: "-".into(),
        cycle: "-".into(),
        kind: NoticeKind::ConfigError,
        message: "SignatureDoesNotMatch".into(),
    });
    assert_eq!(store.notices_now(&rows, now).await.unwrap(), 6);
    // A port with nothing behind it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = webhook(port);

    let r = hook.deliver_pending(&store, now).await.unwrap();
    assert_eq!((r.delivered, r.failed), (0, 6), "receiver down: {r:?}");
    let r = hook
        .deliver_pending(&store, now + Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!((r.failed, r.waiting), (0, 6), "backing off: {r:?}");

    // The receiver comes up.
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/hooks/{token}", post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = hook
        .deliver_pending(&store, now + Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (6, 0), "{r:?}");
    let r = hook
        .deliver_pending(&store, now + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(
        (r.delivered, r.failed, r.waiting),
        (0, 0, 0),
        "nothing left: {r:?}"
    );
    store.close().await;

    // A restart: a new store and a new deliverer send nothing again.
    let store = Store::open(&db, Default::default()).await.unwrap();
    let hook = webhook(port);
    let r = hook
        .deliver_pending(&store, now + Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(r.delivered + r.failed, 0);
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.len(), 6);
        for (id, (count, key)) in s.iter() {
            assert_eq!(*count, 1, "notice {id} delivered once");
            assert_eq!(key, &format!("ddh-renewd-notice-{id}"));
        }
    }
    // The audit shows tries and delivery; the token never reached the database.
    let (cols, rows) = store
        .audit_all(ddh_renewd::store::AuditKind::Notices, None, None)
        .await
        .unwrap();
    let tries = cols.iter().position(|c| c == "delivery_tries").unwrap();
    let delivered = cols.iter().position(|c| c == "delivered_at").unwrap();
    assert!(
        rows.iter()
            .all(|r| r[tries] == 2 && !r[delivered].is_null()),
        "{rows:?}"
    );
    store.close().await;
    let bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(dir.path().join("w.db-wal")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("T0KEN")
            && !String::from_utf8_lossy(&wal).contains("T0KEN")
    );
    server.abort();
}
