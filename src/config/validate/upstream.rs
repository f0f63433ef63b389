//! `spec.upstream`: the HTTP version spoken to the backends and TLS to them. Which CA
//! source a mode takes (`caFile` standalone, `caSecretName` in Kubernetes) is checked here,
//! as `check_tls` does for listener certificates; reading the CA file is the loader's job.

use super::{CaLookup, Ctx, names};
use crate::api;
use crate::config::{Protocol, UpstreamConfig, UpstreamProtocol, UpstreamTls, UpstreamTrust};

pub(super) fn check_upstream(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: Option<&api::UpstreamSpec>,
    ca: CaLookup<'_>,
) -> UpstreamConfig {
    let Some(spec) = spec else {
        return UpstreamConfig::default();
    };
    if protocol == Protocol::Tcp {
        ctx.error("spec.upstream", "only for protocol HTTP");
        return UpstreamConfig::default();
    }
    let tls = spec.tls.as_ref().and_then(|t| check_tls(ctx, t, ca));
    let protocol = match spec.protocol.unwrap_or_default() {
        api::UpstreamProtocol::Http1 => UpstreamProtocol::Http1,
        api::UpstreamProtocol::Http2 => UpstreamProtocol::Http2,
        api::UpstreamProtocol::Auto if spec.tls.is_none() => {
            ctx.error(
                "spec.upstream.protocol",
                "auto is negotiated by ALPN and needs upstream.tls (choose HTTP1 or HTTP2 for plain-text backends)",
            );
            UpstreamProtocol::Http1
        }
        api::UpstreamProtocol::Auto => UpstreamProtocol::Auto,
    };
    UpstreamConfig { protocol, tls }
}

fn check_tls(
    ctx: &mut Ctx<'_>,
    spec: &api::UpstreamTlsSpec,
    ca: CaLookup<'_>,
) -> Option<UpstreamTls> {
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let (secret, file) = (given(&spec.ca_secret_name), given(&spec.ca_file));
    let mut ok = true;
    let server_name = given(&spec.server_name);
    if let Some(name) = &server_name
        && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        ctx.error(
            "spec.upstream.tls.serverName",
            format!("{name:?} is not a DNS name or an IP address"),
        );
        ok = false;
    }
    let trust = if spec.insecure_skip_verify == Some(true) {
        if secret.is_some() || file.is_some() {
            ctx.error(
                "spec.upstream.tls.insecureSkipVerify",
                "verifies nothing: leave out caSecretName and caFile",
            );
            ok = false;
        }
        UpstreamTrust::InsecureSkipVerify
    } else {
        match (secret, file) {
            (Some(_), Some(_)) => {
                ctx.error(
                    "spec.upstream.tls",
                    "set caSecretName (Kubernetes mode) or caFile (standalone mode), not both",
                );
                return None;
            }
            (None, None) => UpstreamTrust::System,
            (Some(_), None) if ctx.file_mode => {
                ctx.error(
                    "spec.upstream.tls.caSecretName",
                    "needs Kubernetes mode; standalone mode reads caFile",
                );
                return None;
            }
            (None, Some(_)) if !ctx.file_mode => {
                ctx.error(
                    "spec.upstream.tls.caFile",
                    "is for standalone mode; Kubernetes mode reads caSecretName",
                );
                return None;
            }
            (None, Some(file)) => UpstreamTrust::CaFile(match ctx.base_dir {
                Some(dir) => dir.join(file),
                None => file.into(),
            }),
            (Some(secret), None) => {
                if !names::is_dns_subdomain(&secret) {
                    ctx.error(
                        "spec.upstream.tls.caSecretName",
                        format!("{secret:?} is not a valid Secret name"),
                    );
                    return None;
                }
                let namespace = ctx.namespace.clone();
                match ca(&namespace, &secret) {
                    Ok(pem) => UpstreamTrust::CaPem(pem),
                    Err(problem) => {
                        ctx.error("spec.upstream.tls.caSecretName", problem);
                        return None;
                    }
                }
            }
        }
    };
    ok.then_some(UpstreamTls { server_name, trust })
}
