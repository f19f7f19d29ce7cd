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
