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
    offset_ms: std::sync::atomic::AtomicI64,
}

impl SettableClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        let c = Self {
            offset_ms: std::sync::atomic::AtomicI64::new(0),
        };
        c.set(at);
        c
    }

    pub fn set(&self, at: DateTime<Utc>) {
        let ms = (at - Utc::now()).num_milliseconds();
        self.offset_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for SettableClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::SeqCst),
            )
    }
}
