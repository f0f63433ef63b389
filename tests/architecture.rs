//! The data plane knows nothing of Kubernetes: `pool`, `balance`, `health`, `route`,
//! `proxy` and `policy` never import `kube`, `k8s_openapi`, `crate::api` or
//! `crate::controller`.

use std::path::{Path, PathBuf};

const DATA_PLANE: [&str; 6] = ["pool", "balance", "health", "route", "proxy", "policy"];
const FORBIDDEN: [&str; 5] = [
    "kube::",
    "k8s_openapi",
    "crate::api",
    "crate::controller",
    "use kube",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn data_plane_never_imports_kubernetes_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for module in DATA_PLANE {
        files.push(src.join(format!("{module}.rs")));
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
    }
    assert!(files.len() > 10, "data-plane sources not found: {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if FORBIDDEN.iter().any(|f| code.contains(f)) {
                offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the data plane imports Kubernetes types:\n{}",
        offences.join("\n")
    );
}
