package main

// Volumes (files written once, at pod start, under the pod's state directory; bind-mounted
// by the container's start script) and the environment.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func prepareVolumes(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, podDir string) error {
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(podDir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var err error
		switch {
		case v.EmptyDir != nil:
			// Writable by whatever user the containers run as (no fsGroup support).
			err = os.Chmod(dir, 0o1777)
		case v.ConfigMap != nil:
			err = writeConfigMap(ctx, client, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, dir)
		case v.Secret != nil:
			err = writeSecret(ctx, client, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, dir)
		case v.DownwardAPI != nil:
			err = writeDownward(pod, v.DownwardAPI.Items, dir)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ServiceAccountToken != nil:
					err = writeToken(ctx, client, pod, s.ServiceAccountToken, dir)
				case s.ConfigMap != nil:
					err = writeConfigMap(ctx, client, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, dir)
				case s.Secret != nil:
					err = writeSecret(ctx, client, pod.Namespace, s.Secret.Name, s.Secret.Items, s.Secret.Optional, dir)
				case s.DownwardAPI != nil:
					err = writeDownward(pod, s.DownwardAPI.Items, dir)
				}
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return nil
}

func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, rel)
	if !strings.HasPrefix(p, dir+string(os.PathSeparator)) {
		return fmt.Errorf("path %q leaves the volume", rel)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if len(items) == 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := writeFile(dir, k, data[k]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q not found", it.Key)
		}
		if err := writeFile(dir, it.Path, v); err != nil {
			return err
		}
	}
	return nil
}

func writeConfigMap(ctx context.Context, client kubernetes.Interface, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("configmap %s: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return writeKeys(dir, data, items)
}

func writeSecret(ctx context.Context, client kubernetes.Interface, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return writeKeys(dir, s.Data, items)
}

func writeDownward(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, dir string) error {
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downwardAPI %s: only fieldRef is supported", it.Path)
		}
		v, err := fieldValue(pod, it.FieldRef.FieldPath, "")
		if err != nil {
			return err
		}
		if err := writeFile(dir, it.Path, []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// writeToken asks the API server for a token bound to this pod (TokenRequest), as the
// kubelet does for a projected serviceAccountToken. It is not refreshed: the API server
// extends kubelet-style tokens to a year (--service-account-extend-token-expiration).
func writeToken(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, s *corev1.ServiceAccountTokenProjection, dir string) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{
			ExpirationSeconds: s.ExpirationSeconds,
			BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}
	if s.Audience != "" {
		req.Spec.Audiences = []string{s.Audience}
	}
	tok, err := client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for serviceaccount %s: %w", sa, err)
	}
	return writeFile(dir, s.Path, []byte(tok.Status.Token))
}

// fieldValue: the downward API fields (env fieldRef and downwardAPI volumes).
func fieldValue(pod *corev1.Pod, path, podIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return "", errHostIP
	case "metadata.labels", "metadata.annotations":
		m := pod.Labels
		if path == "metadata.annotations" {
			m = pod.Annotations
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%q\n", k, m[k])
		}
		return b.String(), nil
	}
	for _, pre := range []string{"metadata.labels['", "metadata.annotations['"} {
		if strings.HasPrefix(path, pre) && strings.HasSuffix(path, "']") {
			key := path[len(pre) : len(path)-2]
			if strings.HasPrefix(pre, "metadata.labels") {
				return pod.Labels[key], nil
			}
			return pod.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

var errHostIP = fmt.Errorf("hostIP")

// containerEnv: KUBERNETES_SERVICE_HOST/PORT (the API server as pods reach it), then
// envFrom, then env (later wins; $(VAR) refers to earlier entries).
func containerEnv(ctx context.Context, r *podRunner, pod *corev1.Pod, spec *corev1.Container) ([]string, error) {
	cfg := r.m.cfg
	podIP := r.podIP()
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	set("HOSTNAME", pod.Name)
	set("KUBERNETES_SERVICE_HOST", cfg.apiHost)
	set("KUBERNETES_SERVICE_PORT", cfg.apiPort)
	set("KUBERNETES_SERVICE_PORT_HTTPS", cfg.apiPort)
	client := r.m.client
	for _, ef := range spec.EnvFrom {
		var data map[string]string
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ef.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom configmap %s: %w", ef.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case ef.SecretRef != nil:
			s, err := client.CoreV1().Secrets(pod.Namespace).Get(ctx, ef.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %s: %w", ef.SecretRef.Name, err)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(ef.Prefix+k, data[k])
		}
	}
	for _, e := range spec.Env {
		v := expand(e.Value, vars)
		if vf := e.ValueFrom; vf != nil {
			var err error
			switch {
			case vf.FieldRef != nil:
				v, err = fieldValue(pod, vf.FieldRef.FieldPath, podIP)
				if err == errHostIP {
					v, err = cfg.nodeIP.String(), nil
				}
			case vf.ConfigMapKeyRef != nil:
				ref := vf.ConfigMapKeyRef
				cm, gerr := client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
				if gerr == nil {
					var ok bool
					if v, ok = cm.Data[ref.Key]; !ok && !(ref.Optional != nil && *ref.Optional) {
						err = fmt.Errorf("configmap %s has no key %s", ref.Name, ref.Key)
					}
				} else if !(ref.Optional != nil && *ref.Optional) {
					err = gerr
				}
			case vf.SecretKeyRef != nil:
				ref := vf.SecretKeyRef
				s, gerr := client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
				if gerr == nil {
					b, ok := s.Data[ref.Key]
					v = string(b)
					if !ok && !(ref.Optional != nil && *ref.Optional) {
						err = fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
					}
				} else if !(ref.Optional != nil && *ref.Optional) {
					err = gerr
				}
			default:
				err = fmt.Errorf("env %s: only fieldRef, configMapKeyRef and secretKeyRef are supported", e.Name)
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		set(e.Name, v)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}
