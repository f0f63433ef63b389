//! WeightedRoundRobin (placeholder until implemented).

use std::sync::Arc;

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// WeightedRoundRobin balancer.
#[derive(Debug)]
pub struct WeightedRoundRobin;

impl WeightedRoundRobin {
    /// Builds the balancer over `endpoints`.
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        WeightedRoundRobin
    }
}

impl Balancer for WeightedRoundRobin {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        endpoints.iter().position(|e| (ctx.usable)(e))
    }
}
