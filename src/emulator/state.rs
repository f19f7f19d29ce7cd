//! The emulator's in-memory world: hosts, the virtual clock, ClientToken memory, the renewal
//! ledger, injected faults, nonces and the request log. All mutation happens under one mutex and
//! never across an `await`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::domain::{Host, PeriodUnit, RenewalStatus};

/// Signature nonces are remembered this long (the 15-minute skew plus a margin).
const NONCE_TTL: Duration = Duration::from_secs(16 * 60);
/// The request log keeps this many most recent entries.
const MAX_LOG: usize = 200_000;

/// A host and its cloud-side auto-renew attribute.
#[derive(Debug, Clone)]
pub struct EmuHost {
    pub host: Host,
    pub name: String,
    pub created: DateTime<Utc>,
    pub renewal_status: RenewalStatus,
    pub duration: u32,
    pub period_unit: PeriodUnit,
    /// Cloud-side auto-renew has looked at every window up to here (virtual time).
    pub charged_through: DateTime<Utc>,
}

/// A response as sent, kept to replay for a repeated ClientToken.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone)]
pub enum TokenState {
    InFlight,
    Done(Stored),
}

#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub fingerprint: String,
    pub state: TokenState,
}

/// Who paid for a renewal in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerSource {
    /// `RenewDedicatedHosts` (with its ClientToken, if any).
    Api,
    /// By hand, outside ddh-renewd (admin `POST /_emulator/renew`).
    Elsewhere,
    /// The cloud's own auto-renew, at its window.
    Cloud,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LedgerEntry {
    pub dedicated_host_id: String,
    pub client_token: Option<String>,
    pub period: u32,
    pub period_unit: String,
    pub expired_time_before: String,
    pub expired_time_after: String,
    pub request_id: String,
    pub at: String,
    pub source: LedgerSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogEntry {
    pub at: String,
    pub action: String,
    pub signature_version: String,
    pub verified: bool,
    pub access_key_id: String,
    pub status: u16,
    pub code: String,
    pub request_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with an error; nothing is applied.
    Error,
    /// Apply the call, then answer with an error.
    ApplyThenError,
    /// Apply the call, then drop the connection without an answer.
    ApplyThenDrop,
    /// Wait `ms`, then process normally.
    Delay,
    /// Never answer (until the emulator stops); nothing is applied.
    Hang,
    /// Drop the connection; nothing is applied.
    Reset,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default = "any_action")]
    pub action: String,
    #[serde(default = "one")]
    pub probability: f64,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    pub kind: FaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub ms: Option<u64>,
}

fn any_action() -> String {
    "*".to_owned()
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FaultsBody {
    Clear(Vec<FaultRule>),
    Set {
        #[serde(default)]
        seed: u64,
        rules: Vec<FaultRule>,
    },
}

/// A fault chosen for one request.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    pub status: u16,
    pub code: String,
    pub ms: u64,
}

pub struct State {
    pub hosts: BTreeMap<String, EmuHost>,
    /// Virtual now = real now + offset.
    pub clock_offset: chrono::Duration,
    pub tokens: HashMap<(String, String), TokenEntry>,
    pub ledger: Vec<LedgerEntry>,
    pub log: VecDeque<LogEntry>,
    pub latency_ms: u64,
    /// RenewDedicatedHosts requests being processed, per named host.
    pub renewing: HashMap<String, u32>,
    /// Requests being processed (arrived, not yet answered), per action.
    pub processing: HashMap<String, u32>,
    /// Faults fired so far, by kind (and code for errors).
    pub faults_fired: BTreeMap<String, u64>,
    rules: Vec<FaultRule>,
    rng: StdRng,
    nonces: HashSet<String>,
    nonce_order: VecDeque<(Instant, String)>,
    quota_log: HashMap<(String, String), VecDeque<Instant>>,
    /// Short-lived credentials issued (metadata service, STS, credentials URI).
    pub sts: super::sts::Sts,
}

impl Default for State {
    fn default() -> Self {
        Self {
            hosts: BTreeMap::new(),
            clock_offset: chrono::Duration::zero(),
            tokens: HashMap::new(),
            ledger: Vec::new(),
            log: VecDeque::new(),
            latency_ms: 0,
            renewing: HashMap::new(),
            processing: HashMap::new(),
            faults_fired: BTreeMap::new(),
            rules: Vec::new(),
            rng: StdRng::seed_from_u64(0),
            nonces: HashSet::new(),
            nonce_order: VecDeque::new(),
            quota_log: HashMap::new(),
            sts: super::sts::Sts::default(),
        }
    }
}

impl State {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
            .checked_add_signed(self.clock_offset)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub fn set_faults(&mut self, seed: u64, rules: Vec<FaultRule>) {
        self.rng = StdRng::seed_from_u64(seed);
        self.rules = rules;
    }

    pub fn faults(&self) -> &[FaultRule] {
        &self.rules
    }

    /// The first rule matching (action, hosts) decides; its probability is rolled on the seeded
    /// generator, and a rule with a `count` fires at most that many times.
    pub fn pick_fault(&mut self, action: &str, hosts: &[String]) -> Option<Fault> {
        let idx = self.rules.iter().position(|r| {
            (r.action == "*" || r.action == action)
                && r.count != Some(0)
                && r.hosts
                    .as_ref()
                    .is_none_or(|hs| hs.iter().any(|h| hosts.contains(h)))
        })?;
        let p = self.rules[idx].probability.clamp(0.0, 1.0);
        let roll: f64 = self.rng.random();
        if roll >= p {
            return None;
        }
        let rule = &mut self.rules[idx];
        if let Some(c) = rule.count.as_mut() {
            *c -= 1;
        }
        let (default_status, default_code) = match rule.kind {
            FaultKind::Error | FaultKind::ApplyThenError => (500, "InternalError"),
            _ => (0, ""),
        };
        let fault = Fault {
            kind: rule.kind,
            status: rule.status.unwrap_or(default_status),
            code: rule.code.clone().unwrap_or_else(|| default_code.to_owned()),
            ms: rule.ms.unwrap_or(0),
        };
        let name = serde_json::to_value(fault.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let name = if fault.code.is_empty() {
            name
        } else {
            format!("{name}:{}", fault.code)
        };
        *self.faults_fired.entry(name).or_default() += 1;
        Some(fault)
    }

    /// Records a nonce; `false` if it was seen within the replay window.
    pub fn use_nonce(&mut self, nonce: &str) -> bool {
        let now = Instant::now();
        while let Some((t, n)) = self.nonce_order.front() {
            if now.duration_since(*t) < NONCE_TTL {
                break;
            }
            self.nonces.remove(n);
            self.nonce_order.pop_front();
        }
        if !self.nonces.insert(nonce.to_owned()) {
            return false;
        }
        self.nonce_order.push_back((now, nonce.to_owned()));
        true
    }

    /// Counts a call against (key, action); `false` when over `per_minute` in the last 60 s.
    pub fn take_quota(&mut self, key: &str, action: &str, per_minute: usize) -> bool {
        let now = Instant::now();
        let log = self
            .quota_log
            .entry((key.to_owned(), action.to_owned()))
            .or_default();
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            log.pop_front();
        }
        if log.len() >= per_minute {
            return false;
        }
        log.push_back(now);
        true
    }

    pub fn log(&mut self, entry: LogEntry) {
        if self.log.len() >= MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    /// Everything back to a fresh start, clock on real time.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Moves the virtual clock by `by`; refused (`None`) if the instant would be out of range.
    pub fn advance_clock(&mut self, by: chrono::Duration) -> Option<DateTime<Utc>> {
        let offset = self.clock_offset.checked_add(&by)?;
        let now = Utc::now().checked_add_signed(offset)?;
        // Keep headroom so that adding periods to expiries stays in range too.
        if now.year_ce().1 > 9000 || now.year() < 1970 {
            return None;
        }
        self.clock_offset = offset;
        Some(now)
    }

    /// Sets the virtual clock to `at`; refused (`false`) outside 1970 to 9000.
    pub fn set_clock(&mut self, at: DateTime<Utc>) -> bool {
        if at.year() > 9000 || at.year() < 1970 {
            return false;
        }
        self.clock_offset = at - Utc::now();
        true
    }

    pub(crate) fn begin(&mut self, action: &str, hosts: &[String]) {
        *self.processing.entry(action.to_owned()).or_default() += 1;
        if action == "RenewDedicatedHosts" {
            for h in hosts {
                *self.renewing.entry(h.clone()).or_default() += 1;
            }
        }
    }

    pub(crate) fn end(&mut self, action: &str, hosts: &[String]) {
        let drop_one = |m: &mut HashMap<String, u32>, k: &str| {
            if let Some(n) = m.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    m.remove(k);
                }
            }
        };
        drop_one(&mut self.processing, action);
        if action == "RenewDedicatedHosts" {
            for h in hosts {
                drop_one(&mut self.renewing, h);
            }
        }
    }

    /// Requests of `action` being processed right now.
    pub fn processing(&self, action: &str) -> u32 {
        self.processing.get(action).copied().unwrap_or(0)
    }

    /// Hosts with a RenewDedicatedHosts being processed right now.
    pub fn renewing_hosts(&self) -> Vec<String> {
        let mut v: Vec<String> = self.renewing.keys().cloned().collect();
        v.sort();
        v
    }

    /// Cloud-side auto-renew, as Alibaba documents it: a host whose cloud-side status is
    /// `AutoRenewal` is charged at 08:00 UTC+8 from nine days before expiry (its own Duration,
    /// default 1 Month), each window at most once, in virtual time. Run before every request is
    /// processed, so a charge due at a window happens before anything that follows it.
    pub fn charge_cloud_auto_renew(&mut self) {
        let now = self.now();
        let schedule = crate::domain::Schedule::default();
        for h in self.hosts.values_mut() {
            let on = h.renewal_status == RenewalStatus::AutoRenewal
                && h.host.charge_type == crate::domain::ChargeType::PrePaid
                && !h.host.status.is_released();
            if on {
                while let Some(entry) = charge_once(h, now, &schedule) {
                    self.ledger.push(entry);
                }
            }
            if h.charged_through < now {
                h.charged_through = now;
            }
        }
    }

    /// Renews a host by hand, outside ddh-renewd (ledger source `elsewhere`).
    pub fn renew_elsewhere(
        &mut self,
        id: &str,
        period: crate::domain::Period,
    ) -> Result<LedgerEntry, String> {
        self.charge_cloud_auto_renew();
        let now = self.now();
        let h = self
            .hosts
            .get_mut(id)
            .ok_or_else(|| format!("{id}: no such host"))?;
        if h.host.charge_type != crate::domain::ChargeType::PrePaid {
            return Err(format!("{id} is PostPaid"));
        }
        let before = h.host.expired_time;
        let after = period
            .add_to(before)
            .ok_or_else(|| format!("{id}: the renewed expiry is out of range"))?;
        h.host.expired_time = after;
        h.host.financial_lock = false;
        let entry = LedgerEntry {
            dedicated_host_id: id.to_owned(),
            client_token: None,
            period: period.n,
            period_unit: period.unit.to_string(),
            expired_time_before: crate::domain::time::to_ecs(before),
            expired_time_after: crate::domain::time::to_ecs(after),
            request_id: request_id(),
            at: crate::domain::time::to_db(now),
            source: LedgerSource::Elsewhere,
        };
        self.ledger.push(entry.clone());
        Ok(entry)
    }
}

/// Charges the first window of the host's cycle after `charged_through` and at or before `now`.
fn charge_once(
    h: &mut EmuHost,
    now: DateTime<Utc>,
    schedule: &crate::domain::Schedule,
) -> Option<LedgerEntry> {
    let e = h.host.expired_time;
    let w = schedule
        .windows(e)
        .into_iter()
        .find(|w| *w > h.charged_through && *w <= now)?;
    let period = crate::domain::Period::for_policy(i64::from(h.duration), h.period_unit).unwrap_or(
        crate::domain::Period {
            n: 1,
            unit: PeriodUnit::Month,
        },
    );
    let after = period.add_to(e)?;
    h.host.expired_time = after;
    h.host.financial_lock = false;
    h.charged_through = w;
    Some(LedgerEntry {
        dedicated_host_id: h.host.id.to_string(),
        client_token: None,
        period: period.n,
        period_unit: period.unit.to_string(),
        expired_time_before: crate::domain::time::to_ecs(e),
        expired_time_after: crate::domain::time::to_ecs(after),
        request_id: request_id(),
        at: crate::domain::time::to_db(w),
        source: LedgerSource::Cloud,
    })
}

/// A request id in the shape Alibaba uses (upper-case UUID).
pub fn request_id() -> String {
    let v: u128 = rand::rng().random();
    let h = format!("{v:032X}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
