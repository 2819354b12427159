package forward

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// maxRetryAfter caps a destination's Retry-After, so a bogus header cannot park a shard for days.
const maxRetryAfter = 10 * time.Minute

// shard sends the series whose hash falls on it (hash mod shards), reading the whole queue at
// its own position. A series always lands on the same shard and a shard sends one batch at a
// time, retrying it until it is delivered or refused, so each series' samples reach the
// destination in the order they were queued.
type shard struct {
	d          *destination
	idx, n     int
	pos        pos // next record to read
	done       pos // everything before it is delivered (or held nothing for this shard)
	maybeUntil pos // records before it may have been sent before the last restart
	lastPass   pos // end of the newest pass-through record read: the relay must deliver up to it first
	relayOK    pos // the relay has delivered everything before it

	r        segReader
	b        batch
	defs     *defTable // definitions of segment defsSeg's series (this shard's), and the segment's before
	defsSeg  uint32
	enc      *wireEncoder
	lastT    map[uint64]*int64
	prog     *progressFile
	saved    shardProgress
	savedAt  time.Time
	batchAt  time.Time
	lastTGC  time.Time
	maxBatch int
	deadline time.Duration
	minBack  time.Duration
	maxBack  time.Duration
}

func newShard(d *destination, idx int, start, maybeUntil pos, pf *progressFile) *shard {
	qc := d.rw.QueueConfig
	return &shard{
		d: d, idx: idx, n: d.opts.shards, pos: start, done: start, maybeUntil: maybeUntil, lastPass: start,
		enc: newWireEncoder(d.v2), defs: newDefTable(), lastT: map[uint64]*int64{}, prog: pf,
		saved:    shardProgress{done: start, attempted: maybeUntil, shards: d.lanes},
		maxBatch: qc.MaxSamplesPerSend, deadline: time.Duration(qc.BatchSendDeadline),
		minBack: max(time.Duration(qc.MinBackoff), time.Millisecond), maxBack: max(time.Duration(qc.MaxBackoff), time.Duration(qc.MinBackoff), time.Millisecond),
	}
}

// run reads and sends until ctx ends, or, once drain is closed, until the shard has sent
// everything queued.
func (s *shard) run(ctx context.Context, drain <-chan struct{}) {
	defer s.r.close()
	defer s.persist(true)
	draining := false
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		if !draining {
			select {
			case <-drain:
				draining = true
			default:
			}
		}
		data, start, end, wait, err := s.d.q.next(&s.r, s.pos)
		if errors.Is(err, errCorrupt) {
			s.advance(end)
			continue
		}
		if data != nil {
			if isPass(data) {
				s.lastPass = end
				s.advance(end)
				continue
			}
			if s.lastPass > s.relayOK {
				ok, relayC := s.d.q.doneBy(s.d.relay.lane, s.d.relay.lane+1, s.lastPass)
				if !ok {
					// The relay has pass-through records before this one to deliver. Send the
					// batch first: the relay may be waiting for it.
					if !s.b.empty() {
						if !s.send(ctx) {
							return
						}
						continue
					}
					select {
					case <-ctx.Done():
						return
					case <-relayC:
					case <-tick.C:
						s.persist(s.d.opts.fsync == FsyncAlways)
					}
					continue
				}
				s.relayOK = s.lastPass
			}
			if s.b.maybe && start >= s.maybeUntil && !s.b.empty() {
				if !s.send(ctx) {
					return
				}
			}
			s.add(data, start, end)
			if !s.b.empty() && (s.b.nSamples >= s.maxBatch || time.Since(s.batchAt) >= s.deadline || s.flushDue()) {
				if !s.send(ctx) {
					return
				}
			}
			if time.Since(s.savedAt) >= time.Second {
				s.persist(s.d.opts.fsync == FsyncAlways)
			}
			continue
		}
		// Caught up with the queue.
		if !s.b.empty() && (draining || time.Since(s.batchAt) >= s.deadline || s.flushDue()) {
			if !s.send(ctx) {
				return
			}
			continue
		}
		if draining && s.b.empty() {
			return
		}
		var deadlineC <-chan time.Time
		if !s.b.empty() {
			d := s.deadline - time.Since(s.batchAt)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			deadlineC = timer.C
		}
		var drainC <-chan struct{}
		if !draining {
			drainC = drain
		}
		_, flushC := s.d.flushAsked()
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-deadlineC:
		case <-flushC:
		case <-drainC:
			draining = true
		case <-tick.C:
			s.persist(s.d.opts.fsync == FsyncAlways)
			s.gcLastT()
		}
		if timer != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// flushDue reports whether the relay waits for the batch: it holds records before the
// position the relay asked for, and the shard has read up to it.
func (s *shard) flushDue() bool {
	to, _ := s.d.flushAsked()
	return s.done < to && s.pos >= to
}

// add takes the shard's part of one record into the batch.
func (s *shard) add(data []byte, start, end pos) {
	if start.seg() != s.defsSeg {
		s.prime(start)
	}
	if s.b.empty() {
		s.batchAt = time.Now()
	}
	maxAge := s.d.opts.maxAge
	skip := maxAge > 0 && recordTime(data) < s.d.f.now().Add(-maxAge).UnixMilli()
	res, err := s.b.addRecord(data, s.idx, s.n, s.defs, s.lastT, s.d.opts.dropOOO, skip)
	if err != nil {
		if sup, ok := s.d.logs.allow("corrupt"); ok {
			s.d.logger.Warn("forward queue record does not decode; its remaining series are skipped", "err", err, "suppressed_logs", sup)
		}
	}
	if skip {
		s.d.drop("max_age", int64(res.own))
	}
	s.d.drop("out_of_order", int64(res.ooo))
	s.d.drop("undefined_series", int64(res.undefined))
	if start < s.maybeUntil && !s.b.empty() {
		s.b.maybe = true
	}
	s.advance(end)
}

// prime starts the series definitions of start's segment, learning those of the records
// before start (a shard resuming in the middle of a segment).
func (s *shard) prime(start pos) {
	s.defs.next() // batches in flight keep their own pointers
	s.defsSeg = start.seg()
	var scratch batch
	for p := mkpos(start.seg(), segHdrLen); p < start; {
		data, at, end, wait, err := s.d.q.next(&s.r, p)
		if errors.Is(err, errCorrupt) {
			p = end
			continue
		}
		if wait != nil || at.seg() != start.seg() || at >= start {
			return
		}
		if isPass(data) {
			p = end
			continue
		}
		_, _ = scratch.addRecord(data, s.idx, s.n, s.defs, nil, false, true)
		p = end
	}
}

// advance moves the read position past a record; with nothing batched, done follows.
func (s *shard) advance(end pos) {
	s.pos = end
	s.b.end = end
	if s.b.empty() {
		s.done = end
	}
	s.d.q.progress(s.idx, s.pos, s.done)
}

// send delivers the batch, retrying until the destination takes or refuses it. It returns
// false only when ctx ended first; the batch then stays queued.
func (s *shard) send(ctx context.Context) bool {
	d := s.d
	// Write ahead what is about to be attempted, so that after a crash these records are sent
	// apart from newer ones (see progress.go).
	s.saved = shardProgress{done: s.done, attempted: s.b.end, shards: s.d.lanes}
	d.saveProgress(s.prog, s.saved, d.opts.fsync == FsyncAlways)
	s.savedAt = time.Now()
	n := int64(s.b.nSamples)
	body, err := s.enc.encode(&s.b)
	if err != nil {
		d.setError(err)
		d.drop("encode", n)
		s.finish()
		return true
	}
	if !d.deliver(ctx, body, n, int64(s.b.nExemplars), s.b.maybe, s.minBack, s.maxBack) {
		return false
	}
	s.finish()
	return true
}

// saveProgress writes a shard's (or the relay's) progress, logging a failure (throttled); it
// reports whether the write succeeded.
func (d *destination) saveProgress(pf *progressFile, sp shardProgress, sync bool) bool {
	if err := pf.write(sp, sync); err != nil {
		if sup, ok := d.logs.allow("progress"); ok {
			d.logger.Error("save forward progress", "err", err, "suppressed_logs", sup)
		}
		return false
	}
	return true
}

// deliver sends one request body, retrying until the destination takes or refuses it, and
// counts the outcome; samples and exemplars are what the body holds, maybe tells that it may
// have been sent before a restart. It returns false only when ctx ended first.
func (d *destination) deliver(ctx context.Context, body []byte, n, exemplars int64, maybe bool, minBack, maxBack time.Duration) bool {
	backoff := minBack
	for attempt := 0; ; attempt++ {
		info := &respInfo{}
		t0 := time.Now()
		rs, err := d.client.Store(context.WithValue(ctx, respInfoKey{}, info), body, attempt)
		d.latency.Observe(time.Since(t0).Seconds())
		code := "network"
		if info.status != 0 {
			code = strconv.Itoa(info.status)
		}
		d.f.m.requests.WithLabelValues(d.name, code).Inc()
		d.mu.Lock()
		d.requestCounts[code]++
		d.mu.Unlock()
		if err == nil && d.v2 && !rs.Confirmed && n+exemplars > 0 {
			err = errUnconfirmed
		}
		act, reason := classify(info.status, err)
		switch act {
		case actDone:
			d.sent.Add(float64(n))
			d.sentEx.Add(float64(exemplars))
			d.sentSamples.Add(n)
			d.lastSuccess.Store(time.Now().UnixNano())
			return true
		case actDrop:
			if maybe && reason != "rw2_unconfirmed" {
				reason = "resend_refused"
			}
			d.setError(err)
			if sup, ok := d.logs.allow("refused/" + code); ok {
				d.logger.Warn("destination refused a batch; dropping it", "code", code, "samples", n, "maybe_sent_before_restart", maybe, "err", errorText(err), "suppressed_logs", sup)
			}
			d.drop(reason, n)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d.setError(err)
		d.retried.Add(float64(n))
		d.retriedSamps.Add(n)
		wait := backoff
		if ra := retryAfter(info.retryAfter, time.Now()); ra > 0 {
			wait = min(ra, maxRetryAfter)
		}
		backoff = min(2*backoff, maxBack)
		if sup, ok := d.logs.allow("retry"); ok {
			d.logger.Warn("send failed; retrying", "code", code, "attempt", attempt+1, "wait", wait, "err", errorText(err), "suppressed_logs", sup)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// finish closes the batch: everything read so far is done.
func (s *shard) finish() {
	s.done = s.b.end
	s.b.reset()
	s.d.q.progress(s.idx, s.pos, s.done)
}

// persist saves the done position when it moved since the last save.
func (s *shard) persist(sync bool) {
	if s.prog == nil {
		return
	}
	sp := shardProgress{done: s.done, attempted: max(s.done, s.saved.attempted), shards: s.d.lanes}
	if sp.attempted <= sp.done {
		sp.attempted = sp.done
	}
	if sp == s.saved {
		return
	}
	if s.d.saveProgress(s.prog, sp, sync) {
		s.saved, s.savedAt = sp, time.Now()
	}
}

func (s *shard) closeProgress() error {
	if s.prog == nil {
		return nil
	}
	err := s.prog.close()
	s.prog = nil
	return err
}

// gcLastT forgets series not seen for an hour, so the out-of-order filter stays bounded.
func (s *shard) gcLastT() {
	now := time.Now()
	if now.Sub(s.lastTGC) < 10*time.Minute {
		return
	}
	s.lastTGC = now
	cut := now.Add(-time.Hour).UnixMilli()
	for h, t := range s.lastT {
		if *t < cut { // a definition still pointing at it keeps its value for its segment
			delete(s.lastT, h)
		}
	}
}

var errUnconfirmed = errors.New("2xx without X-Prometheus-Remote-Write-*-Written headers to an RW 2.0 request: the destination probably only speaks RW 1.0")

type action int

const (
	actDone action = iota
	actRetry
	actDrop
)

// classify is the retry policy, in one place:
//
//	2xx                   delivered (RW 2.0: only with Written headers, else dropped as rw2_unconfirmed)
//	5xx, 429, no answer   retried with capped exponential backoff, or after Retry-After
//	other 4xx (and 1xx/3xx) dropped and counted as http_<code>
func classify(status int, err error) (action, string) {
	switch {
	case errors.Is(err, errUnconfirmed):
		return actDrop, "rw2_unconfirmed"
	case err == nil:
		return actDone, ""
	case status == 0, status/100 == 5, status == http.StatusTooManyRequests:
		return actRetry, ""
	}
	return actDrop, "http_" + strconv.Itoa(status)
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return t.Sub(now)
	}
	return 0
}
