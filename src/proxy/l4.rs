//! Layer 4: TCP pools (one endpoint per connection, half-close kept), the zero-copy
//! `splice(2)` relay, and PROXY protocol headers read from clients and sent to backends.

pub mod proxy_protocol;
pub mod splice;
pub mod tcp;
