//! TLS material: PEM certificate chains and keys turned into rustls `CertifiedKey`s, with
//! the check that the key belongs to the certificate. Used by validation (so `sluice check`
//! catches a bad or mismatched pair) and by the data plane when it (re)loads certificates.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The one rustls crypto provider of the process (ring), installed as the default once.
///
/// Its cipher suites are ring's defaults with the AES-128-GCM suites first (TLS 1.3 and
/// 1.2), as Go's crypto/tls orders them: AES-128 is as safe for this use, and its SHA-256
/// key schedule runs on the CPU's SHA extensions where SHA-384 (AES-256's) cannot — about a
/// tenth of the CPU of a resumed handshake. Servers apply this order (`ignore_client_order`).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use rustls::CipherSuite;
            let mut provider = rustls::crypto::ring::default_provider();
            provider.cipher_suites.sort_by_key(|s| {
                !matches!(
                    s.suite(),
                    CipherSuite::TLS13_AES_128_GCM_SHA256
                        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                )
            });
            let _ = provider.clone().install_default();
            Arc::new(provider)
        })
        .clone()
}

/// Parses a PEM chain and key and checks that they match.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no PEM certificate found".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| format!("certificate and key: {e}"))
}

/// Reads and checks a certificate/key pair from files; errors name the file at fault.
pub fn load_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    certified_key(&cert_pem, &key_pem)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn matching_pair_loads() {
        let (cert, key) = pair("a.test");
        assert!(certified_key(cert.as_bytes(), key.as_bytes()).is_ok());
    }

    #[test]
    fn mismatched_key_is_refused() {
        let (cert, _) = pair("a.test");
        let (_, other_key) = pair("b.test");
        let err = certified_key(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(err.contains("certificate and key"), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(certified_key(b"not pem", b"not pem").is_err());
    }

    #[test]
    fn aes_128_gcm_suites_are_preferred_and_nothing_is_dropped() {
        use rustls::CipherSuite;
        let ours: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(ours[0], CipherSuite::TLS13_AES_128_GCM_SHA256);
        let tls13: Vec<_> = ours
            .iter()
            .filter(|s| format!("{s:?}").starts_with("TLS13"))
            .collect();
        assert_eq!(*tls13[0], CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(
            ours.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }
}
