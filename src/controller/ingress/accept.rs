//! Which Ingresses are served: ours, oldest first, with their annotations read and the
//! Secrets and settings those annotations name resolved; the refused ones are recorded.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;

use super::annotations;
use super::{Accepted, IngressObjects, IngressSettings, Translation, ingress_name, is_ours};
use crate::config::{BasicAuthConfig, CredentialSource, Htpasswd};

/// Ingresses of ours, oldest first, with their annotations read; the refused ones are
/// recorded in `out`.
pub(super) fn accept<'a>(
    objects: &'a IngressObjects,
    settings: &IngressSettings,
    out: &mut Translation,
) -> Vec<Accepted<'a>> {
    let mut mine: Vec<&Ingress> = objects
        .ingresses
        .iter()
        .map(Arc::as_ref)
        .filter(|i| is_ours(i, &objects.classes, settings))
        .collect();
    mine.sort_by_key(|i| (i.creation_timestamp().map(|t| t.0), ingress_name(i)));
    let mut accepted = Vec::new();
    for ingress in mine {
        let name = ingress_name(ingress);
        out.ours.insert(name.clone());
        let parsed = annotations::parse(ingress.annotations());
        for (key, why) in parsed.unsupported {
            out.problem(
                &name,
                "UnsupportedAnnotation",
                format!("annotation {key}: {why}"),
            );
        }
        for warning in parsed.warnings {
            out.problem(&name, "AnnotationIgnored", warning);
        }
        let Some(annotations) = parsed.annotations else {
            for why in parsed.refusals {
                out.problem(&name, "Refused", why);
            }
            out.refused.insert(name);
            continue;
        };
        let ns = ingress.namespace().unwrap_or_else(|| "default".to_owned());
        let basic_auth = match &annotations.basic_auth {
            None => None,
            Some(req) => match basic_auth(req, &ns, &objects.secrets) {
                Ok(auth) => Some(Arc::new(auth)),
                Err(why) => {
                    out.problem(
                        &name,
                        "Refused",
                        format!("annotation {}auth-secret: {why}", annotations::PREFIX),
                    );
                    out.refused.insert(name);
                    continue;
                }
            },
        };
        accepted.push(Accepted {
            ingress,
            ns,
            name,
            annotations,
            basic_auth,
        });
    }
    accepted
}

/// The users of `auth-secret` (key `auth`, htpasswd), as a route filter.
fn basic_auth(
    req: &annotations::BasicAuth,
    ns: &str,
    secrets: &[Arc<Secret>],
) -> Result<BasicAuthConfig, String> {
    let (secret_ns, secret) = req.secret.split_once('/').unwrap_or((ns, &req.secret));
    let found = secrets
        .iter()
        .find(|s| s.namespace().as_deref() == Some(secret_ns) && s.name_any() == secret);
    let bytes =
        crate::controller::index::htpasswd_from_secret(found.map(Arc::as_ref), secret_ns, secret)?;
    let users = Htpasswd::parse(&bytes)?;
    let challenge = http::HeaderValue::from_str(&format!("Basic realm=\"{}\"", req.realm))
        .map_err(|_| "the realm is not a header value".to_owned())?;
    Ok(BasicAuthConfig {
        challenge,
        users: Arc::new(users),
        source: CredentialSource::Secret(format!("{secret_ns}/{secret}")),
        // ingress-nginx passes the header on to the backend.
        forward_authorization: true,
    })
}
