package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// TestForwardingThroughTheGateway configures a real Prometheus as the gateway's long-term
// storage and checks that what the gateway acknowledges arrives there, and that the status
// endpoint reports the destination.
func TestForwardingThroughTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus; skipped with -short")
	}
	dest := promtest.Start(t, "global: {scrape_interval: 1m}\n", "--web.enable-remote-write-receiver")
	gw := startGateway(t, fmt.Sprintf("remote_write:\n  - url: %s/api/v1/write\n    name: longterm\n", dest.URL), nil)

	now := time.Now().Truncate(time.Second)
	for i := range 5 {
		var series []prompb.TimeSeries
		for pod := range 20 {
			series = append(series, ts("forwarded_total", now.Add(time.Duration(i-5)*time.Second), float64(i), "pod", fmt.Sprint(pod)))
		}
		if code, body := postWrite(t, http.DefaultClient, gw.URL, rw1Body(t, series...), nil); code != http.StatusNoContent {
			t.Fatalf("write %d: %d %s", i, code, body)
		}
	}
	// 100 samples, values 0..4 per pod: count 100, sum 20 × 10 = 200.
	q := url.Values{"query": {`sum(count_over_time(forwarded_total[1m])) * 1000 + sum(sum_over_time(forwarded_total[1m]))`}, "time": {unix(now)}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, code, err := promtest.Get(context.Background(), dest.URL, "/api/v1/query", q)
		if err == nil && code == 200 && strings.Contains(string(r.Data), `"100200"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination after 30s: code %d err %v data %v; want 100 samples summing to 200", code, err, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, body := httpGet(t, gw.URL+"/api/v1/status/forward")
	if code != 200 || !strings.Contains(body, "longterm") {
		t.Errorf("/api/v1/status/forward: %d %s", code, body)
	}
}

func TestForwardingNeedsADurableQueueDir(t *testing.T) {
	cfg, err := ParseConfig([]byte("remote_write:\n  - url: http://127.0.0.1:1/api/v1/write\n"), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), &Flags{ListenAddress: "127.0.0.1:0", ShutdownGrace: time.Second}, cfg, newLogger("error", "logfmt", io.Discard), nil)
	if err == nil || !strings.Contains(err.Error(), "--forward.queue-dir") {
		t.Fatalf("run without a durable queue dir: %v", err)
	}
}
