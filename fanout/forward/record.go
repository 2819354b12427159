package forward

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// A record is what one Write appends to one destination's queue: the series that destination
// keeps, after relabelling and downsampling. Layout (integers little-endian, "uv" uvarint, "v"
// zig-zag varint, "str" uv length then bytes):
//
//	header   int64 enqueue time (unix ms), uint32 samples + histograms, uint32 entries
//	entry    uint64 hash, uint32 body length, byte kind, body
//
// Series are written by reference: the first entry of a series in a segment (kind 1) carries
// its labels and metadata, later entries in the same segment (kind 3) only its hash. A reader
// therefore learns a segment's series from its start (see shard.prime). Bodies:
//
//	kind 1   uv labels, (str name, str value)…; metadata; samples
//	kind 3   samples
//	kind 2   str family; metadata (RW 1.0 request-level metadata)
//	samples  uv n, (v Δt, v st, uint64 float bits)…; uv n, (v t, str writev2.Histogram)…;
//	         uv n, (uv labels, labels…, v t, uint64 float bits)… (exemplars)
//	metadata byte writev2 metric type + 1 (0: none), then str help, str unit
//
// The hash shards the entry: a series' hash is the xxhash of its labels as ingest computes it,
// a family's the xxhash of its name. The encoder builds the record behind the queue's frame
// header, so appending it copies nothing.
const recHeaderLen = 16

const (
	kindSeries = 1
	kindFamily = 2
	kindRef    = 3
)

var errCorrupt = errors.New("corrupt record")

// recordEncoder builds one record into a fresh buffer each time (the queue keeps it).
type recordEncoder struct {
	buf     []byte
	entries int
	samples int
	hint    int
}

func (e *recordEncoder) reset(nowMs int64) {
	e.buf = make([]byte, frameHdrLen+recHeaderLen, max(e.hint, 4096))
	binary.LittleEndian.PutUint64(e.buf[frameHdrLen:], uint64(nowMs))
	e.entries, e.samples = 0, 0
}

// finish returns the frame: length and CRC-32C (see queue.go), then the record. The caller owns it.
func (e *recordEncoder) finish() []byte {
	r := e.buf[frameHdrLen:]
	binary.LittleEndian.PutUint32(r[8:], uint32(min(e.samples, math.MaxUint32)))
	binary.LittleEndian.PutUint32(r[12:], uint32(e.entries))
	binary.LittleEndian.PutUint32(e.buf, uint32(len(r)))
	binary.LittleEndian.PutUint32(e.buf[4:], crc32.Checksum(r, castagnoli))
	e.hint = len(e.buf) + len(e.buf)/8
	out := e.buf
	e.buf = nil
	return out
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendLabels(b []byte, ls []ingest.Label) []byte {
	b = binary.AppendUvarint(b, uint64(len(ls)))
	for _, l := range ls {
		b = appendStr(b, l.Name)
		b = appendStr(b, l.Value)
	}
	return b
}

// beginEntry starts an entry; endEntry patches its length in.
func (e *recordEncoder) beginEntry(hash uint64, kind byte) int {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, hash)
	at := len(e.buf)
	e.buf = append(e.buf, 0, 0, 0, 0, kind)
	return at
}

func (e *recordEncoder) endEntry(at int) {
	binary.LittleEndian.PutUint32(e.buf[at:], uint32(len(e.buf)-at-4))
	e.entries++
}

// encHist is one native histogram sample, marshalled as a writev2.Histogram.
type encHist struct {
	t int64
	b []byte
}

// addSeries appends one series; define writes its labels and metadata (the series' first entry
// in the segment), otherwise only its hash refers to them.
func (e *recordEncoder) addSeries(hash uint64, define bool, ls []ingest.Label, md metadata.Metadata, samples []ingest.Sample, hists []encHist, exs []ingest.Exemplar) {
	kind := byte(kindRef)
	if define {
		kind = kindSeries
	}
	at := e.beginEntry(hash, kind)
	b := e.buf
	if define {
		b = appendLabels(b, ls)
		b = appendMetadata(b, md)
	}
	b = binary.AppendUvarint(b, uint64(len(samples)))
	prev := int64(0)
	for _, s := range samples {
		b = binary.AppendVarint(b, s.T-prev)
		prev = s.T
		b = binary.AppendVarint(b, s.ST)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.V))
	}
	b = binary.AppendUvarint(b, uint64(len(hists)))
	for _, h := range hists {
		b = binary.AppendVarint(b, h.t)
		b = binary.AppendUvarint(b, uint64(len(h.b)))
		b = append(b, h.b...)
	}
	b = binary.AppendUvarint(b, uint64(len(exs)))
	for _, x := range exs {
		b = appendLabels(b, x.Labels)
		b = binary.AppendVarint(b, x.T)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.V))
	}
	e.buf = b
	e.samples += len(samples) + len(hists)
	e.endEntry(at)
}

func appendMetadata(b []byte, md metadata.Metadata) []byte {
	t := byte(writev2.FromMetadataType(md.Type))
	if md.IsEmpty() {
		return append(b, 0)
	}
	if t == 0 {
		t = byte(writev2.Metadata_METRIC_TYPE_UNSPECIFIED)
	}
	// 0 means "no metadata", so the type is stored plus one.
	b = append(b, t+1)
	b = appendStr(b, md.Help)
	return appendStr(b, md.Unit)
}

func (e *recordEncoder) addFamily(fm ingest.FamilyMetadata) {
	at := e.beginEntry(xxhash.Sum64String(fm.Family), kindFamily)
	e.buf = appendStr(e.buf, fm.Family)
	e.buf = appendMetadata(e.buf, fm.Metadata)
	e.endEntry(at)
}

// recordTime and recordSamples read a record's header.
func recordTime(rec []byte) int64 { return int64(binary.LittleEndian.Uint64(rec)) }

func recordSamples(rec []byte) int { return int(binary.LittleEndian.Uint32(rec[8:])) }

// entryIter walks a record's entries. Strings it returns alias the record.
type entryIter struct {
	rec  []byte
	off  int
	left int
	err  error

	hash uint64
	kind byte
	body []byte
}

func newEntryIter(rec []byte) entryIter {
	it := entryIter{rec: rec, off: recHeaderLen}
	if len(rec) < recHeaderLen {
		it.err = errCorrupt
		return it
	}
	it.left = int(binary.LittleEndian.Uint32(rec[12:]))
	return it
}

func (it *entryIter) next() bool {
	if it.err != nil || it.left == 0 {
		return false
	}
	r := it.rec[it.off:]
	if len(r) < 13 {
		it.err = errCorrupt
		return false
	}
	it.hash = binary.LittleEndian.Uint64(r)
	n := int(binary.LittleEndian.Uint32(r[8:]))
	if n < 1 || len(r)-12 < n {
		it.err = errCorrupt
		return false
	}
	it.kind = r[12]
	it.body = r[13 : 12+n]
	it.off += 12 + n
	it.left--
	return true
}

// dec reads the fields of one entry body.
type dec struct {
	b   []byte
	err bool
}

func (d *dec) uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *dec) varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *dec) u64() uint64 {
	if len(d.b) < 8 {
		d.err, d.b = true, nil
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) byte1() byte {
	if len(d.b) < 1 {
		d.err = true
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// str returns a string aliasing the record: records are never modified after they are built.
func (d *dec) str() string {
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// count reads a count and checks it against the bytes left (each item takes at least one).
func (d *dec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return 0
	}
	return int(n)
}

func (d *dec) labels(dst []ingest.Label) []ingest.Label {
	n := d.count()
	for range n {
		name := d.str()
		value := d.str()
		dst = append(dst, ingest.Label{Name: name, Value: value})
	}
	return dst
}

// metadata reads what appendMetadata wrote; ok is false when the entry had none.
func (d *dec) metadata() (md metadata.Metadata, ok bool) {
	t := d.byte1()
	if t == 0 {
		return md, false
	}
	md.Type = metricTypeOf(writev2.Metadata_MetricType(t - 1))
	md.Help = d.str()
	md.Unit = d.str()
	return md, true
}

func metricTypeOf(t writev2.Metadata_MetricType) model.MetricType {
	switch t {
	case writev2.Metadata_METRIC_TYPE_COUNTER:
		return model.MetricTypeCounter
	case writev2.Metadata_METRIC_TYPE_GAUGE:
		return model.MetricTypeGauge
	case writev2.Metadata_METRIC_TYPE_HISTOGRAM:
		return model.MetricTypeHistogram
	case writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case writev2.Metadata_METRIC_TYPE_SUMMARY:
		return model.MetricTypeSummary
	case writev2.Metadata_METRIC_TYPE_INFO:
		return model.MetricTypeInfo
	case writev2.Metadata_METRIC_TYPE_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// labelsHash is ingest's series hash: xxhash64 over name 0xff value 0xff for each label.
func labelsHash(ls []ingest.Label, buf []byte) (uint64, []byte) {
	b := buf[:0]
	for _, l := range ls {
		b = append(b, l.Name...)
		b = append(b, 0xff)
		b = append(b, l.Value...)
		b = append(b, 0xff)
	}
	return xxhash.Sum64(b), b
}
