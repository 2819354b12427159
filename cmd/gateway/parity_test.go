package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// demoTarget serves a small inference-node-like set of metrics that change every 100ms:
// counters, gauges, a classic histogram with exemplars and a native histogram.
func demoTarget(t *testing.T) string {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "demo_requests_total", Help: "Requests served."}, []string{"code", "model_name"})
	temp := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "demo_gpu_temperature_celsius", Help: "GPU temperature."}, []string{"gpu", "UUID"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "demo_latency_seconds", Help: "Request latency.", Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5}}, []string{"model_name"})
	ttft := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "demo_ttft_seconds", Help: "Time to first token.", NativeHistogramBucketFactor: 1.1})
	reg.MustRegister(reqs, temp, lat, ttft)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			mu.Lock()
			for _, code := range []string{"200", "500"} {
				for _, m := range []string{"llama-3-8b", "qwen2-72b"} {
					reqs.WithLabelValues(code, m).Add(float64(rng.IntN(5)))
				}
			}
			for g := range 4 {
				temp.WithLabelValues(strconv.Itoa(g), fmt.Sprintf("GPU-%08x", g)).Set(40 + 40*rng.Float64())
			}
			for range 10 {
				v := rng.ExpFloat64() / 5
				lat.WithLabelValues("llama-3-8b").(prometheus.ExemplarObserver).ObserveWithExemplar(v, prometheus.Labels{"trace_id": strconv.Itoa(i)})
				ttft.Observe(v / 3)
			}
			mu.Unlock()
		}
	}()
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func prometheusConfig(target, gatewayURL, protobufMessage string) string {
	return fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: demo
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs:
      - targets: [%q]
        labels: {Hostname: node-a7, namespace: inference}
remote_write:
  - url: %s/api/v1/write
    protobuf_message: %s
    send_exemplars: true
    send_native_histograms: true
    metadata_config: {send: true, send_interval: 1s}
    queue_config: {batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}
`, target, gatewayURL, protobufMessage)
}

// parityQueries are evaluated on Prometheus and on the gateway; answers must be identical.
var parityQueries = []string{
	`up`,
	`demo_requests_total`,
	`rate(demo_requests_total[5s])`,
	`sum by (code) (rate(demo_requests_total{model_name=~"llama.*"}[5s]))`,
	`topk(2, demo_gpu_temperature_celsius)`,
	`max_over_time(demo_gpu_temperature_celsius[5s]) - min_over_time(demo_gpu_temperature_celsius[5s])`,
	`avg(demo_gpu_temperature_celsius) by (Hostname)`,
	`histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[5s])))`,
	`histogram_quantile(0.99, sum(rate(demo_ttft_seconds[5s])))`,
	`histogram_count(rate(demo_ttft_seconds[5s]))`,
	`demo_ttft_seconds`,
	`count by (__name__) ({job="demo"})`,
	`absent(nonexistent_metric)`,
	`scalar(sum(up)) * 2`,
}

func TestPrometheusRemoteWriteParity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus; skipped with -short")
	}
	for _, tc := range []struct{ name, msg string }{
		{"rw1", "prometheus.WriteRequest"},
		{"rw2", "io.prometheus.write.v2.Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			promtest.Binary(t) // build before the clock starts
			gw := startGateway(t, "", nil)
			target := demoTarget(t)
			// RW 2.0 carries metadata only with metadata-wal-records on the sender.
			prom := promtest.Start(t, prometheusConfig(target, gw.URL, tc.msg), "--enable-feature=exemplar-storage,metadata-wal-records")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			// Let 12 scrapes happen, then compare at a fixed time that both must have.
			time.Sleep(12 * time.Second)
			end := time.Now().Add(-2 * time.Second).Truncate(time.Second)
			start := end.Add(-8 * time.Second)
			for _, q := range parityQueries {
				instant := url.Values{"query": {q}, "time": {unix(end)}}
				assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/query", instant, false)
				rng := url.Values{"query": {q}, "start": {unix(start)}, "end": {unix(end)}, "step": {"1"}}
				assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/query_range", rng, true)
			}
			// Series and label endpoints, as Grafana calls them.
			se := url.Values{"match[]": {`{job="demo"}`}, "start": {unix(start)}, "end": {unix(end)}}
			assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/series", se, true)
			assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/labels", se, true)
			assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/label/code/values", se, false)
			// Exemplars: whatever Prometheus stored for the window, the gateway stored too.
			ex := url.Values{"query": {`demo_latency_seconds_bucket`}, "start": {unix(start)}, "end": {unix(end)}}
			assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/query_exemplars", ex, false)
			// Metadata sent by remote write is served like Prometheus serves scraped metadata.
			md := url.Values{"metric": {"demo_requests_total"}}
			assertSameAnswer(ctx, t, prom.URL, gw.URL, "/api/v1/metadata", md, false)
			if tc.name == "rw1" {
				assertGrafanaRequests(ctx, t, prom.URL, gw.URL, start, end)
			}
		})
	}
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64) }

// assertSameAnswer polls the gateway (data arrives by remote write a moment after Prometheus
// stores it) until its answer equals Prometheus', or fails with both answers.
func assertSameAnswer(ctx context.Context, t *testing.T, promURL, gwURL, path string, params url.Values, post bool) {
	t.Helper()
	call := promtest.Get
	if post {
		call = promtest.PostForm // Grafana's default method
	}
	want, code, err := call(ctx, promURL, path, params)
	if err != nil || code != http.StatusOK || want.Status != "success" {
		t.Fatalf("prometheus %s %v: code %d, err %v, resp %+v", path, params, code, err, want)
	}
	wantN := normalize(t, want.Data)
	if isEmpty(wantN) && !strings.Contains(params.Get("query"), "absent") {
		t.Fatalf("prometheus answered %s %v with no data; the comparison would prove nothing", path, params)
	}
	var got *promtest.Response
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, code, err = call(ctx, gwURL, path, params)
		if err == nil && code == http.StatusOK && got.Status == "success" && reflect.DeepEqual(normalize(t, got.Data), wantN) {
			return
		}
		if time.Now().After(deadline) {
			wb, _ := json.Marshal(wantN)
			var gb []byte
			if got != nil {
				gb, _ = json.Marshal(normalize(t, got.Data))
			}
			t.Errorf("%s %v differs after 20s\nprometheus: %.3000s\ngateway (code %d, err %v): %.3000s", path, params, wb, code, err, gb)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// normalize decodes an API answer and sorts lists whose order Prometheus leaves unspecified.
func normalize(t *testing.T, raw json.RawMessage) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode data: %v", err)
	}
	sortLists(v)
	return v
}

func sortLists(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			sortLists(e)
		}
	case []any:
		for _, e := range x {
			sortLists(e)
		}
		sort.SliceStable(x, func(i, j int) bool {
			a, _ := json.Marshal(x[i])
			b, _ := json.Marshal(x[j])
			return string(a) < string(b)
		})
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	case map[string]any:
		if r, ok := x["result"]; ok {
			return isEmpty(r)
		}
		return len(x) == 0
	}
	return false
}
