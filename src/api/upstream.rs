//! How sluice talks to a pool's backends (contract section 4b, `spec.upstream`): the HTTP
//! version (HTTP/1.1, HTTP/2 as h2c or ALPN h2, or ALPN's choice) and HTTPS with its trust
//! settings. As users write them; `crate::config::validate` checks them and builds the model.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DNS_SUBDOMAIN_PATTERN;

/// The protocol and TLS settings of the connections to the backends.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.protocol) || self.protocol != 'auto' || has(self.tls)")
        .message("protocol auto is negotiated by ALPN and needs tls (choose HTTP1 or HTTP2 for plain-text backends)")
        .field_path(".protocol")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamSpec {
    /// `HTTP1` (default), `HTTP2` (h2c, or ALPN h2 with `tls`) or `auto` (ALPN, needs `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<UpstreamProtocol>,
    /// HTTPS to the backends; left out = plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsSpec>,
}

/// HTTP versions spoken to backends.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive connections.
    #[default]
    #[serde(rename = "HTTP1")]
    Http1,
    /// HTTP/2: prior-knowledge h2c in plain text, ALPN `h2` with `tls`; one multiplexed
    /// connection per endpoint and worker thread.
    #[serde(rename = "HTTP2")]
    Http2,
    /// Whatever the backend picks by ALPN (`h2`, else HTTP/1.1); needs `tls`.
    #[serde(rename = "auto")]
    Auto,
}

/// How backends are reached over TLS and how their certificates are verified.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.caSecretName) || !has(self.caFile)")
        .message("set caSecretName (Kubernetes mode) or caFile (standalone mode), not both"),
    validation = Rule::new(
        "!has(self.insecureSkipVerify) || !self.insecureSkipVerify || (!has(self.caSecretName) && !has(self.caFile))"
    )
    .message("insecureSkipVerify verifies nothing: leave out caSecretName and caFile")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTlsSpec {
    /// SNI sent and the name the certificate must carry (default: the endpoint's IP address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub server_name: Option<String>,
    /// Kubernetes mode: a Secret in the pool's namespace whose `ca.crt` holds the CA
    /// certificates (PEM) trusted for the backends. Left out (and no `caFile`): the system's
    /// trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_SUBDOMAIN_PATTERN), length(max = 253))]
    pub ca_secret_name: Option<String>,
    /// Standalone mode: PEM file of the trusted CA certificates, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate (testing only): the connection is encrypted, not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}
