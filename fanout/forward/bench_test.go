package forward

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/internal/fleet"
)

const benchSeriesPerReq = 2000

// benchRequests returns rounds requests of benchSeriesPerReq fleet series (10–12 labels each),
// one sample per series, covering 20,000 distinct series. stamp gives the samples of the n-th
// write their timestamp.
func benchRequests(rounds int) []*ingest.Request {
	const distinct = 20000
	var out []*ingest.Request
	base := time.Now().Add(-time.Hour).UnixMilli()
	for r := range rounds {
		req := &ingest.Request{Version: ingest.V2, Series: make([]ingest.Series, benchSeriesPerReq)}
		for j := range benchSeriesPerReq {
			i := (r*benchSeriesPerReq + j) % distinct
			var ls []ingest.Label
			for _, l := range fleet.Series(i) {
				ls = append(ls, ingest.Label{Name: l.Name, Value: l.Value})
			}
			h, _ := labelsHash(ls, nil)
			req.Series[j] = ingest.Series{Labels: ls, Hash: h, Samples: []ingest.Sample{{T: base, V: fleet.Value(i, r)}}}
		}
		out = append(out, req)
	}
	return out
}

// withBodies gives every request the body it would have arrived in (version v), as ingest's
// handler does for an intact request: the forwarder then queues it as it is.
func withBodies(b *testing.B, reqs []*ingest.Request, v ingest.Version) []*ingest.Request {
	for _, r := range reqs {
		body, _, err := encodeBody(v, r.Series)
		if err != nil {
			b.Fatal(err)
		}
		r.Version, r.Body = v, body
	}
	return reqs
}

// stamp sets the timestamp of every sample of req for the n-th write of it: each series then
// gets one sample per second, in order.
func stamp(req *ingest.Request, n int) *ingest.Request {
	t := time.Now().Add(-time.Hour).UnixMilli() + int64(n)*1000
	for i := range req.Series {
		req.Series[i].Samples[0].T = t
	}
	return req
}

// sinkServer accepts every request without decoding it, so the benchmark measures the sender.
func sinkServer(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "1")
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchForwarder(b *testing.B, url, proto, forwardYAML string) *Forwarder {
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`remote_write:
  - url: %s
    name: bench
    protobuf_message: %s
    queue_config: {batch_send_deadline: 100ms}
forward:
  defaults:
%s`, url, proto, forwardYAML)))
	if err != nil {
		b.Fatal(err)
	}
	f, err := New(Options{Config: cfg, Dir: b.TempDir(), Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkWrite measures Write (relabel-free encoding, append, fsync per policy) with no
// sender running: the cost a request pays in the forward sink.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct{ name, policy string }{
		{"always", "always"}, {"interval", "interval"},
		{"always-pass-through", "always"}, {"interval-pass-through", "interval"},
		{"interval-transcoded", "interval"}, // RW 2.0 writes to this RW 1.0 destination
	} {
		policy := bc.policy
		b.Run(bc.name, func(b *testing.B) {
			reqs := benchRequests(10)
			switch {
			case strings.HasSuffix(bc.name, "pass-through"):
				reqs = withBodies(b, reqs, ingest.V1)
			case strings.HasSuffix(bc.name, "transcoded"):
				reqs = withBodies(b, reqs, ingest.V2)
			}
			f := benchForwarder(b, "http://127.0.0.1:1/api/v1/write", protoV1,
				"    fsync: "+policy+"\n    max_queue_bytes: 256MiB\n")
			defer f.Close()
			q := f.dests[0].q
			fs0, ns0 := q.fsyncs.Load(), q.fsyncNs.Load()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := f.Write(context.Background(), stamp(reqs[i%len(reqs)], i/len(reqs))); err != nil {
					b.Fatal(err)
				}
				i++
			}
			fs, ns := q.fsyncs.Load()-fs0, q.fsyncNs.Load()-ns0
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*benchSeriesPerReq), "ns/sample")
			b.ReportMetric(float64(fs)/float64(i), "fsyncs/op")
			if fs > 0 {
				b.ReportMetric(float64(ns)/float64(fs)/1e3, "µs/fsync")
			}
		})
	}
}

// BenchmarkWriteParallel writes from many goroutines at once with fsync "always": group commit
// lets them share fsyncs.
func BenchmarkWriteParallel(b *testing.B) {
	reqs := benchRequests(10)
	f := benchForwarder(b, "http://127.0.0.1:1/api/v1/write", protoV1, "    fsync: always\n    max_queue_bytes: 256MiB\n")
	defer f.Close()
	q := f.dests[0].q
	fs0 := q.fsyncs.Load()
	b.ReportAllocs()
	b.SetParallelism(4)
	var n int64
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.Write(context.Background(), reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	n = int64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*benchSeriesPerReq), "ns/sample")
	b.ReportMetric(float64(q.fsyncs.Load()-fs0)/float64(n), "fsyncs/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForward measures sending: b.N requests of 2,000 samples are queued first, then the
// senders drain them to a local receiver that reads and discards the body. It reports the
// drain rate and the process CPU spent per sample while draining (the receiver's share, reading
// the body, included).
func BenchmarkForward(b *testing.B) {
	for _, bc := range []struct {
		name, proto string
		v           ingest.Version
		pass        bool
	}{
		{protoV1, protoV1, ingest.V1, false}, {protoV2, protoV2, ingest.V2, false},
		{protoV1 + "-pass-through", protoV1, ingest.V1, true}, {protoV2 + "-pass-through", protoV2, ingest.V2, true},
	} {
		proto := bc.proto
		b.Run(bc.name, func(b *testing.B) {
			reqs := benchRequests(10)
			if bc.pass {
				reqs = withBodies(b, reqs, bc.v)
			}
			srv := sinkServer(b)
			f := benchForwarder(b, srv.URL, proto, "    fsync: interval\n    max_queue_bytes: 4GiB\n")
			for i := range b.N {
				if _, err := f.Write(context.Background(), stamp(reqs[i%len(reqs)], i/len(reqs))); err != nil {
					b.Fatal(err)
				}
			}
			total := int64(b.N * benchSeriesPerReq)
			d := f.dests[0]
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			done := make(chan struct{})
			go func() { _ = f.Run(context.Background()); close(done) }()
			deadline := time.Now().Add(5 * time.Minute)
			for d.sentSamples.Load() < total {
				if time.Now().After(deadline) {
					b.Fatalf("sent %d of %d samples in 5 minutes; status %+v", d.sentSamples.Load(), total, f.Status())
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(total), "cpu-ns/sample")
			_ = f.Close()
			<-done
		})
	}
}
