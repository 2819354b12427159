package tsdb

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// Write appends a decoded request to the window; it implements ingest.Sink. Samples the head
// refuses (out of order, older than the window, duplicates with another value, over the
// series limit) are counted and reported through an error wrapping ingest.ErrInvalid; the rest
// is committed. Float samples refused as out of order or as duplicates with another value are
// also taken out of req, so that the sinks after the window (the forwarder) do not send what
// a destination holding the same series would refuse, with the rest of its request. Nothing
// of req is kept after Write returns.
func (w *Window) Write(ctx context.Context, req *ingest.Request) (ingest.Stats, error) {
	var (
		st    ingest.Stats
		rej   rejections
		exBuf []exemplar.Exemplar
	)
	app := w.db.AppenderV2(ctx)
	exApp, _ := app.(storage.ExemplarAppenderV2)
	for i := range req.Series {
		if i > 0 && i%ingest.YieldEvery == 0 {
			// Appending a bulk write takes milliseconds; let small writes and publishers
			// made runnable meanwhile have the processor now and then.
			runtime.Gosched()
		}
		s := &req.Series[i]
		ref, lset := w.cache.get(s.Hash, s.Hash2)
		if lset.IsEmpty() {
			lset = buildLabels(s.Labels)
		}
		created := ref == 0
		var err error
		kept := s.Samples[:0]
		for _, smp := range s.Samples {
			var ok bool
			if ok, err = appendOne(app, &rej, &ref, lset, smp.ST, smp.T, smp.V, nil, nil); err != nil {
				break
			}
			if ok {
				st.Samples++
			}
			if ok || !rej.lastUnsendable {
				kept = append(kept, smp)
			}
		}
		if err == nil {
			s.Samples = kept
		}
		for _, h := range s.Histograms {
			if err != nil {
				break
			}
			var ok bool
			if ok, err = appendOne(app, &rej, &ref, lset, h.ST, h.T, 0, h.H, h.FH); ok {
				st.Histograms++
			}
		}
		if err != nil {
			_ = app.Rollback()
			return ingest.Stats{}, fmt.Errorf("append to window: %w", err)
		}
		// Senders often send exemplars in entries of their own, without samples: they attach
		// to the series' existing samples.
		if len(s.Exemplars) > 0 && exApp != nil {
			exBuf = appendExemplars(exBuf[:0], s.Exemplars)
			st.Exemplars += w.appendExemplars(exApp, ref, lset, exBuf)
		}
		if created && ref != 0 {
			w.cache.put(s.Hash, s.Hash2, ref, lset)
		}
		w.meta.observeSeries(s)
	}
	w.meta.observeFamilies(req.Metadata)
	if err := app.Commit(); err != nil {
		return ingest.Stats{}, fmt.Errorf("commit to window: %w", err)
	}
	w.metrics.appended.Add(float64(st.Samples + st.Histograms))
	w.metrics.exemplars.Add(float64(st.Exemplars))
	if rej.total > 0 {
		for reason, n := range rej.byReason {
			if n > 0 {
				w.metrics.rejected.WithLabelValues(rejectReasons[reason]).Add(float64(n))
			}
		}
		return st, fmt.Errorf("%w: %s", ingest.ErrInvalid, rej.String())
	}
	return st, nil
}

// appendOne appends one float or histogram sample of the series ref/lset and updates ref. It
// reports whether the head took the sample; the error is only the gateway's own fault, the
// head's refusals being counted in rej.
func appendOne(app storage.AppenderV2, rej *rejections, ref *storage.SeriesRef, lset labels.Labels,
	st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) (bool, error) {
	r, err := app.Append(*ref, lset, st, t, v, h, fh, storage.AOptions{})
	if err = rej.classify(err); err != nil || r == 0 {
		return false, err
	}
	*ref = r
	return true, nil
}

// buildLabels copies request labels (which alias a pooled buffer) into a labels.Labels.
func buildLabels(ls []ingest.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

func appendExemplars(dst []exemplar.Exemplar, src []ingest.Exemplar) []exemplar.Exemplar {
	for _, e := range src {
		dst = append(dst, exemplar.Exemplar{Labels: buildLabels(e.Labels), Value: e.V, Ts: e.T, HasTs: true})
	}
	// The head wants exemplars sorted by time; senders almost always send them so.
	for i := 1; i < len(dst); i++ {
		for j := i; j > 0 && dst[j].Ts < dst[j-1].Ts; j-- {
			dst[j], dst[j-1] = dst[j-1], dst[j]
		}
	}
	return dst
}

// appendExemplars appends exemplars for one series and returns how many were stored. Refused
// exemplars (out of order, or for a series the window does not have) are counted, not failed:
// they never cost the request its samples.
func (w *Window) appendExemplars(app storage.ExemplarAppenderV2, ref storage.SeriesRef, lset labels.Labels, exs []exemplar.Exemplar) int {
	_, err := app.AppendExemplars(ref, lset, exs)
	if err == nil {
		return len(exs)
	}
	refused := len(exs)
	var partial *storage.AppendPartialError
	if errors.As(err, &partial) {
		refused = min(len(partial.ExemplarErrors), len(exs))
	}
	w.metrics.rejected.WithLabelValues("exemplar").Add(float64(refused))
	return len(exs) - refused
}

// Rejection reasons, in the order of rejections.byReason.
const (
	reasonOutOfOrder = iota
	reasonTooOld
	reasonDuplicate
	reasonTooManySeries
	numReasons
)

var rejectReasons = [numReasons]string{"out_of_order", "too_old", "duplicate", "too_many_series"}

// rejections counts samples the head refused for reasons the sender cannot fix by retrying.
type rejections struct {
	byReason [numReasons]int
	total    int
	first    error
	// lastUnsendable tells whether the last sample classified was refused as out of order or
	// as a duplicate with another value: a destination would refuse it too.
	lastUnsendable bool
}

// classify records err; it returns err only when it is the gateway's own fault.
func (r *rejections) classify(err error) error {
	r.lastUnsendable = false
	if err == nil {
		return nil
	}
	var reason int
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		reason = reasonOutOfOrder
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		reason = reasonTooOld
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		reason = reasonDuplicate
	case errors.Is(err, ErrTooManySeries):
		reason = reasonTooManySeries
	default:
		return err
	}
	r.lastUnsendable = reason == reasonOutOfOrder || reason == reasonDuplicate
	r.byReason[reason]++
	r.total++
	if r.first == nil {
		r.first = err
	}
	return nil
}

func (r *rejections) String() string {
	return fmt.Sprintf("%d samples rejected by the window (first: %v)", r.total, r.first)
}
