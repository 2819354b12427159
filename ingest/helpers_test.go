package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	ctV1 = "application/x-protobuf;proto=prometheus.WriteRequest"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// testNow is the fixed clock of the tests; testTS is a timestamp just before it.
var (
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testTS  = testNow.Add(-time.Minute).UnixMilli()
)

// recordingSink keeps a deep copy of every request it receives.
type recordingSink struct {
	mu   sync.Mutex
	reqs []Request
	// answer, when set, decides the Stats and error Write returns; by default it accepts all.
	answer func(req *Request) (Stats, error)
}

func (s *recordingSink) Write(_ context.Context, req *Request) (Stats, error) {
	c := copyRequest(req)
	s.mu.Lock()
	s.reqs = append(s.reqs, c)
	s.mu.Unlock()
	if s.answer != nil {
		return s.answer(req)
	}
	return countStats(req), nil
}

func (s *recordingSink) requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// series returns every series received so far.
func (s *recordingSink) series() []Series {
	var out []Series
	for _, r := range s.requests() {
		out = append(out, r.Series...)
	}
	return out
}

func countStats(req *Request) Stats {
	var st Stats
	for _, s := range req.Series {
		st.Samples += len(s.Samples)
		st.Histograms += len(s.Histograms)
		st.Exemplars += len(s.Exemplars)
	}
	return st
}

func copyLabels(ls []Label) []Label {
	if ls == nil {
		return nil
	}
	out := make([]Label, len(ls))
	for i, l := range ls {
		out[i] = Label{strings.Clone(l.Name), strings.Clone(l.Value)}
	}
	return out
}

func copyRequest(req *Request) Request {
	out := Request{Version: req.Version}
	for _, s := range req.Series {
		c := Series{
			Labels:   copyLabels(s.Labels),
			Hash:     s.Hash,
			Hash2:    s.Hash2,
			Samples:  append([]Sample(nil), s.Samples...),
			Metadata: s.Metadata,
		}
		c.Metadata.Help = strings.Clone(c.Metadata.Help)
		c.Metadata.Unit = strings.Clone(c.Metadata.Unit)
		for _, h := range s.Histograms {
			hc := Histogram{T: h.T, ST: h.ST}
			if h.H != nil {
				hc.H = h.H.Copy()
			}
			if h.FH != nil {
				hc.FH = h.FH.Copy()
			}
			c.Histograms = append(c.Histograms, hc)
		}
		for _, e := range s.Exemplars {
			c.Exemplars = append(c.Exemplars, Exemplar{Labels: copyLabels(e.Labels), T: e.T, V: e.V})
		}
		out.Series = append(out.Series, c)
	}
	for _, m := range req.Metadata {
		m.Family = strings.Clone(m.Family)
		m.Help = strings.Clone(m.Help)
		m.Unit = strings.Clone(m.Unit)
		out.Metadata = append(out.Metadata, m)
	}
	return out
}

func labelNames(ss []Series) []string {
	var out []string
	for _, s := range ss {
		for _, l := range s.Labels {
			if l.Name == "__name__" {
				out = append(out, l.Value)
			}
		}
	}
	return out
}

// newTestHandler builds a handler on the test clock with a fresh registry.
func newTestHandler(t testing.TB, o Options) (*Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

// post sends a raw body through the handler.
func post(h http.Handler, contentType, encoding string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func snappy(b []byte) []byte { return s2.EncodeSnappy(nil, b) }

func marshalV1(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postV1(h http.Handler, t testing.TB, req *prompb.WriteRequest) *httptest.ResponseRecorder {
	return post(h, ctV1, "snappy", snappy(marshalV1(t, req)))
}

func postV2(h http.Handler, t testing.TB, req *writev2.Request) *httptest.ResponseRecorder {
	return post(h, ctV2, "snappy", snappy(marshalV2(t, req)))
}

// v1Series builds an RW 1.0 series from name/value pairs (kept in the given order) and
// samples at testTS.
func v1Series(lv []string, values ...float64) prompb.TimeSeries {
	ts := prompb.TimeSeries{}
	for i := 0; i+1 < len(lv); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: lv[i], Value: lv[i+1]})
	}
	for i, v := range values {
		ts.Samples = append(ts.Samples, prompb.Sample{Value: v, Timestamp: testTS + int64(i)})
	}
	return ts
}

// v2Builder builds RW 2.0 requests with a symbol table.
type v2Builder struct {
	st  writev2.SymbolsTable
	req writev2.Request
}

func newV2Builder() *v2Builder { return &v2Builder{st: writev2.NewSymbolTable()} }

// refs symbolizes name/value pairs in the given order.
func (b *v2Builder) refs(lv ...string) []uint32 {
	var out []uint32
	for _, s := range lv {
		out = append(out, b.st.Symbolize(s))
	}
	return out
}

func (b *v2Builder) add(ts writev2.TimeSeries) *v2Builder {
	b.req.Timeseries = append(b.req.Timeseries, ts)
	return b
}

func (b *v2Builder) series(lv []string, values ...float64) *v2Builder {
	ts := writev2.TimeSeries{LabelsRefs: b.refs(lv...)}
	for i, v := range values {
		ts.Samples = append(ts.Samples, writev2.Sample{Value: v, Timestamp: testTS + int64(i)})
	}
	return b.add(ts)
}

func (b *v2Builder) build() *writev2.Request {
	r := b.req
	r.Symbols = b.st.Symbols()
	return &r
}

func testIntHistogram() *histogram.Histogram {
	return &histogram.Histogram{
		Schema:          1,
		ZeroThreshold:   0.001,
		ZeroCount:       2,
		Count:           10,
		Sum:             18.4,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{1, 1, -1, 0},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		NegativeBuckets: []int64{2, -1},
	}
}

func testFloatHistogram() *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType,
		Schema:           0,
		ZeroThreshold:    0.001,
		ZeroCount:        1.5,
		Count:            9.5,
		Sum:              -3.25,
		PositiveSpans:    []histogram.Span{{Offset: -1, Length: 3}},
		PositiveBuckets:  []float64{1, 2.5, 3},
		NegativeSpans:    []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets:  []float64{1.5},
	}
}

// Hand encoding of protobuf fields, for inputs the generated encoders never produce.
func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64Field(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
