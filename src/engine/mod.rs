//! Orchestration between the store and the ECS client. `sync` lives here; the renewal engine
//! joins it.

pub mod sync;
