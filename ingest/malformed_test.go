package ingest

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestMalformedInput(t *testing.T) {
	ok1 := []string{"__name__", "ok_one", "job", "a"}
	ok2 := []string{"__name__", "ok_two", "job", "a"}
	v1 := func(series ...prompb.TimeSeries) []byte {
		return marshalV1(t, &prompb.WriteRequest{Timeseries: series})
	}
	manyLabels := []string{"__name__", "many"}
	for i := range 65 {
		manyLabels = append(manyLabels, "l"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "v")
	}
	good := snappy(v1(v1Series(ok1, 1)))

	// RW 2.0 pieces, hand-assembled where the generated encoder would not produce them.
	v2WithRefs := func(refs []uint32) []byte {
		b := newV2Builder()
		b.series(ok1, 1)
		b.refs("__name__", "bad")
		b.add(writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: testTS}}})
		b.series(ok2, 2)
		return marshalV2(t, b.build())
	}
	truncatedVarint := func() []byte {
		b := newV2Builder()
		b.series(ok1, 1)
		raw := marshalV2(t, b.build())
		sample := appendFixed64Field(nil, 1, math.Float64bits(1))
		sample = protowire.AppendTag(sample, 2, protowire.VarintType)
		sample = append(sample, 0x80) // timestamp varint cut after one byte
		ts := appendBytesField(nil, 2, sample)
		return appendBytesField(raw, 5, ts)
	}()
	bomb := binary.AppendUvarint(nil, 1<<31) // claims 2 GiB decoded
	bomb = append(bomb, 0x00, 0x00, 0x00)

	for _, tc := range []struct {
		name       string
		ctype      string
		body       []byte // sent as is (already compressed or not)
		opts       Options
		want       int
		wantMsg    []string
		wantSeries []string // metric names the sink must receive
		wantLimit  string   // limit_hits_total label that must have moved
	}{
		{name: "truncated snappy", ctype: ctV1, body: good[:len(good)/2], want: 400, wantMsg: []string{"snappy: corrupt body"}},
		{name: "not snappy", ctype: ctV1, body: []byte("\xff\xff\xff\xff\xff\xff"), want: 400, wantMsg: []string{"snappy"}},
		{name: "empty body", ctype: ctV1, body: nil, want: 400, wantMsg: []string{"snappy"}},
		{name: "garbage protobuf", ctype: ctV1, body: snappy([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")), want: 400,
			wantMsg: []string{"decode RW 1.0 request"}},
		{name: "wrong wire type", ctype: ctV1, body: snappy(appendVarintField(nil, 1, 5)), want: 400,
			wantMsg: []string{"decode RW 1.0 request: timeseries[0]: field 1 has wire type varint at byte 1"}},
		{name: "wrong wire type in sample", ctype: ctV1,
			body: snappy(appendBytesField(nil, 1, appendBytesField(nil, 2, appendVarintField(nil, 1, 7)))), want: 400,
			wantMsg: []string{"timeseries[0].samples[0]: field 1 has wire type varint"}},
		{name: "truncated varint", ctype: ctV2, body: snappy(truncatedVarint), want: 400,
			wantMsg: []string{"decode RW 2.0 request: timeseries[1].samples[0]: truncated varint at byte"}},
		{name: "huge body", ctype: ctV1, body: snappy(v1(v1Series(ok1, make([]float64, 5000)...))),
			opts: Options{Limits: Limits{MaxBodyBytes: 1000}}, want: 413,
			wantMsg: []string{"limit 1000, set by limits.max_body_bytes"}, wantLimit: limitMaxBodyBytes},
		{name: "decoded-size bomb", ctype: ctV1, body: bomb, want: 413,
			wantMsg: []string{"announces 2147483648 decoded bytes", "limits.max_decoded_bytes"}, wantLimit: limitMaxDecodedBytes},
		{name: "too many series", ctype: ctV2, body: snappy(marshalV2(t, newV2Builder().series(ok1, 1).series(ok2, 1).series([]string{"__name__", "three"}, 1).build())),
			opts: Options{Limits: Limits{MaxSeriesPerRequest: 2}}, want: 413,
			wantMsg: []string{"more than 2 series", "limits.max_series_per_request"}, wantLimit: limitMaxSeries},
		{name: "too many labels", ctype: ctV1, body: snappy(v1(v1Series(ok1, 1), v1Series(manyLabels, 1), v1Series(ok2, 1))), want: 400,
			wantMsg:    []string{"66 labels, over the limit of 64 (set by limits.max_labels_per_series)", "1 invalid series"},
			wantSeries: []string{"ok_one", "ok_two"}, wantLimit: limitMaxLabels},
		{name: "giant value", ctype: ctV1, body: snappy(v1(v1Series([]string{"__name__", "big", "pod", strings.Repeat("p", 5000)}, 1), v1Series(ok2, 1))),
			want: 400, wantMsg: []string{`label "pod" has a value of 5000 bytes, over the limit of 4096 (set by limits.max_label_value_length)`},
			wantSeries: []string{"ok_two"}, wantLimit: limitMaxValueLength},
		{name: "giant name", ctype: ctV1, body: snappy(v1(v1Series([]string{"__name__", "big", strings.Repeat("n", 2000), "x"}, 1), v1Series(ok2, 1))),
			want: 400, wantMsg: []string{"label name of 2000 bytes, over the limit of 1024 (set by limits.max_label_name_length)"},
			wantSeries: []string{"ok_two"}, wantLimit: limitMaxNameLength},
		{name: "duplicate labels", ctype: ctV1, body: snappy(v1(v1Series(ok1, 1), v1Series([]string{"job", "x", "__name__", "dup", "job", "y"}, 1))),
			want: 400, wantMsg: []string{`duplicate label name "job"`}, wantSeries: []string{"ok_one"}},
		{name: "missing name", ctype: ctV1, body: snappy(v1(v1Series([]string{"job", "x"}, 1), v1Series(ok2, 1))),
			want: 400, wantMsg: []string{`timeseries[0] {"job"="x"}: no __name__ label`}, wantSeries: []string{"ok_two"}},
		{name: "empty name value", ctype: ctV1, body: snappy(v1(v1Series([]string{"__name__", "", "job", "x"}, 1))),
			want: 400, wantMsg: []string{"no __name__ label"}},
		{name: "empty label set", ctype: ctV1, body: snappy(v1(v1Series(nil, 1), v1Series(ok1, 1))),
			want: 400, wantMsg: []string{"timeseries[0] {}: no labels"}, wantSeries: []string{"ok_one"}},
		{name: "empty label name", ctype: ctV1, body: snappy(v1(v1Series([]string{"__name__", "x", "", "v"}, 1))),
			want: 400, wantMsg: []string{"empty label name"}},
		{name: "invalid utf8 v1", ctype: ctV1, body: snappy(v1(v1Series([]string{"__name__", "x", "pod", "a\xffb"}, 1), v1Series(ok1, 1))),
			want: 400, wantMsg: []string{`invalid UTF-8 in label "pod"`}, wantSeries: []string{"ok_one"}},
		{name: "future sample", ctype: ctV1, body: snappy(v1(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "late"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: testNow.Add(11 * time.Minute).UnixMilli()}}}, v1Series(ok1, 1))),
			want: 400, wantMsg: []string{"more than 10m0s in the future"}, wantSeries: []string{"ok_one"}},
		{name: "v2 ref out of range", ctype: ctV2, body: snappy(v2WithRefs([]uint32{1, 99})), want: 400,
			wantMsg: []string{"timeseries[1]: label ref 99 out of range"}, wantSeries: []string{"ok_one", "ok_two"}},
		{name: "v2 odd refs", ctype: ctV2, body: snappy(v2WithRefs([]uint32{1, 2, 3})), want: 400,
			wantMsg: []string{"odd number of label refs (3)"}, wantSeries: []string{"ok_one", "ok_two"}},
		{name: "v2 label bomb", ctype: ctV2, body: func() []byte {
			b := newV2Builder()
			refs := b.refs("__name__", "bomb")
			for range 100_000 {
				refs = append(refs, b.refs("pod", "p")...)
			}
			b.add(writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: testTS}}})
			b.series(ok2, 1)
			return snappy(marshalV2(t, b.build()))
		}(), want: 400, wantMsg: []string{"100001 labels, over the limit of 64"}, wantSeries: []string{"ok_two"}, wantLimit: limitMaxLabels},
		{name: "v2 exemplar label bomb", ctype: ctV2, body: func() []byte {
			b := newV2Builder()
			var refs []uint32
			for range 1000 {
				refs = append(refs, b.refs("trace_id", "t")...)
			}
			b.add(writev2.TimeSeries{LabelsRefs: b.refs("__name__", "m"), Samples: []writev2.Sample{{Value: 1, Timestamp: testTS}},
				Exemplars: []writev2.Exemplar{{LabelsRefs: refs, Value: 1, Timestamp: testTS}}})
			return snappy(marshalV2(t, b.build()))
		}(), want: 400, wantMsg: []string{"an exemplar has more than 64 labels"}, wantLimit: limitMaxLabels},
		{name: "v2 symbols[0] not empty", ctype: ctV2,
			body: snappy(marshalV2(t, &writev2.Request{Symbols: []string{"__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 1}}}})),
			want: 400, wantMsg: []string{`symbols[0] must be the empty string, got "__name__"`}},
		{name: "v2 samples and histograms", ctype: ctV2, body: func() []byte {
			b := newV2Builder()
			b.add(writev2.TimeSeries{LabelsRefs: b.refs("__name__", "mixed"), Samples: []writev2.Sample{{Value: 1, Timestamp: testTS}},
				Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, testTS, testIntHistogram())}})
			b.series(ok1, 1)
			return snappy(marshalV2(t, b.build()))
		}(), want: 400, wantMsg: []string{"both float samples and histograms"}, wantSeries: []string{"ok_one"}},
		{name: "v2 bad metadata ref", ctype: ctV2, body: func() []byte {
			b := newV2Builder()
			b.add(writev2.TimeSeries{LabelsRefs: b.refs("__name__", "m"), Metadata: writev2.Metadata{HelpRef: 500}})
			return snappy(marshalV2(t, b.build()))
		}(), want: 400, wantMsg: []string{"metadata ref 500 out of range"}},
		{name: "v2 bad exemplar ref", ctype: ctV2, body: func() []byte {
			b := newV2Builder()
			b.add(writev2.TimeSeries{LabelsRefs: b.refs("__name__", "m"), Samples: []writev2.Sample{{Value: 1, Timestamp: testTS}},
				Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{1, 77}}}})
			b.series(ok2, 1)
			return snappy(marshalV2(t, b.build()))
		}(), want: 400, wantMsg: []string{"exemplar label ref 77 out of range"}, wantSeries: []string{"ok_two"}},
		{name: "v2 invalid utf8 symbol", ctype: ctV2, body: func() []byte {
			b := newV2Builder()
			b.series([]string{"__name__", "m", "pod", "\xc3\x28"}, 1)
			b.series(ok1, 1)
			return snappy(marshalV2(t, b.build()))
		}(), want: 400, wantMsg: []string{"invalid UTF-8 in symbol"}, wantSeries: []string{"ok_one"}},
		{name: "v1 body as v2", ctype: ctV2, body: good, want: 400, wantMsg: []string{"field 1 is reserved"}},
		{name: "many bad series are summarised", ctype: ctV1, body: func() []byte {
			var ss []prompb.TimeSeries
			for range 50 {
				ss = append(ss, v1Series([]string{"job", "x"}, 1))
			}
			return snappy(v1(append(ss, v1Series(ok1, 1))...))
		}(), want: 400, wantMsg: []string{"50 invalid series or metadata entries dropped (of 51 series)", "... and 45 more"}, wantSeries: []string{"ok_one"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			tc.opts.Sinks = []Sink{sink}
			h, _ := newTestHandler(t, tc.opts)
			w := post(h, tc.ctype, "snappy", tc.body)
			if w.Code != tc.want {
				t.Errorf("status = %d, want %d (body %q)", w.Code, tc.want, w.Body)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(w.Body.String(), m) {
					t.Errorf("body %q does not contain %q", w.Body, m)
				}
			}
			if got := labelNames(sink.series()); !slices.Equal(got, tc.wantSeries) {
				t.Errorf("sink got series %q, want %q", got, tc.wantSeries)
			}
			if tc.wantLimit != "" {
				if got := testutil.ToFloat64(h.metrics.limitHits.WithLabelValues(tc.wantLimit)); got != 1 {
					t.Errorf("limit_hits_total{limit=%q} = %v, want 1", tc.wantLimit, got)
				}
			}
			// The handler keeps serving.
			if w := post(h, ctV1, "snappy", good); w.Code != 204 {
				t.Errorf("next good request: %d %q", w.Code, w.Body)
			}
		})
	}
}
