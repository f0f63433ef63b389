package main

// The service proxy: kube-proxy's job for this one node, in user space. The machine has no
// kube-proxy and no iptables/nft, so the agent makes each Service's ClusterIP carry TCP itself:
// the address goes on lo of the cluster's network namespace (pods reach it through the bridge,
// their default route), and one listener per Service port forwards each accepted connection
// to a ready endpoint of the Service's EndpointSlices, round robin. TCP only; no session
// affinity, node ports or traffic policies (README.md).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	// proxyDialTimeout bounds one connection attempt to an endpoint.
	proxyDialTimeout = 3 * time.Second
	// proxyAttempts: a connection whose endpoint refuses goes to the next one, this many in all
	// (the endpoint set lags a pod's exit by up to a second).
	proxyAttempts = 3
	// proxyResync: how often the whole set is applied again, so a listener that could not bind
	// (its port taken) is retried.
	proxyResync = 5 * time.Second
)

// addrOps puts ClusterIPs on the namespace's loopback and takes them off; tests use a fake.
type addrOps interface {
	// add makes ip a local address; added is false when it already was one (then it is
	// never removed).
	add(ip string) (added bool, err error)
	del(ip string) error
}

// loAddrs manages addresses of lo with iproute2, and only addresses of 198.18.0.0/15.
type loAddrs struct{}

func (loAddrs) add(a string) (bool, error) {
	if err := checkServiceIP(a); err != nil {
		return false, err
	}
	local, err := net.InterfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, l := range local {
		if n, ok := l.(*net.IPNet); ok && n.IP.String() == a {
			return false, nil
		}
	}
	return true, ip("addr", "add", a+"/32", "dev", "lo")
}

func (loAddrs) del(a string) error {
	if err := checkServiceIP(a); err != nil {
		return err
	}
	return ip("addr", "del", a+"/32", "dev", "lo")
}

// checkServiceIP refuses any ClusterIP outside the test range: nothing else may appear in a
// test namespace.
func checkServiceIP(a string) error {
	p := net.ParseIP(a)
	if p == nil || p.To4() == nil {
		return fmt.Errorf("ClusterIP %q is not an IPv4 address", a)
	}
	if !inTestRange(&net.IPNet{IP: p, Mask: net.CIDRMask(32, 32)}) {
		return fmt.Errorf("ClusterIP %s is outside 198.18.0.0/15: not put on lo", a)
	}
	return nil
}

// portKey names one port of one Service (the port's name, "" when it has none).
type portKey struct{ namespace, service, port string }

func (k portKey) String() string {
	if k.port == "" {
		return k.namespace + "/" + k.service
	}
	return k.namespace + "/" + k.service + ":" + k.port
}

// svcListener accepts on one ClusterIP:port for the Service port key (guarded by the proxy's mu:
// a Service port renamed keeps its listener).
type svcListener struct {
	addr string
	key  portKey
	ln   net.Listener
}

type serviceProxy struct {
	addrs addrOps

	mu        sync.Mutex
	endpoints map[portKey][]string // ready "ip:port" targets, sorted
	next      map[portKey]int      // round robin position
	listeners map[string]*svcListener
	ips       map[string]bool   // ClusterIPs in use; true when this proxy added them
	failed    map[string]string // addr -> the bind error last logged
	noted     map[string]bool   // one-time log lines (UDP ports, session affinity)
}

func newServiceProxy(addrs addrOps) *serviceProxy {
	return &serviceProxy{
		addrs:     addrs,
		endpoints: map[portKey][]string{},
		next:      map[portKey]int{},
		listeners: map[string]*svcListener{},
		ips:       map[string]bool{},
		failed:    map[string]string{},
		noted:     map[string]bool{},
	}
}

// runServiceProxy follows Services and EndpointSlices in every namespace and applies them to p
// until ctx ends; then it closes every listener and removes the addresses it added.
func runServiceProxy(ctx context.Context, client kubernetes.Interface, p *serviceProxy) {
	factory := informers.NewSharedInformerFactory(client, 0)
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	kick := make(chan struct{}, 1)
	notify := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(_, _ any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), slices.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			log.Fatalf("service proxy: informer: %v", err)
		}
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	tick := time.NewTicker(proxyResync)
	defer tick.Stop()
	for ctx.Err() == nil {
		svcs, err1 := services.Lister().List(labels.Everything())
		sl, err2 := slices.Lister().List(labels.Everything())
		if err := errors.Join(err1, err2); err != nil {
			log.Printf("service proxy: list: %v", err)
		} else {
			p.apply(svcs, sl)
		}
		select {
		case <-ctx.Done():
		case <-kick:
		case <-tick.C:
		}
	}
	p.stop()
	factory.Shutdown()
}

// apply makes the listeners, addresses and endpoint sets match svcs and slices: the whole
// desired state each time (a node's worth of Services is small).
func (p *serviceProxy) apply(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[s.Namespace+"/"+name] = append(bySvc[s.Namespace+"/"+name], s)
		}
	}
	want := map[string]portKey{} // ClusterIP:port -> Service port
	wantIPs := map[string]bool{}
	eps := map[portKey][]string{}
	for _, svc := range svcs {
		cip := svc.Spec.ClusterIP
		if cip == "" || cip == corev1.ClusterIPNone {
			continue
		}
		id := svc.Namespace + "/" + svc.Name
		if a := net.ParseIP(cip); a == nil || a.To4() == nil {
			p.noteOnce("ip "+id+" "+cip, "service proxy: skipping %s: ClusterIP %s is not IPv4", id, cip)
			continue
		}
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			p.noteOnce("affinity "+id, "service proxy: %s asks for ClientIP session affinity: not implemented, round robin instead", id)
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				p.noteOnce(fmt.Sprintf("proto %s %s/%d", id, sp.Protocol, sp.Port),
					"service proxy: skipping %s port %d/%s: TCP only", id, sp.Port, sp.Protocol)
				continue
			}
			k := portKey{svc.Namespace, svc.Name, sp.Name}
			want[net.JoinHostPort(cip, strconv.Itoa(int(sp.Port)))] = k
			wantIPs[cip] = true
			eps[k] = endpointsFor(sp.Name, bySvc[id])
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.endpoints = eps
	for k := range p.next {
		if _, ok := eps[k]; !ok {
			delete(p.next, k)
		}
	}
	for addr, l := range p.listeners {
		if k, ok := want[addr]; !ok {
			p.closeListener(l)
		} else {
			l.key = k
		}
	}
	for a := range wantIPs {
		if _, ok := p.ips[a]; ok {
			continue
		}
		added, err := p.addrs.add(a)
		if err != nil {
			p.noteOnce("addr "+a+" "+err.Error(), "service proxy: %v", err)
			continue
		}
		p.ips[a] = added
	}
	for addr, k := range want {
		if _, ok := p.listeners[addr]; ok {
			continue
		}
		host, _, _ := net.SplitHostPort(addr)
		if _, ok := p.ips[host]; !ok {
			continue
		}
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			if p.failed[addr] != err.Error() {
				log.Printf("service proxy: cannot listen on %s for %s (retried every %s): %v", addr, k, proxyResync, err)
				p.failed[addr] = err.Error()
			}
			continue
		}
		delete(p.failed, addr)
		l := &svcListener{addr: addr, key: k, ln: ln}
		p.listeners[addr] = l
		log.Printf("service proxy: listening on %s for %s (%d ready endpoints)", addr, k, len(eps[k]))
		go p.serve(l)
	}
	for addr := range p.failed {
		if _, ok := want[addr]; !ok {
			delete(p.failed, addr)
		}
	}
	for a, added := range p.ips {
		if wantIPs[a] {
			continue
		}
		delete(p.ips, a)
		if added {
			if err := p.addrs.del(a); err != nil {
				log.Printf("service proxy: %v", err)
			}
		}
	}
}

// stop closes every listener and removes the addresses the proxy added.
func (p *serviceProxy) stop() {
	p.apply(nil, nil)
}

func (p *serviceProxy) closeListener(l *svcListener) {
	delete(p.listeners, l.addr)
	_ = l.ln.Close()
	log.Printf("service proxy: closed listener on %s for %s", l.addr, l.key)
}

func (p *serviceProxy) noteOnce(key, format string, args ...any) {
	if !p.noted[key] {
		p.noted[key] = true
		log.Printf(format, args...)
	}
}

// endpointsFor: the ready endpoints ("ip:port", sorted, each once) of the Service port named
// portName in slices, the port number being the slice port of the same name. An endpoint is
// ready when conditions.ready is true or unset; IPv6 and FQDN slices are not served.
func endpointsFor(portName string, slices []*discoveryv1.EndpointSlice) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		port := int32(-1)
		for _, sp := range s.Ports {
			name := ""
			if sp.Name != nil {
				name = *sp.Name
			}
			tcp := sp.Protocol == nil || *sp.Protocol == corev1.ProtocolTCP
			if name == portName && tcp && sp.Port != nil {
				port = *sp.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if (e.Conditions.Ready != nil && !*e.Conditions.Ready) || len(e.Addresses) == 0 {
				continue
			}
			a := net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port)))
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// pick: the endpoints to try for one new connection on l, in order (at most proxyAttempts),
// starting at the Service port's round robin position, which moves on by one.
func (p *serviceProxy) pick(l *svcListener) (portKey, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	eps := p.endpoints[l.key]
	if len(eps) == 0 {
		return l.key, nil
	}
	i := p.next[l.key] % len(eps)
	p.next[l.key] = i + 1
	out := make([]string, min(len(eps), proxyAttempts))
	for j := range out {
		out[j] = eps[(i+j)%len(eps)]
	}
	return l.key, out
}

func (p *serviceProxy) serve(l *svcListener) {
	for {
		c, err := l.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Printf("service proxy: accept on %s: %v", l.addr, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go p.handle(l, c)
	}
}

// handle forwards one client connection; with no ready endpoint it is closed at once.
func (p *serviceProxy) handle(l *svcListener, c net.Conn) {
	key, targets := p.pick(l)
	if len(targets) == 0 {
		_ = c.Close()
		return
	}
	var errs []error
	for _, t := range targets {
		b, err := net.DialTimeout("tcp4", t, proxyDialTimeout)
		if err == nil {
			splice(c, b)
			return
		}
		errs = append(errs, err)
	}
	log.Printf("service proxy: %s via %s: no endpoint answered: %v", key, l.addr, errors.Join(errs...))
	_ = c.Close()
}

// splice copies both ways until both directions ended: EOF from one side half-closes the
// other's write direction; an error on either closes both connections.
func splice(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = a.Close()
			_ = b.Close()
		})
	}
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		if _, err := io.Copy(dst, src); err != nil {
			closeBoth()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
			closeBoth()
		}
	}
	go copyHalf(b, a)
	go copyHalf(a, b)
	<-done
	<-done
	closeBoth()
}
