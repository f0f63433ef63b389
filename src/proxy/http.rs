//! The HTTP forwarding path: one request from route lookup to the streamed response.
//!
//! How a request finds its endpoint: the connection's [`Listener`] holds the port's
//! [`Router`] in an `ArcSwap`; one atomic load gives the router, a hash lookup on the
//! lower-cased host and a scan of that host's routes (in precedence order) give the route's
//! [`Target`], whose backends were resolved to `Arc<Pool>`s when the router was built (one
//! backend: no random draw); one more atomic load gives the pool's immutable [`Snapshot`],
//! whose balancer picks an endpoint among those available and takes a connection slot on
//! it. Nothing is locked except the calling worker's own idle-connection list, and no
//! configuration is cloned.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::balance::{hash_ip, hash_key};
use crate::config::{AffinityConfig, Algorithm, HashKey, RouteFilters};
use crate::policy::{self, LimitedBody, TrustedProxies};
use crate::pool::{ActiveGuard, Pool, Snapshot, UNROUTED, UpstreamConn, now_ns};
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::proxy::filters;
use crate::proxy::headers;
use crate::proxy::http1::guard::Verdict;
use crate::proxy::telemetry::{self, AccessLog, RequestSpan, SpanExport};
use crate::proxy::upstream;
use crate::proxy::upstream::hyper_client;
use crate::route::router::RouteInput;
use crate::route::router::Router;
use crate::route::target::{Pick, Target};

/// Everything requests on one HTTP listener port share.
#[derive(Debug)]
pub struct Listener {
    /// The port's routes, swapped on every configuration change.
    pub router: ArcSwap<Router<Arc<Target>>>,
    /// Whether clients reach this port over TLS (sets `X-Forwarded-Proto`).
    pub https: bool,
    /// Where access-log lines go, if enabled.
    pub access_log: Option<AccessLog>,
    /// OTLP span export, if enabled.
    pub spans: Option<SpanExport>,
    /// `--trusted-proxies`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    /// The listener it arrived on.
    pub listener: Arc<Listener>,
    /// The client's address (after PROXY protocol, when enabled).
    pub peer: SocketAddr,
    /// `X-Forwarded-For` element for this client, computed once.
    pub client_ip: HeaderValue,
    /// What the smuggling guard found on this connection: created when hyper takes the
    /// connection over (sluice's own HTTP/1.1 loop and HTTP/2 need none), so a connection
    /// that never gets there does not carry one.
    verdict: OnceLock<Arc<Verdict>>,
    /// How long the connection may wait idle for its next request, in milliseconds: the
    /// `timeouts.idle` of the pool that served its latest request (the header deadline
    /// until one has).
    keep_idle_ms: AtomicU64,
}

impl Connection {
    /// Describes a new client connection on `listener`.
    pub fn new(listener: Arc<Listener>, peer: SocketAddr) -> Self {
        Connection {
            listener,
            peer,
            client_ip: headers::client_ip_value(peer.ip()),
            verdict: OnceLock::new(),
            keep_idle_ms: AtomicU64::new(millis(crate::proxy::server::HEADER_READ_TIMEOUT)),
        }
    }

    /// The verdict the smuggling guard of this connection reports to (created on first use).
    pub fn guard_verdict(&self) -> Arc<Verdict> {
        self.verdict.get_or_init(Arc::default).clone()
    }

    /// Advances the guard's request index: `Err(status)` when the guard refused this
    /// request's head (see [`Verdict::next_request`]). Without a guard, every request is
    /// in order.
    fn framing(&self) -> Result<(), StatusCode> {
        self.verdict.get().map_or(Ok(()), |v| v.next_request())
    }

    /// The client address of a request on this connection (see [`TrustedProxies::client`]).
    pub fn client_addr(&self, headers: &http::HeaderMap) -> std::net::IpAddr {
        self.listener
            .trusted_proxies
            .client(self.peer.ip(), headers)
    }

    /// How long the connection may now wait idle for its next request.
    pub fn keep_idle(&self) -> Duration {
        Duration::from_millis(self.keep_idle_ms.load(Ordering::Relaxed))
    }

    /// Records the idle timeout of the pool that served the latest request. Written by
    /// this connection's own tasks only, so the store is uncontended.
    fn set_keep_idle(&self, idle: Duration) {
        let ms = millis(idle);
        if self.keep_idle_ms.load(Ordering::Relaxed) != ms {
            self.keep_idle_ms.store(ms, Ordering::Relaxed);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The body of a client request: hyper's stream, or (from the HTTP/1 loop of
/// [`h1server`](crate::proxy::http1::server)) a small body already read whole.
pub enum ClientBody {
    /// Streamed by hyper (cut at `maxRequestBodyBytes` when the route sets it).
    Incoming(LimitedBody),
    /// Read whole (or none).
    Kept(Option<Bytes>),
}

/// Serves one request that hyper read. Never fails: every problem becomes a status code.
///
/// The request path's future (KiBs) is boxed here, once: hyper moves the future it gets
/// by value several times (into its stream future, through the executor into the task),
/// and a small one makes those moves cheap.
pub fn handle(
    req: Request<Incoming>,
    conn: Arc<Connection>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static {
    // Always advance the guard's request index, even when check_request fails.
    let framing = conn.framing();
    let serving = Box::pin(serve(
        req.map(|b| ClientBody::Incoming(LimitedBody::new(b))),
        conn,
        framing,
    ));
    async move { Ok(serving.await) }
}

/// Serves one request; `framing` is the status that refuses it when the smuggling guard's
/// strict reading of its head did (400, 414, 431).
pub async fn serve(
    req: Request<ClientBody>,
    conn: Arc<Connection>,
    framing: Result<(), StatusCode>,
) -> Response<ProxyBody> {
    if let Err(status) = check_request(&req, framing) {
        let text = match status {
            StatusCode::NOT_IMPLEMENTED => "not implemented\n",
            StatusCode::URI_TOO_LONG => "request line too long\n",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "too many header fields\n",
            _ => "bad request\n",
        };
        UNROUTED.record(status.as_u16());
        let mut resp = local(status, text);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    let router = conn.listener.router.load();
    let host = request_host(&req);
    let input = RouteInput {
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        method: req.method(),
        headers: req.headers(),
    };
    let Some(target) = router.route(&input).cloned() else {
        drop(router);
        UNROUTED.record(StatusCode::NOT_FOUND.as_u16());
        let resp = if hyper_client::is_grpc(req.headers()) {
            hyper_client::grpc_error(StatusCode::NOT_FOUND, ProxyError::NoRoute.body())
        } else {
            error_response(&ProxyError::NoRoute)
        };
        if conn.listener.access_log.is_none() {
            return resp;
        }
        let client = conn.client_addr(req.headers());
        return answered(&conn, &req, client, "", Instant::now(), resp);
    };
    drop(router);
    forward(req, conn, target).await
}

/// Rejects what a strict HTTP/1.1 reader would: ambiguous framing (seen by the guard),
/// missing or repeated `Host` (RFC 9112 3.2).
fn check_request(
    req: &Request<ClientBody>,
    framing: Result<(), StatusCode>,
) -> Result<(), StatusCode> {
    framing?;
    if req.method() == Method::CONNECT {
        // A reverse proxy does not open tunnels to arbitrary targets.
        return Err(StatusCode::NOT_IMPLEMENTED);
    }
    if req.version() == Version::HTTP_11 {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        if hosts.next().is_none() || hosts.next().is_some() {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    Ok(())
}

/// The host the client asked for: `:authority` / absolute-form URI, else `Host`.
fn request_host(req: &Request<ClientBody>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

async fn forward(
    mut req: Request<ClientBody>,
    conn: Arc<Connection>,
    target: Arc<Target>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let client = conn.client_addr(req.headers());
    if let Some(refused) = policy::admit(&target, client, &mut req) {
        return answered(&conn, &req, client, target.owner_name(), start, refused);
    }
    // Held until the answer has been sent (in the exchange) or the tunnel closes.
    let client_slot = match policy::client_slot(&target, client) {
        Ok(slot) => slot,
        Err(refused) => return answered(&conn, &req, client, target.owner_name(), start, *refused),
    };
    let route = &*target.route.filters;
    let original = policy::external_auth::Original {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        host: request_host(&req),
        https: conn.listener.https,
        client_ip: client,
    };
    let mut admitted = match policy::auth::admit(route, &original).await {
        Ok(admitted) => admitted,
        Err(refused) => {
            let resp = refused.answer(target.owner.as_deref().map(|p| &p.stats));
            return answered(&conn, &req, client, target.owner_name(), start, resp);
        }
    };
    let picked = target.pick(req.headers());
    let prefix = target.route.path.replaced_prefix();
    if let Some(r) = &route.redirect {
        let resp = filters::redirect(
            r,
            conn.listener.https,
            request_host(&req),
            req.uri(),
            prefix,
        );
        match &picked {
            Pick::Backend(pool) => pool.stats.local.record(resp.status().as_u16()),
            Pick::Answer(_) => UNROUTED.record(resp.status().as_u16()),
        }
        return answered(&conn, &req, client, target.owner_name(), start, resp);
    }
    let pool = match picked {
        Pick::Backend(pool) => pool.clone(),
        Pick::Answer(status) => {
            UNROUTED.record(status.as_u16());
            let resp = local(status, "no backend for this route\n");
            return answered(&conn, &req, client, target.owner_name(), start, resp);
        }
    };
    let snapshot = pool.snapshot();
    conn.set_keep_idle(snapshot.config.timeouts.idle);
    let hash = request_hash(&snapshot, &req, client);
    let https = conn.listener.https;
    let affinity = match &snapshot.config.affinity {
        Some(AffinityConfig::Cookie { name, .. }) => {
            Some(cookie(&req, name).and_then(|v| u64::from_str_radix(v, 16).ok()))
        }
        _ => None,
    };
    // gRPC needs an HTTP/2 upstream: the plain HTTP/1.1 path (the hot one) skips these checks.
    let plain = snapshot.config.upstream.is_plain_http1();
    let grpc = !plain && hyper_client::is_grpc(req.headers());
    let deadline = if grpc {
        hyper_client::grpc_timeout(req.headers())
    } else {
        None
    };
    let upgrade = headers::wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let log = conn
        .listener
        .access_log
        .as_ref()
        .map(|_| telemetry::RequestInfo::from_request(&req, client, conn.peer));

    // `TE` is hop-by-hop, but whether the client takes trailers is what decides if a
    // backend may send them: the client of TLS and HTTP/2 backends passes trailers on, so
    // it says so upstream.
    let te_trailers = !plain && headers::accepts_trailers(req.headers());
    let (mut parts, body, ids) =
        match upstream_parts(req, &conn, upgrade).and_then(|p| apply_route(route, prefix, p)) {
            Ok(p) => p,
            Err(status) => {
                pool.stats.local.record(status.as_u16());
                return local(status, "bad request\n");
            }
        };
    policy::auth::apply_request(route, &mut admitted, &mut parts.headers);
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let span = conn
        .listener
        .spans
        .as_ref()
        .map(|s| s.begin(&ids, &parts.method, parts.uri.path()));
    // Small bodies of known length are read first (as nginx buffers request bodies): they
    // go out with the head in one write, and can be sent again on a retry.
    let out = match body {
        ClientBody::Kept(bytes) => {
            let n = bytes.as_ref().map_or(0, Bytes::len) as u64;
            pool.stats.request_bytes.fetch_add(n, Ordering::Relaxed);
            upstream::Outbound::kept(parts, bytes)
        }
        ClientBody::Incoming(mut body) => {
            body.count_in(pool.clone());
            match small_body(body, snapshot.config.timeouts.request).await {
                Ok(Ok(bytes)) => upstream::Outbound::kept(parts, bytes),
                Ok(Err(body)) => upstream::Outbound::streamed(parts, body),
                Err(()) => {
                    pool.stats.local.record(StatusCode::BAD_REQUEST.as_u16());
                    return local(StatusCode::BAD_REQUEST, "bad request body\n");
                }
            }
        }
    }
    .with_deadline(deadline);

    let mut exchange = Exchange {
        client_slot,
        guard: None,
        pool: pool.clone(),
        start,
        status: 0,
        bytes_out: 0,
        log: log.map(|info| Box::new((info, conn))),
        span,
        done: false,
    };
    match upstream::send(&pool, &snapshot, hash, affinity.flatten(), out).await {
        Ok(upstream::Answered { response, guard }) => {
            let status = response.status();
            let endpoint = guard.endpoint();
            endpoint.stats.record_status(status.as_u16());
            endpoint.observe_latency(start.elapsed().as_nanos() as u64, now_ns());
            exchange.status = status.as_u16();
            if let (StatusCode::SWITCHING_PROTOCOLS, Some(client_upgrade)) =
                (status, client_upgrade)
            {
                let (mut parts, body) = response.into_parts();
                if let Some(backend) = body.into_upgraded() {
                    let slot = exchange.client_slot.take();
                    tokio::spawn(tunnel(client_upgrade, backend, guard, slot));
                }
                exchange.complete(None);
                headers::strip_hop_by_hop(&mut parts.headers, true);
                return Response::from_parts(parts, ProxyBody::empty());
            }
            let (mut parts, body) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, false);
            route.response_headers.apply(&mut parts.headers);
            policy::auth::apply_response(route, &admitted, &mut parts.headers);
            if let (Some(presented), Some(AffinityConfig::Cookie { name, ttl })) =
                (affinity, &snapshot.config.affinity)
            {
                let token = snapshot.affinity_token(endpoint);
                if presented != Some(token) {
                    let secure = if https { "; Secure" } else { "" };
                    let value = format!(
                        "{name}={token:016x}; Max-Age={}; Path=/; HttpOnly{secure}",
                        ttl.as_secs()
                    );
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        parts.headers.append(header::SET_COOKIE, v);
                    }
                }
            }
            exchange.guard = Some(guard);
            let mut body = body;
            if http_body::Body::is_end_stream(&body) {
                // No body to stream (HEAD, 204, 304, empty): the exchange is over now.
                exchange.complete(body.take_reusable());
                return Response::from_parts(parts, ProxyBody::empty());
            }
            Response::from_parts(
                parts,
                ProxyBody::Upstream {
                    inner: body,
                    exchange,
                    cut: None,
                },
            )
        }
        Err((err, guard)) => {
            let status = err.status();
            exchange.status = status.as_u16();
            match &guard {
                // A client's broken body is sluice's own answer, not the backend's.
                Some(guard) if !err.is_client_fault() => {
                    guard.endpoint().stats.record_status(status.as_u16());
                    tracing::debug!(pool = pool.name(), backend = guard.endpoint().label(), error = %err, "upstream failed");
                }
                _ => pool.stats.local.record(status.as_u16()),
            }
            if matches!(err, ProxyError::BodyTooLarge) {
                pool.stats
                    .denied_body
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            exchange.guard = guard;
            exchange.fail();
            if grpc {
                return hyper_client::grpc_error(status, err.body());
            }
            let mut resp = error_response(&err);
            // A page's script of an allowed origin may read why its request failed (502-504).
            policy::auth::apply_response(route, &admitted, resp.headers_mut());
            if err.is_client_fault() {
                // The client's stream is unusable past its broken body.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// An answer sluice gives itself (no route, an access-policy refusal, a redirect), written
/// to the access log like a forwarded one when the listener logs, with no backend.
fn answered(
    conn: &Connection,
    req: &Request<ClientBody>,
    client: std::net::IpAddr,
    pool: &str,
    start: Instant,
    resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if let Some(log) = &conn.listener.access_log {
        let info = telemetry::RequestInfo::from_request(req, client, conn.peer);
        let bytes = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
        log.http(
            &info,
            pool,
            None,
            resp.status().as_u16(),
            bytes,
            start.elapsed(),
        );
    }
    resp
}

/// Reads a body of at most [`upstream::MAX_REPLAY_BODY`] bytes (declared by
/// `Content-Length`, or empty) into memory; any other body is handed back to be streamed.
async fn small_body(
    body: LimitedBody,
    timeout: Duration,
) -> Result<Result<Option<Bytes>, LimitedBody>, ()> {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    if body.is_end_stream() {
        return Ok(Ok(None));
    }
    match body.size_hint().exact() {
        Some(n) if n <= upstream::MAX_REPLAY_BODY => {
            match tokio::time::timeout(timeout, body.collect()).await {
                Ok(Ok(collected)) => Ok(Ok(Some(collected.to_bytes()))),
                _ => Err(()),
            }
        }
        _ => Ok(Err(body)),
    }
}

/// The ConsistentHash key of this request, if the pool hashes.
fn request_hash(
    snapshot: &Snapshot,
    req: &Request<ClientBody>,
    client: std::net::IpAddr,
) -> Option<u64> {
    if matches!(snapshot.config.affinity, Some(AffinityConfig::ClientIp)) {
        return Some(hash_ip(client));
    }
    let Algorithm::ConsistentHash(key) = &snapshot.config.algorithm else {
        return None;
    };
    match key {
        HashKey::Header(name) => req.headers().get(name).map(|v| hash_key(v.as_bytes())),
        HashKey::Cookie(name) => cookie(req, name).map(|v| hash_key(v.as_bytes())),
        HashKey::ClientIp => Some(hash_ip(client)),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(req: &'a Request<ClientBody>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Rewrites the client request for the backend: origin-form URI, HTTP/1.1, `Host` kept
/// (taken from `:authority` for HTTP/2 clients), hop-by-hop removed, forwarding headers set.
fn upstream_parts(
    req: Request<ClientBody>,
    conn: &Connection,
    upgrade: bool,
) -> Result<(http::request::Parts, ClientBody, telemetry::TraceIds), StatusCode> {
    let (mut parts, body) = req.into_parts();
    let authority = parts.uri.authority().cloned();
    // The request was routed by `:authority` / the absolute-form host when present: the
    // backend must see that same host, whatever `Host` said.
    match &authority {
        Some(authority) => {
            let value =
                HeaderValue::from_str(authority.as_str()).map_err(|_| StatusCode::BAD_REQUEST)?;
            parts.headers.insert(header::HOST, value);
        }
        None if !parts.headers.contains_key(header::HOST) => return Err(StatusCode::BAD_REQUEST),
        None => {}
    }
    if authority.is_some() || parts.uri.scheme().is_some() {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(path).map_err(|_| StatusCode::BAD_REQUEST)?;
    }
    if parts.version == Version::HTTP_2 && parts.method == Method::CONNECT {
        return Err(StatusCode::NOT_IMPLEMENTED);
    }
    parts.version = Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    let host = parts.headers.get(header::HOST).cloned();
    headers::set_forwarded(
        &mut parts.headers,
        &conn.client_ip,
        conn.listener.https,
        host.as_ref(),
    );
    let ids = telemetry::propagate_trace(&mut parts.headers);
    Ok((parts, body, ids))
}

/// The route's request header changes and rewrite, on the request already prepared for
/// upstream (so `X-Forwarded-Host` still names the host the client asked for).
fn apply_route(
    route: &RouteFilters,
    prefix: &str,
    (mut parts, body, ids): (http::request::Parts, ClientBody, telemetry::TraceIds),
) -> Result<(http::request::Parts, ClientBody, telemetry::TraceIds), StatusCode> {
    route.request_headers.apply(&mut parts.headers);
    if let Some(r) = &route.rewrite
        && !filters::rewrite(r, prefix, &mut parts)
    {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok((parts, body, ids))
}

/// Copies bytes both ways between an upgraded client and backend until both sides close.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    mut backend: UpstreamConn,
    guard: ActiveGuard,
    _client_slot: Option<policy::ClientSlot>,
) {
    use tokio::io::AsyncWriteExt;
    let client = match client.await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    // Bytes the backend sent right after its 101 belong to the new protocol.
    if !backend.buf.is_empty() {
        if client.write_all(&backend.buf).await.is_err() {
            return;
        }
        backend.buf.clear();
    }
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut client, &mut backend.stream) => {
            if let Err(e) = res {
                tracing::debug!(backend = guard.endpoint().label(), error = %e, "tunnel ended");
            }
        }
        _ = guard.endpoint().cut.cancelled() => {
            tracing::debug!(backend = guard.endpoint().label(), "drain timeout: tunnel closed");
        }
    }
}

/// A local answer with a short text body.
pub fn local(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    local(err.status(), err.body())
}

/// Bookkeeping for one forwarded request, finished when the response body ends or is
/// dropped: the upstream connection goes back to the idle pool only after a clean end,
/// then duration, access log and the endpoint's slot are released.
pub struct Exchange {
    /// The client's `limit-connections` slot, given back when the exchange ends.
    client_slot: Option<policy::ClientSlot>,
    guard: Option<ActiveGuard>,
    pool: Arc<Pool>,
    start: Instant,
    status: u16,
    /// Response body bytes sent to the client so far.
    pub bytes_out: u64,
    /// Boxed, as the span: most listeners log nothing, and this state is in every request's future.
    log: Option<Box<(telemetry::RequestInfo, Arc<Connection>)>>,
    span: Option<RequestSpan>,
    done: bool,
}

impl Exchange {
    /// The response ended cleanly; `conn` (when reusable) goes back to the idle pool.
    pub fn complete(&mut self, conn: Option<UpstreamConn>) {
        if let (Some(conn), Some(guard)) = (conn, &self.guard) {
            guard.endpoint().upstream.put(conn);
        }
        self.finish();
    }

    /// The exchange failed or was abandoned.
    pub fn fail(&mut self) {
        self.finish();
    }

    /// The endpoint this exchange holds a slot on.
    pub fn endpoint(&self) -> Option<&Arc<crate::pool::Endpoint>> {
        self.guard.as_ref().map(|g| g.endpoint())
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.start.elapsed();
        self.pool.stats.duration.observe(elapsed);
        self.pool
            .stats
            .response_bytes
            .fetch_add(self.bytes_out, Ordering::Relaxed);
        if let Some((info, conn)) = self.log.as_deref()
            && let Some(log) = &conn.listener.access_log
        {
            let backend = self.guard.as_ref().map(|g| g.endpoint().label());
            log.http(
                info,
                self.pool.name(),
                backend,
                self.status,
                self.bytes_out,
                elapsed,
            );
        }
        if let Some(span) = self.span.take() {
            let backend = self.guard.as_ref().map(|g| g.endpoint().label());
            span.end(self.pool.name(), backend, self.status);
        }
        self.guard = None;
        self.client_slot = None;
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.fail();
    }
}

/// A body that is a fixed byte string (used by local answers of other modules).
pub fn full(bytes: Bytes) -> ProxyBody {
    ProxyBody::Full(Some(bytes))
}
