//! Loading `BackendPool` documents from a standalone YAML file.
//!
//! Owns reading the file, splitting it into `---` documents and turning each into a typed
//! [`BackendPool`], reporting every bad document (by index, `namespace/name` and field path)
//! rather than the first. It must not apply defaults or rules: that is [`validate`]'s job,
//! shared with the controller.

use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;

use super::validate::{Source, ValidationError, ValidationErrors, validate};
use super::{ConfigSet, Positions, TlsConfig};
use crate::api::BackendPool;

/// The `apiVersion` every document must carry.
const API_VERSION: &str = "sluice.dev/v1alpha1";
/// The `kind` every document must carry.
const KIND: &str = "BackendPool";

/// Why a file could not become a `ConfigSet`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// One or more documents are invalid; every error found, one per line.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// Parses every `---`-separated document of `text` into a [`BackendPool`].
///
/// `file` names the source in errors. Empty documents are skipped. A missing
/// `metadata.namespace` becomes `default`. Each bad document yields one error, e.g.
/// `pools.yaml: document 2 (default/web): spec.algorithm: unknown variant "Fastest", ...`,
/// and parsing goes on with the next one; a YAML syntax error ends parsing, since the rest
/// of the stream cannot be trusted.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<BackendPool>, ValidationErrors> {
    let (pools, errors, _) = parse_all(file, text, Documents::BackendPoolsOnly);
    if errors.is_empty() {
        Ok(pools)
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Reads, parses and validates `path` ([`Source::File`] rules, relative `certFile`/`keyFile`
/// resolved against the file's directory), and checks that TLS files exist.
///
/// Every error is reported at once: the documents that parse are validated even when
/// others do not.
pub fn load_file(path: &Path) -> Result<ConfigSet, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: file.clone(),
        source,
    })?;
    load_text(&file, &text)
}

/// Parses and validates `text` as if read from the file named `file` (relative
/// `certFile`/`keyFile` paths resolve against its directory: the working directory for a
/// bare name such as `<stdin>`).
pub fn load_text(file: &str, text: &str) -> Result<ConfigSet, LoadError> {
    let file = file.to_owned();
    let (pools, mut errors, _) = parse_all(&file, text, Documents::BackendPoolsOnly);
    match validate(&Source::File(file.clone()), &pools) {
        Ok(mut set) if errors.is_empty() => {
            read_htpasswd_files(&file, &mut set, &mut errors);
            check_tls_files(&file, &set, &mut errors);
            check_ca_files(&file, &set, &mut errors);
            if errors.is_empty() {
                return Ok(set);
            }
        }
        Ok(_) => {}
        Err(invalid) => errors.extend(invalid.0),
    }
    place(&file, text, &mut errors);
    Err(LoadError::Invalid(ValidationErrors(errors)))
}

/// Gives every error about a field its line and column: `FILE:LINE:COL: ...`.
fn place(file: &str, text: &str, errors: &mut [ValidationError]) {
    let positions = Positions::of(text);
    let prefix = format!("{file}: ");
    for e in errors.iter_mut() {
        let (Some(pool), Some(field)) = (&e.pool, &e.field) else {
            continue;
        };
        let Some(at) = positions.field(pool, field) else {
            continue;
        };
        if let Some(rest) = e.message.strip_prefix(&prefix) {
            e.message = format!("{file}:{}:{}: {rest}", at.line, at.column);
        }
        e.location = Some(at);
    }
}

/// What the file may hold besides BackendPools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Documents {
    /// A `sluice serve` file: every document is a BackendPool.
    BackendPoolsOnly,
    /// Kubernetes manifests: objects of other kinds are passed over (and counted).
    Manifests,
}

/// A file of Kubernetes manifests checked as the API server and the controller would take
/// its BackendPools (`sluice check --kubernetes`).
#[derive(Debug)]
pub struct ManifestCheck {
    /// The BackendPools, validated with the Kubernetes rules.
    pub set: ConfigSet,
    /// Objects of other kinds, not checked.
    pub others: usize,
}

/// Validates the BackendPools among the Kubernetes manifests in `text` with the rules the
/// controller applies (Services and Secrets are not looked up: there is no cluster);
/// objects of other kinds are counted, not checked.
pub fn check_manifests(file: &str, text: &str) -> Result<ManifestCheck, LoadError> {
    let (pools, mut errors, others) = parse_all(file, text, Documents::Manifests);
    match validate(&Source::Kubernetes, &pools) {
        Ok(set) if errors.is_empty() => return Ok(ManifestCheck { set, others }),
        Ok(_) => {}
        Err(invalid) => errors.extend(invalid.0.into_iter().map(|mut e| {
            e.message = format!("{file}: {}", e.message);
            e
        })),
    }
    place(file, text, &mut errors);
    Err(LoadError::Invalid(ValidationErrors(errors)))
}

/// Parses what it can: the good documents, an error per bad one, and how many documents
/// of other kinds `documents` let pass.
fn parse_all(
    file: &str,
    text: &str,
    documents: Documents,
) -> (Vec<BackendPool>, Vec<ValidationError>, usize) {
    let mut pools = Vec::new();
    let mut errors = Vec::new();
    let mut others = 0;
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        // An untyped pass first: it survives any well-formed YAML, so the document's name
        // is known for the typed errors below.
        let mut value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(e) => {
                errors.push(ValidationError {
                    message: format!("{file}: document {index}: {e}"),
                    pool: None,
                    field: None,
                    conflict: false,
                    location: None,
                });
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let doc = Document::new(file, index, &value);
        // `<<: *defaults` merge keys, so pools can share blocks through anchors.
        if let Err(e) = value.apply_merge() {
            errors.push(doc.error(None, e.to_string()));
            continue;
        }
        if !value.is_mapping() {
            errors.push(doc.error(None, "expected a BackendPool (a YAML mapping)".to_owned()));
            continue;
        }
        if documents == Documents::Manifests && !is_backend_pool(&value) {
            others += 1;
            continue;
        }
        let mut header_ok = true;
        for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            match value.get(field) {
                Some(Value::String(s)) if s == expected => {}
                None => {
                    errors.push(doc.error(Some(field), format!("required ({expected})")));
                    header_ok = false;
                }
                Some(other) => {
                    let found = serde_norway::to_string(other).unwrap_or_default();
                    errors.push(doc.error(
                        Some(field),
                        format!("expected {expected}, found {}", found.trim_end()),
                    ));
                    header_ok = false;
                }
            }
        }
        if !header_ok {
            continue;
        }
        if let Some(mut pool) = typed(&doc, value, &mut errors) {
            if pool.metadata.namespace.as_deref().is_none_or(str::is_empty) {
                pool.metadata.namespace = Some("default".to_owned());
            }
            pools.push(pool);
        }
    }
    (pools, errors, others)
}

/// Whether a manifest is a BackendPool (of any version: a wrong version is then an error).
fn is_backend_pool(value: &Value) -> bool {
    let group = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map(|(group, _)| group);
    value.get("kind").and_then(Value::as_str) == Some(KIND) && group == Some("sluice.dev")
}

/// Most type errors reported for one document.
const MAX_TYPE_ERRORS: usize = 50;

/// The typed pool of one document, reporting **every** type error (unknown field, unknown
/// enum value, wrong type), not only serde's first: each offending field is reported, then
/// removed from the document and the rest deserialized again. A pool whose only faults were
/// optional fields comes back (repaired), so the semantic rules still run on the rest of it;
/// the file is refused either way, since errors were recorded.
fn typed(
    doc: &Document,
    mut value: Value,
    errors: &mut Vec<ValidationError>,
) -> Option<BackendPool> {
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let e = match serde_path_to_error::deserialize::<_, BackendPool>(value.clone()) {
            Ok(pool) => return Some(pool),
            Err(e) => e,
        };
        let mut problem = e.inner().to_string().replace('`', "\"");
        if let Some(hint) = did_you_mean(&problem) {
            problem.push_str(&hint);
        }
        if removed
            .iter()
            .any(|leaf| problem == format!("missing field \"{leaf}\""))
        {
            // A required field this loop removed itself: already reported.
            return None;
        }
        let path = e.path().to_string();
        let field = (path != ".").then_some(path.as_str());
        errors.push(doc.error(field, problem));
        let steps = steps(e.path())?;
        if !remove(&mut value, &steps) {
            return None;
        }
        if let Some(Step::Key(leaf)) = steps.last() {
            removed.push(leaf.clone());
        }
    }
    None
}

/// For an unknown field or enum value, the closest expected name: serde names the unknown
/// one and lists the expected ones (`unknown field "hostz", expected one of "port", ...`).
fn did_you_mean(problem: &str) -> Option<String> {
    let rest = problem
        .strip_prefix("unknown field ")
        .or_else(|| problem.strip_prefix("unknown variant "))?;
    let mut quoted = rest.split('"').skip(1).step_by(2);
    let unknown = quoted.next()?;
    let (best, score) = quoted
        .map(|candidate| (candidate, strsim::jaro_winkler(unknown, candidate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (score >= 0.8).then(|| format!(" (did you mean \"{best}\"?)"))
}

/// One step of a path into a document.
#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// The path as steps, or `None` when it passes through an enum variant or an unknown
/// segment.
fn steps(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    path.iter()
        .map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

/// Removes the mapping field at `path` from `value`; `false` when there is none, or when
/// the path ends at a list entry (removing it would shift the indices later errors name).
fn remove(value: &mut Value, path: &[Step]) -> bool {
    let Some((Step::Key(leaf), parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for step in parents {
        let child = match step {
            Step::Key(key) => node.get_mut(key.as_str()),
            Step::Index(i) => node.get_mut(*i),
        };
        match child {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.as_mapping_mut()
        .and_then(|m| m.remove(leaf.as_str()))
        .is_some()
}

/// How errors name one document: `pools.yaml: document 2 (default/web)`.
struct Document {
    label: String,
    pool: Option<String>,
}

impl Document {
    fn new(file: &str, index: usize, value: &Value) -> Self {
        let meta = value.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default");
        let pool = name.map(|n| format!("{namespace}/{n}"));
        let label = match &pool {
            Some(p) => format!("{file}: document {index} ({p})"),
            None => format!("{file}: document {index}"),
        };
        Document { label, pool }
    }

    fn error(&self, field: Option<&str>, problem: String) -> ValidationError {
        let message = match field {
            Some(f) => format!("{}: {f}: {problem}", self.label),
            None => format!("{}: {problem}", self.label),
        };
        ValidationError {
            message,
            pool: self.pool.clone(),
            field: field.map(str::to_owned),
            conflict: false,
            location: None,
        }
    }
}

/// `sluice check` should catch a certificate path typo, an unreadable file or a key that
/// does not belong to its certificate before `serve` does.
fn check_tls_files(file: &str, set: &ConfigSet, errors: &mut Vec<ValidationError>) {
    for pool in &set.pools {
        let Some(TlsConfig::Files { cert, key }) = &pool.listener.tls else {
            continue;
        };
        let mut unreadable = false;
        for (field, path) in [
            ("spec.listener.tls.certFile", cert),
            ("spec.listener.tls.keyFile", key),
        ] {
            let problem = match std::fs::metadata(path) {
                Ok(m) if m.is_file() => continue,
                Ok(_) => "not a file".to_owned(),
                Err(e) => e.to_string(),
            };
            unreadable = true;
            errors.push(ValidationError {
                message: format!(
                    "{file}: pool {}: {field}: cannot read {}: {problem}",
                    pool.name,
                    path.display()
                ),
                pool: Some(pool.name.clone()),
                field: Some(field.to_owned()),
                conflict: false,
                location: None,
            });
        }
        if !unreadable && let Err(problem) = super::tls::load_files(cert, key) {
            errors.push(ValidationError {
                message: format!("{file}: pool {}: spec.listener.tls: {problem}", pool.name),
                pool: Some(pool.name.clone()),
                field: Some("spec.listener.tls".to_owned()),
                conflict: false,
                location: None,
            });
        }
    }
}

/// `sluice check` should catch an unreadable `upstream.tls.caFile`, or one holding no
/// certificate, before `serve` meets it at the first request.
fn check_ca_files(file: &str, set: &ConfigSet, errors: &mut Vec<ValidationError>) {
    for pool in &set.pools {
        let Some(tls) = &pool.upstream.tls else {
            continue;
        };
        if !matches!(tls.trust, super::UpstreamTrust::CaFile(_)) {
            continue;
        }
        if let Err(problem) = super::client_config(tls, &[]) {
            let field = "spec.upstream.tls.caFile";
            errors.push(ValidationError {
                message: format!("{file}: pool {}: {field}: {problem}", pool.name),
                pool: Some(pool.name.clone()),
                field: Some(field.to_owned()),
                conflict: false,
                location: None,
            });
        }
    }
}

/// Reads and parses every `basicAuth.file` into the pools' and routes' filters (validation
/// leaves the list empty: it does no I/O), so `sluice check` catches an unreadable or
/// malformed list and a reload picks up a changed one. Each file is read once.
fn read_htpasswd_files(file: &str, set: &mut ConfigSet, errors: &mut Vec<ValidationError>) {
    use std::collections::HashMap;
    use std::sync::Arc;
    let mut read: HashMap<std::path::PathBuf, Result<Arc<super::Htpasswd>, String>> =
        HashMap::new();
    let mut list = |path: &std::path::PathBuf| {
        read.entry(path.clone())
            .or_insert_with(|| {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                super::Htpasswd::parse(&bytes)
                    .map(Arc::new)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .clone()
    };
    let filled = |filters: &super::RouteFilters,
                  list: &mut dyn FnMut(
        &std::path::PathBuf,
    ) -> Result<Arc<super::Htpasswd>, String>| {
        let auth = filters.basic_auth.as_ref()?;
        let super::CredentialSource::File(path) = &auth.source else {
            return None;
        };
        Some(list(path).map(|users| super::RouteFilters {
            basic_auth: Some(Arc::new(super::BasicAuthConfig {
                users,
                ..(**auth).clone()
            })),
            ..filters.clone()
        }))
    };
    for pool in &mut set.pools {
        match filled(&pool.filters, &mut list) {
            None => {}
            Some(Ok(filters)) => Arc::make_mut(pool).filters = filters,
            Some(Err(problem)) => {
                let field = "spec.basicAuth.file";
                errors.push(ValidationError {
                    message: format!("{file}: pool {}: {field}: {problem}", pool.name),
                    pool: Some(pool.name.clone()),
                    field: Some(field.to_owned()),
                    conflict: false,
                    location: None,
                });
            }
        }
    }
    for route in &mut set.routes {
        if let Some(Ok(filters)) = filled(&route.filters, &mut list) {
            Arc::make_mut(route).filters = Arc::new(filters);
        }
    }
}

#[cfg(test)]
mod tests;
