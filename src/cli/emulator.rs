//! `emulator`: run the local ECS endpoint until SIGINT/SIGTERM.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// JSON object {"AccessKeyId": "secret", …} of accepted keys.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// One accepted AccessKeyId (with --access-key-secret).
    #[arg(long, requires = "access_key_secret")]
    pub access_key_id: Option<String>,
    /// Its secret.
    #[arg(long, requires = "access_key_id")]
    pub access_key_secret: Option<String>,
    /// Calls per (key, action) per minute before Throttling.User.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub quota: u32,
}

pub async fn run(args: &EmulatorArgs) -> Result<()> {
    let mut keys: HashMap<String, String> = HashMap::new();
    if let Some(path) = &args.keys {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read --keys {}: {e}", path.display())))?;
        keys = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "--keys {}: expected a JSON object {{\"AccessKeyId\": \"secret\"}}: {e}",
                path.display()
            ))
        })?;
    }
    if let (Some(id), Some(secret)) = (&args.access_key_id, &args.access_key_secret) {
        keys.insert(id.clone(), secret.clone());
    }
    let builtin = keys.is_empty();
    if builtin {
        keys.insert(TEST_ACCESS_KEY_ID.into(), TEST_ACCESS_KEY_SECRET.into());
    }
    let ids: Vec<String> = keys.keys().cloned().collect();
    let emu = Emulator::start(
        args.listen,
        EmulatorConfig {
            keys,
            quota_per_minute: args.quota,
        },
    )
    .await
    .map_err(|e| Error::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ddh-renewd emulator listening on {}", emu.endpoint());
    if builtin {
        let _ = writeln!(
            out,
            "test key pair: AccessKeyId {TEST_ACCESS_KEY_ID} secret {TEST_ACCESS_KEY_SECRET}"
        );
    } else {
        let _ = writeln!(out, "accepted AccessKeyIds: {}", ids.join(", "));
    }
    let _ = writeln!(
        out,
        "admin API: {}/_emulator/ (loopback only)",
        emu.endpoint()
    );
    let _ = out.flush();
    wait_for_signal().await;
    emu.stop().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    crate::app::on_signal().await;
}
