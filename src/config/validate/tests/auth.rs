//! `cors`, `basicAuth` and `externalAuth`: defaults, origin patterns, modes and URLs.

use std::time::Duration;

use super::*;
use crate::config::{AllowedOrigins, CredentialSource, OriginPattern};

const LISTENER: &str = "listener: {port: 8080}";

#[test]
fn an_empty_cors_block_allows_any_origin_with_ingress_nginx_defaults() {
    let cfg = one(&[LISTENER, EP, "cors: {}"]);
    let cors = cfg.filters.cors.unwrap();
    assert_eq!(cors.origins, AllowedOrigins::Any);
    assert_eq!(cors.allow_methods, "GET, PUT, POST, DELETE, PATCH, OPTIONS");
    assert!(
        cors.allow_headers
            .as_ref()
            .is_some_and(|h| h.to_str().unwrap().ends_with("Authorization"))
    );
    assert_eq!(cors.expose_headers, None);
    assert!(!cors.allow_credentials);
    assert_eq!(cors.max_age, "86400");
}

#[test]
fn origins_are_lower_cased_and_wildcards_keep_scheme_and_port() {
    let cfg = one(&[
        LISTENER,
        EP,
        "cors: {allowOrigins: ['HTTPS://App.Example', 'https://*.example.com:8443'], maxAge: 90s}",
    ]);
    let cors = cfg.filters.cors.unwrap();
    assert_eq!(
        cors.origins,
        AllowedOrigins::Listed(vec![
            OriginPattern::Exact("https://app.example".into()),
            OriginPattern::Subdomain {
                scheme: "https://",
                suffix: ".example.com".into(),
                port: ":8443".into(),
            },
        ])
    );
    assert_eq!(cors.max_age, "90");
}

#[test]
fn bad_origins_are_refused_each_by_index() {
    let problems = problems(&[
        LISTENER,
        EP,
        "cors: {allowOrigins: ['https://a.example/', 'https://*.', 'https://a.example:0', 'null']}",
    ]);
    assert_eq!(problems.len(), 4, "{problems:?}");
    for (i, p) in problems.iter().enumerate() {
        assert!(
            p.starts_with(&format!("spec.cors.allowOrigins[{i}]: ")),
            "{p}"
        );
    }
}

#[test]
fn credentials_with_any_origin_are_refused() {
    assert_one_problem(
        &[
            LISTENER,
            EP,
            "cors: {allowOrigins: ['*'], allowCredentials: true}",
        ],
        "spec.cors.allowOrigins: allowCredentials needs the origins listed: browsers refuse \"*\" with credentials",
    );
}

#[test]
fn basic_auth_takes_the_file_standalone_and_the_secret_in_kubernetes() {
    let cfg = one(&[LISTENER, EP, "basicAuth: {file: users.htpasswd}"]);
    let auth = cfg.filters.basic_auth.unwrap();
    assert_eq!(
        auth.source,
        CredentialSource::File("conf/users.htpasswd".into())
    );
    assert_eq!(auth.challenge, "Basic realm=\"sluice\"");
    assert_one_problem(
        &[LISTENER, EP, "basicAuth: {secretName: users}"],
        "spec.basicAuth.secretName: is for Kubernetes mode; standalone mode reads file",
    );
    let set = ok(
        &Source::Kubernetes,
        &[doc(
            "web",
            &[LISTENER, EP, "basicAuth: {secretName: users, realm: Staff}"],
        )],
    );
    let auth = set.pools[0].filters.basic_auth.clone().unwrap();
    assert_eq!(auth.source, CredentialSource::Secret("users".into()));
    assert_eq!(auth.challenge, "Basic realm=\"Staff\"");
    let errs = errors(
        &Source::Kubernetes,
        &[doc(
            "web",
            &[LISTENER, EP, "basicAuth: {file: users.htpasswd}"],
        )],
    );
    assert_eq!(
        errs,
        [
            "pool default/web: spec.basicAuth.file: is for standalone mode; Kubernetes mode reads secretName"
        ]
    );
}

#[test]
fn an_unreadable_htpasswd_secret_is_reported_on_secret_name() {
    let lookups = Lookups {
        tls: &|_, _| Err("unused".into()),
        ca: &|_, _| Err("unused".into()),
        htpasswd: &|ns, name| Err(format!("Secret {ns}/{name} not found")),
    };
    let pools = [doc(
        "web",
        &[LISTENER, EP, "basicAuth: {secretName: users}"],
    )];
    let errs = validate_with_lookups(&Source::Kubernetes, &pools, &lookups).unwrap_err();
    assert_eq!(
        errs.to_string(),
        "pool default/web: spec.basicAuth.secretName: Secret default/users not found"
    );
}

#[test]
fn external_auth_takes_defaults_and_refuses_https_reserved_headers_and_zero_timeout() {
    let cfg = one(&[
        LISTENER,
        EP,
        "externalAuth: {url: 'http://auth.internal:4180/oauth2/auth'}",
    ]);
    let ext = cfg.filters.external_auth.unwrap();
    assert_eq!(ext.url, "http://auth.internal:4180/oauth2/auth");
    assert_eq!(ext.request_headers, ["authorization", "cookie"]);
    assert!(ext.response_headers.is_empty());
    assert_eq!(ext.timeout, Duration::from_secs(1));
    let problems = problems(&[
        LISTENER,
        EP,
        "externalAuth: {url: 'https://auth/', requestHeaders: [Connection], responseHeaders: [Content-Length], signinURL: 'ftp://x/', timeout: 0s}",
    ]);
    assert_eq!(problems.len(), 5, "{problems:?}");
    for field in [
        "spec.externalAuth.url: ",
        "spec.externalAuth.requestHeaders[0]: ",
        "spec.externalAuth.responseHeaders[0]: ",
        "spec.externalAuth.signinURL: ",
        "spec.externalAuth.timeout: ",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(field)),
            "{field} in {problems:?}"
        );
    }
}

#[test]
fn access_policies_are_only_for_http() {
    let problems = problems(&[
        "protocol: TCP",
        LISTENER,
        EP,
        "cors: {}",
        "basicAuth: {file: u}",
        "externalAuth: {url: 'http://auth/'}",
    ]);
    assert_eq!(
        problems,
        [
            "spec.cors: only for protocol HTTP",
            "spec.basicAuth: only for protocol HTTP",
            "spec.externalAuth: only for protocol HTTP"
        ]
    );
}
