package main

// The Node object, its heartbeat (status + Lease, what the node lifecycle controller reads),
// the bridge, and the `ip` commands everything network-related goes through.

import (
	"context"
	"fmt"
	"log"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const agentVersion = "v1.36.3-sluice-node-agent"

type nodeAgent struct {
	cfg    config
	client kubernetes.Interface
}

func (n *nodeAgent) status() corev1.NodeStatus {
	now := metav1.Now()
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, corev1.ConditionTrue, "AgentReady", "sluice node agent is running"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "AgentHasSufficientMemory", ""),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "AgentHasNoDiskPressure", ""),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "AgentHasSufficientPID", ""),
			cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "BridgeUp", ""),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.cfg.nodeIP.String()},
			{Type: corev1.NodeHostName, Address: n.cfg.nodeName},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          agentVersion,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
			ContainerRuntimeVersion: "sluice-node-agent://processes",
		},
	}
}

// register creates the Node, or takes over one left by an earlier run.
func (n *nodeAgent) register(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.cfg.nodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.cfg.nodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		},
		Spec:   corev1.NodeSpec{PodCIDR: n.cfg.podNet.String(), PodCIDRs: []string{n.cfg.podNet.String()}},
		Status: n.status(),
	}
	created, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = n.client.CoreV1().Nodes().Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	created.Status = n.status()
	if _, err := n.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return err
	}
	log.Printf("node %s registered", n.cfg.nodeName)
	return nil
}

// heartbeat renews the node Lease and the Ready condition every 10 s, as the kubelet does.
func (n *nodeAgent) heartbeat(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if err := n.renew(ctx); err != nil && ctx.Err() == nil {
			log.Printf("heartbeat: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *nodeAgent) renew(ctx context.Context) error {
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.cfg.nodeName},
			Spec: coordv1.LeaseSpec{
				HolderIdentity: ptr.To(n.cfg.nodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now,
			},
		}, metav1.CreateOptions{})
	} else if err == nil {
		lease.Spec.RenewTime = &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	node.Status = n.status()
	_, err = n.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// ip runs one iproute2 command; errors carry its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupBridge creates the bridge with the pod network's first address (the pods' gateway).
func setupBridge(cfg config) error {
	if err := exec.Command("ip", "link", "show", cfg.bridge).Run(); err != nil {
		if err := ip("link", "add", cfg.bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	ones, _ := cfg.podNet.Mask.Size()
	gw := fmt.Sprintf("%s/%d", gateway(cfg.podNet), ones)
	if err := ip("addr", "replace", gw, "dev", cfg.bridge); err != nil {
		return err
	}
	return ip("link", "set", cfg.bridge, "up")
}

func gateway(n *net.IPNet) net.IP { return addIP(n.IP, 1) }

func addIP(base net.IP, k uint32) net.IP {
	b := base.To4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += k
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
