package hotseries

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/router"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// zmq4 v0.17.0's PUB writer misses the close signal when it is busy sending at that
		// moment and then waits forever: one idle goroutine per closed socket (see zmq.go).
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"),
		// The stalled test subscriber's reader, blocked on its full queue, never sees Close.
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*qreader).listen"),
		// nats-server samples process usage on a process-wide timer once a server has run.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server/pse.periodic"),
	)
}

// series builds one ingest.Series with its hashes set as ingest sets them.
func series(name string, kv map[string]string, t int64, v float64) ingest.Series {
	ls := []ingest.Label{{Name: "__name__", Value: name}}
	for k, val := range kv {
		ls = append(ls, ingest.Label{Name: k, Value: val})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	var key []byte
	for _, l := range ls {
		key = append(key, l.Name...)
		key = append(key, 0xff)
		key = append(key, l.Value...)
		key = append(key, 0xff)
	}
	h, h2 := ingest.KeyHashes(key)
	return ingest.Series{Labels: ls, Hash: h, Hash2: h2, Samples: []ingest.Sample{{T: t, V: v}}}
}

// engine describes one inference server pod of a test fleet.
type engine struct {
	pod, model string
	flavor     string // "vllm", "vllm-old" (pre-0.9 names), "sglang"
	waiting    float64
	running    float64
	kv         float64
}

// engineSeries returns the series an engine exposes at time t (ms); k advances its counters.
func engineSeries(e engine, t int64, k int) []ingest.Series {
	lbl := map[string]string{"namespace": "inference", "pod": e.pod, "model_name": e.model, "instance": "10.0.0.1:8000", "engine": "0"}
	hits, queries := float64(100*k), float64(400*k) // hit rate 0.25
	ttftSum, ttftCount := 0.05*float64(k*10), float64(k*10)
	switch e.flavor {
	case "sglang":
		return []ingest.Series{
			series("sglang:num_queue_reqs", lbl, t, e.waiting),
			series("sglang:num_running_reqs", lbl, t, e.running),
			series("sglang:token_usage", lbl, t, e.kv),
			series("sglang:cache_hit_rate", lbl, t, 0.5),
			series("sglang:time_to_first_token_seconds_sum", lbl, t, ttftSum),
			series("sglang:time_to_first_token_seconds_count", lbl, t, ttftCount),
		}
	case "vllm-old":
		return []ingest.Series{
			series("vllm:num_requests_waiting", lbl, t, e.waiting),
			series("vllm:num_requests_running", lbl, t, e.running),
			series("vllm:gpu_cache_usage_perc", lbl, t, e.kv),
			series("vllm:gpu_prefix_cache_hits_total", lbl, t, hits),
			series("vllm:gpu_prefix_cache_queries_total", lbl, t, queries),
			series("vllm:time_to_first_token_seconds_sum", lbl, t, ttftSum),
			series("vllm:time_to_first_token_seconds_count", lbl, t, ttftCount),
			series("vllm:time_per_output_token_seconds_sum", lbl, t, 0.01*ttftCount),
			series("vllm:time_per_output_token_seconds_count", lbl, t, ttftCount),
		}
	}
	return []ingest.Series{
		series("vllm:num_requests_waiting", lbl, t, e.waiting),
		series("vllm:num_requests_running", lbl, t, e.running),
		series("vllm:kv_cache_usage_perc", lbl, t, e.kv),
		series("vllm:prefix_cache_hits_total", lbl, t, hits),
		series("vllm:prefix_cache_queries_total", lbl, t, queries),
		series("vllm:time_to_first_token_seconds_sum", lbl, t, ttftSum),
		series("vllm:time_to_first_token_seconds_count", lbl, t, ttftCount),
		series("vllm:inter_token_latency_seconds_sum", lbl, t, 0.02*ttftCount),
		series("vllm:inter_token_latency_seconds_count", lbl, t, ttftCount),
		// Cold: not a field.
		series("vllm:num_preemptions_total", lbl, t, 3),
	}
}

// testFleet is three vLLM pods (current names), one pre-0.9 vLLM pod and one SGLang pod.
func testFleet() []engine {
	return []engine{
		{pod: "vllm-a", model: "meta-llama/Llama-3.1-8B-Instruct", flavor: "vllm", waiting: 3, running: 7, kv: 0.42},
		{pod: "vllm-b", model: "meta-llama/Llama-3.1-8B-Instruct", flavor: "vllm", waiting: 0, running: 2, kv: 0.1},
		{pod: "vllm-c", model: "Qwen/Qwen2.5-72B-Instruct", flavor: "vllm", waiting: 12, running: 30, kv: 0.93},
		{pod: "vllm-old", model: "Qwen/Qwen2.5-72B-Instruct", flavor: "vllm-old", waiting: 1, running: 4, kv: 0.5},
		{pod: "sglang-a", model: "deepseek-ai/DeepSeek-V3", flavor: "sglang", waiting: 5, running: 9, kv: 0.77},
	}
}

func fleetRequest(es []engine, t int64, k int) *ingest.Request {
	req := &ingest.Request{Version: ingest.V2}
	for _, e := range es {
		req.Series = append(req.Series, engineSeries(e, t, k)...)
	}
	return req
}

// checkRouting checks a routing message against the engine it describes, after at least two
// writes (so counter rates exist).
func checkRouting(t *testing.T, m router.Message, e engine) {
	t.Helper()
	if m.Status != router.StatusFresh || m.Group != "routing" || m.SchemaVersion != 1 {
		t.Errorf("%s: header %+v", e.pod, m)
	}
	if m.Endpoint["namespace"] != "inference" || m.Endpoint["pod"] != e.pod || m.Model != e.model {
		t.Errorf("%s: identity %v model %q", e.pod, m.Endpoint, m.Model)
	}
	if m.Labels["instance"] != "10.0.0.1:8000" {
		t.Errorf("%s: labels %v", e.pod, m.Labels)
	}
	want := map[string]float64{
		"num_requests_waiting": e.waiting,
		"num_requests_running": e.running,
		"kv_cache_usage":       e.kv,
		"ttft_seconds":         0.05,
	}
	switch e.flavor {
	case "sglang":
		want["prefix_cache_hit_rate"] = 0.5
	default:
		want["prefix_cache_hit_rate"] = 0.25
		want["itl_seconds"] = 0.02
		if e.flavor == "vllm-old" {
			want["itl_seconds"] = 0.01
		}
	}
	for f, v := range want {
		got, ok := m.Metrics[f]
		if !ok || !near(got, v) {
			t.Errorf("%s: %s = %v (present %v), want %v", e.pod, f, got, ok, v)
		}
	}
	if len(m.Metrics) != len(want) {
		t.Errorf("%s: metrics %v, want exactly %v", e.pod, m.Metrics, want)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// fakeTransport records messages.
type fakeTransport struct {
	mu   sync.Mutex
	msgs []router.Message
	raw  []outMessage
}

func (f *fakeTransport) name() string { return "fake" }
func (f *fakeTransport) close() error { return nil }
func (f *fakeTransport) send(m *outMessage) bool {
	dec, err := router.Decode(m.data)
	if err != nil {
		panic(fmt.Sprintf("bad message %s: %v", m.data, err))
	}
	c := *m
	c.data = slices.Clone(m.data)
	f.mu.Lock()
	f.msgs = append(f.msgs, dec)
	f.raw = append(f.raw, c)
	f.mu.Unlock()
	return true
}

func (f *fakeTransport) take() []router.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.msgs
	f.msgs = nil
	return out
}

// latest returns the last message per key.
func latest(ms []router.Message) map[string]router.Message {
	out := map[string]router.Message{}
	for _, m := range ms {
		out[m.Key] = m
	}
	return out
}

// testConfig is the default configuration with the network ports taken off loopback
// defaults: an embedded server on a free loopback port and a ZeroMQ socket on a free port.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.NATS.ListenAddress = "127.0.0.1:0"
	cfg.ZMQ.Bind = "tcp://127.0.0.1:0"
	return cfg
}

// startPublisher builds, starts and runs a publisher, stopping it when the test ends.
func startPublisher(t testing.TB, opts Options) *Publisher {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
