//! LoadBalancer: listeners and forwarding (HTTP/1.1, h2c, TCP).
//!
//! Reads only the validated model and pool snapshots; never imports Kubernetes types.

pub mod body;
pub mod buffers;
pub mod chunked;
pub mod client;
pub mod dataplane;
pub mod error;
pub mod filters;
pub mod guard;
pub mod h1client;
pub mod h1server;
pub mod h2idle;
pub mod headers;
pub mod http;
pub mod lent;
pub mod proxy_protocol;
pub mod router;
pub mod server;
pub mod splice;
pub mod strict;
pub mod target;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use dataplane::{ApplyError, Dataplane, DataplaneOptions};
