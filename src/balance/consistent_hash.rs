//! ConsistentHash (placeholder until implemented).

use std::sync::Arc;

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// ConsistentHash balancer.
#[derive(Debug)]
pub struct ConsistentHash;

impl ConsistentHash {
    /// Builds the balancer over `endpoints`.
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        ConsistentHash
    }
}

impl Balancer for ConsistentHash {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        endpoints.iter().position(|e| (ctx.usable)(e))
    }
}
