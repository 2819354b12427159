package forward

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// series builds an ingest series from name/value pairs (sorted here) and samples.
func series(lv []string, samples ...ingest.Sample) ingest.Series {
	ls := make([]ingest.Label, 0, len(lv)/2)
	for i := 0; i+1 < len(lv); i += 2 {
		ls = append(ls, ingest.Label{Name: lv[i], Value: lv[i+1]})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	h, _ := labelsHash(ls, nil)
	return ingest.Series{Labels: ls, Hash: h, Samples: samples}
}

func key(ls []ingest.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// receiver is a remote-write destination for tests: it decodes RW 1.0 and 2.0 and keeps every
// sample per series; answer, when set, decides the status of each request first.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	samples  map[string][]prompb.Sample
	meta     map[string]prompb.MetricMetadata
	requests int
	// answer returns the status to send (0: accept) and extra headers.
	answer func(n int, body []prompb.TimeSeries) (int, http.Header)
	// discard counts samples without keeping them (benchmarks).
	discard bool
	count   int64
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{samples: map[string][]prompb.Sample{}, meta: map[string]prompb.MetricMetadata{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) url() string { return r.Server.URL + "/api/v1/write" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	v2 := strings.Contains(req.Header.Get("Content-Type"), "io.prometheus.write.v2.Request")
	var ts []prompb.TimeSeries
	var md []prompb.MetricMetadata
	if v2 {
		var m writev2.Request
		if err := m.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, s := range m.Timeseries {
			var p prompb.TimeSeries
			for i := 0; i+1 < len(s.LabelsRefs); i += 2 {
				p.Labels = append(p.Labels, prompb.Label{Name: m.Symbols[s.LabelsRefs[i]], Value: m.Symbols[s.LabelsRefs[i+1]]})
			}
			for _, x := range s.Samples {
				p.Samples = append(p.Samples, prompb.Sample{Value: x.Value, Timestamp: x.Timestamp})
			}
			for _, h := range s.Histograms {
				p.Samples = append(p.Samples, prompb.Sample{Value: h.GetCountFloat() + float64(h.GetCountInt()), Timestamp: h.Timestamp})
			}
			if s.Metadata.HelpRef != 0 {
				md = append(md, prompb.MetricMetadata{MetricFamilyName: p.Labels[0].Value, Help: m.Symbols[s.Metadata.HelpRef]})
			}
			ts = append(ts, p)
		}
	} else {
		var m prompb.WriteRequest
		if err := m.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		ts, md = m.Timeseries, m.Metadata
	}
	r.mu.Lock()
	r.requests++
	n := r.requests
	answer := r.answer
	r.mu.Unlock()
	if answer != nil {
		if code, hdr := answer(n, ts); code != 0 {
			for k, v := range hdr {
				w.Header()[k] = v
			}
			w.WriteHeader(code)
			return
		}
	}
	written := 0
	r.mu.Lock()
	for _, s := range ts {
		written += len(s.Samples)
		if r.discard {
			r.count += int64(len(s.Samples))
			continue
		}
		ls := make([]ingest.Label, len(s.Labels))
		for i, l := range s.Labels {
			ls[i] = ingest.Label{Name: l.Name, Value: l.Value}
		}
		k := key(ls)
		r.samples[k] = append(r.samples[k], s.Samples...)
	}
	for _, m := range md {
		r.meta[m.MetricFamilyName] = m
	}
	r.mu.Unlock()
	if v2 {
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", fmt.Sprint(written))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.samples {
		n += len(s)
	}
	return n
}

func (r *receiver) get(k string) []prompb.Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]prompb.Sample(nil), r.samples[k]...)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FORWARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startForwarder parses cfgYAML, builds a forwarder on dir, runs it, and stops it when the
// test ends.
func startForwarder(t testing.TB, cfgYAML, dir string) (*Forwarder, *prometheus.Registry) {
	t.Helper()
	cfg, err := ParseConfig([]byte(cfgYAML))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	f, err := New(Options{Config: cfg, Dir: dir, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = f.Run(context.Background()); close(done) }()
	t.Cleanup(func() {
		_ = f.Close()
		<-done
	})
	return f, reg
}

// counter reads one labelled series of a counter vector from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

func write(t testing.TB, f *Forwarder, ss ...ingest.Series) {
	t.Helper()
	if _, err := f.Write(context.Background(), &ingest.Request{Version: ingest.V2, Series: ss}); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// viaHandler writes series to f the way the gateway does: encoded as a remote-write request of
// version v and posted through ingest's handler, so the forwarder also sees the body as it
// arrived (and can queue it as it is).
type viaHandler struct {
	h http.Handler
	v ingest.Version
}

func newViaHandler(t testing.TB, f *Forwarder, v ingest.Version) *viaHandler {
	t.Helper()
	h, err := ingest.NewHandler(ingest.Options{Sinks: []ingest.Sink{f}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return &viaHandler{h: h, v: v}
}

func (w *viaHandler) write(ss ...ingest.Series) error {
	body, ctype, err := encodeBody(w.v, ss)
	if err != nil {
		return err
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	r.Header.Set("Content-Type", ctype)
	r.Header.Set("Content-Encoding", "snappy")
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	if rec.Code/100 != 2 {
		return fmt.Errorf("write answered %d: %s", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return nil
}

// encodeBody encodes ss (float samples) as a snappy-compressed remote-write body of version v,
// with its Content-Type.
func encodeBody(v ingest.Version, ss []ingest.Series) (body []byte, ctype string, err error) {
	var raw []byte
	ctype = "application/x-protobuf;proto=prometheus.WriteRequest"
	if v == ingest.V2 {
		ctype = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
		st := writev2.NewSymbolTable()
		req := &writev2.Request{}
		for _, s := range ss {
			ts := writev2.TimeSeries{}
			for _, l := range s.Labels {
				ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			for _, x := range s.Samples {
				ts.Samples = append(ts.Samples, writev2.Sample{Value: x.V, Timestamp: x.T})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		req.Symbols = st.Symbols()
		raw, err = req.Marshal()
	} else {
		raw, err = v1Request(ss).Marshal()
	}
	if err != nil {
		return nil, "", err
	}
	return snappy.Encode(nil, raw), ctype, nil
}

// v1Request builds the RW 1.0 request of Prometheus' generated code for the float samples of
// ss, leaving out series without samples.
func v1Request(ss []ingest.Series) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range ss {
		if len(s.Samples) == 0 {
			continue
		}
		ts := prompb.TimeSeries{}
		for _, l := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		for _, x := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: x.V, Timestamp: x.T})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}
