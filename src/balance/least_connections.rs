//! LeastConnections (placeholder until implemented).

use std::sync::Arc;

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// LeastConnections balancer.
#[derive(Debug)]
pub struct LeastConnections;

impl LeastConnections {
    /// Builds the balancer over `endpoints`.
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        LeastConnections
    }
}

impl Balancer for LeastConnections {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        endpoints.iter().position(|e| (ctx.usable)(e))
    }
}
