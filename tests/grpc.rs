//! gRPC and HTTP/2 / HTTPS backends end to end, through the real binary: a tonic client
//! (h2c) calls tonic servers behind sluice over h2c and over TLS (`spec.upstream`), unary
//! and server-streaming, with statuses, trailers and deadlines checked; the gRPC health
//! check type; HTTPS HTTP/1.1 backends with kept-alive connections.
//!
//! There is no protoc here: the messages are written with prost's derive and the service
//! is dispatched by hand, as tonic-build would generate it.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http::uri::PathAndQuery;
use tokio_stream::StreamExt as _;
use tonic::codegen::BoxFuture;
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::{Code, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    message: String,
    /// Server streaming: how many replies before the end.
    #[prost(uint32, tag = "2")]
    count: u32,
    /// Server streaming: end with this error code (and trailer `x-detail`) instead of OK.
    #[prost(int32, tag = "3")]
    fail_with: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    message: String,
    /// The backend that answered.
    #[prost(string, tag = "2")]
    backend: String,
}

/// `test.Echo`: `Unary` echoes, `Stream` sends `count` replies then OK or `fail_with`.
#[derive(Clone)]
struct Echo {
    name: &'static str,
}

impl NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

impl UnaryService<EchoRequest> for Echo {
    type Response = EchoReply;
    type Future = BoxFuture<tonic::Response<EchoReply>, Status>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let backend = self.name.to_owned();
        Box::pin(async move {
            let req = request.into_inner();
            if req.fail_with != 0 {
                let mut status = Status::new(Code::from_i32(req.fail_with), "refused by the test");
                status
                    .metadata_mut()
                    .insert("x-detail", "unary".parse().unwrap());
                return Err(status);
            }
            Ok(tonic::Response::new(EchoReply {
                message: req.message,
                backend,
            }))
        })
    }
}

type ReplyStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<EchoReply, Status>> + Send>>;

impl ServerStreamingService<EchoRequest> for Echo {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<tonic::Response<ReplyStream>, Status>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let backend = self.name.to_owned();
        Box::pin(async move {
            let req = request.into_inner();
            let replies = (0..req.count).map(move |i| {
                Ok(EchoReply {
                    message: format!("{} {i}", req.message),
                    backend: backend.clone(),
                })
            });
            let end = (req.fail_with != 0).then(|| {
                let mut status =
                    Status::new(Code::from_i32(req.fail_with), "stream ended by the test");
                status
                    .metadata_mut()
                    .insert("x-detail", "after-messages".parse().unwrap());
                Err(status)
            });
            let stream = tokio_stream::iter(replies.chain(end)).throttle(Duration::from_millis(5));
            Ok(tonic::Response::new(Box::pin(stream) as ReplyStream))
        })
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(match req.uri().path() {
                "/test.Echo/Unary" => grpc.unary(service, req).await,
                "/test.Echo/Stream" => grpc.server_streaming(service, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// A certificate authority and what it signed: a backend certificate for `backend.test`
/// and a listener certificate for `grpc.test`.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    listener_cert_pem: String,
    listener_key_pem: String,
}

fn pki() -> Pki {
    let ca = common::TestCa::new();
    let (cert_pem, key_pem) = ca.leaf("backend.test");
    let (listener_cert_pem, listener_key_pem) = ca.leaf("grpc.test");
    Pki {
        ca_pem: ca.pem,
        cert_pem,
        key_pem,
        listener_cert_pem,
        listener_key_pem,
    }
}

/// A running backend: its address and how many connections it accepted.
struct Backend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

/// The `test.Echo` service (and a grpc.health.v1 service reporting `health`) on loopback,
/// over h2c, or over TLS with `pki`'s certificate (ALPN h2).
async fn grpc_backend(
    name: &'static str,
    pki: Option<&Pki>,
    health: tonic_health::ServingStatus,
) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |conn| {
        counter.fetch_add(1, Ordering::SeqCst);
        conn
    });
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", health).await;
    let mut server = tonic::transport::Server::builder();
    if let Some(pki) = pki {
        let identity = tonic::transport::Identity::from_pem(&pki.cert_pem, &pki.key_pem);
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap();
    }
    let router = server
        .add_service(Echo { name })
        .add_service(health_service);
    tokio::spawn(async move {
        let _reporter = reporter;
        router.serve_with_incoming(incoming).await.unwrap();
    });
    Backend { addr, connections }
}

/// An h2c gRPC client of sluice's `port`.
async fn client(port: u16) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

async fn unary(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    req: EchoRequest,
) -> Result<tonic::Response<EchoReply>, Status> {
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default();
    let call = grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static("/test.Echo/Unary"),
        codec,
    );
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends within 10s")
}

/// A server-streaming call: the replies received, then the call's final status.
async fn stream(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    req: EchoRequest,
) -> (Vec<EchoReply>, Status) {
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default();
    let work = async {
        let mut replies = Vec::new();
        let response = grpc
            .server_streaming(
                tonic::Request::new(req),
                PathAndQuery::from_static("/test.Echo/Stream"),
                codec,
            )
            .await;
        let mut stream = match response {
            Ok(r) => r.into_inner(),
            Err(status) => return (replies, status),
        };
        loop {
            match stream.message().await {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => return (replies, Status::ok("")),
                Err(status) => return (replies, status),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("the stream ends within 10s")
}

fn echo(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        ..Default::default()
    }
}

fn upstream(yaml: &str) -> Option<sluice::api::UpstreamSpec> {
    Some(PoolDoc::block(yaml))
}

/// sluice with one pool speaking HTTP/2 (h2c) to `backend`, and the pool's port.
fn h2c_proxy(backend: SocketAddr) -> (Sluice, u16) {
    let port = free_port();
    let sluice = Sluice::start(&file(&[PoolDoc::http("grpc", port)
        .endpoints(&[backend])
        .spec(|s| s.upstream = upstream("protocol: HTTP2"))]));
    (sluice, port)
}

/// Serves `docs` from a directory that also holds `pki`'s CA as `ca.pem`.
fn start_with_ca(docs: &[PoolDoc], pki: Option<&Pki>) -> Sluice {
    let dir = tempfile::tempdir().unwrap();
    if let Some(pki) = pki {
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.path().join("listener.pem"), &pki.listener_cert_pem).unwrap();
        std::fs::write(dir.path().join("listener.key"), &pki.listener_key_pem).unwrap();
    }
    Sluice::start_in(dir, &file(docs), &[])
}

#[tokio::test]
async fn grpc_unary_calls_share_one_h2c_connection_to_the_backend() {
    let backend = grpc_backend("a", None, tonic_health::ServingStatus::Serving).await;
    let (_sluice, port) = h2c_proxy(backend.addr);
    let mut grpc = client(port).await;
    let first = unary(&mut grpc, echo("hello")).await.unwrap().into_inner();
    assert_eq!(
        (first.message.as_str(), first.backend.as_str()),
        ("hello", "a")
    );
    let calls = (0..20).map(|i| {
        let mut grpc = grpc.clone();
        async move { unary(&mut grpc, echo(&format!("call {i}"))).await }
    });
    for (i, reply) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(reply.unwrap().into_inner().message, format!("call {i}"));
    }
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        1,
        "21 calls on one client connection (one worker), one multiplexed upstream connection"
    );
}

#[tokio::test]
async fn each_worker_opens_its_own_h2c_connection_to_the_backend() {
    let backend = grpc_backend("a", None, tonic_health::ServingStatus::Serving).await;
    let (_sluice, port) = h2c_proxy(backend.addr);
    // The kernel spreads client connections over the 2 workers by their addresses: 16 of
    // them all land on one worker once in 32768 runs.
    for i in 0..16 {
        let mut grpc = client(port).await;
        for call in 0..2 {
            let message = format!("connection {i} call {call}");
            let reply = unary(&mut grpc, echo(&message)).await.unwrap();
            assert_eq!(reply.into_inner().message, message);
        }
    }
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        2,
        "32 calls on 16 client connections, one upstream connection per worker (--workers 2)"
    );
}

#[tokio::test]
async fn grpc_error_status_and_its_metadata_reach_the_client() {
    let backend = grpc_backend("a", None, tonic_health::ServingStatus::Serving).await;
    let (_sluice, port) = h2c_proxy(backend.addr);
    let mut grpc = client(port).await;
    let req = EchoRequest {
        fail_with: Code::PermissionDenied as i32,
        ..echo("no")
    };
    let status = unary(&mut grpc, req).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "refused by the test");
    assert_eq!(status.metadata().get("x-detail").unwrap(), "unary");
}

#[tokio::test]
async fn grpc_server_stream_keeps_every_message_then_the_trailers() {
    let backend = grpc_backend("a", None, tonic_health::ServingStatus::Serving).await;
    let (_sluice, port) = h2c_proxy(backend.addr);
    let mut grpc = client(port).await;

    let (replies, status) = stream(
        &mut grpc,
        EchoRequest {
            count: 50,
            ..echo("tick")
        },
    )
    .await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    let messages: Vec<String> = replies.into_iter().map(|r| r.message).collect();
    let expected: Vec<String> = (0..50).map(|i| format!("tick {i}")).collect();
    assert_eq!(messages, expected);

    // Messages, then an error in the trailers (not trailers-only): status, message and
    // custom trailer metadata all arrive after the data.
    let req = EchoRequest {
        count: 3,
        fail_with: Code::ResourceExhausted as i32,
        ..echo("tock")
    };
    let (replies, status) = stream(&mut grpc, req).await;
    assert_eq!(replies.len(), 3);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "stream ended by the test");
    assert_eq!(status.metadata().get("x-detail").unwrap(), "after-messages");
}

#[tokio::test]
async fn grpc_calls_reach_a_tls_backend_verified_by_its_ca() {
    let pki = pki();
    let backend = grpc_backend("tls", Some(&pki), tonic_health::ServingStatus::Serving).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("grpc", port)
            .endpoints(&[backend.addr])
            .spec(|s| {
                s.upstream =
                    upstream("{protocol: HTTP2, tls: {serverName: backend.test, caFile: ca.pem}}")
            })],
        Some(&pki),
    );
    let mut grpc = client(port).await;
    let reply = unary(&mut grpc, echo("secret")).await.unwrap().into_inner();
    assert_eq!(
        (reply.message.as_str(), reply.backend.as_str()),
        ("secret", "tls")
    );
    let (replies, status) = stream(
        &mut grpc,
        EchoRequest {
            count: 5,
            ..echo("s")
        },
    )
    .await;
    assert_eq!((replies.len(), status.code()), (5, Code::Ok));
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn auto_protocol_speaks_h2_to_a_backend_that_offers_it_by_alpn() {
    let pki = pki();
    let backend = grpc_backend("alpn", Some(&pki), tonic_health::ServingStatus::Serving).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("grpc", port)
            .endpoints(&[backend.addr])
            .spec(|s| {
                s.upstream =
                    upstream("{protocol: auto, tls: {serverName: backend.test, caFile: ca.pem}}")
            })],
        Some(&pki),
    );
    let mut grpc = client(port).await;
    let (replies, status) = stream(
        &mut grpc,
        EchoRequest {
            count: 4,
            ..echo("a")
        },
    )
    .await;
    assert_eq!((replies.len(), status.code()), (4, Code::Ok), "{status:?}");
}

#[tokio::test]
async fn a_backend_certificate_the_ca_did_not_sign_is_refused_with_unavailable() {
    let pki = pki();
    let other = self::pki();
    let backend = grpc_backend("tls", Some(&pki), tonic_health::ServingStatus::Serving).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("grpc", port)
            .endpoints(&[backend.addr])
            .spec(|s| {
                s.upstream =
                    upstream("{protocol: HTTP2, tls: {serverName: backend.test, caFile: ca.pem}}")
            })],
        Some(&other),
    );
    let mut grpc = client(port).await;
    let status = unary(&mut grpc, echo("x")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// An h2c backend that answers nothing for 5 s and ignores `grpc-timeout`.
async fn silent_h2c_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(|_req| async {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            Ok::<_, Infallible>(http::Response::new(
                                http_body_util::Empty::<Bytes>::new(),
                            ))
                        }),
                    ),
            );
        }
    });
    addr
}

#[tokio::test]
async fn grpc_timeout_bounds_the_wait_and_answers_deadline_exceeded() {
    let backend = silent_h2c_backend().await;
    let (sluice, port) = h2c_proxy(backend);
    let (mut sender, _conn) = h2c(port).await;
    let req = http::Request::post(format!("http://127.0.0.1:{port}/test.Echo/Unary"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(http_body_util::Empty::new())
        .unwrap();
    let started = tokio::time::Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(4), sender.send_request(req))
        .await
        .expect("sluice answers before the backend would")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
    let metrics = sluice.admin_get("/metrics");
    assert!(
        metrics.contains("code=\"504\""),
        "the timeout is counted as a 504: {metrics}"
    );
}

#[tokio::test]
async fn without_a_deadline_the_pool_request_timeout_still_applies_to_grpc() {
    let backend = silent_h2c_backend().await;
    let port = free_port();
    let _sluice = Sluice::start(&file(&[PoolDoc::http("grpc", port)
        .endpoints(&[backend])
        .spec(|s| {
            s.upstream = upstream("protocol: HTTP2");
            s.timeouts = Some(PoolDoc::block("request: 400ms"));
        })]));
    let mut grpc = client(port).await;
    let status = unary(&mut grpc, echo("slow")).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn grpc_health_check_keeps_a_not_serving_backend_out() {
    let up = grpc_backend("up", None, tonic_health::ServingStatus::Serving).await;
    let down = grpc_backend("down", None, tonic_health::ServingStatus::NotServing).await;
    let port = free_port();
    let sluice = Sluice::start(&file(&[PoolDoc::http("grpc", port)
        .endpoints(&[up.addr, down.addr])
        .spec(|s| {
            s.upstream = upstream("protocol: HTTP2");
            s.health_check = Some(PoolDoc::block(
                "{protocol: GRPC, interval: 200ms, timeout: 1s, unhealthyThreshold: 1}",
            ));
        })]));
    let healthy = |pools: &str, addr: SocketAddr| {
        let v: serde_json::Value = serde_json::from_str(pools).unwrap();
        v["pools"][0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["address"] == addr.to_string())
            .map(|e| e["healthy"] == true)
    };
    let settled = eventually(Duration::from_secs(5), || {
        let pools = sluice.admin_get("/pools");
        let ok =
            healthy(&pools, down.addr) == Some(false) && healthy(&pools, up.addr) == Some(true);
        async move { ok }
    })
    .await;
    assert!(settled.is_some(), "{}", sluice.admin_get("/pools"));
    let mut grpc = client(port).await;
    for _ in 0..10 {
        let reply = unary(&mut grpc, echo("x")).await.unwrap().into_inner();
        assert_eq!(reply.backend, "up");
    }
}

#[tokio::test]
async fn grpc_health_check_over_tls_passes_a_serving_backend() {
    let pki = pki();
    let backend = grpc_backend("tls", Some(&pki), tonic_health::ServingStatus::Serving).await;
    let port = free_port();
    let sluice = start_with_ca(
        &[PoolDoc::http("grpc", port)
            .endpoints(&[backend.addr])
            .spec(|s| {
                s.upstream =
                    upstream("{protocol: HTTP2, tls: {serverName: backend.test, caFile: ca.pem}}");
                s.health_check = Some(PoolDoc::block(
                    "{protocol: GRPC, interval: 200ms, unhealthyThreshold: 1}",
                ));
            })],
        Some(&pki),
    );
    // A first check runs at once; a failing one would mark the endpoint unhealthy then.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let metrics = sluice.admin_get("/metrics");
    let series = format!(
        "sluice_health_checks_total{{pool=\"default/grpc\",backend=\"{}\",result=\"success\"}}",
        backend.addr
    );
    assert!(
        metric_value(&metrics, &series).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let pools: serde_json::Value = serde_json::from_str(&sluice.admin_get("/pools")).unwrap();
    assert_eq!(
        pools["pools"][0]["endpoints"][0]["healthy"], true,
        "{pools}"
    );
}

#[tokio::test]
async fn grpc_from_an_h2_tls_client_reaches_a_tls_backend() {
    let pki = pki();
    let backend = grpc_backend("tls", Some(&pki), tonic_health::ServingStatus::Serving).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("grpc", port)
            .hosts(&["grpc.test"])
            .endpoints(&[backend.addr])
            .spec(|s| {
                s.listener.tls = Some(PoolDoc::block(
                    "{certFile: listener.pem, keyFile: listener.key}",
                ));
                s.upstream =
                    upstream("{protocol: HTTP2, tls: {serverName: backend.test, caFile: ca.pem}}");
            })],
        Some(&pki),
    );
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .domain_name("grpc.test");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .origin(format!("https://grpc.test:{port}").parse().unwrap())
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let reply = unary(&mut grpc, echo("over h2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.message.as_str(), reply.backend.as_str()),
        ("over h2", "tls")
    );
    let (replies, status) = stream(
        &mut grpc,
        EchoRequest {
            count: 3,
            ..echo("s")
        },
    )
    .await;
    assert_eq!((replies.len(), status.code()), (3, Code::Ok), "{status:?}");
}

#[tokio::test]
async fn sluice_answers_grpc_calls_it_cannot_forward_with_a_grpc_status() {
    let port = free_port();
    let _sluice = Sluice::start(&file(&[PoolDoc::http("grpc", port)
        .hosts(&["grpc.test"])
        .endpoints(&[])
        .spec(|s| s.upstream = upstream("protocol: HTTP2"))]));
    let unrouted = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = unary(&mut tonic::client::Grpc::new(unrouted), echo("x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "no route: {status:?}");
    let routed = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .origin(format!("http://grpc.test:{port}").parse().unwrap())
        .connect()
        .await
        .unwrap();
    let status = unary(&mut tonic::client::Grpc::new(routed), echo("x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "no endpoint: {status:?}");
    assert_eq!(status.message(), "no healthy endpoint available");
}
