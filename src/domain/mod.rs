//! Pure domain rules: no IO, no async, no clock reads. Time is always a parameter.
//!
//! Everything the Alibaba API documents about dedicated-host renewal lives here: which periods are
//! valid for which unit, how a renewal moves an expiry on the UTC+8 calendar, when the auto-renew
//! windows fall, and which documented error code a bad request earns.

pub mod error;
pub mod host;
pub mod ids;
pub mod period;
pub mod plan;
pub mod policy;
pub mod protocol;
pub mod renew;
pub mod time;
pub mod token;
pub mod window;

pub use error::ValidationError;
pub use host::{ChargeType, Host, HostStatus};
pub use ids::{HostId, parse_id_list};
pub use period::{Period, PeriodUnit};
pub use policy::{Policy, RenewalStatus};
pub use token::ClientToken;
pub use window::Schedule;
