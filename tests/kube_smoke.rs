//! Smoke test of the real control-plane harness (`tests/support/kube.rs`): etcd and
//! kube-apiserver start, kubectl and helm of the matching version talk to them.
//!
//! Ignored by default; needs the binaries and the private network namespace: `hack/e2e.sh`.
//! The skip rule itself is checked here without them.

mod support {
    #[path = "kube.rs"]
    pub mod kube;
}

use support::kube::{KubeCluster, bins_or_skip_with};

const KUBE_VERSION: &str = "v1.36.3";

#[test]
fn missing_binaries_skip_unless_the_control_plane_is_required() {
    assert_eq!(bins_or_skip_with("t", None, false), None);
    let given = Some(std::path::PathBuf::from("/bins"));
    assert_eq!(bins_or_skip_with("t", given.clone(), true), given);
    let required = std::panic::catch_unwind(|| bins_or_skip_with("t", None, true));
    let message = required.expect_err("a required control plane must not skip");
    let message = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.contains("SLUICE_REQUIRE_KUBE=1"), "{message}");
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn api_server_answers_kubectl_and_stores_objects() {
    let Some(kube) = KubeCluster::start_or_skip("api_server_answers_kubectl_and_stores_objects")
    else {
        return;
    };

    let version = kube.kubectl_ok(&["version", "-o", "json"]);
    let version: serde_json::Value =
        serde_json::from_str(&version).expect("kubectl version prints JSON");
    assert_eq!(
        version["clientVersion"]["gitVersion"], KUBE_VERSION,
        "{version}"
    );
    assert_eq!(
        version["serverVersion"]["gitVersion"], KUBE_VERSION,
        "{version}"
    );
    assert_eq!(version["serverVersion"]["minor"], "36", "{version}");

    kube.kubectl_ok(&["create", "namespace", "x"]);
    kube.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: smoke\n  namespace: x\ndata:\n  greeting: hello\n",
    );
    let greeting = kube.kubectl_ok(&[
        "get",
        "configmap",
        "smoke",
        "-n",
        "x",
        "-o",
        "jsonpath={.data.greeting}",
    ]);
    assert_eq!(greeting, "hello");

    // The admin token is system:masters; RBAC is on.
    assert_eq!(
        kube.kubectl_ok(&["auth", "can-i", "*", "*", "--all-namespaces"])
            .trim(),
        "yes"
    );

    // TokenRequest works (the service-account key pair is wired), so RBAC tests can act as a
    // chart's ServiceAccount.
    kube.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "x"]);
    let token = kube.kubectl_ok(&["create", "token", "robot", "-n", "x", "--duration=10m"]);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    let whoami = kube.kubectl_ok(&[
        "auth",
        "whoami",
        "--token",
        token.trim(),
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(whoami, "system:serviceaccount:x:robot");

    // EndpointSlices with test-range addresses are accepted (loopback ones are not).
    let ns = kube.new_namespace("slices");
    kube.apply(&format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  namespace: {ns}\n  labels:\n    \
         kubernetes.io/service-name: web\n    endpointslice.kubernetes.io/managed-by: e2e.sluice.dev\n\
         addressType: IPv4\nports:\n- name: http\n  port: 8080\n  protocol: TCP\n\
         endpoints:\n- addresses: [\"198.18.0.2\"]\n  conditions: {{ready: true}}\n"
    ));
    let loopback = kube.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-2\n  namespace: {ns}\n\
             addressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n"
        )),
    );
    assert!(
        !loopback.status.success(),
        "a loopback endpoint address was accepted"
    );
    let why = String::from_utf8_lossy(&loopback.stderr);
    assert!(
        why.contains("loopback"),
        "rejected for another reason: {why}"
    );

    let readyz = kube.kubectl_ok(&["get", "--raw=/readyz?verbose"]);
    assert!(readyz.contains("readyz check passed"), "{readyz}");
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn helm_templates_for_kubernetes_1_36_and_installs_a_chart() {
    let Some(kube) =
        KubeCluster::start_or_skip("helm_templates_for_kubernetes_1_36_and_installs_a_chart")
    else {
        return;
    };
    let version = kube.helm(&["version", "--short"]);
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(version.starts_with('v'), "helm version: {version}");
    eprintln!("helm {}", version.trim());

    let chart = kube.dir.path().join("smoke-chart");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: smoke\nversion: 0.1.0\nkubeVersion: \">=1.30.0-0\"\n",
    )
    .expect("Chart.yaml");
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-info\ndata:\n  \
         kube: \"{{ .Capabilities.KubeVersion.Minor }}\"\n",
    )
    .expect("configmap template");
    let chart = chart.display().to_string();

    // Offline rendering uses the built-in Kubernetes version, pinned to 1.36 at build time.
    let rendered = kube.helm(&["template", "demo", &chart]);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.contains("name: demo-info"), "{rendered}");
    assert!(
        rendered.contains("kube: \"36\""),
        "helm template assumed another Kubernetes: {rendered}"
    );

    let ns = kube.new_namespace("helm");
    let install = kube.helm(&["install", "demo", &chart, "-n", &ns]);
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let kube_minor = kube.kubectl_ok(&[
        "get",
        "configmap",
        "demo-info",
        "-n",
        &ns,
        "-o",
        "jsonpath={.data.kube}",
    ]);
    assert_eq!(kube_minor, "36");
}
