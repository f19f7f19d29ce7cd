//! ddh-renewd: renews Alibaba Cloud ECS subscription dedicated hosts exactly once per cycle.
//!
//! The binary is a thin shell over this library; integration tests use it directly.
//! See `docs/ARCHITECTURE.md` for the picture.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod ecs;
pub mod emulator;
pub mod engine;
pub mod error;
pub mod import;
pub mod net;
pub mod ops;
pub mod scheduler;
pub mod store;
