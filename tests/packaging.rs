//! The packaging stays in step with the code: the chart's CRD is `crds/backendpool.yaml` byte
//! for byte, `manifests/sluice.yaml` is the chart rendered with defaults, and what it installs is
//! hardened and least-privilege.
//!
//! The checks here need nothing but the files. With `SLUICE_KUBE_BINS` set (see
//! `hack/kube-bins.sh`), the drift check renders the chart with the real helm; and the ignored
//! test runs `hack/check-packaging.sh cluster` against a real kube-apiserver:
//!
//! ```text
//! hack/check-packaging.sh        # all of it, as CI does; or by hand:
//! export SLUICE_KUBE_BINS="$(hack/kube-bins.sh --print-dir)"
//! cargo test --locked --test packaging --no-run
//! hack/in-netns.sh cargo test --offline --locked --test packaging -- --include-ignored
//! ```
//!
//! Regenerate the derived files with `hack/render-manifests.sh`.

mod support {
    #[path = "kube.rs"]
    pub mod kube;
}

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_norway::Value;
use support::kube::KubeCluster;

/// Run `sluice controller` (this crate's binary) with the chart's ServiceAccount token in the
/// API-server test, through the `SLUICE_BIN` hook of `hack/check-packaging.sh`: proves the
/// chart's RBAC is enough for the controller (no `forbidden`).
const RUN_CONTROLLER_WITH_CHART_TOKEN: bool = true;

/// Bound for the whole `hack/check-packaging.sh cluster` run.
const CLUSTER_CHECKS_TIMEOUT: Duration = Duration::from_secs(15 * 60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of `manifests/sluice.yaml`, by kind and name.
fn manifest_objects() -> Vec<Value> {
    let text = read("manifests/sluice.yaml");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("manifests/sluice.yaml is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("manifests/sluice.yaml has no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A rule as `apiGroup resources resourceNames: verbs`, for readable comparisons.
fn rule_lines(role: &Value) -> Vec<String> {
    role["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .map(|r| {
            format!(
                "{} {} [{}]: {}",
                strings(&r["apiGroups"]).join(","),
                strings(&r["resources"]).join(","),
                strings(&r["resourceNames"]).join(","),
                strings(&r["verbs"]).join(",")
            )
        })
        .collect()
}

#[test]
fn chart_crd_is_a_byte_for_byte_copy_of_crds_backendpool_yaml() {
    let crd = std::fs::read(repo().join("crds/backendpool.yaml")).expect("crds/backendpool.yaml");
    let chart =
        std::fs::read(repo().join("charts/sluice/crds/backendpool.yaml")).unwrap_or_default();
    assert!(
        chart == crd,
        "charts/sluice/crds/backendpool.yaml differs from crds/backendpool.yaml; run hack/render-manifests.sh"
    );
}

#[test]
fn manifests_carry_the_current_crd_verbatim() {
    let crd = read("crds/backendpool.yaml");
    assert!(
        read("manifests/sluice.yaml").contains(&crd),
        "manifests/sluice.yaml does not carry crds/backendpool.yaml; run hack/render-manifests.sh"
    );
}

#[test]
fn manifests_equal_the_chart_rendered_with_defaults() {
    let Some(bins) = KubeCluster::bins_or_skip("manifests_equal_the_chart_rendered_with_defaults")
    else {
        return;
    };
    let out = Command::new(repo().join("hack/render-manifests.sh"))
        .arg("--check")
        .env("HELM", bins.join("helm"))
        .output()
        .expect("hack/render-manifests.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's PrometheusRule and dashboard ConfigMap carry `alerts/sluice.rules.yaml` and
/// `dashboards/sluice-backendpool.json` unchanged: one copy of each, the one
/// `tests/prometheus.rs` checks against Prometheus itself.
#[test]
fn chart_monitoring_objects_carry_the_rule_file_and_dashboard_verbatim() {
    let Some(bins) = KubeCluster::bins_from_env() else {
        eprintln!(
            "skipping the helm render: SLUICE_KUBE_BINS is not set (hack/check-packaging.sh runs it)"
        );
        return;
    };
    let home = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(bins.join("helm"))
        .args(["template", "mon", "charts/sluice", "-n", "monitoring"])
        .args(["--set", "metrics.prometheusRule.enabled=true"])
        .args(["--set", "metrics.dashboard.enabled=true"])
        .args(["--set", "metrics.dashboard.namespace=grafana"])
        .args(["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"])
        .current_dir(repo())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let objects: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("helm renders YAML"))
        .filter(|v| !v.is_null())
        .collect();

    let rule = object(&objects, "PrometheusRule", "mon-sluice");
    let rules: Value = serde_norway::from_str(&read("charts/sluice/alerts/sluice.rules.yaml"))
        .expect("the rule file is YAML");
    assert_eq!(rule["spec"], rules);

    let dashboard = object(&objects, "ConfigMap", "mon-sluice-dashboard");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = dashboard["data"]["sluice-backendpool.json"]
        .as_str()
        .expect("the dashboard JSON");
    let rendered: serde_json::Value = serde_json::from_str(data).expect("JSON");
    let file: serde_json::Value =
        serde_json::from_str(&read("charts/sluice/dashboards/sluice-backendpool.json"))
            .expect("the dashboard file is JSON");
    assert_eq!(rendered, file);
}

#[test]
fn chart_app_version_and_default_image_tag_are_the_crate_version() {
    let chart: Value =
        serde_norway::from_str(&read("charts/sluice/Chart.yaml")).expect("Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    let objects = manifest_objects();
    let deployment = object(&objects, "Deployment", "sluice");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image");
    assert_eq!(
        image,
        format!("ghcr.io/sluice-dev/sluice:{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn manifests_grant_exactly_the_verbs_sluice_uses() {
    let objects = manifest_objects();
    let watch = [
        "sluice.dev backendpools []: get,list,watch",
        "sluice.dev backendpools/status []: get,patch,update",
        "discovery.k8s.io endpointslices []: get,list,watch",
        " services []: get,list,watch",
        " secrets []: get,list,watch",
        "networking.k8s.io ingresses []: get,list,watch",
        "networking.k8s.io ingresses/status []: patch",
        "gateway.networking.k8s.io gateways,httproutes,grpcroutes,referencegrants []: get,list,watch",
        "gateway.networking.k8s.io gateways/status,httproutes/status,grpcroutes/status []: patch",
        "events.k8s.io events []: create,patch",
        " events []: create,patch",
    ];
    assert_eq!(rule_lines(object(&objects, "ClusterRole", "sluice")), watch);
    let lease = object(&objects, "Role", "sluice-leader-election");
    assert_eq!(lease["metadata"]["namespace"], "sluice-system");
    assert_eq!(
        rule_lines(lease),
        [
            "coordination.k8s.io leases []: create",
            "coordination.k8s.io leases [sluice]: get,update,patch",
        ]
    );
    assert_eq!(
        rule_lines(object(&objects, "ClusterRole", "sluice-ingressclasses")),
        [
            "networking.k8s.io ingressclasses []: get,list,watch",
            "gateway.networking.k8s.io gatewayclasses []: get,list,watch",
            "gateway.networking.k8s.io gatewayclasses/status []: patch",
            " namespaces []: get,list,watch",
        ]
    );
    for (kind, name) in [
        ("ClusterRoleBinding", "sluice"),
        ("ClusterRoleBinding", "sluice-ingressclasses"),
        ("RoleBinding", "sluice-leader-election"),
    ] {
        let subject = &object(&objects, kind, name)["subjects"][0];
        assert_eq!(subject["kind"], "ServiceAccount", "{kind} {name}");
        assert_eq!(subject["name"], "sluice", "{kind} {name}");
        assert_eq!(subject["namespace"], "sluice-system", "{kind} {name}");
    }
    let text = read("manifests/sluice.yaml");
    for wildcard in ["[\"*\"]", "['*']", "[*]", "- '*'", "- \"*\""] {
        assert!(
            !text.contains(wildcard),
            "a wildcard {wildcard} in the manifests"
        );
    }
}

#[test]
fn manifest_deployment_runs_two_hardened_replicas_with_leader_election() {
    let objects = manifest_objects();
    let deployment = object(&objects, "Deployment", "sluice");
    assert_eq!(deployment["metadata"]["namespace"], "sluice-system");
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sluice");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(
        pod["topologySpreadConstraints"]
            .as_sequence()
            .is_some_and(|c| !c.is_empty())
    );

    let c = &pod["containers"][0];
    let args = strings(&c["args"]);
    assert_eq!(args[0], "controller");
    for arg in [
        "--leader-elect",
        "--leader-namespace=sluice-system",
        "--controller-name=sluice",
        "--admin-listen=0.0.0.0:9090",
    ] {
        assert!(args.contains(&arg), "{arg} not in {args:?}");
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    let admin = c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("an admin port");
    assert_eq!(admin["containerPort"].as_u64(), Some(9090));
    for side in ["requests", "limits"] {
        assert!(
            c["resources"][side]["memory"].is_string(),
            "no memory {side}"
        );
    }

    let pdb = object(&objects, "PodDisruptionBudget", "sluice");
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
}

#[test]
fn manifest_service_maps_80_and_443_to_the_listener_ports() {
    let objects = manifest_objects();
    let deployment = object(&objects, "Deployment", "sluice");
    let container_port = |name: &str| {
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
    };
    let service = object(&objects, "Service", "sluice");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    let ports: Vec<(u64, u64)> = service["spec"]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| {
            let target = p["targetPort"].as_str().expect("a named targetPort");
            (
                p["port"].as_u64().expect("port"),
                container_port(target).expect("the named container port"),
            )
        })
        .collect();
    assert_eq!(ports, [(80, 8080), (443, 8443)]);
    let admin = object(&objects, "Service", "sluice-admin");
    assert_eq!(admin["spec"]["type"], "ClusterIP");
}

/// `hack/check-packaging.sh cluster` against a fresh etcd + kube-apiserver: server-side dry
/// runs, `helm install`, RBAC as the chart's ServiceAccount token, restricted Pod Security, and
/// (with `SLUICE_BIN`) the controller itself running on that token.
#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn chart_installs_with_least_privilege_on_a_real_api_server() {
    let Some(kube) =
        KubeCluster::start_or_skip("chart_installs_with_least_privilege_on_a_real_api_server")
    else {
        return;
    };
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("hack/check-packaging.sh"))
        .arg("cluster")
        .env("KUBECONFIG", &kube.kubeconfig)
        .env("SLUICE_KUBE_BINS", &kube.bins)
        .env("SLUICE_PACKAGING_THROWAWAY_CLUSTER", "1")
        .env("TMPDIR", kube.dir.path());
    if RUN_CONTROLLER_WITH_CHART_TOKEN {
        cmd.env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"));
    }
    // Output goes straight to the terminal, so progress shows while it runs.
    let mut child = cmd.spawn().expect("bash runs hack/check-packaging.sh");
    let deadline = SystemTime::now() + CLUSTER_CHECKS_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for hack/check-packaging.sh") {
            Some(status) => break status,
            None if SystemTime::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hack/check-packaging.sh cluster did not finish within {CLUSTER_CHECKS_TIMEOUT:?}"
                );
            }
            None => thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(
        status.success(),
        "hack/check-packaging.sh cluster failed ({status}); see its output above\n{}",
        kube.log_tail(20)
    );
}
