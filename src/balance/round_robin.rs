//! RoundRobin (placeholder until implemented).

use std::sync::Arc;

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// RoundRobin balancer.
#[derive(Debug)]
pub struct RoundRobin;

impl RoundRobin {
    /// Builds the balancer over `endpoints`.
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        RoundRobin
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        endpoints.iter().position(|e| (ctx.usable)(e))
    }
}
