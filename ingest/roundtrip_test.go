package ingest

import (
	"math"
	"net/http"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

var specialValues = []float64{0, -1.5, math.NaN(), math.Inf(1), math.Inf(-1), math.Float64frombits(value.StaleNaN), 1e308}

// wantLabels sorts name/value pairs into the Labels the sink must see.
func wantLabels(lv ...string) []Label {
	var out []Label
	for i := 0; i+1 < len(lv); i += 2 {
		out = append(out, Label{lv[i], lv[i+1]})
	}
	slices.SortFunc(out, compareLabels)
	return out
}

func refHash(ls []Label) uint64 {
	h, _ := refHashes(ls)
	return h
}

// refHashes computes Series.Hash independently (xxhash) and Hash2 through KeyHashes.
func refHashes(ls []Label) (uint64, uint64) {
	var b []byte
	for _, l := range ls {
		b = append(b, l.Name...)
		b = append(b, 0xff)
		b = append(b, l.Value...)
		b = append(b, 0xff)
	}
	_, h2 := KeyHashes(b)
	return xxhash.Sum64(b), h2
}

func checkLabels(t *testing.T, s Series, want []Label) {
	t.Helper()
	if !slices.Equal(s.Labels, want) {
		t.Errorf("labels = %v, want %v", s.Labels, want)
	}
	if h1, h2 := refHashes(want); s.Hash != h1 || s.Hash2 != h2 {
		t.Errorf("hashes of %v = %x/%x, want %x/%x", want, s.Hash, s.Hash2, h1, h2)
	}
}

func checkSamples(t *testing.T, got []Sample, values []float64, st int64) {
	t.Helper()
	if len(got) != len(values) {
		t.Fatalf("got %d samples, want %d", len(got), len(values))
	}
	for i, v := range values {
		g := got[i]
		if math.Float64bits(g.V) != math.Float64bits(v) || g.T != testTS+int64(i) || g.ST != st {
			t.Errorf("sample %d = {T:%d ST:%d V:%x}, want {T:%d ST:%d V:%x}", i, g.T, g.ST,
				math.Float64bits(g.V), testTS+int64(i), st, math.Float64bits(v))
		}
	}
}

var (
	gpuLabels = []string{"instance", "node-1:9400", "__name__", "DCGM_FI_DEV_GPU_UTIL", "gpu", "0",
		"UUID", "GPU-3f2a", "modelName", "NVIDIA H100 80GB HBM3"} // unsorted on purpose
	utf8Labels = []string{"__name__", "http.server.request.duration", "service name", "checkout ✓",
		"ünïcødé.label", "値"}
)

func TestRoundTripV1(t *testing.T) {
	sink := &recordingSink{}
	h, _ := newTestHandler(t, Options{Sinks: []Sink{sink}})

	intH, floatH := testIntHistogram(), testFloatHistogram()
	hist := v1Series([]string{"__name__", "vllm:e2e_request_latency_seconds", "model_name", "llama"})
	hist.Histograms = []prompb.Histogram{prompb.FromIntHistogram(testTS, intH)}
	fhist := v1Series([]string{"__name__", "vllm:queue_time_seconds", "model_name", "llama"})
	fhist.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(testTS+5, floatH)}
	withEx := v1Series([]string{"__name__", "vllm:num_requests_waiting", "engine", "0"}, 3)
	withEx.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc123"}}, Value: 3, Timestamp: testTS}}

	req := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			v1Series(gpuLabels, specialValues...),
			v1Series(utf8Labels, 1, 2),
			hist, fhist, withEx,
		},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "DCGM_FI_DEV_GPU_UTIL", Help: "GPU utilization (in %).", Unit: "percent"},
			{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "vllm:e2e_request_latency_seconds", Help: "E2E latency ✓"},
		},
	}
	w := postV1(h, t, req)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	reqs := sink.requests()
	if len(reqs) != 1 || reqs[0].Version != V1 {
		t.Fatalf("sink got %d requests", len(reqs))
	}
	got := reqs[0].Series
	if len(got) != 5 {
		t.Fatalf("got %d series", len(got))
	}
	checkLabels(t, got[0], wantLabels(gpuLabels...))
	checkSamples(t, got[0].Samples, specialValues, 0)
	checkLabels(t, got[1], wantLabels(utf8Labels...))
	checkSamples(t, got[1].Samples, []float64{1, 2}, 0)

	if hs := got[2].Histograms; len(hs) != 1 || hs[0].T != testTS || hs[0].FH != nil || !hs[0].H.Equals(intH) {
		t.Errorf("int histogram = %+v", hs)
	}
	if hs := got[3].Histograms; len(hs) != 1 || hs[0].T != testTS+5 || hs[0].H != nil || !hs[0].FH.Equals(floatH) {
		t.Errorf("float histogram = %+v", hs)
	}
	ex := got[4].Exemplars
	if len(ex) != 1 || ex[0].V != 3 || ex[0].T != testTS || !slices.Equal(ex[0].Labels, []Label{{"trace_id", "abc123"}}) {
		t.Errorf("exemplars = %+v", ex)
	}
	wantMeta := []FamilyMetadata{
		{"DCGM_FI_DEV_GPU_UTIL", metadata.Metadata{Type: model.MetricTypeGauge, Help: "GPU utilization (in %).", Unit: "percent"}},
		{"vllm:e2e_request_latency_seconds", metadata.Metadata{Type: model.MetricTypeHistogram, Help: "E2E latency ✓"}},
	}
	if !slices.Equal(reqs[0].Metadata, wantMeta) {
		t.Errorf("metadata = %+v, want %+v", reqs[0].Metadata, wantMeta)
	}
}

func TestRoundTripV2(t *testing.T) {
	sink := &recordingSink{}
	h, _ := newTestHandler(t, Options{Sinks: []Sink{sink}})

	intH, floatH := testIntHistogram(), testFloatHistogram()
	b := newV2Builder()
	// Unsorted labels, special values and a start timestamp on every sample.
	ts := writev2.TimeSeries{
		LabelsRefs: b.refs(gpuLabels...),
		Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE,
			HelpRef: b.st.Symbolize("GPU utilization (in %)."), UnitRef: b.st.Symbolize("percent")},
	}
	for i, v := range specialValues {
		ts.Samples = append(ts.Samples, writev2.Sample{Value: v, Timestamp: testTS + int64(i), StartTimestamp: testTS - 1000})
	}
	b.add(ts)
	b.series(utf8Labels, 1, 2)
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "vllm:e2e_request_latency_seconds", "model_name", "llama"),
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(testTS-500, testTS, intH)},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: b.st.Symbolize("E2E latency ✓"), UnitRef: b.st.Symbolize("seconds")},
	})
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "vllm:queue_time_seconds", "model_name", "llama"),
		Histograms: []writev2.Histogram{writev2.FromFloatHistogram(0, testTS+5, floatH)},
	})
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "vllm:num_requests_running", "engine", "0"),
		Samples:    []writev2.Sample{{Value: 7, Timestamp: testTS}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "abc123", "span_id", "s1"), Value: 7, Timestamp: testTS}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER},
	})
	// A series with metadata only is accepted.
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "vllm:cache_config_info", "engine", "0"),
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_INFO},
	})

	w := postV2(h, t, b.build())
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	for hdr, want := range map[string]string{headerSamplesWritten: "10", headerHistogramsWritten: "2", headerExemplarsWritten: "1"} {
		if got := w.Header().Get(hdr); got != want {
			t.Errorf("%s = %q, want %q", hdr, got, want)
		}
	}
	reqs := sink.requests()
	if len(reqs) != 1 || reqs[0].Version != V2 || len(reqs[0].Series) != 6 {
		t.Fatalf("sink got %+v", reqs)
	}
	got := reqs[0].Series
	checkLabels(t, got[0], wantLabels(gpuLabels...))
	checkSamples(t, got[0].Samples, specialValues, testTS-1000)
	if want := (metadata.Metadata{Type: model.MetricTypeGauge, Help: "GPU utilization (in %).", Unit: "percent"}); got[0].Metadata != want {
		t.Errorf("metadata = %+v, want %+v", got[0].Metadata, want)
	}
	checkLabels(t, got[1], wantLabels(utf8Labels...))
	checkSamples(t, got[1].Samples, []float64{1, 2}, 0)
	if got[1].Metadata != (metadata.Metadata{Type: model.MetricTypeUnknown}) {
		t.Errorf("metadata = %+v, want none", got[1].Metadata)
	}
	if hs := got[2].Histograms; len(hs) != 1 || hs[0].T != testTS || hs[0].ST != testTS-500 || !hs[0].H.Equals(intH) {
		t.Errorf("int histogram = %+v", hs)
	}
	if want := (metadata.Metadata{Type: model.MetricTypeHistogram, Help: "E2E latency ✓", Unit: "seconds"}); got[2].Metadata != want {
		t.Errorf("metadata = %+v, want %+v", got[2].Metadata, want)
	}
	if hs := got[3].Histograms; len(hs) != 1 || hs[0].T != testTS+5 || !hs[0].FH.Equals(floatH) {
		t.Errorf("float histogram = %+v", hs)
	}
	ex := got[4].Exemplars
	if len(ex) != 1 || ex[0].V != 7 || !slices.Equal(ex[0].Labels, []Label{{"trace_id", "abc123"}, {"span_id", "s1"}}) {
		t.Errorf("exemplars = %+v", ex)
	}
	if got[4].Metadata.Type != model.MetricTypeCounter || got[5].Metadata.Type != model.MetricTypeInfo || len(got[5].Samples) != 0 {
		t.Errorf("metadata-only series = %+v", got[5])
	}
}

// Equal label sets hash equally whatever version carried them.
func TestHashSameAcrossVersions(t *testing.T) {
	sink := &recordingSink{}
	h, _ := newTestHandler(t, Options{Sinks: []Sink{sink}})
	postV1(h, t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1Series(gpuLabels, 1)}})
	postV2(h, t, newV2Builder().series(gpuLabels, 1).build())
	ss := sink.series()
	if len(ss) != 2 || ss[0].Hash != ss[1].Hash || ss[0].Hash2 != ss[1].Hash2 || ss[0].Hash == 0 {
		t.Fatalf("series = %+v", ss)
	}
}

// A field the sender repeats unpacked, fields in unusual order and rc.3's created_timestamp
// (field 6) all decode.
func TestDecodeWireVariants(t *testing.T) {
	b := newV2Builder()
	b.series([]string{"__name__", "up", "job", "x"}, 1)
	req := b.build()
	raw := marshalV2(t, req)

	// Hand-encode the same request with symbols after the series, unpacked label refs and a
	// created_timestamp field.
	var alt []byte
	alt = appendBytesField(alt, 5, func() []byte {
		var ts []byte
		for _, r := range req.Timeseries[0].LabelsRefs {
			ts = appendVarintField(ts, 1, uint64(r))
		}
		ts = appendBytesField(ts, 2, func() []byte {
			s := appendFixed64Field(nil, 1, math.Float64bits(1))
			return appendVarintField(s, 2, uint64(testTS))
		}())
		return appendVarintField(ts, 6, 12345)
	}())
	for _, s := range req.Symbols {
		alt = appendBytesField(alt, 4, []byte(s))
	}
	alt = appendVarintField(alt, 99, 1) // unknown top-level field

	for name, buf := range map[string][]byte{"generated": raw, "hand-written": alt} {
		t.Run(name, func(t *testing.T) {
			lim := Limits{}.resolve()
			d := getDecoder(&lim, math.MaxInt64)
			defer releaseTestDecoder(d)
			d.buf = buf
			if err := d.decode(V2); err != nil {
				t.Fatal(err)
			}
			if len(d.req.Series) != 1 || d.problems.total != 0 {
				t.Fatalf("series %+v, problems %v", d.req.Series, d.problems.msgs)
			}
			s := d.req.Series[0]
			checkLabels(t, s, wantLabels("__name__", "up", "job", "x"))
			checkSamples(t, s.Samples, []float64{1}, 0)
		})
	}
}
