//! The `BackendPool` CustomResourceDefinition as YAML: what `sluice crd` prints and what
//! `crds/backendpool.yaml` holds (a test keeps the two equal).

use kube::CustomResourceExt;

use crate::api::BackendPool;

/// Renders the `BackendPool` CRD (schema, short name `bp`, status subresource, printer
/// columns) as one YAML document.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&BackendPool::crd())
}
