//! "Now", handed in. The daemon uses the system clock; `tick --at` and `demo` run on a virtual
//! clock that starts at a chosen instant and advances with real time.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Real time shifted by a fixed offset.
pub struct OffsetClock {
    offset: chrono::Duration,
}

impl OffsetClock {
    /// A clock that reads `at` now and moves on from there.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self {
            offset: at - Utc::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// A virtual clock moved by hand (the demo's days), advancing with real time in between.
pub struct SettableClock {
    /// Nanoseconds, so "now" never reads a hair before the instant it was set to.
    offset_ns: std::sync::atomic::AtomicI64,
}

impl SettableClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        let c = Self {
            offset_ns: std::sync::atomic::AtomicI64::new(0),
        };
        c.set(at);
        c
    }

    pub fn set(&self, at: DateTime<Utc>) {
        let ns = (at - Utc::now()).num_nanoseconds().unwrap_or(0);
        self.offset_ns
            .store(ns, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for SettableClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::nanoseconds(
                self.offset_ns.load(std::sync::atomic::Ordering::SeqCst),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settable_clock_never_reads_before_the_set_instant() {
        let at = crate::domain::time::parse_instant("2026-12-02T08:00:00+08:00").unwrap();
        for _ in 0..1000 {
            let c = SettableClock::new(at);
            assert!(c.now() >= at);
        }
    }
}
