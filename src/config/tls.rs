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

/// The `notAfter` of a DER X.509 certificate, in seconds since the Unix epoch; `None` when
/// the DER is not shaped like a certificate. Reads only the TBS certificate's validity
/// (version, serial, signature algorithm and issuer are skipped), for
/// `sluice_tls_certificate_expiry_seconds`; rustls has already checked the certificate parses.
pub fn not_after(cert_der: &[u8]) -> Option<i64> {
    /// One DER element at the start of `input`: (tag, contents, rest).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (_, certificate, _) = element(cert_der)?;
    let (_, mut tbs, _) = element(certificate)?;
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs)?.2; // [0] EXPLICIT version
    }
    for _ in 0..3 {
        tbs = element(tbs)?.2; // serial, signature algorithm, issuer
    }
    let (_, validity, _) = element(tbs)?;
    let (tag, text, _) = element(element(validity)?.2)?;
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let digits = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
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
    fn not_after_reads_utc_and_generalized_times() {
        // 2030 is written as UTCTime, 2051 as GeneralizedTime (RFC 5280 4.1.2.5).
        for (y, m, d, unix) in [(2030, 1, 15, 1_894_665_600), (2051, 12, 31, 2_587_593_600)] {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
            params.not_after = rcgen::date_time_ymd(y, m, d);
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(not_after(cert.der()), Some(unix), "{y}-{m}-{d}");
        }
        assert_eq!(not_after(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(not_after(b""), None);
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
