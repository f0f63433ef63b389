// Command node-agent is sluice's test node: a small stand-in for the kubelet that registers one
// Node and runs the Pods scheduled to it as plain processes, each Pod in its own network
// namespace on a bridge, so a local cluster (hack/cluster.sh) runs real Deployments, the Helm
// chart's pods, and the EndpointSlices the real controller-manager derives from their readiness.
// It also stands in for kube-proxy: Services' ClusterIPs carry TCP to their ready endpoints
// (services.go).
//
// It is test infrastructure, not a kubelet: there are no images. An image is mapped to a local
// binary by the last path element of its name (ghcr.io/sluice-dev/sluice:1.2 -> "sluice"),
// with --image NAME=PATH; the binary replaces the image's entrypoint. It must only ever be run
// inside the private network namespace hack/cluster.sh creates: it configures a bridge there
// and never touches any other namespace's interfaces.
//
// What a Pod may use is listed in README.md beside this file; anything else is refused with an
// Event and a Failed pod, never silently ignored.
//
// Usage:
//
//	node-agent --kubeconfig FILE --node-name NAME --state-dir DIR --api-host IP --api-port N \
//	    --image sluice=/path/to/sluice [--image NAME=PATH ...]
//	node-agent echo [--listen :8080]     the echo backend (echo.go); also when the binary
//	                                     is called sluice-echo, the name of its "image"
//	node-agent load --url URL ...        bounded steady load (load.go)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type imageFlag map[string]string

func (m imageFlag) String() string { return fmt.Sprint(map[string]string(m)) }
func (m imageFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	m[name] = path
	return nil
}

// config is everything the flags set.
type config struct {
	nodeName   string
	stateDir   string
	apiHost    string
	apiPort    string
	nodeIP     net.IP
	bridge     string
	podNet     *net.IPNet
	netnsPrefx string
	images     imageFlag
}

func main() {
	if filepath.Base(os.Args[0]) == "sluice-echo" {
		runEcho(os.Args[1:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "load" {
		runLoad(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		runEcho(os.Args[2:])
		return
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	cfg := config{images: imageFlag{}}
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server (required)")
	flag.StringVar(&cfg.nodeName, "node-name", "sluice-node", "name of the Node to register")
	flag.StringVar(&cfg.stateDir, "state-dir", "", "directory for pod volumes and logs (required)")
	flag.StringVar(&cfg.apiHost, "api-host", "198.18.0.1", "KUBERNETES_SERVICE_HOST given to pods")
	flag.StringVar(&cfg.apiPort, "api-port", "6443", "KUBERNETES_SERVICE_PORT given to pods")
	nodeIP := flag.String("node-ip", "198.18.0.1", "the Node's InternalIP (a local address)")
	flag.StringVar(&cfg.bridge, "bridge", "sluice0", "bridge the pods' veths join")
	podCIDR := flag.String("pod-cidr", "198.19.0.0/16", "pod addresses; the first is the bridge's")
	flag.StringVar(&cfg.netnsPrefx, "netns-prefix", "sluicepod", "prefix of the pods' named network namespaces")
	flag.Var(cfg.images, "image", "NAME=PATH: run PATH for images whose last name element is NAME (repeatable)")
	flag.Parse()
	if *kubeconfig == "" || cfg.stateDir == "" {
		flag.Usage()
		os.Exit(2)
	}
	cfg.nodeIP = net.ParseIP(*nodeIP)
	_, pn, err := net.ParseCIDR(*podCIDR)
	if err != nil || cfg.nodeIP == nil {
		log.Fatalf("bad --pod-cidr or --node-ip: %v", err)
	}
	if !inTestRange(pn) {
		log.Fatalf("--pod-cidr %s is outside 198.18.0.0/15: refusing", pn)
	}
	cfg.podNet = pn

	rest, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	rest.QPS, rest.Burst = 50, 100
	rest.UserAgent = "sluice-node-agent"
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		log.Fatalf("client: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := setupBridge(cfg); err != nil {
		log.Fatalf("bridge: %v", err)
	}
	node := &nodeAgent{cfg: cfg, client: client}
	if err := node.register(ctx); err != nil {
		log.Fatalf("register node: %v", err)
	}
	go node.heartbeat(ctx)
	proxyDone := make(chan struct{})
	go func() {
		defer close(proxyDone)
		runServiceProxy(ctx, client, newServiceProxy(loAddrs{}))
	}()
	mgr := newManager(cfg, client)
	mgr.run(ctx)
	// Stopping the agent stops every pod at once (the cluster is going away).
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mgr.killAll(shutdown)
	select {
	case <-proxyDone:
	case <-shutdown.Done():
	}
	log.Printf("stopped")
}

func inTestRange(n *net.IPNet) bool {
	_, r, _ := net.ParseCIDR("198.18.0.0/15")
	ones, _ := n.Mask.Size()
	return r.Contains(n.IP) && ones >= 15
}
