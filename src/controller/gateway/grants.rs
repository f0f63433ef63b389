//! ReferenceGrants: which cross-namespace references (a route to a Service, a Gateway to
//! a Secret) the referent's namespace allows.

use std::sync::Arc;

use kube::ResourceExt;

use super::types::{GROUP, ReferenceGrant};

/// The ReferenceGrants of the cluster, for lookups.
#[derive(Debug, Default)]
pub struct Grants(Vec<Arc<ReferenceGrant>>);

impl Grants {
    /// Wraps the watched grants.
    pub fn new(grants: Vec<Arc<ReferenceGrant>>) -> Grants {
        Grants(grants)
    }

    /// Whether a `from_kind` (a Gateway API kind) in `from_ns` may refer to the
    /// `to_kind` (group `to_group`) named `to_name` in `to_ns`.
    pub fn permits(
        &self,
        from_kind: &str,
        from_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_ns: &str,
        to_name: &str,
    ) -> bool {
        self.0
            .iter()
            .filter(|g| g.namespace().as_deref() == Some(to_ns))
            .any(|g| {
                let from = g
                    .spec
                    .from
                    .iter()
                    .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns);
                let to = g.spec.to.iter().any(|t| {
                    t.group == to_group
                        && t.kind == to_kind
                        && t.name
                            .as_deref()
                            .is_none_or(|n| n.is_empty() || n == to_name)
                });
                from && to
            })
    }
}
