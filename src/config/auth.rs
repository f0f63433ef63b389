//! The validated browser and authentication policies of an HTTP pool: `cors`, `basicAuth`
//! (with its htpasswd list already parsed) and `externalAuth`. Route filters read these;
//! `crate::policy` applies them on the request path.
//!
//! The htpasswd grammar lives here, not in the policy, so `sluice check` and the controller
//! refuse a list the data plane could not use. It accepts what `htpasswd` writes by default
//! (apr1 MD5, bcrypt with `-B`, `{SHA}` with `-s`) plus `$1$` MD5 crypt; it refuses
//! crypt(3) DES and plain text, which verify nothing worth the name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderName, HeaderValue, Uri};

/// Longest htpasswd list read, in bytes.
pub const MAX_HTPASSWD_BYTES: usize = 1 << 20;

/// Cross-origin resource sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Which origins get the `Access-Control-*` headers.
    pub origins: AllowedOrigins,
    /// `Access-Control-Allow-Methods` of a preflight answer.
    pub allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers` of a preflight answer; `None` = not sent.
    pub allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers` of actual answers; `None` = not sent.
    pub expose_headers: Option<HeaderValue>,
    /// Sends `Access-Control-Allow-Credentials: true` (never with [`AllowedOrigins::Any`]).
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` of a preflight answer, in seconds (default 24h).
    pub max_age: HeaderValue,
}

/// The origins a CORS policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Every origin (`*`), answered with `Access-Control-Allow-Origin: *`.
    Any,
    /// These, each answered with the request's own `Origin` (and `Vary: Origin`).
    Listed(Vec<OriginPattern>),
}

/// One allowed origin, lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// Exactly this origin (`https://app.example`, `http://localhost:3000`).
    Exact(String),
    /// `scheme://*.suffix[:port]`: any host ending in `.suffix` with at least one more
    /// label, with exactly this scheme and port.
    Subdomain {
        /// `https://` or `http://`.
        scheme: &'static str,
        /// `.example.com`, with the leading dot.
        suffix: String,
        /// `:8443`, or empty for the scheme's default port.
        port: String,
    },
}

/// HTTP basic authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuthConfig {
    /// The `WWW-Authenticate` value of a 401 (`Basic realm="..."`).
    pub challenge: HeaderValue,
    /// The users and their password hashes.
    pub users: std::sync::Arc<Htpasswd>,
    /// Where the list comes from (a change there is a configuration change).
    pub source: CredentialSource,
    /// `forwardAuthorization`: the client's `Authorization` goes on to the backends.
    pub forward_authorization: bool,
}

/// Where an htpasswd list is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A file (standalone), resolved against the config file's directory.
    File(PathBuf),
    /// Key `auth` of this Secret in the pool's namespace (Kubernetes).
    Secret(String),
}

/// A parsed htpasswd list. Equal when the users and hashes are; the cache of verified
/// credentials the policy keeps beside it takes no part.
#[derive(Debug, Default)]
pub struct Htpasswd {
    /// Password hash by user name.
    pub users: HashMap<String, PasswordHash>,
    /// Digests of credentials already verified against this list (see
    /// `crate::policy::basic_auth`): bcrypt costs milliseconds, so a user's next requests
    /// skip it. Dropped with the list, so a changed password takes effect at once.
    pub verified: parking_lot::RwLock<std::collections::HashSet<[u8; 32]>>,
    /// A per-list random salt for those digests.
    pub salt: [u8; 16],
}

impl PartialEq for Htpasswd {
    fn eq(&self, other: &Self) -> bool {
        self.users == other.users
    }
}

impl Eq for Htpasswd {}

/// One user's password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$2y$`, `$2a$`, `$2b$`: bcrypt, the whole hash string.
    Bcrypt(String),
    /// `$apr1$salt$hash` (Apache) or `$1$salt$hash` (MD5 crypt).
    Md5Crypt {
        /// `$apr1$` or `$1$`.
        magic: &'static str,
        /// Up to 8 salt characters.
        salt: String,
        /// The 22-character encoded digest.
        hash: String,
    },
    /// `{SHA}` + base64 of the SHA-1 of the password.
    Sha1([u8; 20]),
}

impl Htpasswd {
    /// Parses htpasswd `text`: one `user:hash` per line, blank lines and `#` comments
    /// skipped. Errors name the line, never a hash.
    pub fn parse(text: &[u8]) -> Result<Htpasswd, String> {
        if text.len() > MAX_HTPASSWD_BYTES {
            return Err(format!(
                "htpasswd list larger than {MAX_HTPASSWD_BYTES} bytes"
            ));
        }
        let text = std::str::from_utf8(text).map_err(|_| "htpasswd list is not UTF-8")?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {n}: expected user:hash"));
            };
            if user.is_empty() {
                return Err(format!("line {n}: empty user name"));
            }
            let hash = PasswordHash::parse(hash).map_err(|e| format!("line {n} ({user}): {e}"))?;
            if users.insert(user.to_owned(), hash).is_some() {
                return Err(format!("line {n}: user {user} is listed twice"));
            }
        }
        if users.is_empty() {
            return Err("htpasswd list has no user".to_owned());
        }
        let mut salt = [0u8; 16];
        for b in &mut salt {
            *b = fastrand::u8(..);
        }
        Ok(Htpasswd {
            users,
            verified: Default::default(),
            salt,
        })
    }
}

impl PasswordHash {
    fn parse(hash: &str) -> Result<PasswordHash, String> {
        const UNSUPPORTED: &str = "unsupported hash (expected bcrypt, $apr1$, $1$ or {SHA}; crypt(3) DES and plain text are refused)";
        if let Some(b64) = hash.strip_prefix("{SHA}") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "{SHA} hash is not base64")?;
            let digest: [u8; 20] = bytes.try_into().map_err(|_| "{SHA} hash is not 20 bytes")?;
            return Ok(PasswordHash::Sha1(digest));
        }
        if ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
            return hash
                .parse::<bcrypt::HashParts>()
                .map(|_| PasswordHash::Bcrypt(hash.to_owned()))
                .map_err(|_| "malformed bcrypt hash".to_owned());
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = hash.strip_prefix(magic) {
                let (salt, digest) = rest
                    .split_once('$')
                    .ok_or_else(|| format!("malformed {magic} hash"))?;
                let crypt64 = |s: &str| {
                    s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
                };
                if salt.is_empty() || salt.len() > 8 || !crypt64(salt) {
                    return Err(format!("malformed {magic} salt"));
                }
                if digest.len() != 22 || !crypt64(digest) {
                    return Err(format!("malformed {magic} hash"));
                }
                return Ok(PasswordHash::Md5Crypt {
                    magic,
                    salt: salt.to_owned(),
                    hash: digest.to_owned(),
                });
            }
        }
        Err(UNSUPPORTED.to_owned())
    }
}

/// Ask an authentication service before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAuthConfig {
    /// The service, an absolute `http://` URI.
    pub url: Uri,
    /// Client request headers copied to the auth request.
    pub request_headers: Vec<HeaderName>,
    /// Headers of a 2xx auth answer copied into the upstream request.
    pub response_headers: Vec<HeaderName>,
    /// Where a 401 redirects browsers (`rd=` is appended).
    pub signin_url: Option<String>,
    /// Longest wait for the auth answer, connect included (default 1 s).
    pub timeout: Duration,
    /// The auth request's method (`GET` unless ingress-nginx's `auth-method` says otherwise).
    pub method: http::Method,
    /// Copies every client header (but framing and hop-by-hop ones) to the auth request, as
    /// nginx's `auth_request` does, instead of `request_headers` only (Ingress `auth-url`).
    pub all_request_headers: bool,
    /// `signin_url` is an ingress-nginx `auth-signin` template: `$host`, `$http_host`,
    /// `$scheme`, `$pass_access_scheme`, `$request_uri` and `$escaped_request_uri` are
    /// expanded, and `rd=` is appended only when the URL has no `rd` parameter of its own.
    pub signin_template: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_reads_the_formats_htpasswd_writes_and_skips_comments() {
        let bcrypt = bcrypt::hash("secret", 4).unwrap();
        let text = format!(
            "# users\nalice:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/\n\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncarol:{bcrypt}\n"
        );
        let list = Htpasswd::parse(text.as_bytes()).unwrap();
        assert_eq!(list.users.len(), 3);
        assert!(matches!(
            list.users["alice"],
            PasswordHash::Md5Crypt {
                magic: "$apr1$",
                ..
            }
        ));
        assert!(matches!(list.users["bob"], PasswordHash::Sha1(_)));
        assert!(matches!(list.users["carol"], PasswordHash::Bcrypt(_)));
    }

    #[test]
    fn htpasswd_refuses_des_plain_text_and_duplicates_naming_the_line_not_the_hash() {
        let err = Htpasswd::parse(b"alice:rl0P5kTxb0Ooo\n").unwrap_err();
        assert!(err.starts_with("line 1 (alice): unsupported hash"), "{err}");
        assert!(!err.contains("rl0P5"), "{err}");
        let err = Htpasswd::parse(
            b"a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\na:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
        )
        .unwrap_err();
        assert_eq!(err, "line 2: user a is listed twice");
        assert!(Htpasswd::parse(b"no colon here\n").is_err());
        assert!(Htpasswd::parse(b"# only a comment\n").is_err());
        assert!(Htpasswd::parse(b"a:$apr1$toolongsalt$J66x6A3ONL4jNQPu3giBk/\n").is_err());
    }
}
