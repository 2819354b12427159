package forward

import (
	"fmt"
	"math"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// batch is what one shard sends in one request. Series labels come from the shard's
// definitions (copied once per series and segment); exemplar labels and histogram bytes alias
// the records they were decoded from (records are immutable).
type batch struct {
	series    []bSeries
	samples   []ingest.Sample
	hists     []encHist
	exemplars []bExemplar
	exLabels  []ingest.Label
	families  []bFamily

	nSamples   int // float + histogram samples
	nExemplars int
	nLabels    int
	defScratch []ingest.Label
	end        pos  // the end of the last record taken in
	maybe      bool // holds records that may have been sent before a restart
}

type bSeries struct {
	def                    *seriesDef
	s0, s1, h0, h1, e0, e1 int32
}

type bExemplar struct {
	l0, l1 int32
	t      int64
	v      float64
}

type bFamily struct {
	name string
	md   metadata.Metadata
}

// seriesDef is what a kind-1 entry defines for the rest of its segment.
type seriesDef struct {
	labels []ingest.Label
	md     metadata.Metadata
	hasMD  bool
}

func (b *batch) empty() bool { return len(b.series) == 0 && len(b.families) == 0 }

func (b *batch) reset() {
	clear(b.exLabels) // drop references to old records
	clear(b.hists)
	clear(b.families)
	clear(b.series)
	b.series, b.samples, b.hists = b.series[:0], b.samples[:0], b.hists[:0]
	b.exemplars, b.exLabels, b.families = b.exemplars[:0], b.exLabels[:0], b.families[:0]
	b.nSamples, b.nExemplars, b.nLabels, b.maybe = 0, 0, 0, false
}

// recordResult is what addRecord found in a record for one shard.
type recordResult struct {
	own       int // the shard's samples in the record
	ooo       int // left out: not newer than the series' last sample
	undefined int // left out: the series' definition was not found
}

// addRecord takes in the entries of rec that belong to shard idx of n, learning the series
// definitions it holds into defs. lastT holds the newest timestamp taken per series; when
// dropOOO is set, samples not newer than it are left out. With skip, only definitions are
// learnt and the shard's samples counted.
func (b *batch) addRecord(rec []byte, idx, n int, defs map[uint64]*seriesDef, lastT map[uint64]int64, dropOOO, skip bool) (res recordResult, err error) {
	it := newEntryIter(rec)
	for it.next() {
		if int(it.hash%uint64(n)) != idx {
			continue
		}
		d := dec{b: it.body}
		var def *seriesDef
		switch it.kind {
		case kindFamily:
			name := d.str()
			md, _ := d.metadata()
			if d.err {
				return res, errCorrupt
			}
			if !skip {
				b.families = append(b.families, bFamily{name: name, md: md})
			}
			continue
		case kindSeries:
			b.defScratch = d.labels(b.defScratch[:0])
			def = &seriesDef{labels: cloneLabels(b.defScratch)}
			clear(b.defScratch)
			def.md, def.hasMD = d.metadata()
			if !def.hasMD {
				def.md = metadata.Metadata{}
			} else {
				def.md.Help, def.md.Unit = strings.Clone(def.md.Help), strings.Clone(def.md.Unit)
			}
			if d.err {
				return res, errCorrupt
			}
			defs[it.hash] = def
		case kindRef:
			def = defs[it.hash]
		default:
			return res, errCorrupt
		}
		mark := len(b.samples)
		s := bSeries{def: def, s0: int32(len(b.samples))}
		last, seen := lastT[it.hash]
		if !seen {
			last = math.MinInt64
		}
		newest := last
		ns := d.count()
		t := int64(0)
		for range ns {
			t += d.varint()
			st := d.varint()
			v := math.Float64frombits(d.u64())
			res.own++
			if skip || def == nil {
				continue
			}
			if dropOOO && t <= newest {
				res.ooo++
				continue
			}
			newest = max(newest, t)
			b.samples = append(b.samples, ingest.Sample{T: t, ST: st, V: v})
		}
		s.s1 = int32(len(b.samples))
		s.h0 = int32(len(b.hists))
		nh := d.count()
		for range nh {
			ht := d.varint()
			hb := d.bytes()
			res.own++
			if skip || def == nil {
				continue
			}
			if dropOOO && ht <= newest {
				res.ooo++
				continue
			}
			newest = max(newest, ht)
			b.hists = append(b.hists, encHist{t: ht, b: hb})
		}
		s.h1 = int32(len(b.hists))
		s.e0 = int32(len(b.exemplars))
		ne := d.count()
		for range ne {
			x := bExemplar{l0: int32(len(b.exLabels))}
			b.exLabels = d.labels(b.exLabels)
			x.l1 = int32(len(b.exLabels))
			x.t = d.varint()
			x.v = math.Float64frombits(d.u64())
			if skip || def == nil {
				b.exLabels = b.exLabels[:x.l0]
				continue
			}
			b.exemplars = append(b.exemplars, x)
		}
		s.e1 = int32(len(b.exemplars))
		if d.err {
			b.samples = b.samples[:mark]
			return res, errCorrupt
		}
		if skip {
			continue
		}
		if def == nil {
			res.undefined += ns + nh
			continue
		}
		if newest != last {
			lastT[it.hash] = newest
		}
		if s.s0 == s.s1 && s.h0 == s.h1 && s.e0 == s.e1 && !(it.kind == kindSeries && def.hasMD) {
			continue
		}
		b.nSamples += int(s.s1-s.s0) + int(s.h1-s.h0)
		b.nExemplars += int(s.e1 - s.e0)
		b.nLabels += len(def.labels)
		b.series = append(b.series, s)
	}
	return res, it.err
}

// wireEncoder turns batches into compressed remote-write bodies, reusing its buffers.
type wireEncoder struct {
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

func newWireEncoder(v2 bool) *wireEncoder {
	return &wireEncoder{v2: v2, symbols: writev2.NewSymbolTable(), v1Seen: map[string]struct{}{}}
}

// encode returns the snappy-compressed request; it aliases the encoder until the next call.
func (w *wireEncoder) encode(b *batch) ([]byte, error) {
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

func (w *wireEncoder) encodeV1(b *batch) error {
	w.v1Lbls, w.v1Samps, w.v1Exs = w.v1Lbls[:0], w.v1Samps[:0], w.v1Exs[:0]
	w.v1Hists = w.v1Hists[:0]
	ts := w.v1.Timeseries[:0]
	md := w.v1.Metadata[:0]
	clear(w.v1Seen)
	// Sized up front so the sub-slices below stay valid.
	nl, nx := b.nLabels, len(b.exLabels)
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

func (w *wireEncoder) marshal(m sizedMarshaler) error {
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

func (w *wireEncoder) encodeV2(b *batch) error {
	w.symbols.Reset()
	w.refs, w.v2Samps, w.v2Exs = w.refs[:0], w.v2Samps[:0], w.v2Exs[:0]
	w.v2Hists = w.v2Hists[:0]
	ts := w.v2Req.Timeseries[:0]
	nRefs := 2*(b.nLabels+len(b.exLabels)) + 2*len(b.families)
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

// isStale reports a Prometheus stale marker.
func isStale(v float64) bool { return value.IsStaleNaN(v) }
