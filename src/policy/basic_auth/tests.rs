use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};

use super::*;

fn list(text: &str) -> Htpasswd {
    Htpasswd::parse(text.as_bytes()).unwrap()
}

fn basic(user_pass: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    );
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&value).unwrap(),
    );
    h
}

#[test]
fn md5_crypt_matches_openssl_apr1_and_md5_vectors() {
    // openssl passwd -apr1 -salt r31....a secret
    assert_eq!(
        md5_crypt(b"secret", b"r31....a", b"$apr1$"),
        "J66x6A3ONL4jNQPu3giBk/"
    );
    // openssl passwd -1 -salt saltsalt password
    assert_eq!(
        md5_crypt(b"password", b"saltsalt", b"$1$"),
        "qjXMvbEw8oaL.CzflDtaK/"
    );
}

#[tokio::test]
async fn each_htpasswd_format_verifies_the_right_password_only() {
    let bcrypt = bcrypt::hash("b-pass", 4).unwrap();
    let users = list(&format!(
        "apr:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/\nsha:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbc:{bcrypt}\n"
    ));
    assert!(verify(&users, "apr", b"secret").await);
    assert!(!verify(&users, "apr", b"Secret").await);
    assert!(verify(&users, "sha", b"password").await);
    assert!(!verify(&users, "sha", b"").await);
    assert!(verify(&users, "bc", b"b-pass").await);
    assert!(!verify(&users, "bc", b"b-pas").await);
    assert!(!verify(&users, "nobody", b"secret").await);
    // Remembered successes are per user and password.
    assert!(verify(&users, "bc", b"b-pass").await);
    assert!(!verify(&users, "bc", b"secret").await);
    assert!(!verify(&users, "apr", b"b-pass").await);
}

#[tokio::test]
async fn missing_malformed_or_repeated_credentials_get_401_with_the_realm() {
    let auth = BasicAuthConfig {
        challenge: HeaderValue::from_static("Basic realm=\"web\""),
        users: std::sync::Arc::new(list("sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")),
        source: crate::config::CredentialSource::Secret("s".into()),
        forward_authorization: false,
    };
    assert!(check(&auth, &basic("sha:password")).await.is_ok());
    let mut lower = HeaderMap::new();
    lower.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("basic c2hhOnBhc3N3b3Jk"),
    );
    assert!(check(&auth, &lower).await.is_ok());
    let mut twice = basic("sha:password");
    twice.append(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic c2hhOnBhc3N3b3Jk"),
    );
    let huge = basic(&format!("sha:{}", "x".repeat(5000)));
    let mut bearer = HeaderMap::new();
    bearer.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer abc"),
    );
    let mut garbage = HeaderMap::new();
    garbage.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
    for headers in [HeaderMap::new(), twice, huge, bearer, garbage, basic("sha")] {
        let resp = check(&auth, &headers).await.unwrap_err();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"web\""
        );
    }
}

proptest::proptest! {
    /// Hostile `Authorization` values (any bytes a header may carry) are refused or
    /// accepted, never a panic; and the htpasswd reader never panics on any list.
    #[test]
    fn any_authorization_header_or_htpasswd_text_is_handled_without_panic(
        value in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        text in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
    ) {
        let _ = Htpasswd::parse(&text);
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v);
            let _ = credentials(&h, &mut [0u8; MAX_DECODED]);
        }
    }
}

#[test]
fn a_remembered_login_is_admitted_without_waiting_and_a_missing_one_is_refused() {
    let auth = BasicAuthConfig {
        challenge: HeaderValue::from_static("Basic realm=\"t\""),
        users: std::sync::Arc::new(list("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")),
        source: crate::config::CredentialSource::File("users".into()),
        forward_authorization: false,
    };
    let mut h = HeaderMap::new();
    assert!(matches!(quick(&auth, &h), Quick::Refused));
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic Ym9iOnBhc3N3b3Jk"),
    );
    assert!(
        matches!(quick(&auth, &h), Quick::Verify),
        "not verified yet"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert!(rt.block_on(check(&auth, &h)).is_ok());
    assert!(matches!(quick(&auth, &h), Quick::Admitted), "remembered");
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic Ym9iOndyb25n"),
    );
    assert!(matches!(quick(&auth, &h), Quick::Verify));
    assert!(rt.block_on(check(&auth, &h)).is_err());
}
