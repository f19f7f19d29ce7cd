//! Client-side quota (SPEC §3.3): at most `per_minute` calls in any 60-second span per
//! (region, API), as a sliding log of send times. A `Throttling*` answer blocks that key for a
//! penalty that doubles on each consecutive throttle (1 s … 30 s) and resets on success.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);
const MAX_PENALTY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Key {
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    penalty: Duration,
}

pub struct Limiter {
    per_minute: usize,
    keys: Mutex<HashMap<(String, &'static str), Key>>,
    waits: AtomicU64,
    waited_ms: AtomicU64,
}

/// How often and how long callers waited for the quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QuotaWaits {
    pub waits: u64,
    pub waited_ms: u64,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: usize::try_from(per_minute.max(1)).unwrap_or(usize::MAX),
            keys: Mutex::new(HashMap::new()),
            waits: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
        }
    }

    /// Waits until a call on (region, action) fits the quota, then records it as sent.
    pub async fn acquire(&self, region: &str, action: &'static str) {
        let started = Instant::now();
        let mut waited = false;
        loop {
            let wait = {
                let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                let k = keys.entry((region.to_owned(), action)).or_default();
                let now = Instant::now();
                while k
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    k.sent.pop_front();
                }
                match k.blocked_until {
                    Some(until) if until > now => until - now,
                    _ if k.sent.len() < self.per_minute => {
                        k.sent.push_back(now);
                        break;
                    }
                    // The oldest call leaves the window at front + 60 s.
                    _ => k.sent.front().map_or(Duration::from_millis(10), |t| {
                        (*t + WINDOW).saturating_duration_since(now) + Duration::from_millis(1)
                    }),
                }
            };
            waited = true;
            tokio::time::sleep(wait).await;
        }
        if waited {
            self.waits.fetch_add(1, Ordering::Relaxed);
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.waited_ms.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// The API answered `Throttling*`: back off harder on this key.
    pub fn throttled(&self, region: &str, action: &'static str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let k = keys.entry((region.to_owned(), action)).or_default();
        k.penalty = (k.penalty * 2).clamp(Duration::from_secs(1), MAX_PENALTY);
        k.blocked_until = Some(Instant::now() + k.penalty);
    }

    /// A call went through: forget past throttling.
    pub fn succeeded(&self, region: &str, action: &'static str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get_mut(&(region.to_owned(), action)) {
            k.penalty = Duration::ZERO;
            k.blocked_until = None;
        }
    }

    pub fn waits(&self) -> QuotaWaits {
        QuotaWaits {
            waits: self.waits.load(Ordering::Relaxed),
            waited_ms: self.waited_ms.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_quota_in_any_minute() {
        let l = Limiter::new(5);
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..12 {
            l.acquire("cn-hangzhou", "DescribeDedicatedHosts").await;
            sent.push(Instant::now() - t0);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent
                .iter()
                .filter(|u| **u <= *t && *t - **u < WINDOW)
                .count();
            assert!(in_window <= 5, "call {i} at {t:?}: {in_window} in window");
        }
        assert!(sent[11] >= Duration::from_secs(120));
        // Call 6 waits for the first five to leave the window, call 11 for the next five.
        assert_eq!(l.waits().waits, 2);
        // Other keys are independent.
        let before = Instant::now();
        l.acquire("cn-shanghai", "DescribeDedicatedHosts").await;
        assert_eq!(Instant::now(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_blocks_with_growing_penalty() {
        let l = Limiter::new(1000);
        l.throttled("r", "RenewDedicatedHosts");
        l.throttled("r", "RenewDedicatedHosts");
        let t0 = Instant::now();
        l.acquire("r", "RenewDedicatedHosts").await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        l.succeeded("r", "RenewDedicatedHosts");
        let t1 = Instant::now();
        l.acquire("r", "RenewDedicatedHosts").await;
        assert_eq!(Instant::now(), t1);
    }
}
