//! The validated upstream settings of an HTTP pool: which HTTP version sluice speaks to
//! the backends and whether (and how) it reaches them over TLS. The rustls client
//! configuration is built here too, so `sluice check` and the data plane read a CA the
//! same way.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// How requests reach a pool's backends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamConfig {
    /// The HTTP version spoken.
    pub protocol: UpstreamProtocol,
    /// HTTPS, when configured.
    pub tls: Option<UpstreamTls>,
}

impl UpstreamConfig {
    /// True for plain-text HTTP/1.1, served by sluice's own HTTP/1 client (the default).
    pub fn is_plain_http1(&self) -> bool {
        self.protocol == UpstreamProtocol::Http1 && self.tls.is_none()
    }
}

/// HTTP versions spoken to backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 (h2c in plain text, ALPN `h2` over TLS).
    Http2,
    /// ALPN's choice (`h2`, else HTTP/1.1); only with TLS.
    Auto,
}

/// TLS to the backends.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    /// SNI and verified name; `None` = the endpoint's IP address.
    pub server_name: Option<String>,
    /// What the backends' certificates are verified against.
    pub trust: UpstreamTrust,
}

/// Trust anchors for backend certificates.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamTrust {
    /// The platform's trust store.
    System,
    /// A PEM file of CA certificates (standalone), resolved against the config file.
    CaFile(PathBuf),
    /// PEM CA certificates already loaded (Kubernetes Secret key `ca.crt`).
    CaPem(Arc<[u8]>),
    /// No verification at all (`insecureSkipVerify`).
    InsecureSkipVerify,
}

/// Parses PEM CA certificates into a root store; an empty or unparsable bundle is an error.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("CA certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
        found += 1;
    }
    if found == 0 {
        return Err("CA certificates: no PEM certificate found".to_owned());
    }
    Ok(roots)
}

/// The platform's trust store, read once per process (unreadable entries are skipped).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            Arc::new(roots)
        })
        .clone()
}

/// The rustls client configuration for `tls`, offering `alpn` (most preferred first).
/// Fails when the CA file cannot be read or holds no certificate.
pub fn client_config(tls: &UpstreamTls, alpn: &[&[u8]]) -> Result<ClientConfig, String> {
    let provider = super::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match &tls.trust {
        UpstreamTrust::System => builder
            .with_root_certificates(system_roots())
            .with_no_client_auth(),
        UpstreamTrust::CaFile(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let roots = roots_from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::CaPem(pem) => builder
            .with_root_certificates(roots_from_pem(pem)?)
            .with_no_client_auth(),
        UpstreamTrust::InsecureSkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Accepts any certificate, but still checks the handshake signatures, so the peer holds
/// the key of the certificate it sent (`insecureSkipVerify`).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
