//! The auto-renew windows of SPEC §2.4.
//!
//! For an expiry `E`, let `d0` be E's calendar date in the configured zone minus `lead_days`.
//! Window `W_k` is date `d0 + k` at the configured time of day, for every `k ≥ 0` with `W_k < E`.
//! With the defaults (Asia/Shanghai, 08:00:00, 9 days) these are exactly the instants at which
//! Alibaba's own auto-renew charges.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// When windows fall. Built from `[schedule]` config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub tz: Tz,
    pub time: NaiveTime,
    pub lead_days: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            tz: chrono_tz::Asia::Shanghai,
            time: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            lead_days: 9,
        }
    }
}

/// Upper bound on windows per cycle, so a pathological config cannot make an unbounded loop.
const MAX_WINDOWS: u32 = 400;

/// A schedule that remembers the windows of the expiries it was asked about. Hosts share their
/// expiries (the cloud sets them at midnight UTC+8), so a million hosts need a few thousand
/// computations of ten time-zone conversions each, not a million. Bounded: past
/// [`WindowMemo::LIMIT`] expiries it starts afresh.
#[derive(Debug, Clone)]
pub struct WindowMemo {
    schedule: Schedule,
    memo: std::collections::HashMap<DateTime<Utc>, Vec<DateTime<Utc>>>,
}

impl WindowMemo {
    pub const LIMIT: usize = 16_384;

    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            memo: std::collections::HashMap::new(),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// [`Schedule::windows`] of `expiry`.
    pub fn windows(&mut self, expiry: DateTime<Utc>) -> &[DateTime<Utc>] {
        if self.memo.len() >= Self::LIMIT && !self.memo.contains_key(&expiry) {
            self.memo.clear();
        }
        let schedule = self.schedule;
        self.memo
            .entry(expiry)
            .or_insert_with(|| schedule.windows(expiry))
    }
}

impl Schedule {
    /// The window instant on a local calendar date. In a zone with daylight saving, a time that
    /// falls in a spring-forward gap moves forward by the gap; an ambiguous time takes the earlier.
    pub fn window_on(&self, date: NaiveDate) -> DateTime<Utc> {
        let naive = date.and_time(self.time);
        match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
            LocalResult::None => {
                // Walk forward minute by minute out of the gap (gaps are at most a few hours).
                let mut probe = naive;
                for _ in 0..(24 * 60) {
                    probe += chrono::Duration::minutes(1);
                    if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                        self.tz.from_local_datetime(&probe)
                    {
                        return t.with_timezone(&Utc);
                    }
                }
                naive.and_utc()
            }
        }
    }

    /// Local date in this zone of an instant.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// `d0`: the expiry's local date minus `lead_days`.
    fn first_date(&self, expiry: DateTime<Utc>) -> NaiveDate {
        let d = self.local_date(expiry);
        d.checked_sub_days(Days::new(u64::from(self.lead_days)))
            .unwrap_or(d)
    }

    /// Every window of the cycle ending at `expiry`, in order.
    pub fn windows(&self, expiry: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let d0 = self.first_date(expiry);
        let mut out = Vec::with_capacity(self.lead_days as usize + 1);
        for k in 0..MAX_WINDOWS {
            let Some(date) = d0.checked_add_days(Days::new(u64::from(k))) else {
                break;
            };
            let w = self.window_on(date);
            if w >= expiry {
                break;
            }
            out.push(w);
        }
        out
    }

    pub fn first_window(&self, expiry: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let w = self.window_on(self.first_date(expiry));
        (w < expiry).then_some(w)
    }

    pub fn last_window(&self, expiry: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.windows(expiry).last().copied()
    }

    /// The latest window of the cycle at or before `now`, if any.
    pub fn latest_window_at_or_before(
        &self,
        expiry: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.windows(expiry).into_iter().rev().find(|w| *w <= now)
    }

    /// The latest daily window instant at or before `at`, whatever the host: the window a pass
    /// run at `at` belongs to.
    pub fn window_at_or_before(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let today = self.local_date(at);
        let w = self.window_on(today);
        if w <= at {
            return w;
        }
        today
            .checked_sub_days(Days::new(1))
            .map_or(w, |d| self.window_on(d))
    }

    /// The first daily window instant strictly after `at`.
    pub fn next_window_instant(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let today = self.local_date(at);
        let w = self.window_on(today);
        if w > at {
            return w;
        }
        today
            .checked_add_days(Days::new(1))
            .map_or(w, |d| self.window_on(d))
    }

    /// Whole local days from the window's date to the expiry's date (3 = "three days before").
    pub fn days_before_expiry(&self, window: DateTime<Utc>, expiry: DateTime<Utc>) -> i64 {
        (self.local_date(expiry) - self.local_date(window)).num_days()
    }

    /// The earliest window of the cycle strictly after `now`, if any.
    pub fn next_window_after(
        &self,
        expiry: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.windows(expiry).into_iter().find(|w| *w > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_instant;
    use chrono::Timelike;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).unwrap()
    }

    #[test]
    fn spec_example_midnight_expiry_has_nine_windows() {
        let w = Schedule::default().windows(t("2026-12-10T16:00Z"));
        assert_eq!(w.len(), 9);
        assert_eq!(w[0], t("2026-12-02T08:00:00+08:00"));
        assert_eq!(w[8], t("2026-12-10T08:00:00+08:00"));
    }

    #[test]
    fn spec_example_morning_expiry_has_ten_windows() {
        let w = Schedule::default().windows(t("2026-12-11T01:00Z"));
        assert_eq!(w.len(), 10);
        assert_eq!(w[0], t("2026-12-02T08:00:00+08:00"));
        assert_eq!(w[9], t("2026-12-11T08:00:00+08:00"));
    }

    #[test]
    fn expiry_exactly_at_window_time_excludes_that_day() {
        // E = 2026-12-11 08:00 UTC+8: the window that day is not strictly before E.
        let w = Schedule::default().windows(t("2026-12-11T00:00Z"));
        assert_eq!(w.len(), 9);
        assert_eq!(w.last().copied(), Some(t("2026-12-10T08:00:00+08:00")));
    }

    #[test]
    fn latest_and_next() {
        let s = Schedule::default();
        let e = t("2026-12-10T16:00Z");
        let now = t("2026-12-05T03:00:00+08:00");
        assert_eq!(
            s.latest_window_at_or_before(e, now),
            Some(t("2026-12-04T08:00:00+08:00"))
        );
        assert_eq!(
            s.next_window_after(e, now),
            Some(t("2026-12-05T08:00:00+08:00"))
        );
        assert_eq!(
            s.latest_window_at_or_before(e, t("2026-12-01T00:00Z")),
            None
        );
    }

    #[test]
    fn window_instants_around_the_time_of_day() {
        let s = Schedule::default();
        assert_eq!(
            s.window_at_or_before(t("2026-12-05T07:59:59+08:00")),
            t("2026-12-04T08:00:00+08:00")
        );
        assert_eq!(
            s.window_at_or_before(t("2026-12-05T08:00:00+08:00")),
            t("2026-12-05T08:00:00+08:00")
        );
        assert_eq!(
            s.next_window_instant(t("2026-12-05T08:00:00+08:00")),
            t("2026-12-06T08:00:00+08:00")
        );
        assert_eq!(
            s.next_window_instant(t("2026-12-05T07:00:00+08:00")),
            t("2026-12-05T08:00:00+08:00")
        );
        assert_eq!(
            s.days_before_expiry(t("2026-12-08T08:00:00+08:00"), t("2026-12-10T16:00Z")),
            3
        );
    }

    #[test]
    fn dst_gap_moves_forward() {
        // New York springs forward at 02:00 on 2027-03-14; a 02:30 window becomes 03:00 EDT.
        let s = Schedule {
            tz: chrono_tz::America::New_York,
            time: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            lead_days: 1,
        };
        let w = s.window_on(NaiveDate::from_ymd_opt(2027, 3, 14).unwrap());
        assert_eq!(w, t("2027-03-14T07:00:00Z"));
    }

    const ZONES: &[Tz] = &[
        chrono_tz::Asia::Shanghai,
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::Los_Angeles,
        chrono_tz::Asia::Kolkata,
    ];

    proptest! {
        #[test]
        fn window_properties(
            secs in 1_700_000_000i64..2_500_000_000i64,
            zone in proptest::sample::select(ZONES),
            hour in 0u32..24, minute in 0u32..60, second in 0u32..60,
            lead_days in 1u32..=30,
        ) {
            let time = NaiveTime::from_hms_opt(hour, minute, second).unwrap();
            let s = Schedule { tz: zone, time, lead_days };
            let e = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let w = s.windows(e);
            // A window on every day from d0 to the day before E's local date (lead_days of them),
            // and at most one more: on E's own date, if its time comes before E.
            prop_assert!(w.len() as u32 >= lead_days);
            prop_assert!(w.len() as u32 <= lead_days + 1);
            let d0 = s.local_date(e) - Days::new(u64::from(lead_days));
            for (k, wk) in w.iter().enumerate() {
                prop_assert!(*wk < e, "window {} not before expiry", wk);
                let local = wk.with_timezone(&zone);
                // One per day, no gaps, starting on d0.
                prop_assert_eq!(local.date_naive(), d0 + Days::new(k as u64));
                // At the configured time, unless that local time does not exist that day (DST gap).
                let exists = !matches!(zone.from_local_datetime(&local.date_naive().and_time(time)), LocalResult::None);
                if exists {
                    prop_assert_eq!((local.hour(), local.minute(), local.second()), (hour, minute, second));
                }
            }
            // Maximal: the next day's window would not be before E.
            let next_day = d0 + Days::new(w.len() as u64);
            prop_assert!(s.window_on(next_day) >= e);
        }
    }
}
