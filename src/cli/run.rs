//! `run`: the daemon, built by the composition root.

use crate::config::Config;
use crate::error::Result;

pub async fn run(config: &Config) -> Result<()> {
    crate::app::daemon(config).await
}
