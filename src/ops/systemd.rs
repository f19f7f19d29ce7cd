//! sd_notify: READY once migrations ran and catch-up is scheduled, STATUS lines, WATCHDOG pings
//! from the scheduler loop itself, STOPPING on shutdown. No-ops outside systemd.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Half the watchdog timeout systemd set (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
