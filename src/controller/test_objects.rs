//! Kubernetes objects the controller's unit tests build (namespace `shop`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Service `shop/NAME` with these (name, port) ports.
pub(crate) fn service(name: &str, ports: &[(Option<&str>, i32)]) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: n.map(Into::into),
                        port: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// EndpointSlice `shop/SVC-abc` of Service `svc` with one port and these ready addresses.
pub(crate) fn slice(
    svc: &str,
    port: (Option<&str>, i32),
    addresses: &[&str],
) -> Arc<EndpointSlice> {
    let mut labels = BTreeMap::new();
    labels.insert(super::index::SERVICE_NAME_LABEL.to_owned(), svc.to_owned());
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{svc}-abc")),
            namespace: Some("shop".into()),
            labels: Some(labels),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![EndpointPort {
            name: port.0.map(Into::into),
            port: Some(port.1),
            ..Default::default()
        }]),
        endpoints: Some(
            addresses
                .iter()
                .map(|a| Endpoint {
                    addresses: vec![(*a).into()],
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

/// `kubernetes.io/tls` Secret `shop/NAME` with a self-signed certificate for `host`.
pub(crate) fn tls_secret(name: &str, host: &str) -> Arc<Secret> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut data = BTreeMap::new();
    data.insert("tls.crt".to_owned(), ByteString(cert.pem().into_bytes()));
    data.insert(
        "tls.key".to_owned(),
        ByteString(key.serialize_pem().into_bytes()),
    );
    Arc::new(Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    })
}
