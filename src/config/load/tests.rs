//! Loader tests: document splitting, per-document errors, file handling.

use super::*;

const HEADER: &str = "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\n";

fn pool_doc(meta: &str, spec: &str) -> String {
    format!("{HEADER}metadata: {meta}\nspec: {spec}\n")
}

const SPEC: &str = r#"{listener: {port: 8080}, endpoints: [{address: "127.0.0.1:9001"}]}"#;

fn messages(e: ValidationErrors) -> Vec<String> {
    e.0.into_iter().map(|e| e.message).collect()
}

#[test]
fn parses_every_document_and_skips_empty_ones() {
    let text = format!(
        "---\n{}---\n# only a comment\n---\n{}",
        pool_doc("{name: a}", SPEC),
        pool_doc("{name: b, namespace: shop}", SPEC)
    );
    let pools = parse_documents("pools.yaml", &text).unwrap();
    let names: Vec<_> = pools
        .iter()
        .map(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()))
        .collect();
    assert_eq!(
        names,
        [
            (Some("default".into()), Some("a".into())),
            (Some("shop".into()), Some("b".into()))
        ]
    );
}

#[test]
fn merge_keys_are_resolved() {
    let text = format!(
        r#"{HEADER}metadata: {{name: a}}
spec:
  listener: {{port: 8080}}
  endpoints: [{{address: "127.0.0.1:1"}}]
  healthCheck:
    <<: {{interval: 2s, path: /up}}
    path: /ready
"#
    );
    let pools = parse_documents("pools.yaml", &text).unwrap();
    let hc = pools[0].spec.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.interval.as_deref(), hc.path.as_deref()),
        (Some("2s"), Some("/ready"))
    );
}

#[test]
fn empty_text_is_no_pools() {
    assert!(parse_documents("pools.yaml", "").unwrap().is_empty());
    assert!(
        parse_documents("pools.yaml", "# nothing\n")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn type_error_names_file_document_pool_and_field_path() {
    let text = format!(
        "{}---\n{}",
        pool_doc("{name: ok}", SPEC),
        pool_doc(
            "{name: web}",
            r#"{listener: {port: 8080}, algorithm: Fastest, endpoints: [{address: "127.0.0.1:9001"}]}"#
        )
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            r#"pools.yaml: document 2 (default/web): spec.algorithm: unknown variant "Fastest", expected one of "RoundRobin", "WeightedRoundRobin""#
        ),
        "{errors:?}"
    );
}

#[test]
fn nested_type_error_names_the_list_index() {
    let text = pool_doc(
        "{name: web}",
        r#"{listener: {port: 8080}, endpoints: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002", weight: heavy}]}"#,
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert!(
        errors[0].starts_with(
            "pools.yaml: document 1 (default/web): spec.endpoints[1].weight: invalid type"
        ),
        "{errors:?}"
    );
}

#[test]
fn unknown_spec_field_is_reported_with_its_parent_path() {
    let text = pool_doc(
        "{name: web, namespace: shop}",
        r#"{listener: {port: 8080, hostz: [a]}, endpoints: [{address: "127.0.0.1:9001"}]}"#,
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert!(
        errors[0].starts_with(
            r#"pools.yaml: document 1 (shop/web): spec.listener.hostz: unknown field "hostz""#
        ),
        "{errors:?}"
    );
}

#[test]
fn missing_required_field_is_reported() {
    let text = pool_doc(
        "{name: web}",
        r#"{endpoints: [{address: "127.0.0.1:9001"}]}"#,
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert_eq!(
        errors,
        [r#"pools.yaml: document 1 (default/web): spec: missing field "listener""#]
    );
}

#[test]
fn wrong_api_version_and_kind_are_rejected() {
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\n---\nkind: BackendPool\nmetadata: {{name: x}}\nspec: {SPEC}\n"
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert_eq!(
        errors,
        [
            "pools.yaml: document 1 (default/web): apiVersion: expected sluice.dev/v1alpha1, found v1",
            "pools.yaml: document 1 (default/web): kind: expected BackendPool, found Service",
            "pools.yaml: document 2 (default/x): apiVersion: required (sluice.dev/v1alpha1)",
        ]
    );
}

#[test]
fn every_bad_document_is_reported() {
    let text = format!(
        "{}---\n{}---\n{}",
        pool_doc("{name: a}", "{listener: {port: eighty}}"),
        pool_doc("{name: b}", SPEC),
        pool_doc("{name: c}", "{listener: {port: 1}, protocol: UDP}")
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("document 1 (default/a): spec.listener.port:"));
    assert!(errors[1].contains("document 3 (default/c): spec.protocol:"));
}

#[test]
fn non_mapping_document_is_rejected() {
    let errors = messages(parse_documents("pools.yaml", "- a\n- b\n").unwrap_err());
    assert_eq!(
        errors,
        ["pools.yaml: document 1: expected a BackendPool (a YAML mapping)"]
    );
}

#[test]
fn yaml_syntax_error_reports_its_location_and_stops() {
    let text = format!(
        "{}---\nspec: [unclosed\n---\n{}",
        pool_doc("{name: a}", SPEC),
        pool_doc("{name: b}", SPEC)
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("pools.yaml: document 2: "),
        "{errors:?}"
    );
    assert!(errors[0].contains("line"), "{errors:?}");
}

#[test]
fn load_file_validates_and_resolves_tls_paths_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let path = dir.path().join("pools.yaml");
    let spec = r#"{listener: {port: 8443, tls: {certFile: cert.pem, keyFile: key.pem}}, endpoints: [{address: "127.0.0.1:9001"}]}"#;
    std::fs::write(&path, pool_doc("{name: web}", spec)).unwrap();
    let set = load_file(&path).unwrap();
    assert_eq!(
        set.pools[0].listener.tls,
        Some(TlsConfig::Files {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        })
    );
}

#[test]
fn load_file_reports_missing_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pools.yaml");
    let spec = r#"{listener: {port: 8443, tls: {certFile: cert.pem, keyFile: key.pem}}, endpoints: [{address: "127.0.0.1:9001"}]}"#;
    std::fs::write(&path, pool_doc("{name: web}", spec)).unwrap();
    let Err(LoadError::Invalid(errors)) = load_file(&path) else {
        panic!("missing certificate files must be refused");
    };
    let errors = messages(errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("pool default/web: spec.listener.tls.certFile: cannot read"));
    assert!(errors[1].contains("pool default/web: spec.listener.tls.keyFile: cannot read"));
}

#[test]
fn load_file_reports_parse_and_validation_errors_together_each_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pools.yaml");
    let text = format!(
        "{}---\n{}",
        pool_doc("{name: a}", "{listener: {port: 8080}, algorithm: Fastest}"),
        pool_doc(
            "{name: b}",
            r#"{listener: {port: 8080}, endpoints: [{address: "127.0.0.1:9001"}], drainTimeout: 5x}"#
        )
    );
    std::fs::write(&path, text).unwrap();
    let Err(LoadError::Invalid(errors)) = load_file(&path) else {
        panic!("invalid file must be refused");
    };
    let file = path.display();
    assert_eq!(
        errors
            .to_string()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
        [
            format!(
                r#"{file}:4:32: document 1 (default/a): spec.algorithm: unknown variant "Fastest", expected one of "RoundRobin", "WeightedRoundRobin", "LeastConnections", "PowerOfTwoChoices", "ConsistentHash", "Random""#
            ),
            format!(
                r#"{file}:4:1: pool default/a: spec.endpoints: required (an empty list is allowed: the pool then answers 503)"#
            ),
            format!(
                r#"{file}:9:74: pool default/b: spec.drainTimeout: invalid duration "5x" (expected 250ms, 5s, 1m, 1h)"#
            ),
            format!(
                r#"{file}:9:8: pool default/b: spec.listener.pathPrefix: pool default/a already routes any host with pathPrefix / on port 8080"#
            ),
        ]
    );
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() {
    let err = load_file(Path::new("/nonexistent/sluice/pools.yaml")).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/sluice/pools.yaml: ")
    );
}

#[test]
fn every_type_error_of_a_document_is_reported_not_only_the_first() {
    let text = pool_doc(
        "{name: web}",
        r#"{listener: {port: 8080, hostz: [a]}, algorithm: Fastest, endpoints: [{address: "127.0.0.1:9001", weight: heavy, zone: b}], drainTimeout: [1]}"#,
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    let mut fields: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").nth(2).unwrap_or(e))
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "spec.algorithm",
            "spec.drainTimeout",
            "spec.endpoints[0].weight",
            "spec.endpoints[0].zone",
            "spec.listener.hostz",
        ],
        "{errors:#?}"
    );
}

#[test]
fn a_removed_required_field_is_not_reported_twice_as_missing() {
    let text = pool_doc(
        "{name: web}",
        r#"{listener: {port: http}, endpoints: [{address: "127.0.0.1:9001"}]}"#,
    );
    let errors = messages(parse_documents("pools.yaml", &text).unwrap_err());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .starts_with("pools.yaml: document 1 (default/web): spec.listener.port: invalid type"),
        "{errors:#?}"
    );
}

#[test]
fn load_file_reports_type_and_semantic_errors_of_one_pool_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pools.yaml");
    let text = pool_doc(
        "{name: a}",
        r#"{listener: {port: 8080}, algorithm: Fastest, endpoints: [{address: "127.0.0.1:9001", weight: 0}]}"#,
    );
    std::fs::write(&path, text).unwrap();
    let Err(LoadError::Invalid(errors)) = load_file(&path) else {
        panic!("invalid file must be refused");
    };
    let lines: Vec<String> = errors.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("(default/a): spec.algorithm: unknown variant \"Fastest\""),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("pool default/a: spec.endpoints[0].weight"),
        "{lines:#?}"
    );
}
