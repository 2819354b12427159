package tsdb

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/internal/fleet"
)

const benchSeries = 100000

// fleetRequests splits benchSeries fleet series into requests of perReq series, one sample
// each, the way a probe fleet's remote write arrives.
func fleetRequests(n, perReq int) []*ingest.Request {
	var reqs []*ingest.Request
	for i := 0; i < n; i += perReq {
		req := &ingest.Request{Version: ingest.V2}
		for j := i; j < min(i+perReq, n); j++ {
			ls := fleet.Series(j)
			s := ingest.Series{Labels: make([]ingest.Label, len(ls)), Samples: make([]ingest.Sample, 1)}
			var key []byte
			for k, l := range ls {
				s.Labels[k] = ingest.Label{Name: l.Name, Value: l.Value}
				key = append(append(append(append(key, l.Name...), 0xff), l.Value...), 0xff)
			}
			s.Hash, s.Hash2 = ingest.KeyHashes(key)
			req.Series = append(req.Series, s)
		}
		reqs = append(reqs, req)
	}
	return reqs
}

func setTime(reqs []*ingest.Request, ts int64, k int) {
	for _, r := range reqs {
		for i := range r.Series {
			r.Series[i].Samples[0] = ingest.Sample{T: ts, V: fleet.Value(i, k)}
		}
	}
}

// BenchmarkWindowAppend measures appending to the window once all 100k series exist: the
// steady state of a fleet scraped every second. 2000 samples per request.
func BenchmarkWindowAppend(b *testing.B) {
	w, err := New(Options{Window: 30 * time.Minute, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	reqs := fleetRequests(benchSeries, 2000)
	ts := time.Now().UnixMilli()
	setTime(reqs, ts, 0)
	for _, r := range reqs {
		if _, err := w.Write(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	k := 0
	var samples int
	start := time.Now()
	for b.Loop() {
		r := reqs[k%len(reqs)]
		if k%len(reqs) == 0 {
			ts += 1000
			setTime(reqs, ts, k)
		}
		k++
		if _, err := w.Write(context.Background(), r); err != nil {
			b.Fatal(err)
		}
		samples += len(r.Series)
	}
	b.ReportMetric(float64(samples)/time.Since(start).Seconds(), "samples/s")
}

// BenchmarkWindowBytesPerSeries reports the Go heap the window holds per active series after
// 100k fleet series received 10 samples each.
func BenchmarkWindowBytesPerSeries(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := New(Options{Window: 30 * time.Minute, Dir: b.TempDir(), MaxExemplars: -1})
		if err != nil {
			b.Fatal(err)
		}
		reqs := fleetRequests(benchSeries, 2000)
		ts := time.Now().Add(-time.Minute).UnixMilli()
		for k := range 10 {
			setTime(reqs, ts+int64(k)*1000, k)
			for _, r := range reqs {
				if _, err := w.Write(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		}
		reqs = nil
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(w.NumSeries()), "heap-bytes/series")
		_ = w.Close()
	}
}

// BenchmarkQuery measures PromQL over a window holding 100k series × 5 minutes at 1 s.
func BenchmarkQuery(b *testing.B) {
	w, err := New(Options{Window: 30 * time.Minute, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	reqs := fleetRequests(benchSeries, 2000)
	end := time.Now().Truncate(time.Second)
	start := end.Add(-5 * time.Minute)
	for k := range 300 {
		setTime(reqs, start.Add(time.Duration(k)*time.Second).UnixMilli(), k)
		for _, r := range reqs {
			if _, err := w.Write(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	for _, q := range []string{
		`avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)`,
		`sum by (model_name) (rate(vllm:prompt_tokens_total[1m]))`,
		`max(vllm:kv_cache_usage_perc{namespace="inference"}) by (pod)`,
	} {
		b.Run(fmt.Sprintf("instant/%s", q), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				qry, err := eng.NewInstantQuery(context.Background(), w, nil, q, end)
				if err != nil {
					b.Fatal(err)
				}
				if r := qry.Exec(context.Background()); r.Err != nil {
					b.Fatal(r.Err)
				}
				qry.Close()
			}
		})
		b.Run(fmt.Sprintf("range5m-step15s/%s", q), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				qry, err := eng.NewRangeQuery(context.Background(), w, nil, q, start, end, 15*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if r := qry.Exec(context.Background()); r.Err != nil {
					b.Fatal(r.Err)
				}
				qry.Close()
			}
		})
	}
}
