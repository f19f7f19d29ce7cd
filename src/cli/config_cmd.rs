//! `check-config`: validate the config and the credentials source, print the effective config
//! with secrets redacted. Unusable credentials exit 2. `--online` also asks ECS: a wrong secret
//! exits 2 with ECS's own error, an unreachable endpoint 1.

use serde_json::json;

use super::output;
use crate::config::Config;
use crate::ecs::Provider;
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Also make one read-only call (DescribeDedicatedHosts, one host, first region) and report
    /// whether ECS accepts the credentials, or its exact error.
    #[arg(long)]
    pub online: bool,
    /// Print JSON instead of TOML.
    #[arg(long)]
    pub json: bool,
}

/// One read-only call: `Ok(RequestId)` or the error, classified.
async fn online_check(config: &Config) -> std::result::Result<String, crate::ecs::EcsError> {
    let client =
        crate::app::client(config).map_err(|e| crate::ecs::EcsError::Setup(e.to_string()))?;
    let region = config.ecs.regions.first().cloned().unwrap_or_default();
    let params = vec![
        ("RegionId".to_owned(), region),
        ("MaxResults".to_owned(), "1".to_owned()),
    ];
    let r: crate::ecs::models::DescribeDedicatedHostsResponse = client
        .call_once("DescribeDedicatedHosts", &config.ecs.regions[0], &params)
        .await?;
    Ok(r.request_id)
}

/// One line on the credentials: where they come from and whose they are, or why not usable.
fn credentials_status(
    creds: &std::result::Result<(&Provider, crate::ecs::credentials::Credentials), String>,
) -> String {
    match creds {
        Ok((p, c)) => format!(
            "ok (source {}, {}{}{})",
            p.source_name(),
            p.identity(),
            if p.identity().starts_with("AccessKeyId") {
                String::new()
            } else {
                format!(", temporary AccessKeyId {}", c.access_key_id)
            },
            match (p.expires(), c.security_token.is_some()) {
                (Some(t), _) => format!(
                    ", with STS token, expires {}",
                    crate::domain::time::to_db(t)
                ),
                (None, true) => ", with STS token".to_owned(),
                (None, false) => String::new(),
            }
        ),
        Err(e) => format!("NOT USABLE: {e}"),
    }
}

/// The effective configuration (secrets redacted) with the credentials' and the online check's
/// lines, as JSON or as TOML with comments.
fn render(config: &Config, json: bool, status: &str, online: Option<&str>) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(config)
            .map_err(|e| Error::Runtime(format!("cannot render the config: {e}")))?;
        v["credentials_status"] = json!(status);
        if let Some(t) = online {
            v["online"] = json!(t);
        }
        output::json(&v)
    } else {
        let text = toml::to_string_pretty(config)
            .map_err(|e| Error::Runtime(format!("cannot render the config: {e}")))?;
        println!("# effective configuration (secrets redacted)\n{text}");
        println!("# credentials: {status}");
        if let Some(t) = online {
            println!("# online: {t}");
        }
        Ok(())
    }
}

pub async fn run(config: &Config, args: &CheckArgs) -> Result<()> {
    let json = args.json;
    let provider = Provider::from_config(&config.credentials, &|k| std::env::var(k).ok());
    // Short-lived sources are asked once here, so that "ok" means credentials were obtained.
    let creds: std::result::Result<_, String> = match &provider {
        Ok(p) => p
            .credentials()
            .await
            .map(|c| (p, c))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let status = credentials_status(&creds);
    let online = match (&creds, args.online) {
        (Ok((p, _)), true) => Some(match online_check(config).await {
            Ok(rid) => Ok(format!(
                "ok: ECS accepted {} in {} (DescribeDedicatedHosts, RequestId {rid})",
                p.identity(),
                config.ecs.regions[0]
            )),
            Err(e) => Err(e),
        }),
        _ => None,
    };
    let online_text = online.as_ref().map(|o| match o {
        Ok(t) => t.clone(),
        Err(e) => format!("FAILED: {e}"),
    });
    render(config, json, &status, online_text.as_deref())?;
    if let Some(Err(e)) = online {
        return Err(if e.class() == crate::ecs::ErrorClass::Configuration {
            Error::Usage(format!("the credentials do not work: {e}"))
        } else {
            Error::Runtime(format!("cannot reach ECS: {e}"))
        });
    }
    match creds {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Usage(e)),
    }
}
