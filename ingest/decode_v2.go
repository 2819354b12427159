package ingest

import (
	"fmt"
	"math"
	"unicode/utf8"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// RW 2.0 rc.4 field numbers (io.prometheus.write.v2.Request, prompb/io/prometheus/write/v2).
const (
	v2ReqSymbols    = 4
	v2ReqTimeseries = 5

	v2SeriesLabelRefs  = 1
	v2SeriesSamples    = 2
	v2SeriesHistograms = 3
	v2SeriesExemplars  = 4
	v2SeriesMetadata   = 5
	// Field 6 is reserved: rc.3's created_timestamp. It is skipped like any unknown field.

	v2ExemplarLabelRefs = 1
	v2ExemplarValue     = 2
	v2ExemplarTimestamp = 3

	v2MetaType    = 1
	v2MetaHelpRef = 3
	v2MetaUnitRef = 4
)

func v2Err(err error) error {
	return classed(ErrInvalid, fmt.Errorf("decode RW 2.0 request: %w", err))
}

// decodeV2 decodes d.buf as an io.prometheus.write.v2.Request. A first pass collects the
// symbol table (senders write it first, but protobuf does not promise field order) and counts
// the series; the second decodes the series against the complete table.
func (d *decoder) decodeV2() error {
	b := d.buf
	nSeries := 0
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return v2Err(err)
		}
		b = b[n:]
		switch num {
		case v2ReqSymbols:
			var v []byte
			if v, n, err = d.bytesField(b, num, typ); err != nil {
				return v2Err(within(err, "symbols", len(d.symbols)))
			}
			d.symbols = append(d.symbols, unsafeString(v))
			d.symBad = append(d.symBad, !utf8.Valid(v))
		case v2ReqTimeseries:
			if _, n, err = d.bytesField(b, num, typ); err != nil {
				return v2Err(within(err, "timeseries", nSeries))
			}
			nSeries++
			if d.lim.maxSeries > 0 && nSeries > d.lim.maxSeries {
				return errSeriesLimit(d.lim.maxSeries)
			}
		case 1, 2, 3:
			// Reserved in RW 2.0, where RW 1.0 keeps its series and metadata: refuse rather
			// than answer 204 to a request whose data would all be skipped.
			return v2Err(&wireError{off: d.offset(b), msg: fmt.Sprintf(
				"field %d is reserved in io.prometheus.write.v2.Request (an RW 1.0 body sent with the RW 2.0 content type?)", num)})
		default:
			if n, err = d.skip(b, num, typ); err != nil {
				return v2Err(err)
			}
		}
		b = b[n:]
	}
	if len(d.symbols) > 0 && d.symbols[0] != "" {
		return classed(ErrInvalid, fmt.Errorf("decode RW 2.0 request: symbols[0] must be the empty string, got %q",
			truncateString(d.symbols[0], 64)))
	}

	b = d.buf
	idx := 0
	for len(b) > 0 {
		num, typ, n, _ := d.tag(b) // checked by the first pass
		b = b[n:]
		if num == v2ReqTimeseries {
			msg, n, _ := d.bytesField(b, num, typ)
			if err := d.seriesV2(msg, idx); err != nil {
				return v2Err(within(err, "timeseries", idx))
			}
			idx++
			d.maybeYield(idx)
			b = b[n:]
			continue
		}
		n, _ = d.skip(b, num, typ)
		b = b[n:]
	}
	return nil
}

// v2State collects what seriesV2 learns about a series besides its flat-slice parts.
type v2State struct {
	mdType           uint64
	helpRef, unitRef uint32
	exemplarRefs     refProblem
}

// refProblem is the first bad symbol reference met in a series' exemplars.
type refProblem struct {
	reason reason
	ref    uint32
	odd    bool
}

func (d *decoder) seriesV2(b []byte, idx int) error {
	m := d.mark()
	d.refs = d.refs[:0]
	d.labelsOver, d.exLabelsOver = 0, false
	refsSeen := 0
	var st v2State
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var msg []byte
		switch num {
		case v2SeriesLabelRefs:
			var seen int
			if d.refs, seen, n, err = d.uint32s(d.refs, b, num, typ, 2*d.lim.maxLabels); err != nil {
				return within(err, "labels_refs", -1)
			}
			refsSeen += seen
		case v2SeriesSamples:
			if msg, n, err = d.bytesField(b, num, typ); err != nil {
				return within(err, "samples", len(d.samples)-m.samples)
			}
			s, err := d.decodeSample(msg, true)
			if err != nil {
				return within(err, "samples", len(d.samples)-m.samples)
			}
			d.samples = append(d.samples, s)
		case v2SeriesHistograms:
			if msg, n, err = d.bytesField(b, num, typ); err != nil {
				return within(err, "histograms", len(d.hists)-m.hists)
			}
			var h writev2.Histogram
			if err := h.Unmarshal(msg); err != nil {
				return within(&wireError{off: d.offset(msg), msg: err.Error()}, "histograms", len(d.hists)-m.hists)
			}
			hs := Histogram{T: h.Timestamp, ST: h.StartTimestamp}
			if h.IsFloatHistogram() {
				hs.FH = h.ToFloatHistogram()
			} else {
				hs.H = h.ToIntHistogram()
			}
			d.hists = append(d.hists, hs)
		case v2SeriesExemplars:
			if msg, n, err = d.bytesField(b, num, typ); err != nil {
				return within(err, "exemplars", len(d.exemplars)-m.exemplars)
			}
			if err := d.exemplarV2(msg, &st.exemplarRefs); err != nil {
				return within(err, "exemplars", len(d.exemplars)-m.exemplars)
			}
		case v2SeriesMetadata:
			if msg, n, err = d.bytesField(b, num, typ); err != nil {
				return within(err, "metadata", -1)
			}
			if err := d.metadataV2(msg, &st); err != nil {
				return within(err, "metadata", -1)
			}
		default:
			n, err = d.skip(b, num, typ)
			if err != nil {
				return err
			}
		}
		b = b[n:]
	}

	d.labelsOver = (refsSeen - len(d.refs)) / 2
	if !d.resolveLabelsV2(m, idx, refsSeen) || !d.checkRefsV2(m, idx, &st) {
		d.truncate(m)
		return nil
	}
	rec := m.rec(d)
	rec.meta.Type = metricType(st.mdType)
	rec.meta.Help = d.symbol(st.helpRef)
	rec.meta.Unit = d.symbol(st.unitRef)
	if !d.validateSeries(&rec, idx, V2) {
		d.truncate(m)
		return nil
	}
	d.recs = append(d.recs, rec)
	return nil
}

// symbol returns symbols[ref]; ref 0 is "" even when the table is empty.
func (d *decoder) symbol(ref uint32) string {
	if int(ref) < len(d.symbols) {
		return d.symbols[ref]
	}
	return ""
}

func (d *decoder) refOK(ref uint32) bool { return ref == 0 || int(ref) < len(d.symbols) }

// resolveLabelsV2 turns d.refs into labels. It reports false (and records why) when the refs
// do not name valid symbols.
func (d *decoder) resolveLabelsV2(m mark, idx, refsSeen int) bool {
	refs := d.refs
	if refsSeen%2 != 0 {
		d.problems.add(reasonBadSymbolRef, func() string {
			return fmt.Sprintf("timeseries[%d]: odd number of label refs (%d)", idx, refsSeen)
		})
		return false
	}
	for i := 0; i < len(refs); i += 2 {
		nr, vr := refs[i], refs[i+1]
		for _, r := range [2]uint32{nr, vr} {
			if int(r) >= len(d.symbols) {
				d.problems.add(reasonBadSymbolRef, func() string {
					return fmt.Sprintf("timeseries[%d]: label ref %d out of range (%d symbols)", idx, r, len(d.symbols))
				})
				return false
			}
			if d.symBad[r] {
				d.problems.add(reasonInvalidUTF8, func() string {
					return fmt.Sprintf("timeseries[%d]: label %d: invalid UTF-8 in symbol %d %q", idx, i/2, r, truncateString(d.symbols[r], 64))
				})
				return false
			}
		}
		d.labels = append(d.labels, Label{Name: d.symbols[nr], Value: d.symbols[vr]})
	}
	return true
}

// checkRefsV2 checks the metadata and exemplar refs of a series once its labels resolved.
func (d *decoder) checkRefsV2(m mark, idx int, st *v2State) bool {
	if p := st.exemplarRefs; p.reason != 0 {
		d.problems.add(p.reason, func() string {
			switch {
			case p.odd:
				return fmt.Sprintf("timeseries[%d]: exemplar with odd number of label refs", idx)
			case p.reason == reasonInvalidUTF8:
				return fmt.Sprintf("timeseries[%d]: exemplar label: invalid UTF-8 in symbol %d", idx, p.ref)
			}
			return fmt.Sprintf("timeseries[%d]: exemplar label ref %d out of range (%d symbols)", idx, p.ref, len(d.symbols))
		})
		return false
	}
	for _, r := range [2]uint32{st.helpRef, st.unitRef} {
		if !d.refOK(r) {
			d.problems.add(reasonBadSymbolRef, func() string {
				return fmt.Sprintf("timeseries[%d] %s: metadata ref %d out of range (%d symbols)",
					idx, describeLabels(d.labels[m.labels:]), r, len(d.symbols))
			})
			return false
		}
		if int(r) < len(d.symBad) && d.symBad[r] {
			d.problems.add(reasonInvalidUTF8, func() string {
				return fmt.Sprintf("timeseries[%d] %s: metadata: invalid UTF-8 in symbol %d",
					idx, describeLabels(d.labels[m.labels:]), r)
			})
			return false
		}
	}
	return true
}

func (d *decoder) exemplarV2(b []byte, bad *refProblem) error {
	var e Exemplar
	refs := d.exRefs[:0]
	defer func() { d.exRefs = refs[:0] }()
	refsSeen := 0
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var u uint64
		switch num {
		case v2ExemplarLabelRefs:
			var seen int
			refs, seen, n, err = d.uint32s(refs, b, num, typ, 2*d.lim.maxLabels)
			refsSeen += seen
		case v2ExemplarValue:
			u, n, err = d.fixed64Field(b, num, typ)
			e.V = math.Float64frombits(u)
		case v2ExemplarTimestamp:
			u, n, err = d.varintField(b, num, typ)
			e.T = int64(u)
		default:
			n, err = d.skip(b, num, typ)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	start := len(d.exLabels)
	if refsSeen > len(refs) {
		d.exLabelsOver = true
	}
	switch {
	case bad.reason != 0:
	case refsSeen%2 != 0:
		*bad = refProblem{reason: reasonBadSymbolRef, odd: true}
	default:
		for i := 0; i < len(refs); i += 2 {
			nr, vr := refs[i], refs[i+1]
			if int(nr) >= len(d.symbols) || int(vr) >= len(d.symbols) {
				*bad = refProblem{reason: reasonBadSymbolRef, ref: max(nr, vr)}
				break
			}
			if d.symBad[nr] || d.symBad[vr] {
				*bad = refProblem{reason: reasonInvalidUTF8, ref: nr}
				if d.symBad[vr] {
					bad.ref = vr
				}
				break
			}
			d.exLabels = append(d.exLabels, Label{Name: d.symbols[nr], Value: d.symbols[vr]})
		}
	}
	d.exemplars = append(d.exemplars, e)
	d.exSpans = append(d.exSpans, span{int32(start), int32(len(d.exLabels))})
	return nil
}

func (d *decoder) metadataV2(b []byte, st *v2State) error {
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var u uint64
		switch num {
		case v2MetaType:
			u, n, err = d.varintField(b, num, typ)
			st.mdType = u
		case v2MetaHelpRef:
			u, n, err = d.varintField(b, num, typ)
			st.helpRef = uint32(u)
		case v2MetaUnitRef:
			u, n, err = d.varintField(b, num, typ)
			st.unitRef = uint32(u)
		default:
			n, err = d.skip(b, num, typ)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
