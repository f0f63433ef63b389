use super::*;
use crate::config::{ListenerClaim, PathMatch, PathReplace, RouteAction, RouteConfig};
use crate::controller::test_objects::{service, slice, tls_secret};
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn ingress(name: &str, created: &str, annotations: &[(&str, &str)], spec: &str) -> Arc<Ingress> {
    let mut notes = String::new();
    for (k, v) in annotations {
        let key = if k.contains('/') {
            (*k).to_owned()
        } else {
            format!("{}{k}", annotations::PREFIX)
        };
        notes.push_str(&format!("{key:?}: {v:?}, "));
    }
    let doc = format!(
        "metadata: {{name: {name}, namespace: shop, creationTimestamp: \"{created}\", annotations: {{{notes}}}}}\nspec: {spec}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}")))
}

fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
    let doc = format!(
        "metadata: {{name: {name}, annotations: {{{DEFAULT_CLASS_ANNOTATION:?}: \"{default}\"}}}}\nspec: {{controller: {controller}}}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap())
}

fn objects(ingresses: Vec<Arc<Ingress>>) -> IngressObjects {
    IngressObjects {
        ingresses,
        classes: vec![class("sluice", CONTROLLER, false)],
        services: vec![
            service("web", &[(Some("http"), 80)]),
            service("api", &[(None, 8080)]),
            service("web-v2", &[(Some("http"), 80)]),
        ],
        slices: vec![
            slice("web", (Some("http"), 8000), &["198.18.0.10"]),
            slice("api", (None, 9000), &["198.18.0.20", "198.18.0.21"]),
        ],
        secrets: Vec::new(),
    }
}

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";

fn web(host: &str, path: &str, path_type: &str) -> String {
    format!(
        "{{ingressClassName: sluice, rules: [{{host: {host:?}, http: {{paths: [{{path: {path:?}, pathType: {path_type}, backend: {{service: {{name: web, port: {{name: http}}}}}}}}]}}}}]}}"
    )
}

fn run(o: &IngressObjects) -> Translation {
    translate(o, &IngressSettings::default())
}

fn routes_on(t: &Translation, port: u16) -> Vec<&RouteConfig> {
    t.set
        .routes
        .iter()
        .filter(|r| r.port == port)
        .map(|r| r.as_ref())
        .collect()
}

fn backend_of(r: &RouteConfig) -> &str {
    match &r.action {
        RouteAction::Forward(f) => &f.backends[0].name,
        RouteAction::Respond(_) => "",
    }
}

mod annotated;
mod policies;
mod routing;
