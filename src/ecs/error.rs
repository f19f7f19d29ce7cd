//! ECS errors at the client boundary: the Alibaba error body parsed into [`ApiError`], transport
//! failures, and the classification of SPEC §3.2 that decides what the engine does next.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::protocol::{Answer, Refusal};

/// The standard error body (`RequestId`, `HostId`, `Code`, `Message`, `Recommend`) plus the HTTP
/// status it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    #[serde(rename = "Code", default)]
    pub code: String,
    #[serde(rename = "Message", default)]
    pub message: String,
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "HostId", default)]
    pub host_id: Option<String>,
    #[serde(rename = "Recommend", default)]
    pub recommend: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.code, self.status, self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [RequestId {id}]")?;
        }
        Ok(())
    }
}

/// What the engine does with a failure (SPEC §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Retry in the same window, same attempt and ClientToken, with backoff.
    Transient,
    /// Recorded; next window, new attempt.
    Definite,
    /// Stop sending, raise `config_error`, report unhealthy.
    Configuration,
    /// The host leaves automatic renewal.
    HostGone,
}

/// Classifies an API error code (with its HTTP status).
pub fn classify(status: u16, code: &str) -> ErrorClass {
    const TRANSIENT: &[&str] = &[
        "InternalError",
        "UnknownError",
        "LastTokenProcessing",
        "LastOrderProcessing",
        "IdempotentProcessing",
        "InvalidStatus.Upgrading",
        "OperationConflict",
        "SignatureNonceUsed",
    ];
    const CONFIG_EXACT: &[&str] = &[
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidTimeStamp.Expired",
        "InvalidPeriod",
        "UnsupportedHTTPMethod",
    ];
    const CONFIG_PREFIX: &[&str] = &[
        "InvalidAccessKeyId",
        "InvalidAccessKeySecret",
        "InvalidSecurityToken",
        "Forbidden",
        "InvalidPeriod",
    ];
    const HOST_GONE: &[&str] = &["InvalidDedicatedHostId.NotFound", "ChargeTypeViolation"];

    if TRANSIENT.contains(&code)
        || code.starts_with("ServiceUnavailable")
        || code.starts_with("Throttling")
        || code == "Rejected.Throttling"
        || status >= 500
    {
        ErrorClass::Transient
    } else if CONFIG_EXACT.contains(&code) || CONFIG_PREFIX.iter().any(|p| code.starts_with(p)) {
        ErrorClass::Configuration
    } else if HOST_GONE.contains(&code) {
        ErrorClass::HostGone
    } else {
        ErrorClass::Definite
    }
}

/// The codes that mean "this ClientToken is bound to other parameters": re-read, then decide;
/// never a new token on this ground alone.
pub fn is_idempotence_mismatch(code: &str) -> bool {
    matches!(
        code,
        "IdempotenceParamNotMatch" | "IdempotentParameterMismatch" | "IdempotentFailed"
    )
}

/// A throttling answer: the limiter slows down further.
pub fn is_throttling(code: &str) -> bool {
    code.starts_with("Throttling") || code == "Rejected.Throttling"
}

#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// The API answered with an error body.
    #[error("{action}: {error}")]
    Api {
        action: &'static str,
        error: Box<ApiError>,
    },
    /// No (complete) answer: connection failure, timeout, dropped response. The request may or
    /// may not have been processed.
    #[error("{action}: {}: {message}", if *.timeout { "timed out" } else { "network error" })]
    Transport {
        action: &'static str,
        message: String,
        timeout: bool,
    },
    /// An answer that is not the documented shape.
    #[error("{action}: malformed response (HTTP {status}): {message}")]
    Decode {
        action: &'static str,
        status: u16,
        message: String,
    },
    /// The endpoint answered with a redirect. Redirects are never followed: the request, its
    /// ClientToken and the security token would go to a host the endpoint check never saw.
    #[error(
        "{action}: the endpoint answered HTTP {status}, a redirect to {location}; redirects are not followed — check [ecs] endpoint"
    )]
    Redirected {
        action: &'static str,
        status: u16,
        location: String,
    },
    /// The client cannot be built or pointed at an endpoint.
    #[error("ECS client: {0}")]
    Setup(String),
    /// No credentials to sign with (a short-lived source could not be renewed and the last
    /// ones expired). Nothing was sent.
    #[error("{0}")]
    Credentials(String),
}

impl EcsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api { error, .. } => classify(error.status, &error.code),
            Self::Transport { .. } => ErrorClass::Transient,
            // An answer that is not the documented shape (a missing list, a count that disagrees
            // with the items, an unreadable or oversized body) proves nothing: try again later.
            Self::Decode { .. } => ErrorClass::Transient,
            Self::Redirected { .. } | Self::Setup(_) | Self::Credentials(_) => {
                ErrorClass::Configuration
            }
        }
    }

    /// What this failure means for a written-ahead `RenewDedicatedHosts` (SPEC §3.1): only a
    /// definite business refusal decides anything; a body that cannot be read, a timeout, a 5xx
    /// or throttling decide nothing, and a refusal before processing says nothing about earlier
    /// sends of the same attempt.
    pub fn answer(&self) -> Answer {
        match self {
            Self::Api { error, .. } if is_idempotence_mismatch(&error.code) => {
                Answer::TokenMismatch
            }
            Self::Api { error, .. } => match classify(error.status, &error.code) {
                ErrorClass::Transient => Answer::Undecided,
                ErrorClass::Definite => Answer::Refused(Refusal::Definite),
                ErrorClass::HostGone => Answer::Refused(Refusal::HostGone),
                ErrorClass::Configuration if error.code.starts_with("InvalidPeriod") => {
                    Answer::Refused(Refusal::Parameters)
                }
                ErrorClass::Configuration => Answer::Unauthorized,
            },
            Self::Transport { .. } | Self::Decode { .. } => Answer::Undecided,
            // Nothing reached the cloud: says nothing about earlier sends.
            Self::Redirected { .. } | Self::Setup(_) | Self::Credentials(_) => Answer::Unauthorized,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_class_table() {
        use ErrorClass::*;
        let cases = [
            (500, "InternalError", Transient),
            (503, "ServiceUnavailable", Transient),
            (503, "ServiceUnavailable.RegionMaintaining", Transient),
            (400, "Throttling", Transient),
            (400, "Throttling.User", Transient),
            (400, "Throttling.Api", Transient),
            (403, "LastTokenProcessing", Transient),
            (400, "LastOrderProcessing", Transient),
            (400, "IdempotentProcessing", Transient),
            (400, "InvalidStatus.Upgrading", Transient),
            (409, "OperationConflict", Transient),
            (400, "SignatureNonceUsed", Transient),
            (502, "BadGateway", Transient),
            (400, "InsufficientBalance", Definite),
            (403, "IncorrectHostStatus", Definite),
            (400, "IdempotenceParamNotMatch", Definite),
            (400, "SomethingElse", Definite),
            (404, "InvalidAccessKeyId.NotFound", Configuration),
            (400, "SignatureDoesNotMatch", Configuration),
            (403, "Forbidden.RAM", Configuration),
            (403, "Forbidden.AccessKeyDisabled", Configuration),
            (400, "InvalidTimeStamp.Expired", Configuration),
            (400, "InvalidPeriod", Configuration),
            (400, "InvalidPeriodUnit.ValueNotSupported", Configuration),
            (400, "InvalidDedicatedHostId.NotFound", HostGone),
            (400, "ChargeTypeViolation", HostGone),
        ];
        for (status, code, want) in cases {
            assert_eq!(classify(status, code), want, "{code}");
        }
    }

    #[test]
    fn only_definite_business_answers_decide_a_renewal() {
        let api = |status, code: &str| EcsError::Api {
            action: "RenewDedicatedHosts",
            error: Box::new(ApiError {
                status,
                code: code.into(),
                message: String::new(),
                request_id: None,
                host_id: None,
                recommend: None,
            }),
        };
        let cases = [
            (
                api(400, "InsufficientBalance"),
                Answer::Refused(Refusal::Definite),
            ),
            (
                api(404, "InvalidDedicatedHostId.NotFound"),
                Answer::Refused(Refusal::HostGone),
            ),
            (
                api(400, "InvalidPeriod"),
                Answer::Refused(Refusal::Parameters),
            ),
            (api(400, "IdempotenceParamNotMatch"), Answer::TokenMismatch),
            (api(400, "IdempotentFailed"), Answer::TokenMismatch),
            (api(403, "LastTokenProcessing"), Answer::Undecided),
            (api(400, "IdempotentProcessing"), Answer::Undecided),
            (api(503, "ServiceUnavailable"), Answer::Undecided),
            (api(400, "Throttling.User"), Answer::Undecided),
            (api(400, "SignatureDoesNotMatch"), Answer::Unauthorized),
            (api(403, "Forbidden.RAM"), Answer::Unauthorized),
            (
                EcsError::Decode {
                    action: "RenewDedicatedHosts",
                    status: 200,
                    message: "x".into(),
                },
                Answer::Undecided,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.answer(), want, "{e}");
        }
    }

    #[test]
    fn transport_is_transient() {
        let e = EcsError::Transport {
            action: "RenewDedicatedHosts",
            message: "connection reset".into(),
            timeout: false,
        };
        assert_eq!(e.class(), ErrorClass::Transient);
    }

    #[test]
    fn parses_the_standard_error_body() {
        let body = r#"{"RequestId":"540CFF28-407A-40B5-B6A5-74Bxxxxxxxxx","HostId":"ecs.aliyuncs.com","Code":"MissingParameter.CommandId","Message":"The input parameter “CommandId” that is required for processing this request is not supplied.","Recommend":"https://error-center.aliyun.com/status/search?Keyword=MissingParameter.CommandId&source=PopGw"}"#;
        let mut e: ApiError = serde_json::from_str(body).unwrap();
        e.status = 400;
        assert_eq!(e.code, "MissingParameter.CommandId");
        assert_eq!(e.host_id.as_deref(), Some("ecs.aliyuncs.com"));
        assert!(e.recommend.unwrap().contains("error-center"));
    }
}
