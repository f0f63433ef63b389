//! Every example configuration validates; `examples/invalid.yaml` fails with messages that
//! name the file, the pool and the field.

use std::path::{Path, PathBuf};

mod common;

use common::{check_file, sluice_check};
use sluice::config::{LoadError, Protocol, load_file};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_except_invalid_validates() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(examples()).expect("examples/ is readable") {
        let path = entry.expect("examples/ entry").path();
        if path.extension().is_none_or(|e| e != "yaml") || path.ends_with("invalid.yaml") {
            continue;
        }
        if let Err(e) = load_file(&path) {
            panic!("{} should validate:\n{e}", path.display());
        }
        checked.push(path);
    }
    assert!(checked.len() >= 2, "found only {checked:?}");
}

#[test]
fn basic_example_is_one_http_pool_with_three_endpoints() {
    let set = load_file(&examples().join("basic.yaml")).expect("basic.yaml validates");
    assert_eq!(set.pools.len(), 1);
    let pool = &set.pools[0];
    assert_eq!(pool.name, "default/web");
    assert_eq!(pool.protocol, Protocol::Http);
    assert_eq!(pool.listener.port, 8080);
    let addresses: Vec<String> = pool
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(
        addresses,
        ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]
    );
}

#[test]
fn full_example_shares_port_8080_between_http_pools() {
    let set = load_file(&examples().join("full.yaml")).expect("full.yaml validates");
    let on_8080: Vec<&str> = set
        .pools
        .iter()
        .filter(|p| p.listener.port == 8080)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        on_8080,
        ["default/fallback", "shop/shop-api", "shop/shop-web"]
    );
    assert!(set.pools.iter().any(|p| p.protocol == Protocol::Tcp));
}

#[test]
fn invalid_example_reports_every_error_with_file_line_column_pool_and_field() {
    let path = examples().join("invalid.yaml");
    let Err(LoadError::Invalid(errors)) = load_file(&path) else {
        panic!("invalid.yaml must fail validation");
    };
    let file = path.display().to_string();
    let lines: Vec<String> = errors
        .to_string()
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("error does not start with the file name: {l}"))
                .to_owned()
        })
        .collect();
    let expected = [
        r#"12:3: document 1 (default/web): spec.algorithm: unknown variant "Fastest", expected one of "RoundRobin", "WeightedRoundRobin", "LeastConnections", "PowerOfTwoChoices", "ConsistentHash", "Random""#,
        r#"21:5: pool default/api: spec.listener.pathPrefix: "api" must start with "/""#,
        r#"23:7: pool default/api: spec.endpoints[0].address: invalid address "localhost" (expected ip:port (IPv6 as [::1]:80) or host:port)"#,
        "25:7: pool default/api: spec.endpoints[1].weight: must be 1..=1000, got 0",
        r#"27:5: pool default/api: spec.healthCheck.interval: invalid duration "5x" (expected 250ms, 5s, 1m, 1h)"#,
        "37:5: pool default/db: spec.listener.hosts: only for protocol HTTP",
        "48:3: pool default/cache: spec.service: standalone mode cannot resolve Services; list static spec.endpoints",
        "36:5: pool default/db: spec.listener.port: port 8081 is used by HTTP pool default/api; HTTP and TCP pools cannot share a port",
    ];
    assert_eq!(lines, expected);
}

#[test]
fn check_prints_every_type_and_semantic_error_in_one_run() {
    let (code, err, name) = check_file(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: web}\nspec:\n  listener: {port: 8080}\n  algorithm: Fastest\n  endpoints:\n    - {address: \"127.0.0.1:9001\", weight: 0}\n",
    );
    assert_eq!(code, Some(1));
    for field in ["spec.algorithm", "spec.endpoints[0].weight"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&name) && l.contains("default/web") && l.contains(field)),
            "{field} not reported with file and pool:\n{err}"
        );
    }
}

/// Two TCP pools on one port; the first document is named `z-db`, the later `a-db`.
const Z_THEN_A_ON_ONE_PORT: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: BackendPool
metadata: {name: z-db}
spec:
  protocol: TCP
  listener: {port: 15432}
  endpoints: [{address: \"127.0.0.1:9001\"}]
---
apiVersion: sluice.dev/v1alpha1
kind: BackendPool
metadata: {name: a-db}
spec:
  protocol: TCP
  listener: {port: 15432}
  endpoints: [{address: \"127.0.0.1:9002\"}]
";

#[test]
fn check_refuses_the_later_document_on_a_taken_port_whatever_the_names() {
    let (code, err, _) = check_file(Z_THEN_A_ON_ONE_PORT);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(
            "pool default/a-db: spec.listener.port: port 15432 is already owned by TCP pool default/z-db"
        ),
        "{err}"
    );
    assert!(!err.contains("pool default/z-db:"), "{err}");
}

const HEADER: &str = "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\n";

#[test]
fn check_reads_standard_input_and_suggests_the_field_meant() {
    let text = format!(
        "{HEADER}metadata: {{name: web}}\nspec: {{listener: {{port: 8080, hostz: [a]}}, endpoints: [], algorithm: RoundRobbin}}\n"
    );
    let (code, _, err) = sluice_check(&["--config", "-"], &text);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("<stdin>:4:31: document 1 (default/web): spec.listener.hostz")
            && err.contains("(did you mean \"hosts\"?)"),
        "{err}"
    );
    assert!(err.contains("(did you mean \"RoundRobin\"?)"), "{err}");
}

#[test]
fn check_json_reports_every_error_with_pool_and_field() {
    let text = format!(
        "{HEADER}metadata: {{name: web}}\nspec: {{listener: {{port: 0}}, endpoints: [{{address: nowhere}}]}}\n"
    );
    let (code, out, _) = sluice_check(&["--config", "-", "--format", "json"], &text);
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(report["ok"], false);
    assert_eq!(report["file"], "<stdin>");
    let fields: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["spec.listener.port", "spec.endpoints[0].address"]);
    let places: Vec<(u64, u64)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(places, [(4, 19), (4, 42)], "line and column of each field");
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["pool"] == "default/web")
    );
    let (code, out, _) = sluice_check(
        &["--config", "-", "--format", "json"],
        &format!(
            "{HEADER}metadata: {{name: web}}\nspec: {{listener: {{port: 80}}, endpoints: []}}\n"
        ),
    );
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["ok"].as_bool(), report["pools"].as_u64()),
        (Some(true), Some(1))
    );
}

#[test]
fn an_empty_file_is_a_warning_not_ok() {
    let (code, out, err) = sluice_check(&["--config", "-"], "# nothing here\n");
    assert_eq!(code, Some(0));
    assert!(!out.contains("ok"), "{out}");
    assert!(
        err.contains("warning: <stdin>: no BackendPool documents"),
        "{err}"
    );
}

const MANIFESTS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: web, namespace: shop}\nspec:\n  listener: {port: 8080, tls: {secretName: web-tls}}\n  service: {name: web, port: 80}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";

#[test]
fn check_kubernetes_takes_what_the_controller_takes_and_passes_over_other_kinds() {
    let (code, out, err) = sluice_check(&["--kubernetes", "-"], MANIFESTS);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        "<stdin>: ok (1 pools; 2 objects of other kinds not checked)"
    );
    let (code, _, err) = sluice_check(&["-"], MANIFESTS);
    assert_eq!(code, Some(1), "a Service is not served standalone: {err}");
}

#[test]
fn check_kubernetes_refuses_what_the_controller_refuses_with_line_and_column() {
    let bad = format!(
        "{MANIFESTS}---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: api}}\nspec:\n  listener: {{port: 9000}}\n  endpoints: [{{address: \"api.internal:80\"}}]\n"
    );
    let (code, _, err) = sluice_check(&["--kubernetes", "-"], &bad);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("<stdin>:22:16: pool default/api: spec.endpoints[0].address: \"api.internal:80\" is a DNS name"),
        "{err}"
    );
}

#[test]
fn every_backend_pool_example_in_the_readme_and_docs_passes_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut checked = 0;
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for block in text.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap();
            if !yaml.contains("kind: BackendPool") {
                continue;
            }
            // A pool that names a Service is a Kubernetes example; the others are files.
            let args: &[&str] = if yaml.contains("service:") {
                &["--kubernetes", "-"]
            } else {
                &["-"]
            };
            let (code, _, err) = sluice_check(args, yaml);
            assert_eq!(code, Some(0), "{}:\n{yaml}\n{err}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} examples found");
}

const INGRESSES: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: shop\n  annotations:\n    nginx.ingress.kubernetes.io/rewrite-target: /$2\n    nginx.ingress.kubernetes.io/proxy-send-timeout: \"30\"\nspec:\n  ingressClassName: sluice\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: admin\n  namespace: ops\n  annotations:\n    nginx.ingress.kubernetes.io/limit-rps: \"10\"\n    nginx.ingress.kubernetes.io/enable-modsecurity: \"true\"\nspec:\n  ingressClassName: sluice\n";

#[test]
fn check_kubernetes_reads_ingress_annotations_as_the_controller_does() {
    let (code, out, err) = sluice_check(&["--kubernetes", "-"], INGRESSES);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "warning: <stdin>:7:5: ingress default/shop: annotation nginx.ingress.kubernetes.io/proxy-send-timeout: sluice has no separate send timeout: sending the request and waiting for the answer head are bounded together by proxy-read-timeout; ignored",
            "<stdin>:18:5: ingress ops/admin: annotation nginx.ingress.kubernetes.io/enable-modsecurity: not implemented by sluice and it restricts access; the Ingress is refused rather than served open",
        ],
        "{err}"
    );
    let served = INGRESSES.replace(
        "    nginx.ingress.kubernetes.io/enable-modsecurity: \"true\"\n",
        "",
    );
    let (code, out, err) = sluice_check(&["--kubernetes", "-"], &served);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "<stdin>: ok (0 pools, 2 Ingresses)");
}
