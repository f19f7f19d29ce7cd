//! Step 3 of a pass: reminders for hosts renewed by hand (`Normal`, on the configured days
//! before expiry) and the single non-renewal notice (`NotRenewal`, three days before).

use super::pass::PassCtx;
use super::{Engine, EngineError, record};
use crate::domain::RenewalStatus;
use crate::domain::protocol::NoticeKind;
use crate::domain::time::to_db;

pub(crate) async fn run(e: &Engine, p: &PassCtx) -> Result<(), EngineError> {
    let cfg = &e.inner.cfg;
    let mut rows = Vec::new();
    for h in e.inner.store.unmanaged_hosts(e.now()).await? {
        let days = cfg
            .schedule
            .days_before_expiry(p.window, h.host.expired_time);
        let id = &h.host.id;
        let at = to_db(h.host.expired_time);
        let notice = match h.effective_policy().status {
            RenewalStatus::NotRenewal if days == 3 => Some((
                NoticeKind::NotRenewing,
                format!("{id} expires at {at} and is set to NotRenewal: it will not be renewed"),
            )),
            RenewalStatus::Normal
                if u32::try_from(days).is_ok_and(|d| cfg.reminder_days.contains(&d)) =>
            {
                Some((
                    NoticeKind::ExpiryReminder,
                    format!(
                        "{id} expires at {at} ({days} days); it is not renewed automatically: renew it by hand"
                    ),
                ))
            }
            _ => None,
        };
        if let Some((kind, text)) = notice {
            rows.push(record::notice(id, h.host.expired_time, kind, text));
        }
    }
    let n = e.inner.store.notices_now(&rows, e.now()).await?;
    p.with(|r| r.notices += n);
    Ok(())
}
