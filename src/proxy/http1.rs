//! HTTP/1.1 on both sides: sluice's own server loop for plain requests (hyper behind it
//! for the rest), its inline upstream client, the strict RFC 9112 reader both share, the
//! chunked-body reader, and the smuggling guard in front of hyper.

pub mod chunked;
pub mod client;
pub mod guard;
pub mod server;
pub mod strict;
