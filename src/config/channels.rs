//! `[[notify.channel]]`: where notices go besides the log — the generic JSON webhook, chat robots
//! (DingTalk, Feishu/Lark, WeCom, Slack) and mail over SMTP. Several at once, each with the notice
//! kinds it is sent. Secrets (tokens in URLs, signing secrets, SMTP passwords) are kept out of
//! `Debug`, `Display` and `Serialize`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ConfigError, SecretUrl, invalid};
use crate::domain::protocol::NoticeKind;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    secret: Option<String>,
    kinds: Option<Vec<String>>,
    template: Option<String>,
    host: Option<String>,
    port: Option<i64>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
}

/// What kind of receiver a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Webhook,
    Dingtalk,
    Feishu,
    Wecom,
    Slack,
    Smtp,
}

impl ChannelKind {
    pub const ALL: &'static [Self] = &[
        Self::Webhook,
        Self::Dingtalk,
        Self::Feishu,
        Self::Wecom,
        Self::Slack,
        Self::Smtp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Dingtalk => "dingtalk",
            Self::Feishu => "feishu",
            Self::Wecom => "wecom",
            Self::Slack => "slack",
            Self::Smtp => "smtp",
        }
    }
}

/// A value that must never be shown: a robot's signing secret, an SMTP password.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "(none)"
        } else {
            "(redacted)"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "(redacted)" })
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic); port 587.
    Starttls,
    /// TLS from the first byte ("SMTPS"); port 465.
    Tls,
    /// No encryption: only to a relay on loopback.
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Secret,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    /// The robot's or webhook's URL (empty for SMTP).
    pub url: SecretUrl,
    /// DingTalk/Feishu signing secret; empty when the robot does not sign.
    pub secret: Secret,
    /// The notice kinds this channel is sent.
    pub kinds: Vec<NoticeKind>,
    /// Message text with `{placeholders}`; `None`: the built-in text for the kind.
    pub template: Option<String>,
    pub smtp: Option<SmtpConfig>,
}

impl ChannelConfig {
    /// The generic webhook of `[notify] webhook_url`, every kind.
    pub fn legacy_webhook(url: SecretUrl) -> Self {
        Self {
            name: "webhook".to_owned(),
            kind: ChannelKind::Webhook,
            url,
            secret: Secret::default(),
            kinds: NoticeKind::ALL.to_vec(),
            template: None,
            smtp: None,
        }
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "kind",
    "host_id",
    "region",
    "cycle",
    "day",
    "code",
    "message",
    "action",
    "notice_id",
];

fn bad(message: String) -> ConfigError {
    invalid("notify.channel", message)
}

pub(super) fn validate(
    raw: Vec<RawChannel>,
    legacy: Option<SecretUrl>,
) -> Result<Vec<ChannelConfig>, ConfigError> {
    let mut out: Vec<ChannelConfig> = Vec::new();
    if let Some(url) = legacy {
        out.push(ChannelConfig::legacy_webhook(url));
    }
    for (i, r) in raw.into_iter().enumerate() {
        let name = channel_name(r.name.clone(), i, &out)?;
        let c = channel(name, r)?;
        out.push(c);
    }
    Ok(out)
}

/// The `name` of channel number `i` (from 0): required, well formed, not used before.
fn channel_name(
    name: Option<String>,
    i: usize,
    before: &[ChannelConfig],
) -> Result<String, ConfigError> {
    let at = format!("[[notify.channel]] #{}", i + 1);
    let name = name.ok_or_else(|| bad(format!("{at}: `name` is required (e.g. \"oncall\")")))?;
    let name_ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(bad(format!(
            "{at}: name {name:?} must be 1 to 32 of a-z, 0-9, '-' and '_'"
        )));
    }
    if before.iter().any(|c| c.name == name) {
        let why = if name == "webhook" {
            " (the name of [notify] webhook_url's channel)"
        } else {
            ""
        };
        return Err(bad(format!("{at}: name {name:?} is used twice{why}")));
    }
    Ok(name)
}

/// One named channel: its kind, the notice kinds it takes, its template and its receiver.
fn channel(name: String, r: RawChannel) -> Result<ChannelConfig, ConfigError> {
    let at = format!("[[notify.channel]] {name:?}");
    let valid_kinds = ChannelKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let kind_raw = r
        .kind
        .ok_or_else(|| bad(format!("{at}: `kind` is required; one of {valid_kinds}")))?;
    let kind = ChannelKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == kind_raw)
        .ok_or_else(|| {
            bad(format!(
                "{at}: kind {kind_raw:?} is not one of {valid_kinds}"
            ))
        })?;
    let kinds = notice_kinds(&at, r.kinds)?;
    if let Some(t) = &r.template {
        check_template(t).map_err(|e| bad(format!("{at}: template: {e}")))?;
    }
    let secret = Secret(r.secret.unwrap_or_default());
    let smtp_fields = r.host.is_some()
        || r.port.is_some()
        || r.tls.is_some()
        || r.username.is_some()
        || r.password.is_some()
        || r.from.is_some()
        || r.to.is_some();
    let (url, smtp) = if kind == ChannelKind::Smtp {
        if r.url.is_some() || !secret.is_empty() {
            return Err(bad(format!(
                "{at}: `url` and `secret` are for webhooks and robots; mail uses host, port, tls, username, password, from, to"
            )));
        }
        (
            SecretUrl::default(),
            Some(smtp(
                &at, r.host, r.port, r.tls, r.username, r.password, r.from, r.to,
            )?),
        )
    } else {
        if smtp_fields {
            return Err(bad(format!(
                "{at}: host, port, tls, username, password, from and to are for kind = \"smtp\""
            )));
        }
        (robot_url(&at, kind, r.url, &secret)?, None)
    };
    Ok(ChannelConfig {
        name,
        kind,
        url,
        secret,
        kinds,
        template: r.template,
        smtp,
    })
}

/// The notice kinds a channel takes: all when not given; never an empty list.
fn notice_kinds(at: &str, list: Option<Vec<String>>) -> Result<Vec<NoticeKind>, ConfigError> {
    let Some(list) = list else {
        return Ok(NoticeKind::ALL.to_vec());
    };
    if list.is_empty() {
        return Err(bad(format!(
            "{at}: `kinds` is empty; leave it out to send every kind"
        )));
    }
    let mut v = Vec::new();
    for k in list {
        let parsed = NoticeKind::ALL
            .iter()
            .copied()
            .find(|n| n.as_str() == k)
            .ok_or_else(|| {
                let all = NoticeKind::ALL
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                bad(format!("{at}: notice kind {k:?} is not one of {all}"))
            })?;
        if !v.contains(&parsed) {
            v.push(parsed);
        }
    }
    Ok(v)
}

/// A webhook's or robot's URL, and a `secret` only where the kind signs with one.
fn robot_url(
    at: &str,
    kind: ChannelKind,
    url: Option<String>,
    secret: &Secret,
) -> Result<SecretUrl, ConfigError> {
    let url = url.unwrap_or_default();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(bad(format!(
            "{at}: `url` must be the robot's http:// or https:// URL (value not shown: it may hold a token)"
        )));
    }
    if !secret.is_empty() && !matches!(kind, ChannelKind::Dingtalk | ChannelKind::Feishu) {
        return Err(bad(format!(
            "{at}: `secret` signs DingTalk and Feishu messages; a {} channel has none",
            kind.as_str()
        )));
    }
    Ok(SecretUrl(url))
}

#[allow(clippy::too_many_arguments)]
fn smtp(
    at: &str,
    host: Option<String>,
    port: Option<i64>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
) -> Result<SmtpConfig, ConfigError> {
    let host = host
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad(format!("{at}: `host` (the mail server) is required")))?;
    let tls = match tls.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpTls::Starttls,
        "tls" => SmtpTls::Tls,
        "none" => SmtpTls::None,
        other => {
            return Err(bad(format!(
                "{at}: tls {other:?} is not one of starttls, tls, none"
            )));
        }
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if tls == SmtpTls::None && !loopback {
        return Err(bad(format!(
            "{at}: tls = \"none\" is allowed only to a relay on loopback (127.0.0.1, ::1, localhost); use starttls or tls"
        )));
    }
    let port = match port {
        None => match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(format!("{at}: port {p} is not 1 to 65535")))?,
    };
    if username.is_some() != password.is_some() {
        return Err(bad(format!(
            "{at}: `username` and `password` go together (both, or neither for a relay without login)"
        )));
    }
    let address = |a: &str| {
        let parts = a.rsplit_once('@');
        parts.is_some_and(|(l, d)| !l.is_empty() && (d.contains('.') || d == "localhost"))
            && !a.contains(['\r', '\n', ' ', '<', '>', ','])
    };
    let from = from.ok_or_else(|| bad(format!("{at}: `from` (an address) is required")))?;
    if !address(&from) {
        return Err(bad(format!("{at}: from {from:?} is not a mail address")));
    }
    let to = to.unwrap_or_default();
    if to.is_empty() {
        return Err(bad(format!("{at}: `to` (a list of addresses) is required")));
    }
    if let Some(a) = to.iter().find(|a| !address(a)) {
        return Err(bad(format!("{at}: to {a:?} is not a mail address")));
    }
    Ok(SmtpConfig {
        host,
        port,
        tls,
        username,
        password: Secret(password.unwrap_or_default()),
        from,
        to,
    })
}

/// A template's `{name}`s must be known placeholders; `{{` and `}}` are literal braces.
fn check_template(t: &str) -> Result<(), String> {
    if t.trim().is_empty() {
        return Err("is empty".into());
    }
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err("a '}' without its '{' (write }} for a brace)".into());
        }
        let end = tail
            .find('}')
            .ok_or("a '{' without its '}' (write {{ for a brace)")?;
        let name = &tail[1..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}}; known: {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(channels: &str) -> String {
        Config::parse(&format!("[notify]\n{channels}"), "t")
            .expect_err("must be refused")
            .to_string()
    }

    const DING: &str = "[[notify.channel]]\nname = \"ding\"\nkind = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=TOK3N\"\nsecret = \"SECs3cret\"\n";

    #[test]
    fn bad_channels_are_refused_with_the_valid_values() {
        let e = err(
            "[[notify.channel]]\nname = \"x\"\nkind = \"teams\"\nurl = \"https://a.example/\"\n",
        );
        assert!(
            e.contains("\"teams\" is not one of webhook, dingtalk, feishu, wecom, slack, smtp"),
            "{e}"
        );
        let e = err(
            "[[notify.channel]]\nname = \"x\"\nkind = \"slack\"\nurl = \"https://a.example/\"\nkinds = [\"lapse\"]\n",
        );
        assert!(
            e.contains("notice kind \"lapse\" is not one of renewed, renewal_failed, lapsed"),
            "{e}"
        );
        let e = err(&format!("{DING}{DING}"));
        assert!(e.contains("name \"ding\" is used twice"), "{e}");
        let e = Config::parse(
            "[notify]\nwebhook_url = \"https://h.example/x\"\n[[notify.channel]]\nname = \"webhook\"\nkind = \"slack\"\nurl = \"https://a.example/\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[notify] webhook_url's channel"), "{e}");
        let e = err(
            "[[notify.channel]]\nname = \"Ops Room\"\nkind = \"slack\"\nurl = \"https://a.example/\"\n",
        );
        assert!(e.contains("must be 1 to 32 of a-z"), "{e}");
        let e = err(
            "[[notify.channel]]\nname = \"w\"\nkind = \"wecom\"\nurl = \"https://a.example/?key=K\"\nsecret = \"S\"\n",
        );
        assert!(e.contains("`secret` signs DingTalk and Feishu"), "{e}");
        let e = err(
            "[[notify.channel]]\nname = \"w\"\nkind = \"wecom\"\nurl = \"ftp://K3Y@a.example/\"\n",
        );
        assert!(
            e.contains("http:// or https://") && !e.contains("K3Y"),
            "{e}"
        );
        let e = err(
            "[[notify.channel]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://a.example/\"\ntemplate = \"{host} down\"\n",
        );
        assert!(
            e.contains("unknown placeholder {host}; known: {kind} {host_id}"),
            "{e}"
        );
        let e = err(
            "[[notify.channel]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\ntls = \"none\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
        );
        assert!(e.contains("only to a relay on loopback"), "{e}");
        let e = err(
            "[[notify.channel]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nusername = \"u\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
        );
        assert!(e.contains("`username` and `password` go together"), "{e}");
        let e = err(
            "[[notify.channel]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\\r\\nBcc: x@evil.example\"]\n",
        );
        assert!(e.contains("is not a mail address"), "{e}");
        let e = err(
            "[[notify.channel]]\nname = \"m\"\nkind = \"smtp\"\nurl = \"https://a.example/\"\nhost = \"h.example\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
        );
        assert!(e.contains("mail uses host, port"), "{e}");
    }

    #[test]
    fn defaults_and_secrets_never_shown() {
        let c = Config::parse(
            &format!("[notify]\n{DING}\n[[notify.channel]]\nname = \"mail\"\nkind = \"smtp\"\nhost = \"smtp.example.com\"\nusername = \"u\"\npassword = \"PASSw0rd\"\nfrom = \"ddh@example.com\"\nto = [\"ops@example.com\"]\nkinds = [\"lapsed\", \"lapsed\"]\n"),
            "t",
        )
        .unwrap();
        let ch = &c.notify.channels;
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[0].kinds.len(), 8, "every kind by default");
        assert_eq!(ch[1].kinds.len(), 1);
        let smtp = ch[1].smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, super::SmtpTls::Starttls));
        let shown = format!("{:?}\n{}", c, serde_json::to_string(&c).unwrap());
        for s in ["TOK3N", "SECs3cret", "PASSw0rd"] {
            assert!(!shown.contains(s), "{s} shown in {shown}");
        }
        assert!(shown.contains("https://oapi.dingtalk.com/…(redacted)"));
    }
}
