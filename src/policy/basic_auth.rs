//! HTTP basic authentication against the pool's htpasswd list.
//!
//! Every comparison of secret material is constant-time (`subtle`); an unknown user costs a
//! verification against another user's hash, so timing does not tell which names exist.
//! bcrypt costs milliseconds per check, so it runs on the blocking pool (never on a worker,
//! at most [`MAX_BCRYPT_AT_ONCE`] at a time), and a verified `user:password` is remembered
//! by a salted SHA-256 digest beside the list, so a user's next requests skip it; a changed
//! list is a new list with an empty memory. Failures are never remembered.

use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use crate::config::{BasicAuthConfig, Htpasswd, PasswordHash};
use crate::proxy::body::ProxyBody;

/// Longest `Authorization` header read, in bytes; longer ones are refused unread.
const MAX_AUTHORIZATION: usize = 4096;
/// Most verified credentials remembered per list; past it the memory starts afresh.
const MAX_VERIFIED: usize = 4096;
/// Most bcrypt verifications running at once in the process.
pub const MAX_BCRYPT_AT_ONCE: usize = 8;

static BCRYPT_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_BCRYPT_AT_ONCE);

/// What the remembered logins say about a request, without waiting for anything.
pub enum Quick {
    /// A user and password verified before: let it through.
    Admitted,
    /// No well-formed `Authorization: Basic` header: refuse it.
    Refused,
    /// Well-formed credentials not verified yet: [`check`] decides (a hash to compute).
    Verify,
}

/// The synchronous first look at a request: most requests of a logged-in user end here,
/// with no allocation and no hash but the remembered digest.
pub fn quick(auth: &BasicAuthConfig, headers: &HeaderMap) -> Quick {
    let mut buf = [0u8; MAX_DECODED];
    match credentials(headers, &mut buf) {
        None => Quick::Refused,
        Some((user, password)) => {
            let digest = remembered_digest(&auth.users, user, password);
            if auth.users.verified.read().contains(&digest) {
                Quick::Admitted
            } else {
                Quick::Verify
            }
        }
    }
}

/// `Ok` when the request carries a valid user and password, else the 401 answer with
/// `WWW-Authenticate`.
pub async fn check(auth: &BasicAuthConfig, headers: &HeaderMap) -> Result<(), Response<ProxyBody>> {
    let mut buf = [0u8; MAX_DECODED];
    match credentials(headers, &mut buf) {
        Some((user, password)) if verify(&auth.users, user, password).await => Ok(()),
        _ => Err(unauthorized(auth)),
    }
}

/// The 401 answer.
pub fn unauthorized(auth: &BasicAuthConfig) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text("unauthorized\n"));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    let h = resp.headers_mut();
    h.insert(header::WWW_AUTHENTICATE, auth.challenge.clone());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Longest decoded `Authorization` value: base64 of [`MAX_AUTHORIZATION`] bytes.
const MAX_DECODED: usize = MAX_AUTHORIZATION / 4 * 3;

/// User and password of the one `Authorization: Basic` header, if well-formed, decoded
/// into `buf` (no allocation).
fn credentials<'b>(
    headers: &HeaderMap,
    buf: &'b mut [u8; MAX_DECODED],
) -> Option<(&'b str, &'b [u8])> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let (value, None) = (all.next()?, all.next()) else {
        return None;
    };
    let value = value.as_bytes();
    if value.len() > MAX_AUTHORIZATION || value.len() < 6 {
        return None;
    }
    let (scheme, rest) = value.split_at(6);
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(rest.trim_ascii(), &mut buf[..])
        .ok()?;
    let decoded: &'b [u8] = &buf[..n];
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?;
    Some((user, &decoded[colon + 1..]))
}

/// Whether `password` is `user`'s in `list`.
pub async fn verify(list: &Htpasswd, user: &str, password: &[u8]) -> bool {
    let digest = remembered_digest(list, user, password);
    if list.verified.read().contains(&digest) {
        return true;
    }
    let (hash, known) = match list.users.get(user) {
        Some(hash) => (hash, true),
        // Same work for an unknown name: verify against some user's hash, then refuse.
        None => match list.users.values().next() {
            Some(hash) => (hash, false),
            None => return false,
        },
    };
    let ok = check_hash(hash, password).await && known;
    if ok {
        let mut verified = list.verified.write();
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(digest);
    }
    ok
}

fn remembered_digest(list: &Htpasswd, user: &str, password: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(list.salt);
    h.update((user.len() as u64).to_be_bytes());
    h.update(user.as_bytes());
    h.update(password);
    h.finalize().into()
}

/// Checks `password` against one stored hash, in constant time.
async fn check_hash(hash: &PasswordHash, password: &[u8]) -> bool {
    match hash {
        PasswordHash::Sha1(stored) => {
            let computed: [u8; 20] = <sha1::Sha1 as sha1::Digest>::digest(password).into();
            computed.ct_eq(stored).into()
        }
        PasswordHash::Md5Crypt { magic, salt, hash } => {
            let computed = md5_crypt(password, salt.as_bytes(), magic.as_bytes());
            computed.as_bytes().ct_eq(hash.as_bytes()).into()
        }
        PasswordHash::Bcrypt(stored) => {
            let Ok(_slot) = BCRYPT_SLOTS.acquire().await else {
                return false;
            };
            let (stored, password) = (stored.clone(), password.to_vec());
            // bcrypt compares its digests in constant time itself.
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &stored).unwrap_or(false))
                .await
                .unwrap_or(false)
        }
    }
}

/// MD5 crypt (`$1$`) and Apache's apr1 variant (`$apr1$`), which differ only in `magic`:
/// the 22-character encoded digest of `password` with `salt` (at most 8 characters).
pub fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    use md5::{Digest, Md5};
    let salt = &salt[..salt.len().min(8)];
    let alternate = {
        let mut h = Md5::new();
        h.update(password);
        h.update(salt);
        h.update(password);
        h.finalize()
    };
    let mut h = Md5::new();
    h.update(password);
    h.update(magic);
    h.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        h.update(&alternate[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            h.update([0u8]);
        } else {
            h.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut last = h.finalize();
    for round in 0..1000 {
        let mut h = Md5::new();
        if round & 1 == 1 {
            h.update(password);
        } else {
            h.update(last);
        }
        if round % 3 != 0 {
            h.update(salt);
        }
        if round % 7 != 0 {
            h.update(password);
        }
        if round & 1 == 1 {
            h.update(last);
        } else {
            h.update(password);
        }
        last = h.finalize();
    }
    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let f = last;
    let mut out = String::with_capacity(22);
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(f[a]) << 16) | (u32::from(f[b]) << 8) | u32::from(f[c]),
            4,
        );
    }
    put(u32::from(f[11]), 2);
    out
}

#[cfg(test)]
mod tests;
