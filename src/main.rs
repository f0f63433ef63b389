//! The `sluice` command line: parse arguments and dispatch. Behaviour lives in the library.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice::controller::gateway::services;
use sluice::controller::ingress::IngressSettings;
use sluice::controller::ingress_status::Publish;
use sluice::controller::{self, ControllerOptions};
use sluice::policy::Cidr;
use sluice::process::{LogFormat, Options};
use sluice::standalone;

const STANDALONE_ADMIN: &str = "127.0.0.1:9090";
const CONTROLLER_ADMIN: &str = "0.0.0.0:9090";

/// Kubernetes ingress controller and L4/L7 load balancer.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Standalone: serve the BackendPools in FILE; reload on change and on SIGHUP.
    Serve {
        /// YAML file of BackendPool documents.
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Validate FILE like `serve` would; print every error.
    Check {
        /// YAML file of BackendPool documents (`-` reads standard input).
        #[arg(long, short, required_unless_present = "file", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// The file, given without `--config`.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// The file is Kubernetes manifests: check its BackendPools as the API server and
        /// the controller would take them (no cluster needed; Services and Secrets are not
        /// looked up) and pass over objects of other kinds.
        #[arg(long)]
        kubernetes: bool,
        /// `text` (one error per line on stderr) or `json` (one object on stdout).
        #[arg(long, value_enum, default_value_t = standalone::CheckFormat::Text)]
        format: standalone::CheckFormat,
    },
    /// Print the BackendPool CustomResourceDefinition as YAML.
    Crd,
    /// Start three echo backends and a RoundRobin pool on 127.0.0.1:8080.
    Demo {
        /// Port of the demo pool.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        common: Common,
    },
    /// Kubernetes mode: watch BackendPools and EndpointSlices (in-cluster config or KUBECONFIG).
    Controller {
        /// Watch one namespace (default: all).
        #[arg(long)]
        namespace: Option<String>,
        /// Elect a leader (a coordination.k8s.io Lease); only the leader writes status and Events.
        #[arg(long)]
        leader_elect: bool,
        /// Namespace of the Lease (default: the pod's own namespace, else `default`).
        #[arg(long)]
        leader_namespace: Option<String>,
        /// Lease name, field manager and event source.
        #[arg(long, default_value = "sluice")]
        controller_name: String,
        /// Ingress class served through the legacy `kubernetes.io/ingress.class` annotation
        /// (IngressClasses are ours by `spec.controller: sluice.dev/ingress-controller`).
        #[arg(long, default_value = "sluice")]
        ingress_class: String,
        /// Port where Ingress HTTP traffic is served.
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        /// Port where Ingress HTTPS traffic (spec.tls) is served.
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        /// Service (NAMESPACE/NAME) whose addresses go to the Ingresses' status.loadBalancer.
        #[arg(long, conflicts_with = "publish_address")]
        publish_service: Option<Publish>,
        /// Address (IP or hostname) written to the Ingresses' status.loadBalancer.
        #[arg(long)]
        publish_address: Option<String>,
        #[command(flatten)]
        gateway: Box<GatewayArgs>,
        #[command(flatten)]
        common: Common,
    },
}

/// The Gateway API front end's Service options.
#[derive(Args, Debug, Clone)]
struct GatewayArgs {
    /// Give every Gateway a Service of this type (ClusterIP, LoadBalancer, NodePort) in
    /// the pod's namespace, selecting these pods; its address is the Gateway's address.
    #[arg(long, value_parser = services::parse_type, requires = "gateway_service_selector")]
    gateway_service_type: Option<String>,
    /// Labels (KEY=VALUE,...) of sluice's pods, for the Gateways' Services.
    #[arg(long, value_parser = services::parse_selector, value_name = "KEY=VALUE,...")]
    gateway_service_selector: Option<BTreeMap<String, String>>,
    /// Ports sluice listens on for a Gateway's listener whose port an older Gateway holds.
    #[arg(long, value_parser = services::parse_range, default_value = "20000-20999")]
    gateway_port_range: RangeInclusive<u16>,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Address the pool listeners bind.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Admin endpoint (/metrics /healthz /readyz /pools) [default: 127.0.0.1:9090;
    /// 0.0.0.0:9090 for `controller`].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// Log level or tracing filter (e.g. `info`, `sluice=debug`).
    #[arg(long, default_value = "info", env = "SLUICE_LOG")]
    log_level: String,
    /// Write one JSON access-log line per request/connection to stdout.
    #[arg(long)]
    access_log: bool,
    /// Export OpenTelemetry traces to this OTLP endpoint.
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Data-plane worker threads (default: one per CPU).
    #[arg(long, env = "SLUICE_WORKERS")]
    workers: Option<usize>,
    /// Most client connections open at once; beyond it new ones get 503 and are closed
    /// (default: 16 KiB each in half the container's memory limit, 1,024..=50,000; 50,000
    /// without a limit).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Proxies (CIDRs or addresses, comma-separated) whose `X-Forwarded-For` names the
    /// client, for address lists, rate limits, ClientIP affinity and the access log.
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr, value_name = "CIDR,...")]
    trusted_proxies: Vec<Cidr>,
    /// Per-endpoint (`backend` label) metric series; `false` aggregates them per pool
    /// (`backend=""`), keeping only `sluice_backend_healthy` per endpoint (docs/metrics.md).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    metrics_backend_labels: bool,
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    Cidr::parse(text.trim())
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Format {
    Text,
    Json,
}

impl Common {
    fn options(self, default_admin: &str) -> Options {
        let default_admin = default_admin.parse().expect("a literal socket address");
        Options {
            bind: self.bind,
            admin_listen: self.admin_listen.unwrap_or(default_admin),
            log_format: match self.log_format {
                Format::Text => LogFormat::Text,
                Format::Json => LogFormat::Json,
            },
            log_level: self.log_level,
            access_log: self.access_log,
            otlp_endpoint: self.otlp_endpoint,
            workers: self.workers,
            max_connections: self.max_connections,
            trusted_proxies: self.trusted_proxies,
            metrics_backend_labels: self.metrics_backend_labels,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, common } => {
            standalone::serve(config, common.options(STANDALONE_ADMIN))
        }
        Command::Check {
            config,
            file,
            kubernetes,
            format,
        } => match config.or(file) {
            Some(path) => standalone::check(&path, format, kubernetes),
            None => ExitCode::from(2),
        },
        Command::Crd => match sluice::config::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot render the CRD: {e}");
                ExitCode::from(1)
            }
        },
        Command::Demo { port, common } => standalone::demo(port, common.options(STANDALONE_ADMIN)),
        Command::Controller {
            namespace,
            leader_elect,
            leader_namespace,
            controller_name,
            ingress_class,
            http_port,
            https_port,
            publish_service,
            publish_address,
            gateway,
            common,
        } => {
            if http_port == https_port {
                eprintln!("--http-port and --https-port must differ");
                return ExitCode::from(2);
            }
            let GatewayArgs {
                gateway_service_type,
                gateway_service_selector,
                gateway_port_range,
            } = *gateway;
            let gateway_services = gateway_service_type.map(|type_| {
                Arc::new(services::ServiceMode {
                    namespace: controller::pod_namespace(),
                    owner: controller_name.clone(),
                    type_,
                    selector: gateway_service_selector.unwrap_or_default(),
                    ports: gateway_port_range,
                })
            });
            let controller = ControllerOptions {
                namespace,
                leader_elect,
                leader_namespace,
                name: controller_name,
                ingress: IngressSettings {
                    class: ingress_class,
                    http_port,
                    https_port,
                },
                publish: publish_service.or(publish_address.map(Publish::Address)),
                gateway_services,
            };
            controller::run(controller, common.options(CONTROLLER_ADMIN))
        }
    }
}
