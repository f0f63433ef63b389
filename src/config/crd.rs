//! The `BackendPool` CustomResourceDefinition as YAML: what `sluice crd` prints and what
//! `crds/backendpool.yaml` holds (a test keeps the two equal).

use kube::CustomResourceExt;

use crate::api::BackendPool;

/// Renders the `BackendPool` CRD (schema, short name `bp`, status subresource, printer
/// columns) as one YAML document.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    let mut crd = serde_json::to_value(BackendPool::crd())
        .map_err(<serde_norway::Error as serde::ser::Error>::custom)?;
    drop_unknown_formats(&mut crd);
    serde_norway::to_string(&crd)
}

/// schemars marks Rust unsigned integers `format: uint32`, which the API server does not
/// know and warns about on every apply; the ranges (`minimum`/`maximum`) already carry the
/// constraint, so the format is dropped.
fn drop_unknown_formats(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            if map
                .get("format")
                .and_then(|f| f.as_str())
                .is_some_and(|f| f.starts_with("uint"))
            {
                map.remove("format");
            }
            map.values_mut().for_each(drop_unknown_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_unknown_formats),
        _ => {}
    }
}
