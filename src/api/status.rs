//! `BackendPool.status`: what the elected controller reports about a pool.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most entries in `status.backends`; the writer keeps the unhealthy ones first.
pub const MAX_STATUS_BACKENDS: usize = 100;

/// Observed state of a pool, written by the leader with server-side apply.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendPoolStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions; `Ready` is the one users read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Endpoint counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointCounts>,
    /// `healthy/total`, for the `kubectl get bp` Healthy column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<String>,
    /// Up to 100 endpoints, unhealthy first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_STATUS_BACKENDS))]
    pub backends: Vec<BackendStatus>,
}

/// How many endpoints a pool has and how many are healthy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
pub struct EndpointCounts {
    /// All endpoints.
    pub total: u32,
    /// Endpoints currently receiving new work.
    pub healthy: u32,
}

/// One endpoint as reported in status.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
pub struct BackendStatus {
    /// `ip:port`.
    pub address: String,
    /// Whether it receives new work.
    pub healthy: bool,
    /// Its weight.
    pub weight: u32,
}
