//! Short-lived credentials (SPEC §4.2): every source against the emulator's metadata service,
//! STS and credentials URI, on the real binary over loopback. Renewal during a long pass, the
//! default chain's order, what check-config shows, and what happens when renewal fails.

mod common;

use std::process::Command;

use common::cloud::Cloud;
use common::{Env, Run, bin};
use serde_json::{Value, json};

const ROLE_ARN: &str = ddh_renewd::emulator::sts::ROLE_ARN;
const PROVIDER_ARN: &str = ddh_renewd::emulator::sts::OIDC_PROVIDER_ARN;

/// The binary with this env's config, no AccessKey in the environment, HOME in the test dir.
fn bare(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(&env.config)
        .args(args)
        .env_remove("DDH_RENEWD_CONFIG")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env_remove("ALIBABA_CLOUD_ROLE_ARN")
        .env_remove("ALIBABA_CLOUD_OIDC_PROVIDER_ARN")
        .env_remove("ALIBABA_CLOUD_OIDC_TOKEN_FILE")
        .env_remove("ALIBABA_CLOUD_CREDENTIALS_URI")
        .env_remove("ALIBABA_CLOUD_PROFILE")
        .env("HOME", env.dir.path());
    for (k, v) in extra {
        c.env(k, v);
    }
    let o = c.output().expect("run ddh-renewd");
    let r = Run::from_output(o);
    if let Some(root) = std::env::var_os("DDH_TEST_ARTIFACTS") {
        let _ = root;
        let _ = std::fs::write(
            env.dir
                .path()
                .join(format!("cmd-{}.log", args.join("_").replace('/', "-"))),
            format!("{}\n{}", r.stdout, r.stderr),
        );
    }
    r
}

fn cloud_env(cloud: &Cloud, credentials: &str) -> Env {
    let emu = cloud.emu().endpoint();
    Env::with_config(&format!(
        "[ecs]\nendpoint = \"{emu}\"\nregions = [\"cn-hangzhou\"]\n[credentials]\n{}\n",
        credentials.replace("{emu}", &emu)
    ))
}

fn sts(cloud: &Cloud) -> Value {
    cloud
        .emu()
        .with_state(|s| serde_json::to_value(s.sts.issued.clone()).expect("json"))
}

fn issued(cloud: &Cloud, source: &str) -> u64 {
    sts(cloud)[source].as_u64().unwrap_or(0)
}

/// ECS calls the emulator accepted with a temporary (STS.) key, and ones it refused for a token.
fn calls_by_session(cloud: &Cloud) -> (usize, usize) {
    cloud.emu().with_state(|s| {
        let ok = s
            .log
            .iter()
            .filter(|e| e.access_key_id.starts_with("STS.") && e.status == 200)
            .count();
        let refused = s
            .log
            .iter()
            .filter(|e| e.code.starts_with("InvalidSecurityToken"))
            .count();
        (ok, refused)
    })
}

fn hosts(cloud: &Cloud, n: usize, expires: &str) {
    let hosts: Vec<Value> = (0..n)
        .map(|i| {
            json!({"DedicatedHostId": format!("dh-cred{i}"), "RegionId": "cn-hangzhou",
                   "ChargeType": "PrePaid", "ExpiredTime": expires})
        })
        .collect();
    cloud.add(json!(hosts));
}

/// Syncs the inventory and puts every host under AutoRenewal, one month.
fn manage(env: &Env, vars: &[(&str, &str)]) {
    bare(env, &["sync"], vars).expect(0);
    let ids = env.json(&["hosts", "list", "--json"]);
    let ids: Vec<&str> = ids
        .as_array()
        .map(|a| a.iter().filter_map(|h| h["host"]["id"].as_str()).collect())
        .unwrap_or_default();
    let ids = ids.join(",");
    let args = [
        "policy",
        "set",
        "--region",
        "cn-hangzhou",
        "--ids",
        &ids,
        "--renewal-status",
        "AutoRenewal",
        "--duration",
        "1",
        "--period-unit",
        "Month",
    ];
    bare(env, &args, vars).expect(0);
}

#[test]
fn ecs_ram_role_through_the_hardened_metadata_flow() {
    let cloud = Cloud::start();
    hosts(&cloud, 3, "2027-03-01T00:00Z");
    let env = cloud_env(
        &cloud,
        "source = \"ecs_ram_role\"\nmetadata_endpoint = \"{emu}\"",
    );
    let r = bare(&env, &["check-config"], &[]).expect(0);
    assert!(
        r.stdout.contains("# credentials: ok (source ecs_ram_role, instance RAM role ddh-renewd-role (name discovered at first use)")
            || r.stdout.contains("# credentials: ok (source ecs_ram_role, the instance's RAM role"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("temporary AccessKeyId STS."),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("with STS token, expires"), "{}", r.stdout);
    bare(&env, &["sync"], &[]).expect(0);
    let (ok, refused) = calls_by_session(&cloud);
    assert!(ok >= 2, "ECS calls signed with the role's session: {ok}");
    assert_eq!(refused, 0);
    assert!(issued(&cloud, "metadata") >= 2);

    // A configured role name skips discovery; a wrong one is a clear error, exit 2.
    let env = cloud_env(
        &cloud,
        "source = \"ecs_ram_role\"\nmetadata_endpoint = \"{emu}\"\nrole_name = \"no-such-role\"",
    );
    let r = bare(&env, &["check-config"], &[]).expect(2);
    assert!(
        r.stderr.contains("ecs_ram_role")
            && r.stderr
                .contains("credentials of role no-such-role: HTTP 404"),
        "{}",
        r.stderr
    );
}

#[test]
fn metadata_without_a_session_token_is_refused() {
    ddh_renewd::ecs::client::install_crypto_provider();
    let cloud = Cloud::start();
    let rt = &cloud.rt;
    let base = cloud.emu().endpoint();
    let (status, _) = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{base}/latest/meta-data/ram/security-credentials/"))
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    assert_eq!(
        status, 401,
        "hardened metadata answers only with a session token"
    );
}

#[test]
fn ram_role_arn_assumes_the_role_with_the_base_key() {
    let cloud = Cloud::start();
    hosts(&cloud, 2, "2027-03-01T00:00Z");
    let env = cloud_env(
        &cloud,
        &format!(
            "source = \"ram_role_arn\"\nbase_source = \"env\"\nrole_arn = \"{ROLE_ARN}\"\nrole_session_name = \"ddh-test\"\nexternal_id = \"abc-123\"\nsts_endpoint = \"{{emu}}\""
        ),
    );
    let key = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", common::TEST_KEY_ID),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::TEST_SECRET),
    ];
    let r = bare(&env, &["check-config"], &key).expect(0);
    assert!(
        r.stdout.contains(&format!(
            "source ram_role_arn, role {ROLE_ARN} (assumed with AccessKeyId {})",
            common::TEST_KEY_ID
        )),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(common::TEST_SECRET));
    bare(&env, &["sync"], &key).expect(0);
    assert!(issued(&cloud, "AssumeRole") >= 2);
    assert!(calls_by_session(&cloud).0 >= 2);

    // No base key: exit 2 naming what is missing.
    let r = bare(&env, &["sync"], &[]).expect(2);
    assert!(
        r.stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_ID is not set"),
        "{}",
        r.stderr
    );
    // A role STS does not know: its code, exit 2.
    let env = cloud_env(
        &cloud,
        "source = \"ram_role_arn\"\nrole_arn = \"acs:ram::1234567890123456:role/other\"\nsts_endpoint = \"{emu}\"",
    );
    let r = bare(&env, &["check-config"], &key).expect(2);
    assert!(
        r.stderr.contains("HTTP 404: EntityNotExist.Role"),
        "{}",
        r.stderr
    );
}

#[test]
fn oidc_role_arn_from_the_rrsa_environment() {
    let cloud = Cloud::start();
    hosts(&cloud, 2, "2027-03-01T00:00Z");
    let env = cloud_env(
        &cloud,
        "source = \"oidc_role_arn\"\nsts_endpoint = \"{emu}\"",
    );
    let token = env.write("oidc-token", ddh_renewd::emulator::sts::OIDC_TOKEN);
    let token = token.to_str().expect("utf-8");
    let rrsa = [
        ("ALIBABA_CLOUD_ROLE_ARN", ROLE_ARN),
        ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", PROVIDER_ARN),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token),
    ];
    let r = bare(&env, &["check-config"], &rrsa).expect(0);
    assert!(
        r.stdout.contains(&format!(
            "source oidc_role_arn, role {ROLE_ARN} (OIDC provider {PROVIDER_ARN})"
        )),
        "{}",
        r.stdout
    );
    bare(&env, &["sync"], &rrsa).expect(0);
    assert!(issued(&cloud, "AssumeRoleWithOIDC") >= 2);
    // The token is a bearer credential: it travels in the body, never in a URL or a log.
    let logged = cloud.emu().with_state(|s| format!("{:?}", s.log));
    assert!(!logged.contains(ddh_renewd::emulator::sts::OIDC_TOKEN));

    // A token STS refuses: its code, exit 2.
    let bad = env.write("bad-token", "not-the-token");
    let r = bare(
        &env,
        &["check-config"],
        &[
            rrsa[0],
            rrsa[1],
            (
                "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
                bad.to_str().expect("utf-8"),
            ),
        ],
    )
    .expect(2);
    assert!(
        r.stderr.contains("AuthenticationFail.OIDCToken.Invalid"),
        "{}",
        r.stderr
    );
}

#[test]
fn credentials_uri() {
    let cloud = Cloud::start();
    hosts(&cloud, 1, "2027-03-01T00:00Z");
    let env = cloud_env(
        &cloud,
        "source = \"credentials_uri\"\nuri = \"{emu}/credentials-uri?secret=q\"",
    );
    let r = bare(&env, &["check-config"], &[]).expect(0);
    assert!(
        r.stdout
            .contains("source credentials_uri, credentials from http://127.0.0.1:"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("secret=q"),
        "the query is never shown:\n{}",
        r.stdout
    );
    bare(&env, &["sync"], &[]).expect(0);
    assert!(issued(&cloud, "credentials_uri") >= 2);
}

#[test]
fn aliyun_cli_profiles_in_each_mode() {
    let cloud = Cloud::start();
    hosts(&cloud, 1, "2027-03-01T00:00Z");
    let env = cloud_env(
        &cloud,
        "source = \"profile\"\nmetadata_endpoint = \"{emu}\"\nsts_endpoint = \"{emu}\"",
    );
    std::fs::create_dir_all(env.path(".aliyun")).expect("dir");
    let profiles = json!({"current": "ak", "profiles": [
        {"name": "ak", "mode": "AK", "access_key_id": common::TEST_KEY_ID, "access_key_secret": common::TEST_SECRET},
        {"name": "role", "mode": "RamRoleArn", "access_key_id": common::TEST_KEY_ID, "access_key_secret": common::TEST_SECRET,
         "ram_role_arn": ROLE_ARN, "ram_session_name": "cli-session", "expired_seconds": 900},
        {"name": "ecs", "mode": "EcsRamRole", "ram_role_name": "ddh-renewd-role"},
        {"name": "sso", "mode": "CloudSSO"}
    ]});
    env.write(".aliyun/config.json", &profiles.to_string());
    for (name, want) in [
        (
            "ak",
            format!("source profile, AccessKeyId {}", common::TEST_KEY_ID),
        ),
        ("role", format!("source ram_role_arn, role {ROLE_ARN}")),
        (
            "ecs",
            "source ecs_ram_role, instance RAM role ddh-renewd-role".to_owned(),
        ),
    ] {
        std::fs::write(
            &env.config,
            std::fs::read_to_string(&env.config)
                .expect("config")
                .lines()
                .filter(|l| !l.starts_with("profile ="))
                .chain([format!("profile = \"{name}\"").as_str()])
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .expect("config");
        let r = bare(&env, &["check-config"], &[]).expect(0);
        assert!(r.stdout.contains(&want), "profile {name}: {}", r.stdout);
        bare(&env, &["sync"], &[]).expect(0);
    }
    assert!(issued(&cloud, "AssumeRole") >= 1 && issued(&cloud, "metadata") >= 1);
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config)
            .expect("config")
            .replace("profile = \"ecs\"", "profile = \"sso\""),
    )
    .expect("config");
    let r = bare(&env, &["check-config"], &[]).expect(2);
    assert!(
        r.stderr
            .contains("supported: AK, StsToken, RamRoleArn, EcsRamRole"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_default_chain_in_its_order() {
    let cloud = Cloud::start();
    hosts(&cloud, 1, "2027-03-01T00:00Z");
    let env = cloud_env(
        &cloud,
        "source = \"default\"\nmetadata_endpoint = \"{emu}\"\nsts_endpoint = \"{emu}\"",
    );
    let token = env.write("oidc-token", ddh_renewd::emulator::sts::OIDC_TOKEN);
    let token = token.to_str().expect("utf-8");
    let key = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", common::TEST_KEY_ID),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::TEST_SECRET),
    ];
    let rrsa = [
        ("ALIBABA_CLOUD_ROLE_ARN", ROLE_ARN),
        ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", PROVIDER_ARN),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token),
    ];
    let uri = format!("{}/credentials-uri", cloud.emu().endpoint());
    let off = ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        // 1. The environment's AccessKey comes first, even with everything else present.
        ([&key[..], &rrsa[..]].concat(), "source default/env"),
        // 2. Then OIDC, when all three RRSA variables are set.
        (rrsa.to_vec(), "source default/oidc_role_arn"),
        // 4. Then the instance's RAM role.
        (vec![], "source default/ecs_ram_role"),
        // 5. Then the credentials URI (the metadata service switched off).
        (
            vec![off, ("ALIBABA_CLOUD_CREDENTIALS_URI", uri.as_str())],
            "source default/credentials_uri",
        ),
    ];
    for (vars, want) in cases {
        let r = bare(&env, &["check-config"], &vars).expect(0);
        assert!(r.stdout.contains(want), "{vars:?}: {}", r.stdout);
    }
    // 3. The aliyun CLI profile comes before the instance's role.
    std::fs::create_dir_all(env.path(".aliyun")).expect("dir");
    env.write(
        ".aliyun/config.json",
        &json!({"current": "p", "profiles": [{"name": "p", "mode": "AK",
            "access_key_id": common::TEST_KEY_ID, "access_key_secret": common::TEST_SECRET}]})
        .to_string(),
    );
    let r = bare(&env, &["check-config"], &[]).expect(0);
    assert!(r.stdout.contains("source default/profile"), "{}", r.stdout);
    std::fs::remove_file(env.path(".aliyun/config.json")).expect("rm");
    // Nothing at all: every link's reason, exit 2.
    let r = bare(&env, &["check-config"], &[off]).expect(2);
    assert!(
        r.stderr.contains("no link of the default chain applies"),
        "{}",
        r.stderr
    );
}

/// Credentials that expire every 3 s, a pass that takes longer than that (each call takes
/// 700 ms): every request is signed with credentials valid when it was sent, they are renewed
/// along the way, and every due host is renewed exactly once.
#[test]
fn credentials_renewed_during_a_long_pass() {
    let cloud = Cloud::start();
    hosts(&cloud, 6, "2026-12-08T00:00Z");
    cloud.set_clock("2026-12-02T00:05:00Z");
    cloud.emu().with_state(|s| {
        s.sts.ttl_override = Some(3);
        s.latency_ms = 700;
    });
    let env = cloud_env(
        &cloud,
        &format!(
            "source = \"ram_role_arn\"\nrole_arn = \"{ROLE_ARN}\"\nsts_endpoint = \"{{emu}}\""
        ),
    );
    let key = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", common::TEST_KEY_ID),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::TEST_SECRET),
    ];
    manage(&env, &key);
    let started = std::time::Instant::now();
    let r = bare(
        &env,
        &["tick", "--at", "2026-12-02T00:05:00Z", "--virtual-clock"],
        &key,
    );
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ledger = cloud.ledger();
    let renewed: Vec<&str> = ledger
        .iter()
        .filter(|e| e["Source"] == "api")
        .filter_map(|e| e["DedicatedHostId"].as_str())
        .collect();
    let mut unique = renewed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        (renewed.len(), unique.len()),
        (6, 6),
        "each host once: {renewed:?}"
    );
    let sessions = issued(&cloud, "AssumeRole");
    let (ok, refused) = calls_by_session(&cloud);
    println!(
        "long pass: {:.1} s, {ok} calls signed with temporary keys, {sessions} sessions assumed (3 s each), {refused} refused",
        took.as_secs_f64()
    );
    assert!(
        took.as_secs_f64() > 3.0,
        "the pass outlived one session ({took:?})"
    );
    assert!(
        sessions >= 2,
        "credentials were renewed during the pass: {sessions} sessions"
    );
    assert_eq!(refused, 0, "no request went out with expired credentials");
}

/// The emulator answers as STS-backed ECS does: a session's token must come with its key, and
/// an expired one is refused with the documented code (a configuration-class error).
#[test]
fn expired_and_mismatched_security_tokens_are_refused() {
    use ddh_renewd::ecs::{ClientOptions, Credentials, EcsClient, ErrorClass, Secret};
    ddh_renewd::ecs::client::install_crypto_provider();
    let cloud = Cloud::start();
    let base = cloud.emu().endpoint();
    cloud.rt.block_on(async {
        let v: Value = reqwest::get(format!("{base}/credentials-uri"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let opts = ClientOptions {
            endpoint: base.clone(),
            timeout: std::time::Duration::from_secs(10),
            quota_per_minute: 1000,
            retry: ddh_renewd::ecs::RetryPolicy::default(),
        };
        let creds = |token: &str| Credentials {
            access_key_id: v["AccessKeyId"].as_str().unwrap_or_default().to_owned(),
            access_key_secret: Secret::new(v["AccessKeySecret"].as_str().unwrap_or_default()),
            security_token: Some(Secret::new(token)),
        };
        let call = |c: Credentials| {
            let opts = opts.clone();
            async move {
                let client = EcsClient::new(&opts, c).expect("client");
                let params = vec![("RegionId".to_owned(), "cn-hangzhou".to_owned())];
                client
                    .call_once::<Value>("DescribeDedicatedHosts", "cn-hangzhou", &params)
                    .await
            }
        };
        let token = v["SecurityToken"].as_str().unwrap_or_default();
        call(creds(token))
            .await
            .expect("a valid session is accepted");
        let e = call(creds("CAISsomethingelse"))
            .await
            .expect_err("wrong token");
        assert_eq!(e.code(), Some("InvalidSecurityToken.MismatchWithAccessKey"));
        cloud.emu().with_state(|s| {
            ddh_renewd::emulator::sts::expire_all(&mut s.sts);
        });
        let e = call(creds(token)).await.expect_err("expired token");
        assert_eq!(e.code(), Some("InvalidSecurityToken.Expired"));
        assert_eq!(e.class(), ErrorClass::Configuration);
    });
}

/// Renewal that fails with the old credentials expired: nothing is sent, a configuration-class
/// error names the source, and nothing is paid or recorded as failed.
#[test]
fn a_failed_renewal_of_credentials_sends_nothing() {
    let cloud = Cloud::start();
    hosts(&cloud, 2, "2026-12-08T00:00Z");
    cloud.set_clock("2026-12-02T00:05:00Z");
    let env = cloud_env(
        &cloud,
        "source = \"ecs_ram_role\"\nmetadata_endpoint = \"{emu}\"",
    );
    manage(&env, &[]);
    // The role is detached from the instance.
    cloud.emu().with_state(|s| s.sts.role_name = None);
    let r = bare(
        &env,
        &["tick", "--at", "2026-12-02T00:05:00Z", "--virtual-clock"],
        &[],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("credentials (source = \"ecs_ram_role\")")
            && r.stderr.contains("no RAM role attached")
            || r.stderr.contains("HTTP 404"),
        "{}",
        r.stderr
    );
    assert!(cloud.ledger().is_empty(), "nothing paid");
    let renew_calls = cloud.logged("RenewDedicatedHosts");
    assert_eq!(renew_calls, 0, "nothing sent");
}

/// The daemon with a source that cannot give credentials: it stays up, sends nothing, and
/// `/healthz` says why (503); once the role is back, the next pass renews.
#[test]
fn the_daemon_stays_up_and_unhealthy_without_credentials() {
    let cloud = Cloud::start();
    let expires = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%MZ")
        .to_string();
    hosts(&cloud, 2, &expires);
    let port = common::free_port();
    let env = cloud_env(
        &cloud,
        &format!(
            "source = \"ecs_ram_role\"\nmetadata_endpoint = \"{{emu}}\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[schedule]\nsafety_interval = \"1s\""
        ),
    );
    manage(&env, &[]);
    cloud.emu().with_state(|s| s.sts.role_name = None);
    let mut daemon = Command::new(bin())
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env("HOME", env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn run");
    let t0 = std::time::Instant::now();
    let mut health = String::new();
    while t0.elapsed() < std::time::Duration::from_secs(30) {
        health = std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|_| common::http_get(port, "/healthz"))
            .unwrap_or_default();
        if health.contains("credentials") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let alive = daemon.try_wait().expect("try_wait").is_none();
    assert!(
        health.starts_with("HTTP/1.0 503") || health.starts_with("HTTP/1.1 503"),
        "{health}"
    );
    assert!(
        health.contains("no credentials to sign with") && health.contains("no RAM role attached"),
        "{health}"
    );
    assert!(alive, "the daemon stays up");
    assert_eq!(cloud.logged("RenewDedicatedHosts"), 0, "nothing sent");
    // The role is attached again: the next pass renews both hosts, once.
    cloud
        .emu()
        .with_state(|s| s.sts.role_name = Some(ddh_renewd::emulator::sts::ROLE_NAME.to_owned()));
    cloud.wait_for("the renewals once the role is back", 30, |c| {
        c.ledger().iter().filter(|e| e["Source"] == "api").count() >= 2
    });
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let t0 = std::time::Instant::now();
    while daemon.try_wait().expect("try_wait").is_none() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "run did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        cloud
            .ledger()
            .iter()
            .filter(|e| e["Source"] == "api")
            .count(),
        2
    );
}
