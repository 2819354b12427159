package hotseries

import (
	"context"
	"math"
	"runtime"
	"sync"

	"github.com/prometheus/prometheus/model/value"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// dcgmBlank is where DCGM's "no value" sentinels begin (int64 0x7ffffffffffffff0 and up);
// such samples are treated as missing.
const dcgmBlank = 9.2e18

// Write is the ingest sink: it copies the newest sample of every hot series of req into the
// publisher's state and returns at once. It never blocks on a transport and never fails; it
// reports every sample, histogram and exemplar of req as accepted. Nothing of req is kept:
// the strings a new series needs are copied the first time it is seen.
func (p *Publisher) Write(_ context.Context, req *ingest.Request) (ingest.Stats, error) {
	var stats ingest.Stats
	now := p.now().UnixNano()
	hot := len(p.groups) > 0
	var enq *[]*endpoint
	if hot {
		enq = enqueuePool.Get().(*[]*endpoint)
	}
	for i := range req.Series {
		s := &req.Series[i]
		stats.Samples += len(s.Samples)
		stats.Histograms += len(s.Histograms)
		stats.Exemplars += len(s.Exemplars)
		if hot && len(s.Samples) > 0 {
			p.writeSeries(s, now, enq)
		}
	}
	if enq != nil {
		wake := enqueue(*enq)
		clear(*enq)
		*enq = (*enq)[:0]
		enqueuePool.Put(enq)
		if wake != 0 {
			p.wake(wake)
		}
	}
	return stats, nil
}

// enqueuePool holds the lists of endpoints a Write newly marked dirty.
var enqueuePool = sync.Pool{New: func() any { return new([]*endpoint) }}

// enqueue puts endpoints on their groups' dirty lists and returns those groups (by index, 63:
// 63 and up) for wake. Write does it once the whole request is applied, not series by series:
// otherwise a publisher running meanwhile could publish an endpoint with only some of the
// request's fields, and the rest would wait min_gap.
func enqueue(eps []*endpoint) (groups uint64) {
	for i := 0; i < len(eps); {
		g := eps[i].g
		groups |= 1 << min(g.idx, 63)
		j := i + 1
		for j < len(eps) && eps[j].g == g {
			j++
		}
		g.dirtyMu.Lock()
		g.dirty = append(g.dirty, eps[i:j]...)
		g.dirtyMu.Unlock()
		i = j
	}
	return groups
}

// wake tells the publishing goroutines of the groups in mask that endpoints are dirty, once
// per Write rather than per series, then yields to them. A goroutine woken by a channel send
// waits on the waker's own processor until the waker blocks or is preempted (up to 10 ms
// later) unless another processor is idle to take it; a writer that goes on decoding or
// appending would hold the publisher that long. Yielding hands the processor over at once:
// publishing a few messages takes microseconds, and the writer is rescheduled right after.
func (p *Publisher) wake(mask uint64) {
	woke := false
	for i, g := range p.groups {
		if mask&(1<<min(i, 63)) == 0 {
			continue
		}
		select {
		case g.notify <- struct{}{}:
			woke = woke || g.onIngest
		default:
		}
	}
	if woke {
		runtime.Gosched()
	}
}

// writeSeries records the newest sample of s in every group state it feeds and adds the
// endpoints it newly marked dirty to enq.
func (p *Publisher) writeSeries(s *ingest.Series, now int64, enq *[]*endpoint) {
	// The newest sample is all that is kept.
	smp := s.Samples[0]
	for _, x := range s.Samples[1:] {
		if x.T >= smp.T {
			smp = x
		}
	}
	if smp.V >= dcgmBlank {
		return
	}
	key := keyOf(s)
	for range 2 { // a second pass only when a state was removed under us
		e := p.cache.get(key)
		if e == nil {
			e = p.resolve(s, now)
			if e == nil {
				return
			}
			if n := p.cache.put(key, e); n > 0 {
				p.m.cacheEvictions.Add(float64(n))
			}
		}
		alive := true
		for _, st := range e.states {
			ok, enqueued := p.update(st, smp.T, smp.V, now)
			alive = ok && alive
			if enqueued {
				*enq = append(*enq, st.ep)
			}
		}
		if alive {
			return
		}
		p.cache.put(key, nil) // resolve again on the next pass
	}
}

// update records a sample in st. It reports false when st was removed from its endpoint, and
// whether the endpoint was newly marked queued: the caller puts it on its group's dirty list.
func (p *Publisher) update(st *seriesState, t int64, v float64, now int64) (alive, enqueued bool) {
	ep := st.ep
	ep.mu.Lock()
	if st.dead {
		ep.mu.Unlock()
		return false, false
	}
	switch {
	case value.IsStaleNaN(v):
		// The series ended (Prometheus' stale marker): it stops counting at once.
		st.arrival = 0
		st.lastT = max(st.lastT, t)
	case t > st.lastT:
		st.prevT, st.prevV = st.lastT, st.lastV
		st.lastT, st.lastV = t, v
		st.arrival = now
	case t == st.lastT:
		st.lastV = v
		st.arrival = now
	default: // older than what we have
		ep.mu.Unlock()
		return true, false
	}
	if st.arrival != 0 {
		ep.lastArrival = max(ep.lastArrival, now)
		ep.newestT = max(ep.newestT, t)
	}
	if !ep.dirty {
		ep.dirty = true
		ep.dirtySince = now
	}
	enqueue := !ep.queued
	ep.queued = true
	ep.mu.Unlock()
	return true, enqueue
}

// seriesValue is what one series contributes for a role, and whether it has a value.
func seriesValue(st *seriesState, r role, counters bool) (float64, bool) {
	switch r {
	case roleValue:
		return st.lastV, !math.IsNaN(st.lastV)
	case roleRate:
		inc, ok := increase(st)
		if !ok {
			return 0, false
		}
		return inc / (float64(st.lastT-st.prevT) / 1000), true
	default:
		if counters {
			return increase(st)
		}
		return st.lastV, !math.IsNaN(st.lastV)
	}
}

// increase is the counter increase between the last two samples; a decrease is a reset.
func increase(st *seriesState) (float64, bool) {
	if st.prevT == 0 || st.lastT <= st.prevT || math.IsNaN(st.lastV) || math.IsNaN(st.prevV) {
		return 0, false
	}
	inc := st.lastV - st.prevV
	if inc < 0 {
		inc = st.lastV
	}
	return inc, true
}
