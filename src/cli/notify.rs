//! `notify test`: a sample notice through each configured channel, and what each answered.

use clap::{Args, Subcommand};

use super::output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::notify::{Notifier, sample_notice};

#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Send a sample notice (recorded nowhere) through every channel, or one, and show each answer.
    /// Exit 1 if a channel did not accept it.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this channel (`name` in [[notify.channel]]; "webhook" for [notify] webhook_url).
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Row<'a> {
    channel: &'a str,
    kind: &'static str,
    receiver: String,
    #[serde(flatten)]
    answer: crate::ops::notify::Answer,
}

/// Every channel, or the one named (an unknown name lists the configured ones).
fn chosen(
    all: &[crate::config::ChannelConfig],
    name: Option<&str>,
) -> Result<Vec<crate::config::ChannelConfig>> {
    let Some(name) = name else {
        return Ok(all.to_vec());
    };
    let found: Vec<_> = all.iter().filter(|c| c.name == name).cloned().collect();
    if found.is_empty() {
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "no channel named {name:?}; configured: {}",
            names.join(", ")
        )));
    }
    Ok(found)
}

fn print_table(rows: &[Row]) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.channel.to_owned(),
                r.kind.to_owned(),
                r.receiver.clone(),
                if r.answer.delivered {
                    "delivered"
                } else {
                    "FAILED"
                }
                .to_owned(),
                r.answer.detail.clone(),
            ]
        })
        .collect();
    output::table(&["CHANNEL", "KIND", "RECEIVER", "RESULT", "ANSWER"], &table);
}

pub async fn run(config: &Config, cmd: NotifyCmd) -> Result<()> {
    let NotifyCmd::Test(args) = cmd;
    let all = &config.notify.channels;
    if all.is_empty() {
        return Err(Error::Usage(
            "no notice channel is configured: set [notify] webhook_url or add a [[notify.channel]]"
                .into(),
        ));
    }
    let chosen = chosen(all, args.channel.as_deref())?;
    let notifier = Notifier::new(chosen, config.ecs.timeout).map_err(Error::Runtime)?;
    let sample = sample_notice(chrono::Utc::now());
    let mut rows = Vec::new();
    for ch in notifier.channels() {
        let answer = notifier.send(ch, &sample).await;
        rows.push(Row {
            channel: &ch.name,
            kind: ch.kind.as_str(),
            receiver: match &ch.smtp {
                Some(s) => format!("smtp://{}:{}", s.host, s.port),
                None => ch.url.redacted(),
            },
            answer,
        });
    }
    let failed = rows.iter().filter(|r| !r.answer.delivered).count();
    if args.json {
        output::json(&rows)?;
    } else {
        print_table(&rows);
    }
    if failed > 0 {
        return Err(Error::Runtime(format!(
            "{failed} of {} channel(s) did not accept the sample notice",
            rows.len()
        )));
    }
    Ok(())
}
