//! Listener claims: what each front end needs a port to do. The data plane opens ports
//! and builds their TLS from these alone, so a front end whose backends are shared (an
//! Ingress, a Gateway) claims its ports without tying them to one backend.

use std::time::Duration;

use super::{HostMatch, PoolConfig, Protocol, TlsConfig};

/// One front end's claim on a listener port.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerClaim {
    /// Who claims it (a BackendPool's name); errors about the port name it.
    pub owner: String,
    /// The port.
    pub port: u16,
    /// HTTP (routed) or TCP (one pool per port).
    pub protocol: Protocol,
    /// The server names `tls` serves (SNI); empty = the port's default certificate.
    pub hosts: Vec<HostMatch>,
    /// TLS termination, when configured.
    pub tls: Option<TlsConfig>,
    /// Accept PROXY protocol headers.
    pub proxy_protocol: bool,
    /// How long the port's connections may finish when it goes away.
    pub drain_timeout: Duration,
    /// TCP: the pool every connection goes to.
    pub tcp_pool: Option<String>,
}

impl PoolConfig {
    /// The BackendPool's claim on its listener port.
    pub fn listener_claim(&self) -> ListenerClaim {
        ListenerClaim {
            owner: self.name.clone(),
            port: self.listener.port,
            protocol: self.protocol,
            hosts: self.listener.hosts.clone(),
            tls: self.listener.tls.clone(),
            proxy_protocol: self.listener.proxy_protocol,
            drain_timeout: self.drain_timeout,
            tcp_pool: (self.protocol == Protocol::Tcp).then(|| self.name.clone()),
        }
    }
}
