package forward

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

func TestPassRecordRoundTrip(t *testing.T) {
	req := &ingest.Request{Version: ingest.V1, Body: []byte("snappy body, as it arrived")}
	for i := range 5 {
		req.Series = append(req.Series, gpuSeries(4-i, 1000, 1))
	}
	frame := encodePass(req, ingest.Stats{Samples: 5, Exemplars: 2}, 1234)
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
	f.Add(encodePass(req, ingest.Stats{Samples: 2}, 1)[frameHdrLen:])
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
