//! The ECS client against the real emulator over loopback HTTP: every action, every fault kind,
//! signatures (V1/V3, GET/POST, query/form), freshness, nonce replay, quota, and the admin API.

use std::time::Duration;

use ddh_renewd::domain::{ClientToken, HostId, Period, PeriodUnit, RenewalStatus};
use ddh_renewd::ecs::client::{ClientOptions, EcsClient, RetryPolicy};
use ddh_renewd::ecs::sign;
use ddh_renewd::ecs::{Credentials, EcsError, ErrorClass};
use ddh_renewd::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use serde_json::{Value, json};

const REGION: &str = "cn-hangzhou";

async fn emulator(quota: u32) -> Emulator {
    let mut cfg = EmulatorConfig::test();
    cfg.quota_per_minute = quota;
    Emulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .expect("start emulator")
}

fn client_with(emu: &Emulator, secret: &str, timeout: Duration) -> EcsClient {
    let opts = ClientOptions {
        endpoint: emu.endpoint(),
        timeout,
        quota_per_minute: 1000,
        retry: RetryPolicy {
            max_attempts: 30,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
            max_elapsed: Duration::from_secs(30),
        },
    };
    EcsClient::new(&opts, Credentials::new(TEST_ACCESS_KEY_ID, secret)).unwrap()
}

fn client(emu: &Emulator) -> EcsClient {
    client_with(emu, TEST_ACCESS_KEY_SECRET, Duration::from_secs(5))
}

fn http() -> reqwest::Client {
    ddh_renewd::ecs::client::install_crypto_provider();
    reqwest::Client::new()
}

async fn admin(emu: &Emulator, method: &str, path: &str, body: Value) -> Value {
    let http = http();
    let url = format!("{}/_emulator/{path}", emu.endpoint());
    let req = match method {
        "GET" => http.get(url),
        "PUT" => http.put(url).json(&body),
        _ => http.post(url).json(&body),
    };
    let resp = req.send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "admin {path}: {}",
        resp.status()
    );
    resp.json().await.unwrap()
}

async fn seed(emu: &Emulator, n: usize) {
    let mut hosts: Vec<Value> = (0..n)
        .map(|i| json!({"DedicatedHostId": format!("dh-t{i:04}"), "RegionId": REGION, "ChargeType": "PrePaid", "ExpiredTime": "2026-12-10T16:00Z"}))
        .collect();
    hosts.push(json!({"DedicatedHostId": "dh-post", "RegionId": REGION, "ChargeType": "PostPaid"}));
    hosts.push(json!({"DedicatedHostId": "dh-sh", "RegionId": "cn-shanghai", "ChargeType": "PrePaid", "ExpiredTime": "2027-01-01T16:00Z", "RenewalStatus": "AutoRenewal", "Duration": 1, "PeriodUnit": "Year"}));
    admin(emu, "POST", "hosts", Value::Array(hosts)).await;
}

fn id(s: &str) -> HostId {
    HostId::parse(s).unwrap()
}

fn month() -> Period {
    Period::for_renewal(1, PeriodUnit::Month).unwrap()
}

async fn ledger(emu: &Emulator) -> Vec<Value> {
    admin(emu, "GET", "ledger", Value::Null)
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn faults(emu: &Emulator, rules: Value) {
    admin(emu, "PUT", "faults", json!({"seed": 7, "rules": rules})).await;
}

#[tokio::test]
async fn describe_pages_through_every_host() {
    let emu = emulator(1000).await;
    seed(&emu, 250).await;
    // A fixed virtual date before the seeded expiry (2026-12-10T16:00Z), whatever today is.
    admin(&emu, "PUT", "clock", json!({"now": "2026-12-01T00:00:00Z"})).await;
    let c = client(&emu);
    let hosts = c.describe_dedicated_hosts(REGION, None).await.unwrap();
    assert_eq!(hosts.len(), 251);
    assert_eq!(
        c.calls()["DescribeDedicatedHosts"],
        3,
        "MaxResults=100 → three pages"
    );
    let by_id = c
        .describe_dedicated_hosts(REGION, Some(&[id("dh-t0007"), id("dh-post")]))
        .await
        .unwrap();
    assert_eq!(by_id.len(), 2);
    let h = by_id
        .iter()
        .find(|h| h.dedicated_host_id == "dh-t0007")
        .unwrap()
        .to_host()
        .unwrap();
    assert!(!h.financial_lock);
    // Past expiry on the virtual clock the host shows the financial lock.
    admin(&emu, "PUT", "clock", json!({"now": "2026-12-11T00:00:00Z"})).await;
    let h = c
        .describe_dedicated_hosts(REGION, Some(&[id("dh-t0007")]))
        .await
        .unwrap()[0]
        .to_host()
        .unwrap();
    assert!(h.financial_lock);
    emu.stop().await;
}

#[tokio::test]
async fn auto_renew_attribute_round_trip() {
    let emu = emulator(1000).await;
    seed(&emu, 3).await;
    let c = client(&emu);
    let ids = [id("dh-t0000"), id("dh-t0001")];
    let attrs = c.describe_auto_renew(REGION, &ids).await.unwrap();
    assert!(
        attrs
            .iter()
            .all(|a| a.renewal_status == "Normal" && !a.auto_renew_enabled)
    );
    c.modify_auto_renew(
        REGION,
        &ids,
        RenewalStatus::AutoRenewal,
        Some(Period::for_policy(6, PeriodUnit::Month).unwrap()),
    )
    .await
    .unwrap();
    let attrs = c.describe_auto_renew(REGION, &ids).await.unwrap();
    assert!(
        attrs
            .iter()
            .all(|a| a.renewal_status == "AutoRenewal" && a.auto_renew_enabled && a.duration == 6)
    );
    let e = c
        .describe_auto_renew(REGION, &[id("dh-post")])
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (Some("ChargeTypeViolation"), ErrorClass::HostGone)
    );
    let e = c
        .modify_auto_renew(
            REGION,
            &[id("dh-t0000"), id("dh-nope")],
            RenewalStatus::Normal,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter.InvalidDedicatedHostId"));
    let attrs = c.describe_auto_renew(REGION, &ids).await.unwrap();
    assert!(
        attrs.iter().all(|a| a.renewal_status == "AutoRenewal"),
        "a refused call changes nothing"
    );
    emu.stop().await;
}

#[tokio::test]
async fn renew_moves_expiry_once_per_token() {
    let emu = emulator(1000).await;
    seed(&emu, 3).await;
    let c = client(&emu);
    let tok = ClientToken::parse("ddh-test-1").unwrap();
    let r1 = c
        .renew_dedicated_hosts(
            REGION,
            &[id("dh-t0000"), id("dh-t0001")],
            month(),
            Some(&tok),
        )
        .await
        .unwrap();
    let r2 = c
        .renew_dedicated_hosts(
            REGION,
            &[id("dh-t0000"), id("dh-t0001")],
            month(),
            Some(&tok),
        )
        .await
        .unwrap();
    assert_eq!(r1.request_id, r2.request_id, "replayed answer");
    let l = ledger(&emu).await;
    assert_eq!(l.len(), 2);
    assert_eq!(l[0]["ExpiredTimeBefore"], "2026-12-10T16:00Z");
    assert_eq!(l[0]["ExpiredTimeAfter"], "2027-01-10T16:00Z");
    assert_eq!(l[0]["ClientToken"], "ddh-test-1");
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), Some(&tok))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("IdempotenceParamNotMatch"));
    // Documented validation codes.
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-post")], month(), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ChargeTypeViolation"));
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-gone")], month(), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (
            Some("InvalidDedicatedHostId.NotFound"),
            ErrorClass::HostGone
        )
    );
    let e = c
        .call_once::<Value>(
            "RenewDedicatedHosts",
            REGION,
            &[
                ("RegionId".into(), REGION.into()),
                ("DedicatedHostIds".into(), "dh-t0002".into()),
                ("Period".into(), "10".into()),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (Some("InvalidPeriod"), ErrorClass::Configuration)
    );
    assert_eq!(ledger(&emu).await.len(), 2);
    emu.stop().await;
}

#[tokio::test]
async fn fault_error_is_retried_for_reads() {
    let emu = emulator(1000).await;
    seed(&emu, 5).await;
    faults(&emu, json!([{"action": "DescribeDedicatedHosts", "kind": "error", "status": 500, "code": "InternalError", "count": 3}])).await;
    let c = client(&emu);
    assert_eq!(
        c.describe_dedicated_hosts(REGION, None)
            .await
            .unwrap()
            .len(),
        6
    );
    assert_eq!(c.calls()["DescribeDedicatedHosts"], 4);
    emu.stop().await;
}

#[tokio::test]
async fn fault_definite_error_is_remembered_for_the_token() {
    let emu = emulator(1000).await;
    seed(&emu, 2).await;
    faults(&emu, json!([{"action": "RenewDedicatedHosts", "kind": "error", "status": 400, "code": "InsufficientBalance", "count": 1}])).await;
    let c = client(&emu);
    let tok = ClientToken::parse("pay-1").unwrap();
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), Some(&tok))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (Some("InsufficientBalance"), ErrorClass::Definite)
    );
    // The fault is spent, but the token replays its first completed answer.
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), Some(&tok))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InsufficientBalance"));
    assert!(ledger(&emu).await.is_empty());
    // A new token is processed.
    let tok2 = ClientToken::parse("pay-2").unwrap();
    c.renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), Some(&tok2))
        .await
        .unwrap();
    assert_eq!(ledger(&emu).await.len(), 1);
    emu.stop().await;
}

#[tokio::test]
async fn fault_apply_then_error_and_drop_replay_the_success() {
    let emu = emulator(1000).await;
    seed(&emu, 2).await;
    let c = client(&emu);
    for (kind, host) in [
        ("apply_then_error", "dh-t0000"),
        ("apply_then_drop", "dh-t0001"),
    ] {
        faults(
            &emu,
            json!([{"action": "RenewDedicatedHosts", "kind": kind, "count": 1}]),
        )
        .await;
        let tok = ClientToken::parse(&format!("tok-{kind}")).unwrap();
        let e = c
            .renew_dedicated_hosts(REGION, &[id(host)], month(), Some(&tok))
            .await
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient, "{kind}: {e}");
        if kind == "apply_then_drop" {
            assert!(matches!(e, EcsError::Transport { .. }), "{kind}: {e}");
        }
        let applied = ledger(&emu)
            .await
            .iter()
            .filter(|l| l["DedicatedHostId"] == host)
            .count();
        assert_eq!(applied, 1, "{kind}: applied despite the error");
        let ok = c
            .renew_dedicated_hosts(REGION, &[id(host)], month(), Some(&tok))
            .await
            .unwrap();
        let l = ledger(&emu).await;
        let entries: Vec<&Value> = l.iter().filter(|l| l["DedicatedHostId"] == host).collect();
        assert_eq!(
            entries.len(),
            1,
            "{kind}: the retry with the same token is not applied again"
        );
        assert_eq!(
            entries[0]["RequestId"],
            ok.request_id.as_str(),
            "{kind}: the first answer is replayed"
        );
    }
    emu.stop().await;
}

#[tokio::test]
async fn fault_hang_reset_and_delay() {
    let emu = emulator(1000).await;
    seed(&emu, 3).await;
    let c = client_with(&emu, TEST_ACCESS_KEY_SECRET, Duration::from_millis(400));
    // hang: the client times out; nothing applied; the same token later goes through.
    faults(
        &emu,
        json!([{"action": "RenewDedicatedHosts", "kind": "hang", "count": 1}]),
    )
    .await;
    let tok = ClientToken::parse("tok-hang").unwrap();
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), Some(&tok))
        .await
        .unwrap_err();
    assert!(
        matches!(e, EcsError::Transport { timeout: true, .. }),
        "{e}"
    );
    assert!(ledger(&emu).await.is_empty());
    c.renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), Some(&tok))
        .await
        .unwrap();
    assert_eq!(ledger(&emu).await.len(), 1);
    // reset: transport error, nothing applied.
    faults(&emu, json!([{"action": "*", "kind": "reset", "count": 1}])).await;
    let tok = ClientToken::parse("tok-reset").unwrap();
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-t0001")], month(), Some(&tok))
        .await
        .unwrap_err();
    assert!(matches!(e, EcsError::Transport { .. }), "{e}");
    assert_eq!(ledger(&emu).await.len(), 1);
    // delay: a concurrent request with the same token sees LastTokenProcessing.
    faults(
        &emu,
        json!([{"action": "RenewDedicatedHosts", "kind": "delay", "ms": 2000, "count": 1}]),
    )
    .await;
    let c2 = client(&emu);
    let tok = ClientToken::parse("tok-delay").unwrap();
    let ids = [id("dh-t0002")];
    let slow = c2.renew_dedicated_hosts(REGION, &ids, month(), Some(&tok));
    let fast = async {
        // Sent once the emulator says the first is in processing, not after a guessed delay.
        let t0 = std::time::Instant::now();
        while emu.with_state(|s| s.processing("RenewDedicatedHosts")) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the first request never reached the emulator"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        c2.renew_dedicated_hosts(REGION, &ids, month(), Some(&tok))
            .await
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(slow.is_ok());
    let e = fast.unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (Some("LastTokenProcessing"), ErrorClass::Transient)
    );
    assert_eq!(ledger(&emu).await.len(), 2);
    emu.stop().await;
}

#[tokio::test]
async fn fault_rules_filter_by_host_and_are_seeded() {
    let emu = emulator(1000).await;
    seed(&emu, 3).await;
    faults(&emu, json!([{"action": "RenewDedicatedHosts", "hosts": ["dh-t0001"], "kind": "error", "status": 400, "code": "InsufficientBalance"}])).await;
    let c = client(&emu);
    assert!(
        c.renew_dedicated_hosts(REGION, &[id("dh-t0000")], month(), None)
            .await
            .is_ok()
    );
    let e = c
        .renew_dedicated_hosts(REGION, &[id("dh-t0001")], month(), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InsufficientBalance"));
    // p = 0.5 with a fixed seed: the same outcomes every run.
    let outcomes = |_: ()| async {
        faults(&emu, json!([{"action": "DescribeDedicatedHostAutoRenew", "kind": "error", "probability": 0.5}])).await;
        let mut v = Vec::new();
        for _ in 0..20 {
            let r = c
                .call_once::<Value>(
                    "DescribeDedicatedHostAutoRenew",
                    REGION,
                    &[
                        ("RegionId".into(), REGION.into()),
                        ("DedicatedHostIds".into(), "dh-t0000".into()),
                    ],
                )
                .await;
            v.push(r.is_ok());
        }
        v
    };
    let a = outcomes(()).await;
    let b = outcomes(()).await;
    assert_eq!(a, b);
    assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x), "{a:?}");
    emu.stop().await;
}

#[tokio::test]
async fn wrong_secret_unknown_key_and_throttling() {
    let emu = emulator(3).await;
    seed(&emu, 1).await;
    let bad = client_with(&emu, "not-the-secret", Duration::from_secs(5));
    let e = bad
        .describe_dedicated_hosts(REGION, None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (Some("SignatureDoesNotMatch"), ErrorClass::Configuration)
    );
    assert_eq!(
        bad.calls()["DescribeDedicatedHosts"],
        1,
        "configuration errors are not retried"
    );
    assert!(!e.to_string().contains("not-the-secret"));
    let opts = ClientOptions {
        endpoint: emu.endpoint(),
        timeout: Duration::from_secs(5),
        quota_per_minute: 1000,
        retry: RetryPolicy::default(),
    };
    let stranger = EcsClient::new(&opts, Credentials::new("LTAIunknown", "x")).unwrap();
    let e = stranger
        .describe_auto_renew(REGION, &[id("dh-t0000")])
        .await
        .unwrap_err();
    assert_eq!(
        e.api().map(|a| (a.code.as_str(), a.status)),
        Some(("InvalidAccessKeyId.NotFound", 404))
    );
    // Quota 3 per (key, action): the 4th call in a minute is throttled.
    let c = client(&emu);
    for _ in 0..3 {
        c.call_once::<Value>(
            "DescribeDedicatedHostAutoRenew",
            REGION,
            &[
                ("RegionId".into(), REGION.into()),
                ("DedicatedHostIds".into(), "dh-t0000".into()),
            ],
        )
        .await
        .unwrap();
    }
    let e = c
        .call_once::<Value>(
            "DescribeDedicatedHostAutoRenew",
            REGION,
            &[
                ("RegionId".into(), REGION.into()),
                ("DedicatedHostIds".into(), "dh-t0000".into()),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        (Some("Throttling.User"), ErrorClass::Transient)
    );
    emu.stop().await;
}

/// Builds a V1-signed URL by hand, to test what our client never sends.
fn v1_url(
    emu: &Emulator,
    method: &str,
    nonce: &str,
    timestamp: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params: Vec<(String, String)> = [
        ("AccessKeyId", TEST_ACCESS_KEY_ID),
        ("Action", "DescribeDedicatedHosts"),
        ("Format", "JSON"),
        ("RegionId", REGION),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", timestamp),
        ("Version", "2014-05-26"),
    ]
    .iter()
    .chain(extra.iter())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = sign::v1_signature(
        TEST_ACCESS_KEY_SECRET,
        &sign::v1_string_to_sign(method, &params),
    );
    params.push(("Signature".into(), sig));
    format!("{}/?{}", emu.endpoint(), sign::canonical_query(&params))
}

#[tokio::test]
async fn v1_get_post_freshness_and_nonce_replay() {
    let emu = emulator(1000).await;
    seed(&emu, 1).await;
    let http = http();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let url = v1_url(
        &emu,
        "GET",
        "n-1",
        &now,
        &[("DedicatedHostName", "a b*c~d\u{4e2d}")],
    );
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = http.get(&url).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Code"], "SignatureNonceUsed");
    for key in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(body.get(key).is_some(), "error body has {key}");
    }
    // POST with the signature computed for GET does not verify: the verb is signed.
    let url = v1_url(&emu, "GET", "n-2", &now, &[]);
    let r = http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("server string to sign is:POST&%2F&")
    );
    // 16 minutes old: expired.
    let old = (chrono::Utc::now() - chrono::Duration::minutes(16))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let r = http
        .get(v1_url(&emu, "GET", "n-3", &old, &[]))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Code"], "InvalidTimeStamp.Expired");
    // Parameters split between the query and a form body (legacy get_signed_url style).
    let mut params: Vec<(String, String)> = [
        ("AccessKeyId", TEST_ACCESS_KEY_ID),
        ("Action", "DescribeDedicatedHostAutoRenew"),
        ("Format", "JSON"),
        ("RegionId", REGION),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "n-4"),
        ("SignatureType", ""),
        ("SignatureVersion", "1.0"),
        ("Timestamp", now.as_str()),
        ("Version", "2014-05-26"),
        ("DedicatedHostIds", "dh-t0000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = sign::v1_signature(
        TEST_ACCESS_KEY_SECRET,
        &sign::v1_string_to_sign("POST", &params),
    );
    params.push(("Signature".into(), sig));
    let (body_params, query_params): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(k, _)| k == "DedicatedHostIds");
    let form = body_params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    let r = http
        .post(format!(
            "{}/?{}",
            emu.endpoint(),
            sign::canonical_query(&query_params)
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let log = admin(&emu, "GET", "requests", Value::Null).await;
    let versions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["SignatureVersion"].as_str().unwrap())
        .collect();
    assert!(versions.iter().all(|v| *v == "v1"));
    emu.stop().await;
}

#[tokio::test]
async fn v3_form_body_is_verified_and_applied() {
    let emu = emulator(1000).await;
    seed(&emu, 1).await;
    let body =
        "AutoRenew=true&DedicatedHostIds=dh-t0000&Duration=1&PeriodUnit=Month&RegionId=cn-hangzhou";
    let payload = sign::sha256_hex(body.as_bytes());
    let host = emu.addr().to_string();
    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let headers: Vec<(String, String)> = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("host", host.as_str()),
        ("x-acs-action", "ModifyDedicatedHostAutoRenewAttribute"),
        ("x-acs-version", "2014-05-26"),
        ("x-acs-date", date.as_str()),
        ("x-acs-signature-nonce", "c0ffee"),
        ("x-acs-content-sha256", payload.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let cr = sign::v3_canonical_request(&sign::V3Input {
        method: "POST",
        path: "/",
        query: &[],
        headers: &headers,
        signed_headers: &signed,
        payload_hash: &payload,
    });
    let sig = sign::v3_signature(TEST_ACCESS_KEY_SECRET, &sign::v3_string_to_sign(&cr));
    let mut req = http().post(format!("{}/", emu.endpoint())).header(
        "authorization",
        sign::v3_authorization(
            TEST_ACCESS_KEY_ID,
            &sign::signed_headers_list(&signed),
            &sig,
        ),
    );
    for (k, v) in &headers {
        if k != "host" {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let r = req.body(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let c = client(&emu);
    let a = c
        .describe_auto_renew(REGION, &[id("dh-t0000")])
        .await
        .unwrap();
    assert_eq!(a[0].renewal_status, "AutoRenewal");
    emu.stop().await;
}

#[tokio::test]
async fn admin_api_clock_latency_reset() {
    let emu = emulator(1000).await;
    seed(&emu, 1).await;
    let t = admin(&emu, "PUT", "clock", json!({"now": "2026-12-01T00:00:00Z"})).await;
    assert_eq!(t["now"], "2026-12-01T00:00:00Z");
    let t = admin(&emu, "PUT", "clock", json!({"advance": "24h"})).await;
    assert!(t["now"].as_str().unwrap().starts_with("2026-12-02T00:00:0"));
    admin(&emu, "PUT", "latency", json!({"ms": 150})).await;
    let c = client(&emu);
    let t0 = std::time::Instant::now();
    c.describe_dedicated_hosts(REGION, None).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let hosts = admin(&emu, "GET", "hosts", Value::Null).await;
    assert_eq!(hosts.as_array().unwrap().len(), 3);
    let t0 = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["DedicatedHostId"] == "dh-t0000")
        .unwrap();
    assert_eq!(t0["ExpiredTime"], "2026-12-10T16:00Z");
    assert_eq!(
        t0["OperationLocks"]["OperationLock"],
        json!([]),
        "not expired on 2026-12-02"
    );
    admin(&emu, "POST", "reset", Value::Null).await;
    assert!(
        admin(&emu, "GET", "hosts", Value::Null)
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        admin(&emu, "GET", "requests", Value::Null)
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = http().post(format!("{}/_emulator/hosts", emu.endpoint()))
        .json(&json!([{"DedicatedHostId": "bad", "RegionId": REGION, "ChargeType": "PrePaid", "ExpiredTime": "2026-12-10T16:00Z"}]))
        .send().await.unwrap();
    assert_eq!(r.status(), 400);
    emu.stop().await;
}
