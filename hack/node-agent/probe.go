package main

// Startup, readiness and liveness probes (httpGet, tcpSocket), run from the node's namespace
// against the pod address, with the kubelet's thresholds.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func (c *container) probe(ctx context.Context) {
	s := c.spec
	if s.StartupProbe != nil {
		ok := c.runProbe(ctx, "Startup", s.StartupProbe, nil)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			c.kill(c.probeGrace(s.StartupProbe))
			return
		}
		c.mu.Lock()
		c.started = true
		c.mu.Unlock()
		c.r.markDirty()
	}
	if s.ReadinessProbe != nil {
		go c.runProbe(ctx, "Readiness", s.ReadinessProbe, func(ready bool) {
			c.mu.Lock()
			changed := c.ready != ready
			c.ready = ready
			c.mu.Unlock()
			if changed {
				c.r.markDirty()
			}
		})
	} else {
		c.mu.Lock()
		c.ready = true
		c.mu.Unlock()
		c.r.markDirty()
	}
	if s.LivenessProbe != nil {
		if !c.runProbe(ctx, "Liveness", s.LivenessProbe, nil) && ctx.Err() == nil {
			c.kill(c.probeGrace(s.LivenessProbe))
		}
	}
}

func (c *container) probeGrace(p *corev1.Probe) time.Duration {
	if p.TerminationGracePeriodSeconds != nil {
		return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	if g := c.r.snapshot().Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// runProbe probes every period. With report (readiness) it runs until ctx ends, reporting
// each threshold crossing. Without (startup, liveness) it returns true on reaching the
// success threshold for startup, and false when failureThreshold failures come in a row.
func (c *container) runProbe(ctx context.Context, kind string, p *corev1.Probe, report func(bool)) bool {
	period := secs(p.PeriodSeconds, 10)
	timeout := secs(p.TimeoutSeconds, 1)
	successT, failureT := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	select {
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	case <-ctx.Done():
		return false
	}
	var okRun, failRun int32
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := probeOnce(pctx, c.r.podIP(), &c.spec, p, timeout)
		cancel()
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if okRun == successT {
				if report != nil {
					report(true)
				} else if kind == "Startup" {
					return true
				}
			}
		} else {
			failRun, okRun = failRun+1, 0
			if failRun == failureT {
				c.r.m.event(c.r.snapshot(), corev1.EventTypeWarning, "Unhealthy",
					fmt.Sprintf("%s probe failed (container %s): %v", kind, c.spec.Name, err))
				if report != nil {
					report(false)
				} else {
					return false
				}
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
}

func secs(v int32, def int) time.Duration {
	if v <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(v) * time.Second
}

func probeOnce(ctx context.Context, podIP string, spec *corev1.Container, p *corev1.Probe, timeout time.Duration) error {
	switch {
	case p.HTTPGet != nil:
		return httpGet(ctx, podIP, spec, p.HTTPGet, timeout)
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(p.TCPSocket.Port, spec)
		if err != nil {
			return err
		}
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("unsupported probe")
}

func httpGet(ctx context.Context, podIP string, spec *corev1.Container, g *corev1.HTTPGetAction, timeout time.Duration) error {
	host := g.Host
	if host == "" {
		host = podIP
	}
	port, err := resolvePort(g.Port, spec)
	if err != nil {
		return err
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.36")
	for _, h := range g.HTTPHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	client := &http.Client{
		Timeout: timeout,
		// As the kubelet: no keep-alive between probes, TLS not verified, redirects not followed.
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// resolvePort: a number, or the name of one of the container's ports.
func resolvePort(p intstr.IntOrString, spec *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}
