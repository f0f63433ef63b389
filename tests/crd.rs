//! `crds/backendpool.yaml` is exactly what `sluice crd` prints, and the CRD is one the API
//! server accepts (structural schema, short name, status subresource, printer columns).
//!
//! Regenerate the file with `UPDATE_CRD=1 cargo test --test crd`.

use std::path::PathBuf;

use serde_norway::Value;

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
