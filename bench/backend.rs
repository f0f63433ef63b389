//! Backends for the gRPC and HTTPS-backend scenarios of `bench/run.sh` (benchtool.c speaks
//! plain HTTP/1.1 only). Each runs on one thread, as benchtool's backends do, so a backend
//! costs at most one core whatever the proxy in front of it.
//!
//! ```text
//! bench-backend grpc PORT BODY              h2c gRPC: /bench.Echo/Unary answers {message: BODY}
//! bench-backend https PORT BODY CERT KEY    HTTPS, HTTP/1.1 keep-alive, answers BODY
//! ```
//!
//! Built by run.sh with `cargo build --release --example bench-backend` (tonic is a
//! dev-dependency; there is no protoc, so the messages are written with prost's derive).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use tonic::codegen::BoxFuture;
use tonic::server::{NamedService, UnaryService};

#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// `bench.Echo`: one unary method answering the backend's body.
#[derive(Clone)]
struct Echo {
    body: Arc<str>,
}

impl NamedService for Echo {
    const NAME: &'static str = "bench.Echo";
}

impl UnaryService<EchoRequest> for Echo {
    type Response = EchoReply;
    type Future = BoxFuture<tonic::Response<EchoReply>, tonic::Status>;

    fn call(&mut self, _request: tonic::Request<EchoRequest>) -> Self::Future {
        let message = self.body.to_string();
        Box::pin(async move { Ok(tonic::Response::new(EchoReply { message })) })
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
                "/bench.Echo/Unary" => grpc.unary(service, req).await,
                _ => tonic::Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

fn usage() -> ! {
    eprintln!("usage: bench-backend grpc PORT BODY | bench-backend https PORT BODY CERT KEY");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(port), Some(body)) = (args.first(), args.get(1), args.get(2)) else {
        usage()
    };
    let port: u16 = port.parse().unwrap_or_else(|_| usage());
    let body: Arc<str> = Arc::from(body.as_str());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        match mode.as_str() {
            "grpc" => grpc(listener, body).await,
            "https" => {
                let (Some(cert), Some(key)) = (args.get(3), args.get(4)) else {
                    usage()
                };
                https(listener, body, cert, key).await
            }
            _ => usage(),
        }
    });
    if let Err(e) = served {
        eprintln!("bench-backend: {e}");
        std::process::exit(1);
    }
}

async fn grpc(listener: tokio::net::TcpListener, body: Arc<str>) -> std::io::Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(Echo { body })
        .serve_with_incoming(incoming)
        .await
        .map_err(std::io::Error::other)
}

async fn https(
    listener: tokio::net::TcpListener,
    body: Arc<str>,
    cert: &str,
    key: &str,
) -> std::io::Result<()> {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(std::io::Error::other)?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).map_err(std::io::Error::other)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let body = Bytes::copy_from_slice(body.as_bytes());
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(body))) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}
