package main

// What the agent refuses. Every pod field that would change what a process sees, and that the
// agent does not implement, is listed here, so a pod never runs with a field silently ignored
// (README.md lists what is honoured and what is accepted but not enforced).

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

func validate(pod *corev1.Pod, cfg config) []string {
	var p []string
	s := &pod.Spec
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if len(s.InitContainers) > 0 {
		bad("initContainers")
	}
	if len(s.EphemeralContainers) > 0 {
		bad("ephemeralContainers")
	}
	if s.HostNetwork {
		bad("hostNetwork")
	}
	if s.HostPID || s.HostIPC {
		bad("hostPID/hostIPC")
	}
	if len(s.ReadinessGates) > 0 {
		bad("readinessGates")
	}
	if s.ShareProcessNamespace != nil && *s.ShareProcessNamespace {
		bad("shareProcessNamespace")
	}
	if len(s.HostAliases) > 0 {
		bad("hostAliases")
	}
	if s.OS != nil && s.OS.Name != corev1.Linux {
		bad("os %s", s.OS.Name)
	}
	vols := map[string]bool{}
	for _, v := range s.Volumes {
		vols[v.Name] = true
		switch {
		case v.EmptyDir != nil, v.ConfigMap != nil, v.Secret != nil:
		case v.DownwardAPI != nil:
			for _, it := range v.DownwardAPI.Items {
				if it.ResourceFieldRef != nil {
					bad("volume %s: downwardAPI resourceFieldRef", v.Name)
				}
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil, src.ConfigMap != nil, src.Secret != nil:
				case src.DownwardAPI != nil:
					for _, it := range src.DownwardAPI.Items {
						if it.ResourceFieldRef != nil {
							bad("volume %s: downwardAPI resourceFieldRef", v.Name)
						}
					}
				default:
					bad("volume %s: projected source other than serviceAccountToken, configMap, secret, downwardAPI", v.Name)
				}
			}
		default:
			bad("volume %s: only emptyDir, configMap, secret, downwardAPI and projected volumes", v.Name)
		}
	}
	psc := s.SecurityContext
	for i := range s.Containers {
		c := &s.Containers[i]
		name := "container " + c.Name
		if _, err := cfg.binaryFor(c.Image); err != nil {
			bad("%s: %v", name, err)
		}
		if len(c.Command) > 0 {
			if bin, err := cfg.binaryFor(c.Image); err == nil && !sameBase(c.Command[0], bin) {
				bad("%s: command %q: only the image's own entrypoint can run (the binary %s)", name, c.Command[0], bin)
			}
		}
		for _, vm := range c.VolumeMounts {
			if !vols[vm.Name] {
				bad("%s: volumeMount of unknown volume %s", name, vm.Name)
			}
			if vm.SubPathExpr != "" {
				bad("%s: subPathExpr", name)
			}
			if vm.MountPropagation != nil && *vm.MountPropagation != corev1.MountPropagationNone {
				bad("%s: mountPropagation", name)
			}
		}
		if len(c.VolumeDevices) > 0 {
			bad("%s: volumeDevices", name)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
				bad("%s: env %s: resourceFieldRef", name, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.FileKeyRef != nil {
				bad("%s: env %s: fileKeyRef", name, e.Name)
			}
		}
		for kind, pr := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			if pr != nil && pr.HTTPGet == nil && pr.TCPSocket == nil {
				bad("%s: %s: only httpGet and tcpSocket probes", name, kind)
			}
		}
		if l := c.Lifecycle; l != nil {
			if l.PostStart != nil {
				bad("%s: postStart hook", name)
			}
			if l.PreStop != nil && l.PreStop.HTTPGet == nil && l.PreStop.Sleep == nil {
				bad("%s: preStop: only httpGet and sleep", name)
			}
			if l.StopSignal != nil && *l.StopSignal != corev1.SIGTERM {
				bad("%s: stopSignal %s", name, *l.StopSignal)
			}
		}
		if c.RestartPolicy != nil {
			bad("%s: container restartPolicy", name)
		}
		if c.Stdin || c.TTY {
			bad("%s: stdin/tty", name)
		}
		sc := c.SecurityContext
		if sc != nil {
			if sc.Privileged != nil && *sc.Privileged {
				bad("%s: privileged", name)
			}
			if sc.Capabilities != nil {
				for _, c := range sc.Capabilities.Add {
					if !isNetBindService(c) {
						bad("%s: capabilities.add %s: only NET_BIND_SERVICE", name, c)
					}
				}
			}
			if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
				bad("%s: procMount", name)
			}
		}
		uid, _ := runAs(pod, c)
		nonRoot := (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) || (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
		if nonRoot && (uid == nil || *uid == 0) {
			bad("%s: runAsNonRoot needs a non-zero runAsUser (images have no user here)", name)
		}
	}
	return p
}

func sameBase(cmd, bin string) bool {
	base := func(s string) string {
		for i := len(s) - 1; i >= 0; i-- {
			if s[i] == '/' {
				return s[i+1:]
			}
		}
		return s
	}
	return base(cmd) == base(bin)
}

// isNetBindService: the one capability a container may add (the suite's CoreDNS pod asks for
// it to listen on port 53); Kubernetes names capabilities without the CAP_ prefix.
func isNetBindService(c corev1.Capability) bool {
	return strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_") == "NET_BIND_SERVICE"
}
