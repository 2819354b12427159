package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/router"
)

// TestHotSeriesThroughTheGateway remote-writes a small vLLM fleet into the whole gateway and
// reads it back as a router would: live messages on eagle_eye.routing_metrics, and the KV
// snapshot for a router that joins afterwards.
func TestHotSeriesThroughTheGateway(t *testing.T) {
	gw := startGateway(t, "hot_series:\n  builtin_groups: [routing]\n", nil)
	if gw.NATS == "" {
		t.Fatal("the gateway reported no NATS URL")
	}
	nc, err := nats.Connect(gw.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	live := make(chan router.Message, 64)
	sub, err := router.Subscribe(nc, router.RoutingSubject, func(m router.Message) { live <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck

	// Three engines: new vLLM names, old vLLM names, SGLang.
	now := time.Now()
	var series []prompb.TimeSeries
	for i, e := range []struct{ waiting, running, kv string }{
		{"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"},
		{"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:gpu_cache_usage_perc"},
		{"sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage"},
	} {
		pod := fmt.Sprintf("engine-%d", i)
		lbl := []string{"namespace", "inference", "pod", pod, "model_name", "llama-3-8b"}
		series = append(series,
			ts(e.waiting, now, float64(10+i), lbl...),
			ts(e.running, now, float64(20+i), lbl...),
			ts(e.kv, now, 0.5+float64(i)/10, lbl...),
		)
	}
	if code, body := postWrite(t, http.DefaultClient, gw.URL, rw1Body(t, series...), nil); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}

	got := map[string]router.Message{}
	deadline := time.After(10 * time.Second)
	for len(got) < 3 {
		select {
		case m := <-live:
			got[m.Endpoint["pod"]] = m
		case <-deadline:
			t.Fatalf("after 10s, messages for %d of 3 endpoints: %v", len(got), got)
		}
	}
	for i := range 3 {
		m := got[fmt.Sprintf("engine-%d", i)]
		want := map[string]float64{"num_requests_waiting": float64(10 + i), "num_requests_running": float64(20 + i), "kv_cache_usage": 0.5 + float64(i)/10}
		for f, v := range want {
			if m.Metrics[f] != v {
				t.Errorf("engine-%d %s = %v, want %v (message %+v)", i, f, m.Metrics[f], v, m)
			}
		}
		if m.Model != "llama-3-8b" || m.Status != router.StatusFresh || m.SampleTimestamp != now.UnixMilli() {
			t.Errorf("engine-%d: model %q status %q sample_timestamp %d", i, m.Model, m.Status, m.SampleTimestamp)
		}
	}

	// A router that joins now reads every endpoint's state at once from the KV bucket.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := router.Watch(ctx, nc, router.Options{Group: "routing"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop() //nolint:errcheck
	if snap := w.Snapshot(); len(snap) != 3 {
		t.Fatalf("late router's snapshot has %d endpoints, want 3: %+v", len(snap), snap)
	}
}
