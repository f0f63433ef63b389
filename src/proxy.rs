//! LoadBalancer: listeners and forwarding (HTTP/1.1, HTTP/2, TCP).
//!
//! Rooms: `http1` (sluice's own HTTP/1.1 server loop and client, the strict reader and the
//! smuggling guard), `upstream` (getting a request to a backend: reuse, retries, and the
//! hyper client for TLS and HTTP/2 backends), `l4` (TCP pools, splice, PROXY protocol); at
//! this level the listeners and workers (`server`, `tls`), the forwarding path (`http`,
//! `filters`, `headers`, `body`) and the apply path (`dataplane`). Routing lives in
//! [`crate::route`]. Reads only the validated model and pool snapshots; never imports
//! Kubernetes types.

pub mod body;
pub mod buffers;
pub mod dataplane;
pub mod error;
pub mod filters;
pub mod h2idle;
pub mod headers;
pub mod http;
pub mod http1;
pub mod idle;
pub mod l4;
pub mod lent;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use dataplane::{ApplyError, Dataplane, DataplaneOptions};
