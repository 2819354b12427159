package ingest

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
)

// RW 1.0 field numbers (prometheus.WriteRequest, prompb/remote.proto and types.proto).
const (
	v1ReqTimeseries = 1
	v1ReqMetadata   = 3

	v1SeriesLabels     = 1
	v1SeriesSamples    = 2
	v1SeriesExemplars  = 3
	v1SeriesHistograms = 4

	v1LabelName  = 1
	v1LabelValue = 2

	v1ExemplarLabels    = 1
	v1ExemplarValue     = 2
	v1ExemplarTimestamp = 3

	v1MetaType   = 1
	v1MetaFamily = 2
	v1MetaHelp   = 4
	v1MetaUnit   = 5
)

func v1Err(err error) error {
	return classed(ErrInvalid, fmt.Errorf("decode RW 1.0 request: %w", err))
}

// decodeV1 decodes d.buf as a prometheus.WriteRequest.
func (d *decoder) decodeV1() error {
	b := d.buf
	nSeries, nMeta := 0, 0
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return v1Err(err)
		}
		b = b[n:]
		switch num {
		case v1ReqTimeseries:
			var msg []byte
			if msg, n, err = d.bytesField(b, num, typ); err != nil {
				return v1Err(within(err, "timeseries", nSeries))
			}
			if d.lim.maxSeries > 0 && nSeries >= d.lim.maxSeries {
				return errSeriesLimit(d.lim.maxSeries)
			}
			if err := d.seriesV1(msg, nSeries); err != nil {
				return v1Err(within(err, "timeseries", nSeries))
			}
			nSeries++
			d.maybeYield(nSeries)
		case v1ReqMetadata:
			var msg []byte
			if msg, n, err = d.bytesField(b, num, typ); err != nil {
				return v1Err(within(err, "metadata", nMeta))
			}
			if err := d.metadataV1(msg, nMeta); err != nil {
				return v1Err(within(err, "metadata", nMeta))
			}
			nMeta++
		default:
			if n, err = d.skip(b, num, typ); err != nil {
				return v1Err(err)
			}
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) seriesV1(b []byte, idx int) error {
	m := d.mark()
	d.labelsOver, d.exLabelsOver, d.hasBadUTF8 = 0, false, false
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num < v1SeriesLabels || num > v1SeriesHistograms {
			if n, err = d.skip(b, num, typ); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		var msg []byte
		if msg, n, err = d.bytesField(b, num, typ); err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case v1SeriesLabels:
			l, err := d.labelV1(msg)
			if err != nil {
				return within(err, "labels", len(d.labels)-m.labels)
			}
			if d.lim.maxLabels > 0 && len(d.labels)-m.labels >= d.lim.maxLabels {
				d.labelsOver++ // counted for the error, not kept
				continue
			}
			// Label messages of ASCII names and values, almost all of them, are checked
			// as a whole; the others string by string.
			if !d.hasBadUTF8 && !isASCII(msg) && !(utf8.ValidString(l.Name) && utf8.ValidString(l.Value)) {
				d.badUTF8, d.hasBadUTF8 = l.Name, true
			}
			d.labels = append(d.labels, l)
		case v1SeriesSamples:
			s, err := d.decodeSample(msg, false)
			if err != nil {
				return within(err, "samples", len(d.samples)-m.samples)
			}
			d.samples = append(d.samples, s)
		case v1SeriesExemplars:
			if err := d.exemplarV1(msg); err != nil {
				return within(err, "exemplars", len(d.exemplars)-m.exemplars)
			}
		case v1SeriesHistograms:
			var h prompb.Histogram
			if err := h.Unmarshal(msg); err != nil {
				return within(&wireError{off: d.offset(msg), msg: err.Error()}, "histograms", len(d.hists)-m.hists)
			}
			hs := Histogram{T: h.Timestamp}
			if h.IsFloatHistogram() {
				hs.FH = h.ToFloatHistogram()
			} else {
				hs.H = h.ToIntHistogram()
			}
			d.hists = append(d.hists, hs)
		}
	}
	rec := m.rec(d)
	if !d.validateSeries(&rec, idx, V1) {
		d.truncate(m)
		return nil
	}
	d.recs = append(d.recs, rec)
	return nil
}

func (d *decoder) labelV1(b []byte) (Label, error) {
	var l Label
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return l, err
		}
		b = b[n:]
		var v []byte
		switch num {
		case v1LabelName:
			v, n, err = d.bytesField(b, num, typ)
			l.Name = unsafeString(v)
		case v1LabelValue:
			v, n, err = d.bytesField(b, num, typ)
			l.Value = unsafeString(v)
		default:
			n, err = d.skip(b, num, typ)
		}
		if err != nil {
			return l, err
		}
		b = b[n:]
	}
	return l, nil
}

func (d *decoder) exemplarV1(b []byte) error {
	e := Exemplar{}
	start := len(d.exLabels)
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var u uint64
		switch num {
		case v1ExemplarLabels:
			var msg []byte
			if msg, n, err = d.bytesField(b, num, typ); err == nil {
				var l Label
				if l, err = d.labelV1(msg); err == nil {
					if d.lim.maxLabels > 0 && len(d.exLabels)-start >= d.lim.maxLabels {
						d.exLabelsOver = true
					} else {
						d.exLabels = append(d.exLabels, l)
					}
				} else {
					err = within(err, "labels", len(d.exLabels)-start)
				}
			}
		case v1ExemplarValue:
			u, n, err = d.fixed64Field(b, num, typ)
			e.V = math.Float64frombits(u)
		case v1ExemplarTimestamp:
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
	d.exemplars = append(d.exemplars, e)
	d.exSpans = append(d.exSpans, span{int32(start), int32(len(d.exLabels))})
	return nil
}

func (d *decoder) metadataV1(b []byte, idx int) error {
	var fm FamilyMetadata
	for len(b) > 0 {
		num, typ, n, err := d.tag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var v []byte
		switch num {
		case v1MetaType:
			var u uint64
			u, n, err = d.varintField(b, num, typ)
			fm.Type = metricType(u)
		case v1MetaFamily:
			v, n, err = d.bytesField(b, num, typ)
			fm.Family = unsafeString(v)
		case v1MetaHelp:
			v, n, err = d.bytesField(b, num, typ)
			fm.Help = unsafeString(v)
		case v1MetaUnit:
			v, n, err = d.bytesField(b, num, typ)
			fm.Unit = unsafeString(v)
		default:
			n, err = d.skip(b, num, typ)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if !utf8.ValidString(fm.Family) || !utf8.ValidString(fm.Help) || !utf8.ValidString(fm.Unit) {
		d.problems.add(reasonInvalidMetadata, func() string {
			return fmt.Sprintf("metadata[%d] %q: invalid UTF-8", idx, fm.Family)
		})
		return nil
	}
	d.meta = append(d.meta, fm)
	return nil
}
