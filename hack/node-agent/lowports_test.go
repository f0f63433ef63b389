package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// needRoot skips tests that create network namespaces or change capabilities.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"ip", "sysctl", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func unprivilegedPortStart(t *testing.T, netns ...string) string {
	t.Helper()
	args := append([]string{}, netns...)
	args = append(args, "sysctl", "-n", "net.ipv4.ip_unprivileged_port_start")
	var out []byte
	var err error
	if len(netns) > 0 {
		out, err = exec.Command("ip", append([]string{"netns", "exec"}, args...)...).CombinedOutput()
	} else {
		out, err = exec.Command(args[0], args[1:]...).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestPodNetworkNamespaceLetsUnprivilegedProcessesBindLowPorts(t *testing.T) {
	needRoot(t)
	ns := fmt.Sprintf("sluice-agent-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	before := unprivilegedPortStart(t)
	if got := unprivilegedPortStart(t, ns); got == "0" {
		t.Fatalf("a new namespace already has ip_unprivileged_port_start=0: the test would prove nothing")
	}
	if err := allowUnprivilegedPorts(ns); err != nil {
		t.Fatal(err)
	}
	if got := unprivilegedPortStart(t, ns); got != "0" {
		t.Fatalf("pod namespace: ip_unprivileged_port_start=%s, want 0", got)
	}
	if got := unprivilegedPortStart(t); got != before {
		t.Fatalf("the agent's own namespace changed: %s -> %s", before, got)
	}
	// nobody, with every capability dropped, binds port 80 there.
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no python3 to bind a port as nobody")
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", "/usr/bin/python3", "-c",
		"import socket; s=socket.socket(); s.bind(('127.0.0.1', 80)); print('bound')").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bound") {
		t.Fatalf("nobody could not bind port 80 in the pod namespace: %v: %s", err, out)
	}
}

// capEff: the effective capability mask of `setpriv FLAGS cat /proc/self/status`.
func capEff(t *testing.T, flags []string) uint64 {
	t.Helper()
	args := append(append([]string{}, flags...), "--", "cat", "/proc/self/status")
	out, err := exec.Command("setpriv", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("setpriv %v: %v: %s", flags, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no CapEff in %s", out)
	return 0
}

func TestAddedNetBindServiceIsTheOnlyCapabilityLeftAfterDropAll(t *testing.T) {
	needRoot(t)
	const netBindService = 1 << 10
	caps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}
	nobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	for _, tc := range []struct {
		name string
		who  []string
		caps *corev1.Capabilities
		want uint64
	}{
		{"root, drop ALL, add NET_BIND_SERVICE", nil, caps, netBindService},
		{"nobody, drop ALL, add NET_BIND_SERVICE (ambient)", nobody, caps, netBindService},
		{"nobody, drop ALL", nobody, &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, 0},
		{"root, drop ALL", nil, &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags := append(append([]string{}, tc.who...), capabilityFlags(tc.caps, tc.who != nil)...)
			if got := capEff(t, flags); got != tc.want {
				t.Fatalf("CapEff %#x, want %#x (flags %v)", got, tc.want, flags)
			}
		})
	}
}
