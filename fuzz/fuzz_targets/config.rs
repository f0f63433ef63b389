//! The standalone config loader: YAML text -> `BackendPool` documents
//! (`config::parse_documents`) -> the validated model (`config::validate`).
//!
//! Invariants:
//! - neither step panics, and every error message names the file;
//! - a refused set, minus the pools its errors name, validates (in both modes): the
//!   controller relies on this to serve the rest (`ValidationError::pool`);
//! - an accepted set, its documents re-serialized to YAML and loaded again, gives the same
//!   pools and the same model; through JSON (what the API server stores) the specs survive
//!   too, so the controller would see what the file says.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::api::BackendPool;
use sluice::fuzzing::{Source, ValidationErrors, parse_documents, validate};

const FILE: &str = "fuzz.yaml";

fn assert_named(errors: &ValidationErrors) {
    assert!(!errors.0.is_empty());
    for e in &errors.0 {
        assert!(e.message.starts_with("fuzz.yaml: "), "{:?}", e.message);
    }
}

/// The pool name errors use (`namespace/name`; unnamed pools get a stand-in with `index`).
fn pool_name(pool: &BackendPool, index: usize) -> String {
    let ns = pool.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    match pool.metadata.name.as_deref().unwrap_or_default() {
        "" => format!("{ns}/#{} (no metadata.name)", index + 1),
        name => format!("{ns}/{name}"),
    }
}

/// Refused pools out, the rest must validate.
fn rest_validates(source: &Source, pools: &[BackendPool], errors: &ValidationErrors) {
    let named: Vec<&str> = errors.0.iter().filter_map(|e| e.pool.as_deref()).collect();
    if named.len() < errors.0.len() {
        return; // An error no pool owns: nothing can be isolated.
    }
    let rest: Vec<BackendPool> = pools
        .iter()
        .enumerate()
        .filter(|(i, p)| !named.contains(&pool_name(p, *i).as_str()))
        .map(|(_, p)| p.clone())
        .collect();
    if let Err(again) = validate(source, &rest) {
        panic!("the pools no error names are refused:\n{again}\n(first pass:\n{errors})");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pools = match parse_documents(FILE, text) {
        Ok(pools) => pools,
        Err(errors) => return assert_named(&errors),
    };
    let source = Source::File(FILE.to_owned());
    let set = match validate(&source, &pools) {
        Ok(set) => set,
        Err(errors) => {
            assert_named(&errors);
            rest_validates(&source, &pools, &errors);
            if let Err(errors) = validate(&Source::Kubernetes, &pools) {
                rest_validates(&Source::Kubernetes, &pools, &errors);
            }
            return;
        }
    };

    let mut yaml = String::new();
    for pool in &pools {
        yaml.push_str("---\n");
        yaml.push_str(&serde_norway::to_string(pool).expect("a BackendPool serializes"));
    }
    let again = match parse_documents(FILE, &yaml) {
        Ok(again) => again,
        Err(errors) => panic!("re-serialized documents refused:\n{errors}\n---\n{yaml}"),
    };
    assert_eq!(again.len(), pools.len());
    for (a, b) in pools.iter().zip(&again) {
        assert_eq!(a.spec, b.spec, "\n{yaml}");
        assert_eq!(a.metadata.name, b.metadata.name);
        assert_eq!(a.metadata.namespace, b.metadata.namespace);
    }
    assert_eq!(validate(&source, &again).as_ref(), Ok(&set), "\n{yaml}");

    for pool in &pools {
        let json = serde_json::to_value(pool).expect("a BackendPool serializes");
        let back: BackendPool = serde_json::from_value(json).expect("and deserializes");
        assert_eq!(back.spec, pool.spec);
    }
});
