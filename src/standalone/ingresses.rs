//! `sluice check --kubernetes`: what the controller would say about the annotations of each
//! Ingress in the manifests, without a cluster: an annotation that refuses the Ingress (one
//! that restricts access and is not implemented, a value sluice cannot honour) is an error,
//! one only warned about is a warning. Services, Secrets and the IngressClass are not looked
//! up, so an Ingress of another class is checked too.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

use crate::config::Positions;
use crate::controller::ingress::annotations;

/// The Ingresses' findings.
#[derive(Debug, Default)]
pub struct Findings {
    /// Ingresses read.
    pub ingresses: usize,
    /// `FILE[:LINE:COL]: ingress NS/NAME: annotation KEY: why`.
    pub errors: Vec<String>,
    /// The same shape, for annotations only warned about.
    pub warnings: Vec<String>,
}

/// Checks every `networking.k8s.io/v1` Ingress among the documents of `text`.
pub fn check(file: &str, text: &str) -> Findings {
    let mut found = Findings::default();
    let positions = Positions::of(text);
    for document in serde_norway::Deserializer::from_str(text) {
        let Ok(value) = Value::deserialize(document) else {
            break;
        };
        let Some(ingress) = Ingress::of(&value) else {
            continue;
        };
        found.ingresses += 1;
        let place = |key: &str| {
            positions
                .keys("Ingress", &ingress.name, &["metadata", "annotations", key])
                .map_or_else(
                    || format!("{file}: "),
                    |at| format!("{file}:{}:{}: ", at.line, at.column),
                )
        };
        let parsed = annotations::parse(&ingress.annotations);
        for refusal in &parsed.refusals {
            let at = place(annotation_of(refusal));
            found
                .errors
                .push(format!("{at}ingress {}: {refusal}", ingress.name));
        }
        for warning in &parsed.warnings {
            let at = place(annotation_of(warning));
            found
                .warnings
                .push(format!("{at}ingress {}: {warning}", ingress.name));
        }
        for (key, why) in &parsed.unsupported {
            let at = place(key);
            found.warnings.push(format!(
                "{at}ingress {}: annotation {key}: {why}",
                ingress.name
            ));
        }
    }
    found
}

/// The annotation a finding names (`annotation KEY: why`).
fn annotation_of(finding: &str) -> &str {
    finding
        .strip_prefix("annotation ")
        .and_then(|rest| rest.split_once(':').map(|(key, _)| key))
        .unwrap_or_default()
}

/// What the check reads of an Ingress document.
struct Ingress {
    /// `namespace/name` (namespace `default` when left out, as `kubectl apply` would use).
    name: String,
    annotations: BTreeMap<String, String>,
}

/// The string at `v`, if it is one.
fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

impl Ingress {
    fn of(value: &Value) -> Option<Ingress> {
        if text(value.get("kind")) != Some("Ingress")
            || text(value.get("apiVersion")) != Some("networking.k8s.io/v1")
        {
            return None;
        }
        let meta = value.get("metadata");
        let name = text(meta.and_then(|m| m.get("name"))).unwrap_or_default();
        let namespace = text(meta.and_then(|m| m.get("namespace"))).unwrap_or("default");
        let annotations = meta
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        let value = match v {
                            Value::String(s) => s.clone(),
                            other => serde_norway::to_string(other).ok()?.trim_end().to_owned(),
                        };
                        Some((k.as_str()?.to_owned(), value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Ingress {
            name: format!("{namespace}/{name}"),
            annotations,
        })
    }
}
