package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/internal/fleet"
)

// Protocol is the remote-write message a run sends.
type Protocol string

// The two remote-write versions.
const (
	RW1 Protocol = "rw1"
	RW2 Protocol = "rw2"
)

// ContentType is the Content-Type header of a write request in p.
func (p Protocol) ContentType() string {
	if p == RW2 {
		return "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	return "application/x-protobuf"
}

// VersionHeader is the X-Prometheus-Remote-Write-Version header of a write request in p.
func (p Protocol) VersionHeader() string {
	if p == RW2 {
		return "2.0.0"
	}
	return "0.1.0"
}

// Timestamps are patched in place, so every timestamp of a run must encode as a varint of
// the same length. Six bytes hold 2^35..2^42-1 ms: from 1971 to 2109.
const (
	tsVarintLen = 6
	minTS       = int64(1) << 35
	maxTS       = int64(1)<<42 - 1
	// templateTS is the timestamp the templates are marshalled with; its low seven bits are
	// zero so that templateTS+1 changes exactly one byte of each timestamp varint.
	templateTS = int64(1) << 40
	// templateValue is a non-zero value, so that the value field is always present in the
	// template (proto3 leaves zero out) and can be patched.
	templateValue = 1.5
)

// Template is one write request, uncompressed, with the offsets of its samples: patching
// the timestamp and value at those offsets gives the request of another round without
// marshalling again.
type Template struct {
	Body  []byte
	First int   // index of the request's first series in the fleet
	TS    []int // TS[k]: offset of the timestamp varint of series First+k
}

// Plan is how a fleet is split into requests.
type Plan struct {
	Protocol          Protocol
	Series            int // series in the fleet
	SamplesPerRequest int // series per request, one sample each
}

// RequestsPerRound is how many requests carry one sample of every series.
func (p Plan) RequestsPerRound() int {
	return (p.Series + p.SamplesPerRequest - 1) / p.SamplesPerRequest
}

// SamplesIn is the number of samples in request j of a round.
func (p Plan) SamplesIn(j int) int {
	return min(p.SamplesPerRequest, p.Series-j*p.SamplesPerRequest)
}

// BuildTemplates marshals one request per slice of the fleet.
func BuildTemplates(p Plan) ([]Template, error) {
	if p.Series <= 0 || p.SamplesPerRequest <= 0 {
		return nil, fmt.Errorf("series (%d) and samples per request (%d) must be positive", p.Series, p.SamplesPerRequest)
	}
	if p.Protocol != RW1 && p.Protocol != RW2 {
		return nil, fmt.Errorf("unknown protocol %q", p.Protocol)
	}
	out := make([]Template, p.RequestsPerRound())
	for j := range out {
		first := j * p.SamplesPerRequest
		t, err := buildTemplate(p.Protocol, first, p.SamplesIn(j))
		if err != nil {
			return nil, err
		}
		out[j] = t
	}
	return out, nil
}

// buildTemplate marshals series first..first+n-1 twice, at templateTS and templateTS+1; the
// bytes that differ are the first bytes of the timestamp varints, which gives their offsets
// without depending on how the generated code lays out the message.
func buildTemplate(proto Protocol, first, n int) (Template, error) {
	a, err := marshal(proto, first, n, templateTS)
	if err != nil {
		return Template{}, err
	}
	b, err := marshal(proto, first, n, templateTS+1)
	if err != nil {
		return Template{}, err
	}
	if len(a) != len(b) {
		return Template{}, fmt.Errorf("template sizes differ: %d and %d", len(a), len(b))
	}
	t := Template{Body: a, First: first, TS: make([]int, 0, n)}
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		// A Sample is: 0x09 <8-byte value> 0x10 <timestamp varint>.
		if i < 10 || a[i-1] != 0x10 || a[i-10] != 0x09 || i+tsVarintLen > len(a) {
			return Template{}, fmt.Errorf("unexpected sample layout at offset %d", i)
		}
		t.TS = append(t.TS, i)
	}
	if len(t.TS) != n {
		return Template{}, fmt.Errorf("found %d timestamps in a request of %d samples", len(t.TS), n)
	}
	return t, nil
}

func toLabels(ls []fleet.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// metricType guesses a series' type from its name, as an exporter would declare it.
func metricType(name string) writev2.Metadata_MetricType {
	for _, suffix := range []string{"_total", "_sum", "_count", "_COUNTER", "_ERRORS", "_CONSUMPTION"} {
		if strings.HasSuffix(name, suffix) {
			return writev2.Metadata_METRIC_TYPE_COUNTER
		}
	}
	return writev2.Metadata_METRIC_TYPE_GAUGE
}

func marshal(proto Protocol, first, n int, ts int64) ([]byte, error) {
	if proto == RW1 {
		req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
		for k := range n {
			ls := fleet.Series(first + k)
			pl := make([]prompb.Label, len(ls))
			for i, l := range ls {
				pl[i] = prompb.Label{Name: l.Name, Value: l.Value}
			}
			req.Timeseries[k] = prompb.TimeSeries{
				Labels:  pl,
				Samples: []prompb.Sample{{Value: templateValue, Timestamp: ts}},
			}
		}
		return req.Marshal()
	}
	st := writev2.NewSymbolTable()
	req := writev2.Request{Timeseries: make([]writev2.TimeSeries, n)}
	for k := range n {
		lbls := toLabels(fleet.Series(first + k))
		req.Timeseries[k] = writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(lbls, nil),
			Samples:    []writev2.Sample{{Value: templateValue, Timestamp: ts}},
			Metadata:   writev2.Metadata{Type: metricType(lbls.Get(labels.MetricName))},
		}
	}
	req.Symbols = st.Symbols()
	return req.Marshal()
}

// putVarint6 writes v as a protobuf varint of exactly tsVarintLen bytes; v must be in
// [minTS, maxTS].
func putVarint6(dst []byte, v int64) {
	u := uint64(v)
	for i := range tsVarintLen - 1 {
		dst[i] = byte(u) | 0x80
		u >>= 7
	}
	dst[tsVarintLen-1] = byte(u)
}

// Patch writes into dst (len(t.Body)) the request of round k: timestamp ts for every
// sample, and fleet.Value(series, k) as the values.
func (t *Template) Patch(dst []byte, k int, ts int64) {
	copy(dst, t.Body)
	for s, off := range t.TS {
		putVarint6(dst[off:], ts)
		binary.LittleEndian.PutUint64(dst[off-9:], math.Float64bits(fleet.Value(t.First+s, k)))
	}
}

// Rounds is every payload of a run, snappy-compressed, in sending order: request j of round
// r is Payloads[r*PerRound+j].
type Rounds struct {
	Payloads [][]byte
	Samples  []int // samples in each payload
	PerRound int
	Bytes    int64 // compressed bytes in all
}

// EncodeRounds pre-encodes n rounds from the templates; round r has timestamp
// start+r*stepMs. It uses every CPU: it runs before the timed part.
func EncodeRounds(tmpl []Template, n int, start, stepMs int64) (*Rounds, error) {
	last := start + int64(n-1)*stepMs
	if start < minTS || last > maxTS {
		return nil, fmt.Errorf("timestamps %d..%d outside the supported range %d..%d", start, last, minTS, maxTS)
	}
	per := len(tmpl)
	out := &Rounds{Payloads: make([][]byte, n*per), Samples: make([]int, n*per), PerRound: per}
	var (
		wg    sync.WaitGroup
		next  = make(chan int)
		sizes = make([]int64, runtime.GOMAXPROCS(0))
	)
	for w := range sizes {
		wg.Go(func() {
			var scratch []byte
			for i := range next {
				r, j := i/per, i%per
				t := &tmpl[j]
				if cap(scratch) < len(t.Body) {
					scratch = make([]byte, len(t.Body))
				}
				scratch = scratch[:len(t.Body)]
				t.Patch(scratch, r, start+int64(r)*stepMs)
				out.Payloads[i] = snappy.Encode(nil, scratch)
				out.Samples[i] = len(t.TS)
				sizes[w] += int64(len(out.Payloads[i]))
			}
		})
	}
	for i := range out.Payloads {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, s := range sizes {
		out.Bytes += s
	}
	return out, nil
}
