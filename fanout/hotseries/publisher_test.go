package hotseries

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/router"
)

// runFake runs a publisher with a recording transport inside a synctest bubble.
func runFake(t *testing.T, cfg Config, fn func(p *Publisher, ft *fakeTransport, reg *prometheus.Registry)) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		reg := prometheus.NewRegistry()
		p, err := New(Options{Config: cfg, Registerer: reg, transports: []transport{ft}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		fn(p, ft, reg)
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
}

func write(t *testing.T, p *Publisher, req *ingest.Request) {
	t.Helper()
	want := 0
	for _, s := range req.Series {
		want += len(s.Samples)
	}
	st, err := p.Write(context.Background(), req)
	if err != nil || st.Samples != want {
		t.Fatalf("Write = %+v, %v; want %d samples, nil", st, err, want)
	}
}

func TestRoutingFieldsAcrossEngines(t *testing.T) {
	fleet := testFleet()
	runFake(t, DefaultConfig(), func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		now := time.Now().UnixMilli()
		write(t, p, fleetRequest(fleet, now, 1))
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		first := latest(ft.take())
		if len(first) != len(fleet) {
			t.Fatalf("after one write: %d endpoints published, want %d", len(first), len(fleet))
		}
		// One sample per counter: no rates yet, and they say so.
		if m := first["routing.inference.vllm-a"]; !strings.Contains(strings.Join(m.Missing, ","), "ttft_seconds") {
			t.Errorf("first message should list ttft_seconds as missing: %+v", m)
		}
		write(t, p, fleetRequest(fleet, now+1000, 2))
		time.Sleep(time.Second)
		synctest.Wait()
		msgs := ft.take()
		if len(msgs) != len(fleet) {
			t.Fatalf("second round: %d messages, want one per endpoint (%d)", len(msgs), len(fleet))
		}
		got := latest(msgs)
		for _, e := range fleet {
			m, ok := got["routing.inference."+escape(e.pod)]
			if !ok {
				t.Fatalf("no message for %s; got keys %v", e.pod, keys(got))
			}
			checkRouting(t, m, e)
			if m.SampleTimestamp != now+1000 {
				t.Errorf("sample_timestamp %d, want %d", m.SampleTimestamp, now+1000)
			}
		}
		// Sequence numbers run without gaps per group.
		for i := 1; i < len(msgs); i++ {
			if msgs[i].Seq != msgs[i-1].Seq+1 {
				t.Errorf("seq %d after %d", msgs[i].Seq, msgs[i-1].Seq)
			}
		}
		// Nothing new written: nothing published.
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(ft.take()); n != 0 {
			t.Errorf("%d messages without new samples", n)
		}
	})
}

func TestDataParallelEnginesAreCombined(t *testing.T) {
	runFake(t, DefaultConfig(), func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		now := time.Now().UnixMilli()
		req := &ingest.Request{}
		for i, v := range []struct{ waiting, kv float64 }{{2, 0.3}, {5, 0.8}} {
			l := map[string]string{"namespace": "ns", "pod": "dp", "engine": string(rune('0' + i)), "model_name": "m"}
			req.Series = append(req.Series,
				series("vllm:num_requests_waiting", l, now, v.waiting),
				series("vllm:kv_cache_usage_perc", l, now, v.kv),
				// vLLM 0.9-0.10 exposes the deprecated name too: it must not count twice.
				series("vllm:gpu_cache_usage_perc", l, now, v.kv))
		}
		write(t, p, req)
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		m := latest(ft.take())["routing.ns.dp"]
		if m.Metrics["num_requests_waiting"] != 7 || m.Metrics["kv_cache_usage"] != 0.8 {
			t.Errorf("metrics %v: want waiting summed (7) and KV use the fullest engine (0.8)", m.Metrics)
		}
	})
}

func TestHardwareGroup(t *testing.T) {
	runFake(t, DefaultConfig(), func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		now := time.Now().UnixMilli()
		req := &ingest.Request{}
		for gpu, v := range []struct{ util, copy, used, free, dbe float64 }{{90, 40, 60000, 20000, 0}, {30, 10, 20000, 60000, 2}} {
			l := map[string]string{"node": "node-1", "gpu": string(rune('0' + gpu)), "UUID": "GPU-" + string(rune('a'+gpu)),
				"modelName": "NVIDIA H100 80GB HBM3", "Hostname": "node-1"}
			req.Series = append(req.Series,
				series("DCGM_FI_DEV_GPU_UTIL", l, now, v.util),
				series("DCGM_FI_DEV_MEM_COPY_UTIL", l, now, v.copy),
				series("DCGM_FI_DEV_FB_USED", l, now, v.used),
				series("DCGM_FI_DEV_FB_FREE", l, now, v.free),
				series("DCGM_FI_DEV_ROW_REMAP_FAILURE", l, now, 0),
				series("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", l, now, v.dbe),
				series("eagle_eye_gpu_reachable", l, now, 1),
				// DCGM's NOT_SUPPORTED sentinel: treated as missing.
				series("DCGM_FI_DEV_GPU_TEMP", l, now, 9223372036854775794))
		}
		write(t, p, req)
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		m, ok := latest(ft.take())["hardware.node-1"]
		if !ok {
			t.Fatal("no hardware message")
		}
		want := map[string]float64{"device_count": 2, "gpu_util": 60, "gpu_util_max": 90, "mem_copy_util": 25, "mem_copy_util_max": 40, "fb_used_ratio": 0.5, "healthy": 0, "devices_reachable": 2}
		for f, v := range want {
			if !near(m.Metrics[f], v) {
				t.Errorf("%s = %v, want %v (metrics %v)", f, m.Metrics[f], v, m.Metrics)
			}
		}
		if !near(m.Devices["0"]["fb_used_ratio"], 0.75) || m.Devices["1"]["gpu_util"] != 30 || m.Devices["0"]["healthy"] != 1 || m.Devices["1"]["healthy"] != 0 {
			t.Errorf("devices %v", m.Devices)
		}
		if m.Labels["modelName"] != "NVIDIA H100 80GB HBM3" || m.Labels["Hostname"] != "node-1" {
			t.Errorf("labels %v", m.Labels)
		}
		if !strings.Contains(strings.Join(m.Missing, ","), "gpu_temp_max") {
			t.Errorf("gpu_temp_max from blank sentinels should be missing: %v", m.Missing)
		}
	})
}

func TestNetworkGroup(t *testing.T) {
	runFake(t, DefaultConfig(), func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		now := time.Now().UnixMilli()
		// Two InfiniBand ports as probe/netdev writes them, and a NIC with counters only.
		req := func(t int64, k float64) *ingest.Request {
			r := &ingest.Request{}
			for _, dev := range []string{"mlx5_0", "mlx5_1"} {
				l := map[string]string{"node": "gpu-node-1", "device": dev, "port": "1"}
				r.Series = append(r.Series,
					series("node_infiniband_port_data_received_bytes_total", l, t, k*10e9),
					series("node_infiniband_port_data_transmitted_bytes_total", l, t, k*5e9),
					series("node_infiniband_rate_bytes_per_second", l, t, 50e9),
					series("eagle_eye_network_receive_bytes_per_second", l, t, 10e9),
					series("eagle_eye_network_transmit_bytes_per_second", l, t, 5e9),
					series("eagle_eye_network_remaining_bandwidth_bytes_per_second", l, t, 40e9))
			}
			l := map[string]string{"node": "gpu-node-2", "device": "eth0"}
			r.Series = append(r.Series,
				series("node_network_receive_bytes_total", l, t, k*1e9),
				series("node_network_transmit_bytes_total", l, t, k*2e9),
				series("node_network_speed_bytes", l, t, 12.5e9))
			return r
		}
		write(t, p, req(now, 1))
		write(t, p, req(now+1000, 2))
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		got := latest(ft.take())
		m, ok := got["network.gpu-node-1"]
		if !ok {
			t.Fatalf("no network message: %v", keys(got))
		}
		want := map[string]float64{"rx_bytes_per_second": 20e9, "tx_bytes_per_second": 10e9, "capacity_bytes_per_second": 100e9,
			"available_bytes_per_second": 80e9, "rx_available_bytes_per_second": 80e9, "tx_available_bytes_per_second": 90e9, "links": 2}
		for f, v := range want {
			if m.Metrics[f] != v {
				t.Errorf("%s = %v, want %v", f, m.Metrics[f], v)
			}
		}
		if m.Devices["mlx5_1"]["tx_available_bytes_per_second"] != 45e9 || m.Devices["mlx5_0"]["capacity_bytes_per_second"] != 50e9 {
			t.Errorf("devices %v", m.Devices)
		}
		// Counters only: rates from the counters.
		n := got["network.gpu-node-2"]
		if n.Metrics["rx_bytes_per_second"] != 1e9 || n.Metrics["tx_available_bytes_per_second"] != 10.5e9 {
			t.Errorf("NIC from counters: %v", n.Metrics)
		}
	})
}

func TestStaleWithinTwoIntervalsThenRemoved(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BuiltinGroups = nil
	g := routingGroup()
	g.Interval = model.Duration(100 * time.Millisecond)
	g.StaleAfter = model.Duration(200 * time.Millisecond)
	g.RemovedAfter = model.Duration(time.Second)
	cfg.Groups = []GroupConfig{g}
	fleet := testFleet()[:2]
	runFake(t, cfg, func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		// Both report every interval for a while, then vllm-a stops.
		var stoppedAt time.Time
		for i := range 30 {
			es := fleet
			if i >= 10 {
				es = fleet[1:]
				if stoppedAt.IsZero() {
					stoppedAt = time.Now()
				}
			}
			write(t, p, fleetRequest(es, time.Now().UnixMilli(), i))
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		var stale, removed *router.Message
		for _, m := range ft.take() {
			if m.Endpoint["pod"] != "vllm-a" {
				if m.Status != router.StatusFresh {
					t.Errorf("vllm-b went %s while reporting", m.Status)
				}
				continue
			}
			switch m.Status {
			case router.StatusStale:
				if stale != nil {
					t.Error("more than one stale message")
				}
				stale = &m
			case router.StatusRemoved:
				removed = &m
			}
		}
		if stale == nil || removed == nil {
			t.Fatalf("stale %v removed %v", stale, removed)
		}
		// The last write was 100ms before stoppedAt.
		lastWrite := stoppedAt.Add(-100 * time.Millisecond)
		if d := time.UnixMilli(stale.PublishTimestamp).Sub(lastWrite); d > time.Duration(g.StaleAfter)+2*time.Duration(g.Interval) {
			t.Errorf("stale after %s; want within stale_after + 2 intervals", d)
		}
		if stale.Metrics["num_requests_waiting"] != 3 {
			t.Errorf("a stale message carries the last values: %v", stale.Metrics)
		}
		if len(removed.Metrics) != 0 {
			t.Errorf("removed message with metrics %v", removed.Metrics)
		}
		if d := time.UnixMilli(removed.PublishTimestamp).Sub(lastWrite); d < time.Second || d > time.Second+2*time.Duration(g.Interval) {
			t.Errorf("removed after %s, want about 1s", d)
		}
		// Coming back makes it fresh again.
		write(t, p, fleetRequest(fleet[:1], time.Now().UnixMilli(), 40))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		back := latest(ft.take())["routing.inference.vllm-a"]
		if back.Status != router.StatusFresh {
			t.Errorf("after returning: %+v", back)
		}
	})
}

// onIngestRouting is a configuration with the routing group alone, publishing on ingest with
// the given min_gap.
func onIngestRouting(minGap time.Duration) Config {
	cfg := DefaultConfig()
	cfg.BuiltinGroups = nil
	g := routingGroup()
	g.Mode = ModeOnIngest
	g.MinGap = model.Duration(minGap)
	cfg.Groups = []GroupConfig{g}
	return cfg
}

func TestOnIngestMinGap(t *testing.T) {
	cfg := onIngestRouting(100 * time.Millisecond)
	e := testFleet()[:1]
	runFake(t, cfg, func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		start := time.Now()
		write(t, p, fleetRequest(e, start.UnixMilli(), 1))
		synctest.Wait()
		if n := len(ft.take()); n != 1 {
			t.Fatalf("on-ingest: %d messages right after the write, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
		write(t, p, fleetRequest(e, time.Now().UnixMilli(), 2))
		synctest.Wait()
		if n := len(ft.take()); n != 0 {
			t.Fatalf("%d messages within min_gap", n)
		}
		time.Sleep(90 * time.Millisecond)
		synctest.Wait()
		ms := ft.take()
		if len(ms) != 1 || time.UnixMilli(ms[0].PublishTimestamp).Sub(start) != 100*time.Millisecond {
			t.Fatalf("deferred message: %+v", ms)
		}
		if ms[0].Metrics["ttft_seconds"] != 0.05 {
			t.Errorf("deferred message carries the newest values: %v", ms[0].Metrics)
		}
	})
}

func TestLimitsAndDrops(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEndpointsPerGroup = 2
	runFake(t, cfg, func(p *Publisher, ft *fakeTransport, reg *prometheus.Registry) {
		write(t, p, fleetRequest(testFleet(), time.Now().UnixMilli(), 1))
		// A series without the endpoint labels.
		write(t, p, &ingest.Request{Series: []ingest.Series{series("vllm:num_requests_waiting", map[string]string{"instance": "x"}, 1, 1)}})
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if n := len(ft.take()); n != 2 {
			t.Errorf("%d messages, want 2 (the endpoint limit)", n)
		}
		dropped := testutil.ToFloat64(p.m.dropped[dropEndpointLimit])
		if dropped == 0 {
			t.Error("endpoint limit drops not counted")
		}
		if v := testutil.ToFloat64(p.m.dropped[dropNoEndpointLabels]); v != 1 {
			t.Errorf("missing endpoint labels counted %v, want 1", v)
		}
		if n, err := testutil.GatherAndCount(reg, "eagle_eye_hot_series_endpoints"); err != nil || n != 3 {
			t.Errorf("endpoints gauge: %d series, %v", n, err)
		}
	})
}

func TestStaleMarkerEndsSeries(t *testing.T) {
	runFake(t, DefaultConfig(), func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		now := time.Now().UnixMilli()
		l := map[string]string{"namespace": "ns", "pod": "p"}
		write(t, p, &ingest.Request{Series: []ingest.Series{series("vllm:num_requests_waiting", l, now, 4), series("vllm:kv_cache_usage_perc", l, now, 0.5)}})
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		ft.take()
		write(t, p, &ingest.Request{Series: []ingest.Series{
			series("vllm:num_requests_waiting", l, now+500, 5),
			series("vllm:kv_cache_usage_perc", l, now+500, math.Float64frombits(value.StaleNaN)),
		}})
		time.Sleep(time.Second)
		synctest.Wait()
		m := latest(ft.take())["routing.ns.p"]
		if _, ok := m.Metrics["kv_cache_usage"]; ok || m.Metrics["num_requests_waiting"] != 5 {
			t.Errorf("after a stale marker: %v", m.Metrics)
		}
	})
}

// TestRequestMemoryNotRetained writes series whose strings live in a buffer that is then
// overwritten, as ingest's pooled buffers are; the published message must not change.
func TestRequestMemoryNotRetained(t *testing.T) {
	runFake(t, DefaultConfig(), func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		s := series("vllm:num_requests_waiting", map[string]string{"namespace": "ns", "pod": "pod-1", "model_name": "model-x", "instance": "h:1"}, time.Now().UnixMilli(), 1)
		buf := []byte{}
		for _, l := range s.Labels {
			buf = append(buf, l.Name...)
			buf = append(buf, l.Value...)
		}
		off := 0
		for i, l := range s.Labels {
			n, v := len(l.Name), len(l.Value)
			s.Labels[i] = ingest.Label{Name: unsafe.String(&buf[off], n), Value: unsafe.String(&buf[off+n], v)}
			off += n + v
		}
		write(t, p, &ingest.Request{Series: []ingest.Series{s}})
		for i := range buf {
			buf[i] = 'X'
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		m := latest(ft.take())["routing.ns.pod-1"]
		if m.Endpoint["pod"] != "pod-1" || m.Model != "model-x" || m.Labels["instance"] != "h:1" {
			t.Errorf("message refers to request memory: %+v", m)
		}
	})
}

func TestSubjectTemplates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BuiltinGroups = nil
	g := routingGroup()
	g.Name = "per-model"
	g.NATSSubject = "eagle_eye.hot.{group}.{model}.{endpoint}"
	g.ZMQTopic = "{group}/{model}"
	cfg.Groups = []GroupConfig{g}
	runFake(t, cfg, func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		write(t, p, fleetRequest(testFleet()[:1], time.Now().UnixMilli(), 1))
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		ft.mu.Lock()
		defer ft.mu.Unlock()
		if len(ft.raw) != 1 {
			t.Fatalf("%d messages", len(ft.raw))
		}
		m := ft.raw[0]
		if m.subject != "eagle_eye.hot.per-model.meta-llama=2FLlama-3=2E1-8B-Instruct.inference.vllm-a" || m.topic != "per-model/meta-llama=2FLlama-3=2E1-8B-Instruct" || m.kvKey != "per-model.inference.vllm-a" {
			t.Errorf("subject %q topic %q key %q", m.subject, m.topic, m.kvKey)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDeferredWaveYieldsToFreshEndpoints drives one on-ingest group by hand (no publishing
// goroutine): when many endpoints deferred by min_gap come due together, they are published a
// chunk at a time, and an endpoint written meanwhile goes out before the rest of the wave
// instead of waiting for all of it.
func TestDeferredWaveYieldsToFreshEndpoints(t *testing.T) {
	cfg := onIngestRouting(100 * time.Millisecond)
	ft := &fakeTransport{}
	p, err := New(Options{Config: cfg, transports: []transport{ft}})
	if err != nil {
		t.Fatal(err)
	}
	grp, sc := p.groups[0], &scratch{devIdx: map[string]int{}}

	const wave = 3*dueChunk + 10
	fleet := make([]engine, wave)
	for i := range fleet {
		fleet[i] = engine{pod: fmt.Sprintf("wave-%d", i), model: "m", flavor: "vllm", waiting: 1, running: 1, kv: 0.5}
	}
	t0 := time.Now()
	write(t, p, fleetRequest(fleet, t0.UnixMilli(), 1))
	if _, deferred := p.publishDirty(grp, sc, t0, true); deferred || len(ft.take()) != wave {
		t.Fatal("first write: every endpoint should be published at once")
	}
	// Written again 10 ms later: all deferred until t0+100ms.
	write(t, p, fleetRequest(fleet, t0.UnixMilli()+10, 2))
	wait, deferred := p.publishDirty(grp, sc, t0.Add(10*time.Millisecond), true)
	if !deferred || wait != 90*time.Millisecond || len(ft.take()) != 0 {
		t.Fatalf("within min_gap: wait %v, deferred %v; want 90ms, true and nothing published", wait, deferred)
	}
	if wait, deferred := p.publishDue(grp, sc, t0.Add(50*time.Millisecond)); !deferred || wait != 50*time.Millisecond || len(ft.take()) != 0 {
		t.Fatalf("before the gap ends: wait %v, deferred %v", wait, deferred)
	}

	due := t0.Add(100 * time.Millisecond)
	wait, deferred = p.publishDue(grp, sc, due)
	if got := len(ft.take()); got != dueChunk || !deferred || wait != 0 {
		t.Fatalf("first chunk of the wave: %d messages, wait %v, deferred %v; want %d, 0, true", got, wait, deferred, dueChunk)
	}
	fresh := engine{pod: "fresh", model: "m", flavor: "vllm", waiting: 9, running: 1, kv: 0.5}
	write(t, p, fleetRequest([]engine{fresh}, due.UnixMilli(), 1))
	if _, deferred := p.publishDirty(grp, sc, due, true); !deferred {
		t.Fatal("the rest of the wave should still be deferred")
	}
	if ms := ft.take(); len(ms) != 1 || ms[0].Endpoint["pod"] != "fresh" {
		t.Fatalf("the endpoint written during the wave: %d messages %v, want it alone, before the wave's rest", len(ms), ms)
	}
	rest := 0
	for deferred {
		_, deferred = p.publishDue(grp, sc, due)
		ms := ft.take()
		if len(ms) > dueChunk {
			t.Fatalf("%d messages in one round, want at most %d", len(ms), dueChunk)
		}
		for _, m := range ms {
			if m.SampleTimestamp != t0.UnixMilli()+10 {
				t.Errorf("%s: sample timestamp %d, want the second write's", m.Endpoint["pod"], m.SampleTimestamp)
			}
		}
		rest += len(ms)
	}
	if rest != wave-dueChunk {
		t.Errorf("the wave's rest: %d messages, want %d", rest, wave-dueChunk)
	}
}

// TestMessagesCarryWholeRequests writes one endpoint's two fields in one request, hundreds of
// times, while other writes keep the publishing goroutine busy: no message may carry one field
// of a request and the other of the request before. (A publisher that picked the endpoint up
// between its two series would publish half the request, and the other half would wait
// min_gap.)
func TestMessagesCarryWholeRequests(t *testing.T) {
	cfg := onIngestRouting(time.Millisecond)
	ft := &fakeTransport{}
	p, err := New(Options{Config: cfg, transports: []transport{ft}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	// Other engines, written without pause: the publisher is at work most of the time.
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for k := int64(1); ctx.Err() == nil; k++ {
			req := &ingest.Request{}
			for i := range 50 {
				req.Series = append(req.Series, series("vllm:num_requests_waiting",
					map[string]string{"namespace": "ns", "pod": "other-" + strconv.Itoa(i), "model_name": "m"}, k, 1))
			}
			_, _ = p.Write(ctx, req)
		}
	}()

	ls := map[string]string{"namespace": "ns", "pod": "engine-0", "model_name": "m"}
	const writes = 300
	for k := 1; k <= writes; k++ {
		ts := int64(k)
		req := &ingest.Request{Series: []ingest.Series{series("vllm:num_requests_waiting", ls, ts, float64(k))}}
		// Series of no group in between, as in an exporter's request.
		for i := range 1000 {
			req.Series = append(req.Series, series("node_load1", map[string]string{"instance": strconv.Itoa(i)}, ts, 1))
		}
		req.Series = append(req.Series, series("vllm:kv_cache_usage_perc", ls, ts, float64(k)/writes))
		write(t, p, req)
		time.Sleep(2 * time.Millisecond) // past min_gap: the next write finds the endpoint published
	}
	waitFor(t, 5*time.Second, "the last write's message", func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		for _, m := range ft.msgs {
			if m.Endpoint["pod"] == "engine-0" && m.Metrics["num_requests_waiting"] == writes {
				return true
			}
		}
		return false
	})
	cancel()
	<-busy
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ft.take() {
		if m.Endpoint["pod"] != "engine-0" {
			continue
		}
		n++
		w, kv := m.Metrics["num_requests_waiting"], m.Metrics["kv_cache_usage"]
		if math.Round(kv*writes) != w {
			t.Fatalf("message with num_requests_waiting %v but kv_cache_usage %v: two requests mixed", w, kv)
		}
	}
	if n < writes/2 {
		t.Errorf("%d messages for %d writes spaced past min_gap", n, writes)
	}
}
