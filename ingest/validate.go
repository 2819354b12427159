package ingest

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
)

// reason is why a series (or an RW 1.0 metadata entry) was dropped from a request.
type reason uint8

const (
	reasonNone reason = iota
	reasonEmptyLabels
	reasonMissingName
	reasonEmptyLabelName
	reasonDuplicateLabel
	reasonInvalidUTF8
	reasonBadSymbolRef
	reasonSamplesAndHistograms
	reasonTooFarInFuture
	reasonInvalidHistogram
	reasonInvalidMetadata
	reasonMaxLabels
	reasonMaxNameLength
	reasonMaxValueLength
	numReasons
)

var reasonNames = [numReasons]string{
	reasonNone:                 "none",
	reasonEmptyLabels:          "empty_labels",
	reasonMissingName:          "missing_metric_name",
	reasonEmptyLabelName:       "empty_label_name",
	reasonDuplicateLabel:       "duplicate_label_name",
	reasonInvalidUTF8:          "invalid_utf8",
	reasonBadSymbolRef:         "bad_symbol_ref",
	reasonSamplesAndHistograms: "samples_and_histograms",
	reasonTooFarInFuture:       "too_far_in_future",
	reasonInvalidHistogram:     "invalid_histogram",
	reasonInvalidMetadata:      "invalid_metadata",
	reasonMaxLabels:            limitMaxLabels,
	reasonMaxNameLength:        limitMaxNameLength,
	reasonMaxValueLength:       limitMaxValueLength,
}

func (r reason) String() string { return reasonNames[r] }

// limit reports the limit (as named in limit_hits_total) a reason stands for, if any.
func (r reason) limit() (string, bool) {
	switch r {
	case reasonMaxLabels, reasonMaxNameLength, reasonMaxValueLength:
		return reasonNames[r], true
	}
	return "", false
}

// Limit names: the metric label of eagle_eye_ingest_limit_hits_total and, prefixed with
// "limits.", the configuration knob.
const (
	limitMaxBodyBytes     = "max_body_bytes"
	limitMaxDecodedBytes  = "max_decoded_bytes"
	limitMaxSeries        = "max_series_per_request"
	limitMaxLabels        = "max_labels_per_series"
	limitMaxNameLength    = "max_label_name_length"
	limitMaxValueLength   = "max_label_value_length"
	limitMaxInflightWrite = "max_inflight_writes"
)

// limitError is a request refused by a limit. Its class (errTooLarge, ErrOverloaded) decides
// the status code.
type limitError struct {
	limit string
	msg   string
	class error
}

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return e.class }

func newLimitError(class error, limit string, value int64, format string, args ...any) error {
	return &limitError{
		limit: limit,
		msg:   fmt.Sprintf(format, args...) + fmt.Sprintf(" (limit %d, set by limits.%s)", value, limit),
		class: class,
	}
}

func errSeriesLimit(maxSeries int) error {
	return newLimitError(errTooLarge, limitMaxSeries, int64(maxSeries),
		"request has more than %d series; send smaller batches", maxSeries)
}

// maxProblemMessages is how many problems a 400 answer describes; the rest are only counted.
const maxProblemMessages = 5

// problems records what was dropped from a request.
type problems struct {
	total    int
	msgs     []string
	byReason [numReasons]int
}

// add records one problem; msg is called only while there is room for its description, so a
// flood of bad series costs a counter increment each.
func (p *problems) add(r reason, msg func() string) {
	p.total++
	p.byReason[r]++
	if len(p.msgs) < maxProblemMessages {
		p.msgs = append(p.msgs, msg())
	}
}

func (p *problems) reset() {
	clear(p.msgs)
	p.msgs = p.msgs[:0]
	p.total = 0
	p.byReason = [numReasons]int{}
}

// err describes the problems for a 400 answer, or nil when there were none.
func (p *problems) err(seriesTotal int) error {
	if p.total == 0 {
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d invalid series or metadata entries dropped (of %d series); the rest was written", p.total, seriesTotal)
	for _, m := range p.msgs {
		sb.WriteString("\n  ")
		sb.WriteString(m)
	}
	if p.total > len(p.msgs) {
		fmt.Fprintf(&sb, "\n  ... and %d more", p.total-len(p.msgs))
	}
	return classed(ErrInvalid, errors.New(sb.String()))
}

func compareLabels(a, b Label) int { return strings.Compare(a.Name, b.Name) }

// validateSeries checks the labels and data of the series just decoded, sorts its labels and
// computes its hash. It records the first problem it finds and reports whether the series is
// valid.
func (d *decoder) validateSeries(rec *seriesRec, idx int, v Version) bool {
	lbls := d.labels[rec.labels.start:rec.labels.end]
	bad := func(r reason, format string, args ...any) bool {
		d.problems.add(r, func() string {
			return fmt.Sprintf("timeseries[%d] %s: ", idx, describeLabels(lbls)) + fmt.Sprintf(format, args...)
		})
		return false
	}
	if len(lbls) == 0 {
		return bad(reasonEmptyLabels, "no labels")
	}
	lim := d.lim
	if n := len(lbls) + d.labelsOver; lim.maxLabels > 0 && n > lim.maxLabels {
		return bad(reasonMaxLabels, "%d labels, over the limit of %d (set by limits.%s)",
			n, lim.maxLabels, limitMaxLabels)
	}
	if d.exLabelsOver {
		return bad(reasonMaxLabels, "an exemplar has more than %d labels (the limit set by limits.%s)",
			lim.maxLabels, limitMaxLabels)
	}
	if v == V1 && d.hasBadUTF8 {
		return bad(reasonInvalidUTF8, "invalid UTF-8 in label %q", truncateString(d.badUTF8, 64))
	}
	sorted, hasName := true, false
	for i := range lbls {
		l := &lbls[i]
		switch {
		case l.Name == "":
			return bad(reasonEmptyLabelName, "empty label name")
		case lim.maxNameLen > 0 && len(l.Name) > lim.maxNameLen:
			return bad(reasonMaxNameLength, "label name of %d bytes, over the limit of %d (set by limits.%s)",
				len(l.Name), lim.maxNameLen, limitMaxNameLength)
		case lim.maxValueLen > 0 && len(l.Value) > lim.maxValueLen:
			return bad(reasonMaxValueLength, "label %q has a value of %d bytes, over the limit of %d (set by limits.%s)",
				truncateString(l.Name, 64), len(l.Value), lim.maxValueLen, limitMaxValueLength)
		}
		if i > 0 {
			// Strictly ascending names are sorted and unique: the common case costs one
			// comparison per label.
			switch c := strings.Compare(lbls[i-1].Name, l.Name); {
			case c == 0:
				return bad(reasonDuplicateLabel, "duplicate label name %q", truncateString(l.Name, 64))
			case c > 0:
				sorted = false
			}
		}
		if l.Name == model.MetricNameLabel && l.Value != "" {
			hasName = true
		}
	}
	if !sorted {
		d.reordered = true
		slices.SortFunc(lbls, compareLabels)
		for i := 1; i < len(lbls); i++ {
			if lbls[i].Name == lbls[i-1].Name {
				return bad(reasonDuplicateLabel, "duplicate label name %q", truncateString(lbls[i].Name, 64))
			}
		}
	}
	if !hasName {
		return bad(reasonMissingName, "no %s label", model.MetricNameLabel)
	}

	if v == V2 && rec.samples.len() > 0 && rec.hists.len() > 0 {
		return bad(reasonSamplesAndHistograms, "both float samples and histograms")
	}
	for _, s := range d.samples[rec.samples.start:rec.samples.end] {
		if s.T > d.maxT {
			return bad(reasonTooFarInFuture, "sample timestamp %d is more than %v in the future",
				s.T, DefaultMaxFutureSampleDelta)
		}
	}
	for i := range d.hists[rec.hists.start:rec.hists.end] {
		h := &d.hists[int(rec.hists.start)+i]
		if h.T > d.maxT {
			return bad(reasonTooFarInFuture, "histogram timestamp %d is more than %v in the future",
				h.T, DefaultMaxFutureSampleDelta)
		}
		var err error
		if h.FH != nil {
			err = h.FH.Validate()
		} else if h.H != nil {
			err = h.H.Validate()
		} else {
			err = errors.New("empty histogram")
		}
		if err != nil {
			return bad(reasonInvalidHistogram, "histograms[%d]: %v", i, err)
		}
	}
	for i := rec.exemplars.start; i < rec.exemplars.end; i++ {
		e := &d.exemplars[i]
		if e.T > d.maxT {
			return bad(reasonTooFarInFuture, "exemplar timestamp %d is more than %v in the future",
				e.T, DefaultMaxFutureSampleDelta)
		}
		if v != V1 {
			continue
		}
		s := d.exSpans[i]
		for _, l := range d.exLabels[s.start:s.end] {
			if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
				return bad(reasonInvalidUTF8, "invalid UTF-8 in an exemplar label")
			}
		}
	}
	rec.hash, rec.hash2 = d.hash(lbls)
	return true
}

// hash computes Series.Hash and Series.Hash2 over the label key (name 0xff value 0xff per
// label), without allocating once hashBuf has grown.
func (d *decoder) hash(lbls []Label) (uint64, uint64) {
	n := 0
	for i := range lbls {
		n += len(lbls[i].Name) + len(lbls[i].Value) + 2
	}
	if cap(d.hashBuf) < n {
		d.hashBuf = make([]byte, 2*n)
	}
	b := d.hashBuf[:n]
	i := 0
	for _, l := range lbls {
		i += copy(b[i:], l.Name)
		b[i] = 0xff
		i++
		i += copy(b[i:], l.Value)
		b[i] = 0xff
		i++
	}
	return KeyHashes(b)
}

// hash2Seed seeds Series.Hash2, once per process.
var hash2Seed = maphash.MakeSeed()

// KeyHashes returns Series.Hash and Series.Hash2 of a label key: the bytes name 0xff value
// 0xff for each label in sorted order. A sink that must recompute a series' identity from a
// stored label set builds that key and calls this.
func KeyHashes(key []byte) (hash, hash2 uint64) {
	return xxhash.Sum64(key), maphash.Bytes(hash2Seed, key)
}

// describeLabels renders a label set for an error message, cut short for giant ones.
func describeLabels(lbls []Label) string {
	const maxLen = 256
	var sb strings.Builder
	sb.WriteByte('{')
	for i, l := range lbls {
		if sb.Len() > maxLen {
			fmt.Fprintf(&sb, ", ... %d more", len(lbls)-i)
			break
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Quote(truncateString(l.Name, 64)))
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(truncateString(l.Value, 64)))
	}
	sb.WriteByte('}')
	return sb.String()
}

// truncateString cuts s to at most n bytes, marking the cut.
func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
