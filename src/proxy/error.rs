//! Data-plane failures: which side failed, what the client is told, whether a retry is
//! allowed. The `retryOn` decision and the 502/503/504 mapping live here and only here.

use http::StatusCode;

use crate::config::RetryConfig;
use crate::policy::BodyError;

/// Why a request could not be answered by a backend.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No pool matches the host and path.
    #[error("no route")]
    NoRoute,
    /// The pool has no endpoint that may take new work.
    #[error("no available endpoint")]
    NoEndpoint,
    /// The TCP connect failed or timed out: nothing was sent.
    #[error("connect to {0} failed: {1}")]
    Connect(std::net::SocketAddr, std::io::Error),
    /// The connection failed, or the backend's answer was malformed, after the request may
    /// have been (partly) sent.
    #[error("upstream connection failed: {0}")]
    Reset(std::io::Error),
    /// No response head within `timeouts.request`.
    #[error("request timed out")]
    Timeout,
    /// The backend answered 5xx (only an error when deciding on a retry).
    #[error("upstream answered {0}")]
    Status(StatusCode),
    /// The client's request body failed while it was being sent upstream (broken chunked
    /// framing, or the client went away): the client's fault, not the backend's.
    #[error("client request body failed: {0}")]
    ClientBody(std::io::Error),
    /// The client's streamed body grew past the route's `maxRequestBodyBytes`: the upstream
    /// request was aborted before its body completed.
    #[error("request body larger than maxRequestBodyBytes")]
    BodyTooLarge,
}

/// The cause carried by an upload's I/O error when the *client's* body failed, so the
/// failure is told apart from the backend's by type.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub struct ClientBodyFailed(pub BodyError);

impl ProxyError {
    /// `Reset`, or `ClientBody` / `BodyTooLarge` when the I/O error came from the client's
    /// body.
    pub fn from_exchange(error: std::io::Error) -> Self {
        let from_client = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ClientBodyFailed>());
        match from_client {
            Some(ClientBodyFailed(BodyError::TooLarge(_))) => ProxyError::BodyTooLarge,
            Some(ClientBodyFailed(BodyError::Client(_))) => ProxyError::ClientBody(error),
            None => ProxyError::Reset(error),
        }
    }

    /// The client's body failed or was too large: sluice's own answer, not the backend's,
    /// and the client's connection is unusable past it.
    pub fn is_client_fault(&self) -> bool {
        matches!(self, ProxyError::ClientBody(_) | ProxyError::BodyTooLarge)
    }
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(..) | ProxyError::Reset(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Status(s) => *s,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// True when nothing reached the backend, so any request may be retried.
    pub fn nothing_sent(&self) -> bool {
        matches!(self, ProxyError::Connect(..))
    }

    /// True when this failure counts against the endpoint for outlier detection.
    pub fn is_endpoint_failure(&self) -> bool {
        match self {
            ProxyError::Connect(..) | ProxyError::Reset(_) | ProxyError::Timeout => true,
            ProxyError::Status(s) => s.is_server_error(),
            ProxyError::NoRoute
            | ProxyError::NoEndpoint
            | ProxyError::ClientBody(_)
            | ProxyError::BodyTooLarge => false,
        }
    }

    /// Whether `retry` allows another attempt after this failure. `replayable` is false when
    /// the request body may already have been consumed or the method is not idempotent:
    /// then only a failure before anything was sent may be retried.
    pub fn retryable(&self, retry: &RetryConfig, replayable: bool) -> bool {
        let allowed = match self {
            ProxyError::Connect(..) => retry.on_connect_failure,
            ProxyError::Reset(_) => retry.on_reset,
            ProxyError::Status(s) => retry.retries_status(*s),
            ProxyError::Timeout => retry.on_timeout,
            ProxyError::NoRoute
            | ProxyError::NoEndpoint
            | ProxyError::ClientBody(_)
            | ProxyError::BodyTooLarge => false,
        };
        allowed && (replayable || self.nothing_sent())
    }

    /// Short plain-text body for the error answer.
    pub fn body(&self) -> &'static str {
        match self.status() {
            StatusCode::NOT_FOUND => "no route for this host and path\n",
            StatusCode::SERVICE_UNAVAILABLE => "no healthy endpoint available\n",
            StatusCode::GATEWAY_TIMEOUT => "upstream timed out\n",
            StatusCode::BAD_REQUEST => "bad request body\n",
            StatusCode::PAYLOAD_TOO_LARGE => "request body too large\n",
            _ => "upstream failed\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn retry() -> RetryConfig {
        RetryConfig {
            attempts: 2,
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            on_connect_failure: true,
            on_reset: false,
            on_5xx: false,
            on_timeout: true,
            on_statuses: vec![StatusCode::BAD_GATEWAY, StatusCode::NOT_FOUND],
            non_idempotent: false,
            within: None,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }

    #[test]
    fn timeouts_and_listed_statuses_are_retried_only_when_the_request_can_be_replayed() {
        let r = retry();
        assert!(ProxyError::Timeout.retryable(&r, true));
        assert!(!ProxyError::Timeout.retryable(&r, false));
        assert!(ProxyError::Status(StatusCode::NOT_FOUND).retryable(&r, true));
        assert!(ProxyError::Status(StatusCode::BAD_GATEWAY).retryable(&r, true));
        assert!(!ProxyError::Status(StatusCode::SERVICE_UNAVAILABLE).retryable(&r, true));
        assert!(!ProxyError::Reset(std::io::Error::other("x")).retryable(&r, true));
        let connect = ProxyError::Connect(([198, 18, 0, 1], 80).into(), std::io::Error::other("x"));
        assert!(connect.retryable(&r, false), "nothing was sent");
    }
}
