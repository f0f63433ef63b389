package main

// The echo backend the real-workload tests run as Deployments (image ".../sluice-echo"):
// answers every request with the pod's name, the method, path and the number of body bytes
// it read, so a test can tell which pod served and that a body arrived whole. /healthz and
// /readyz answer 200. On SIGTERM it does what a plain Go server does and nothing more (no
// preStop sleep, no delay): stops accepting, finishes requests in flight, closes idle
// keep-alive connections, exits.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func runEcho(args []string) {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "address to serve on")
	_ = fs.Parse(args)
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Pod", pod)
		fmt.Fprintf(w, "pod=%s method=%s path=%s bytes=%d\n", pod, r.Method, r.URL.Path, n)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("echo: pod %s serving on %s", pod, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("echo: %v", err)
	}
	<-ctx.Done()
	log.Printf("echo: stopped")
}
