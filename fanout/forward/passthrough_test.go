package forward

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

func TestPassRecordRoundTrip(t *testing.T) {
	req := &ingest.Request{Version: ingest.V1, Body: []byte("snappy body, as it arrived")}
	for i := range 5 {
		req.Series = append(req.Series, gpuSeries(4-i, 1000, 1))
	}
	frame := encodePass(req, ingest.Stats{Samples: 5, Exemplars: 2}, 1234, req.Body)
	rec := frame[frameHdrLen:]
	if int(binary.LittleEndian.Uint32(frame)) != len(rec) {
		t.Fatalf("frame length %d, record %d bytes", binary.LittleEndian.Uint32(frame), len(rec))
	}
	if !isPass(rec) || recordTime(rec) != 1234 || recordSamples(rec) != 5 {
		t.Fatalf("header: pass %v, time %d, samples %d", isPass(rec), recordTime(rec), recordSamples(rec))
	}
	pr, err := parsePass(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pr.body, req.Body) || pr.samples != 5 || pr.exemplars != 2 || len(pr.keys) != 4*5 {
		t.Fatalf("parsed %+v", pr)
	}
	for i := 4; i < len(pr.keys); i += 4 {
		if binary.LittleEndian.Uint32(pr.keys[i-4:]) > binary.LittleEndian.Uint32(pr.keys[i:]) {
			t.Fatal("keys not ascending")
		}
	}
	// An encoded record is not a pass-through one, and a cut pass-through record is refused.
	var e recordEncoder
	e.reset(1)
	e.addSeries(1, true, gpuSeries(0, 0, 0).Labels, req.Series[0].Metadata, nil, nil, nil)
	if isPass(e.finish()[frameHdrLen:]) {
		t.Error("an encoded record reads as pass-through")
	}
	if _, err := parsePass(rec[:passHdrLen+3]); err == nil {
		t.Error("a record cut in its keys parsed")
	}
}

func TestKeysMeet(t *testing.T) {
	keys := func(ks ...uint32) []byte {
		b := make([]byte, 0, 4*len(ks))
		for _, k := range ks {
			b = binary.LittleEndian.AppendUint32(b, k)
		}
		return b
	}
	for _, tc := range []struct {
		a, b []byte
		want bool
	}{
		{keys(1, 5, 9), keys(2, 6, 10), false},
		{keys(1, 5, 9), keys(9), true},
		{keys(1), keys(1, 2, 3), true},
		{keys(), keys(1), false},
		{keys(3, 4), keys(1, 2), false},
		{keys(0, 1<<31, 1<<32-1), keys(7, 1<<32-1), true},
	} {
		if got := keysMeet(tc.a, tc.b); got != tc.want {
			t.Errorf("keysMeet(%v, %v) = %v", tc.a, tc.b, got)
		}
		if got := keysMeet(tc.b, tc.a); got != tc.want {
			t.Errorf("keysMeet(%v, %v) = %v", tc.b, tc.a, got)
		}
	}
}

func TestSortKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tmp []uint32
	for _, n := range []int{0, 1, 5, 63, 64, 65, 2000, 10000} {
		for _, spread := range []uint32{math.MaxUint32, 1 << 12, 7} {
			keys := make([]uint32, n)
			for i := range keys {
				keys[i] = rng.Uint32() % spread
				if spread == math.MaxUint32 {
					keys[i] = rng.Uint32()
				}
			}
			want := slices.Clone(keys)
			slices.Sort(want)
			var got []uint32
			got, tmp = sortKeys(keys, tmp)
			if !slices.Equal(got, want) {
				t.Fatalf("%d keys below %d: not sorted", n, spread)
			}
		}
	}
}

// FuzzParsePass feeds arbitrary records to the relay's reader: it must refuse or bound them,
// never panic nor read past the record.
func FuzzParsePass(f *testing.F) {
	req := &ingest.Request{Version: ingest.V1, Body: []byte("body")}
	req.Series = append(req.Series, gpuSeries(1, 1000, 1), gpuSeries(2, 1000, 1))
	f.Add(encodePass(req, ingest.Stats{Samples: 2}, 1, req.Body)[frameHdrLen:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rec []byte) {
		pr, err := parsePass(rec)
		if err != nil {
			return
		}
		if len(pr.keys)%4 != 0 || passHdrLen+len(pr.keys)+len(pr.body) != len(rec) {
			t.Fatalf("keys %d bytes, body %d bytes, record %d bytes", len(pr.keys), len(pr.body), len(rec))
		}
		_ = keysMeet(pr.keys, pr.keys)
	})
}

// TestTranscodeMatchesGeneratedCode: an RW 2.0 write transcoded for an RW 1.0 destination is,
// byte for byte, what Prometheus' generated code marshals for the same series and metadata
// (each family's metadata once, after the series; stale markers and zero values as the
// generated code writes them). -0, which the generated code writes as +0, stays -0.
func TestTranscodeMatchesGeneratedCode(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	req := &ingest.Request{Version: ingest.V2}
	for i, v := range []float64{0, 1.5, stale, 42} {
		s := gpuSeries(i, int64(1000*i), v)
		s.Samples = append(s.Samples, ingest.Sample{T: int64(1000*i + 500), ST: 7, V: v + 1})
		s.Metadata = metadata.Metadata{Type: model.MetricTypeGauge, Help: "GPU utilisation.", Unit: "percent"}
		req.Series = append(req.Series, s)
	}
	req.Series = append(req.Series, series([]string{"__name__", "info_only", "job", "x"})) // metadata-less, sample-less
	want := v1Request(req.Series)
	want.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "DCGM_FI_DEV_GPU_UTIL", Help: "GPU utilisation.", Unit: "percent"}}
	wantRaw, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var tc transcoder
	tc.seen = map[string]struct{}{}
	got, err := s2.Decode(nil, tc.encodeV1(req, true))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantRaw) {
		t.Fatalf("transcoded body differs from the generated code's:\n got %x\nwant %x", got, wantRaw)
	}
	// Without metadata_config.send, the same without the metadata.
	want.Metadata = nil
	wantRaw, _ = want.Marshal()
	if got, _ := s2.Decode(nil, tc.encodeV1(req, false)); !bytes.Equal(got, wantRaw) {
		t.Fatal("transcoded body with metadata off differs from the generated code's")
	}
	negZero := &ingest.Request{Version: ingest.V2, Series: []ingest.Series{gpuSeries(0, 1000, math.Copysign(0, -1))}}
	raw, _ := s2.Decode(nil, tc.encodeV1(negZero, true))
	var back prompb.WriteRequest
	if err := back.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if v := back.Timeseries[0].Samples[0].Value; v != 0 || !math.Signbit(v) {
		t.Errorf("-0 came back as %v", v)
	}
}
