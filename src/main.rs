//! The `sluice` command line: parse arguments and dispatch. Behaviour lives in the library.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice::standalone::{self, LogFormat, Options};

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
        /// YAML file of BackendPool documents.
        #[arg(long, short)]
        config: PathBuf,
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
    /// Kubernetes mode: watch BackendPools and EndpointSlices.
    Controller {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Address the pool listeners bind.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Admin endpoint (/metrics /healthz /readyz /pools).
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
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
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Format {
    Text,
    Json,
}

impl Common {
    fn options(self) -> Options {
        Options {
            bind: self.bind,
            admin_listen: self.admin_listen,
            log_format: match self.log_format {
                Format::Text => LogFormat::Text,
                Format::Json => LogFormat::Json,
            },
            log_level: self.log_level,
            access_log: self.access_log,
            otlp_endpoint: self.otlp_endpoint,
            workers: self.workers,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, common } => standalone::serve(config, common.options()),
        Command::Check { config } => standalone::check(&config),
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
        Command::Demo { port, common } => standalone::demo(port, common.options()),
        Command::Controller { .. } => {
            eprintln!("sluice controller: Kubernetes mode is not available in this build yet");
            ExitCode::from(1)
        }
    }
}
