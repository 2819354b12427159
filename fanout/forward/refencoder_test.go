package forward

import (
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// refEncoder builds batches into Prometheus' generated request types and marshals them
// with the generated code: the reference the hand-written refEncoder is checked against.
type refEncoder struct {
	v2 bool

	v1      prompb.WriteRequest
	v1Lbls  []prompb.Label
	v1Samps []prompb.Sample
	v1Hists []prompb.Histogram
	v1Exs   []prompb.Exemplar
	v1Seen  map[string]struct{}

	v2Req   writev2.Request
	symbols writev2.SymbolsTable
	refs    []uint32
	v2Samps []writev2.Sample
	v2Hists []writev2.Histogram
	v2Exs   []writev2.Exemplar

	raw, out []byte
}

func newRefEncoder(v2 bool) *refEncoder {
	return &refEncoder{v2: v2, symbols: writev2.NewSymbolTable(), v1Seen: map[string]struct{}{}}
}

// encode returns the snappy-compressed request; it aliases the encoder until the next call.
func (w *refEncoder) encode(b *batch) ([]byte, error) {
	var err error
	if w.v2 {
		err = w.encodeV2(b)
	} else {
		err = w.encodeV1(b)
	}
	if err != nil {
		return nil, err
	}
	// Snappy block format, encoded by s2's fast snappy-compatible encoder.
	w.out = s2.EncodeSnappy(w.out[:cap(w.out)], w.raw)
	return w.out, nil
}

func (w *refEncoder) encodeV1(b *batch) error {
	w.v1Lbls, w.v1Samps, w.v1Exs = w.v1Lbls[:0], w.v1Samps[:0], w.v1Exs[:0]
	w.v1Hists = w.v1Hists[:0]
	ts := w.v1.Timeseries[:0]
	md := w.v1.Metadata[:0]
	clear(w.v1Seen)
	// Sized up front so the sub-slices below stay valid.
	nl, nx := labelCount(b), len(b.exLabels)
	if cap(w.v1Lbls) < nl+nx {
		w.v1Lbls = make([]prompb.Label, 0, nl+nx)
	}
	if cap(w.v1Samps) < len(b.samples) {
		w.v1Samps = make([]prompb.Sample, 0, len(b.samples))
	}
	if cap(w.v1Exs) < len(b.exemplars) {
		w.v1Exs = make([]prompb.Exemplar, 0, len(b.exemplars))
	}
	if cap(w.v1Hists) < len(b.hists) {
		w.v1Hists = make([]prompb.Histogram, 0, len(b.hists))
	}
	var h writev2.Histogram
	for i := range b.series {
		s := &b.series[i]
		l0 := len(w.v1Lbls)
		name := ""
		for _, l := range s.def.labels {
			w.v1Lbls = append(w.v1Lbls, prompb.Label{Name: l.Name, Value: l.Value})
			if l.Name == "__name__" {
				name = l.Value
			}
		}
		t := prompb.TimeSeries{Labels: w.v1Lbls[l0:len(w.v1Lbls):len(w.v1Lbls)]}
		s0 := len(w.v1Samps)
		for _, x := range b.samples[s.s0:s.s1] {
			w.v1Samps = append(w.v1Samps, prompb.Sample{Value: x.V, Timestamp: x.T})
		}
		t.Samples = w.v1Samps[s0:len(w.v1Samps):len(w.v1Samps)]
		h0 := len(w.v1Hists)
		for _, x := range b.hists[s.h0:s.h1] {
			h.Reset()
			if err := h.Unmarshal(x.b); err != nil {
				return fmt.Errorf("queued histogram: %w", err)
			}
			if h.IsFloatHistogram() {
				w.v1Hists = append(w.v1Hists, prompb.FromFloatHistogram(h.Timestamp, h.ToFloatHistogram()))
			} else {
				w.v1Hists = append(w.v1Hists, prompb.FromIntHistogram(h.Timestamp, h.ToIntHistogram()))
			}
		}
		t.Histograms = w.v1Hists[h0:len(w.v1Hists):len(w.v1Hists)]
		e0 := len(w.v1Exs)
		for _, x := range b.exemplars[s.e0:s.e1] {
			k := len(w.v1Lbls)
			for _, l := range b.exLabels[x.l0:x.l1] {
				w.v1Lbls = append(w.v1Lbls, prompb.Label{Name: l.Name, Value: l.Value})
			}
			w.v1Exs = append(w.v1Exs, prompb.Exemplar{Labels: w.v1Lbls[k:len(w.v1Lbls):len(w.v1Lbls)], Value: x.v, Timestamp: x.t})
		}
		t.Exemplars = w.v1Exs[e0:len(w.v1Exs):len(w.v1Exs)]
		if len(t.Samples)+len(t.Histograms)+len(t.Exemplars) > 0 {
			ts = append(ts, t)
		}
		if s.def.hasMD && name != "" {
			if _, ok := w.v1Seen[name]; !ok {
				w.v1Seen[name] = struct{}{}
				md = append(md, v1Metadata(name, s.def.md))
			}
		}
	}
	for _, f := range b.families {
		if _, ok := w.v1Seen[f.name]; !ok {
			w.v1Seen[f.name] = struct{}{}
			md = append(md, v1Metadata(f.name, f.md))
		}
	}
	w.v1.Timeseries, w.v1.Metadata = ts, md
	return w.marshal(&w.v1)
}

func v1Metadata(name string, md metadata.Metadata) prompb.MetricMetadata {
	return prompb.MetricMetadata{Type: prompb.FromMetadataType(md.Type), MetricFamilyName: name, Help: md.Help, Unit: md.Unit}
}

type sizedMarshaler interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

func (w *refEncoder) marshal(m sizedMarshaler) error {
	n := m.Size()
	if cap(w.raw) < n {
		w.raw = make([]byte, n)
	}
	w.raw = w.raw[:n]
	k, err := m.MarshalToSizedBuffer(w.raw)
	if err != nil {
		return err
	}
	w.raw = w.raw[n-k:]
	return nil
}

func (w *refEncoder) encodeV2(b *batch) error {
	w.symbols.Reset()
	w.refs, w.v2Samps, w.v2Exs = w.refs[:0], w.v2Samps[:0], w.v2Exs[:0]
	w.v2Hists = w.v2Hists[:0]
	ts := w.v2Req.Timeseries[:0]
	nRefs := 2*(labelCount(b)+len(b.exLabels)) + 2*len(b.families)
	if cap(w.refs) < nRefs {
		w.refs = make([]uint32, 0, nRefs)
	}
	if cap(w.v2Samps) < len(b.samples) {
		w.v2Samps = make([]writev2.Sample, 0, len(b.samples))
	}
	if cap(w.v2Exs) < len(b.exemplars) {
		w.v2Exs = make([]writev2.Exemplar, 0, len(b.exemplars))
	}
	if cap(w.v2Hists) < len(b.hists) {
		w.v2Hists = make([]writev2.Histogram, 0, len(b.hists))
	}
	sym := w.symbols.Symbolize
	for i := range b.series {
		s := &b.series[i]
		r0 := len(w.refs)
		for _, l := range s.def.labels {
			w.refs = append(w.refs, sym(l.Name), sym(l.Value))
		}
		t := writev2.TimeSeries{LabelsRefs: w.refs[r0:len(w.refs):len(w.refs)]}
		s0 := len(w.v2Samps)
		for _, x := range b.samples[s.s0:s.s1] {
			w.v2Samps = append(w.v2Samps, writev2.Sample{Value: x.V, Timestamp: x.T, StartTimestamp: x.ST})
		}
		t.Samples = w.v2Samps[s0:len(w.v2Samps):len(w.v2Samps)]
		h0 := len(w.v2Hists)
		for _, x := range b.hists[s.h0:s.h1] {
			w.v2Hists = append(w.v2Hists, writev2.Histogram{})
			if err := w.v2Hists[len(w.v2Hists)-1].Unmarshal(x.b); err != nil {
				return fmt.Errorf("queued histogram: %w", err)
			}
		}
		t.Histograms = w.v2Hists[h0:len(w.v2Hists):len(w.v2Hists)]
		e0 := len(w.v2Exs)
		for _, x := range b.exemplars[s.e0:s.e1] {
			k := len(w.refs)
			for _, l := range b.exLabels[x.l0:x.l1] {
				w.refs = append(w.refs, sym(l.Name), sym(l.Value))
			}
			w.v2Exs = append(w.v2Exs, writev2.Exemplar{LabelsRefs: w.refs[k:len(w.refs):len(w.refs)], Value: x.v, Timestamp: x.t})
		}
		t.Exemplars = w.v2Exs[e0:len(w.v2Exs):len(w.v2Exs)]
		if s.def.hasMD {
			md := &s.def.md
			t.Metadata = writev2.Metadata{Type: writev2.FromMetadataType(md.Type), HelpRef: sym(md.Help), UnitRef: sym(md.Unit)}
		}
		ts = append(ts, t)
	}
	// RW 1.0 family metadata travels as a sample-less series named after the family.
	for _, f := range b.families {
		k := len(w.refs)
		w.refs = append(w.refs, sym("__name__"), sym(f.name))
		ts = append(ts, writev2.TimeSeries{
			LabelsRefs: w.refs[k:len(w.refs):len(w.refs)],
			Metadata:   writev2.Metadata{Type: writev2.FromMetadataType(f.md.Type), HelpRef: sym(f.md.Help), UnitRef: sym(f.md.Unit)},
		})
	}
	w.v2Req.Timeseries = ts
	w.v2Req.Symbols = w.symbols.Symbols()
	return w.marshal(&w.v2Req)
}

// labelCount is the number of series labels in b.
func labelCount(b *batch) int {
	n := 0
	for _, s := range b.series {
		n += len(s.def.labels)
	}
	return n
}
