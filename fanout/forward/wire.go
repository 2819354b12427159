package forward

import (
	"fmt"
	"math"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// maxSymbols bounds the RW 2.0 symbol table a wireEncoder keeps across batches; past it the
// table starts afresh (series caches notice by generation).
const maxSymbols = 1 << 20

// wireEncoder turns batches into compressed remote-write bodies, writing the protobuf wire
// format directly from the batch instead of building Prometheus' generated request types and
// marshalling them: that path spent more CPU than the rest of sending together (one struct
// per sample, a map lookup per label string per batch, a size pass and a marshal pass).
// What does not change between batches is cached: a series' RW 1.0 label fields, and its
// labels' ids in a symbol table kept across batches, so an RW 2.0 batch maps ids to its own
// refs with two slice lookups per symbol. Histograms and exemplars, rare, take simpler paths.
// The output decodes to the same request as the generated code's (refencoder_test.go).
type wireEncoder struct {
	v2 bool

	// RW 2.0 symbols: every string met, its id, and per id the batch that last gave it a
	// ref and that ref. Id 0 is "", ref 0 in every batch, as RW 2.0 requires.
	symIdx   map[string]int32
	syms     []string
	symBatch []uint32
	symRef   []uint32
	batchNo  uint32
	order    []int32 // the batch's symbols by ref: ids
	gen      uint32  // bumped when the table starts afresh
	maxSyms  int     // maxSymbols; smaller in tests
	refs     []uint32

	v1Seen map[string]struct{}
	h      writev2.Histogram

	body, sub, md, raw, out []byte
}

func newWireEncoder(v2 bool) *wireEncoder {
	w := &wireEncoder{v2: v2, v1Seen: map[string]struct{}{}, maxSyms: maxSymbols}
	w.resetSymbols()
	return w
}

func (w *wireEncoder) resetSymbols() {
	w.gen++
	w.symIdx = map[string]int32{"": 0}
	w.syms = append(w.syms[:0], "")
	w.symBatch = append(w.symBatch[:0], 0)
	w.symRef = append(w.symRef[:0], 0)
	w.batchNo = 0
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

// Field numbers of the messages written here.
const (
	v1ReqTimeseries, v1ReqMetadata                        = 1, 3
	v1TSLabels, v1TSSamples, v1TSExemplars, v1TSHistogram = 1, 2, 3, 4
	v1LabelName, v1LabelValue                             = 1, 2
	v1SampleValue, v1SampleTimestamp                      = 1, 2
	v1ExValue, v1ExTimestamp                              = 2, 3
	v1MDType, v1MDFamily, v1MDHelp, v1MDUnit              = 1, 2, 4, 5

	v2ReqSymbols, v2ReqTimeseries                        = 4, 5
	v2TSRefs, v2TSSamples, v2TSHistograms, v2TSExemplars = 1, 2, 3, 4
	v2TSMetadata                                         = 5
	v2SampleValue, v2SampleTimestamp, v2SampleStart      = 1, 2, 3
	v2ExRefs, v2ExValue, v2ExTimestamp                   = 1, 2, 3
	v2MDType, v2MDHelp, v2MDUnit                         = 1, 3, 4
)

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendDouble and appendInt write a proto3 scalar, left out when zero as generated code does.
func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	if v == 0 && !math.Signbit(v) {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func sizeDouble(v float64) int {
	if v == 0 && !math.Signbit(v) {
		return 0
	}
	return 9
}

func sizeInt(v int64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(v))
}

// appendV1Labels writes ls as repeated prometheus.Label fields.
func appendV1Labels(b []byte, num protowire.Number, ls []ingest.Label) []byte {
	for _, l := range ls {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = appendShortVarint(b, v1LabelSize(l))
		if l.Name != "" {
			b = append(b, byte(v1LabelName<<3|protowire.BytesType))
			b = appendShortVarint(b, len(l.Name))
			b = append(b, l.Name...)
		}
		if l.Value != "" {
			b = append(b, byte(v1LabelValue<<3|protowire.BytesType))
			b = appendShortVarint(b, len(l.Value))
			b = append(b, l.Value...)
		}
	}
	return b
}

// v1LabelsSize is the size appendV1Labels gives ls.
func v1LabelsSize(ls []ingest.Label) int {
	n := 0
	for _, l := range ls {
		m := v1LabelSize(l)
		n += 1 + protowire.SizeVarint(uint64(m)) + m
	}
	return n
}

// v1LabelSize is the size of one Label message's fields.
func v1LabelSize(l ingest.Label) int {
	n := 0
	if l.Name != "" {
		n += 1 + protowire.SizeBytes(len(l.Name))
	}
	if l.Value != "" {
		n += 1 + protowire.SizeBytes(len(l.Value))
	}
	return n
}

// appendShortVarint appends n, one byte when it is below 128 (label names and values almost
// always are).
func appendShortVarint(b []byte, n int) []byte {
	if n < 0x80 {
		return append(b, byte(n))
	}
	return protowire.AppendVarint(b, uint64(n))
}

func (w *wireEncoder) encodeV1(b *batch) error {
	raw, md := w.raw[:0], w.md[:0]
	clear(w.v1Seen)
	for i := range b.series {
		s := &b.series[i]
		def := s.def
		if s.s0 != s.s1 || s.h0 != s.h1 || s.e0 != s.e1 {
			if def.v1Labels == nil {
				def.v1Labels = appendV1Labels(nil, v1TSLabels, def.labels)
			}
			body := append(w.body[:0], def.v1Labels...)
			for _, x := range b.samples[s.s0:s.s1] {
				body = protowire.AppendTag(body, v1TSSamples, protowire.BytesType)
				body = protowire.AppendVarint(body, uint64(sizeDouble(x.V)+sizeInt(x.T)))
				body = appendDouble(body, v1SampleValue, x.V)
				body = appendInt(body, v1SampleTimestamp, x.T)
			}
			for _, x := range b.exemplars[s.e0:s.e1] {
				sub := appendV1Labels(w.sub[:0], 1, b.exLabels[x.l0:x.l1])
				sub = appendDouble(sub, v1ExValue, x.v)
				sub = appendInt(sub, v1ExTimestamp, x.t)
				body, w.sub = appendMessage(body, v1TSExemplars, sub), sub
			}
			for _, x := range b.hists[s.h0:s.h1] {
				w.h.Reset()
				if err := w.h.Unmarshal(x.b); err != nil {
					return fmt.Errorf("queued histogram: %w", err)
				}
				var ph prompb.Histogram
				if w.h.IsFloatHistogram() {
					ph = prompb.FromFloatHistogram(w.h.Timestamp, w.h.ToFloatHistogram())
				} else {
					ph = prompb.FromIntHistogram(w.h.Timestamp, w.h.ToIntHistogram())
				}
				n := ph.Size()
				sub := growTo(w.sub, n)
				if _, err := ph.MarshalToSizedBuffer(sub); err != nil {
					return fmt.Errorf("queued histogram: %w", err)
				}
				body, w.sub = appendMessage(body, v1TSHistogram, sub), sub
			}
			raw, w.body = appendMessage(raw, v1ReqTimeseries, body), body
		}
		if def.hasMD {
			if name := ingest.LabelValue(def.labels, "__name__"); name != "" {
				if _, ok := w.v1Seen[name]; !ok {
					w.v1Seen[name] = struct{}{}
					md = w.appendV1Metadata(md, name, def.md)
				}
			}
		}
	}
	for _, f := range b.families {
		if _, ok := w.v1Seen[f.name]; !ok {
			w.v1Seen[f.name] = struct{}{}
			md = w.appendV1Metadata(md, f.name, f.md)
		}
	}
	w.raw, w.md = append(raw, md...), md
	return nil
}

func (w *wireEncoder) appendV1Metadata(b []byte, name string, md metadata.Metadata) []byte {
	sub := appendInt(w.sub[:0], v1MDType, int64(prompb.FromMetadataType(md.Type)))
	if name != "" {
		sub = appendStringField(sub, v1MDFamily, name)
	}
	if md.Help != "" {
		sub = appendStringField(sub, v1MDHelp, md.Help)
	}
	if md.Unit != "" {
		sub = appendStringField(sub, v1MDUnit, md.Unit)
	}
	w.sub = sub
	return appendMessage(b, v1ReqMetadata, sub)
}

func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// intern returns the id of s in the encoder's symbol table, adding it.
func (w *wireEncoder) intern(s string) int32 {
	if id, ok := w.symIdx[s]; ok {
		return id
	}
	id := int32(len(w.syms))
	s = strings.Clone(s) // the table outlives the record or definition s points into
	w.symIdx[s] = id
	w.syms = append(w.syms, s)
	w.symBatch = append(w.symBatch, 0)
	w.symRef = append(w.symRef, 0)
	return id
}

// ref returns the batch's ref for symbol id, giving it the next one on first use.
func (w *wireEncoder) ref(id int32) uint32 {
	if w.symBatch[id] != w.batchNo {
		w.symBatch[id] = w.batchNo
		w.symRef[id] = uint32(len(w.order))
		w.order = append(w.order, id)
	}
	return w.symRef[id]
}

// symbolsOf returns the symbol ids of def's labels (name, value, ...), then of its help and
// unit when it has metadata, computing them once per table generation.
func (w *wireEncoder) symbolsOf(def *seriesDef) []int32 {
	if def.syms != nil && def.symGen == w.gen {
		return def.syms
	}
	ids := def.syms[:0]
	for _, l := range def.labels {
		ids = append(ids, w.intern(l.Name), w.intern(l.Value))
	}
	if def.hasMD {
		ids = append(ids, w.intern(def.md.Help), w.intern(def.md.Unit))
	}
	def.syms, def.symGen = ids, w.gen
	return ids
}

// appendPackedRefs writes refs as a packed repeated uint32 field.
func appendPackedRefs(b []byte, num protowire.Number, refs []uint32) []byte {
	if len(refs) == 0 {
		return b
	}
	n := 0
	for _, r := range refs {
		n += protowire.SizeVarint(uint64(r))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, r := range refs {
		b = protowire.AppendVarint(b, uint64(r))
	}
	return b
}

func (w *wireEncoder) appendV2Metadata(b []byte, typ metadata.Metadata, help, unit uint32) []byte {
	t := int64(writev2.FromMetadataType(typ.Type))
	n := sizeInt(t) + sizeInt(int64(help)) + sizeInt(int64(unit))
	b = protowire.AppendTag(b, v2TSMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = appendInt(b, v2MDType, t)
	b = appendInt(b, v2MDHelp, int64(help))
	return appendInt(b, v2MDUnit, int64(unit))
}

func (w *wireEncoder) encodeV2(b *batch) error {
	if len(w.syms) > w.maxSyms {
		w.resetSymbols()
	}
	w.batchNo++
	if w.batchNo == 0 { // wrapped: no stale batch number may match
		clear(w.symBatch)
		w.batchNo = 1
	}
	w.order = w.order[:0]
	w.ref(0) // "" is ref 0
	ts := w.md[:0]
	for i := range b.series {
		s := &b.series[i]
		def := s.def
		ids := w.symbolsOf(def)
		nl := 2 * len(def.labels)
		refs := w.refs[:0]
		for _, id := range ids[:nl] {
			refs = append(refs, w.ref(id))
		}
		body := appendPackedRefs(w.body[:0], v2TSRefs, refs)
		for _, x := range b.samples[s.s0:s.s1] {
			body = protowire.AppendTag(body, v2TSSamples, protowire.BytesType)
			body = protowire.AppendVarint(body, uint64(sizeDouble(x.V)+sizeInt(x.T)+sizeInt(x.ST)))
			body = appendDouble(body, v2SampleValue, x.V)
			body = appendInt(body, v2SampleTimestamp, x.T)
			body = appendInt(body, v2SampleStart, x.ST)
		}
		for _, x := range b.hists[s.h0:s.h1] {
			body = appendMessage(body, v2TSHistograms, x.b) // queued in RW 2.0 form
		}
		for _, x := range b.exemplars[s.e0:s.e1] {
			refs = refs[:0]
			for _, l := range b.exLabels[x.l0:x.l1] {
				refs = append(refs, w.ref(w.intern(l.Name)), w.ref(w.intern(l.Value)))
			}
			sub := appendPackedRefs(w.sub[:0], v2ExRefs, refs)
			sub = appendDouble(sub, v2ExValue, x.v)
			sub = appendInt(sub, v2ExTimestamp, x.t)
			body, w.sub = appendMessage(body, v2TSExemplars, sub), sub
		}
		if def.hasMD {
			body = w.appendV2Metadata(body, def.md, w.ref(ids[nl]), w.ref(ids[nl+1]))
		}
		ts, w.body, w.refs = appendMessage(ts, v2ReqTimeseries, body), body, refs
	}
	// RW 1.0 family metadata travels as a sample-less series named after the family.
	for _, f := range b.families {
		refs := append(w.refs[:0], w.ref(w.intern("__name__")), w.ref(w.intern(f.name)))
		body := appendPackedRefs(w.body[:0], v2TSRefs, refs)
		body = w.appendV2Metadata(body, f.md, w.ref(w.intern(f.md.Help)), w.ref(w.intern(f.md.Unit)))
		ts, w.body, w.refs = appendMessage(ts, v2ReqTimeseries, body), body, refs
	}
	// Symbols first, as senders write them.
	raw := w.raw[:0]
	for _, id := range w.order {
		raw = appendStringField(raw, v2ReqSymbols, w.syms[id])
	}
	w.raw, w.md = append(raw, ts...), ts
	return nil
}
