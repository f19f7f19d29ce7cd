//! `check-config`: validate the config and the credentials source, print the effective config
//! with secrets redacted. Unusable credentials exit 2.

use serde_json::json;

use super::output;
use crate::config::Config;
use crate::ecs::credentials;
use crate::error::{Error, Result};

pub fn run(config: &Config, json: bool) -> Result<()> {
    let creds = credentials::load(&config.credentials, &|k| std::env::var(k).ok());
    let status = match &creds {
        Ok(c) => format!(
            "ok ({:?} source, AccessKeyId {}{})",
            config.credentials.source,
            c.access_key_id,
            if c.security_token.is_some() {
                ", with STS token"
            } else {
                ""
            }
        ),
        Err(e) => format!("NOT USABLE: {e}"),
    };
    if json {
        let mut v = serde_json::to_value(config)
            .map_err(|e| Error::Runtime(format!("cannot render the config: {e}")))?;
        v["credentials_status"] = json!(status);
        output::json(&v)?;
    } else {
        let text = toml::to_string_pretty(config)
            .map_err(|e| Error::Runtime(format!("cannot render the config: {e}")))?;
        println!("# effective configuration (secrets redacted)\n{text}");
        println!("# credentials: {status}");
    }
    match creds {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Usage(e.to_string())),
    }
}
