package ingest

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

// span is a half-open index range into one of the decoder's flat slices.
type span struct{ start, end int32 }

func (s span) len() int { return int(s.end - s.start) }

// seriesRec is one decoded series before it becomes a Series: its parts live in the decoder's
// flat slices, which may still grow (and move) while later series are decoded, so the slices
// of Series are cut only once the whole request is decoded.
type seriesRec struct {
	labels, samples, hists, exemplars span
	hash, hash2                       uint64
	meta                              metadata.Metadata
}

// decoder decodes one request at a time. Everything a Request references lives in it: strings
// alias buf, slices are cut from the flat slices below. It is pooled and reused, so a request
// is valid only until the decoder goes back to the pool.
type decoder struct {
	body []byte // compressed body as read
	buf  []byte // decompressed protobuf

	req       Request
	series    []Series
	recs      []seriesRec
	labels    []Label
	samples   []Sample
	hists     []Histogram
	exemplars []Exemplar
	exLabels  []Label
	exSpans   []span // exLabels range of each exemplar, parallel to exemplars
	meta      []FamilyMetadata

	// RW 2.0 only.
	symbols []string
	symBad  []bool   // symbol is not valid UTF-8
	refs    []uint32 // label refs of the series being decoded
	exRefs  []uint32 // label refs of the exemplar being decoded

	hashBuf []byte

	// Labels of the series being decoded that were counted but not stored because the
	// series is over limits.max_labels_per_series anyway; likewise for its exemplars.
	labelsOver   int
	exLabelsOver bool
	// badUTF8 is the name of the first label of the series being decoded (RW 1.0) whose
	// name or value is not valid UTF-8.
	badUTF8    string
	hasBadUTF8 bool

	lim  *limits
	maxT int64 // newest accepted timestamp (ms)
	bulk bool  // the body is at least BulkWriteBytes decoded: the write yields as it goes
	// reordered is set when a series' labels arrived out of order and were sorted: the
	// decoded request then differs from the body.
	reordered bool

	valid    Stats // valid data handed to sinks
	problems problems
}

// Pooled buffers larger than these are dropped after the request instead of being reused, so
// one huge request does not pin its memory for the life of the process.
const (
	maxPooledBytes   = 16 << 20
	maxPooledEntries = 1 << 17
)

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

func getDecoder(lim *limits, maxT int64) *decoder {
	d := decoderPool.Get().(*decoder)
	d.lim, d.maxT = lim, maxT
	return d
}

func putDecoder(d *decoder) {
	d.reset()
	if cap(d.body) > maxPooledBytes {
		d.body = nil
	}
	if cap(d.buf) > maxPooledBytes {
		d.buf = nil
	}
	if cap(d.labels) > maxPooledEntries || cap(d.samples) > maxPooledEntries ||
		cap(d.symbols) > maxPooledEntries || cap(d.series) > maxPooledEntries {
		return // let the whole decoder go
	}
	decoderPool.Put(d)
}

// reset forgets the last request. Slices are cleared (not only truncated) where they hold
// strings or pointers into the old buffers, so the pool does not keep them alive.
func (d *decoder) reset() {
	clear(d.series)
	clear(d.labels)
	clear(d.exemplars)
	clear(d.exLabels)
	clear(d.hists)
	clear(d.meta)
	clear(d.symbols)
	clear(d.recs)
	d.req = Request{}
	d.series, d.recs, d.labels = d.series[:0], d.recs[:0], d.labels[:0]
	d.samples, d.hists, d.exemplars = d.samples[:0], d.hists[:0], d.exemplars[:0]
	d.exLabels, d.exSpans, d.meta = d.exLabels[:0], d.exSpans[:0], d.meta[:0]
	d.symbols, d.symBad, d.refs = d.symbols[:0], d.symBad[:0], d.refs[:0]
	d.body, d.buf = d.body[:0], d.buf[:0]
	d.valid = Stats{}
	d.problems.reset()
	d.lim, d.bulk, d.reordered = nil, false, false
}

// YieldEvery is how many series a bulk write's decoder, and the window's appender, process
// between two runtime.Gosched calls: a few hundred microseconds of work, so that a small
// write made runnable meanwhile does not wait for the whole request. Yielding more often
// costs throughput: on a background thread (runtime.bulk_write_nice) each yield hands the
// processor to another thread and back. At 256, the maximum ingest rate was ~10 % lower
// for no better latency (docs/benchmarks.md).
const YieldEvery = 1024

// maybeYield yields the processor every YieldEvery series of a bulk write.
func (d *decoder) maybeYield(n int) {
	if d.bulk && n%YieldEvery == 0 {
		runtime.Gosched()
	}
}

// decode decodes and validates d.buf as a request of version v. A returned error means the
// whole request is refused; invalid series are dropped and recorded in d.problems instead.
func (d *decoder) decode(v Version) error {
	var err error
	if v == V2 {
		err = d.decodeV2()
	} else {
		err = d.decodeV1()
	}
	if err != nil {
		return err
	}
	d.finish(v)
	return nil
}

// finish cuts the Series out of the flat slices once they stopped growing. The three-index
// slices keep a sink that appends to one series from overwriting the next.
func (d *decoder) finish(v Version) {
	for i := range d.exemplars {
		s := d.exSpans[i]
		d.exemplars[i].Labels = d.exLabels[s.start:s.end:s.end]
	}
	d.series = d.series[:0]
	for i := range d.recs {
		r := &d.recs[i]
		d.series = append(d.series, Series{
			Labels:     d.labels[r.labels.start:r.labels.end:r.labels.end],
			Hash:       r.hash,
			Hash2:      r.hash2,
			Samples:    d.samples[r.samples.start:r.samples.end:r.samples.end],
			Histograms: d.hists[r.hists.start:r.hists.end:r.hists.end],
			Exemplars:  d.exemplars[r.exemplars.start:r.exemplars.end:r.exemplars.end],
			Metadata:   r.meta,
		})
		d.valid.Samples += r.samples.len()
		d.valid.Histograms += r.hists.len()
		d.valid.Exemplars += r.exemplars.len()
	}
	d.req = Request{Version: v, Series: d.series, Metadata: d.meta}
}

// truncate drops everything decoded since mark: used to forget an invalid series.
func (d *decoder) truncate(m mark) {
	clear(d.labels[m.labels:])
	clear(d.hists[m.hists:])
	clear(d.exemplars[m.exemplars:])
	clear(d.exLabels[m.exLabels:])
	d.labels = d.labels[:m.labels]
	d.samples = d.samples[:m.samples]
	d.hists = d.hists[:m.hists]
	d.exemplars = d.exemplars[:m.exemplars]
	d.exLabels = d.exLabels[:m.exLabels]
	d.exSpans = d.exSpans[:m.exemplars]
}

// mark is the length of each flat slice before a series is decoded.
type mark struct {
	labels, samples, hists, exemplars, exLabels int
}

func (d *decoder) mark() mark {
	return mark{len(d.labels), len(d.samples), len(d.hists), len(d.exemplars), len(d.exLabels)}
}

func (m mark) rec(d *decoder) seriesRec {
	return seriesRec{
		labels:    span{int32(m.labels), int32(len(d.labels))},
		samples:   span{int32(m.samples), int32(len(d.samples))},
		hists:     span{int32(m.hists), int32(len(d.hists))},
		exemplars: span{int32(m.exemplars), int32(len(d.exemplars))},
	}
}

// unsafeString returns a string that aliases b: valid while d.buf is.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// metricType maps the RW enums (the same numbers in 1.0 and 2.0) to Prometheus' names.
func metricType(t uint64) model.MetricType {
	switch t {
	case 1:
		return model.MetricTypeCounter
	case 2:
		return model.MetricTypeGauge
	case 3:
		return model.MetricTypeHistogram
	case 4:
		return model.MetricTypeGaugeHistogram
	case 5:
		return model.MetricTypeSummary
	case 6:
		return model.MetricTypeInfo
	case 7:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// wireError locates a protobuf decoding failure: the field path and the byte offset in the
// decompressed message.
type wireError struct {
	path string
	off  int
	msg  string
}

func (e *wireError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("%s at byte %d", e.msg, e.off)
	}
	return fmt.Sprintf("%s: %s at byte %d", e.path, e.msg, e.off)
}

// within prefixes the path of a wireError with the field that contains it.
func within(err error, field string, i int) error {
	e, ok := err.(*wireError)
	if !ok {
		return err
	}
	p := field
	if i >= 0 {
		p = fmt.Sprintf("%s[%d]", field, i)
	}
	if e.path != "" {
		p += "." + e.path
	}
	e.path = p
	return e
}

// offset is the position of b, a subslice of d.buf, in d.buf.
func (d *decoder) offset(b []byte) int { return cap(d.buf) - cap(b) }

// wireErr describes protowire's negative length code n met while reading a kind of value.
func (d *decoder) wireErr(at []byte, kind string, n int) error {
	var msg string
	switch n {
	case -1: // errCodeTruncated
		msg = "truncated " + kind
	case -2:
		msg = "invalid field number"
	case -3:
		msg = kind + " overflows 64 bits"
	case -4:
		msg = "reserved field number"
	case -5:
		msg = "mismatched end-group marker"
	default:
		msg = kind + ": " + protowire.ParseError(n).Error()
	}
	return &wireError{off: d.offset(at), msg: msg}
}

func (d *decoder) wrongType(at []byte, num protowire.Number, got protowire.Type) error {
	return &wireError{off: d.offset(at), msg: fmt.Sprintf("field %d has wire type %s", num, wireTypeName(got))}
}

func wireTypeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return fmt.Sprintf("%d (invalid)", t)
}

// tag reads one tag. b must not be empty. One-byte tags (field numbers 1 to 15), nearly all
// of them, skip the general decoder.
func (d *decoder) tag(b []byte) (protowire.Number, protowire.Type, int, error) {
	if c := b[0]; c < 0x80 && c >= 8 {
		return protowire.Number(c >> 3), protowire.Type(c & 7), 1, nil
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, d.wireErr(b, "tag", n)
	}
	return num, typ, n, nil
}

// skip consumes the value of a field the decoder does not know.
func (d *decoder) skip(b []byte, num protowire.Number, typ protowire.Type) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, d.wireErr(b, "field "+fmt.Sprint(num), n)
	}
	return n, nil
}

// bytesField reads a length-delimited value of field num.
func (d *decoder) bytesField(b []byte, num protowire.Number, typ protowire.Type) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, d.wrongType(b, num, typ)
	}
	if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) { // one-byte length
		return b[1 : 1+int(b[0])], 1 + int(b[0]), nil
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, d.wireErr(b, "length-delimited value", n)
	}
	return v, n, nil
}

func (d *decoder) varintField(b []byte, num protowire.Number, typ protowire.Type) (uint64, int, error) {
	if typ != protowire.VarintType {
		return 0, 0, d.wrongType(b, num, typ)
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, d.wireErr(b, "varint", n)
	}
	return v, n, nil
}

func (d *decoder) fixed64Field(b []byte, num protowire.Number, typ protowire.Type) (uint64, int, error) {
	if typ != protowire.Fixed64Type {
		return 0, 0, d.wrongType(b, num, typ)
	}
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, 0, d.wireErr(b, "fixed64", n)
	}
	return v, n, nil
}

// uint32s appends a repeated uint32 field, packed (one length-delimited run) or not (one
// varint), to dst. Values are truncated to 32 bits as the generated decoders do. Only the
// first keep values of dst are stored (keep <= 0: all), so a giant run cannot make dst huge;
// seen counts every value read.
func (d *decoder) uint32s(dst []uint32, b []byte, num protowire.Number, typ protowire.Type, keep int) (_ []uint32, seen, n int, err error) {
	switch typ {
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return dst, 0, 0, d.wireErr(b, "varint", n)
		}
		if keep <= 0 || len(dst) < keep {
			dst = append(dst, uint32(v))
		}
		return dst, 1, n, nil
	case protowire.BytesType:
		p, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return dst, 0, 0, d.wireErr(b, "packed varints", n)
		}
		if room := len(p); keep <= 0 || room <= keep-len(dst) {
			dst = slices.Grow(dst, room) // at most one value per byte
		}
		for len(p) > 0 {
			v, m := uint64(p[0]), 1
			if v >= 0x80 {
				if v, m = protowire.ConsumeVarint(p); m < 0 {
					return dst, seen, 0, d.wireErr(p, "varint", m)
				}
			}
			if keep <= 0 || len(dst) < keep {
				dst = append(dst, uint32(v))
			}
			seen++
			p = p[m:]
		}
		return dst, seen, n, nil
	}
	return dst, 0, 0, d.wrongType(b, num, typ)
}

// decodeSample decodes a Sample message (RW 1.0: value=1, timestamp=2; RW 2.0 adds
// start_timestamp=3, which an RW 1.0 sample does not have and so skips).
func (d *decoder) decodeSample(b []byte, v2 bool) (Sample, error) {
	var s Sample
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return s, err
		}
		b = b[n:]
		var u uint64
		switch {
		case num == 1:
			u, n, err = d.fixed64Field(b, num, typ)
			s.V = math.Float64frombits(u)
		case num == 2:
			u, n, err = d.varintField(b, num, typ)
			s.T = int64(u)
		case num == 3 && v2:
			u, n, err = d.varintField(b, num, typ)
			s.ST = int64(u)
		default:
			n, err = d.skip(b, num, typ)
		}
		if err != nil {
			return s, err
		}
		b = b[n:]
	}
	return s, nil
}

// isASCII reports whether b holds only ASCII bytes, eight at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
