package forward

import (
	"math"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"

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

	// Encodings cached by the shard's wireEncoder the first time the series is sent: the
	// RW 1.0 label fields, or the RW 2.0 symbol ids of the labels (valid while symGen is
	// the encoder's generation).
	v1Labels []byte
	syms     []int32
	symGen   uint32

	// last is the series' entry in the shard's last-sent map, looked up once per definition
	// instead of once per record.
	last *int64
}

// defTable holds a shard's series definitions for the segment being read, and those of the
// segment before: a series defined again in a new segment with the same labels and metadata
// keeps its definition, so its labels are not copied again and the encoder's caches on it
// carry over.
type defTable struct {
	cur, prev map[uint64]*seriesDef
}

func newDefTable() *defTable { return &defTable{cur: map[uint64]*seriesDef{}} }

// next starts a new segment.
func (t *defTable) next() {
	t.prev, t.cur = t.cur, make(map[uint64]*seriesDef, len(t.cur))
}

// define records the definition of hash read from a record: ls and md alias the record.
func (t *defTable) define(hash uint64, ls []ingest.Label, md metadata.Metadata, hasMD bool) *seriesDef {
	if p := t.prev[hash]; p != nil && p.hasMD == hasMD && (!hasMD || p.md == md) && slices.Equal(p.labels, ls) {
		t.cur[hash] = p
		return p
	}
	def := &seriesDef{labels: cloneLabels(ls), hasMD: hasMD}
	if hasMD {
		def.md = metadata.Metadata{Type: md.Type, Help: strings.Clone(md.Help), Unit: strings.Clone(md.Unit)}
	}
	t.cur[hash] = def
	return def
}

// lastSent returns the cell holding the newest timestamp taken for def's series, found in
// lastT once per definition; nil without a definition or a table.
func lastSent(def *seriesDef, hash uint64, lastT map[uint64]*int64) *int64 {
	if def == nil || lastT == nil {
		return nil
	}
	if def.last == nil {
		p := lastT[hash]
		if p == nil {
			p = new(int64)
			*p = math.MinInt64
			lastT[hash] = p
		}
		def.last = p
	}
	return def.last
}

func (b *batch) empty() bool { return len(b.series) == 0 && len(b.families) == 0 }

func (b *batch) reset() {
	clear(b.exLabels) // drop references to old records
	clear(b.hists)
	clear(b.families)
	clear(b.series)
	b.series, b.samples, b.hists = b.series[:0], b.samples[:0], b.hists[:0]
	b.exemplars, b.exLabels, b.families = b.exemplars[:0], b.exLabels[:0], b.families[:0]
	b.nSamples, b.nExemplars, b.maybe = 0, 0, false
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
func (b *batch) addRecord(rec []byte, idx, n int, defs *defTable, lastT map[uint64]*int64, dropOOO, skip bool) (res recordResult, err error) {
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
			md, hasMD := d.metadata()
			if d.err {
				clear(b.defScratch)
				return res, errCorrupt
			}
			def = defs.define(it.hash, b.defScratch, md, hasMD)
			clear(b.defScratch)
		case kindRef:
			def = defs.cur[it.hash]
		default:
			return res, errCorrupt
		}
		mark := len(b.samples)
		s := bSeries{def: def, s0: int32(len(b.samples))}
		lastp := lastSent(def, it.hash, lastT)
		last := int64(math.MinInt64)
		if lastp != nil {
			last = *lastp
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
		if newest != last && lastp != nil {
			*lastp = newest
		}
		if s.s0 == s.s1 && s.h0 == s.h1 && s.e0 == s.e1 && !(it.kind == kindSeries && def.hasMD) {
			continue
		}
		b.nSamples += int(s.s1-s.s0) + int(s.h1-s.h0)
		b.nExemplars += int(s.e1 - s.e0)
		b.series = append(b.series, s)
	}
	return res, it.err
}

// isStale reports a Prometheus stale marker.
func isStale(v float64) bool { return value.IsStaleNaN(v) }
