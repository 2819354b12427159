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
	// Those writes went as they arrived (RW 1.0 to an RW 1.0 destination).
	if !strings.Contains(body, `"passthrough_samples": 100`) {
		t.Errorf("status does not show the 100 samples passed through: %s", body)
	}

	// A write with one sample older than its series' last: the window refuses it (400 for that
	// part), the rest is forwarded without it. Passed through as it arrived, the whole body
	// would be refused by Prometheus (no out-of-order window) and the fresh samples lost.
	series := []prompb.TimeSeries{ts("forwarded_total", now.Add(-10*time.Second), 99, "pod", "0")}
	for pod := range 20 {
		series = append(series, ts("fresh_total", now, 1, "pod", fmt.Sprint(pod)))
	}
	if code, body := postWrite(t, http.DefaultClient, gw.URL, rw1Body(t, series...), nil); code != http.StatusBadRequest {
		t.Fatalf("write with an out-of-order sample: %d %s, want 400", code, body)
	}
	q = url.Values{"query": {`count(fresh_total) * 1000 + sum(count_over_time(forwarded_total{pod="0"}[1m]))`}, "time": {unix(now)}}
	deadline = time.Now().Add(30 * time.Second)
	for {
		r, code, err := promtest.Get(context.Background(), dest.URL, "/api/v1/query", q)
		if err == nil && code == 200 && strings.Contains(string(r.Data), `"20005"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination after 30s: code %d err %v data %v; want 20 fresh series and pod 0's 5 samples", code, err, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, body := httpGet(t, gw.URL+"/api/v1/status/forward"); strings.Contains(body, "http_400") {
		t.Errorf("the destination refused a request: %s", body)
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
