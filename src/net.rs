//! The one rule for every URL ddh-renewd is configured with — the ECS endpoint, the STS
//! endpoint, a credentials URI, the instance metadata endpoint: an absolute http(s) URL with a
//! host and no user info, and plain http only for a loopback host (unless the caller allows it:
//! the instance metadata service is plain http by design). `config` checks it when the file is
//! read; the client and the credential providers check it again where they are built.

use std::fmt;

/// What is wrong with a URL; the message never repeats user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    NotUrl(String),
    UserInfo,
    NoHost,
    PlainHttp { host: String },
    Scheme(String),
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUrl(e) => write!(f, "is not a URL: {e}"),
            Self::UserInfo => f.write_str(
                "carries user info (user:password@); credentials never go in a URL (use [credentials])",
            ),
            Self::NoHost => f.write_str("has no host"),
            Self::PlainHttp { host } => write!(
                f,
                "plain http is allowed only for a loopback host (127.0.0.0/8, ::1, localhost), not {host:?}; use https://"
            ),
            Self::Scheme(s) => write!(
                f,
                "scheme {s:?} is not supported; use https:// (or http:// on loopback)"
            ),
        }
    }
}

/// Checks `url` against the rule; `any_http` allows plain http to any host.
pub fn check_url(url: &str, any_http: bool) -> Result<reqwest::Url, UrlProblem> {
    let parsed = reqwest::Url::parse(url).map_err(|e| UrlProblem::NotUrl(e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlProblem::UserInfo);
    }
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if any_http || is_loopback_host(&host) => Ok(parsed),
        "http" => Err(UrlProblem::PlainHttp { host }),
        s => Err(UrlProblem::Scheme(s.to_owned())),
    }
}

/// `localhost` or a loopback address (127.0.0.0/8, ::1).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A URL for messages: any user info replaced by `***`.
pub fn redact_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert!(check_url("https://ecs.cn-hangzhou.aliyuncs.com", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_url("http://[::1]:8080/x", false).is_ok());
        assert!(check_url("http://localhost", false).is_ok());
        assert_eq!(
            check_url("http://100.100.100.200", false),
            Err(UrlProblem::PlainHttp {
                host: "100.100.100.200".into()
            })
        );
        assert!(check_url("http://100.100.100.200", true).is_ok());
        assert_eq!(
            check_url("https://ak:SECRET@example.com", false),
            Err(UrlProblem::UserInfo)
        );
        assert_eq!(
            check_url("ftp://example.com", true),
            Err(UrlProblem::Scheme("ftp".into()))
        );
        assert!(matches!(
            check_url("example.com", false),
            Err(UrlProblem::NotUrl(_))
        ));
        assert_eq!(
            redact_userinfo("https://ak:SECRET@example.com/p?q"),
            "https://***@example.com/p?q"
        );
        assert!(!UrlProblem::UserInfo.to_string().contains("SECRET"));
    }
}
