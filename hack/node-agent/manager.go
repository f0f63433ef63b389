package main

// The pod manager: watches the Pods bound to this node and keeps one podRunner per Pod UID;
// hands out pod addresses; writes Events; finalizes deletion (the kubelet's delete with grace 0).

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

type manager struct {
	cfg    config
	client kubernetes.Interface

	mu   sync.Mutex
	pods map[types.UID]*podRunner
	ips  map[string]bool
	last uint32 // offset of the last address handed out
	wg   sync.WaitGroup
}

func newManager(cfg config, client kubernetes.Interface) *manager {
	return &manager{cfg: cfg, client: client, pods: map[types.UID]*podRunner{}, ips: map[string]bool{}}
}

// run watches this node's pods until ctx ends.
func (m *manager) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(m.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.cfg.nodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { m.sync(ctx, o) },
		UpdateFunc: func(_, o any) { m.sync(ctx, o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				m.gone(p)
			}
		},
	})
	if err != nil {
		log.Fatalf("informer: %v", err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

func (m *manager) sync(ctx context.Context, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	m.mu.Lock()
	r := m.pods[pod.UID]
	if r == nil {
		terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		if pod.DeletionTimestamp != nil {
			m.mu.Unlock()
			m.finalize(ctx, pod)
			return
		}
		if terminal {
			m.mu.Unlock()
			return
		}
		r = newPodRunner(m, pod)
		m.pods[pod.UID] = r
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			r.run(ctx)
		}()
	}
	m.mu.Unlock()
	r.update(pod)
	if pod.DeletionTimestamp != nil {
		grace := int64(30)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		r.terminate(time.Duration(grace) * time.Second)
	}
}

// gone: the Pod left the API without us (forced deletion): stop its processes now.
func (m *manager) gone(pod *corev1.Pod) {
	m.mu.Lock()
	r := m.pods[pod.UID]
	m.mu.Unlock()
	if r != nil {
		r.removed()
	}
}

// forget is called by a runner whose processes and namespace are gone.
func (m *manager) forget(uid types.UID, ip net.IP) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, uid)
	if ip != nil {
		delete(m.ips, ip.String())
	}
}

// finalize deletes a terminating pod that runs nothing here, as the kubelet does once its
// containers are stopped.
func (m *manager) finalize(ctx context.Context, pod *corev1.Pod) {
	err := m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && ctx.Err() == nil {
		log.Printf("%s/%s: final delete: %v", pod.Namespace, pod.Name, err)
	}
}

// allocIP hands out the next free pod address after the last one (the first address is the
// bridge's). Never the one just freed: a new pod on a recently used address would meet stale
// neighbour (ARP) entries in other pods for up to a minute, so connections to it would time
// out; CNI's host-local IPAM walks round-robin for the same reason.
func (m *manager) allocIP() (net.IP, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ones, bits := m.cfg.podNet.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	usable := size - 3 // not the network, the bridge, nor broadcast
	for i := uint32(1); i <= usable; i++ {
		k := 2 + (m.last+i-2+usable)%usable
		if m.last < 2 {
			k = 1 + i
		}
		a := addIP(m.cfg.podNet.IP, k)
		if !m.ips[a.String()] {
			m.ips[a.String()] = true
			m.last = k
			return a, nil
		}
	}
	return nil, fmt.Errorf("pod network %s is full", m.cfg.podNet)
}

// event writes a core/v1 Event about pod (best effort, like the kubelet's recorder).
func (m *manager) event(pod *corev1.Pod, typ, reason, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", pod.Name, time.Now().UnixNano()),
			Namespace: pod.Namespace,
		},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: "sluice-node-agent", Host: m.cfg.nodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "sluice.dev/node-agent", ReportingInstance: m.cfg.nodeName,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		log.Printf("%s/%s: event %s: %v", pod.Namespace, pod.Name, reason, err)
	}
	log.Printf("%s/%s: %s %s: %s", pod.Namespace, pod.Name, typ, reason, msg)
}

// killAll stops every pod at once (agent shutdown).
func (m *manager) killAll(ctx context.Context) {
	m.mu.Lock()
	rs := make([]*podRunner, 0, len(m.pods))
	for _, r := range m.pods {
		rs = append(rs, r)
	}
	m.mu.Unlock()
	for _, r := range rs {
		r.removed()
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
