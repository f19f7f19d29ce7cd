//! Orchestration between the store and the ECS client: `sync`, and the renewal engine with its
//! clock and one-actor lock.

pub mod clock;
pub mod lock;
pub mod renew;
pub mod sync;

pub use clock::{Clock, OffsetClock, SettableClock, SystemClock};
pub use lock::ActorLock;
pub use renew::{Engine, EngineConfig, PassReport};
