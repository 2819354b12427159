package hotseries

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/model"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/internal/fleet"
	"github.com/eagle-eye-ai/eagle-eye/router"
)

// hotNames are ten routing-group series of a vLLM engine (nine current names, one old).
var hotNames = []string{
	"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
	"vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
	"vllm:time_to_first_token_seconds_sum", "vllm:time_to_first_token_seconds_count",
	"vllm:inter_token_latency_seconds_sum", "vllm:inter_token_latency_seconds_count",
	"vllm:gpu_cache_usage_perc",
}

// mixedRequest is n series of which one in ten is hot for the routing group: vLLM engine
// series of n/100 pods, the rest DCGM GPU series of the benchmark fleet.
func mixedRequest(n int, podPrefix string) *ingest.Request {
	req := &ingest.Request{Version: ingest.V2}
	cold := 0
	for i := range n {
		if i%10 == 0 {
			j := i / 10
			l := map[string]string{"namespace": "inference", "pod": fmt.Sprintf("%s-%d", podPrefix, j/len(hotNames)), "model_name": "meta-llama/Llama-3.1-8B-Instruct",
				"instance": "10.1.2.3:8000", "engine": "0", "job": "vllm", "container": "vllm", "endpoint": "metrics"}
			req.Series = append(req.Series, series(hotNames[j%len(hotNames)], l, 1, float64(i)))
			continue
		}
		// The fleet's nodes have 160 GPU series, then 60 engine series: GPU series only.
		l := map[string]string{}
		var name string
		for _, x := range fleet.Series(cold/160*220 + cold%160) {
			if x.Name == "__name__" {
				name = x.Value
			} else {
				l[x.Name] = x.Value
			}
		}
		req.Series = append(req.Series, series(name, l, 1, float64(i)))
		cold++
	}
	return req
}

func setT(req *ingest.Request, t int64) {
	for i := range req.Series {
		req.Series[i].Samples[0].T = t
	}
}

func routingOnlyMode(mode string, interval time.Duration) Config {
	cfg := DefaultConfig()
	cfg.BuiltinGroups = nil
	g := routingGroup()
	g.Mode = mode
	g.Interval = model.Duration(interval)
	cfg.Groups = []GroupConfig{g}
	cfg.NATS.ListenAddress = "127.0.0.1:0"
	cfg.ZMQ.Enabled = false
	return cfg
}

// BenchmarkWrite is the sink's cost on the write path: a 100k-series request, 10% hot.
func BenchmarkWrite(b *testing.B) {
	req := mixedRequest(100_000, "pod")
	p, err := New(Options{Config: routingOnlyMode(ModeInterval, time.Second), transports: []transport{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	t := int64(1000)
	setT(req, t)
	if _, err := p.Write(ctx, req); err != nil { // warm the cache, as in steady state
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		t += 1000
		setT(req, t)
		if _, err := p.Write(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(req.Series)), "ns/sample")
	b.ReportMetric(float64(len(p.groups[0].endpoints)), "endpoints")
}

// BenchmarkWriteColdCache is the first write of every series: membership decided, strings
// copied.
func BenchmarkWriteColdCache(b *testing.B) {
	req := mixedRequest(100_000, "pod")
	b.ReportAllocs()
	for b.Loop() {
		p, err := New(Options{Config: routingOnlyMode(ModeInterval, time.Second), transports: []transport{}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Write(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(req.Series)), "ns/sample")
}

// BenchmarkIngestToSubscriber measures ingest → router latency in on-ingest mode over the
// embedded NATS server (the router on TCP), while a background writer keeps the publisher
// at half of its maximum write rate with 100k-series requests (10% hot: 100 more endpoints
// publishing), and with no other load. Run with a fixed count: -benchtime=2000x.
func BenchmarkIngestToSubscriber(b *testing.B) {
	b.Run("load=half", func(b *testing.B) { benchLatency(b, true) })
	b.Run("load=none", func(b *testing.B) { benchLatency(b, false) })
}

// probeMarker is in every message about a timed endpoint (its pod label).
var probeMarker = []byte(`"probe-`)

func benchLatency(b *testing.B, withLoad bool) {
	p := startPublisher(b, Options{Config: routingOnlyMode(ModeOnIngest, time.Second)})
	nc, err := nats.Connect(p.NATSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	const base = int64(1) << 40
	starts := make([]atomic.Int64, b.N)
	lat := make([]float64, 0, b.N)
	var mu sync.Mutex
	sub, err := nc.Subscribe(router.RoutingSubject, func(msg *nats.Msg) {
		now := time.Now().UnixNano()
		// The load's endpoints are not timed: skip their messages before decoding, as the
		// router probe of scripts/bench-router-latency.sh does, so that the subscriber's own
		// JSON decoding of every endpoint (a router's work, on the same two cores here) does
		// not queue the timed messages.
		if !bytes.Contains(msg.Data, probeMarker) {
			return
		}
		m, err := router.Decode(msg.Data)
		if err != nil || m.Endpoint["pod"][:5] != "probe" {
			return
		}
		i := m.SampleTimestamp - base
		if i < 0 || i >= int64(len(starts)) {
			return
		}
		if s := starts[i].Swap(0); s != 0 {
			mu.Lock()
			lat = append(lat, float64(now-s)/1e6)
			mu.Unlock()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	_ = nc.Flush()

	// Background load at half the maximum rate: write, then idle as long as the write took.
	load := mixedRequest(100_000, "load")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var loadWrites atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for t := int64(1); withLoad && ctx.Err() == nil; t++ {
			setT(load, t*1000)
			start := time.Now()
			_, _ = p.Write(ctx, load)
			loadWrites.Add(1)
			time.Sleep(time.Since(start))
		}
	}()

	const probes = 250 // each probe endpoint is written every 250 iterations, beyond min_gap
	reqs := make([]*ingest.Request, probes)
	for i := range reqs {
		l := map[string]string{"namespace": "inference", "pod": fmt.Sprintf("probe-%d", i), "model_name": "m"}
		reqs[i] = &ingest.Request{Series: []ingest.Series{series("vllm:num_requests_waiting", l, 0, 1), series("vllm:kv_cache_usage_perc", l, 0, 0.5)}}
	}
	b.ResetTimer()
	began := time.Now()
	for i := 0; i < b.N; i++ {
		r := reqs[i%probes]
		setT(r, base+int64(i))
		starts[i].Store(time.Now().UnixNano())
		_, _ = p.Write(ctx, r)
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(began)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(lat)
		mu.Unlock()
		if n >= b.N || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < b.N*9/10 {
		b.Fatalf("only %d of %d probe messages arrived", len(lat), b.N)
	}
	slices.Sort(lat)
	b.ReportMetric(quantile(lat, 0.5), "p50-ms")
	b.ReportMetric(quantile(lat, 0.99), "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	b.ReportMetric(float64(loadWrites.Load())/elapsed.Seconds(), "load-writes/s")
}

func quantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Min(float64(len(sorted)-1), q*float64(len(sorted))))]
}

// BenchmarkPublish measures one interval round publishing 10k endpoints (6 fields each) to
// the embedded NATS server (subject and KV).
func BenchmarkPublish(b *testing.B) {
	cfg := routingOnlyMode(ModeInterval, time.Hour)
	cfg.NATS.ListenAddress = ""
	cfg.NATS.KVStorage = "memory"
	p, err := New(Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := &ingest.Request{} // 10k endpoints, 10 hot series each
	for i := range 100_000 {
		l := map[string]string{"namespace": "inference", "pod": fmt.Sprintf("pod-%d", i/len(hotNames)), "model_name": "meta-llama/Llama-3.1-8B-Instruct", "instance": "10.1.2.3:8000"}
		req.Series = append(req.Series, series(hotNames[i%len(hotNames)], l, 1, float64(i)))
	}
	g := p.groups[0]
	sc := &scratch{devIdx: map[string]int{}}
	var msgs int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		setT(req, int64(i+1)*1000)
		_, _ = p.Write(context.Background(), req)
		b.StartTimer()
		before := g.seq
		p.publishDirty(g, sc, time.Now(), false)
		msgs += int(g.seq - before)
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(msgs)/secs, "msgs/s")
	b.ReportMetric(float64(msgs*len(g.fields))/secs, "fields/s")
}

// TestStalledSubscribersNeverSlowWrite stalls a ZeroMQ subscriber (it never reads) and a NATS
// subscriber (its handler blocks) while writes publish thousands of messages on ingest:
// Write stays as fast as without them and a healthy router keeps receiving.
func TestStalledSubscribersNeverSlowWrite(t *testing.T) {
	cfg := routingOnlyMode(ModeOnIngest, time.Second)
	cfg.ZMQ = DefaultConfig().ZMQ
	cfg.ZMQ.Bind = "tcp://127.0.0.1:0"
	cfg.ZMQ.QueueSize = 64
	cfg.ZMQ.HighWaterMark = 64
	cfg.Groups[0].MinGap = model.Duration(time.Millisecond)
	p := startPublisher(t, Options{Config: cfg})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := mixedRequest(20_000, "pod") // 200 endpoints, 2000 hot series
	const writes = 300
	step := 0
	measure := func() time.Duration {
		var total time.Duration
		for range writes {
			step++
			setT(req, int64(step)*1000)
			start := time.Now()
			if _, err := p.Write(ctx, req); err != nil {
				t.Fatal(err)
			}
			total += time.Since(start)
			time.Sleep(2 * time.Millisecond)
		}
		return total / writes
	}
	baseline := measure() // publishing, nobody listening

	stalledZMQ := zmq4.NewSub(ctx)
	defer stalledZMQ.Close()
	if err := stalledZMQ.Dial(p.ZMQAddress()); err != nil {
		t.Fatal(err)
	}
	if err := stalledZMQ.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		t.Fatal(err)
	}

	stalledNC, err := nats.Connect(p.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer stalledNC.Close()
	release := make(chan struct{})
	defer close(release)
	if _, err := stalledNC.Subscribe(router.RoutingSubject, func(*nats.Msg) { <-release }); err != nil {
		t.Fatal(err)
	}
	healthy, err := nats.Connect(p.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()
	var got atomic.Int64
	if _, err := healthy.Subscribe(router.RoutingSubject, func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	_ = stalledNC.Flush()
	_ = healthy.Flush()
	time.Sleep(50 * time.Millisecond) // the ZeroMQ subscription takes effect

	stalled := measure()
	t.Logf("Write of 20k series: mean %s with no subscriber, %s with stalled ones; healthy router got %d messages", baseline, stalled, got.Load())
	if stalled > 3*baseline+2*time.Millisecond {
		t.Errorf("mean Write %s with stalled subscribers, %s without: they slow ingest", stalled, baseline)
	}
	if got.Load() < 200 {
		t.Errorf("healthy router got %d messages", got.Load())
	}
}
