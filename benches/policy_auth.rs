//! Per-request cost of the access-policy gate (`policy::auth::admit`) on a route without
//! policies, with CORS, with basic auth (a user already verified, as every request after a
//! user's first is) and with both. External auth is a network round trip and is left out.
//!
//! Run with `cargo bench --bench policy_auth`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use sluice::config::{
    AllowedOrigins, BasicAuthConfig, CorsConfig, CredentialSource, Htpasswd, OriginPattern,
    RouteFilters,
};
use sluice::policy::auth::admit;
use sluice::policy::external_auth::Original;
use std::net::{IpAddr, Ipv4Addr};

fn cors() -> Arc<CorsConfig> {
    Arc::new(CorsConfig {
        origins: AllowedOrigins::Listed(vec![
            OriginPattern::Exact("https://app.example".into()),
            OriginPattern::Subdomain {
                scheme: "https://",
                suffix: ".example.com".into(),
                port: String::new(),
            },
        ]),
        allow_methods: HeaderValue::from_static("GET, POST"),
        allow_headers: None,
        expose_headers: Some(HeaderValue::from_static("X-Id")),
        allow_credentials: true,
        max_age: HeaderValue::from_static("600"),
    })
}

fn basic(hash: &str) -> Arc<BasicAuthConfig> {
    let users = Htpasswd::parse(format!("alice:{hash}\n").as_bytes()).expect("a valid list");
    Arc::new(BasicAuthConfig {
        challenge: HeaderValue::from_static("Basic realm=\"bench\""),
        users: Arc::new(users),
        source: CredentialSource::Secret("users".into()),
        forward_authorization: false,
    })
}

fn policy_gate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("api.example.com"));
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://a.example.com"),
    );
    let token = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {token}")).expect("a header value"),
    );
    let uri = Uri::from_static("/api/items/42");
    let original = Original {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        host: Some("api.example.com"),
        https: true,
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    };
    let bcrypt = bcrypt::hash("secret", 5).expect("bcrypt hashes");
    let routes = [
        ("none", RouteFilters::default()),
        (
            "cors",
            RouteFilters {
                cors: Some(cors()),
                ..RouteFilters::default()
            },
        ),
        (
            "basic_auth_apr1_verified",
            RouteFilters {
                basic_auth: Some(basic("$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/")),
                ..RouteFilters::default()
            },
        ),
        (
            "basic_auth_bcrypt_verified",
            RouteFilters {
                basic_auth: Some(basic(&bcrypt)),
                ..RouteFilters::default()
            },
        ),
        (
            "cors_and_basic_auth",
            RouteFilters {
                cors: Some(cors()),
                basic_auth: Some(basic(&bcrypt)),
                ..RouteFilters::default()
            },
        ),
    ];
    let mut g = c.benchmark_group("policy_gate");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (name, route) in &routes {
        // The first request of a user verifies the hash; the measured ones are the rest.
        assert!(rt.block_on(admit(route, &original)).is_ok(), "{name}");
        g.bench_function(*name, |b| {
            b.iter(|| {
                rt.block_on(admit(black_box(route), black_box(&original)))
                    .is_ok()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, policy_gate);
criterion_main!(benches);
