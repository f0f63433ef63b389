//! TLS termination with rustls: certificate choice by SNI among the pools sharing a port,
//! ALPN, a handshake deadline, and certificate reload without a restart.
//!
//! Each TLS port has one [`SniResolver`] whose table is swapped atomically when pools
//! change or a certificate file changes on disk; handshakes in progress keep the table they
//! started with. Kubernetes Secrets arrive as PEM in the model and use the same path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{HostMatch, ListenerClaim, TlsConfig, tls};

/// How long a client may take to complete the TLS handshake (rustls has no deadline).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Certificates of one port by server name.
#[derive(Debug, Default)]
pub struct SniTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `.suffix` -> certificate, longest suffix first.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniTable {
    /// The certificate for `name`: exact host, then longest wildcard, then the default.
    /// rustls hands over SNI already lowercased, so the usual lookup allocates nothing.
    pub fn find(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                Cow::Borrowed(name)
            };
            if let Some(c) = self.exact.get(name.as_ref()) {
                return Some(c.clone());
            }
            if let Some((_, c)) = self
                .wildcard
                .iter()
                .find(|(s, _)| name.len() > s.len() && name.ends_with(s.as_str()))
            {
                return Some(c.clone());
            }
        }
        self.default.clone()
    }
}

/// A certificate source and what it looked like on disk when loaded.
#[derive(Debug, Clone, PartialEq)]
struct Loaded {
    source: TlsConfig,
    stamp: Option<Vec<(SystemTime, u64)>>,
    /// The pool serving it, its server names (`*.suffix` for wildcards, none for the
    /// port's default) and the leaf certificate's notAfter (Unix seconds).
    expiry: CertExpiry,
}

/// When one served certificate expires, for `sluice_tls_certificate_expiry_seconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct CertExpiry {
    /// The pool whose `listener.tls` it is.
    pub pool: String,
    /// The server names it is served for; empty for a port's hostless pool.
    pub server_names: Vec<String>,
    /// The leaf certificate's notAfter, seconds since the Unix epoch.
    pub not_after: Option<i64>,
}

fn stamp(source: &TlsConfig) -> Option<Vec<(SystemTime, u64)>> {
    let TlsConfig::Files { cert, key } = source else {
        return None;
    };
    [cert, key]
        .iter()
        .map(|p: &&PathBuf| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn load(source: &TlsConfig) -> Result<Arc<CertifiedKey>, String> {
    match source {
        TlsConfig::Files { cert, key } => tls::load_files(cert, key),
        TlsConfig::Pem { cert, key } => tls::certified_key(cert, key),
    }
}

/// Builds the SNI table of a port from its claims (in pool order). Errors name the owner.
fn build_table(claims: &[Arc<ListenerClaim>]) -> Result<(SniTable, Vec<Loaded>), String> {
    let mut table = SniTable::default();
    let mut loaded = Vec::new();
    let mut first = None;
    let mut hostless = None;
    for claim in claims {
        let Some(source) = &claim.tls else {
            continue;
        };
        let key =
            load(source).map_err(|e| format!("pool {}: spec.listener.tls: {e}", claim.owner))?;
        loaded.push(Loaded {
            source: source.clone(),
            stamp: stamp(source),
            expiry: CertExpiry {
                pool: claim.owner.clone(),
                server_names: claim
                    .hosts
                    .iter()
                    .map(|h| match h {
                        HostMatch::Exact(h) => h.clone(),
                        HostMatch::Wildcard(s) => format!("*{s}"),
                    })
                    .collect(),
                not_after: key.cert.first().and_then(|c| tls::not_after(c)),
            },
        });
        first.get_or_insert_with(|| key.clone());
        if claim.hosts.is_empty() {
            hostless.get_or_insert_with(|| key.clone());
        }
        for host in &claim.hosts {
            match host {
                HostMatch::Exact(h) => {
                    table.exact.entry(h.clone()).or_insert_with(|| key.clone());
                }
                HostMatch::Wildcard(s) => {
                    if !table.wildcard.iter().any(|(w, _)| w == s) {
                        table.wildcard.push((s.clone(), key.clone()));
                    }
                }
            }
        }
    }
    table
        .wildcard
        .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    table.default = hostless.or(first);
    Ok((table, loaded))
}

/// Picks the certificate of a handshake from the port's current table.
#[derive(Debug, Default)]
pub struct SniResolver {
    table: ArcSwap<SniTable>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.table.load().find(hello.server_name())
    }
}

/// Certificates loaded for a port, not yet served.
#[derive(Debug)]
pub struct StagedCerts {
    table: SniTable,
    loaded: Vec<Loaded>,
    claims: Vec<Arc<ListenerClaim>>,
}

/// TLS state of one listener port.
pub struct TlsPort {
    acceptor: TlsAcceptor,
    resolver: Arc<SniResolver>,
    claims: parking_lot::Mutex<(Vec<Arc<ListenerClaim>>, Vec<Loaded>)>,
}

impl std::fmt::Debug for TlsPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPort").finish_non_exhaustive()
    }
}

impl TlsPort {
    /// TLS for a port with these claims; `alpn` lists the protocols offered (`h2`,
    /// `http/1.1` for HTTP; none for TCP).
    pub fn new(claims: &[Arc<ListenerClaim>], alpn: &[&[u8]]) -> Result<Self, String> {
        let (table, loaded) = build_table(claims)?;
        let resolver = Arc::new(SniResolver {
            table: ArcSwap::from_pointee(table),
        });
        let mut config = ServerConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.ignore_client_order = true;
        Ok(TlsPort {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            claims: parking_lot::Mutex::new((claims.to_vec(), loaded)),
        })
    }

    /// Loads the certificates `claims` need, without serving them yet; `None` when nothing
    /// changed. A reload calls this for every TLS port before changing anything.
    pub fn stage(&self, claims: &[Arc<ListenerClaim>]) -> Result<Option<StagedCerts>, String> {
        let current = self.claims.lock();
        let same = current.0.len() == claims.len()
            && current
                .0
                .iter()
                .zip(claims)
                .all(|(a, b)| Arc::ptr_eq(a, b) || (a.hosts == b.hosts && a.tls == b.tls));
        if same {
            return Ok(None);
        }
        let (table, loaded) = build_table(claims)?;
        Ok(Some(StagedCerts {
            table,
            loaded,
            claims: claims.to_vec(),
        }))
    }

    /// The certificates this port serves and when they expire.
    pub fn expiries(&self) -> Vec<CertExpiry> {
        self.claims
            .lock()
            .1
            .iter()
            .map(|l| l.expiry.clone())
            .collect()
    }

    /// Serves staged certificates to new handshakes.
    pub fn commit(&self, staged: StagedCerts) {
        let mut current = self.claims.lock();
        self.resolver.table.store(Arc::new(staged.table));
        *current = (staged.claims, staged.loaded);
    }

    /// Reloads when a certificate or key file changed on disk (checked by size and mtime).
    /// A pair that no longer loads is logged and the previous certificates keep serving.
    pub fn reload_if_changed(&self) {
        let mut current = self.claims.lock();
        let changed = current
            .1
            .iter()
            .any(|l| l.stamp.is_some() && stamp(&l.source) != l.stamp);
        if !changed {
            return;
        }
        match build_table(&current.0) {
            Ok((table, loaded)) => {
                self.resolver.table.store(Arc::new(table));
                current.1 = loaded;
                tracing::info!("TLS certificates reloaded");
            }
            Err(e) => {
                // Remember what we saw so the error is logged once per change.
                for l in current.1.iter_mut() {
                    l.stamp = stamp(&l.source);
                }
                tracing::error!(error = %e, "TLS certificate reload refused; previous certificates keep serving");
            }
        }
    }

    /// Completes the handshake within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let pair = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        tls::certified_key(cert.pem().as_bytes(), pair.serialize_pem().as_bytes()).unwrap()
    }

    fn table() -> (SniTable, [Arc<CertifiedKey>; 3]) {
        let (exact, wild, default) = (key("a.test"), key("*.b.test"), key("default.test"));
        let mut t = SniTable::default();
        t.exact.insert("a.test".to_owned(), exact.clone());
        t.wildcard.push((".b.test".to_owned(), wild.clone()));
        t.default = Some(default.clone());
        (t, [exact, wild, default])
    }

    #[test]
    fn server_names_match_exact_then_wildcard_then_default_in_any_case() {
        let (t, [exact, wild, default]) = table();
        let is = |name, want: &Arc<CertifiedKey>| {
            assert!(Arc::ptr_eq(&t.find(name).unwrap(), want), "{name:?}");
        };
        is(Some("a.test"), &exact);
        is(Some("A.Test"), &exact);
        is(Some("x.b.test"), &wild);
        is(Some("X.B.TEST"), &wild);
        is(Some("b.test"), &default);
        is(Some("other.test"), &default);
        is(None, &default);
    }
}
