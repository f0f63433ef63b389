//! The authentication and CORS gate of a route, in one call from the forwarding path:
//! `basicAuth`, then `externalAuth` decide, then a CORS preflight is answered — the order
//! contract section 4b fixes (address lists, rate limit, auth, CORS preflight). What the
//! gate decided for a request that goes on ([`Admitted`]) is applied to the upstream
//! request and to the answer later, where headers are applied.
//!
//! A preflight therefore needs the route's credentials like any request. Browsers send
//! preflights without credentials, so a browser calling an authenticated pool from another
//! origin needs the credentials to come from elsewhere (a cookie checked by `externalAuth`
//! is sent only on the actual request, too); ingress-nginx answers preflights before
//! authenticating. Refusals carry the CORS headers of an allowed origin, so a page's
//! script can read why it was refused.

use http::HeaderValue;
use http::Response;
use http::header::{self, HeaderMap};

use super::external_auth::{self, Granted, Original};
use super::{basic_auth, cors};
use std::sync::atomic::Ordering;

use crate::config::RouteFilters;
use crate::pool::{PoolStats, UNROUTED};
use crate::proxy::body::ProxyBody;

/// What the gate decided for a request that goes on.
#[derive(Debug, Default)]
pub struct Admitted {
    /// `Access-Control-Allow-Origin` for the answer, when the origin is allowed.
    pub cors_origin: Option<HeaderValue>,
    /// Headers the external auth service granted.
    pub granted: Granted,
}

/// Why the gate answered a request itself.
pub enum Refused {
    /// A CORS preflight, answered (not a denial).
    Preflight(Response<ProxyBody>),
    /// Authentication refused it (`sluice_denied_total{reason="auth"}`).
    Auth(Response<ProxyBody>),
}

impl Refused {
    /// Counts the refusal on `stats` (the route's pool; `None`: sluice's own answers) and
    /// returns the answer.
    pub fn answer(self, stats: Option<&PoolStats>) -> Response<ProxyBody> {
        let (resp, denied) = match self {
            Refused::Preflight(resp) => (resp, false),
            Refused::Auth(resp) => (resp, true),
        };
        let code = resp.status().as_u16();
        match stats {
            Some(stats) => {
                if denied {
                    stats.denied_auth.fetch_add(1, Ordering::Relaxed);
                }
                stats.local.record(code);
            }
            None => UNROUTED.record(code),
        }
        resp
    }
}

/// Runs the route's basic auth, external auth and CORS preflight, in that order. A route
/// with none of them returns at once without allocating.
pub async fn admit(route: &RouteFilters, original: &Original<'_>) -> Result<Admitted, Refused> {
    let mut admitted = Admitted::default();
    if let Some(c) = &route.cors {
        admitted.cors_origin = cors::allowed_origin(c, original.headers);
    }
    let deny = |mut resp: Response<ProxyBody>, admitted: &Admitted| {
        // Scripts of an allowed origin may read why they were refused.
        apply_response(route, admitted, resp.headers_mut());
        Refused::Auth(resp)
    };
    // Boxed: the request path's future stays as small as it was for routes without
    // authentication (the only ones that then pay for the allocation are those with it).
    if let Some(auth) = &route.basic_auth {
        let verdict = match basic_auth::quick(auth, original.headers) {
            basic_auth::Quick::Admitted => Ok(()),
            basic_auth::Quick::Refused => Err(basic_auth::unauthorized(auth)),
            basic_auth::Quick::Verify => Box::pin(basic_auth::check(auth, original.headers)).await,
        };
        if let Err(resp) = verdict {
            return Err(deny(resp, &admitted));
        }
    }
    if let Some(ext) = &route.external_auth {
        match Box::pin(external_auth::check(ext, original)).await {
            Ok(granted) => admitted.granted = granted,
            Err(resp) => return Err(deny(resp, &admitted)),
        }
    }
    if let Some(c) = &route.cors
        && cors::is_preflight(original.method, original.headers)
    {
        return Err(Refused::Preflight(cors::preflight(
            c,
            admitted.cors_origin.as_ref(),
        )));
    }
    Ok(admitted)
}

/// Changes the upstream request as the gate decided: basic-auth credentials are not
/// forwarded (unless `forwardAuthorization`), and granted headers replace whatever the
/// client sent under their names.
pub fn apply_request(route: &RouteFilters, admitted: &mut Admitted, headers: &mut HeaderMap) {
    if route
        .basic_auth
        .as_ref()
        .is_some_and(|auth| !auth.forward_authorization)
    {
        headers.remove(header::AUTHORIZATION);
    }
    if let Some(ext) = &route.external_auth {
        external_auth::apply(ext, std::mem::take(&mut admitted.granted), headers);
    }
}

/// Adds the CORS headers to an answer for an allowed origin.
pub fn apply_response(route: &RouteFilters, admitted: &Admitted, headers: &mut HeaderMap) {
    if let (Some(c), Some(origin)) = (&route.cors, &admitted.cors_origin) {
        cors::decorate(c, origin, headers);
    }
}
