package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func testConfig() config {
	return config{images: imageFlag{"sluice": "/images/sluice", "sluice-echo": "/images/sluice-echo"}}
}

func TestValidateAcceptsWhatTheChartAndTheTestsUse(t *testing.T) {
	uid, yes, no := int64(65532), true, false
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid},
		Volumes: []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			},
		}}}},
		Containers: []corev1.Container{{
			Name:           "sluice",
			Image:          "ghcr.io/sluice-dev/sluice:0.1.0",
			Args:           []string{"controller"},
			Env:            []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			VolumeMounts:   []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz"}}},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}},
			Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}}
	if p := validate(pod, testConfig()); len(p) > 0 {
		t.Fatalf("refused: %v", p)
	}
}

func TestValidateNamesEveryFieldItDoesNotImplement(t *testing.T) {
	yes := true
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		HostNetwork:           true,
		ShareProcessNamespace: &yes,
		InitContainers:        []corev1.Container{{Name: "init", Image: "sluice-echo"}},
		Volumes:               []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		Containers: []corev1.Container{
			{
				Name:           "echo",
				Image:          "example.invalid/sluice-echo:1",
				Command:        []string{"/bin/sh"},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
				Lifecycle:      &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}},
				SecurityContext: &corev1.SecurityContext{
					Privileged:   &yes,
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}},
				},
				Stdin: true,
			},
			{Name: "web", Image: "example.invalid/nginx:1"},
		},
	}}
	got := strings.Join(validate(pod, testConfig()), "\n")
	for _, want := range []string{
		"hostNetwork", "shareProcessNamespace", "initContainers",
		"volume host: only emptyDir, configMap, secret, downwardAPI and projected volumes",
		`container echo: command "/bin/sh"`, "container echo: readinessProbe: only httpGet and tcpSocket probes",
		"container echo: postStart hook", "container echo: privileged", "container echo: capabilities.add NET_ADMIN: only NET_BIND_SERVICE",
		"container echo: stdin/tty", `container web: image "example.invalid/nginx:1": no local binary for "nginx"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

// The pod templates of the Gateway API conformance suite's base manifests (v1.6.3,
// conformance/base/manifests.yaml): echo-basic with a Secret volume and items, and CoreDNS
// with a ConfigMap volume and NET_BIND_SERVICE added.
func TestValidateAcceptsTheGatewayConformanceBackends(t *testing.T) {
	no := false
	mode := int32(420)
	cfg := config{images: imageFlag{"echo-basic": "/images/echo-basic", "coredns": "/images/coredns"}}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "secret-volume", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "tls-passthrough-checks-certificate",
				Items:      []corev1.KeyToPath{{Key: "tls.crt", Path: "crt"}, {Key: "tls.key", Path: "key"}},
			}}},
			{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"}, DefaultMode: &mode,
			}}},
		},
		Containers: []corev1.Container{
			{
				Name:            "tcp-backend",
				Image:           "registry.k8s.io/gateway-api/echo-basic:v1.5.1",
				ImagePullPolicy: corev1.PullIfNotPresent,
				Env: []corev1.EnvVar{
					fieldEnv("POD_NAME", "metadata.name"), fieldEnv("NAMESPACE", "metadata.namespace"),
					{Name: "TLS_SERVER_CERT", Value: "/etc/secret-volume/crt"}, {Name: "TCP_ECHO_SERVER", Value: "1"},
				},
				Ports:        []corev1.ContainerPort{{ContainerPort: 3000, Protocol: corev1.ProtocolTCP}},
				VolumeMounts: []corev1.VolumeMount{{Name: "secret-volume", MountPath: "/etc/secret-volume"}},
			},
			{
				Name:         "coredns",
				Image:        "registry.k8s.io/coredns/coredns:v1.12.2",
				Args:         []string{"-conf", "/root/Corefile"},
				VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/root"}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}},
				},
			},
		},
	}}
	if p := validate(pod, cfg); len(p) > 0 {
		t.Fatalf("refused: %v", p)
	}
}
