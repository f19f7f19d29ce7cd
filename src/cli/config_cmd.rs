//! `check-config`: validate and print the effective config, secrets redacted.

use super::output;
use crate::config::Config;
use crate::error::{Error, Result};

pub fn run(config: &Config, json: bool) -> Result<()> {
    if json {
        return output::json(config);
    }
    let text = toml::to_string_pretty(config)
        .map_err(|e| Error::Runtime(format!("cannot render the config: {e}")))?;
    println!("# effective configuration (secrets redacted)\n{text}");
    Ok(())
}
