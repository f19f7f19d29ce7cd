//! Step 3 of a pass: reminders for hosts renewed by hand (`Normal`, on the configured days
//! before expiry) and the single non-renewal notice (`NotRenewal`, three days before).

use super::pass::PassCtx;
use super::{Engine, EngineError, record};
use crate::domain::RenewalStatus;
use crate::domain::protocol::NoticeKind;
use crate::domain::time::to_db;
use crate::store::HostRecord;
use chrono::Duration;

/// The days before expiry on which a notice may fall: the non-renewal notice's and the
/// reminders'.
fn notice_days(reminder_days: &[u32]) -> Vec<i64> {
    let mut days: Vec<i64> = reminder_days.iter().map(|&d| i64::from(d)).collect();
    days.push(NOT_RENEWING_DAYS);
    days.sort_unstable();
    days.dedup();
    days
}

const NOT_RENEWING_DAYS: i64 = 3;

pub(crate) async fn run(e: &Engine, p: &PassCtx) -> Result<(), EngineError> {
    let cfg = &e.inner.cfg;
    let mut rows = Vec::new();
    for d in notice_days(&cfg.reminder_days) {
        // A superset of the expiries `d` local days after the window's date (a day either side
        // covers any offset and DST shift), read by the expiry index; the exact day is checked
        // below, so each host matches on one `d` only.
        let from = p.window + Duration::days(d - 1);
        let to = p.window + Duration::days(d + 2);
        let now = e.now();
        for h in e.inner.store.unmanaged_expiring(from, to).await? {
            let days = cfg
                .schedule
                .days_before_expiry(p.window, h.host.expired_time);
            if days != d || h.host.expired_time <= now {
                continue;
            }
            if let Some((kind, text)) = notice_for(&h, days, &cfg.reminder_days) {
                rows.push(record::notice(&h.host.id, h.host.expired_time, kind, text));
            }
        }
    }
    let n = e.inner.store.notices_now(&rows, e.now()).await?;
    p.with(|r| r.notices += n);
    Ok(())
}

/// The notice a host not renewed here gets `days` before its expiry, if any.
fn notice_for(h: &HostRecord, days: i64, reminder_days: &[u32]) -> Option<(NoticeKind, String)> {
    let id = &h.host.id;
    let at = to_db(h.host.expired_time);
    match h.effective_policy().status {
        RenewalStatus::NotRenewal if days == NOT_RENEWING_DAYS => Some((
            NoticeKind::NotRenewing,
            format!("{id} expires at {at} and is set to NotRenewal: it will not be renewed"),
        )),
        RenewalStatus::Normal if u32::try_from(days).is_ok_and(|d| reminder_days.contains(&d)) => {
            Some((
                NoticeKind::ExpiryReminder,
                format!(
                    "{id} expires at {at} ({days} days); it is not renewed automatically: renew it by hand"
                ),
            ))
        }
        _ => None,
    }
}
