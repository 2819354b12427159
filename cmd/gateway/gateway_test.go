package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// gateway is an in-process gateway started by a test.
type gateway struct {
	URL  string
	NATS string // NATS URL of the hot-series feed
	ZMQ  string
	stop func()
}

// startGateway runs the whole gateway in-process on a loopback port with the given config
// file content (empty: bundled defaults) and flag overrides, and stops it at test end.
func startGateway(t testing.TB, configYAML string, mutate func(*Flags)) *gateway {
	t.Helper()
	natsListen, zmqBind := "127.0.0.1:0", "tcp://127.0.0.1:0"
	f := &Flags{
		NATSListen:    &natsListen,
		ZMQBind:       &zmqBind,
		ListenAddress: "127.0.0.1:0",
		LogLevel:      "warn",
		LogFormat:     "logfmt",
		ShutdownGrace: 5 * time.Second,
		DataDir:       t.TempDir(),
	}
	if configYAML != "" {
		f.ConfigFile = filepath.Join(t.TempDir(), "gateway.yml")
		if err := os.WriteFile(f.ConfigFile, []byte(configYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if mutate != nil {
		mutate(f)
	}
	cfg, err := LoadConfigFile(f.ConfigFile)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	applyFlags(cfg, f)
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	logger := newLogger(f.LogLevel, f.LogFormat, logw)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan endpoints, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, f, cfg, logger, func(e endpoints) { addrc <- e }) }()
	var g gateway
	select {
	case e := <-addrc:
		g.URL, g.NATS, g.ZMQ = "http://"+e.HTTP, e.NATS, e.ZMQ
	case err := <-errc:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway did not start within 30s")
	}
	var stopped bool
	g.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("gateway stopped with error: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop within 20s")
		}
	}
	t.Cleanup(g.stop)
	return &g
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProfilingEndpoints: Go's profiler is served as Prometheus serves it, so that a slow or
// memory-hungry gateway can be profiled in place.
func TestProfilingEndpoints(t *testing.T) {
	gw := startGateway(t, "", nil)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/allocs?debug=1"} {
		resp, err := http.Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
	}
}
