//! Request signing for the ECS OpenAPI, pure functions only.
//!
//! - V3 `ACS3-HMAC-SHA256`: what the client sends (SPEC §4.2).
//! - V1 RPC `HMAC-SHA1`: verified by the emulator, because older SDKs still send it.
//!
//! Both use the same RFC 3986 percent-encoding (upper-case hex, only `A-Z a-z 0-9 - _ . ~` left
//! bare). The digests come from the RustCrypto crates; every vector in ecs-api.md §1.4 is a test.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 percent-encoding of UTF-8 bytes: space → `%20`, `*` → `%2A`, `~` kept.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `name=value` pairs sorted by name (then value), both percent-encoded, joined with `&`.
/// This is V1's CanonicalizedQueryString and V3's CanonicalQueryString.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parameters of a canonical query string, in its order: the inverse of
/// [`canonical_query`], so that a request written ahead as its canonical query is re-sent with
/// exactly the same parameters (and so the same canonical query, byte for byte).
pub fn parse_canonical_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

// ------------------------------------------------------------------------------------------- V1

/// V1 StringToSign: `METHOD&%2F&percentEncode(CanonicalizedQueryString)`. `params` must not
/// contain `Signature`.
pub fn v1_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&%2F&{}",
        method.to_ascii_uppercase(),
        percent_encode(&canonical_query(params))
    )
}

fn v1_mac(secret: &str) -> Hmac<Sha1> {
    let key = format!("{secret}&");
    // HMAC takes keys of any length; this cannot fail.
    <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// V1 signature: Base64(HMAC-SHA1(secret + "&", StringToSign)).
pub fn v1_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = v1_mac(secret);
    mac.update(string_to_sign.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Constant-time check of a V1 signature.
pub fn v1_verify(secret: &str, string_to_sign: &str, signature_b64: &str) -> bool {
    let Ok(given) = B64.decode(signature_b64) else {
        return false;
    };
    let mut mac = v1_mac(secret);
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}

// ------------------------------------------------------------------------------------------- V3

/// The inputs of a V3 canonical request. Header names are matched case-insensitively.
pub struct V3Input<'a> {
    pub method: &'a str,
    /// `/` for RPC APIs.
    pub path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// All request headers (name, value).
    pub headers: &'a [(String, String)],
    /// Lower-case names of the signed headers, in any order.
    pub signed_headers: &'a [String],
    /// Lower-case hex SHA-256 of the body.
    pub payload_hash: &'a str,
}

/// The sorted, `;`-joined lower-case list.
pub fn signed_headers_list(names: &[String]) -> String {
    let mut v: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    v.sort();
    v.dedup();
    v.join(";")
}

pub fn v3_canonical_request(input: &V3Input<'_>) -> String {
    let mut names: Vec<String> = input
        .signed_headers
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let mut canonical_headers = String::new();
    for name in &names {
        let mut values: Vec<&str> = input
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        values.sort_unstable();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        input.path,
        canonical_query(input.query),
        canonical_headers,
        names.join(";"),
        input.payload_hash
    )
}

pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn v3_mac(secret: &str) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// V3 signature: lower-case hex HMAC-SHA256(secret, StringToSign).
pub fn v3_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = v3_mac(secret);
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Constant-time check of a V3 signature.
pub fn v3_verify(secret: &str, string_to_sign: &str, signature_hex: &str) -> bool {
    let Some(given) = unhex(signature_hex) else {
        return false;
    };
    let mut mac = v3_mac(secret);
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}

pub fn v3_authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// The parts of a V3 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_v3_authorization(header: &str) -> Option<V3Authorization> {
    let rest = header.trim().strip_prefix(V3_ALGORITHM)?.trim_start();
    let mut ak = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => ak = Some(v.to_owned()),
            "SignedHeaders" => {
                signed = Some(
                    v.split(';')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .collect(),
                )
            }
            "Signature" => sig = Some(v.to_owned()),
            _ => {}
        }
    }
    Some(V3Authorization {
        access_key_id: ak?,
        signed_headers: signed?,
        signature: sig?,
    })
}

#[cfg(test)]
mod tests {
    //! The vectors of ecs-api.md §1.4, computed by the official SDK code.
    use super::*;

    const AK: &str = "LTAI5tTestKeyId000000000";
    const SK: &str = "TestSecret0123456789abcdefghijk";

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn v1_1_documented_example() {
        let params = p(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]);
        let sts = v1_string_to_sign("GET", &params);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        let sig = v1_signature("testsecret", &sts);
        assert_eq!(sig, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        assert_eq!(percent_encode(&sig), "OLeaidS1JvxuMvnyHOwuJ%2BuX5qY%3D");
        assert!(v1_verify("testsecret", &sts, &sig));
        assert!(!v1_verify("wrong", &sts, &sig));
    }

    fn v1_2_params() -> Vec<(String, String)> {
        p(&[
            ("AccessKeyId", AK),
            ("Action", "RenewDedicatedHosts"),
            ("ClientToken", "renew-dh-bp1aaaa-2024-01"),
            (
                "DedicatedHostIds",
                r#"["dh-bp1aaaaaaaaaaaaaaaa","dh-bp1bbbbbbbbbbbbbbbb"]"#,
            ),
            ("Format", "json"),
            ("Period", "1"),
            ("PeriodUnit", "Month"),
            ("RegionId", "cn-hangzhou"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("Version", "2014-05-26"),
        ])
    }

    #[test]
    fn v1_2_renew_post_and_get() {
        let params = v1_2_params();
        let sts = v1_string_to_sign("POST", &params);
        assert_eq!(
            sts,
            "POST&%2F&AccessKeyId%3DLTAI5tTestKeyId000000000%26Action%3DRenewDedicatedHosts%26ClientToken%3Drenew-dh-bp1aaaa-2024-01%26DedicatedHostIds%3D%255B%2522dh-bp1aaaaaaaaaaaaaaaa%2522%252C%2522dh-bp1bbbbbbbbbbbbbbbb%2522%255D%26Format%3Djson%26Period%3D1%26PeriodUnit%3DMonth%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D0a1b2c3d4e5f60718293a4b5c6d7e8f9%26SignatureVersion%3D1.0%26Timestamp%3D2024-01-02T03%253A04%253A05Z%26Version%3D2014-05-26"
        );
        assert_eq!(v1_signature(SK, &sts), "U1Z9WqLITGL7vfl0j9Py/wFCd8Q=");
        let get = v1_string_to_sign("GET", &params);
        assert_eq!(v1_signature(SK, &get), "Bhj/eA+cy5iWIq1I6gqCMgerl7w=");
    }

    #[test]
    fn v1_3_encoding_edge_cases() {
        let params = p(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeDedicatedHosts"),
            ("DedicatedHostName", "a b*c+d~e/f=g&h:i,j中"),
            ("Format", "JSON"),
            ("RegionId", "cn-hangzhou"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "nonce-0001"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-06-30T23:59:59Z"),
            ("Version", "2014-05-26"),
        ]);
        let sts = v1_string_to_sign("GET", &params);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26DedicatedHostName%3Da%2520b%252Ac%252Bd~e%252Ff%253Dg%2526h%253Ai%252Cj%25E4%25B8%25AD%26Format%3DJSON%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dnonce-0001%26SignatureVersion%3D1.0%26Timestamp%3D2024-06-30T23%253A59%253A59Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1_signature("testsecret", &sts),
            "ENnG97SX2rNCb6UKJo1w9ZbOMvQ="
        );
    }

    #[test]
    fn v1_4_query_and_form_body_merged() {
        let params = p(&[
            ("Action", "ModifyDedicatedHostAutoRenewAttribute"),
            ("Version", "2014-05-26"),
            ("RegionId", "cn-hangzhou"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureType", ""),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "b1c2d3e4f5a60718293a4b5c6d7e8f90"),
            ("AccessKeyId", AK),
            ("Format", "JSON"),
            // form body
            (
                "DedicatedHostIds",
                "dh-bp1aaaaaaaaaaaaaaaa,dh-bp1bbbbbbbbbbbbbbbb",
            ),
            ("AutoRenew", "false"),
            ("RenewalStatus", "NotRenewal"),
        ]);
        let sts = v1_string_to_sign("POST", &params);
        assert_eq!(
            sts,
            "POST&%2F&AccessKeyId%3DLTAI5tTestKeyId000000000%26Action%3DModifyDedicatedHostAutoRenewAttribute%26AutoRenew%3Dfalse%26DedicatedHostIds%3Ddh-bp1aaaaaaaaaaaaaaaa%252Cdh-bp1bbbbbbbbbbbbbbbb%26Format%3DJSON%26RegionId%3Dcn-hangzhou%26RenewalStatus%3DNotRenewal%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Db1c2d3e4f5a60718293a4b5c6d7e8f90%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3D2024-01-02T03%253A04%253A05Z%26Version%3D2014-05-26"
        );
        let sig = v1_signature(SK, &sts);
        assert_eq!(sig, "v7e60z9VnHSZW14vCj/l47Lx2M0=");
        assert_eq!(percent_encode(&sig), "v7e60z9VnHSZW14vCj%2Fl47Lx2M0%3D");
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        p(pairs)
    }

    fn names(hs: &[(String, String)]) -> Vec<String> {
        hs.iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn v3_1_documented_example() {
        let query = p(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let hs = headers(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", EMPTY_SHA256),
        ]);
        let signed = names(&hs);
        let cr = v3_canonical_request(&V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &hs,
            signed_headers: &signed,
            payload_hash: EMPTY_SHA256,
        });
        assert_eq!(
            cr,
            "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\nx-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let sig = v3_signature("YourAccessKeySecret", &v3_string_to_sign(&cr));
        assert_eq!(
            v3_authorization("YourAccessKeyId", &signed_headers_list(&signed), &sig),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn v3_2_renew_as_the_sdk_sends_it() {
        let query = p(&[
            ("ClientToken", "renew-dh-bp1aaaa-2024-01"),
            (
                "DedicatedHostIds",
                r#"["dh-bp1aaaaaaaaaaaaaaaa","dh-bp1bbbbbbbbbbbbbbbb"]"#,
            ),
            ("Period", "1"),
            ("PeriodUnit", "Month"),
            ("RegionId", "cn-hangzhou"),
        ]);
        assert_eq!(
            canonical_query(&query),
            "ClientToken=renew-dh-bp1aaaa-2024-01&DedicatedHostIds=%5B%22dh-bp1aaaaaaaaaaaaaaaa%22%2C%22dh-bp1bbbbbbbbbbbbbbbb%22%5D&Period=1&PeriodUnit=Month&RegionId=cn-hangzhou"
        );
        let hs = headers(&[
            ("host", "ecs.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "RenewDedicatedHosts"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
            ("x-acs-content-sha256", EMPTY_SHA256),
        ]);
        let signed = names(&hs);
        let cr = v3_canonical_request(&V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &hs,
            signed_headers: &signed,
            payload_hash: EMPTY_SHA256,
        });
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "80154ed121abddf48c8c572714d1e34780757c8389a3f6b0614b65f916798da1"
        );
        let sts = v3_string_to_sign(&cr);
        let sig = v3_signature(SK, &sts);
        assert_eq!(
            v3_authorization(AK, &signed_headers_list(&signed), &sig),
            "ACS3-HMAC-SHA256 Credential=LTAI5tTestKeyId000000000,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=96320e32185f30a36ab4552496abd89cc32db782bd9c4b26c88bd129058e05a7"
        );
        assert!(v3_verify(SK, &sts, &sig));
        assert!(!v3_verify("other", &sts, &sig));
    }

    #[test]
    fn v3_3_extra_signed_headers_and_encoding() {
        let query = p(&[
            ("RegionId", "cn-hangzhou"),
            ("MaxResults", "100"),
            ("DedicatedHostName", "a b*c+d~e"),
        ]);
        let hs = headers(&[
            ("host", "ecs.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "DescribeDedicatedHosts"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "ffffffffffffffffffffffffffffffff"),
            ("x-acs-content-sha256", EMPTY_SHA256),
            ("accept", "application/json"),
            ("user-agent", "ddh-renewd/0.1"),
        ]);
        let signed = names(&hs);
        let cr = v3_canonical_request(&V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &hs,
            signed_headers: &signed,
            payload_hash: EMPTY_SHA256,
        });
        assert!(cr.contains("\nDedicatedHostName=a%20b%2Ac%2Bd~e&MaxResults=100&RegionId=cn-hangzhou\naccept:application/json\n"));
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "027a89d7756a28e3a5a5fe12839187ec839bbbbd9ac6e18a0a95840d1213a73c"
        );
        assert_eq!(
            v3_signature("testsecret", &v3_string_to_sign(&cr)),
            "27ce39647cc6e1e4bb8fe008cdb67d41ddea93549735ae93697b15824b107e37"
        );
    }

    #[test]
    fn v3_4_form_body() {
        let body = "AutoRenew=true&DedicatedHostIds=dh-bp1aaaaaaaaaaaaaaaa&Duration=1&PeriodUnit=Month&RegionId=cn-hangzhou";
        let payload = sha256_hex(body.as_bytes());
        assert_eq!(
            payload,
            "ae5f79e29671759fb21056d481db960185540523aa5310af32d7a8b913647030"
        );
        let hs = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "ecs.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "ModifyDedicatedHostAutoRenewAttribute"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "c0ffee00c0ffee00c0ffee00c0ffee00"),
            ("x-acs-content-sha256", &payload),
        ]);
        let signed = names(&hs);
        assert_eq!(
            signed_headers_list(&signed),
            "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        let cr = v3_canonical_request(&V3Input {
            method: "POST",
            path: "/",
            query: &[],
            headers: &hs,
            signed_headers: &signed,
            payload_hash: &payload,
        });
        assert!(cr.starts_with("POST\n/\n\ncontent-type:"), "{cr}");
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "41c713495d9f1a93e86c0b028beb6efc88498deccd387f924910ecc66749110e"
        );
        assert_eq!(
            v3_signature(SK, &v3_string_to_sign(&cr)),
            "70a72838867c5b3074926fc8b01df12f8345c886c8557a58221a451c6c6bdff9"
        );
    }

    #[test]
    fn authorization_round_trip() {
        let h = v3_authorization("AK1", "host;x-acs-date", "abcd");
        assert_eq!(
            parse_v3_authorization(&h),
            Some(V3Authorization {
                access_key_id: "AK1".into(),
                signed_headers: vec!["host".into(), "x-acs-date".into()],
                signature: "abcd".into(),
            })
        );
        assert_eq!(parse_v3_authorization("Bearer x"), None);
    }

    #[test]
    fn canonical_query_round_trips() {
        let params: Vec<(String, String)> = vec![
            ("RegionId".into(), "cn-hangzhou".into()),
            ("DedicatedHostIds".into(), r#"["dh-b","dh-a"]"#.into()),
            ("ClientToken".into(), "a b+c*~é/%".into()),
            ("Period".into(), "1".into()),
        ];
        let q = canonical_query(&params);
        let back = parse_canonical_query(&q);
        assert_eq!(canonical_query(&back), q, "byte-identical");
        let mut sorted = params.clone();
        sorted.sort();
        assert_eq!(back, sorted);
    }
}
