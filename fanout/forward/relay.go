package forward

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// relay sends a destination's pass-through records (passthrough.go), each as the request it
// arrived as, up to limit at a time. It is the destination's last lane: it reads the whole
// queue at its own position like the shards, and takes the records they skip.
//
// Order. The relay sends records in queue order, waiting at a record while a record in flight
// shares a series key with it, or while a shard has not yet delivered an encoded record queued
// before it. A shard in turn takes an encoded record only once the relay has delivered every
// pass-through record queued before it (shard.run). So each series' samples reach the
// destination in the order they were queued, whichever lane carries them. The two kinds
// meet only when a destination receives both (say RW 1.0 writes to an RW 2.0 destination);
// each switch between them then costs a round trip to the destination.
type relay struct {
	d          *destination
	lane       int // this lane's index: the shards are 0..lane-1
	limit      int // requests in flight at most, between minLimit and maxLimit (see resize)
	minLimit   int
	maxLimit   int
	boundAt    time.Time     // since when the next record waits for a free slot alone; zero when not
	bound      time.Duration // time records waited for a free slot alone since the limit last grew
	peak       int           // most requests in flight since shrunk
	shrunk     time.Time
	limitGauge atomic.Int64
	pos        pos // next record to read
	maybeUntil pos // records before it may have been sent before the last restart
	lastEnc    pos // end of the newest encoded record read: the shards must deliver up to it first

	r        segReader
	inflight []*relayReq // dispatched and not delivered, in queue order
	running  int         // requests whose goroutine has not reported yet
	results  chan *relayReq
	prog     *progressFile
	saved    shardProgress
	minBack  time.Duration
	maxBack  time.Duration
}

type relayReq struct {
	start, end pos
	rec        passRec
	maybe      bool
	delivered  bool // delivered or dropped; false when the run ended first
}

// Concurrency. The relay starts with as many requests in flight as the destination has
// shards, and adds one each time records have waited relayGrowAfter in all for a free slot,
// with nothing else holding them back, without the relay catching up with the queue
// meanwhile: a destination far away needs more requests in flight to keep up than one next
// door. It never goes past max(shards, queue_config.max_shards), and every
// relayShrinkEvery it comes back down to the most requests it had in flight meanwhile (never
// below shards).
const (
	relayGrowAfter   = 100 * time.Millisecond
	relayShrinkEvery = 30 * time.Second
)

func newRelay(d *destination, lane int, start, maybeUntil pos, pf *progressFile) *relay {
	qc := d.rw.QueueConfig
	lo := d.opts.shards
	hi := max(lo, qc.MaxShards)
	r := &relay{
		d: d, lane: lane, limit: lo, minLimit: lo, maxLimit: hi, shrunk: time.Now(),
		pos: start, maybeUntil: maybeUntil, lastEnc: start,
		results: make(chan *relayReq, hi), prog: pf,
		saved:   shardProgress{done: start, attempted: maybeUntil, shards: d.lanes},
		minBack: max(time.Duration(qc.MinBackoff), time.Millisecond),
		maxBack: max(time.Duration(qc.MaxBackoff), time.Duration(qc.MinBackoff), time.Millisecond),
	}
	r.limitGauge.Store(int64(lo))
	return r
}

// resize grows the limit once records held back by it alone (slotBound: the next record
// now) have waited relayGrowAfter in all, and shrinks it to the peak in flight every
// relayShrinkEvery. caughtUp (the relay has read the whole queue) starts the count again.
func (r *relay) resize(slotBound, caughtUp bool, now time.Time) {
	if !r.boundAt.IsZero() {
		r.bound += now.Sub(r.boundAt)
		r.boundAt = time.Time{}
	}
	if slotBound {
		r.boundAt = now
	}
	if caughtUp {
		r.bound = 0
	}
	if r.bound >= relayGrowAfter && r.limit < r.maxLimit {
		r.limit++
		r.bound = 0
		r.limitGauge.Store(int64(r.limit))
	}
	if now.Sub(r.shrunk) >= relayShrinkEvery {
		if r.peak < r.limit {
			r.limit = max(r.minLimit, r.peak)
			r.limitGauge.Store(int64(r.limit))
		}
		r.peak, r.shrunk = r.running, now
	}
}

// done is the lane's done position: the oldest record in flight, or the read position.
func (r *relay) done() pos {
	if len(r.inflight) > 0 {
		return r.inflight[0].start
	}
	return r.pos
}

func (r *relay) report() { r.d.q.progress(r.lane, r.pos, r.done()) }

// run reads and sends until ctx ends, or, once drain is closed, until everything queued is
// sent. Requests in flight when ctx ends are abandoned: they stay queued.
func (r *relay) run(ctx context.Context, drain <-chan struct{}) {
	defer r.r.close()
	defer r.persist(true)
	defer func() {
		for r.running > 0 {
			r.complete(<-r.results)
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	grow := time.NewTimer(time.Hour)
	grow.Stop()
	draining := false
	var next *relayReq // read, waiting to be sent
	for ctx.Err() == nil {
		var drainC <-chan struct{}
		if !draining {
			drainC = drain
		}
		if next == nil {
			data, start, end, wait, err := r.d.q.next(&r.r, r.pos)
			switch {
			case errors.Is(err, errCorrupt):
				r.skip(end)
				continue
			case data == nil:
				if draining && r.running == 0 {
					return
				}
				r.resize(false, true, time.Now())
				select {
				case <-ctx.Done():
				case <-wait:
				case res := <-r.results:
					r.complete(res)
				case <-drainC:
					draining = true
				case <-tick.C:
					r.persist(r.d.opts.fsync == FsyncAlways)
				}
				continue
			case !isPass(data):
				r.lastEnc = end
				r.skip(end)
				continue
			}
			rec, err := parsePass(data)
			if err != nil {
				if sup, ok := r.d.logs.allow("corrupt"); ok {
					r.d.logger.Warn("forward queue record does not decode; skipping it", "err", err, "suppressed_logs", sup)
				}
				r.skip(end)
				continue
			}
			if maxAge := r.d.opts.maxAge; maxAge > 0 && recordTime(data) < r.d.f.now().Add(-maxAge).UnixMilli() {
				r.d.drop("max_age", int64(rec.samples))
				r.skip(end)
				continue
			}
			next = &relayReq{start: start, end: end, rec: rec, maybe: start < r.maybeUntil}
		}
		// next goes once a request slot is free, no request in flight shares a series with
		// it, and the shards have delivered the encoded records before it.
		var barrier <-chan struct{}
		free, meets := r.running < r.limit, r.meets(next)
		slotBound := !free && !meets
		r.resize(slotBound, false, time.Now())
		ready := free && !meets
		if ready {
			var ok bool
			if ok, barrier = r.d.q.doneBy(0, r.lane, r.lastEnc); !ok {
				ready = false
				r.d.askFlush(r.lastEnc)
			}
		}
		if ready {
			r.dispatch(ctx, next)
			next = nil
			continue
		}
		var growC <-chan time.Time
		if slotBound && r.limit < r.maxLimit {
			grow.Reset(relayGrowAfter)
			growC = grow.C
		}
		select {
		case <-ctx.Done():
		case res := <-r.results:
			r.complete(res)
		case <-barrier:
		case <-growC:
		case <-drainC:
			draining = true
		case <-tick.C:
			r.persist(r.d.opts.fsync == FsyncAlways)
		}
		grow.Stop()
	}
}

// skip moves past a record the relay does not send.
func (r *relay) skip(end pos) {
	r.pos = end
	r.report()
}

// meets reports whether a request in flight shares a series key with q.
func (r *relay) meets(q *relayReq) bool {
	for _, f := range r.inflight {
		if keysMeet(f.rec.keys, q.rec.keys) {
			return true
		}
	}
	return false
}

// dispatch sends q on a goroutine of its own, having written ahead that it is attempted.
func (r *relay) dispatch(ctx context.Context, q *relayReq) {
	r.inflight = append(r.inflight, q)
	r.running++
	r.pos = q.end
	r.report()
	if q.end > r.saved.attempted {
		// Write ahead that the record is attempted (see progress.go). The relay sends every
		// record apart from the others, so the mark only decides how a resend refused after a
		// restart is counted (resend_refused rather than http_<code>): unlike a shard's, it
		// is not fsynced before the send, only with the periodic save.
		r.saved = shardProgress{done: r.done(), attempted: q.end, shards: r.d.lanes}
		r.d.saveProgress(r.prog, r.saved, false)
	}
	r.peak = max(r.peak, r.running)
	go func() {
		q.delivered = r.d.deliver(ctx, q.rec.body, int64(q.rec.samples), int64(q.rec.exemplars), q.maybe, r.minBack, r.maxBack)
		r.results <- q
	}()
}

// complete takes a request's outcome: delivered (or dropped) requests leave the in-flight
// list; abandoned ones stay, keeping the done position before them.
func (r *relay) complete(q *relayReq) {
	r.running--
	if q.delivered {
		r.inflight = slices.DeleteFunc(r.inflight, func(x *relayReq) bool { return x == q })
		r.report()
	}
}

// persist saves the done position when it moved since the last save.
func (r *relay) persist(sync bool) {
	if r.prog == nil {
		return
	}
	sp := shardProgress{done: r.done(), attempted: max(r.done(), r.saved.attempted), shards: r.d.lanes}
	if sp == r.saved {
		return
	}
	if r.d.saveProgress(r.prog, sp, sync) {
		r.saved = sp
	}
}

func (r *relay) closeProgress() error {
	if r.prog == nil {
		return nil
	}
	err := r.prog.close()
	r.prog = nil
	return err
}
