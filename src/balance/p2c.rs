//! PowerOfTwoChoices (placeholder until implemented).

use std::sync::Arc;

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// PowerOfTwoChoices balancer.
#[derive(Debug)]
pub struct PowerOfTwoChoices;

impl PowerOfTwoChoices {
    /// Builds the balancer over `endpoints`.
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        PowerOfTwoChoices
    }
}

impl Balancer for PowerOfTwoChoices {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        endpoints.iter().position(|e| (ctx.usable)(e))
    }
}
