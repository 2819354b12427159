package ingest

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpus under testdata/fuzz")

// fuzzSeedsV1 are valid and broken RW 1.0 messages (uncompressed).
func fuzzSeedsV1(t testing.TB) map[string][]byte {
	hist := v1Series([]string{"__name__", "vllm:e2e_request_latency_seconds", "model_name", "llama"})
	hist.Histograms = []prompb.Histogram{prompb.FromIntHistogram(testTS, testIntHistogram()), prompb.FromFloatHistogram(testTS+1, testFloatHistogram())}
	withEx := v1Series([]string{"__name__", "vllm:num_requests_waiting", "engine", "0"}, 3)
	withEx.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 3, Timestamp: testTS}}
	full := marshalV1(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{v1Series(gpuLabels, specialValues...), v1Series(utf8Labels, 1), hist, withEx},
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "DCGM_FI_DEV_GPU_UTIL", Help: "util", Unit: "percent"}},
	})
	return map[string][]byte{
		"valid":          full,
		"empty":          {},
		"truncated":      full[:len(full)/2],
		"unsorted-dup":   marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1Series([]string{"job", "a", "__name__", "x", "job", "b"}, 1)}}),
		"no-name":        marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1Series([]string{"job", "a"}, 1)}}),
		"wrong-wiretype": appendBytesField(nil, 1, appendBytesField(nil, 2, appendVarintField(nil, 1, 7))),
		"group":          {0x0b, 0x0c}, // start and end group of field 1
	}
}

// fuzzSeedsV2 are valid and broken RW 2.0 messages (uncompressed).
func fuzzSeedsV2(t testing.TB) map[string][]byte {
	b := newV2Builder()
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs(gpuLabels...),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: testTS, StartTimestamp: testTS - 10}, {Value: math.NaN(), Timestamp: testTS + 1}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "abc"), Value: 1, Timestamp: testTS}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: b.st.Symbolize("help"), UnitRef: b.st.Symbolize("unit")},
	})
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "h"),
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(1, testTS, testIntHistogram()), writev2.FromFloatHistogram(0, testTS+1, testFloatHistogram())},
	})
	b.series(utf8Labels, 1, 2, 3)
	full := marshalV2(t, b.build())
	return map[string][]byte{
		"valid":        full,
		"empty":        {},
		"truncated":    full[:len(full)/3],
		"bad-ref":      marshalV2(t, &writev2.Request{Symbols: []string{"", "__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 9}}}}),
		"odd-refs":     marshalV2(t, &writev2.Request{Symbols: []string{"", "__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2, 1}}}}),
		"bad-symbol-0": marshalV2(t, &writev2.Request{Symbols: []string{"x"}}),
		"unpacked":     appendBytesField(appendBytesField(nil, 4, nil), 5, appendVarintField(appendVarintField(nil, 1, 0), 1, 0)),
	}
}

// TestFuzzSeedCorpus keeps testdata/fuzz in step with the seeds above (-update-fuzz-seeds
// rewrites it) and runs the seeds through the fuzz bodies.
func TestFuzzSeedCorpus(t *testing.T) {
	for target, seeds := range map[string]map[string][]byte{"FuzzDecodeV1": fuzzSeedsV1(t), "FuzzDecodeV2": fuzzSeedsV2(t)} {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, "seed-"+name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if *updateFuzzSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (err %v); run go test -run TestFuzzSeedCorpus -update-fuzz-seeds ./ingest/", path, err)
			}
		}
	}
}

func FuzzDecodeV1(f *testing.F) {
	for _, s := range fuzzSeedsV1(f) {
		f.Add(s)
	}
	lim := Limits{}.resolve()
	f.Fuzz(func(t *testing.T, data []byte) {
		d := getDecoder(&lim, math.MaxInt64)
		defer releaseTestDecoder(d)
		d.buf = data
		err := d.decode(V1)
		checkErrorClass(t, err)

		var ref prompb.WriteRequest
		refErr := ref.Unmarshal(data)
		if refErr == nil && err != nil && !acceptedDifference(err) {
			t.Fatalf("the generated decoder accepts what we refuse: %v", err)
		}
		if refErr != nil || err != nil || d.problems.total != 0 {
			return
		}
		if len(ref.Timeseries) != len(d.req.Series) {
			t.Fatalf("%d series, the generated decoder found %d", len(d.req.Series), len(ref.Timeseries))
		}
		for i, rs := range ref.Timeseries {
			var want []Label
			for _, l := range rs.Labels {
				want = append(want, Label{l.Name, l.Value})
			}
			var samples []Sample
			for _, s := range rs.Samples {
				samples = append(samples, Sample{T: s.Timestamp, V: s.Value})
			}
			compareSeries(t, i, d.req.Series[i], want, samples, len(rs.Histograms), len(rs.Exemplars))
		}
		if len(ref.Metadata) != len(d.req.Metadata) {
			t.Fatalf("%d metadata, the generated decoder found %d", len(d.req.Metadata), len(ref.Metadata))
		}
	})
}

func FuzzDecodeV2(f *testing.F) {
	for _, s := range fuzzSeedsV2(f) {
		f.Add(s)
	}
	lim := Limits{}.resolve()
	f.Fuzz(func(t *testing.T, data []byte) {
		d := getDecoder(&lim, math.MaxInt64)
		defer releaseTestDecoder(d)
		d.buf = data
		err := d.decode(V2)
		checkErrorClass(t, err)

		var ref writev2.Request
		refErr := ref.Unmarshal(data)
		if refErr == nil && err != nil && !acceptedDifference(err) {
			t.Fatalf("the generated decoder accepts what we refuse: %v", err)
		}
		if refErr != nil || err != nil || d.problems.total != 0 {
			return
		}
		if len(ref.Timeseries) != len(d.req.Series) {
			t.Fatalf("%d series, the generated decoder found %d", len(d.req.Series), len(ref.Timeseries))
		}
		for i, rs := range ref.Timeseries {
			var want []Label
			for j := 0; j+1 < len(rs.LabelsRefs); j += 2 {
				want = append(want, Label{ref.Symbols[rs.LabelsRefs[j]], ref.Symbols[rs.LabelsRefs[j+1]]})
			}
			var samples []Sample
			for _, s := range rs.Samples {
				samples = append(samples, Sample{T: s.Timestamp, ST: s.StartTimestamp, V: s.Value})
			}
			compareSeries(t, i, d.req.Series[i], want, samples, len(rs.Histograms), len(rs.Exemplars))
			md, err := rs.ToMetadata(ref.Symbols)
			if err != nil || md.Help != d.req.Series[i].Metadata.Help || md.Unit != d.req.Series[i].Metadata.Unit {
				t.Fatalf("series %d: metadata %+v, the generated decoder found %+v (%v)", i, d.req.Series[i].Metadata, md, err)
			}
		}
	})
}

// checkErrorClass: every refusal of a whole request must be a 400 or a 413, never a 500.
func checkErrorClass(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if c := statusFor(err, false); c != 400 && c != 413 {
		t.Fatalf("error %q answers %d", err, c)
	}
}

// acceptedDifference lists where this decoder is deliberately stricter than the generated one.
func acceptedDifference(err error) bool {
	msg := err.Error()
	return errors.Is(err, errTooLarge) ||
		strings.Contains(msg, "is reserved in io.prometheus.write.v2.Request") || // RW 1.0 fields in RW 2.0
		strings.Contains(msg, "symbols[0] must be the empty string") ||
		// Obsolete groups: the generated decoders only count group depth; a mismatched
		// end-group field number is malformed protobuf, refused here as protobuf-go does.
		strings.Contains(msg, "mismatched end-group marker") ||
		// Field numbers above 2^29-1: the generated decoders truncate them to int32 and
		// skip the field; the protobuf spec (and protowire) call them invalid.
		strings.Contains(msg, "invalid field number") ||
		// A 10-byte varint whose last byte carries bits past 64: the generated decoders
		// drop them, protowire calls it an overflow.
		strings.Contains(msg, "overflows 64 bits") ||
		// A packed run whose last varint is cut by the run's end: the generated decoders
		// read on past the run into the next field.
		strings.Contains(msg, "labels_refs: truncated varint")
}

func compareSeries(t *testing.T, i int, got Series, wantLabels []Label, wantSamples []Sample, hists, exemplars int) {
	t.Helper()
	slices.SortStableFunc(wantLabels, compareLabels)
	if !slices.Equal(got.Labels, wantLabels) {
		t.Fatalf("series %d: labels %q, the generated decoder found %q", i, got.Labels, wantLabels)
	}
	if !slices.EqualFunc(got.Samples, wantSamples, func(a, b Sample) bool {
		return a.T == b.T && a.ST == b.ST && math.Float64bits(a.V) == math.Float64bits(b.V)
	}) {
		t.Fatalf("series %d: samples %v, the generated decoder found %v", i, got.Samples, wantSamples)
	}
	if len(got.Histograms) != hists || len(got.Exemplars) != exemplars {
		t.Fatalf("series %d: %d histograms and %d exemplars, the generated decoder found %d and %d",
			i, len(got.Histograms), len(got.Exemplars), hists, exemplars)
	}
}

// releaseTestDecoder returns a decoder whose buf was borrowed from the test: the pool must
// not keep (and later decompress into) memory it does not own.
func releaseTestDecoder(d *decoder) {
	d.buf = nil
	putDecoder(d)
}
