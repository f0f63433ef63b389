//! Routing on its own: the per-port routing table (hosts, paths, conditions, in Gateway API
//! precedence) and what a route leads to at run time (its backends resolved to pools).
//! Part of the data plane: reads the validated model, never Kubernetes types.

pub mod router;
pub mod target;
