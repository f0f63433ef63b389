package main

// One container: its process (in the pod's network namespace, with a private mount namespace
// for the volumes), restarts with back-off, probes, and the stop sequence.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type container struct {
	r      *podRunner
	spec   corev1.Container
	script string   // the sh script that mounts the volumes and execs the binary
	argv   []string // binary and arguments
	env    []string
	log    string

	mu        sync.Mutex
	proc      *os.Process
	exited    chan struct{} // closed when the current process exits
	state     corev1.ContainerState
	lastState corev1.ContainerState
	restarts  int32
	started   bool
	ready     bool
	done      chan struct{}
}

func newContainer(r *podRunner, pod *corev1.Pod, spec *corev1.Container) (*container, error) {
	bin, err := r.m.cfg.binaryFor(spec.Image)
	if err != nil {
		return nil, err
	}
	env, err := containerEnv(context.Background(), r, pod, spec)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	argv := []string{bin}
	if len(spec.Command) > 0 {
		// The image's entrypoint is the mapped binary; a command may only name it again.
		argv = append(argv, expandAll(spec.Command[1:], vars)...)
	}
	argv = append(argv, expandAll(spec.Args, vars)...)
	c := &container{
		r: r, spec: *spec, argv: argv, env: env,
		log:   filepath.Join(r.dir, spec.Name+".log"),
		state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		done:  make(chan struct{}),
	}
	c.script = mountScript(pod, spec, filepath.Join(r.dir, "volumes"))
	return c, nil
}

// binaryFor maps an image to a local binary by the last element of its name.
func (cfg config) binaryFor(image string) (string, error) {
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	if bin, ok := cfg.images[name]; ok {
		return bin, nil
	}
	return "", fmt.Errorf("image %q: no local binary for %q (known: %v)", image, name, cfg.images)
}

// mountScript: sh run by `ip netns exec` (which gives the process its own mount namespace)
// that bind-mounts each volume at its mountPath, changes directory and user, and execs "$@".
func mountScript(pod *corev1.Pod, spec *corev1.Container, volDir string) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, vm := range spec.VolumeMounts {
		src := filepath.Join(volDir, vm.Name)
		if vm.SubPath != "" {
			src = filepath.Join(src, vm.SubPath)
		}
		s, t := shq(src), shq(vm.MountPath)
		fmt.Fprintf(&b, "if [ -d %s ]; then mkdir -p %s; else mkdir -p \"$(dirname %s)\"; [ -e %s ] || : > %s; fi\n", s, t, t, t, t)
		fmt.Fprintf(&b, "mount --bind %s %s\n", s, t)
		if vm.ReadOnly {
			fmt.Fprintf(&b, "mount -o remount,bind,ro %s\n", t)
		}
	}
	if spec.WorkingDir != "" {
		fmt.Fprintf(&b, "cd %s\n", shq(spec.WorkingDir))
	}
	uid, gid := runAs(pod, spec)
	priv := []string{"setpriv"}
	if uid != nil {
		g := int64(0)
		if gid != nil {
			g = *gid
		}
		priv = append(priv, fmt.Sprintf("--reuid=%d", *uid), fmt.Sprintf("--regid=%d", g), "--clear-groups")
	}
	if sc := spec.SecurityContext; sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		priv = append(priv, "--no-new-privs")
	}
	if sc := spec.SecurityContext; sc != nil && sc.Capabilities != nil {
		priv = append(priv, capabilityFlags(sc.Capabilities, uid != nil && *uid != 0)...)
	}
	if len(priv) > 1 {
		fmt.Fprintf(&b, "exec %s -- \"$@\"\n", strings.Join(priv, " "))
	} else {
		b.WriteString("exec \"$@\"\n")
	}
	return b.String()
}

// capabilityFlags: setpriv flags for drop ALL and add NET_BIND_SERVICE (the only addition
// validate lets through). Dropping ALL clears the bounding and inheritable sets; an added
// capability stays in both, so a root process keeps it in its permitted set across exec, and
// a non-root one (nonRoot) gets it as an ambient capability, as runc does.
func capabilityFlags(c *corev1.Capabilities, nonRoot bool) []string {
	dropAll := false
	for _, d := range c.Drop {
		if d == "ALL" {
			dropAll = true
		}
	}
	add := false
	for _, a := range c.Add {
		if isNetBindService(a) {
			add = true
		}
	}
	var f []string
	switch {
	case dropAll && add:
		f = append(f, "--inh-caps=-all,+net_bind_service", "--bounding-set=-all,+net_bind_service")
	case dropAll:
		f = append(f, "--inh-caps=-all", "--bounding-set=-all")
	case add:
		f = append(f, "--inh-caps=+net_bind_service")
	}
	if add && nonRoot {
		f = append(f, "--ambient-caps=+net_bind_service")
	}
	return f
}

func runAs(pod *corev1.Pod, spec *corev1.Container) (uid, gid *int64) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	return uid, gid
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// start launches the process; its exit closes c.exited.
func (c *container) start() error {
	c.r.mu.Lock()
	ns := c.r.netns
	c.r.mu.Unlock()
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"netns", "exec", ns, "/bin/sh", "-c", c.script, "sh"}, c.argv...)
	cmd := exec.Command("ip", args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	now := metav1.Now()
	c.mu.Lock()
	c.proc, c.exited = cmd.Process, exited
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
	c.started = c.spec.StartupProbe == nil
	c.ready = false
	c.mu.Unlock()
	c.r.markDirty()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		code := int32(cmd.ProcessState.ExitCode())
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int32(ws.Signal())
		}
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		c.mu.Lock()
		c.lastState = c.state
		c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: metav1.Now(),
			ContainerID: c.containerID(),
		}}
		c.proc, c.ready, c.started = nil, false, false
		c.mu.Unlock()
		close(exited)
		c.r.markDirty()
	}()
	return nil
}

func (c *container) containerID() string {
	if c.proc == nil {
		return ""
	}
	return fmt.Sprintf("sluice-node://%s/%d", c.spec.Name, c.proc.Pid)
}

// loop runs the container, restarting it per restartPolicy, until the pod terminates.
func (c *container) loop(ctx context.Context) {
	defer close(c.done)
	backoff := time.Second
	for !c.r.isTerminating() && ctx.Err() == nil {
		began := time.Now()
		if err := c.start(); err != nil {
			c.r.m.event(c.r.snapshot(), corev1.EventTypeWarning, "Failed", fmt.Sprintf("container %s: start: %v", c.spec.Name, err))
			c.setWaiting("StartError", err.Error())
		} else {
			c.r.m.event(c.r.snapshot(), corev1.EventTypeNormal, "Started", fmt.Sprintf("Started container %s (%s)", c.spec.Name, c.argv[0]))
			pctx, cancel := context.WithCancel(ctx)
			go c.probe(pctx)
			<-c.exitedChan()
			cancel()
		}
		if c.r.isTerminating() || !c.shouldRestart() {
			return
		}
		if time.Since(began) > 10*time.Second {
			backoff = time.Second
		}
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
		c.setWaiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting container", backoff))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		case <-c.r.killCh:
			return
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (c *container) exitedChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exited
}

func (c *container) setWaiting(reason, msg string) {
	c.mu.Lock()
	if c.state.Terminated != nil {
		c.lastState = c.state
	}
	c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	c.mu.Unlock()
	c.r.markDirty()
}

func (c *container) shouldRestart() bool {
	switch c.r.snapshot().Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.state.Terminated == nil || c.state.Terminated.ExitCode != 0
	default:
		return true
	}
}

// signal sends sig to the container's process group; false when nothing runs.
func (c *container) signal(sig syscall.Signal) bool {
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	if p == nil {
		return false
	}
	_ = syscall.Kill(-p.Pid, sig)
	return true
}

// kill: SIGTERM, then SIGKILL after grace (liveness/startup failures and pod stop).
func (c *container) kill(grace time.Duration) {
	exited := c.exitedChan()
	if exited == nil || !c.signal(syscall.SIGTERM) {
		return
	}
	select {
	case <-exited:
		return
	case <-time.After(grace):
	}
	c.signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
}

// stop: preStop hook, then kill with what is left of the grace period (at least 2 s after
// the hook, as the kubelet gives).
func (c *container) stop(deadline time.Time) {
	running := c.signal(0)
	if running && time.Until(deadline) > 0 && c.spec.Lifecycle != nil && c.spec.Lifecycle.PreStop != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := c.runHandler(ctx, c.spec.Lifecycle.PreStop); err != nil {
			c.r.m.event(c.r.snapshot(), corev1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("container %s: %v", c.spec.Name, err))
		}
		cancel()
		if d := time.Until(deadline); d < 2*time.Second {
			deadline = time.Now().Add(2 * time.Second)
		}
	}
	if running {
		c.r.m.event(c.r.snapshot(), corev1.EventTypeNormal, "Killing", "Stopping container "+c.spec.Name)
		c.kill(max(time.Until(deadline), 0))
	}
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
	}
}

func (c *container) runHandler(ctx context.Context, h *corev1.LifecycleHandler) error {
	switch {
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	case h.HTTPGet != nil:
		return httpGet(ctx, c.r.podIP(), &c.spec, h.HTTPGet, time.Until(deadlineOr(ctx, 30*time.Second)))
	}
	return errors.New("unsupported handler")
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if t, ok := ctx.Deadline(); ok {
		return t
	}
	return time.Now().Add(d)
}

func (r *podRunner) podIP() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ip == nil {
		return ""
	}
	return r.ip.String()
}

func (c *container) status() corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: "sluice-node://" + c.argv[0],
		State: c.state, LastTerminationState: c.lastState, RestartCount: c.restarts,
		Ready: c.ready && c.state.Running != nil, Started: ptrBool(c.started && c.state.Running != nil),
		ContainerID: c.containerID(),
	}
	if cs.ContainerID == "" && c.state.Terminated != nil {
		cs.ContainerID = c.state.Terminated.ContainerID
	}
	return cs
}

func ptrBool(b bool) *bool { return &b }

func expandAll(in []string, vars map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

// expand replaces $(VAR) with its value ($$ escapes), as the kubelet does for args and env.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if s[i+1] == '(' {
				if j := strings.IndexByte(s[i+2:], ')'); j >= 0 {
					name := s[i+2 : i+2+j]
					if v, ok := vars[name]; ok {
						b.WriteString(v)
						i += j + 2
						continue
					}
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var _ = strconv.Itoa
