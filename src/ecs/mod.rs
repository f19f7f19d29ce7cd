//! The ECS OpenAPI boundary: signing (pure, vector-tested), credentials, typed models, errors
//! classified per SPEC §3.2, the quota limiter, and the HTTP client.

pub mod client;
pub mod credentials;
pub mod error;
pub mod limiter;
pub mod models;
pub mod provider;
pub mod sign;

pub use client::{ClientOptions, EcsClient, RetryPolicy};
pub use credentials::{Credentials, Secret};
pub use error::{ApiError, EcsError, ErrorClass};
pub use provider::Provider;
