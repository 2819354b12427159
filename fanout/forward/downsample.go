package forward

import (
	"math"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// downsampler reduces the samples of matching series to one per interval. Intervals are
// aligned to multiples of the interval since the epoch; an interval's value (last, avg or max of
// its samples) is sent once a sample of a later interval arrives, with the timestamp of the
// interval's last sample, so per-series order is kept. A series that goes quiet has its open
// interval sent by flushIdle; a stale marker closes the open interval and is forwarded as is.
// Open intervals live in memory: a crash loses at most one output sample per series.
type downsampler struct {
	rules []DownsampleRule

	mu    sync.Mutex
	match map[uint64]int16 // series hash → rule index, -1 for none
	open  map[uint64]*dsState
}

type dsState struct {
	rule    int16
	bucket  int64
	n       int
	sum     float64
	max     float64
	last    float64
	lastT   int64
	touched int64 // wall clock of the last sample, unix ms
	labels  []ingest.Label
}

const maxMatchCache = 1 << 20

func newDownsampler(rules []DownsampleRule) *downsampler {
	return &downsampler{rules: rules, match: map[uint64]int16{}, open: map[uint64]*dsState{}}
}

func (d *downsampler) ruleFor(hash uint64, ls []ingest.Label) int16 {
	if r, ok := d.match[hash]; ok {
		return r
	}
	r := int16(-1)
	for i := range d.rules {
		if matches(d.rules[i].matchers, ls) {
			r = int16(i)
			break
		}
	}
	if len(d.match) >= maxMatchCache {
		clear(d.match)
	}
	d.match[hash] = r
	return r
}

// matches applies a selector's matchers to a label set; a missing label matches as "".
func matches(ms []*labels.Matcher, ls []ingest.Label) bool {
	for _, m := range ms {
		v := ""
		for _, l := range ls {
			if l.Name == m.Name {
				v = l.Value
				break
			}
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// process returns the samples to forward for one series: in itself for a series no rule
// matches, else the intervals the new samples closed. out is scratch space.
func (d *downsampler) process(hash uint64, ls []ingest.Label, in, out []ingest.Sample, nowMs int64) []ingest.Sample {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.ruleFor(hash, ls)
	if r < 0 {
		return in
	}
	rule := &d.rules[r]
	iv := int64(rule.Interval) / 1e6
	st := d.open[hash]
	for _, s := range in {
		if isStale(s.V) {
			if st != nil {
				out = append(out, st.value(rule.Function))
				delete(d.open, hash)
				st = nil
			}
			out = append(out, s)
			continue
		}
		b := floorDiv(s.T, iv)
		if st != nil && b != st.bucket {
			if b < st.bucket || s.T <= st.lastT {
				continue // out of order: the interval is already decided
			}
			out = append(out, st.value(rule.Function))
			st.reset(b)
		}
		if st == nil {
			st = &dsState{rule: r, bucket: b, labels: cloneLabels(ls)}
			st.reset(b)
			d.open[hash] = st
		}
		if st.n > 0 && s.T <= st.lastT {
			continue
		}
		st.n++
		st.sum += s.V
		if st.n == 1 || s.V > st.max || math.IsNaN(st.max) {
			st.max = s.V
		}
		st.last, st.lastT, st.touched = s.V, s.T, nowMs
	}
	return out
}

func (s *dsState) reset(b int64) {
	s.bucket, s.n, s.sum, s.max, s.last = b, 0, 0, 0, 0
}

func (s *dsState) value(f Aggregation) ingest.Sample {
	v := s.last
	switch f {
	case AggAvg:
		v = s.sum / float64(s.n)
	case AggMax:
		v = s.max
	}
	return ingest.Sample{T: s.lastT, V: v}
}

// flushIdle closes the open intervals of series without a sample for idle (all of them when
// idle is 0) and hands each result to emit.
func (d *downsampler) flushIdle(nowMs, idleMs int64, emit func(ls []ingest.Label, hash uint64, s ingest.Sample)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for h, st := range d.open {
		if idleMs > 0 {
			iv := int64(d.rules[st.rule].Interval) / 1e6
			if nowMs-st.touched < max(idleMs, 2*iv) {
				continue
			}
		}
		if st.n > 0 {
			emit(st.labels, h, st.value(d.rules[st.rule].Function))
		}
		delete(d.open, h)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// cloneLabels copies ls into memory of its own: one string holding every name and value.
func cloneLabels(ls []ingest.Label) []ingest.Label {
	n := 0
	for _, l := range ls {
		n += len(l.Name) + len(l.Value)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, l := range ls {
		sb.WriteString(l.Name)
		sb.WriteString(l.Value)
	}
	all := sb.String()
	out := make([]ingest.Label, len(ls))
	off := 0
	for i, l := range ls {
		out[i].Name = all[off : off+len(l.Name)]
		off += len(l.Name)
		out[i].Value = all[off : off+len(l.Value)]
		off += len(l.Value)
	}
	return out
}
