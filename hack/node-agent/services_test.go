package main

import (
	"context"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// fakeAddrs records what the proxy puts on lo; every 127.0.0.0/8 address is local already.
type fakeAddrs struct {
	mu       sync.Mutex
	added    []string
	removed  []string
	existing map[string]bool
}

func (f *fakeAddrs) add(a string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.existing[a] {
		return false, nil
	}
	f.added = append(f.added, a)
	return true, nil
}

func (f *fakeAddrs) del(a string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, a)
	return nil
}

func service(name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, Ports: ports},
	}
}

func tcpPort(name string, port int) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: int32(port), Protocol: corev1.ProtocolTCP}
}

func slicePort(name string, port int) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}
}

// endpoint: ready "true", "false" or "" (unset).
func endpoint(addr, ready string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	if ready != "" {
		e.Conditions.Ready = ptr.To(ready == "true")
	}
	return e
}

func slice(svc, name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// freePort: a TCP port nothing listens on at ip.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// backend: a listener on 127.0.0.1 running serve for each connection.
func backend(t *testing.T, serve func(*net.TCPConn)) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c.(*net.TCPConn)
}

func TestEndpointsForKeepsReadyOrUnsetEndpointsOfTheSamePortName(t *testing.T) {
	ports := []discoveryv1.EndpointPort{slicePort("http", 8080), slicePort("metrics", 9090)}
	slices := []*discoveryv1.EndpointSlice{
		slice("web", "web-1", ports,
			endpoint("198.19.0.2", "true"), endpoint("198.19.0.3", ""), endpoint("198.19.0.4", "false")),
		// The same endpoint in a second slice (a controller moving it) counts once.
		slice("web", "web-2", ports, endpoint("198.19.0.2", "true"), endpoint("198.19.0.5", "true")),
		// A slice without the port name serves nothing for it.
		slice("web", "web-3", []discoveryv1.EndpointPort{slicePort("grpc", 7070)}, endpoint("198.19.0.6", "true")),
	}
	v6 := slice("web", "web-v6", ports, endpoint("2001:db8::1", "true"))
	v6.AddressType = discoveryv1.AddressTypeIPv6
	slices = append(slices, v6)

	if got, want := endpointsFor("http", slices), []string{"198.19.0.2:8080", "198.19.0.3:8080", "198.19.0.5:8080"}; !reflect.DeepEqual(got, want) {
		t.Errorf("http: got %v, want %v", got, want)
	}
	if got, want := endpointsFor("metrics", slices), []string{"198.19.0.2:9090", "198.19.0.3:9090", "198.19.0.5:9090"}; !reflect.DeepEqual(got, want) {
		t.Errorf("metrics: got %v, want %v", got, want)
	}
	if got := endpointsFor("", slices); len(got) != 0 {
		t.Errorf("unnamed port: got %v, want none (no slice has an unnamed port)", got)
	}
}

func TestEndpointsForMatchesAnUnnamedPortToASlicePortWithoutName(t *testing.T) {
	unnamed := discoveryv1.EndpointPort{Port: ptr.To(int32(3000))}
	got := endpointsFor("", []*discoveryv1.EndpointSlice{slice("web", "web-1", []discoveryv1.EndpointPort{unnamed}, endpoint("198.19.0.9", ""))})
	if want := []string{"198.19.0.9:3000"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestPickGoesRoundRobinAndNewConnectionsUseTheNewEndpointSet(t *testing.T) {
	p := newServiceProxy(&fakeAddrs{})
	ip := "127.0.0.211"
	svc := service("web", ip, tcpPort("http", freePort(t, ip)))
	ports := []discoveryv1.EndpointPort{slicePort("http", 8080)}
	p.apply([]*corev1.Service{svc}, []*discoveryv1.EndpointSlice{
		slice("web", "a", ports, endpoint("198.19.0.2", "true"), endpoint("198.19.0.3", "true"), endpoint("198.19.0.4", "true")),
	})
	defer p.stop()
	l := p.listeners[net.JoinHostPort(ip, strconv.Itoa(int(svc.Spec.Ports[0].Port)))]
	if l == nil {
		t.Fatalf("no listener; have %v", p.listeners)
	}
	var firsts []string
	for range 4 {
		_, targets := p.pick(l)
		firsts = append(firsts, targets[0])
	}
	if want := []string{"198.19.0.2:8080", "198.19.0.3:8080", "198.19.0.4:8080", "198.19.0.2:8080"}; !reflect.DeepEqual(firsts, want) {
		t.Fatalf("round robin: got %v, want %v", firsts, want)
	}
	// A refused attempt goes on to the next endpoints, in order.
	if _, targets := p.pick(l); !reflect.DeepEqual(targets, []string{"198.19.0.3:8080", "198.19.0.4:8080", "198.19.0.2:8080"}) {
		t.Fatalf("attempt order: %v", targets)
	}

	p.apply([]*corev1.Service{svc}, []*discoveryv1.EndpointSlice{
		slice("web", "a", ports, endpoint("198.19.0.2", "false"), endpoint("198.19.0.7", "true")),
	})
	if _, targets := p.pick(l); !reflect.DeepEqual(targets, []string{"198.19.0.7:8080"}) {
		t.Fatalf("after the update: %v", targets)
	}
}

func TestClusterIPForwardsBothWaysAndPassesTheClientsHalfClose(t *testing.T) {
	// The backend answers only after the client's EOF, then closes: both half-closes must
	// cross the proxy for the client to read the whole answer and then EOF.
	bport := backend(t, func(c *net.TCPConn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("got " + string(got)))
	})
	ip := "127.0.0.212"
	svc := service("web", ip, tcpPort("http", freePort(t, ip)))
	p := newServiceProxy(&fakeAddrs{})
	p.apply([]*corev1.Service{svc}, []*discoveryv1.EndpointSlice{
		slice("web", "a", []discoveryv1.EndpointPort{slicePort("http", bport)}, endpoint("127.0.0.1", "true")),
	})
	defer p.stop()

	c := dial(t, net.JoinHostPort(ip, strconv.Itoa(int(svc.Spec.Ports[0].Port))))
	payload := strings.Repeat("x", 200_000)
	go func() {
		_, _ = c.Write([]byte(payload))
		_ = c.CloseWrite()
	}()
	answer, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (after %d bytes)", err, len(answer))
	}
	if string(answer) != "got "+payload {
		t.Fatalf("answer: %d bytes, want %d", len(answer), len("got "+payload))
	}
}

func TestClusterIPPassesTheBackendsHalfCloseAndKeepsTheClientsDirectionOpen(t *testing.T) {
	received := make(chan string, 1)
	bport := backend(t, func(c *net.TCPConn) {
		_, _ = c.Write([]byte("banner\n"))
		_ = c.CloseWrite()
		got, _ := io.ReadAll(c)
		received <- string(got)
	})
	ip := "127.0.0.213"
	svc := service("web", ip, tcpPort("", freePort(t, ip)))
	p := newServiceProxy(&fakeAddrs{})
	p.apply([]*corev1.Service{svc}, []*discoveryv1.EndpointSlice{
		slice("web", "a", []discoveryv1.EndpointPort{{Port: ptr.To(int32(bport))}}, endpoint("127.0.0.1", "")),
	})
	defer p.stop()

	c := dial(t, net.JoinHostPort(ip, strconv.Itoa(int(svc.Spec.Ports[0].Port))))
	banner, err := io.ReadAll(c)
	if err != nil || string(banner) != "banner\n" {
		t.Fatalf("banner: %q, %v", banner, err)
	}
	if _, err := c.Write([]byte("after the backend's EOF")); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	select {
	case got := <-received:
		if got != "after the backend's EOF" {
			t.Fatalf("backend received %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the backend never received the client's data and EOF")
	}
}

func TestNoReadyEndpointClosesTheClientConnectionAtOnce(t *testing.T) {
	// The endpoint answers, but it is not ready: the client must get nothing.
	bport := backend(t, func(c *net.TCPConn) { _, _ = c.Write([]byte("served")) })
	ip := "127.0.0.214"
	svc := service("web", ip, tcpPort("http", freePort(t, ip)))
	p := newServiceProxy(&fakeAddrs{})
	p.apply([]*corev1.Service{svc}, []*discoveryv1.EndpointSlice{
		slice("web", "a", []discoveryv1.EndpointPort{slicePort("http", bport)}, endpoint("127.0.0.1", "false")),
	})
	defer p.stop()
	c := dial(t, net.JoinHostPort(ip, strconv.Itoa(int(svc.Spec.Ports[0].Port))))
	_ = c.SetDeadline(time.Now().Add(time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Fatalf("read: %d bytes, %v; want EOF at once", n, err)
	}
}

func TestARefusingEndpointSendsTheConnectionToTheNextOne(t *testing.T) {
	live := backend(t, func(c *net.TCPConn) { _, _ = c.Write([]byte("live")) })
	dead := freePort(t, "127.0.0.1")
	ip := "127.0.0.215"
	svc := service("web", ip, tcpPort("http", freePort(t, ip)))
	p := newServiceProxy(&fakeAddrs{})
	// Two slices: the port number comes from each slice.
	p.apply([]*corev1.Service{svc}, []*discoveryv1.EndpointSlice{
		slice("web", "a", []discoveryv1.EndpointPort{slicePort("http", dead)}, endpoint("127.0.0.1", "true")),
		slice("web", "b", []discoveryv1.EndpointPort{slicePort("http", live)}, endpoint("127.0.0.1", "true")),
	})
	defer p.stop()
	for i := range 2 {
		got, err := io.ReadAll(dial(t, net.JoinHostPort(ip, strconv.Itoa(int(svc.Spec.Ports[0].Port)))))
		if err != nil || string(got) != "live" {
			t.Fatalf("connection %d: %q, %v", i, got, err)
		}
	}
}

func TestRemovedPortsAndDeletedServicesCloseTheirListenersAndAddress(t *testing.T) {
	ip := "127.0.0.216"
	p1, p2 := freePort(t, ip), freePort(t, ip)
	addrs := &fakeAddrs{}
	p := newServiceProxy(addrs)
	defer p.stop()
	a1, a2 := net.JoinHostPort(ip, strconv.Itoa(p1)), net.JoinHostPort(ip, strconv.Itoa(p2))
	accepts := func(addr string) bool {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}

	p.apply([]*corev1.Service{service("web", ip, tcpPort("a", p1), tcpPort("b", p2))}, nil)
	if !accepts(a1) || !accepts(a2) {
		t.Fatalf("both ports should listen (a %v, b %v)", accepts(a1), accepts(a2))
	}
	if !reflect.DeepEqual(addrs.added, []string{ip}) {
		t.Fatalf("addresses added: %v", addrs.added)
	}
	p.apply([]*corev1.Service{service("web", ip, tcpPort("a", p1))}, nil)
	if !accepts(a1) || accepts(a2) {
		t.Fatalf("after removing port b: a %v (want true), b %v (want false)", accepts(a1), accepts(a2))
	}
	if len(addrs.removed) != 0 {
		t.Fatalf("address removed while port a uses it: %v", addrs.removed)
	}
	p.apply(nil, nil)
	if accepts(a1) {
		t.Fatal("port a still listens after the Service's deletion")
	}
	if !reflect.DeepEqual(addrs.removed, []string{ip}) {
		t.Fatalf("addresses removed: %v", addrs.removed)
	}
}

func TestAnAddressThatWasAlreadyLocalIsNeverRemoved(t *testing.T) {
	ip := "127.0.0.217"
	addrs := &fakeAddrs{existing: map[string]bool{ip: true}}
	p := newServiceProxy(addrs)
	p.apply([]*corev1.Service{service("web", ip, tcpPort("a", freePort(t, ip)))}, nil)
	p.apply(nil, nil)
	if len(addrs.added) != 0 || len(addrs.removed) != 0 {
		t.Fatalf("added %v, removed %v; want neither", addrs.added, addrs.removed)
	}
}

func TestUDPPortsAndHeadlessServicesGetNoListener(t *testing.T) {
	ip := "127.0.0.218"
	tcp := freePort(t, ip)
	dns := corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}
	p := newServiceProxy(&fakeAddrs{})
	defer p.stop()
	p.apply([]*corev1.Service{
		service("dns", ip, dns, tcpPort("dns-tcp", tcp)),
		service("headless", corev1.ClusterIPNone, tcpPort("http", 80)),
		service("external", "", tcpPort("http", 80)),
	}, nil)
	var got []string
	for a := range p.listeners {
		got = append(got, a)
	}
	if want := []string{net.JoinHostPort(ip, strconv.Itoa(tcp))}; !reflect.DeepEqual(got, want) {
		t.Fatalf("listeners %v, want %v", got, want)
	}
}

func TestClusterIPsOutsideTheTestRangeAreNeverPutOnLo(t *testing.T) {
	for _, a := range []string{"10.0.0.1", "127.0.0.1", "198.20.0.1", "2001:db8::1", "nonsense"} {
		if _, err := (loAddrs{}).add(a); err == nil {
			t.Errorf("add %s: no error", a)
		}
		if err := (loAddrs{}).del(a); err == nil {
			t.Errorf("del %s: no error", a)
		}
	}
	for _, a := range []string{"198.18.200.1", "198.19.255.254"} {
		if err := checkServiceIP(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

func TestTheProxyFollowsServicesAndSlicesFromTheAPI(t *testing.T) {
	bport := backend(t, func(c *net.TCPConn) { _, _ = c.Write([]byte("served")) })
	ip := "127.0.0.219"
	port := freePort(t, ip)
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runServiceProxy(ctx, client, newServiceProxy(&fakeAddrs{}))
	}()
	defer func() {
		cancel()
		<-done
	}()
	// eventually: cond holds within 5 s (polled every 20 ms).
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 5 s: %s", what)
			}
		}
	}
	answer := func() string {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err != nil {
			return "refused"
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}

	svcs, slices := client.CoreV1().Services("ns"), client.DiscoveryV1().EndpointSlices("ns")
	if _, err := svcs.Create(ctx, service("web", ip, tcpPort("http", port)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("a listener with no endpoint closes connections", func() bool { return answer() == "" })
	s := slice("web", "web-1", []discoveryv1.EndpointPort{slicePort("http", bport)}, endpoint("127.0.0.1", "true"))
	if _, err := slices.Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the new endpoint serves", func() bool { return answer() == "served" })
	if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the listener closes with the Service", func() bool { return answer() == "refused" })
}
