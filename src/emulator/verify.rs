//! Signature verification for the emulator, on top of `ecs::sign`: V1 over query ∪ body minus
//! `Signature` with the real HTTP verb; V3 by rebuilding the canonical headers from the
//! `SignedHeaders` list in `Authorization`. Freshness (15 minutes) and nonce replay are judged on
//! the real wall clock, never the virtual one.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::actions::ApiErr;
use super::state::State;
use crate::ecs::sign;

pub const MAX_SKEW_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigVersion {
    V1,
    V3,
}

impl SigVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V3 => "v3",
        }
    }
}

/// What a verified request proved.
pub struct Verified {
    pub version: SigVersion,
    pub access_key_id: String,
}

/// A failed verification, with what is known for the request log.
pub struct Rejected {
    pub version: Option<SigVersion>,
    pub access_key_id: String,
    pub error: ApiErr,
}

pub struct Request<'a> {
    pub method: &'a str,
    /// Decoded URL query parameters.
    pub query: &'a [(String, String)],
    /// Decoded form-body parameters (empty unless the body is x-www-form-urlencoded).
    pub form: &'a [(String, String)],
    /// Header (lower-case name, value) pairs.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

fn header<'a>(r: &'a Request<'_>, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn missing(name: &str) -> ApiErr {
    ApiErr::new(
        400,
        "MissingParameter",
        format!(
            "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
        ),
    )
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| t.and_utc())
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

fn check_fresh(raw: &str, wall_now: DateTime<Utc>) -> Result<(), ApiErr> {
    let t = parse_time(raw).ok_or_else(|| {
        ApiErr::new(
            400,
            "InvalidTimeStamp.Format",
            format!("Specified time stamp {raw:?} is not in the format yyyy-MM-ddTHH:mm:ssZ."),
        )
    })?;
    if (wall_now - t).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(ApiErr::new(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    Ok(())
}

fn mismatch(string_to_sign: &str) -> ApiErr {
    ApiErr::new(
        400,
        "SignatureDoesNotMatch",
        format!(
            "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
        ),
    )
}

/// Verifies a request; on success the nonce is consumed.
pub fn verify(
    req: &Request<'_>,
    keys: &HashMap<String, String>,
    state: &mut State,
    wall_now: DateTime<Utc>,
) -> Result<Verified, Rejected> {
    let has_v1 = req
        .query
        .iter()
        .chain(req.form)
        .any(|(k, _)| k == "Signature");
    let auth = header(req, "authorization");
    if has_v1 {
        verify_v1(req, keys, state, wall_now)
    } else if let Some(a) = auth.filter(|a| a.trim_start().starts_with(sign::V3_ALGORITHM)) {
        verify_v3(req, a, keys, state, wall_now)
    } else {
        Err(Rejected {
            version: None,
            access_key_id: String::new(),
            error: ApiErr::new(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Alibaba Cloud standards: no Signature parameter and no ACS3-HMAC-SHA256 Authorization header.",
            ),
        })
    }
}

fn verify_v1(
    req: &Request<'_>,
    keys: &HashMap<String, String>,
    state: &mut State,
    wall_now: DateTime<Utc>,
) -> Result<Verified, Rejected> {
    let all: Vec<(String, String)> = req.query.iter().chain(req.form).cloned().collect();
    let get = |n: &str| all.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let ak = get("AccessKeyId").unwrap_or_default().to_owned();
    let reject = |error| Rejected {
        version: Some(SigVersion::V1),
        access_key_id: ak.clone(),
        error,
    };
    if ak.is_empty() {
        return Err(reject(missing("AccessKeyId")));
    }
    let secret = keys.get(&ak).ok_or_else(|| {
        reject(ApiErr::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ))
    })?;
    let signature = get("Signature").unwrap_or_default().to_owned();
    let signed: Vec<(String, String)> = all.into_iter().filter(|(k, _)| k != "Signature").collect();
    let sts = sign::v1_string_to_sign(req.method, &signed);
    if !sign::v1_verify(secret, &sts, &signature) {
        return Err(reject(mismatch(&sts)));
    }
    let ts = signed
        .iter()
        .find(|(k, _)| k == "Timestamp")
        .map(|(_, v)| v.as_str());
    check_fresh(ts.ok_or_else(|| reject(missing("Timestamp")))?, wall_now).map_err(reject)?;
    let nonce = signed
        .iter()
        .find(|(k, _)| k == "SignatureNonce")
        .map(|(_, v)| v.as_str());
    let nonce = nonce
        .filter(|n| !n.is_empty())
        .ok_or_else(|| reject(missing("SignatureNonce")))?;
    if !state.use_nonce(nonce) {
        return Err(reject(ApiErr::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )));
    }
    Ok(Verified {
        version: SigVersion::V1,
        access_key_id: ak,
    })
}

fn verify_v3(
    req: &Request<'_>,
    auth: &str,
    keys: &HashMap<String, String>,
    state: &mut State,
    wall_now: DateTime<Utc>,
) -> Result<Verified, Rejected> {
    let parsed = sign::parse_v3_authorization(auth);
    let ak = parsed
        .as_ref()
        .map(|p| p.access_key_id.clone())
        .unwrap_or_default();
    let reject = |error| Rejected {
        version: Some(SigVersion::V3),
        access_key_id: ak.clone(),
        error,
    };
    let parsed = parsed.ok_or_else(|| {
        reject(ApiErr::new(
            400,
            "IncompleteSignature",
            "The Authorization header does not have Credential, SignedHeaders and Signature.",
        ))
    })?;
    let secret = keys.get(&parsed.access_key_id).ok_or_else(|| {
        reject(ApiErr::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ))
    })?;
    let payload = sign::sha256_hex(req.body);
    if let Some(claimed) = header(req, "x-acs-content-sha256")
        && !claimed.eq_ignore_ascii_case(&payload)
    {
        return Err(reject(ApiErr::new(
            400,
            "SignatureDoesNotMatch",
            "x-acs-content-sha256 does not match the request body.",
        )));
    }
    let canonical = sign::v3_canonical_request(&sign::V3Input {
        method: req.method,
        path: "/",
        query: req.query,
        headers: req.headers,
        signed_headers: &parsed.signed_headers,
        payload_hash: &payload,
    });
    let sts = sign::v3_string_to_sign(&canonical);
    if !sign::v3_verify(secret, &sts, &parsed.signature) {
        return Err(reject(mismatch(&sts)));
    }
    let date = header(req, "x-acs-date").ok_or_else(|| reject(missing("x-acs-date")))?;
    check_fresh(date, wall_now).map_err(reject)?;
    if let Some(nonce) = header(req, "x-acs-signature-nonce").filter(|n| !n.is_empty())
        && !state.use_nonce(nonce)
    {
        return Err(reject(ApiErr::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )));
    }
    Ok(Verified {
        version: SigVersion::V3,
        access_key_id: parsed.access_key_id,
    })
}
