//! Renewal periods: the unit, the values each API accepts for it, and how a renewal moves an
//! expiry. Alibaba bills on the UTC+8 calendar, so months and years are added to the UTC+8 local
//! date (clamped to the month's last day) and converted back to UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, Months, Utc};
use serde::{Deserialize, Serialize};

use super::error::ValidationError;

/// `PeriodUnit` of RenewDedicatedHosts and ModifyDedicatedHostAutoRenewAttribute.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum PeriodUnit {
    Week,
    #[default]
    Month,
    Year,
}

impl PeriodUnit {
    pub const VALID: &'static str = "Week, Month, Year";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Week => "Week",
            Self::Month => "Month",
            Self::Year => "Year",
        }
    }

    /// Parses a unit with the documented error code for an unknown one.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        raw.parse().map_err(|()| {
            ValidationError::new(
                "InvalidPeriodUnit.ValueNotSupported",
                400,
                "PeriodUnit",
                format!("PeriodUnit {} is not supported", super::error::quote(raw)),
            )
            .with_valid(Self::VALID)
        })
    }

    /// Values of `Period` accepted by RenewDedicatedHosts (seeds 000–003, current API).
    pub fn renew_periods(self) -> &'static [u32] {
        match self {
            Self::Week => &[1, 2, 3, 4],
            Self::Month => &[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 24, 36, 48, 60],
            Self::Year => &[1, 2, 3, 4, 5],
        }
    }

    /// Values of `Duration` accepted by ModifyDedicatedHostAutoRenewAttribute (current API,
    /// a superset of seed 004's).
    pub fn policy_durations(self) -> &'static [u32] {
        match self {
            Self::Week => &[1, 2, 3, 4],
            Self::Month => &[1, 2, 3, 6, 12, 24, 36, 48, 60],
            Self::Year => &[1, 2, 3, 4, 5],
        }
    }
}

impl FromStr for PeriodUnit {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "Week" => Ok(Self::Week),
            "Month" => Ok(Self::Month),
            "Year" => Ok(Self::Year),
            _ => Err(()),
        }
    }
}

impl fmt::Display for PeriodUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats an accepted-values list for a message: `1, 2, 3`.
pub fn list_values(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A renewal length that some API accepts: `n` units. Construct it through one of the validating
/// constructors so an invalid pair cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub n: u32,
    pub unit: PeriodUnit,
}

impl Period {
    /// A `Period` for RenewDedicatedHosts; `InvalidPeriod` when `n` is not valid for the unit.
    pub fn for_renewal(n: i64, unit: PeriodUnit) -> Result<Self, ValidationError> {
        let valid = unit.renew_periods();
        match u32::try_from(n) {
            Ok(v) if valid.contains(&v) => Ok(Self { n: v, unit }),
            _ => Err(ValidationError::new(
                "InvalidPeriod",
                400,
                "Period",
                format!("Period {n} is not valid for PeriodUnit {unit}"),
            )
            .with_valid(list_values(valid))),
        }
    }

    /// A `Duration` for ModifyDedicatedHostAutoRenewAttribute; `InvalidParameter.Duration` when
    /// `n` is not valid for the unit.
    pub fn for_policy(n: i64, unit: PeriodUnit) -> Result<Self, ValidationError> {
        let valid = unit.policy_durations();
        match u32::try_from(n) {
            Ok(v) if valid.contains(&v) => Ok(Self { n: v, unit }),
            _ => Err(ValidationError::new(
                "InvalidParameter.Duration",
                403,
                "Duration",
                format!("Duration {n} is not valid for PeriodUnit {unit}"),
            )
            .with_valid(list_values(valid))),
        }
    }

    /// The expiry after renewing `expiry` by this period, on the UTC+8 calendar. Months and years
    /// keep the local day of month where it exists and clamp to the month's last day otherwise
    /// (Jan 31 + 1 month = Feb 28, or Feb 29 in a leap year). Returns `None` only on overflow.
    pub fn add_to(self, expiry: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let utc8 = FixedOffset::east_opt(8 * 3600)?;
        let local = expiry.with_timezone(&utc8);
        let moved = match self.unit {
            PeriodUnit::Week => local.checked_add_signed(Duration::weeks(i64::from(self.n)))?,
            PeriodUnit::Month => local.checked_add_months(Months::new(self.n))?,
            PeriodUnit::Year => local.checked_add_months(Months::new(self.n.checked_mul(12)?))?,
        };
        Some(moved.with_timezone(&Utc))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.n, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_instant;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).unwrap()
    }

    #[test]
    fn renewal_sets_follow_the_api() {
        for (unit, ok, bad) in [
            (PeriodUnit::Week, vec![1, 4], vec![0, 5]),
            (
                PeriodUnit::Month,
                vec![1, 9, 12, 60],
                vec![0, 10, 11, 13, 61],
            ),
            (PeriodUnit::Year, vec![1, 5], vec![0, 6]),
        ] {
            for n in ok {
                assert!(Period::for_renewal(n, unit).is_ok(), "{n} {unit}");
            }
            for n in bad {
                let e = Period::for_renewal(n, unit).unwrap_err();
                assert_eq!(e.code, "InvalidPeriod");
                assert!(e.valid.is_some());
            }
        }
        assert!(Period::for_renewal(-1, PeriodUnit::Month).is_err());
    }

    #[test]
    fn policy_sets_follow_the_api() {
        assert!(Period::for_policy(6, PeriodUnit::Month).is_ok());
        let e = Period::for_policy(4, PeriodUnit::Month).unwrap_err();
        assert_eq!(e.code, "InvalidParameter.Duration");
        assert_eq!(e.valid.as_deref(), Some("1, 2, 3, 6, 12, 24, 36, 48, 60"));
        assert!(Period::for_policy(4, PeriodUnit::Week).is_ok());
    }

    #[test]
    fn unknown_unit_has_its_code() {
        let e = PeriodUnit::parse("Day").unwrap_err();
        assert_eq!(e.code, "InvalidPeriodUnit.ValueNotSupported");
        assert_eq!(e.valid.as_deref(), Some("Week, Month, Year"));
    }

    #[test]
    fn months_on_the_utc8_calendar() {
        let p = Period::for_renewal(1, PeriodUnit::Month).unwrap();
        // 2027-01-31 00:00 UTC+8 is 2027-01-30T16:00Z; one month later is Feb 28 00:00 UTC+8.
        assert_eq!(
            p.add_to(t("2027-01-30T16:00Z")),
            Some(t("2027-02-27T16:00Z"))
        );
        // Leap year: Jan 31 2028 + 1 month = Feb 29 2028.
        assert_eq!(
            p.add_to(t("2028-01-30T16:00Z")),
            Some(t("2028-02-28T16:00Z"))
        );
        // Where the two calendars part: 2026-03-30T16:00Z is Mar 30 in UTC but Mar 31 00:00 in
        // UTC+8. On the UTC calendar a month later would be Apr 30 16:00Z; on the UTC+8 calendar
        // Mar 31 + 1 month clamps to Apr 30 00:00 UTC+8, which is Apr 29 16:00Z.
        assert_eq!(
            p.add_to(t("2026-03-30T16:00Z")),
            Some(t("2026-04-29T16:00Z"))
        );
    }

    #[test]
    fn years_and_weeks() {
        let y = Period::for_renewal(1, PeriodUnit::Year).unwrap();
        // Feb 29 2028 (UTC+8) + 1 year clamps to Feb 28 2029.
        assert_eq!(
            y.add_to(t("2028-02-28T16:00Z")),
            Some(t("2029-02-27T16:00Z"))
        );
        let w = Period::for_renewal(2, PeriodUnit::Week).unwrap();
        assert_eq!(
            w.add_to(t("2026-12-10T16:00Z")),
            Some(t("2026-12-24T16:00Z"))
        );
    }

    fn any_period() -> impl Strategy<Value = Period> {
        prop_oneof![
            proptest::sample::select(PeriodUnit::Week.renew_periods()).prop_map(|n| Period {
                n,
                unit: PeriodUnit::Week
            }),
            proptest::sample::select(PeriodUnit::Month.renew_periods()).prop_map(|n| Period {
                n,
                unit: PeriodUnit::Month
            }),
            proptest::sample::select(PeriodUnit::Year.renew_periods()).prop_map(|n| Period {
                n,
                unit: PeriodUnit::Year
            }),
        ]
    }

    proptest! {
        #[test]
        fn renewal_always_moves_forward_and_keeps_local_time(
            secs in 1_700_000_000i64..2_500_000_000i64,
            p in any_period(),
        ) {
            let e = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let after = p.add_to(e).unwrap();
            prop_assert!(after > e);
            // Time of day on the UTC+8 clock never changes (UTC+8 has no DST).
            let utc8 = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
            prop_assert_eq!(after.with_timezone(&utc8).time(), e.with_timezone(&utc8).time());
            let days = (after - e).num_days();
            let (lo, hi) = match p.unit {
                PeriodUnit::Week => (7 * i64::from(p.n), 7 * i64::from(p.n)),
                PeriodUnit::Month => (28 * i64::from(p.n) - 3, 31 * i64::from(p.n) + 3),
                PeriodUnit::Year => (365 * i64::from(p.n) - 1, 366 * i64::from(p.n) + 1),
            };
            prop_assert!(days >= lo && days <= hi, "{} days for {}", days, p);
        }

        #[test]
        fn month_renewal_keeps_or_clamps_day(secs in 1_700_000_000i64..2_500_000_000i64, n in 1u32..=9) {
            let utc8 = FixedOffset::east_opt(8 * 3600).unwrap();
            let e = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let after = Period { n, unit: PeriodUnit::Month }.add_to(e).unwrap();
            let (before_l, after_l) = (e.with_timezone(&utc8), after.with_timezone(&utc8));
            use chrono::Datelike;
            let months = (after_l.year() - before_l.year()) * 12 + after_l.month() as i32 - before_l.month() as i32;
            prop_assert_eq!(months, n as i32);
            prop_assert!(after_l.day() == before_l.day() || after_l.day() < before_l.day());
        }
    }
}
