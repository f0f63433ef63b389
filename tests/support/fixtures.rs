//! What the end-to-end tests put behind the controller: echo backends on the private
//! network namespace's addresses (198.18.0.2 and up, as `hack/in-netns.sh` sets them up) and
//! the Service + EndpointSlice YAML that points at them (there is no EndpointSlice
//! controller in the test cluster, so tests write the slices themselves).

#![allow(dead_code)]

use crate::common::EchoServer;

/// Echo backends `names[i]` on 198.18.0.(2+i), all on one port (EndpointSlice ports are
/// per slice); tries 20 ports at most.
pub fn echoes<const N: usize>(names: [&str; N]) -> ([EchoServer; N], u16) {
    'again: for _ in 0..20 {
        let first = EchoServer::start(names[0], "198.18.0.2:0".parse().unwrap()).unwrap();
        let port = first.addr().port();
        let mut all = vec![first];
        for (i, name) in names.iter().enumerate().skip(1) {
            let addr = format!("198.18.0.{}:{port}", 2 + i).parse().unwrap();
            match EchoServer::start(name, addr) {
                Ok(e) => all.push(e),
                Err(_) => continue 'again,
            }
        }
        let Ok(all) = <[EchoServer; N]>::try_from(all) else {
            unreachable!("one echo server per name");
        };
        return (all, port);
    }
    panic!("no common free port on 198.18.0.2-{}", 1 + N);
}

/// A Service `name` in `ns` (port `http`: 80 -> `port`) and its EndpointSlice `NAME-abc`
/// with one endpoint per `(address, conditions)` of `endpoints`, the conditions written as
/// the inside of a YAML flow mapping (`ready: true`).
pub fn service_with_endpoints(
    ns: &str,
    name: &str,
    port: u16,
    endpoints: &[(&str, &str)],
) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|(ip, conditions)| {
            format!("  - addresses: [\"{ip}\"]\n    conditions: {{{conditions}}}\n")
        })
        .collect();
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  ports: [{{name: http, port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-abc
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {name}, endpointslice.kubernetes.io/managed-by: e2e}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints:
{endpoints}"#
    )
}

/// [`service_with_endpoints`] with one ready endpoint at `ip`.
pub fn service(ns: &str, name: &str, ip: &str, port: u16) -> String {
    service_with_endpoints(ns, name, port, &[(ip, "ready: true")])
}

/// Indents PEM text for a YAML block scalar.
pub fn indent(pem: &str, by: &str) -> String {
    pem.lines().map(|l| format!("{by}{l}\n")).collect()
}
