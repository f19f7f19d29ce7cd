//! A bounded fuzz run of the emulator (issue 14): random admin calls with random JSON, unsigned
//! API requests with random queries, signed API requests with random parameters (so the action
//! handlers run, not just the signature check), and raw garbage over TCP. The emulator must
//! never panic and must still answer a normal request at the end. `DDH_FUZZ_SECS` (default 8)
//! bounds the run; the figures are printed.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ddh_renewd::ecs::{ClientOptions, Credentials, EcsClient, RetryPolicy};
use ddh_renewd::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const KEYS: &[&str] = &[
    "now",
    "advance",
    "seed",
    "rules",
    "probability",
    "count",
    "hosts",
    "kind",
    "status",
    "code",
    "ms",
    "DedicatedHostId",
    "DedicatedHostIds",
    "RegionId",
    "ChargeType",
    "ExpiredTime",
    "Period",
    "PeriodUnit",
    "Duration",
    "RenewalStatus",
    "AutoRenew",
    "ZoneId",
    "Status",
    "action",
    "MaxResults",
    "NextToken",
    "PageNumber",
    "PageSize",
    "ClientToken",
    "LockReason",
    "DedicatedHostName",
];

fn text(rng: &mut StdRng) -> String {
    match rng.random_range(0..12) {
        0 => String::new(),
        1 => "x".repeat(rng.random_range(0..5000)),
        2 => "9".repeat(rng.random_range(1..40)),
        3 => format!("-{}", rng.random::<u64>()),
        4 => "2026-12-10T16:00Z".into(),
        5 => "99999-12-10T16:00Z".into(),
        6 => r#"["dh-a","dh-b"]"#.into(),
        7 => "dh-fz,dh-fz2,,dh-".into(),
        8 => "\u{feff}中文\u{0}\u{7f}".into(),
        9 => format!("{}d", rng.random::<u32>()),
        10 => pick(
            rng,
            &[
                "Week",
                "Month",
                "Year",
                "AutoRenewal",
                "Normal",
                "PrePaid",
                "PostPaid",
                "cn-hangzhou",
                "100000000d",
                "24h",
                "1e308",
                "NaN",
            ],
        )
        .to_owned(),
        _ => (0..rng.random_range(1..30))
            .map(|_| char::from(rng.random_range(32u8..127)))
            .collect(),
    }
}

fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 2 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e300),
        4 | 5 => json!(text(rng)),
        6 => Value::Array(
            (0..rng.random_range(0..5))
                .map(|_| value(rng, depth + 1))
                .collect(),
        ),
        _ => object(rng, depth + 1),
    }
}

fn object(rng: &mut StdRng, depth: u32) -> Value {
    let mut m = serde_json::Map::new();
    for _ in 0..rng.random_range(0..7) {
        m.insert(pick(rng, KEYS).to_owned(), value(rng, depth));
    }
    Value::Object(m)
}

/// Numbers at the edges of what the API accepts.
const EDGES: &[&str] = &[
    "0",
    "1",
    "2",
    "10",
    "99",
    "100",
    "101",
    "-1",
    "2147483648",
    "9223372036854775807",
    "99999999999999999",
    "-9223372036854775808",
    "1e3",
    "nt0",
    "nt64",
    "ntffffffffffffffff",
];

/// Random parameters; most of the time the ones the actions read, with edge values.
fn params(rng: &mut StdRng) -> Vec<(String, String)> {
    if rng.random_bool(0.3) {
        return (0..rng.random_range(0..8))
            .map(|_| (pick(rng, KEYS).to_owned(), text(rng)))
            .collect();
    }
    let mut out = vec![("RegionId".to_owned(), "cn-hangzhou".to_owned())];
    for k in [
        "PageNumber",
        "PageSize",
        "MaxResults",
        "NextToken",
        "Period",
        "Duration",
    ] {
        if rng.random_bool(0.4) {
            out.push((k.into(), pick(rng, EDGES).to_owned()));
        }
    }
    for k in [
        "PeriodUnit",
        "RenewalStatus",
        "AutoRenew",
        "ClientToken",
        "LockReason",
        "ZoneId",
    ] {
        if rng.random_bool(0.2) {
            out.push((k.into(), text(rng)));
        }
    }
    if rng.random_bool(0.6) {
        out.push((
            "DedicatedHostIds".into(),
            pick(
                rng,
                &[
                    r#"["dh-fz"]"#,
                    "dh-fz",
                    "dh-fz2",
                    "dh-fz,dh-fz2",
                    "[]",
                    r#"["dh-nope"]"#,
                ],
            )
            .into(),
        ));
    }
    out
}

#[test]
fn the_emulator_never_panics() {
    let panics = Arc::new(AtomicU64::new(0));
    {
        let panics = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    }
    let secs: u64 = std::env::var("DDH_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (requests, elapsed) = rt.block_on(async {
        let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), EmulatorConfig::test())
            .await
            .unwrap();
        emu.add_hosts(&json!([
            {"DedicatedHostId": "dh-fz", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2026-12-10T16:00Z", "RenewalStatus": "AutoRenewal"},
            {"DedicatedHostId": "dh-fz2", "RegionId": "cn-hangzhou", "ChargeType": "PostPaid"}
        ]))
        .unwrap();
        ddh_renewd::ecs::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let client = EcsClient::new(
            &ClientOptions {
                endpoint: emu.endpoint(),
                timeout: Duration::from_millis(500),
                quota_per_minute: 100_000,
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..RetryPolicy::default()
                },
            },
            Credentials::new(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET),
        )
        .unwrap();
        let base = emu.endpoint();
        let mut rng = StdRng::seed_from_u64(14);
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(secs) {
            n += 1;
            match rng.random_range(0..10) {
                0..=3 => {
                    let path = pick(&mut rng, &["clock", "faults", "hosts", "renew", "ledger", "inflight", "requests", "latency", "reset", "nope", "clock/x"]);
                    let method = match rng.random_range(0..3) {
                        0 => reqwest::Method::GET,
                        1 => reqwest::Method::POST,
                        _ => reqwest::Method::PUT,
                    };
                    let body = if rng.random_bool(0.5) { object(&mut rng, 0) } else { value(&mut rng, 0) };
                    let _ = http
                        .request(method, format!("{base}/_emulator/{path}"))
                        .body(body.to_string())
                        .send()
                        .await;
                }
                4..=5 => {
                    let q: String = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(params(&mut rng))
                        .finish();
                    let _ = http.post(format!("{base}/?{q}")).body(text(&mut rng)).send().await;
                }
                6..=8 => {
                    let action = pick(&mut rng, &["DescribeDedicatedHosts", "DescribeDedicatedHostAutoRenew", "RenewDedicatedHosts", "ModifyDedicatedHostAutoRenewAttribute", "DescribeInstances"]);
                    let _ = client
                        .call_once::<Value>(action, "cn-hangzhou", &params(&mut rng))
                        .await;
                }
                _ => {
                    let addr = emu.addr();
                    let bytes: Vec<u8> = (0..rng.random_range(0..2000)).map(|_| rng.random()).collect();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                            let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                            let _ = s.write_all(&bytes);
                        }
                    })
                    .await;
                }
            }
            if n.is_multiple_of(25) {
                // Keep the run moving: no lasting latency or hanging faults.
                let _ = http.put(format!("{base}/_emulator/latency")).body(r#"{"ms":0}"#).send().await;
                let _ = http.put(format!("{base}/_emulator/faults")).body("[]").send().await;
            }
        }
        let elapsed = started.elapsed();
        let _ = http.put(format!("{base}/_emulator/latency")).body(r#"{"ms":0}"#).send().await;
        let _ = http.put(format!("{base}/_emulator/faults")).body("[]").send().await;
        let _ = http.put(format!("{base}/_emulator/clock")).body(r#"{"now":"2026-12-03T00:00:00Z"}"#).send().await;
        // Still serving.
        let ok = client
            .describe_dedicated_hosts("cn-hangzhou", None)
            .await;
        assert!(ok.is_ok(), "the emulator still answers: {ok:?}");
        emu.stop().await;
        (n, elapsed)
    });
    println!(
        "fuzz: {requests} requests in {:.1} s ({:.0}/s), {} panics",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        panics.load(Ordering::SeqCst)
    );
    assert_eq!(panics.load(Ordering::SeqCst), 0, "the emulator panicked");
}
