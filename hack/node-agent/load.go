package main

// `node-agent load`: bounded steady load for the real-workload tests (hack/cluster-e2e.sh).
// Four kinds of worker, each one request at a time with a pause between requests: GET and
// POST over one keep-alive connection, GET and POST on a new connection each. Runs until
// the stop file exists or --max-duration passes (and never past --max-requests); prints one
// summary line and every failure (up to 20), and exits 1 on any failure.
//
// A failure is anything but a 200 whose body names the method and, for POST, the number of
// bytes sent (the echo backend's answer), within --timeout.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func runLoad(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "target URL (required)")
	host := fs.String("host", "", "Host header (default: from the URL)")
	stopFile := fs.String("stop-file", "", "stop when this file exists")
	maxDur := fs.Duration("max-duration", 3*time.Minute, "hard bound on the run")
	maxReq := fs.Int64("max-requests", 200000, "hard bound on requests in all")
	pause := fs.Duration("pause", 5*time.Millisecond, "pause between a worker's requests")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	per := fs.Int("workers", 2, "workers of each kind")
	only := fs.String("kinds", "", "comma-separated kinds to run (default all four)")
	_ = fs.Parse(args)
	if *url == "" {
		fs.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *maxDur)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if *stopFile != "" {
				if _, err := os.Stat(*stopFile); err == nil {
					cancel()
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var total, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	body := bytes.Repeat([]byte("x"), 4096)
	worker := func(kind string, keepAlive bool, method string) {
		tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1}
		client := &http.Client{Transport: tr, Timeout: *timeout}
		defer tr.CloseIdleConnections()
		for ctx.Err() == nil && total.Load() < *maxReq {
			var rb io.Reader
			if method == http.MethodPost {
				rb = bytes.NewReader(body)
			}
			req, _ := http.NewRequest(method, *url, rb)
			if *host != "" {
				req.Host = *host
			}
			start := time.Now()
			resp, err := client.Do(req)
			var msg string
			if err != nil {
				msg = err.Error()
			} else {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := "method=" + method
				if method == http.MethodPost {
					want += fmt.Sprintf(" path=%s bytes=%d", req.URL.Path, len(body))
				}
				switch {
				case rerr != nil:
					msg = "reading body: " + rerr.Error()
				case resp.StatusCode != 200:
					msg = fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
				case !strings.Contains(string(b), want):
					msg = fmt.Sprintf("unexpected body %q", b)
				}
			}
			total.Add(1)
			if msg != "" {
				failed.Add(1)
				mu.Lock()
				if len(failures) < 20 {
					failures = append(failures, fmt.Sprintf("%s %s after %s: %s", start.Format("15:04:05.000"), kind, time.Since(start).Round(time.Millisecond), msg))
				}
				mu.Unlock()
			}
			time.Sleep(*pause)
		}
	}
	var wg sync.WaitGroup
	kinds := []struct {
		name      string
		keepAlive bool
		method    string
	}{
		{"keepalive-GET", true, http.MethodGet}, {"keepalive-POST", true, http.MethodPost},
		{"new-conn-GET", false, http.MethodGet}, {"new-conn-POST", false, http.MethodPost},
	}
	began := time.Now()
	for _, k := range kinds {
		if *only != "" && !strings.Contains(","+*only+",", ","+k.name+",") {
			continue
		}
		for i := 0; i < *per; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); worker(k.name, k.keepAlive, k.method) }()
		}
	}
	wg.Wait()
	for _, f := range failures {
		fmt.Println("failure:", f)
	}
	fmt.Printf("load: %d requests in %s, %d failed\n", total.Load(), time.Since(began).Round(time.Millisecond), failed.Load())
	if failed.Load() > 0 || total.Load() == 0 {
		os.Exit(1)
	}
}
