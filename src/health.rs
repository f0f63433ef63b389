//! HealthCheck: active probes (HTTP, TCP, gRPC) and passive outlier detection.
//!
//! Health lives on the endpoints (flags in `pool::Endpoint`); this module only decides when
//! to flip them and asks the pool to republish its snapshot on a change. Checkers are keyed
//! by (pool, endpoint address), so a reload that keeps an endpoint keeps its history.

mod active;
mod grpc;
mod outlier;
mod thresholds;

pub use active::{HealthChecker, Transition};
pub use outlier::report as report_outcome;
pub use thresholds::Thresholds;
