package forward

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/prometheus/model/metadata"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// gpuSeries is series i of a small fleet, with one sample at t.
func gpuSeries(i int, t int64, v float64) ingest.Series {
	return series([]string{"__name__", "DCGM_FI_DEV_GPU_UTIL", "gpu", fmt.Sprint(i % 8), "Hostname", fmt.Sprintf("node-%03d", i/8), "job", "dcgm"},
		ingest.Sample{T: t, V: v})
}

func fastQueue(url, proto string, extra string) string {
	return fmt.Sprintf(`remote_write:
  - url: %s
    name: lts
    protobuf_message: %s
    queue_config:
      max_samples_per_send: 500
      batch_send_deadline: 50ms
      min_backoff: 10ms
      max_backoff: 200ms
      max_shards: 4
%s`, url, proto, extra)
}

const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// writeFleet writes reqs requests of n series each, sample k at base+k·1000 with value k.
func writeFleet(t testing.TB, f *Forwarder, n, reqs int, base int64) {
	writeFleetWith(t, func(_ int, ss []ingest.Series) error {
		_, err := f.Write(context.Background(), &ingest.Request{Version: ingest.V2, Series: ss})
		return err
	}, n, 0, reqs, base)
}

// writeFleetWith writes requests from to to-1 of the fleet with w (see fleetWriter).
func writeFleetWith(t testing.TB, w func(k int, ss []ingest.Series) error, n, from, to int, base int64) {
	t.Helper()
	for k := from; k < to; k++ {
		ss := make([]ingest.Series, n)
		for i := range n {
			ss[i] = gpuSeries(i, base+int64(k)*1000, float64(k))
		}
		if err := w(k, ss); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFleet checks every series holds samples 0..reqs-1 in order, once each.
func checkFleet(t testing.TB, r *receiver, n, reqs int, base int64) {
	t.Helper()
	for i := range n {
		got := r.get(key(gpuSeries(i, 0, 0).Labels))
		if len(got) != reqs {
			t.Fatalf("series %d: %d samples, want %d", i, len(got), reqs)
		}
		for k, s := range got {
			if s.Timestamp != base+int64(k)*1000 || s.Value != float64(k) {
				t.Fatalf("series %d sample %d = %v@%d, want %d@%d", i, k, s.Value, s.Timestamp, k, base+int64(k)*1000)
			}
		}
	}
}

// fleetComplete reports whether every series holds samples 0..reqs-1 (duplicates allowed: a
// batch interrupted by a stop is sent again after the restart).
func fleetComplete(r *receiver, n, reqs int, base int64) bool {
	for i := range n {
		seen := map[int64]bool{}
		for _, s := range r.get(key(gpuSeries(i, 0, 0).Labels)) {
			k := (s.Timestamp - base) / 1000
			if s.Timestamp != base+k*1000 || k < 0 || k >= int64(reqs) || s.Value != float64(k) {
				return false
			}
			seen[k] = true
		}
		if len(seen) != reqs {
			return false
		}
	}
	return true
}

// writeModes are the ways a test writes to the forwarder: as decoded requests only (every
// record encoded), through ingest's handler in the destination's protocol (queued as the body
// that arrived, sent by the relay), and alternating the two protocols through the handler
// (both lanes, for the same series).
var writeModes = []string{"encoded", "pass-through", "mixed"}

// fleetWriter returns the write function of mode for a destination speaking proto.
func fleetWriter(t testing.TB, f *Forwarder, proto, mode string) func(k int, ss []ingest.Series) error {
	same, other := ingest.V1, ingest.V2
	if proto == protoV2 {
		same, other = other, same
	}
	viaSame, viaOther := newViaHandler(t, f, same), newViaHandler(t, f, other)
	return func(k int, ss []ingest.Series) error {
		switch {
		case mode == "pass-through", mode == "mixed" && k%2 == 0:
			return viaSame.write(ss...)
		case mode == "mixed":
			return viaOther.write(ss...)
		}
		_, err := f.Write(context.Background(), &ingest.Request{Version: ingest.V2, Series: ss})
		return err
	}
}

func TestForwardEverySample(t *testing.T) {
	for _, proto := range []string{protoV1, protoV2} {
		for _, mode := range writeModes {
			t.Run(proto+"/"+mode, func(t *testing.T) {
				r := newReceiver(t)
				f, reg := startForwarder(t, fastQueue(r.url(), proto, ""), t.TempDir())
				const n, reqs = 64, 100
				base := time.Now().Add(-time.Hour).UnixMilli()
				writeFleetWith(t, fleetWriter(t, f, proto, mode), n, 0, reqs, base)
				eventually(t, 30*time.Second, "every sample delivered", func() bool { return r.total() >= n*reqs })
				checkFleet(t, r, n, reqs, base)
				// The sender counts a batch once its answer is back, a moment after the
				// receiver has stored it.
				eventually(t, 10*time.Second, "sent_samples_total = every sample", func() bool {
					return metricValue(t, reg, "eagle_eye_forward_sent_samples_total", map[string]string{"destination": "lts"}) == n*reqs
				})
				eventually(t, 10*time.Second, "queue drained", func() bool {
					return metricValue(t, reg, "eagle_eye_forward_queue_samples", nil) == 0
				})
				// Mixed: the writes in the destination's protocol pass through; the others are
				// transcoded when they are RW 2.0 for an RW 1.0 destination, else encoded.
				passed := metricValue(t, reg, "eagle_eye_forward_passthrough_samples_total", nil)
				want := map[string]float64{"encoded": 0, "pass-through": n * reqs, "mixed": n * reqs / 2}[mode]
				if passed != want {
					t.Errorf("passthrough_samples_total = %v, want %v", passed, want)
				}
				transcoded := metricValue(t, reg, "eagle_eye_forward_transcoded_samples_total", nil)
				want = 0
				if mode == "mixed" && proto == protoV1 {
					want = n * reqs / 2
				}
				if transcoded != want {
					t.Errorf("transcoded_samples_total = %v, want %v", transcoded, want)
				}
			})
		}
	}
}

func TestForwardMetadataHistogramsExemplars(t *testing.T) {
	r := newReceiver(t)
	f, _ := startForwarder(t, fastQueue(r.url(), protoV1, "")+"    send_exemplars: true\n", t.TempDir())
	s := series([]string{"__name__", "vllm:num_requests_running", "pod", "a"}, ingest.Sample{T: 1000, V: 3})
	s.Exemplars = []ingest.Exemplar{{Labels: []ingest.Label{{Name: "trace_id", Value: "abc"}}, T: 1000, V: 3}}
	s.Metadata.Help = "Requests running."
	s.Metadata.Type = "gauge"
	if _, err := f.Write(context.Background(), &ingest.Request{Version: ingest.V1, Series: []ingest.Series{s},
		Metadata: []ingest.FamilyMetadata{{Family: "vllm:num_requests_waiting"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "delivery", func() bool { return r.total() == 1 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.meta["vllm:num_requests_running"].Help != "Requests running." {
		t.Errorf("series metadata not forwarded: %+v", r.meta)
	}
	if _, ok := r.meta["vllm:num_requests_waiting"]; !ok {
		t.Errorf("family metadata not forwarded: %+v", r.meta)
	}
}

// TestForwardMetadataOff: with metadata_config.send false, as in Prometheus, neither series
// metadata nor family metadata reaches the destination; the samples do.
func TestForwardMetadataOff(t *testing.T) {
	for _, proto := range []string{protoV1, protoV2} {
		t.Run(proto, func(t *testing.T) {
			r := newReceiver(t)
			f, _ := startForwarder(t, fastQueue(r.url(), proto, "")+"    metadata_config:\n      send: false\n", t.TempDir())
			s := series([]string{"__name__", "vllm:num_requests_running", "pod", "a"}, ingest.Sample{T: 1000, V: 3})
			s.Metadata.Help = "Requests running."
			s.Metadata.Type = "gauge"
			if _, err := f.Write(context.Background(), &ingest.Request{Version: ingest.V2, Series: []ingest.Series{s},
				Metadata: []ingest.FamilyMetadata{{Family: "vllm:num_requests_waiting", Metadata: metadata.Metadata{Help: "Waiting."}}}}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "delivery", func() bool { return r.total() == 1 })
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.meta) != 0 {
				t.Errorf("metadata forwarded with metadata_config.send false: %+v", r.meta)
			}
		})
	}
}

func TestForwardRelabel(t *testing.T) {
	r := newReceiver(t)
	extra := `    write_relabel_configs:
      - source_labels: [gpu]
        regex: "[4-7]"
        action: drop
      - target_label: cluster
        replacement: east
      - regex: Hostname
        action: labeldrop
`
	f, _ := startForwarder(t, fastQueue(r.url(), protoV2, extra), t.TempDir())
	writeFleet(t, f, 16, 5, 0)
	eventually(t, 10*time.Second, "delivery", func() bool { return r.total() >= 8*5/2 })
	time.Sleep(300 * time.Millisecond)
	// 16 series on 2 nodes, gpus 0-3 kept, Hostname dropped: 4 series, each getting both
	// nodes' samples at equal timestamps; the out-of-order filter keeps the first.
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) != 4 {
		t.Fatalf("got %d series: %v", len(r.samples), r.samples)
	}
	for k, ss := range r.samples {
		if len(ss) != 5 {
			t.Errorf("%s: %d samples", k, len(ss))
		}
		want := fmt.Sprintf(`{__name__="DCGM_FI_DEV_GPU_UTIL",cluster="east",gpu="%c",job="dcgm"}`, k[len(`{__name__="DCGM_FI_DEV_GPU_UTIL",cluster="east",gpu="`)])
		if k != want {
			t.Errorf("series %s, want %s", k, want)
		}
	}
}

func TestDownsample(t *testing.T) {
	cases := []struct {
		fn   Aggregation
		want []prompb.Sample
	}{
		// Samples every second over 0..44 s with value t/1000: intervals [0,15) [15,30) [30,45).
		{AggLast, []prompb.Sample{{Timestamp: 14000, Value: 14}, {Timestamp: 29000, Value: 29}, {Timestamp: 44000, Value: 44}}},
		{AggAvg, []prompb.Sample{{Timestamp: 14000, Value: 7}, {Timestamp: 29000, Value: 22}, {Timestamp: 44000, Value: 37}}},
		{AggMax, []prompb.Sample{{Timestamp: 14000, Value: 14}, {Timestamp: 29000, Value: 29}, {Timestamp: 44000, Value: 44}}},
	}
	for _, c := range cases {
		t.Run(string(c.fn), func(t *testing.T) {
			r := newReceiver(t)
			extra := fmt.Sprintf(`forward:
  destinations:
    lts:
      downsample:
        - selector: '{__name__=~"DCGM_.*"}'
          interval: 15s
          function: %s
`, c.fn)
			cfg, err := ParseConfig([]byte(fastQueue(r.url(), protoV1, extra)))
			if err != nil {
				t.Fatal(err)
			}
			f, err := New(Options{Config: cfg, Dir: t.TempDir(), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = f.Run(context.Background()); close(done) }()
			other := series([]string{"__name__", "up", "job", "x"})
			for ts := int64(0); ts < 45000; ts += 1000 {
				g := gpuSeries(0, ts, float64(ts/1000))
				o := other
				o.Samples = []ingest.Sample{{T: ts, V: 1}}
				write(t, f, g, o)
			}
			// The last interval is closed by Shutdown.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := f.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			<-done
			got := r.get(key(gpuSeries(0, 0, 0).Labels))
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("downsampled %v, want %v", got, c.want)
			}
			if n := len(r.get(key(other.Labels))); n != 45 {
				t.Errorf("unmatched series: %d samples, want all 45", n)
			}
		})
	}
}

func TestDownsampleStaleAndIdle(t *testing.T) {
	d := newDownsampler([]DownsampleRule{{Interval: 10_000_000_000, Function: AggMax}})
	ls := gpuSeries(0, 0, 0).Labels
	out := d.process(1, ls, []ingest.Sample{{T: 1000, V: 5}, {T: 2000, V: 7}, {T: 3000, V: math.Float64frombits(value.StaleNaN)}}, nil, 0)
	if len(out) != 2 || out[0].V != 7 || out[0].T != 2000 || !value.IsStaleNaN(out[1].V) {
		t.Fatalf("stale marker handling: %v", out)
	}
	out = d.process(1, ls, []ingest.Sample{{T: 4000, V: 1}}, nil, 0)
	if len(out) != 0 {
		t.Fatalf("open interval emitted early: %v", out)
	}
	var flushed []ingest.Sample
	d.flushIdle(5000, 1, func(_ []ingest.Label, _ uint64, s ingest.Sample) { flushed = append(flushed, s) })
	if len(flushed) != 0 {
		t.Fatalf("flushed a fresh interval: %v", flushed)
	}
	d.flushIdle(60000, 1, func(_ []ingest.Label, _ uint64, s ingest.Sample) { flushed = append(flushed, s) })
	if len(flushed) != 1 || flushed[0].V != 1 || flushed[0].T != 4000 {
		t.Fatalf("idle flush: %v", flushed)
	}
}

func TestRefused400Dropped(t *testing.T) {
	for _, mode := range []string{"encoded", "pass-through"} {
		t.Run(mode, func(t *testing.T) {
			r := newReceiver(t)
			var mu sync.Mutex
			refused := 0
			r.answer = func(n int, ts []prompb.TimeSeries) (int, http.Header) {
				if n%3 == 0 {
					mu.Lock()
					for _, s := range ts {
						refused += len(s.Samples)
					}
					mu.Unlock()
					return http.StatusBadRequest, nil
				}
				return 0, nil
			}
			f, reg := startForwarder(t, fastQueue(r.url(), protoV1, ""), t.TempDir())
			const n, reqs = 32, 60
			writeFleetWith(t, fleetWriter(t, f, protoV1, mode), n, 0, reqs, 0)
			eventually(t, 30*time.Second, "all delivered or refused", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return r.total()+refused == n*reqs
			})
			mu.Lock()
			nRefused := refused
			mu.Unlock()
			if nRefused == 0 || nRefused == n*reqs {
				t.Fatalf("%d of %d samples refused: want some, not all", nRefused, n*reqs)
			}
			// The sender counts a refused batch once the answer is back, a moment after the
			// receiver has answered.
			eventually(t, 10*time.Second, "every refused sample counted", func() bool {
				return int(metricValue(t, reg, "eagle_eye_forward_dropped_samples_total", map[string]string{"reason": "http_400"})) == nRefused
			})
			st := f.Status().Destinations[0]
			if st.DroppedSamples["http_400"] != int64(nRefused) || st.LastError == "" {
				t.Errorf("status: %+v", st)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			r := newReceiver(t)
			var mu sync.Mutex
			var times []time.Time
			r.answer = func(n int, _ []prompb.TimeSeries) (int, http.Header) {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				if n == 1 {
					return code, http.Header{"Retry-After": {"2"}}
				}
				return 0, nil
			}
			// retry_on_http_429 left at Prometheus' default (false): we retry 429 anyway.
			f, reg := startForwarder(t, fastQueue(r.url(), protoV1, ""), t.TempDir())
			write(t, f, gpuSeries(0, 1000, 1))
			eventually(t, 20*time.Second, "delivery after the retry", func() bool { return r.total() == 1 })
			mu.Lock()
			defer mu.Unlock()
			if wait := times[1].Sub(times[0]); wait < 2*time.Second || wait > 8*time.Second {
				t.Errorf("retried after %v, Retry-After said 2s", wait)
			} else {
				t.Logf("Retry-After: 2 → retried after %v", wait.Round(time.Millisecond))
			}
			if got := metricValue(t, reg, "eagle_eye_forward_retried_samples_total", nil); got != 1 {
				t.Errorf("retried_samples_total = %v", got)
			}
		})
	}
}

func TestRW2Unconfirmed(t *testing.T) {
	// A receiver that answers 204 without Written headers to an RW 2.0 request.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	f, reg := startForwarder(t, fastQueue(srv.URL, protoV2, ""), t.TempDir())
	write(t, f, gpuSeries(0, 1000, 1))
	eventually(t, 10*time.Second, "drop counted", func() bool {
		return metricValue(t, reg, "eagle_eye_forward_dropped_samples_total", map[string]string{"reason": "rw2_unconfirmed"}) == 1
	})
}

func TestDiskBoundDuringOutage(t *testing.T) {
	r := newReceiver(t)
	var down sync.Mutex
	isDown := true
	r.answer = func(int, []prompb.TimeSeries) (int, http.Header) {
		down.Lock()
		defer down.Unlock()
		if isDown {
			return http.StatusServiceUnavailable, nil
		}
		return 0, nil
	}
	extra := `forward:
  destinations:
    lts:
      max_queue_bytes: 512KiB
      segment_bytes: 64KiB
      memory_bytes: 64KiB
`
	f, reg := startForwarder(t, fastQueue(r.url(), protoV1, extra), t.TempDir())
	const n, reqs = 64, 400
	writeFleet(t, f, n, reqs, 0) // every Write succeeds although nothing can be sent
	dropped := metricValue(t, reg, "eagle_eye_forward_dropped_samples_total", map[string]string{"reason": "max_queue_bytes"})
	if dropped == 0 {
		t.Fatal("queue bound never reached")
	}
	st := f.Status().Destinations[0]
	if st.Queue.DiskBytes > 512<<10+64<<10 || st.DroppedSamples["max_queue_bytes"] != int64(dropped) {
		t.Errorf("status during outage: %+v", st)
	}
	b, _ := json.Marshal(st)
	t.Logf("status: %s", b)
	down.Lock()
	isDown = false
	down.Unlock()
	// What was kept (the newest) arrives; kept + dropped ≥ written (a record is counted as
	// dropped if any shard had not read it yet).
	eventually(t, 30*time.Second, "backlog drained", func() bool {
		return metricValue(t, reg, "eagle_eye_forward_queue_samples", nil) == 0
	})
	got := r.total()
	if got+int(dropped) < n*reqs || got == 0 {
		t.Errorf("delivered %d + dropped %v < written %d", got, dropped, n*reqs)
	}
	last := r.get(key(gpuSeries(0, 0, 0).Labels))
	if len(last) == 0 || last[len(last)-1].Value != reqs-1 {
		t.Errorf("newest sample missing")
	}
	t.Logf("written %d, delivered %d, dropped %v", n*reqs, got, dropped)
}

func TestTwoDestinationsOneDead(t *testing.T) {
	r := newReceiver(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/api/v1/write"
	dead.Close() // connection refused from now on
	cfg := fmt.Sprintf(`remote_write:
  - url: %s
    name: alive
    queue_config: {batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}
  - url: %s
    name: dead
    queue_config: {batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}
`, r.url(), deadURL)
	f, reg := startForwarder(t, cfg, t.TempDir())
	base := time.Now().UnixMilli()
	for k := range 20 {
		start := time.Now()
		writeFleet(t, f, 16, 1, base+int64(k)*1000)
		// The live destination stays current: each write arrives before the next.
		eventually(t, 5*time.Second, "live destination current", func() bool { return r.total() == 16*(k+1) })
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("write %d took %v to arrive", k, d)
		}
	}
	if got := metricValue(t, reg, "eagle_eye_forward_queue_samples", map[string]string{"destination": "dead"}); got != 320 {
		t.Errorf("dead destination queue holds %v samples, want 320", got)
	}
	st := f.Status()
	if st.Destinations[1].LastError == "" || st.Destinations[1].Requests["network"] == 0 {
		t.Errorf("dead destination status: %+v", st.Destinations[1])
	}
}

// TestResumeAfterRestart stops a forwarder with a backlog of both kinds of records (encoded
// for the shards, pass-through for the relay) and starts another on the same queue, with the
// same shard count or another one (which is also what an upgrade that adds the relay's lane
// looks like): the backlog and fresh data all arrive.
func TestResumeAfterRestart(t *testing.T) {
	for _, tc := range []struct{ name, after string }{
		{"same shards", ""},
		{"shards changed", "forward:\n  defaults: {shards: 2}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newReceiver(t)
			var mu sync.Mutex
			up := false
			// The first requests get through, so the shards stop in the middle of a segment
			// whose earlier records define the series the later ones refer to.
			r.answer = func(n int, _ []prompb.TimeSeries) (int, http.Header) {
				mu.Lock()
				defer mu.Unlock()
				if !up && n > 4 {
					return http.StatusInternalServerError, nil
				}
				return 0, nil
			}
			f, _ := startForwarder(t, fastQueue(r.url(), protoV2, ""), dir)
			base := time.Now().Add(-time.Hour).UnixMilli()
			const n, reqs = 32, 50
			writeFleetWith(t, fleetWriter(t, f, protoV2, "mixed"), n, 0, reqs, base)
			eventually(t, 10*time.Second, "the first requests", func() bool { return r.total() > 0 })
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			up = true
			mu.Unlock()
			f2, _ := startForwarder(t, fastQueue(r.url(), protoV2, tc.after), dir)
			writeFleetWith(t, fleetWriter(t, f2, protoV2, "mixed"), n, reqs, reqs+2, base) // fresh data after the restart
			eventually(t, 30*time.Second, "backlog and fresh data delivered", func() bool { return fleetComplete(r, n, reqs+2, base) })
		})
	}
}

func TestStatusHandler(t *testing.T) {
	r := newReceiver(t)
	f, _ := startForwarder(t, fastQueue(r.url(), protoV1, ""), t.TempDir())
	write(t, f, gpuSeries(0, 1000, 1))
	eventually(t, 10*time.Second, "delivery", func() bool { return r.total() == 1 })
	rec := httptest.NewRecorder()
	f.StatusHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/status/forward", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	d := st.Destinations[0]
	if d.Name != "lts" || d.SentSamples != 1 || d.LastSuccess == nil || d.Queue.Fsync != "always" {
		t.Errorf("status: %s", rec.Body)
	}
}

// TestRelayConcurrencyGrowsForASlowDestination: with one shard and a destination that takes
// 50 ms per request, pass-through requests of distinct series go out several at a time, up to
// max_shards, instead of one at a time.
func TestRelayConcurrencyGrowsForASlowDestination(t *testing.T) {
	r := newReceiver(t)
	var inFlight, most atomic.Int32
	r.answer = func(int, []prompb.TimeSeries) (int, http.Header) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
		return 0, nil
	}
	cfg := fastQueue(r.url(), protoV1, "forward:\n  defaults: {shards: 1}\n")
	cfg = strings.Replace(cfg, "max_shards: 4", "max_shards: 6", 1)
	f, reg := startForwarder(t, cfg, t.TempDir())
	via := newViaHandler(t, f, ingest.V1)
	const n, reqs = 10, 120
	for k := range reqs {
		ss := make([]ingest.Series, n)
		for i := range n {
			ss[i] = gpuSeries(k*n+i, 1000, 1) // every request its own series: none waits for another
		}
		if err := via.write(ss...); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "every sample delivered", func() bool { return r.total() == n*reqs })
	got := most.Load()
	limit := metricValue(t, reg, "eagle_eye_forward_passthrough_concurrency", nil)
	t.Logf("most requests in flight: %d; concurrency now %v", got, limit)
	if got < 3 || got > 6 {
		t.Errorf("most requests in flight = %d, want it grown past the single shard, up to max_shards 6", got)
	}
	if limit < 3 || limit > 6 {
		t.Errorf("eagle_eye_forward_passthrough_concurrency = %v", limit)
	}
}
