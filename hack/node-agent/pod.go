package main

// One Pod's life on this node: refuse what the agent cannot honour, set up its network
// namespace and volumes, run its containers, write its status, and stop it on deletion
// (preStop, SIGTERM, grace period, SIGKILL) before the final delete.

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

type podRunner struct {
	m   *manager
	uid types.UID

	mu          sync.Mutex
	pod         *corev1.Pod // latest seen
	ip          net.IP
	netns       string
	dir         string
	startTime   *metav1.Time
	containers  []*container
	failReason  string
	failMessage string
	terminating bool

	termOnce, killOnce sync.Once
	termCh             chan time.Duration
	killCh             chan struct{}
	dirty              chan struct{}
	wasRemoved         bool
}

func newPodRunner(m *manager, pod *corev1.Pod) *podRunner {
	return &podRunner{
		m: m, uid: pod.UID, pod: pod.DeepCopy(),
		termCh: make(chan time.Duration, 1), killCh: make(chan struct{}), dirty: make(chan struct{}, 1),
	}
}

func (r *podRunner) update(pod *corev1.Pod) {
	r.mu.Lock()
	r.pod = pod.DeepCopy()
	r.mu.Unlock()
}

func (r *podRunner) snapshot() *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pod
}

// terminate starts a graceful stop (first call wins).
func (r *podRunner) terminate(grace time.Duration) {
	r.termOnce.Do(func() {
		r.mu.Lock()
		r.terminating = true
		r.mu.Unlock()
		r.termCh <- grace
		r.markDirty()
	})
}

// removed: the Pod is gone from the API; stop at once and do not delete it again.
func (r *podRunner) removed() {
	r.killOnce.Do(func() {
		r.mu.Lock()
		r.terminating = true
		r.wasRemoved = true
		r.mu.Unlock()
		close(r.killCh)
	})
}

func (r *podRunner) isTerminating() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.terminating
}

func (r *podRunner) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

func (r *podRunner) logf(format string, args ...any) {
	p := r.snapshot()
	log.Printf("%s/%s: %s", p.Namespace, p.Name, fmt.Sprintf(format, args...))
}

func (r *podRunner) run(ctx context.Context) {
	wctx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() { r.statusWriter(wctx); close(writerDone) }()

	pod := r.snapshot()
	now := metav1.Now()
	r.mu.Lock()
	r.startTime = &now
	r.mu.Unlock()
	if problems := validate(pod, r.m.cfg); len(problems) > 0 {
		r.fail("Unsupported", "sluice node agent cannot run this pod: "+strings.Join(problems, "; "))
	} else if err := r.setup(ctx, pod); err != nil {
		r.fail("SetupFailed", err.Error())
	} else {
		r.startContainers(ctx)
	}

	var grace time.Duration
	select {
	case grace = <-r.termCh:
	case <-r.killCh:
	case <-ctx.Done():
	}
	select {
	case <-r.killCh:
		grace = 0
	default:
	}
	r.stopContainers(grace)
	// The kubelet notices exited containers on its next PLEG relist (every second) and only
	// then stops the pod sandbox, which removes the pod's address; keep that timing, so the
	// tests see what peers see on a real node: a closed port first, a vanished address later.
	time.Sleep(time.Second)
	r.teardown()
	r.markDirty()
	// Let the last status (containers terminated) reach the API before the final delete.
	time.Sleep(100 * time.Millisecond)
	stopWriter()
	<-writerDone
	r.mu.Lock()
	removed, ip := r.wasRemoved, r.ip
	r.mu.Unlock()
	if !removed && ctx.Err() == nil {
		r.m.finalize(ctx, r.snapshot())
	}
	r.m.forget(r.uid, ip)
	r.logf("stopped")
}

// fail marks the pod Failed with an Event; it stays so until deleted.
func (r *podRunner) fail(reason, msg string) {
	r.m.event(r.snapshot(), corev1.EventTypeWarning, reason, msg)
	r.mu.Lock()
	r.failReason, r.failMessage = reason, msg
	r.mu.Unlock()
	r.markDirty()
}

func (r *podRunner) setup(ctx context.Context, pod *corev1.Pod) error {
	cfg := r.m.cfg
	ipAddr, err := r.m.allocIP()
	if err != nil {
		return err
	}
	short := strings.ReplaceAll(string(pod.UID), "-", "")[:10]
	r.mu.Lock()
	r.ip = ipAddr
	r.netns = cfg.netnsPrefx + "-" + short
	r.dir = filepath.Join(cfg.stateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	r.mu.Unlock()
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := setupPodNetwork(cfg, r.netns, "vp"+short[:8], ipAddr); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	r.markDirty()
	// The ConfigMap kube-root-ca.crt and the ServiceAccount may appear a moment after the
	// namespace: retry volume set-up for a while, as the kubelet does.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err = prepareVolumes(ctx, r.m.client, pod, r.dir)
		if err == nil || time.Now().After(deadline) || r.isTerminating() {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	for i := range pod.Spec.Containers {
		c, err := newContainer(r, pod, &pod.Spec.Containers[i])
		if err != nil {
			return fmt.Errorf("container %s: %w", pod.Spec.Containers[i].Name, err)
		}
		r.mu.Lock()
		r.containers = append(r.containers, c)
		r.mu.Unlock()
	}
	return nil
}

func (r *podRunner) startContainers(ctx context.Context) {
	r.mu.Lock()
	cs := r.containers
	r.mu.Unlock()
	for _, c := range cs {
		go c.loop(ctx)
	}
}

// stopContainers runs each container's preStop hook, sends SIGTERM, and SIGKILL when the
// grace period (counted from the start of termination, preStop included) runs out.
func (r *podRunner) stopContainers(grace time.Duration) {
	deadline := time.Now().Add(grace)
	var wg sync.WaitGroup
	r.mu.Lock()
	cs := r.containers
	r.mu.Unlock()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(deadline)
		}()
	}
	wg.Wait()
}

func (r *podRunner) teardown() {
	r.mu.Lock()
	ns, dir := r.netns, r.dir
	r.mu.Unlock()
	if ns != "" {
		if err := ip("netns", "del", ns); err != nil {
			r.logf("teardown: %v", err)
		}
	}
	if dir != "" {
		_ = os.RemoveAll(filepath.Join(dir, "volumes"))
	}
}

// setupPodNetwork: a named network namespace with eth0 (one end of a veth whose other end
// joins the bridge), the pod address, and a default route via the bridge.
func setupPodNetwork(cfg config, ns, hostIf string, addr net.IP) error {
	ones, _ := cfg.podNet.Mask.Size()
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", hostIf, "master", cfg.bridge, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", fmt.Sprintf("%s/%d", addr, ones), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", gateway(cfg.podNet).String()},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			_ = ip("netns", "del", ns)
			return err
		}
	}
	if err := allowUnprivilegedPorts(ns); err != nil {
		_ = ip("netns", "del", ns)
		return err
	}
	return nil
}

// allowUnprivilegedPorts sets net.ipv4.ip_unprivileged_port_start=0 in the pod's network
// namespace, as containerd (enable_unprivileged_ports, on by default since 2.0) and CRI-O do:
// a process without CAP_NET_BIND_SERVICE may listen on ports below 1024 there (the suite's
// Gateways on 80 and 443 with sluice running as non-root, capabilities dropped). The sysctl is
// per network namespace; the cluster's own namespace and the host's keep theirs.
func allowUnprivilegedPorts(ns string) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=0").CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns %s: sysctl net.ipv4.ip_unprivileged_port_start=0: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// statusWriter writes the pod status whenever something changed, coalescing bursts.
func (r *podRunner) statusWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			// One last write (final container states) before leaving.
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = r.writeStatus(wctx)
			cancel()
			return
		case <-r.dirty:
		}
		if err := r.writeStatus(ctx); err != nil && ctx.Err() == nil {
			r.logf("status: %v", err)
			time.Sleep(time.Second)
			r.markDirty()
		}
	}
}

func (r *podRunner) writeStatus(ctx context.Context) error {
	pods := r.m.client.CoreV1().Pods(r.snapshot().Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := pods.Get(ctx, r.snapshot().Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.UID != r.uid {
			return nil
		}
		r.fillStatus(cur)
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("status: too many conflicts")
}

// fillStatus sets what the node owns in pod.Status: phase, addresses, conditions, container
// statuses (PodScheduled and qosClass stay as they are).
func (r *podRunner) fillStatus(pod *corev1.Pod) {
	r.mu.Lock()
	failReason, failMessage, ipAddr, start := r.failReason, r.failMessage, r.ip, r.startTime
	containers := r.containers
	r.mu.Unlock()
	st := &pod.Status
	st.HostIP = r.m.cfg.nodeIP.String()
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	st.StartTime = start
	if ipAddr != nil {
		st.PodIP = ipAddr.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	var statuses []corev1.ContainerStatus
	allReady, allStarted, running, allTerminated, anyFailed := len(containers) > 0, true, false, true, false
	for _, c := range containers {
		cs := c.status()
		statuses = append(statuses, cs)
		allReady = allReady && cs.Ready
		allStarted = allStarted && (cs.State.Running != nil || cs.State.Terminated != nil || cs.RestartCount > 0)
		running = running || cs.State.Running != nil
		allTerminated = allTerminated && cs.State.Terminated != nil
		if cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0 {
			anyFailed = true
		}
	}
	if failReason == "" {
		// Containers that never ran are listed as waiting, as the kubelet does.
		for i := len(statuses); i < len(pod.Spec.Containers); i++ {
			c := pod.Spec.Containers[i]
			statuses = append(statuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			})
			allReady, allStarted, allTerminated = false, false, false
		}
	}
	st.ContainerStatuses = statuses
	never := pod.Spec.RestartPolicy == corev1.RestartPolicyNever
	onFailure := pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
	switch {
	case failReason != "":
		st.Phase, st.Reason, st.Message = corev1.PodFailed, failReason, failMessage
		allReady = false
	case allTerminated && len(containers) > 0 && (never || (onFailure && !anyFailed)):
		if anyFailed {
			st.Phase = corev1.PodFailed
		} else {
			st.Phase = corev1.PodSucceeded
		}
		allReady = false
	case allStarted && len(containers) > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	_ = running
	cond := func(t corev1.PodConditionType, ok bool, reason string) {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
			reason = ""
		}
		for i := range st.Conditions {
			if st.Conditions[i].Type == t {
				if st.Conditions[i].Status != s {
					st.Conditions[i].LastTransitionTime = metav1.Now()
				}
				st.Conditions[i].Status, st.Conditions[i].Reason = s, reason
				return
			}
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: metav1.Now()})
	}
	cond(corev1.PodReadyToStartContainers, ipAddr != nil, "")
	cond(corev1.PodInitialized, failReason == "", "")
	cond(corev1.ContainersReady, allReady, "ContainersNotReady")
	cond(corev1.PodReady, allReady, "ContainersNotReady")
}
