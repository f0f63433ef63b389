//! `crds/backendpool.yaml` is exactly what `sluice crd` prints, and the CRD is one the API
//! server accepts (structural schema, short name, status subresource, printer columns).
//!
//! It also carries the contract's rules, so the API server refuses a bad pool at
//! `kubectl apply`: one test per rule finds it at its schema path, and shows that
//! Kubernetes-mode Rust validation (`sluice::config::validate`) refuses a spec that breaks it
//! and accepts the same spec mended, so the two stay in step. (Whether the API server
//! evaluates each CEL rule as intended is for the real-API-server tests.)
//!
//! Regenerate the file with `UPDATE_CRD=1 cargo test --test crd`.

use std::path::PathBuf;

use serde_norway::Value;
use sluice::api::BackendPool;
use sluice::config::{Source, ValidationError, validate};

fn generated() -> String {
    sluice::config::crd_yaml().expect("the CRD serializes to YAML")
}

fn crd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/backendpool.yaml")
}

#[test]
fn crd_file_equals_generated_crd() {
    let generated = generated();
    if std::env::var_os("UPDATE_CRD").is_some() {
        std::fs::write(crd_path(), &generated).expect("crds/backendpool.yaml is writable");
    }
    let on_disk = std::fs::read_to_string(crd_path()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "crds/backendpool.yaml differs from `sluice crd`; regenerate with `UPDATE_CRD=1 cargo test --test crd`"
    );
}

fn crd() -> Value {
    serde_norway::from_str(&generated()).expect("the CRD YAML parses")
}

#[test]
fn crd_names_group_kind_and_short_name() {
    let crd = crd();
    assert_eq!(crd["metadata"]["name"], "backendpools.sluice.dev");
    assert_eq!(crd["spec"]["group"], "sluice.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "BackendPool");
    assert_eq!(crd["spec"]["names"]["plural"], "backendpools");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_norway::from_str::<Value>("[bp]").unwrap()
    );
}

#[test]
fn crd_version_has_status_subresource_and_printer_columns() {
    let crd = crd();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert!(version["subresources"]["status"].is_mapping());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_sequence()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["Protocol", "Port", "Algorithm", "Healthy", "Ready", "Age"]
    );
}

/// Kubernetes' structural-schema rules, as far as this schema can break them: every
/// property and array item states a `type` (unless it is int-or-string or preserves
/// unknown fields), and `anyOf`/`oneOf`/`allOf`/`not` branches carry no `type`,
/// `description`, `default`, `nullable` or `additionalProperties`.
fn structural_problems(node: &Value, path: &str, in_branch: bool, out: &mut Vec<String>) {
    let Some(map) = node.as_mapping() else {
        return;
    };
    let exempt = node["x-kubernetes-int-or-string"] == true
        || node["x-kubernetes-preserve-unknown-fields"] == true;
    if in_branch {
        for key in [
            "type",
            "description",
            "default",
            "nullable",
            "additionalProperties",
        ] {
            if map.contains_key(key) {
                out.push(format!("{path}: `{key}` inside anyOf/oneOf/allOf/not"));
            }
        }
    } else if !exempt && !map.contains_key("type") {
        out.push(format!("{path}: no type"));
    }
    if let Some(props) = node["properties"].as_mapping() {
        for (k, v) in props {
            let k = k.as_str().unwrap_or("?");
            structural_problems(v, &format!("{path}.{k}"), in_branch, out);
        }
    }
    if node.get("items").is_some() {
        structural_problems(&node["items"], &format!("{path}[]"), in_branch, out);
    }
    if let Some(ap) = node.get("additionalProperties").filter(|v| v.is_mapping()) {
        structural_problems(ap, &format!("{path}.*"), in_branch, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for (i, branch) in node[key].as_sequence().into_iter().flatten().enumerate() {
            structural_problems(branch, &format!("{path}.{key}[{i}]"), true, out);
        }
    }
    if node.get("not").is_some() {
        structural_problems(&node["not"], &format!("{path}.not"), true, out);
    }
}

#[test]
fn crd_schema_is_structural() {
    let crd = crd();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(schema.is_mapping(), "no openAPIV3Schema");
    let mut problems = Vec::new();
    structural_problems(schema, "", false, &mut problems);
    assert!(
        problems.is_empty(),
        "non-structural schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn crd_schema_carries_the_duration_pattern_and_ranges() {
    let crd = crd();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["drainTimeout"]["pattern"],
        "^([0-9]+(ms|s|m|h))+$"
    );
    let port = &spec["properties"]["listener"]["properties"]["port"];
    assert_eq!(port["minimum"].as_f64(), Some(1.0));
    assert_eq!(port["maximum"].as_f64(), Some(65535.0));
}

// ---- The contract's rules: where the CRD carries each, and Rust agrees ----

/// The schema node at `path` below `spec`: dot-separated property names, `name[]` for a
/// list's items; `""` is `spec` itself.
fn schema_at(path: &str) -> Value {
    let crd = crd();
    let mut node =
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone();
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, items) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        node = node["properties"][name].clone();
        if items {
            node = node["items"].clone();
        }
        assert!(node.is_mapping(), "the CRD has no schema at spec.{path}");
    }
    node
}

/// The `x-kubernetes-validations` rules at `path`.
fn cel_rules_at(path: &str) -> Vec<String> {
    schema_at(path)["x-kubernetes-validations"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|r| r["rule"].as_str().map(str::to_owned))
        .collect()
}

/// Asserts the schema at `path` carries the CEL `rule`, with a message for users.
fn assert_cel_rule(path: &str, rule: &str) {
    let node = schema_at(path);
    let entry = node["x-kubernetes-validations"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|r| r["rule"] == rule);
    let Some(entry) = entry else {
        panic!(
            "spec.{path} does not carry the CEL rule\n  {rule}\nit has {:#?}",
            cel_rules_at(path)
        );
    };
    assert!(
        entry["message"].as_str().is_some_and(|m| !m.is_empty()),
        "the CEL rule at spec.{path} has no message: {rule}"
    );
}

/// Asserts the schema at `path` has every key/value of the YAML mapping `constraints`.
fn assert_openapi(path: &str, constraints: &str) {
    let node = schema_at(path);
    let wanted: Value = serde_norway::from_str(constraints).expect("constraints are YAML");
    for (key, value) in wanted.as_mapping().expect("constraints are a mapping") {
        assert_eq!(
            &node[key.as_str().expect("string keys")],
            value,
            "spec.{path}: {key:?}"
        );
    }
}

/// One pool `default/web` whose spec is the YAML `spec` (a flow mapping).
fn pool(spec: &str) -> BackendPool {
    let text = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: web, namespace: default}}\nspec: {spec}\n"
    );
    match sluice::config::parse_documents("test.yaml", &text) {
        Ok(mut pools) if pools.len() == 1 => pools.remove(0),
        other => panic!("test spec does not parse: {other:?}\n{text}"),
    }
}

/// Kubernetes-mode validation errors for one pool.
fn rust_errors(spec: &str) -> Vec<ValidationError> {
    match validate(&Source::Kubernetes, &[pool(spec)]) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0,
    }
}

fn messages(errors: &[ValidationError]) -> String {
    let lines: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    lines.join("\n  ")
}

fn assert_rust_rejects(spec: &str, field: &str) {
    let errors = rust_errors(spec);
    assert!(
        errors.iter().any(|e| e.field.as_deref() == Some(field)),
        "Rust validation should refuse {field} in\n  spec: {}\ngot:\n  {}",
        abbreviate(spec),
        messages(&errors)
    );
}

fn assert_rust_accepts(spec: &str) {
    let errors = rust_errors(spec);
    assert!(
        errors.is_empty(),
        "Rust validation should accept\n  spec: {}\ngot:\n  {}",
        abbreviate(spec),
        messages(&errors)
    );
}

/// Long generated specs, cut for failure messages.
fn abbreviate(spec: &str) -> String {
    match spec.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &spec[..cut]),
        None => spec.to_owned(),
    }
}

/// A spec with `n` distinct static endpoints.
fn with_endpoints(n: usize) -> String {
    let endpoints: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{address: \"10.{}.{}.{}:80\"}}",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            )
        })
        .collect();
    format!(
        "{{listener: {{port: 8080}}, endpoints: [{}]}}",
        endpoints.join(", ")
    )
}

/// An HTTP spec listening on `n` distinct hosts.
fn with_hosts(n: usize) -> String {
    let hosts: Vec<String> = (0..n).map(|i| format!("h{i}.example")).collect();
    format!(
        "{{listener: {{port: 8080, hosts: [{}]}}, endpoints: []}}",
        hosts.join(", ")
    )
}

/// A spec whose health check expects `n` status entries.
fn with_statuses(n: usize) -> String {
    let statuses = vec!["\"200\""; n].join(", ");
    format!(
        "{{listener: {{port: 8080}}, endpoints: [], healthCheck: {{expectedStatuses: [{statuses}]}}}}"
    )
}

/// A spec with the optional block `block` (e.g. `timeouts: {connect: 0s}`) added.
fn with(block: &str) -> String {
    format!("{{listener: {{port: 8080}}, endpoints: [], {block}}}")
}

/// One test per CEL rule: the CRD carries `rule` at `spec.<at>`; Rust validation refuses
/// each `bad` spec on `field` and accepts the `good` one (the same spec, mended).
macro_rules! cel_rule_tests {
    ($(
        $(#[$doc:meta])*
        $name:ident {
            at: $at:literal,
            rule: $rule:literal,
            bad: [$($bad:expr),+ $(,)?],
            field: $field:literal,
            good: $good:expr $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                assert_cel_rule($at, $rule);
                $(assert_rust_rejects(&$bad, $field);)+
                assert_rust_accepts(&$good);
            }
        )*

        /// Every CEL rule the tests above cover, as (path below `spec`, rule).
        const TESTED_CEL_RULES: &[(&str, &str)] = &[$(($at, $rule)),*];
    };
}

/// One test per group of OpenAPI constraints: the CRD has `constraints` (YAML) at
/// `spec.<at>`; Rust validation refuses each `bad` spec on `field`, accepts `good`.
macro_rules! openapi_tests {
    ($(
        $(#[$doc:meta])*
        $name:ident {
            at: $at:literal,
            has: $constraints:expr,
            bad: [$($bad:expr),+ $(,)?],
            field: $field:literal,
            good: $good:expr $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                assert_openapi($at, $constraints);
                $(assert_rust_rejects(&$bad, $field);)+
                assert_rust_accepts(&$good);
            }
        )*
    };
}

cel_rule_tests! {
    service_or_endpoints_is_required {
        at: "",
        rule: "has(self.service) || has(self.endpoints) || has(self.redirect)",
        bad: ["{listener: {port: 8080}}", "{listener: {port: 8080}, endpoints: null}"],
        field: "spec.endpoints",
        good: "{listener: {port: 8080}, service: {name: web, port: 80}}",
    }
    hosts_are_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || !has(self.listener.hosts) || size(self.listener.hosts) == 0",
        bad: ["{protocol: TCP, listener: {port: 5432, hosts: [db.example]}, endpoints: []}"],
        field: "spec.listener.hosts",
        good: "{protocol: TCP, listener: {port: 5432, hosts: []}, endpoints: []}",
    }
    path_prefix_is_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || !has(self.listener.pathPrefix)",
        bad: ["{protocol: TCP, listener: {port: 5432, pathPrefix: /}, endpoints: []}"],
        field: "spec.listener.pathPrefix",
        good: "{protocol: HTTP, listener: {port: 5432, pathPrefix: /}, endpoints: []}",
    }
    consistent_hash_requires_a_hash_key {
        at: "",
        rule: "self.algorithm != 'ConsistentHash' || has(self.hashKey)",
        bad: [with("algorithm: ConsistentHash")],
        field: "spec.hashKey",
        good: with("algorithm: ConsistentHash, hashKey: {clientIP: true}"),
    }
    hash_key_is_only_for_consistent_hash {
        at: "",
        rule: "self.algorithm == 'ConsistentHash' || !has(self.hashKey)",
        bad: [with("hashKey: {clientIP: true}"), with("algorithm: Random, hashKey: {header: x-user}")],
        field: "spec.hashKey",
        good: with("algorithm: ConsistentHash, hashKey: {header: x-user}"),
    }
    tcp_pools_hash_only_on_client_ip {
        at: "",
        rule: "self.protocol == 'HTTP' || !has(self.hashKey) || (!has(self.hashKey.header) && !has(self.hashKey.cookie))",
        bad: ["{protocol: TCP, listener: {port: 5432}, endpoints: [], algorithm: ConsistentHash, hashKey: {header: x-user}}"],
        field: "spec.hashKey.header",
        good: "{protocol: TCP, listener: {port: 5432}, endpoints: [], algorithm: ConsistentHash, hashKey: {clientIP: true}}",
    }
    send_proxy_protocol_is_only_for_tcp {
        at: "",
        rule: "self.protocol == 'TCP' || !has(self.sendProxyProtocol) || self.sendProxyProtocol == 'None'",
        bad: [with("sendProxyProtocol: V1"), with("sendProxyProtocol: V2")],
        field: "spec.sendProxyProtocol",
        good: with("sendProxyProtocol: None"),
    }
    cookie_affinity_is_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || !has(self.sessionAffinity) || !has(self.sessionAffinity.type) || self.sessionAffinity.type != 'Cookie'",
        bad: ["{protocol: TCP, listener: {port: 5432}, endpoints: [], sessionAffinity: {type: Cookie}}"],
        field: "spec.sessionAffinity.type",
        good: "{protocol: TCP, listener: {port: 5432}, endpoints: [], sessionAffinity: {type: ClientIP}}",
    }
    routing_fields_are_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || (!has(self.listener.match) && !has(self.canary) && !has(self.redirect) && !has(self.rewrite) && !has(self.requestHeaders) && !has(self.responseHeaders))",
        bad: ["{protocol: TCP, listener: {port: 5432}, endpoints: [], requestHeaders: {set: {X-A: b}}}"],
        field: "spec.requestHeaders",
        good: "{protocol: HTTP, listener: {port: 5432}, endpoints: [], requestHeaders: {set: {X-A: b}}}",
    }
    a_redirect_pool_rewrites_nothing {
        at: "",
        rule: "!has(self.redirect) || (!has(self.rewrite) && !has(self.canary))",
        bad: ["{listener: {port: 8080}, redirect: {scheme: https}, rewrite: {pathPrefix: /}}"],
        field: "spec.rewrite",
        good: "{listener: {port: 8080}, redirect: {scheme: https}}",
    }
    canary_names_a_service_or_endpoints {
        at: "canary",
        rule: "has(self.service) || has(self.endpoints)",
        bad: ["{listener: {port: 8080}, endpoints: [], canary: {weight: 5}}"],
        field: "spec.canary.endpoints",
        good: "{listener: {port: 8080}, endpoints: [], canary: {weight: 5, service: {name: web-v2, port: 80}}}",
    }
    redirect_sets_path_or_path_prefix {
        at: "redirect",
        rule: "!(has(self.path) && has(self.pathPrefix))",
        bad: ["{listener: {port: 8080}, redirect: {path: /a, pathPrefix: /b}}"],
        field: "spec.redirect.pathPrefix",
        good: "{listener: {port: 8080}, redirect: {path: /a}}",
    }
    redirect_path_starts_with_a_slash {
        at: "redirect.path",
        rule: "self.startsWith('/')",
        bad: ["{listener: {port: 8080}, redirect: {path: a}}"],
        field: "spec.redirect.path",
        good: "{listener: {port: 8080}, redirect: {path: /a}}",
    }
    redirect_path_prefix_starts_with_a_slash {
        at: "redirect.pathPrefix",
        rule: "self.startsWith('/')",
        bad: ["{listener: {port: 8080}, redirect: {pathPrefix: a}}"],
        field: "spec.redirect.pathPrefix",
        good: "{listener: {port: 8080}, redirect: {pathPrefix: /a}}",
    }
    redirect_status_is_a_redirect {
        at: "redirect.statusCode",
        rule: "self in [301, 302, 303, 307, 308]",
        bad: ["{listener: {port: 8080}, redirect: {statusCode: 200}}"],
        field: "spec.redirect.statusCode",
        good: "{listener: {port: 8080}, redirect: {statusCode: 301}}",
    }
    rewrite_path_prefix_starts_with_a_slash {
        at: "rewrite.pathPrefix",
        rule: "self.startsWith('/')",
        bad: ["{listener: {port: 8080}, endpoints: [], rewrite: {pathPrefix: a}}"],
        field: "spec.rewrite.pathPrefix",
        good: "{listener: {port: 8080}, endpoints: [], rewrite: {pathPrefix: /a}}",
    }
    path_prefix_starts_with_a_slash {
        at: "listener.pathPrefix",
        rule: "self.startsWith('/')",
        bad: ["{listener: {port: 8080, pathPrefix: api}, endpoints: []}"],
        field: "spec.listener.pathPrefix",
        good: "{listener: {port: 8080, pathPrefix: /api}, endpoints: []}",
    }
    path_prefix_has_no_query_fragment_or_space {
        at: "listener.pathPrefix",
        rule: "!self.matches('[?#[:space:][:cntrl:]]')",
        bad: [
            "{listener: {port: 8080, pathPrefix: /a?b}, endpoints: []}",
            "{listener: {port: 8080, pathPrefix: '/a#b'}, endpoints: []}",
            "{listener: {port: 8080, pathPrefix: '/a b'}, endpoints: []}",
            "{listener: {port: 8080, pathPrefix: \"/a\\tb\"}, endpoints: []}",
        ],
        field: "spec.listener.pathPrefix",
        good: "{listener: {port: 8080, pathPrefix: /a/b}, endpoints: []}",
    }
    /// TLS is allowed on TCP pools too; which source a mode needs is Rust's to say
    /// (Kubernetes mode wants `secretName`).
    tls_names_a_secret_or_files {
        at: "listener.tls",
        rule: "has(self.secretName) || (has(self.certFile) && has(self.keyFile))",
        bad: [
            "{listener: {port: 8443, tls: {}}, endpoints: []}",
            "{listener: {port: 8443, tls: {certFile: cert.pem}}, endpoints: []}",
        ],
        field: "spec.listener.tls.secretName",
        good: "{protocol: TCP, listener: {port: 8443, tls: {secretName: web-tls}}, endpoints: []}",
    }
    canary_service_port_is_a_port_number_or_name {
        at: "canary.service.port",
        rule: "type(self) == string ? self != '' : self >= 1 && self <= 65535",
        bad: [
            "{listener: {port: 8080}, endpoints: [], canary: {service: {name: web, port: 0}}}",
            "{listener: {port: 8080}, endpoints: [], canary: {service: {name: web, port: ''}}}",
        ],
        field: "spec.canary.service.port",
        good: "{listener: {port: 8080}, endpoints: [], canary: {service: {name: web, port: http}}}",
    }
    service_port_is_a_port_number_or_name {
        at: "service.port",
        rule: "type(self) == string ? self != '' : self >= 1 && self <= 65535",
        bad: [
            "{listener: {port: 8080}, service: {name: web, port: 0}}",
            "{listener: {port: 8080}, service: {name: web, port: 65536}}",
            "{listener: {port: 8080}, service: {name: web, port: ''}}",
        ],
        field: "spec.service.port",
        good: "{listener: {port: 8080}, service: {name: web, port: http}}",
    }
    hash_key_sets_exactly_one_source {
        at: "hashKey",
        rule: "(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (has(self.clientIP) && self.clientIP ? 1 : 0) == 1",
        bad: [
            with("algorithm: ConsistentHash, hashKey: {header: x-user, cookie: session}"),
            with("algorithm: ConsistentHash, hashKey: {clientIP: false}"),
            with("algorithm: ConsistentHash, hashKey: {}"),
        ],
        field: "spec.hashKey",
        good: with("algorithm: ConsistentHash, hashKey: {cookie: session}"),
    }
    health_check_path_is_only_for_http_checks {
        at: "healthCheck",
        rule: "!has(self.protocol) || self.protocol == 'HTTP' || !has(self.path)",
        bad: [with("healthCheck: {protocol: TCP, path: /healthz}")],
        field: "spec.healthCheck.path",
        good: with("healthCheck: {protocol: HTTP, path: /healthz}"),
    }
    expected_statuses_are_only_for_http_checks {
        at: "healthCheck",
        rule: "!has(self.protocol) || self.protocol == 'HTTP' || !has(self.expectedStatuses)",
        bad: [with("healthCheck: {protocol: TCP, expectedStatuses: ['200']}")],
        field: "spec.healthCheck.expectedStatuses",
        good: with("healthCheck: {expectedStatuses: ['200']}"),
    }
    health_check_path_starts_with_a_slash {
        at: "healthCheck.path",
        rule: "self.startsWith('/')",
        bad: [with("healthCheck: {path: healthz}")],
        field: "spec.healthCheck.path",
        good: with("healthCheck: {path: /healthz}"),
    }
    expected_status_ranges_are_not_empty {
        at: "healthCheck.expectedStatuses",
        rule: "self.all(s, size(s) != 7 || s.substring(0, 3) <= s.substring(4, 7))",
        bad: [with("healthCheck: {expectedStatuses: ['200', '500-200']}")],
        field: "spec.healthCheck.expectedStatuses[1]",
        good: with("healthCheck: {expectedStatuses: ['200', '200-500', '404-404']}"),
    }
    health_check_interval_is_not_zero {
        at: "healthCheck.interval",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("healthCheck: {interval: 0s}"), with("healthCheck: {interval: 00m0ms}")],
        field: "spec.healthCheck.interval",
        good: with("healthCheck: {interval: 0m10s}"),
    }
    health_check_timeout_is_not_zero {
        at: "healthCheck.timeout",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("healthCheck: {timeout: 0ms}")],
        field: "spec.healthCheck.timeout",
        good: with("healthCheck: {timeout: 500ms}"),
    }
    base_ejection_time_is_not_zero {
        at: "outlierDetection.baseEjectionTime",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("outlierDetection: {baseEjectionTime: 0s}")],
        field: "spec.outlierDetection.baseEjectionTime",
        good: with("outlierDetection: {baseEjectionTime: 1s}"),
    }
    /// Checked whatever the affinity type, as the CRD checks it.
    affinity_ttl_is_not_zero {
        at: "sessionAffinity.ttl",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [
            with("sessionAffinity: {type: Cookie, ttl: 0h}"),
            with("sessionAffinity: {type: ClientIP, ttl: 0s}"),
        ],
        field: "spec.sessionAffinity.ttl",
        good: with("sessionAffinity: {type: ClientIP, ttl: 1h}"),
    }
    connect_timeout_is_not_zero {
        at: "timeouts.connect",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("timeouts: {connect: 0s}")],
        field: "spec.timeouts.connect",
        good: with("timeouts: {connect: 100ms}"),
    }
    request_timeout_is_not_zero {
        at: "timeouts.request",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("timeouts: {request: 0m}")],
        field: "spec.timeouts.request",
        good: with("timeouts: {request: 1m}"),
    }
    idle_timeout_is_not_zero {
        at: "timeouts.idle",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("timeouts: {idle: 0s}")],
        field: "spec.timeouts.idle",
        good: with("timeouts: {idle: 1h}"),
    }
    backoff_base_is_not_greater_than_max {
        at: "retry.backoff",
        rule: "(has(self.base) ? duration(self.base) : duration('25ms')) <= (has(self.max) ? duration(self.max) : duration('1s'))",
        bad: [
            with("retry: {backoff: {base: 2s}}"),
            with("retry: {backoff: {max: 10ms}}"),
            with("retry: {backoff: {base: 1m, max: 59s}}"),
        ],
        field: "spec.retry.backoff",
        good: with("retry: {backoff: {base: 1m, max: 60s}}"),
    }
    upstream_is_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || !has(self.upstream)",
        bad: ["{protocol: TCP, listener: {port: 5432}, endpoints: [], upstream: {protocol: HTTP2}}"],
        field: "spec.upstream",
        good: "{protocol: HTTP, listener: {port: 5432}, endpoints: [], upstream: {protocol: HTTP2}}",
    }
    upstream_auto_needs_tls {
        at: "upstream",
        rule: "!has(self.protocol) || self.protocol != 'auto' || has(self.tls)",
        bad: [with("upstream: {protocol: auto}")],
        field: "spec.upstream.protocol",
        good: with("upstream: {protocol: auto, tls: {}}"),
    }
    upstream_ca_has_one_source {
        at: "upstream.tls",
        rule: "!has(self.caSecretName) || !has(self.caFile)",
        bad: [with("upstream: {tls: {caSecretName: web-ca, caFile: ca.pem}}")],
        field: "spec.upstream.tls",
        good: with("upstream: {tls: {caSecretName: web-ca}}"),
    }
    insecure_skip_verify_takes_no_ca {
        at: "upstream.tls",
        rule: "!has(self.insecureSkipVerify) || !self.insecureSkipVerify || (!has(self.caSecretName) && !has(self.caFile))",
        bad: [with("upstream: {tls: {insecureSkipVerify: true, caSecretName: web-ca}}")],
        field: "spec.upstream.tls.insecureSkipVerify",
        good: with("upstream: {tls: {insecureSkipVerify: false, caSecretName: web-ca}}"),
    }
    access_policies_are_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || (!has(self.rateLimit) && !has(self.ipAllowList) && !has(self.ipDenyList) && !has(self.maxRequestBodyBytes))",
        bad: ["{protocol: TCP, listener: {port: 5432}, endpoints: [], rateLimit: {requestsPerSecond: 5}}"],
        field: "spec.rateLimit",
        good: "{protocol: HTTP, listener: {port: 5432}, endpoints: [], rateLimit: {requestsPerSecond: 5}}",
    }
    allow_list_entries_are_addresses_or_cidrs_without_host_bits {
        at: "ipAllowList",
        rule: "self.all(c, isIP(c) || (isCIDR(c) && cidr(c) == cidr(c).masked()))",
        bad: [
            with("ipAllowList: [10.0.0.1/8]"),
            with("ipAllowList: [10.0.0.0/33]"),
            with("ipAllowList: [web.example]"),
        ],
        field: "spec.ipAllowList[0]",
        good: with("ipAllowList: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32', '::1']"),
    }
    deny_list_entries_are_addresses_or_cidrs_without_host_bits {
        at: "ipDenyList",
        rule: "self.all(c, isIP(c) || (isCIDR(c) && cidr(c) == cidr(c).masked()))",
        bad: [with("ipDenyList: ['2001:db8::1/32']"), with("ipDenyList: ['']")],
        field: "spec.ipDenyList[0]",
        good: with("ipDenyList: [203.0.113.0/24]"),
    }
    rate_limit_header_goes_with_key_header {
        at: "rateLimit",
        rule: "has(self.key) && self.key == 'Header' ? has(self.header) : !has(self.header)",
        bad: [
            with("rateLimit: {requestsPerSecond: 5, key: Header}"),
            with("rateLimit: {requestsPerSecond: 5, header: x-user}"),
            with("rateLimit: {requestsPerSecond: 5, key: Pool, header: x-user}"),
        ],
        field: "spec.rateLimit.header",
        good: with("rateLimit: {requestsPerSecond: 5, key: Header, header: x-user}"),
    }
    auth_and_cors_are_only_for_http {
        at: "",
        rule: "self.protocol == 'HTTP' || (!has(self.cors) && !has(self.basicAuth) && !has(self.externalAuth))",
        bad: ["{protocol: TCP, listener: {port: 5432}, endpoints: [], cors: {}}"],
        field: "spec.cors",
        good: "{protocol: HTTP, listener: {port: 5432}, endpoints: [], cors: {}}",
    }
    basic_auth_has_one_source {
        at: "basicAuth",
        rule: "has(self.secretName) != has(self.file)",
        bad: [with("basicAuth: {secretName: users, file: users.htpasswd}"), with("basicAuth: {realm: web}")],
        field: "spec.basicAuth",
        good: with("basicAuth: {secretName: users, realm: web}"),
    }
    cors_credentials_need_listed_origins {
        at: "cors",
        rule: "!has(self.allowCredentials) || !self.allowCredentials || (has(self.allowOrigins) && !self.allowOrigins.exists(o, o == '*'))",
        bad: [with("cors: {allowCredentials: true}"), with("cors: {allowCredentials: true, allowOrigins: ['*']}")],
        field: "spec.cors.allowOrigins",
        good: with("cors: {allowCredentials: true, allowOrigins: ['https://app.example', 'https://*.example.com']}"),
    }
    cors_star_origin_stands_alone {
        at: "cors",
        rule: "!has(self.allowOrigins) || !self.allowOrigins.exists(o, o == '*') || size(self.allowOrigins) == 1",
        bad: [with("cors: {allowOrigins: ['*', 'https://app.example']}")],
        field: "spec.cors.allowOrigins",
        good: with("cors: {allowOrigins: ['*']}"),
    }
    external_auth_timeout_is_not_zero {
        at: "externalAuth.timeout",
        rule: "!self.matches('^(0+(ms|s|m|h))+$')",
        bad: [with("externalAuth: {url: 'http://auth:4180/oauth2/auth', timeout: 0s}")],
        field: "spec.externalAuth.timeout",
        good: with("externalAuth: {url: 'http://auth:4180/oauth2/auth', timeout: 500ms}"),
    }
}

#[test]
fn every_cel_rule_in_the_crd_has_a_test() {
    fn walk(node: &Value, path: &str, out: &mut Vec<(String, String)>) {
        for rule in node["x-kubernetes-validations"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let rule = rule["rule"].as_str().unwrap_or("?");
            out.push((path.to_owned(), rule.to_owned()));
        }
        for (name, child) in node["properties"].as_mapping().into_iter().flatten() {
            let name = name.as_str().unwrap_or("?");
            let child_path = if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            walk(child, &child_path, out);
        }
        if node["items"].is_mapping() {
            walk(&node["items"], &format!("{path}[]"), out);
        }
    }
    let mut found = Vec::new();
    walk(&schema_at(""), "", &mut found);
    let untested: Vec<String> = found
        .iter()
        .filter(|(path, rule)| !TESTED_CEL_RULES.contains(&(path.as_str(), rule.as_str())))
        .map(|(path, rule)| format!("spec.{path}: {rule}"))
        .collect();
    assert!(
        untested.is_empty(),
        "CEL rules without a test (add a case to cel_rule_tests!):\n{}",
        untested.join("\n")
    );
    assert_eq!(
        found.len(),
        TESTED_CEL_RULES.len(),
        "a tested rule appears twice"
    );
}

/// The spec-level rules read `protocol` and `algorithm` unguarded: the API server fills
/// in their schema defaults before it runs them.
#[test]
fn rules_read_protocol_and_algorithm_that_have_schema_defaults() {
    assert_openapi("protocol", "{default: HTTP}");
    assert_openapi("algorithm", "{default: RoundRobin}");
    assert_rust_accepts(
        "{listener: {port: 8080, hosts: [shop.example], pathPrefix: /}, endpoints: []}",
    );
}

const DURATION_PATTERN: &str = "{pattern: '^([0-9]+(ms|s|m|h))+$', maxLength: 32}";

openapi_tests! {
    cors_origins_are_origins_or_subdomain_patterns {
        at: "cors.allowOrigins[]",
        has: "{maxLength: 256}",
        bad: [
            with("cors: {allowOrigins: ['https://app.example/']}"),
            with("cors: {allowOrigins: ['ftp://app.example']}"),
            with("cors: {allowOrigins: ['https://a.*.example']}"),
        ],
        field: "spec.cors.allowOrigins[0]",
        good: with("cors: {allowOrigins: ['https://app.example:8443', 'http://*.dev.example']}"),
    }
    external_auth_url_is_plain_http {
        at: "externalAuth.url",
        has: "{maxLength: 2048}",
        bad: [
            with("externalAuth: {url: 'https://auth.example/check'}"),
            with("externalAuth: {url: 'auth.example/check'}"),
        ],
        field: "spec.externalAuth.url",
        good: with("externalAuth: {url: 'http://oauth2-proxy.auth.svc:4180/oauth2/auth'}"),
    }
    external_auth_header_lists_hold_header_names {
        at: "externalAuth.responseHeaders",
        has: "{maxItems: 64}",
        bad: [with("externalAuth: {url: 'http://auth/', responseHeaders: [Host]}")],
        field: "spec.externalAuth.responseHeaders[0]",
        good: with("externalAuth: {url: 'http://auth/', responseHeaders: [X-Auth-Request-User]}"),
    }
    basic_auth_realm_is_quotable {
        at: "basicAuth.realm",
        has: "{maxLength: 256}",
        bad: [with("basicAuth: {secretName: users, realm: 'say \\\"hi\\\"'}")],
        field: "spec.basicAuth.realm",
        good: with("basicAuth: {secretName: users, realm: 'Staff only'}"),
    }
    listener_port_is_1_to_65535 {
        at: "listener.port",
        has: "{minimum: 1.0, maximum: 65535.0}",
        bad: ["{listener: {port: 0}, endpoints: []}", "{listener: {port: 65536}, endpoints: []}"],
        field: "spec.listener.port",
        good: "{listener: {port: 65535}, endpoints: []}",
    }
    health_check_port_is_0_to_65535 {
        at: "healthCheck.port",
        has: "{minimum: 0.0, maximum: 65535.0}",
        bad: [with("healthCheck: {port: 65536}")],
        field: "spec.healthCheck.port",
        good: with("healthCheck: {port: 0}"),
    }
    endpoint_weight_is_1_to_1000 {
        at: "endpoints[].weight",
        has: "{minimum: 1.0, maximum: 1000.0}",
        bad: [
            "{listener: {port: 8080}, endpoints: [{address: '127.0.0.1:1', weight: 0}]}",
            "{listener: {port: 8080}, endpoints: [{address: '127.0.0.1:1', weight: 1001}]}",
        ],
        field: "spec.endpoints[0].weight",
        good: "{listener: {port: 8080}, endpoints: [{address: '127.0.0.1:1', weight: 1000}]}",
    }
    static_endpoints_are_at_most_10000 {
        at: "endpoints",
        has: "{maxItems: 10000}",
        bad: [with_endpoints(10_001)],
        field: "spec.endpoints",
        good: with_endpoints(10_000),
    }
    durations_match_the_contract_grammar {
        at: "drainTimeout",
        has: DURATION_PATTERN,
        bad: [with("drainTimeout: 5x"), with("drainTimeout: 1.5s"), with("drainTimeout: 5 s")],
        field: "spec.drainTimeout",
        good: with("drainTimeout: 1m30s"),
    }
    durations_are_at_most_32_characters {
        at: "healthCheck.interval",
        has: DURATION_PATTERN,
        bad: [with(&format!("healthCheck: {{interval: {}5s}}", "0".repeat(31)))],
        field: "spec.healthCheck.interval",
        good: with(&format!("healthCheck: {{interval: {}5s}}", "0".repeat(30))),
    }
    hosts_are_at_most_100 {
        at: "listener.hosts",
        has: "{maxItems: 100}",
        bad: [with_hosts(101)],
        field: "spec.listener.hosts",
        good: with_hosts(100),
    }
    hosts_are_dns_names_or_wildcards {
        at: "listener.hosts[]",
        has: r"{pattern: '^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$', maxLength: 255}",
        bad: [
            "{listener: {port: 8080, hosts: ['shop.example:80']}, endpoints: []}",
            "{listener: {port: 8080, hosts: ['*']}, endpoints: []}",
            "{listener: {port: 8080, hosts: ['a..example']}, endpoints: []}",
            "{listener: {port: 8080, hosts: ['shop example']}, endpoints: []}",
        ],
        field: "spec.listener.hosts[0]",
        good: "{listener: {port: 8080, hosts: [Shop.Example, '*.example.com']}, endpoints: []}",
    }
    path_prefix_is_at_most_1024_characters {
        at: "listener.pathPrefix",
        has: "{maxLength: 1024}",
        bad: [format!("{{listener: {{port: 8080, pathPrefix: /{}}}, endpoints: []}}", "a".repeat(1024))],
        field: "spec.listener.pathPrefix",
        good: format!("{{listener: {{port: 8080, pathPrefix: /{}}}, endpoints: []}}", "a".repeat(1023)),
    }
    secret_name_is_a_dns_subdomain {
        at: "listener.tls.secretName",
        has: r"{pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', maxLength: 253}",
        bad: [
            "{listener: {port: 8443, tls: {secretName: Web_TLS}}, endpoints: []}",
            "{listener: {port: 8443, tls: {secretName: ''}}, endpoints: []}",
        ],
        field: "spec.listener.tls.secretName",
        good: "{listener: {port: 8443, tls: {secretName: web.tls}}, endpoints: []}",
    }
    service_name_is_a_dns_label {
        at: "service.name",
        has: "{pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63}",
        bad: [
            "{listener: {port: 8080}, service: {name: web.svc, port: 80}}",
            "{listener: {port: 8080}, service: {name: Web, port: 80}}",
        ],
        field: "spec.service.name",
        good: "{listener: {port: 8080}, service: {name: web-1, port: 80}}",
    }
    hash_header_is_a_token {
        at: "hashKey.header",
        has: "{pattern: '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$'}",
        bad: [with("algorithm: ConsistentHash, hashKey: {header: 'x user'}")],
        field: "spec.hashKey.header",
        good: with("algorithm: ConsistentHash, hashKey: {header: X-User}"),
    }
    hash_cookie_is_a_token {
        at: "hashKey.cookie",
        has: "{pattern: '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$'}",
        bad: [with("algorithm: ConsistentHash, hashKey: {cookie: 'a;b'}")],
        field: "spec.hashKey.cookie",
        good: with("algorithm: ConsistentHash, hashKey: {cookie: session_id}"),
    }
    /// Checked whatever the affinity type, as the CRD checks it.
    affinity_cookie_name_is_a_token {
        at: "sessionAffinity.cookieName",
        has: "{pattern: '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$'}",
        bad: [
            with("sessionAffinity: {type: Cookie, cookieName: 'a b'}"),
            with("sessionAffinity: {cookieName: 'a=b'}"),
        ],
        field: "spec.sessionAffinity.cookieName",
        good: with("sessionAffinity: {type: Cookie, cookieName: sticky}"),
    }
    expected_statuses_are_1_to_20 {
        at: "healthCheck.expectedStatuses",
        has: "{minItems: 1, maxItems: 20}",
        bad: [with_statuses(0), with_statuses(21)],
        field: "spec.healthCheck.expectedStatuses",
        good: with_statuses(20),
    }
    expected_statuses_are_codes_or_ranges {
        at: "healthCheck.expectedStatuses[]",
        has: "{pattern: '^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$', maxLength: 7}",
        bad: [
            with("healthCheck: {expectedStatuses: ['2xx']}"),
            with("healthCheck: {expectedStatuses: ['600']}"),
            with("healthCheck: {expectedStatuses: ['099']}"),
            with("healthCheck: {expectedStatuses: [' 200']}"),
            with("healthCheck: {expectedStatuses: ['200 - 399']}"),
            with("healthCheck: {expectedStatuses: ['+200']}"),
        ],
        field: "spec.healthCheck.expectedStatuses[0]",
        good: with("healthCheck: {expectedStatuses: ['100-599']}"),
    }
    health_thresholds_are_at_least_1 {
        at: "healthCheck.unhealthyThreshold",
        has: "{minimum: 1.0}",
        bad: [with("healthCheck: {unhealthyThreshold: 0}")],
        field: "spec.healthCheck.unhealthyThreshold",
        good: with("healthCheck: {unhealthyThreshold: 1}"),
    }
    max_ejection_percent_is_0_to_100 {
        at: "outlierDetection.maxEjectionPercent",
        has: "{minimum: 0.0, maximum: 100.0}",
        bad: [with("outlierDetection: {maxEjectionPercent: 101}")],
        field: "spec.outlierDetection.maxEjectionPercent",
        good: with("outlierDetection: {maxEjectionPercent: 100}"),
    }
    retry_attempts_are_0_to_10 {
        at: "retry.attempts",
        has: "{minimum: 0.0, maximum: 10.0}",
        bad: [with("retry: {attempts: 11}")],
        field: "spec.retry.attempts",
        good: with("retry: {attempts: 10}"),
    }
    retry_budget_ratio_is_0_to_1 {
        at: "retry.budget.ratio",
        has: "{minimum: 0.0, maximum: 1.0}",
        bad: [with("retry: {budget: {ratio: 1.5}}"), with("retry: {budget: {ratio: -0.1}}")],
        field: "spec.retry.budget.ratio",
        good: with("retry: {budget: {ratio: 1.0}}"),
    }
    rate_limit_requests_per_second_is_above_0 {
        at: "rateLimit.requestsPerSecond",
        has: "{minimum: 1.0, maximum: 1000000.0}",
        bad: [with("rateLimit: {requestsPerSecond: 0}"), with("rateLimit: {requestsPerSecond: 1000001}")],
        field: "spec.rateLimit.requestsPerSecond",
        good: with("rateLimit: {requestsPerSecond: 1}"),
    }
    rate_limit_burst_is_above_0 {
        at: "rateLimit.burst",
        has: "{minimum: 1.0, maximum: 1000000.0}",
        bad: [with("rateLimit: {requestsPerSecond: 5, burst: 0}")],
        field: "spec.rateLimit.burst",
        good: with("rateLimit: {requestsPerSecond: 5, burst: 1}"),
    }
    max_request_body_bytes_is_above_0 {
        at: "maxRequestBodyBytes",
        has: "{minimum: 1.0}",
        bad: [with("maxRequestBodyBytes: 0")],
        field: "spec.maxRequestBodyBytes",
        good: with("maxRequestBodyBytes: 1"),
    }
    address_lists_hold_at_most_10000_entries {
        at: "ipAllowList",
        has: "{maxItems: 10000}",
        bad: [with_cidrs(10_001)],
        field: "spec.ipAllowList",
        good: with_cidrs(10_000),
    }
}

/// An HTTP spec whose `ipAllowList` has `n` distinct /32 entries.
fn with_cidrs(n: usize) -> String {
    let cidrs: Vec<String> = (0..n)
        .map(|i| format!("10.{}.{}.{}/32", i >> 16 & 255, i >> 8 & 255, i & 255))
        .collect();
    with(&format!("ipAllowList: [{}]", cidrs.join(", ")))
}

#[test]
fn status_backends_are_capped_at_100() {
    let crd = crd();
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["properties"]["backends"]["maxItems"].as_u64(),
        Some(100)
    );
}
