//! Test helpers shared by the balancer tests.

use std::sync::Arc;

use crate::pool::Endpoint;

/// `n` endpoints of weight 1 on 127.0.0.1:9000+i.
pub fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
    weighted(&vec![1; n])
}

/// One endpoint per weight, on 127.0.0.1:9000+i.
pub fn weighted(weights: &[u32]) -> Vec<Arc<Endpoint>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let addr = format!("127.0.0.1:{}", 9000 + i)
                .parse()
                .expect("a valid address");
            Arc::new(Endpoint::new(addr, w))
        })
        .collect()
}
