package tsdb

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"go.uber.org/goleak"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The head's chunk writer and the promql engine keep helpers that end on Close.
		goleak.IgnoreTopFunction("github.com/prometheus/prometheus/tsdb/chunks.(*chunkWriteQueue).start.func1"),
	)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestWindow(t *testing.T, mutate func(*Options)) (*Window, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	o := Options{Window: 10 * time.Minute, Now: c.now, Registerer: reg, Dir: t.TempDir()}
	if mutate != nil {
		mutate(&o)
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w, c, reg
}

func series(name string, kv ...string) ingest.Series {
	ls := []ingest.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, ingest.Label{Name: kv[i], Value: kv[i+1]})
	}
	lset := labels.New(toLabels(ls)...)
	out := make([]ingest.Label, 0, lset.Len())
	lset.Range(func(l labels.Label) { out = append(out, ingest.Label{Name: l.Name, Value: l.Value}) })
	h1, h2 := hashLabelSet(lset)
	return ingest.Series{Labels: out, Hash: h1, Hash2: h2}
}

func toLabels(ls []ingest.Label) []labels.Label {
	out := make([]labels.Label, len(ls))
	for i, l := range ls {
		out[i] = labels.Label{Name: l.Name, Value: l.Value}
	}
	return out
}

func query(t *testing.T, w *Window, q string, at time.Time) promql.Vector {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := eng.NewInstantQuery(context.Background(), w, nil, q, at)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", q, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestWriteAndQuery(t *testing.T) {
	w, c, _ := newTestWindow(t, nil)
	ts := c.t.UnixMilli()
	s1 := series("vllm:num_requests_waiting", "pod", "a")
	s1.Samples = []ingest.Sample{{T: ts - 2000, V: 3}, {T: ts - 1000, V: 5}}
	s2 := series("vllm:num_requests_waiting", "pod", "b")
	s2.Samples = []ingest.Sample{{T: ts - 1000, V: math.Inf(1)}}
	s3 := series("gone", "pod", "c")
	s3.Samples = []ingest.Sample{{T: ts - 1000, V: math.Float64frombits(value.StaleNaN)}}
	st, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s1, s2, s3}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 4 {
		t.Fatalf("accepted %d samples, want 4", st.Samples)
	}
	// The second write of the same series goes through the series cache.
	s1.Samples = []ingest.Sample{{T: ts, V: 7}}
	if _, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s1}}); err != nil {
		t.Fatal(err)
	}
	v := query(t, w, `sum(vllm:num_requests_waiting{pod="a"})`, c.t)
	if len(v) != 1 || v[0].F != 7 {
		t.Fatalf("got %v, want 7", v)
	}
	if v := query(t, w, `vllm:num_requests_waiting{pod="b"}`, c.t); len(v) != 1 || !math.IsInf(v[0].F, 1) {
		t.Fatalf("got %v, want +Inf", v)
	}
	// A stale marker ends the series for instant queries, as in Prometheus.
	if v := query(t, w, `gone`, c.t); len(v) != 0 {
		t.Fatalf("stale series still answered: %v", v)
	}
	if w.NumSeries() != 3 {
		t.Fatalf("window holds %d series, want 3", w.NumSeries())
	}
}

func TestRejectedSamplesKeepTheRest(t *testing.T) {
	w, c, _ := newTestWindow(t, nil)
	ts := c.t.UnixMilli()
	a := series("m", "i", "a")
	a.Samples = []ingest.Sample{{T: ts, V: 1}}
	if _, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{a}}); err != nil {
		t.Fatal(err)
	}
	a.Samples = []ingest.Sample{{T: ts - 1000, V: 2}, {T: ts + 1000, V: 3}} // first is out of order
	old := series("m", "i", "old")
	old.Samples = []ingest.Sample{{T: c.t.Add(-time.Hour).UnixMilli(), V: 4}} // before the window
	b := series("m", "i", "b")
	b.Samples = []ingest.Sample{{T: ts, V: 5}}
	req := &ingest.Request{Series: []ingest.Series{a, old, b}}
	st, err := w.Write(context.Background(), req)
	if !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	// The out-of-order sample is taken out of the request for the sinks after the window;
	// the one older than the window stays (a long-term store may still want it).
	if got := req.Series[0].Samples; len(got) != 1 || got[0].V != 3 {
		t.Errorf("series a after Write: %v, want only the in-order sample", got)
	}
	if got := req.Series[1].Samples; len(got) != 1 || got[0].V != 4 {
		t.Errorf("series old after Write: %v, want its sample kept", got)
	}
	if st.Samples != 2 {
		t.Fatalf("accepted %d, want 2 (a@+1s and b)", st.Samples)
	}
	if v := query(t, w, `sum(m)`, c.t.Add(time.Second)); len(v) != 1 || v[0].F != 8 {
		t.Fatalf("sum(m) = %v, want 8", v)
	}
	for reason, want := range map[string]float64{"out_of_order": 1, "too_old": 1} {
		if got := testutil.ToFloat64(w.metrics.rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func TestMaxSeries(t *testing.T) {
	w, c, _ := newTestWindow(t, func(o *Options) { o.MaxSeries = 2 })
	ts := c.t.UnixMilli()
	var req ingest.Request
	for _, p := range []string{"a", "b", "c"} {
		s := series("m", "pod", p)
		s.Samples = []ingest.Sample{{T: ts, V: 1}}
		req.Series = append(req.Series, s)
	}
	st, err := w.Write(context.Background(), &req)
	if !errors.Is(err, ingest.ErrInvalid) || st.Samples != 2 {
		t.Fatalf("st=%+v err=%v, want 2 accepted and ErrInvalid", st, err)
	}
	if err.Error() == "" || !strings.Contains(err.Error(), "limits.max_series") {
		t.Errorf("error %q does not name the knob limits.max_series", err)
	}
	// Existing series keep accepting samples at the limit.
	req.Series = req.Series[:2]
	req.Series[0].Samples = []ingest.Sample{{T: ts + 1000, V: 2}}
	req.Series[1].Samples = []ingest.Sample{{T: ts + 1000, V: 2}}
	if _, err := w.Write(context.Background(), &req); err != nil {
		t.Fatalf("write to existing series at the limit: %v", err)
	}
}

func TestTruncateDropsOldData(t *testing.T) {
	w, c, _ := newTestWindow(t, nil)
	s := series("m", "pod", "a")
	s.Samples = []ingest.Sample{{T: c.t.UnixMilli(), V: 1}}
	if _, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s}}); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(11 * time.Minute)
	if err := w.Truncate(); err != nil {
		t.Fatal(err)
	}
	if n := w.NumSeries(); n != 0 {
		t.Fatalf("%d series left after the window passed, want 0", n)
	}
	if n := w.cache.len(); n != 0 {
		t.Fatalf("%d cache entries left, want 0", n)
	}
	// The series comes back when written again.
	s.Samples = []ingest.Sample{{T: c.t.UnixMilli(), V: 2}}
	if _, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s}}); err != nil {
		t.Fatal(err)
	}
	if v := query(t, w, `m`, c.t); len(v) != 1 || v[0].F != 2 {
		t.Fatalf("m = %v, want 2", v)
	}
}

func TestMetadataAndExemplars(t *testing.T) {
	w, c, _ := newTestWindow(t, nil)
	ts := c.t.UnixMilli()
	h := series("ttft_seconds_bucket", "le", "0.5")
	h.Samples = []ingest.Sample{{T: ts, V: 3}}
	h.Metadata = metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Time to first token."}
	ex := h
	ex.Samples = nil
	ex.Exemplars = []ingest.Exemplar{{Labels: []ingest.Label{{Name: "trace_id", Value: "abc"}}, T: ts, V: 0.42}}
	req := &ingest.Request{
		Series:   []ingest.Series{h, ex},
		Metadata: []ingest.FamilyMetadata{{Family: "up_total", Metadata: metadata.Metadata{Type: model.MetricTypeCounter, Help: "h"}}},
	}
	st, err := w.Write(context.Background(), req)
	if err != nil || st.Exemplars != 1 {
		t.Fatalf("st=%+v err=%v, want 1 exemplar", st, err)
	}
	md := w.Metadata("", 0)
	if got := md["ttft_seconds"]; len(got) != 1 || got[0].Type != model.MetricTypeHistogram {
		t.Errorf("metadata for the histogram family = %v", got)
	}
	if got := md["up_total"]; len(got) != 1 || got[0].Type != model.MetricTypeCounter {
		t.Errorf("RW1 family metadata = %v", got)
	}
	eq, err := w.ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(ts-1000, ts+1000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "ttft_seconds_bucket")})
	if err != nil || len(res) != 1 || len(res[0].Exemplars) != 1 || res[0].Exemplars[0].Value != 0.42 {
		t.Fatalf("exemplars = %+v, %v", res, err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{Window: time.Second},
		{Window: time.Hour, OutOfOrderWindow: 2 * time.Hour},
		{MaxSeries: -1},
	} {
		if w, err := New(o); err == nil {
			_ = w.Close()
			t.Errorf("New(%+v) accepted invalid options", o)
		}
	}
}

func TestOutOfOrderWindow(t *testing.T) {
	w, c, _ := newTestWindow(t, func(o *Options) { o.OutOfOrderWindow = time.Minute })
	ts := c.t.UnixMilli()
	s := series("m", "pod", "a")
	s.Samples = []ingest.Sample{{T: ts, V: 1}, {T: ts - 30000, V: 2}}
	st, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s}})
	if err != nil || st.Samples != 2 {
		t.Fatalf("st=%+v err=%v: a sample 30s out of order must be accepted with a 1m window", st, err)
	}
	if v := query(t, w, `count_over_time(m[1m])`, c.t); len(v) != 1 || v[0].F != 2 {
		t.Fatalf("count_over_time = %v, want 2", v)
	}
	s.Samples = []ingest.Sample{{T: ts - 120000, V: 3}}
	if _, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s}}); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("a sample 2m out of order with a 1m window: err = %v, want ErrInvalid", err)
	}
	// Out-of-order data stays queryable after a truncation moved it out of the head.
	if err := w.Truncate(); err != nil {
		t.Fatal(err)
	}
	if v := query(t, w, `count_over_time(m[1m])`, c.t); len(v) != 1 || v[0].F != 2 {
		t.Fatalf("after truncation count_over_time = %v, want 2", v)
	}
	c.t = c.t.Add(11 * time.Minute)
	if err := w.Truncate(); err != nil {
		t.Fatal(err)
	}
	if n := w.NumSeries(); n != 0 {
		t.Fatalf("%d series left after the window passed: out-of-order data is never released", n)
	}
}
