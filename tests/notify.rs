//! Notice channels against local receivers on loopback that check what the real services check:
//! DingTalk's and Feishu's HMAC signatures (recomputed here from their documented recipes, with
//! the timestamp's one-hour limit), WeCom's and Slack's URL tokens, and a real SMTP server
//! (Python's aiosmtpd) with AUTH, and with STARTTLS on a certificate of a test CA.
//! Receivers down, then up: each notice reaches each channel that routes its kind once, also
//! across a restart; secrets are never stored or printed.

mod common;

use common::free_port;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::post;
use base64::Engine as _;
use chrono::{Duration, Utc};
use ddh_renewd::config::Config;
use ddh_renewd::domain::protocol::NoticeKind;
use ddh_renewd::ops::notify::Notifier;
use ddh_renewd::store::{NoticeRow, Store};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const DING_TOKEN: &str = "DING-T0KEN-9f3a";
const DING_SECRET: &str = "SECding-s3cret-9f3a";
const LARK_TOKEN: &str = "LARK-T0KEN-9f3a";
const LARK_SECRET: &str = "lark-s3cret-9f3a";
const WECOM_KEY: &str = "WECOM-T0KEN-9f3a";
const SLACK_TOKEN: &str = "SLACK-T0KEN-9f3a";
const ONCALL_TOKEN: &str = "ONCALL-T0KEN-9f3a";
const SMTP_USER: &str = "ddh";
const SMTP_PASSWORD: &str = "smtp-s3cret-9f3a";
const ALL_SECRETS: &[&str] = &[
    DING_TOKEN,
    DING_SECRET,
    LARK_TOKEN,
    LARK_SECRET,
    WECOM_KEY,
    SLACK_TOKEN,
    ONCALL_TOKEN,
    SMTP_PASSWORD,
];

/// What the robots received: (robot, text), in order.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk: `POST /robot/send?access_token=…[&timestamp=<ms>&sign=<urlencoded base64>]`,
/// sign = HMAC-SHA256(secret, "<ms>\n<secret>"); the timestamp within an hour. Answers 200 with
/// `errcode` (310000: bad signature, 300001: unknown token), as the service does.
async fn dingtalk(
    State(seen): State<Seen>,
    Query(q): Query<BTreeMap<String, String>>,
    body: String,
) -> axum::Json<Value> {
    let token = q.get("access_token").map(String::as_str).unwrap_or("");
    let robot = match token {
        DING_TOKEN => "ding",
        ONCALL_TOKEN => "oncall",
        _ => return axum::Json(json!({"errcode": 300001, "errmsg": "token is not exist"})),
    };
    if robot == "ding" {
        let ts: i64 = q.get("timestamp").and_then(|t| t.parse().ok()).unwrap_or(0);
        let want = hmac_b64(
            DING_SECRET.as_bytes(),
            format!("{ts}\n{DING_SECRET}").as_bytes(),
        );
        let fresh = (Utc::now().timestamp_millis() - ts).abs() < 3_600_000;
        if !fresh || q.get("sign") != Some(&want) {
            return axum::Json(json!({"errcode": 310000, "errmsg": "sign not match"}));
        }
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match (v["msgtype"].as_str(), v["text"]["content"].as_str()) {
        (Some("text"), Some(text)) => {
            seen.lock().unwrap().push((robot.into(), text.into()));
            axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
        }
        _ => axum::Json(json!({"errcode": 40035, "errmsg": "missing parameter"})),
    }
}

/// Feishu/Lark: `POST /open-apis/bot/v2/hook/<token>` with `timestamp` (seconds, a string) and
/// `sign` = Base64(HMAC-SHA256(key "<ts>\n<secret>", empty message)) in the body.
async fn feishu(
    State(seen): State<Seen>,
    UrlPath(token): UrlPath<String>,
    body: String,
) -> axum::Json<Value> {
    if token != LARK_TOKEN {
        return axum::Json(
            json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}),
        );
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let ts: i64 = v["timestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let want = hmac_b64(format!("{ts}\n{LARK_SECRET}").as_bytes(), b"");
    if (Utc::now().timestamp() - ts).abs() >= 3600 || v["sign"].as_str() != Some(&want) {
        return axum::Json(
            json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}),
        );
    }
    match (v["msg_type"].as_str(), v["content"]["text"].as_str()) {
        (Some("text"), Some(text)) => {
            seen.lock().unwrap().push(("lark".into(), text.into()));
            axum::Json(json!({"code": 0, "data": {}, "msg": "success"}))
        }
        _ => axum::Json(json!({"code": 9499, "msg": "Bad Request"})),
    }
}

/// WeCom: `POST /cgi-bin/webhook/send?key=…`, `{"msgtype":"text","text":{"content":…}}`.
async fn wecom(
    State(seen): State<Seen>,
    Query(q): Query<BTreeMap<String, String>>,
    body: String,
) -> axum::Json<Value> {
    if q.get("key").map(String::as_str) != Some(WECOM_KEY) {
        return axum::Json(json!({"errcode": 93000, "errmsg": "invalid webhook url"}));
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match (v["msgtype"].as_str(), v["text"]["content"].as_str()) {
        (Some("text"), Some(text)) => {
            seen.lock().unwrap().push(("wecom".into(), text.into()));
            axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
        }
        _ => axum::Json(json!({"errcode": 40008, "errmsg": "invalid message type"})),
    }
}

/// Slack: `POST /services/T…/B…/<token>`, `{"text": …}`; answers the plain text `ok`.
async fn slack(
    State(seen): State<Seen>,
    UrlPath((_, _, token)): UrlPath<(String, String, String)>,
    body: String,
) -> (axum::http::StatusCode, &'static str) {
    if token != SLACK_TOKEN {
        return (axum::http::StatusCode::FORBIDDEN, "invalid_token");
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match v["text"].as_str() {
        Some(text) => {
            seen.lock().unwrap().push(("slack".into(), text.into()));
            (axum::http::StatusCode::OK, "ok")
        }
        None => (axum::http::StatusCode::BAD_REQUEST, "no_text"),
    }
}

fn robots(seen: Seen) -> Router {
    Router::new()
        .route("/robot/send", post(dingtalk))
        .route("/open-apis/bot/v2/hook/{token}", post(feishu))
        .route("/cgi-bin/webhook/send", post(wecom))
        .route("/services/{t}/{b}/{token}", post(slack))
        .with_state(seen)
}

/// A Python with aiosmtpd: `$DDH_NOTIFY_PYTHON`, else `target/notify-venv`. `.ci/run` makes that
/// venv and sets `DDH_REQUIRE_SMTP=1`, so that CI fails rather than skips the mail checks.
fn smtp_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("DDH_NOTIFY_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/notify-venv/bin/python")),
    ];
    for p in candidates.into_iter().flatten() {
        let ok = Command::new(&p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    assert!(
        std::env::var_os("DDH_REQUIRE_SMTP").is_none(),
        "DDH_REQUIRE_SMTP is set but no Python with aiosmtpd was found (DDH_NOTIFY_PYTHON, target/notify-venv)"
    );
    eprintln!(
        "SKIPPING the SMTP checks: no Python with aiosmtpd (python3 -m venv target/notify-venv && target/notify-venv/bin/pip install aiosmtpd)"
    );
    None
}

/// The aiosmtpd receiver of tests/notify/smtp_receiver.py, stopped on drop.
struct SmtpReceiver {
    child: Child,
}

impl SmtpReceiver {
    fn start(python: &Path, port: u16, out: &Path, tls: Option<(&Path, &Path)>) -> Self {
        std::fs::create_dir_all(out).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/smtp_receiver.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .arg(port.to_string())
            .arg(out)
            .args([SMTP_USER, SMTP_PASSWORD]);
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP receiver");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "SMTP receiver did not start");
        Self { child }
    }

    /// The messages received so far, in order.
    fn messages(out: &Path) -> Vec<String> {
        let mut files: Vec<(u32, String)> = std::fs::read_dir(out)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let n = e
                            .file_name()
                            .to_string_lossy()
                            .strip_suffix(".eml")?
                            .parse()
                            .ok()?;
                        Some((n, std::fs::read_to_string(e.path()).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn channels_toml(port: u16, smtp_port: Option<u16>) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let mut t = format!(
        r#"[notify]
[[notify.channel]]
name = "ding"
kind = "dingtalk"
url = "{base}/robot/send?access_token={DING_TOKEN}"
secret = "{DING_SECRET}"

[[notify.channel]]
name = "lark"
kind = "feishu"
url = "{base}/open-apis/bot/v2/hook/{LARK_TOKEN}"
secret = "{LARK_SECRET}"

[[notify.channel]]
name = "wecom"
kind = "wecom"
url = "{base}/cgi-bin/webhook/send?key={WECOM_KEY}"

[[notify.channel]]
name = "slack"
kind = "slack"
url = "{base}/services/T0001/B0001/{SLACK_TOKEN}"

[[notify.channel]]
name = "oncall"
kind = "dingtalk"
url = "{base}/robot/send?access_token={ONCALL_TOKEN}"
kinds = ["lapsed", "config_error"]
template = "ON CALL: {{kind}} {{host_id}} code={{code}}. {{action}}"
"#
    );
    if let Some(p) = smtp_port {
        t.push_str(&format!(
            r#"
[[notify.channel]]
name = "mail"
kind = "smtp"
host = "127.0.0.1"
port = {p}
tls = "none"
username = "{SMTP_USER}"
password = "{SMTP_PASSWORD}"
from = "ddh-renewd@example.com"
to = ["ops@example.com", "oncall@example.com"]
"#
        ));
    }
    t
}

fn notifier(text: &str) -> Notifier {
    let channels = Config::parse(text, "test").unwrap().notify.channels;
    Notifier::new(channels, std::time::Duration::from_secs(3)).unwrap()
}

fn notices() -> Vec<NoticeRow> {
    let mut rows: Vec<NoticeRow> = (0..4)
        .map(|i| NoticeRow {
            host_id: format!("dh-n{i}"),
            cycle: "2026-12-10T16:00:00Z".into(),
            kind: NoticeKind::RenewalFailed,
            message: format!("dh-n{i} was not renewed in the window of 2026-12-02T00:00:00Z (InsufficientBalance); next attempt in the next window"),
        })
        .collect();
    rows.push(NoticeRow {
        host_id: "dh-n4".into(),
        cycle: "2026-12-10T16:00:00Z".into(),
        kind: NoticeKind::Lapsed,
        message: "dh-n4 lapsed: expired 2026-12-10T16:00:00Z unrenewed".into(),
    });
    rows.push(NoticeRow {
        host_id: "-".into(),
        cycle: "-".into(),
        kind: NoticeKind::ConfigError,
        message: "renewals stopped (InvalidAccessKeyId.NotFound)".into(),
    });
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn every_channel_gets_each_notice_once_through_an_outage_and_a_restart() {
    let dir = common::test_dir();
    let db = dir.path().join("notify.db");
    let store = Store::open(&db, Default::default()).await.unwrap();
    let now = Utc::now();
    assert_eq!(store.notices_now(&notices(), now).await.unwrap(), 6);

    let port = free_port();
    let python = smtp_python();
    let smtp_port = python.as_ref().map(|_| free_port());
    let text = channels_toml(port, smtp_port);
    let channels = if smtp_port.is_some() { 6 } else { 5 };
    // Each channel is owed 6 notices, "oncall" only its 2 (lapsed, config_error).
    let owed = (channels - 1) * 6 + 2;

    // Receivers down: every try fails and is recorded; then every channel backs off.
    let hook = notifier(&text);
    let r = hook.deliver_pending(&store, now).await.unwrap();
    assert_eq!((r.delivered, r.failed), (0, owed), "receivers down: {r:?}");
    let r = hook
        .deliver_pending(&store, now + Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!((r.failed, r.waiting), (0, owed), "backing off: {r:?}");

    // Receivers up.
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let app = robots(seen.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mail_dir = dir.path().join("mail");
    let smtp = python
        .as_ref()
        .zip(smtp_port)
        .map(|(py, p)| SmtpReceiver::start(py, p, &mail_dir, None));
    let r = hook
        .deliver_pending(&store, now + Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (owed, 0), "receivers up: {r:?}");
    let r = hook
        .deliver_pending(&store, now + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed, r.waiting), (0, 0, 0), "{r:?}");
    store.close().await;

    // A restart: a new store and notifier owe nothing.
    let store = Store::open(&db, Default::default()).await.unwrap();
    let r = notifier(&text)
        .deliver_pending(&store, now + Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(r.delivered + r.failed + r.waiting, 0, "{r:?}");

    // What each robot received: each notice once, with host, cycle, code and what to do.
    let got = seen.lock().unwrap().clone();
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (robot, text) in &got {
        let host = ["dh-n0", "dh-n1", "dh-n2", "dh-n3", "dh-n4"]
            .into_iter()
            .find(|h| text.contains(h))
            .unwrap_or("-");
        *per.entry((robot.clone(), host.to_owned())).or_default() += 1;
    }
    for robot in ["ding", "lark", "wecom", "slack"] {
        for host in ["dh-n0", "dh-n1", "dh-n2", "dh-n3", "dh-n4", "-"] {
            assert_eq!(
                per.get(&(robot.to_owned(), host.to_owned())),
                Some(&1),
                "{robot} got the notice of {host} once: {got:#?}"
            );
        }
    }
    let oncall: Vec<&String> = got
        .iter()
        .filter(|(r, _)| r == "oncall")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        oncall,
        [
            "ON CALL: lapsed dh-n4 code=. the host expired unrenewed: renew it in the console at once if it is still needed, then `ddh-renewd sync`.",
            "ON CALL: config_error - code=InvalidAccessKeyId.NotFound. renewals are stopped: fix the AccessKey or its RAM permissions, then `ddh-renewd check-config`."
        ],
        "routing and template"
    );
    let ding = got
        .iter()
        .find(|(r, t)| r == "ding" && t.contains("dh-n0"))
        .unwrap();
    for part in [
        "renewal_failed",
        "cycle ending 2026-12-10T16:00:00Z",
        "(InsufficientBalance)",
        "What to do: the next window",
    ] {
        assert!(ding.1.contains(part), "{part:?} in {:?}", ding.1);
    }

    // Mail: six messages to both recipients, AUTH passed, one notice each.
    if smtp.is_some() {
        let mails = SmtpReceiver::messages(&mail_dir);
        assert_eq!(mails.len(), 6, "{mails:#?}");
        for (i, m) in mails.iter().enumerate() {
            assert!(m.contains("X-Envelope-From: ddh-renewd@example.com"), "{m}");
            assert!(
                m.contains("X-Envelope-To: ops@example.com,oncall@example.com"),
                "{m}"
            );
            assert!(m.contains("Subject: [ddh-renewd] "), "{m}");
            assert!(m.contains("Message-ID: <ddh-renewd-notice-"), "{m}");
            let host = if i < 5 {
                format!("dh-n{i}")
            } else {
                "-".into()
            };
            assert!(m.contains(&host), "mail {i} names {host}: {m}");
        }
    }
    drop(smtp);

    // The audit: per channel, two tries and a delivery for each notice it was owed.
    let tries: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT channel, count(*), sum(tries) FROM v_notice_deliveries WHERE delivered_at IS NOT NULL GROUP BY channel ORDER BY channel",
    )
    .fetch_all(&common::auditor(&db).await)
    .await
    .unwrap();
    let mut want: Vec<(String, i64, i64)> = ["ding", "lark", "oncall", "slack", "wecom"]
        .iter()
        .map(|c| {
            let n = if *c == "oncall" { 2 } else { 6 };
            (c.to_string(), n, 2 * n)
        })
        .collect();
    if smtp_port.is_some() {
        want.insert(2, ("mail".into(), 6, 12));
    }
    assert_eq!(tries, want);
    store.close().await;
    server.abort();

    // No token, signing secret or password in the database.
    for file in ["notify.db", "notify.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for s in ALL_SECRETS {
            assert!(!text.contains(s), "{s} stored in {file}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_signing_secret_is_refused_recorded_and_retried() {
    let dir = common::test_dir();
    let db = dir.path().join("wrong.db");
    let store = Store::open(&db, Default::default()).await.unwrap();
    let now = Utc::now();
    store.notices_now(&notices()[..1], now).await.unwrap();
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = robots(seen.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let text = format!(
        "[notify]\n[[notify.channel]]\nname = \"ding\"\nkind = \"dingtalk\"\nurl = \"http://127.0.0.1:{port}/robot/send?access_token={DING_TOKEN}\"\nsecret = \"SECnot-the-right-one\"\n\n[[notify.channel]]\nname = \"lark\"\nkind = \"feishu\"\nurl = \"http://127.0.0.1:{port}/open-apis/bot/v2/hook/{LARK_TOKEN}\"\nsecret = \"not-the-right-one\"\n"
    );
    let r = notifier(&text).deliver_pending(&store, now).await.unwrap();
    assert_eq!((r.delivered, r.failed), (0, 2), "{r:?}");
    assert!(seen.lock().unwrap().is_empty());
    let errors: Vec<(String, String)> = sqlx::query_as(
        "SELECT channel, last_error FROM v_notice_deliveries WHERE delivered_at IS NULL ORDER BY channel",
    )
    .fetch_all(&common::auditor(&db).await)
    .await
    .unwrap();
    assert_eq!(
        errors,
        [
            (
                "ding".to_owned(),
                "errcode 310000: sign not match".to_owned()
            ),
            (
                "lark".to_owned(),
                "code 19021: sign match fail or timestamp is not within one hour from current time"
                    .to_owned()
            )
        ]
    );
    let r = notifier(&text)
        .deliver_pending(&store, now + Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!(r.failed, 2, "retried: {r:?}");
    store.close().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_reports_what_each_channel_answered() {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = robots(seen.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut text = channels_toml(port, None);
    // One channel whose receiver refuses: a WeCom key that does not exist.
    text.push_str(&format!(
        "\n[[notify.channel]]\nname = \"stale\"\nkind = \"wecom\"\nurl = \"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=GONE-T0KEN-9f3a\"\n"
    ));
    let env = common::Env::with_config(&text);
    let out = tokio::task::spawn_blocking(move || {
        let all = env.run(&["notify", "test", "--json"]);
        let one = env.run(&["notify", "test", "--channel", "lark"]);
        let unknown = env.run(&["notify", "test", "--channel", "nope"]);
        (all, one, unknown, env)
    })
    .await
    .unwrap();
    let (all, one, unknown, _env) = out;
    assert_eq!(all.code, 1, "one channel refused: {}", all.stderr);
    let rows: Vec<Value> = serde_json::from_str(&all.stdout).unwrap();
    let by: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["channel"].as_str().unwrap(), r))
        .collect();
    for c in ["ding", "lark", "wecom", "slack", "oncall"] {
        assert_eq!(by[c]["delivered"], true, "{c}: {}", by[c]);
    }
    assert_eq!(by["stale"]["delivered"], false);
    assert_eq!(
        by["stale"]["detail"], "errcode 93000: invalid webhook url",
        "{}",
        by["stale"]
    );
    assert!(
        all.stderr.contains("1 of 6 channel(s) did not accept"),
        "{}",
        all.stderr
    );
    let one = one.expect(0);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("configured: ding, lark, wecom, slack, oncall, stale"),
        "{}",
        unknown.stderr
    );
    // The sample reached each robot once (ding, lark twice: all, then --channel lark).
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.iter().filter(|(r, _)| r == "lark").count(), 2);
    assert_eq!(got.iter().filter(|(r, _)| r == "slack").count(), 1);
    assert!(got.iter().all(|(_, t)| t.contains("dh-sample")));
    for s in ALL_SECRETS.iter().chain(&["GONE-T0KEN-9f3a"]) {
        assert!(
            !all.stdout.contains(s) && !all.stderr.contains(s) && !one.stdout.contains(s),
            "{s} printed"
        );
    }
    server.abort();
}

/// Mail with STARTTLS required by the server, on a certificate of a CA made for this test: the
/// daemon trusts it only through `SSL_CERT_FILE`, and refuses it without.
#[test]
fn mail_over_starttls_with_login() {
    let Some(python) = smtp_python() else { return };
    let env_dir = common::test_dir();
    let d = env_dir.path();
    let openssl = |args: &[&str]| {
        let s = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .stderr(Stdio::null())
            .status()
            .expect("openssl (Debian: apt-get install openssl)");
        assert!(s.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ddh-renewd test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);

    let port = free_port();
    let out = d.join("mail");
    let _smtp = SmtpReceiver::start(
        &python,
        port,
        &out,
        Some((&d.join("srv.pem"), &d.join("srv.key"))),
    );
    let mut env = common::Env::with_config(&format!(
        "[notify]\n[[notify.channel]]\nname = \"mail\"\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nusername = \"{SMTP_USER}\"\npassword = \"{SMTP_PASSWORD}\"\nfrom = \"ddh-renewd@example.com\"\nto = [\"ops@example.com\"]\n"
    ));
    // Without the test CA the certificate is not trusted: nothing is sent, and it says why.
    env.set_env("SSL_CERT_FILE", d.join("none.pem").to_str().unwrap());
    let refused = env.run(&["notify", "test", "--json"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stdout.contains("SMTP: TLS failed") || refused.stdout.contains("certificate"),
        "{}",
        refused.stdout
    );
    assert!(SmtpReceiver::messages(&out).is_empty());

    env.set_env("SSL_CERT_FILE", d.join("ca.pem").to_str().unwrap());
    let ok = env.run(&["notify", "test", "--json"]).expect(0);
    let rows: Vec<Value> = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(rows[0]["delivered"], true, "{}", ok.stdout);
    assert_eq!(rows[0]["status"], 250, "{}", ok.stdout);
    let mails = SmtpReceiver::messages(&out);
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("dh-sample")
            && mails[0].contains("Subject: [ddh-renewd] renewal_failed dh-sample"),
        "{}",
        mails[0]
    );
    assert!(!ok.stdout.contains(SMTP_PASSWORD) && !ok.stderr.contains(SMTP_PASSWORD));
}
