package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// Client sends one encoded remote-write body. *remotewrite.Client implements it.
type Client interface {
	Protocol() remotewrite.Protocol
	// Send returns nil when the body was accepted, a *remotewrite.RecoverableError when it may
	// be sent again, and any other error when it must be dropped.
	Send(ctx context.Context, body []byte) error
}

// SenderOptions configures a Sender. Zero values mean the defaults written beside them.
type SenderOptions struct {
	Client Client // required
	// Interval between batches: everything appended during one interval goes out as one
	// request. 1 s when zero.
	Interval time.Duration
	// MaxBufferSamples bounds the samples held, sent or not yet encoded. When a new batch
	// would exceed it, the oldest batches are dropped (counted with reason "buffer_full").
	// 1,000,000 when zero (about 17 minutes of a node producing 1,000 samples a second).
	MaxBufferSamples int
	// MinBackoff and MaxBackoff bound the wait between retries of a failed request; it
	// doubles from MinBackoff after each failure. 100 ms and 5 s when zero.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After can make the sender wait. 1 m when zero.
	MaxRetryAfter time.Duration
	// FlushTimeout bounds the final attempt, at shutdown, to send what is buffered. 5 s when zero.
	FlushTimeout time.Duration
	Logger       *slog.Logger          // slog.DiscardHandler when nil
	Registerer   prometheus.Registerer // metrics are not registered when nil
}

type batch struct {
	seq     uint64
	body    []byte
	samples int
}

// Sender buffers series appended by collectors, encodes them once per interval into one
// remote-write request, and sends the requests in order with one in flight. A request that
// fails with a network error, a 5xx or a 429 is retried (the same request, so order is kept)
// after a capped exponential backoff or the server's Retry-After; one refused with another
// status is dropped and counted. While it retries, new batches queue behind it up to
// MaxBufferSamples; the oldest are dropped beyond that.
//
// Lock order: mu is the only lock.
type Sender struct {
	o       SenderOptions
	log     *slog.Logger
	metrics *senderMetrics

	mu       sync.Mutex
	pending  []remotewrite.Series // appended since the last batch
	npending int
	queue    []batch // encoded, oldest first
	nqueued  int
	seq      uint64
	wake     chan struct{} // buffered(1): a batch was queued
	lastLog  time.Time     // last drop log line (throttled)
}

// NewSender validates o and returns a sender; it starts nothing.
func NewSender(o SenderOptions) (*Sender, error) {
	if o.Client == nil {
		return nil, errors.New("sender: no client")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, time.Second)
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
	def(&o.MaxRetryAfter, time.Minute)
	def(&o.FlushTimeout, 5*time.Second)
	if o.MaxBufferSamples <= 0 {
		o.MaxBufferSamples = 1_000_000
	}
	if o.MinBackoff > o.MaxBackoff {
		return nil, fmt.Errorf("sender: min backoff %v is above max backoff %v", o.MinBackoff, o.MaxBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := newSenderMetrics(o.Registerer)
	m.capacity.Set(float64(o.MaxBufferSamples))
	return &Sender{o: o, log: o.Logger, metrics: m, wake: make(chan struct{}, 1)}, nil
}

// Append hands series to the sender, which owns them from then on. It never blocks on the
// network: when the buffer is full the oldest samples are dropped and counted.
func (s *Sender) Append(series []remotewrite.Series) {
	n := 0
	for i := range series {
		n += len(series[i].Samples)
	}
	s.mu.Lock()
	s.pending = append(s.pending, series...)
	s.npending += n
	s.trimLocked()
	s.mu.Unlock()
}

// Buffered returns the samples held: appended and not yet batched, plus batched and unsent.
func (s *Sender) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.npending + s.nqueued
}

// Run batches every interval and ships batches until ctx ends, then encodes what is pending
// and tries once, within FlushTimeout, to send everything still buffered.
func (s *Sender) Run(ctx context.Context) error {
	shipCtx, stopShip := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.ship(shipCtx) })

	tick := time.NewTicker(s.o.Interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			s.cut()
		}
	}
	stopShip()
	wg.Wait()
	s.cut()
	s.flush()
	return nil
}

// cut encodes the pending series into one batch and queues it.
func (s *Sender) cut() {
	s.mu.Lock()
	series, n := s.pending, s.npending
	s.pending, s.npending = nil, 0
	s.mu.Unlock()
	if n == 0 {
		return
	}
	series = mergeSeries(series)
	body, encoded, err := remotewrite.Encode(s.o.Client.Protocol(), series)
	if err != nil { // only a bug can get here: count it as dropped and say why
		s.metrics.dropped.WithLabelValues("encode").Add(float64(n))
		s.log.Error("cannot encode batch; dropped", "samples", n, "err", err)
		return
	}
	s.mu.Lock()
	s.seq++
	s.queue = append(s.queue, batch{seq: s.seq, body: body, samples: encoded})
	s.nqueued += encoded
	s.trimLocked()
	s.mu.Unlock()
	s.metrics.batches.Inc()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// trimLocked drops the oldest batches, then the oldest pending series, until the buffer holds
// at most MaxBufferSamples.
func (s *Sender) trimLocked() {
	dropped := 0
	for s.npending+s.nqueued > s.o.MaxBufferSamples && len(s.queue) > 0 {
		b := s.queue[0]
		s.queue[0] = batch{}
		s.queue = s.queue[1:]
		s.nqueued -= b.samples
		dropped += b.samples
	}
	for s.npending > s.o.MaxBufferSamples && len(s.pending) > 0 {
		n := len(s.pending[0].Samples)
		s.pending[0] = remotewrite.Series{}
		s.pending = s.pending[1:]
		s.npending -= n
		dropped += n
	}
	s.metrics.buffered.Set(float64(s.npending + s.nqueued))
	if dropped > 0 {
		s.metrics.dropped.WithLabelValues("buffer_full").Add(float64(dropped))
		if now := time.Now(); now.Sub(s.lastLog) > 10*time.Second {
			s.lastLog = now
			s.log.Warn("buffer full: dropped the oldest samples", "dropped", dropped,
				"max_buffer_samples", s.o.MaxBufferSamples, "flag", "--gateway.buffer-samples")
		}
	}
}

func (s *Sender) head() (batch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return batch{}, false
	}
	return s.queue[0], true
}

// pop removes batch seq if it is still at the head (trimming may have dropped it meanwhile).
func (s *Sender) pop(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 && s.queue[0].seq == seq {
		s.nqueued -= s.queue[0].samples
		s.queue[0] = batch{}
		s.queue = s.queue[1:]
		if len(s.queue) == 0 {
			s.queue = nil // let the backing array go after an outage
		}
	}
	s.metrics.buffered.Set(float64(s.npending + s.nqueued))
}

// ship sends the head batch until it is accepted or dropped, then the next, until ctx ends.
func (s *Sender) ship(ctx context.Context) {
	backoff := s.o.MinBackoff
	failing := false
	for ctx.Err() == nil {
		b, ok := s.head()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		start := time.Now()
		err := s.o.Client.Send(ctx, b.body)
		s.metrics.duration.Observe(time.Since(start).Seconds())
		if err == nil {
			s.pop(b.seq)
			s.metrics.sent.Add(float64(b.samples))
			s.metrics.requests.WithLabelValues("success").Inc()
			if failing {
				s.log.Info("gateway reachable again", "buffered_samples", s.Buffered())
				failing = false
			}
			backoff = s.o.MinBackoff
			continue
		}
		if ctx.Err() != nil {
			return // shutting down: the batch stays for the flush
		}
		re, ok := remotewrite.IsRecoverable(err)
		if !ok {
			s.pop(b.seq)
			s.metrics.requests.WithLabelValues("rejected").Inc()
			s.metrics.dropped.WithLabelValues("rejected").Add(float64(b.samples))
			s.log.Error("gateway refused a batch; dropped", "samples", b.samples, "err", err)
			continue
		}
		s.metrics.requests.WithLabelValues("retry").Inc()
		s.metrics.retries.Inc()
		wait := backoff
		if re.RetryAfter > 0 {
			wait = min(re.RetryAfter, s.o.MaxRetryAfter)
		}
		backoff = min(2*backoff, s.o.MaxBackoff)
		if !failing {
			s.log.Warn("cannot send to gateway; buffering and retrying", "err", err, "retry_in", wait)
			failing = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// flush tries each buffered batch once, in order, within FlushTimeout.
func (s *Sender) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.FlushTimeout)
	defer cancel()
	sent, lost := 0, 0
	for {
		b, ok := s.head()
		if !ok {
			break
		}
		err := s.o.Client.Send(ctx, b.body)
		s.pop(b.seq)
		if err != nil {
			lost += b.samples
			continue
		}
		sent += b.samples
		s.metrics.sent.Add(float64(b.samples))
	}
	if lost > 0 {
		s.metrics.dropped.WithLabelValues("shutdown").Add(float64(lost))
		s.log.Warn("shutdown: could not send every buffered sample", "sent", sent, "dropped", lost)
	} else if sent > 0 {
		s.log.Info("shutdown: flushed buffer", "samples", sent)
	}
}

// mergeSeries folds samples of the same series (a collector faster than the send interval)
// into one series, keeping first-appearance order and, within a series, append order.
func mergeSeries(in []remotewrite.Series) []remotewrite.Series {
	idx := make(map[string]int, len(in))
	out := in[:0]
	var sb strings.Builder
	for _, s := range in {
		sb.Reset()
		for _, l := range s.Labels {
			sb.WriteString(l.Name)
			sb.WriteByte(0xff)
			sb.WriteString(l.Value)
			sb.WriteByte(0xff)
		}
		k := sb.String()
		if i, ok := idx[k]; ok {
			out[i].Samples = append(out[i].Samples, s.Samples...)
			continue
		}
		idx[k] = len(out)
		out = append(out, s)
	}
	return out
}

type senderMetrics struct {
	sent     prometheus.Counter
	dropped  *prometheus.CounterVec
	requests *prometheus.CounterVec
	retries  prometheus.Counter
	batches  prometheus.Counter
	buffered prometheus.Gauge
	capacity prometheus.Gauge
	duration prometheus.Histogram
}

func newSenderMetrics(reg prometheus.Registerer) *senderMetrics {
	m := &senderMetrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_probe_samples_sent_total", Help: "Samples the gateway accepted."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_probe_samples_dropped_total",
			Help: "Samples dropped, by reason: buffer_full (oldest dropped to stay within --gateway.buffer-samples), rejected (a 4xx other than 429), shutdown (unsent when the flush at exit ended), encode."},
			[]string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_probe_requests_total", Help: "Remote-write requests by result: success, retry, rejected."},
			[]string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_probe_send_retries_total", Help: "Requests that failed recoverably and will be sent again."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_probe_batches_total", Help: "Batches encoded (one per interval with samples)."}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eagle_eye_probe_buffer_samples", Help: "Samples held in memory, waiting or being sent."}),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eagle_eye_probe_buffer_capacity_samples", Help: "The most samples the buffer holds (--gateway.buffer-samples)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eagle_eye_probe_send_duration_seconds", Help: "Time taken by one remote-write request.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}),
	}
	for _, r := range []string{"buffer_full", "rejected", "shutdown", "encode"} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{"success", "retry", "rejected"} {
		m.requests.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.dropped, m.requests, m.retries, m.batches, m.buffered, m.capacity, m.duration)
	}
	return m
}
