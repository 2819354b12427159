package forward

import (
	"errors"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/relabel"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// processor turns a write request into one destination's record and appends it to the
// destination's queue: write_relabel_configs, the send_native_histograms / send_exemplars
// switches, then downsampling. Encoding and appending happen under mu, so that a series'
// definition (its first entry in a segment, see record.go) always precedes its references.
type processor struct {
	relabel        []*relabel.Config
	sendHistograms bool
	sendExemplars  bool
	sendMetadata   bool
	ds             *downsampler // nil without rules
	q              *queue
	proto          ingest.Version // the destination's protocol

	mu         sync.Mutex
	sc         procScratch
	definedSeg uint32              // the segment the defined set is about
	defined    map[uint64]struct{} // series defined in definedSeg
}

type procScratch struct {
	enc     recordEncoder
	lb      *labels.Builder
	lbls    []ingest.Label
	hashBuf []byte
	samples []ingest.Sample
	hists   []encHist
	histBuf []byte
	h       writev2.Histogram
}

func newProcessor(q *queue, proto ingest.Version, rels []*relabel.Config, sendHistograms, sendExemplars, sendMetadata bool, rules []DownsampleRule) *processor {
	p := &processor{relabel: rels, sendHistograms: sendHistograms, sendExemplars: sendExemplars,
		sendMetadata: sendMetadata, q: q, proto: proto, defined: map[uint64]struct{}{}}
	p.sc.lb = labels.NewBuilder(labels.EmptyLabels())
	if len(rules) > 0 {
		p.ds = newDownsampler(rules)
	}
	return p
}

// write appends req, as this destination keeps it, to the queue. It returns the append's
// sequence and the samples appended; appended is false when nothing was left to forward.
func (p *processor) write(req *ingest.Request, nowMs int64) (seq uint64, samples int, appended bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appendLocked(func(seg uint32) []byte { return p.encode(req, nowMs) })
}

// canPass reports whether req can be queued as the body it arrived in: the destination takes
// its protocol, and relabelling, downsampling and the histogram, exemplar and metadata switches
// would leave it as it is. st counts req's data; md tells whether it carries metadata.
func (p *processor) canPass(req *ingest.Request, st ingest.Stats, md bool) bool {
	return req.Body != nil && req.Version == p.proto && len(p.relabel) == 0 && p.ds == nil &&
		(p.sendHistograms || st.Histograms == 0) && (p.sendExemplars || st.Exemplars == 0) &&
		(p.sendMetadata || !md)
}

// writePass appends req as a pass-through record (see passthrough.go). It needs no lock: the
// record defines no series, so its place among the others does not matter to the encoding.
func (p *processor) writePass(req *ingest.Request, st ingest.Stats, nowMs int64) (seq uint64, samples int, err error) {
	return p.appendPass(encodePass(req, st, nowMs, req.Body), st)
}

// appendPass appends a pass-through record's frame.
func (p *processor) appendPass(frame []byte, st ingest.Stats) (seq uint64, samples int, err error) {
	for {
		seq, err = p.q.appendIn(frame, p.q.activeSegment())
		if !errors.Is(err, errRotated) {
			return seq, st.Samples + st.Histograms, err
		}
	}
}

// appendLocked encodes for the active segment and appends; if the segment changed under the
// encoding (a rotation), it encodes again, defining every series anew.
func (p *processor) appendLocked(encode func(seg uint32) []byte) (uint64, int, bool, error) {
	for {
		seg := p.q.activeSegment()
		if seg != p.definedSeg {
			clear(p.defined)
			p.definedSeg = seg
		}
		frame := encode(seg)
		if frame == nil {
			return 0, 0, false, nil
		}
		seq, err := p.q.appendIn(frame, seg)
		if errors.Is(err, errRotated) {
			continue
		}
		return seq, recordSamples(frame[frameHdrLen:]), err == nil, err
	}
}

// define reports whether the entry for hash must carry the series' labels.
func (p *processor) define(hash uint64) bool {
	if _, ok := p.defined[hash]; ok {
		return false
	}
	p.defined[hash] = struct{}{}
	return true
}

// encode builds the record for req; it returns nil when nothing is left to forward.
func (p *processor) encode(req *ingest.Request, nowMs int64) []byte {
	sc := &p.sc
	e := &sc.enc
	e.reset(nowMs)
	for i := range req.Series {
		s := &req.Series[i]
		ls, hash := s.Labels, s.Hash
		if len(p.relabel) > 0 {
			var keep bool
			ls, hash, keep = p.applyRelabel(sc, s.Labels)
			if !keep {
				continue
			}
		}
		samples := s.Samples
		if p.ds != nil {
			samples = p.ds.process(hash, ls, samples, sc.samples[:0], nowMs)
			sc.samples = samples[:0]
		}
		hists := sc.hists[:0]
		if p.sendHistograms && len(s.Histograms) > 0 {
			hists, sc.histBuf = marshalHistograms(&sc.h, s.Histograms, hists, sc.histBuf[:0])
			sc.hists = hists[:0]
		}
		var exs []ingest.Exemplar
		if p.sendExemplars {
			exs = s.Exemplars
		}
		md := s.Metadata
		if !p.sendMetadata {
			md = metadata.Metadata{}
		}
		if len(samples) == 0 && len(hists) == 0 && len(exs) == 0 && md.IsEmpty() {
			continue
		}
		e.addSeries(hash, p.define(hash), ls, md, samples, hists, exs)
	}
	if p.sendMetadata {
		for _, fm := range req.Metadata {
			e.addFamily(fm)
		}
	}
	if e.entries == 0 {
		e.buf = nil
		return nil
	}
	return e.finish()
}

// flushDownsampled appends the downsampler's closed intervals (all of them with everything).
func (p *processor) flushDownsampled(nowMs int64, everything bool) (uint64, int, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := int64(1)
	if everything {
		idle = 0
	}
	type out struct {
		ls   []ingest.Label
		hash uint64
		s    ingest.Sample
	}
	var outs []out
	p.ds.flushIdle(nowMs, idle, func(ls []ingest.Label, h uint64, s ingest.Sample) { outs = append(outs, out{ls, h, s}) })
	if len(outs) == 0 {
		return 0, 0, false, nil
	}
	return p.appendLocked(func(uint32) []byte {
		e := &p.sc.enc
		e.reset(nowMs)
		for _, o := range outs {
			e.addSeries(o.hash, p.define(o.hash), o.ls, metadata.Metadata{}, []ingest.Sample{o.s}, nil, nil)
		}
		return e.finish()
	})
}

// applyRelabel runs write_relabel_configs over ls. The labels it returns alias sc.
func (p *processor) applyRelabel(sc *procScratch, ls []ingest.Label) ([]ingest.Label, uint64, bool) {
	lb := sc.lb
	lb.Reset(labels.EmptyLabels())
	for _, l := range ls {
		lb.Set(l.Name, l.Value)
	}
	if !relabel.ProcessBuilder(lb, p.relabel...) {
		return nil, 0, false
	}
	out := sc.lbls[:0]
	lb.Range(func(l labels.Label) { out = append(out, ingest.Label{Name: l.Name, Value: l.Value}) })
	sc.lbls = out
	if len(out) == 0 {
		return nil, 0, false
	}
	sortLabels(out)
	var hash uint64
	hash, sc.hashBuf = labelsHash(out, sc.hashBuf)
	return out, hash, true
}

func sortLabels(ls []ingest.Label) {
	// Insertion sort: label sets are short and the builder's output is nearly sorted.
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func marshalHistograms(h *writev2.Histogram, in []ingest.Histogram, out []encHist, buf []byte) ([]encHist, []byte) {
	for _, x := range in {
		if x.FH != nil {
			*h = writev2.FromFloatHistogram(x.ST, x.T, x.FH)
		} else if x.H != nil {
			*h = writev2.FromIntHistogram(x.ST, x.T, x.H)
		} else {
			continue
		}
		n := h.Size()
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := h.MarshalToSizedBuffer(buf[start:]); err != nil {
			buf = buf[:start]
			continue
		}
		out = append(out, encHist{t: x.T})
		out[len(out)-1].b = buf[start : start+n]
	}
	// buf may have moved while growing: re-point every entry at the final buffer.
	off := 0
	for i := range out {
		n := len(out[i].b)
		out[i].b = buf[off : off+n]
		off += n
	}
	return out, buf
}
