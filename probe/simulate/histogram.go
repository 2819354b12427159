package simulate

import (
	"math"
	"strconv"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// histogram is a classic Prometheus histogram kept in floats, because a collection sees
// fractions of requests; it is written with whole counts, as an exposition shows them.
type histogram struct {
	bounds     []float64 // upper bounds, ascending; +Inf is implied
	cum        []float64 // cumulative count at each bound
	count, sum float64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, cum: make([]float64, len(bounds))}
}

// observe records n observations of v.
func (h *histogram) observe(v, n float64) {
	if n <= 0 {
		return
	}
	h.count += n
	h.sum += v * n
	for i, ub := range h.bounds {
		if v <= ub {
			h.cum[i] += n
		}
	}
}

// append writes name_bucket{le}, name_sum and name_count, all counters.
func (h *histogram) append(a *probe.Appender, name string, ls []probe.Label, extra ...probe.Label) {
	le := func(v string) []probe.Label { return append(extra[:len(extra):len(extra)], probe.L("le", v)) }
	for i, ub := range h.bounds {
		a.Counter(name+"_bucket", math.Floor(h.cum[i]), ls, le(strconv.FormatFloat(ub, 'f', -1, 64))...)
	}
	a.Counter(name+"_bucket", math.Floor(h.count), ls, le("+Inf")...)
	a.Counter(name+"_sum", h.sum, ls, extra...)
	a.Counter(name+"_count", math.Floor(h.count), ls, extra...)
}
