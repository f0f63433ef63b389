//! Gateway API resources (gateway.networking.k8s.io, standard channel v1.6.3): the fields
//! sluice reads and the status it writes, hand-written from the official CRDs
//! (`config/crd/standard/` of `sigs.k8s.io/gateway-api@v1.6.3`).
//!
//! Hand-written rather than generated: `kopium` did not build here in the time
//! available, and the `gateway-api` crate needs an older kube. Fields sluice does not
//! implement but must not ignore (unsupported filters, Gateway addresses, backendRef
//! filters; rule timeouts, read by name) are kept as opaque JSON so the translation can refuse them by name.
//! Defaults the API server applies are applied again by the readers (unit tests build
//! objects without them). Controller-only: the data plane never sees these types.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of every Gateway API kind.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// `GatewayClass.spec`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GatewayClass",
    status = "GatewayClassStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller that manages Gateways of this class.
    pub controller_name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Implementation parameters (sluice has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<Value>,
}

/// `GatewayClass.status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct GatewayClassStatus {
    /// `Accepted`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// `Gateway.spec`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    status = "GatewayStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The GatewayClass.
    pub gateway_class_name: String,
    /// Where the Gateway accepts traffic.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Requested addresses: sluice serves on its own pod or Service addresses, so a
    /// Gateway asking for specific ones is not accepted (`UnsupportedAddress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Value>>,
    /// Labels and annotations for what sluice makes for the Gateway (its Service), and
    /// `parametersRef` (refused: sluice takes no parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<Value>,
    /// Gateway-wide TLS (client certificate validation): not implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// Which ListenerSets may attach: sluice serves none, so anything but `from: None` is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_listeners: Option<Value>,
    /// Fields of other channels or versions: refused by name, never ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One listener of a Gateway.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Unique within the Gateway; routes' `sectionName`.
    pub name: String,
    /// Only requests for this host (exact or `*.suffix`); none = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port sluice listens on.
    pub port: i32,
    /// `HTTP`, `HTTPS` (served), `TLS`, `TCP`, `UDP` (not served).
    pub protocol: String,
    /// HTTPS: the certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Which routes may attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
    /// Fields of other channels or versions: refused by name, never ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `listeners[].tls`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// `Terminate` (default) or `Passthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Secrets holding the certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_refs: Option<Vec<ObjectReference>>,
    /// Implementation-specific options (sluice has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// A reference to an object by group, kind, namespace and name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// API group; `""` (the default) is core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; the default depends on the field (`Secret`, `Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace; default: the referring object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `listeners[].allowedRoutes`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// From which namespaces (default: the Gateway's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
    /// Which route kinds (default: every kind the protocol supports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<RouteGroupKind>>,
}

/// `allowedRoutes.namespaces`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` (default), `All` or `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `Selector`: namespace labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A route kind.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// Default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `HTTPRoute`, `GRPCRoute`, ...
    pub kind: String,
}

/// `Gateway.status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Where clients reach the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<GatewayStatusAddress>>,
    /// `Accepted`, `Programmed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// One entry per listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<ListenerStatus>>,
}

/// `status.addresses[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayStatusAddress {
    /// `IPAddress` or `Hostname`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The address.
    pub value: String,
}

/// `status.listeners[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// Route kinds that may attach.
    #[serde(default)]
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Routes accepted on this listener.
    #[serde(default)]
    pub attached_routes: i32,
    /// `Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// `HTTPRoute.spec`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    namespaced,
    status = "RouteStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_refs: Option<Vec<ParentReference>>,
    /// Hosts the route serves; none = the listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    /// Matches, filters and backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<HttpRouteRule>>,
    /// Fields of other channels or versions: refused by name, never ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `GRPCRoute.spec`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GRPCRoute",
    namespaced,
    status = "RouteStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_refs: Option<Vec<ParentReference>>,
    /// Hosts the route serves; none = the listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    /// Matches, filters and backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<GrpcRouteRule>>,
    /// Fields of other channels or versions: refused by name, never ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A route's reference to its parent (a Gateway, optionally one listener).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// Default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Default: the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Gateway.
    pub name: String,
    /// A listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// One HTTPRoute rule.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any one must match; none = `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HttpRouteMatch>>,
    /// Applied to matched requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<RouteFilter>>,
    /// Where matched requests go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<BackendRef>>,
    /// `request` and `backendRequest` durations (read by the rule translation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Value>,
    /// Fields of other channels or versions (`retry`, `sessionPersistence`, ...): refused
    /// by name, never ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One HTTPRoute match: all of its conditions must hold.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Default `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<ValueMatch>>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<Vec<ValueMatch>>,
    /// The method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `matches[].path`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A header or query parameter condition.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct ValueMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Header or parameter name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A route (or backendRef) filter: HTTPRoute's and GRPCRoute's share this shape.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    /// Which filter.
    #[serde(rename = "type")]
    pub type_: String,
    /// `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// `URLRewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
}

/// Header changes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct HeaderModifier {
    /// Replace (or add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<HttpHeader>>,
    /// Append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<HttpHeader>>,
    /// Remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Vec<String>>,
}

/// A header name and value.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct HttpHeader {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `RequestRedirect`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// The port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// 301, 302 (default), 303, 307, 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

/// `URLRewrite`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct UrlRewrite {
    /// The `Host` sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// A path replacement.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `ReplaceFullPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// `ReplacePrefixMatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// A backendRef of a route rule.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Default `""` (core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Default `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Default: the route's namespace (another needs a ReferenceGrant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port (required for Services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Relative share, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Per-backend filters: not implemented (refused by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Value>>,
}

/// One GRPCRoute rule.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any one must match; none = every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<GrpcRouteMatch>>,
    /// Applied to matched calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<RouteFilter>>,
    /// Where matched calls go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<BackendRef>>,
    /// Fields of other channels or versions: refused by name, never ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One GRPCRoute match.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct GrpcRouteMatch {
    /// Service and method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Header (metadata) conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<ValueMatch>>,
}

/// `matches[].method`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The fully qualified service (`pkg.Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `status` of HTTPRoute and GRPCRoute.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct RouteStatus {
    /// One entry per parentRef (per controller).
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// `status.parents[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parentRef as written.
    pub parent_ref: ParentReference,
    /// Which controller wrote this entry.
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// `ReferenceGrant.spec` (v1beta1).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1beta1",
    kind = "ReferenceGrant",
    namespaced,
    schema = "disabled"
)]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    #[serde(default)]
    pub from: Vec<ReferenceGrantFrom>,
    /// To what in this namespace.
    #[serde(default)]
    pub to: Vec<ReferenceGrantTo>,
}

/// `from[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct ReferenceGrantFrom {
    /// The referring kind's group.
    #[serde(default)]
    pub group: String,
    /// The referring kind.
    pub kind: String,
    /// The referring namespace.
    pub namespace: String,
}

/// `to[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct ReferenceGrantTo {
    /// The referent's group (`""` core).
    #[serde(default)]
    pub group: String,
    /// The referent's kind.
    pub kind: String,
    /// One object, or all of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
