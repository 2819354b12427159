package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// Options configures a Forwarder.
type Options struct {
	// Config holds the destinations and queue options; nil or no destinations makes a
	// Forwarder that accepts every write and forwards nothing.
	Config *Config
	// Dir is the queue root: each destination queues under Dir/<name> unless its queue_dir
	// says otherwise. Required when there is a destination without queue_dir.
	Dir        string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// CPUs sizes the default shard count (2 × CPUs, within min_shards and max_shards); 0 means
	// GOMAXPROCS. A process that runs spare Go processors passes its CPU count: more shards
	// than that only cost CPU (each reads every record) against a destination that keeps up.
	CPUs int
}

// Forwarder is an ingest.Sink that queues everything written to it, durably, for each
// destination, and sends the queues to the destinations. See the package documentation.
type Forwarder struct {
	logger *slog.Logger
	now    func() time.Time
	dests  []*destination
	m      *metrics

	writeMu sync.RWMutex // Write holds it shared; Shutdown exclusively to stop writes
	closing bool

	runMu     sync.Mutex
	started   bool
	cancelRun context.CancelFunc
	drain     chan struct{}
	runDone   chan struct{}
	closed    bool
}

// destination is one remote_write entry with its queue and senders.
type destination struct {
	f      *Forwarder
	name   string
	url    string
	rw     *config.RemoteWriteConfig
	opts   resolved
	q      *queue
	proc   *processor
	client remote.WriteClient
	v2     bool
	shards []*shard
	relay  *relay
	lanes  int // shards + the relay: the progress files and the queue's read positions
	logger *slog.Logger

	flushMu sync.Mutex
	flushTo pos           // the relay waits for the shards to deliver everything before it
	flushC  chan struct{} // closed when flushTo moves
	logs    throttle

	enqueued, passed, transcoded, sent, sentEx, retried prometheus.Counter
	latency                                             prometheus.Observer
	durableWait                                         prometheus.Observer

	lastSuccess       atomic.Int64 // unix ns
	sentSamples       atomic.Int64
	passedSamples     atomic.Int64
	transcodedSamples atomic.Int64
	retriedSamps      atomic.Int64
	mu                sync.Mutex
	dropped           map[string]int64
	lastErr           string
	lastErrAt         time.Time
	requestCounts     map[string]int64
}

// New validates the configuration, recovers every destination's queue from disk (truncating a
// torn tail) and builds the senders. It starts no goroutine: Run does.
func New(o Options) (*Forwarder, error) {
	f := &Forwarder{logger: o.Logger, now: o.Now, drain: make(chan struct{}), runDone: make(chan struct{})}
	if f.logger == nil {
		f.logger = slog.New(slog.DiscardHandler)
	}
	f.logger = f.logger.With("component", "forward")
	if f.now == nil {
		f.now = time.Now
	}
	cfg := o.Config
	if cfg == nil {
		cfg = &Config{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f.m = newMetrics(o.Registerer, f)
	for _, rw := range cfg.RemoteWrite {
		d, err := f.newDestination(cfg, rw, o.Dir, o.CPUs)
		if err != nil {
			f.closeQueues()
			return nil, err
		}
		proto := ingest.V1
		if d.v2 {
			proto = ingest.V2
		}
		d.proc = newProcessor(d.q, proto, rw.WriteRelabelConfigs, rw.SendNativeHistograms, rw.SendExemplars, rw.MetadataConfig.Send, d.opts.downsample)
		f.dests = append(f.dests, d)
	}
	return f, nil
}

func (f *Forwarder) newDestination(cfg *Config, rw *config.RemoteWriteConfig, baseDir string, cpus int) (*destination, error) {
	name := DestinationName(rw)
	opts := cfg.resolve(name, baseDir, rw, cpus)
	if opts.dir == "" {
		return nil, fmt.Errorf("destination %s: no queue directory: set the forward queue directory (or forward.destinations.%s.queue_dir)", name, name)
	}
	d := &destination{
		f: f, name: name, rw: rw, opts: opts, url: rw.URL.Redacted(),
		v2:            rw.ProtobufMessage == remoteapi.WriteV2MessageType,
		lanes:         opts.shards + 1,
		flushC:        make(chan struct{}),
		logger:        f.logger.With("destination", name),
		dropped:       map[string]int64{},
		requestCounts: map[string]int64{},
		enqueued:      f.m.enqueued.WithLabelValues(name),
		passed:        f.m.passed.WithLabelValues(name),
		transcoded:    f.m.transcoded.WithLabelValues(name),
		sent:          f.m.sent.WithLabelValues(name),
		sentEx:        f.m.sentEx.WithLabelValues(name),
		retried:       f.m.retried.WithLabelValues(name),
		latency:       f.m.sendLatency.WithLabelValues(name),
		durableWait:   f.m.fsyncWait.WithLabelValues(name),
	}
	// The drop counters exist from the start, at 0, so that "nothing dropped" is a value
	// and not an absent series.
	for _, r := range fixedDropReasons {
		f.m.dropped.WithLabelValues(name, r)
	}
	if rw.QueueConfig.SampleAgeLimit != 0 {
		d.logger.Warn("queue_config.sample_age_limit is not applied by the forwarder; use forward max_age")
	}
	// We retry 429 whatever retry_on_http_429 says: the queue is durable and a dropped batch
	// would break the promise the 2xx made.
	client, err := remote.NewWriteClient(name, &remote.ClientConfig{
		URL:              rw.URL,
		Timeout:          rw.RemoteTimeout,
		HTTPClientConfig: rw.HTTPClientConfig,
		SigV4Config:      rw.SigV4Config,
		AzureADConfig:    rw.AzureADConfig,
		GoogleIAMConfig:  rw.GoogleIAMConfig,
		Headers:          rw.Headers,
		RetryOnRateLimit: true,
		WriteProtoMsg:    rw.ProtobufMessage,
		RoundRobinDNS:    rw.RoundRobinDNS,
	})
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", name, err)
	}
	if c, ok := client.(*remote.Client); ok {
		c.Client.Transport = &captureTransport{next: c.Client.Transport}
	}
	d.client = client
	q, err := openQueue(queueOptions{
		dir: opts.dir, segBytes: opts.segmentBytes, maxBytes: opts.maxBytes, maxAge: opts.maxAge,
		memLimit: opts.memoryBytes, logger: d.logger, onDrop: d.drop,
	})
	if err != nil {
		return nil, fmt.Errorf("destination %s: queue %s: %w", name, opts.dir, err)
	}
	d.q = q
	start, maybe := startPositions(loadProgress(opts.dir), d.lanes)
	q.setShards(start)
	for i := range d.lanes {
		pf, err := openProgress(opts.dir, i, d.lanes)
		if err != nil {
			d.closeShards()
			q.close()
			return nil, fmt.Errorf("destination %s: %w", name, err)
		}
		saved := shardProgress{done: start[i], attempted: maybe[i], shards: d.lanes}
		if i < opts.shards {
			d.shards = append(d.shards, newShard(d, i, start[i], maybe[i], pf))
		} else {
			d.relay = newRelay(d, i, start[i], maybe[i], pf)
		}
		if err := pf.write(saved, true); err != nil {
			d.closeShards()
			q.close()
			return nil, fmt.Errorf("destination %s: save progress: %w", name, err)
		}
	}
	st := q.stats()
	d.logger.Info("forward queue opened", "dir", opts.dir, "url", d.url, "shards", opts.shards,
		"pending_records", st.PendingRecs, "pending_samples", st.PendingSamps, "fsync", opts.fsync)
	return d, nil
}

// drop counts samples that will never be delivered, and logs (throttled).
// fixedDropReasons are the reasons of eagle_eye_forward_dropped_samples_total other than
// http_<code>.
var fixedDropReasons = []string{"max_queue_bytes", "max_age", "rw2_unconfirmed", "out_of_order", "resend_refused", "undefined_series", "encode"}

func (d *destination) drop(reason string, n int64) {
	if n <= 0 {
		return
	}
	d.f.m.dropped.WithLabelValues(d.name, reason).Add(float64(n))
	d.mu.Lock()
	d.dropped[reason] += n
	d.mu.Unlock()
	if sup, ok := d.logs.allow("drop/" + reason); ok {
		d.logger.Warn("forward dropped samples", "reason", reason, "samples", n, "suppressed_logs", sup)
	}
}

func (d *destination) setError(err error) {
	d.mu.Lock()
	d.lastErr, d.lastErrAt = err.Error(), d.f.now()
	d.mu.Unlock()
}

// Write implements ingest.Sink: it appends the request, as each destination keeps it, to every
// destination's queue and returns once it is durable there (per the fsync policy). It never
// waits for a destination, only for the disk (and for concurrent writes' encoding into the
// same queue, which is serialised). The Stats are the request's: everything in it
// was accepted, including what relabelling or downsampling chose not to forward.
func (f *Forwarder) Write(ctx context.Context, req *ingest.Request) (ingest.Stats, error) {
	var st ingest.Stats
	md := len(req.Metadata) > 0
	for i := range req.Series {
		s := &req.Series[i]
		st.Samples += len(s.Samples)
		st.Histograms += len(s.Histograms)
		st.Exemplars += len(s.Exemplars)
		md = md || !s.Metadata.IsEmpty()
	}
	if len(f.dests) == 0 {
		return st, nil
	}
	f.writeMu.RLock()
	defer f.writeMu.RUnlock()
	if f.closing {
		return ingest.Stats{}, errors.New("forwarder is shutting down")
	}
	nowMs := f.now().UnixMilli()
	type pending struct {
		d   *destination
		seq uint64
	}
	var waits [4]pending
	toSync := waits[:0]
	for _, d := range f.dests {
		var (
			seq uint64
			n   int
			ok  bool
			err error
		)
		switch {
		case d.proc.canPass(req, st, md):
			seq, n, err = d.proc.writePass(req, st, nowMs)
			ok = true
			d.passed.Add(float64(n))
			d.passedSamples.Add(int64(n))
		case d.proc.canTranscode(req, st):
			seq, n, err = d.proc.writeTranscoded(req, st, nowMs)
			ok = true
			d.transcoded.Add(float64(n))
			d.transcodedSamples.Add(int64(n))
		default:
			seq, n, ok, err = d.proc.write(req, nowMs)
		}
		if err != nil {
			return ingest.Stats{}, queueError(d.name, err)
		}
		if !ok {
			continue
		}
		d.enqueued.Add(float64(n))
		if d.opts.fsync == FsyncAlways {
			toSync = append(toSync, pending{d, seq})
		}
	}
	switch len(toSync) {
	case 0:
	case 1:
		p := toSync[0]
		if err := p.d.waitDurable(p.seq); err != nil {
			return ingest.Stats{}, queueError(p.d.name, err)
		}
	default:
		errs := make([]error, len(toSync))
		var wg sync.WaitGroup
		for i, p := range toSync {
			wg.Go(func() {
				if err := p.d.waitDurable(p.seq); err != nil {
					errs[i] = queueError(p.d.name, err)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return ingest.Stats{}, err
		}
	}
	return st, nil
}

func (d *destination) waitDurable(seq uint64) error {
	start := time.Now()
	err := d.q.waitDurable(seq)
	d.durableWait.Observe(time.Since(start).Seconds())
	return err
}

// queueError classes a queue failure: a full disk is overload (503, the sender retries later),
// anything else is the gateway's own fault (500).
func queueError(name string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: forward queue %s: %v", ingest.ErrOverloaded, name, err)
	}
	return fmt.Errorf("forward queue %s: %w", name, err)
}

// Run sends every destination's queue until Shutdown or Close has drained and stopped the
// senders, or until ctx ends (a hard stop: in-flight requests are abandoned and resent after
// a restart). It returns nil then. Run may be called once.
func (f *Forwarder) Run(ctx context.Context) error {
	f.runMu.Lock()
	if f.started || f.closed {
		f.runMu.Unlock()
		return errors.New("forwarder: Run called twice or after Close")
	}
	f.started = true
	ctx, cancel := context.WithCancel(ctx)
	f.cancelRun = cancel
	f.runMu.Unlock()
	defer cancel()

	var shards, helpers sync.WaitGroup
	helperCtx, stopHelpers := context.WithCancel(context.WithoutCancel(ctx))
	for _, d := range f.dests {
		for _, s := range d.shards {
			shards.Go(func() { s.run(ctx, f.drain) })
		}
		shards.Go(func() { d.relay.run(ctx, f.drain) })
		helpers.Go(func() { d.housekeeping(helperCtx) })
	}
	for _, d := range f.dests {
		if d.proc.ds != nil {
			helpers.Go(func() { d.flushDownsampling(helperCtx) })
		}
	}
	shards.Wait()
	stopHelpers()
	helpers.Wait()
	close(f.runDone)
	return nil
}

// housekeeping deletes sent segments, enforces the age bound and runs the interval fsync.
func (d *destination) housekeeping(ctx context.Context) {
	maint := time.NewTicker(time.Second)
	defer maint.Stop()
	var syncC <-chan time.Time
	if d.opts.fsync == FsyncInterval {
		t := time.NewTicker(d.opts.fsyncInterval)
		defer t.Stop()
		syncC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-maint.C:
			d.q.maintain(d.f.now())
		case <-syncC:
			if err := d.q.syncNow(); err != nil {
				if sup, ok := d.logs.allow("fsync"); ok {
					d.logger.Error("forward queue fsync failed", "err", err, "suppressed_logs", sup)
				}
			}
		}
	}
}

// flushDownsampling sends the open intervals of series that went quiet.
func (d *destination) flushDownsampling(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.flushDownsampled(false)
		}
	}
}

// flushDownsampled appends the downsampler's closed intervals (all of them with everything).
func (d *destination) flushDownsampled(everything bool) {
	seq, n, ok, err := d.proc.flushDownsampled(d.f.now().UnixMilli(), everything)
	if err == nil && ok && d.opts.fsync == FsyncAlways {
		err = d.q.waitDurable(seq)
	}
	if err != nil {
		d.logger.Error("append downsampled samples", "err", err)
		return
	}
	d.enqueued.Add(float64(n))
}

// Shutdown stops accepting writes, sends the open downsampling intervals, and lets the senders
// drain the queues until they are empty or ctx ends; then it stops them, saves their positions
// and closes the queues. What was not sent stays queued for the next start.
func (f *Forwarder) Shutdown(ctx context.Context) error {
	f.writeMu.Lock()
	already := f.closing
	f.closing = true
	f.writeMu.Unlock()
	if already {
		<-f.runDone
		return nil
	}
	for _, d := range f.dests {
		if d.proc.ds != nil {
			d.flushDownsampled(true)
		}
	}
	f.runMu.Lock()
	started := f.started
	f.closed = true
	if started {
		close(f.drain)
	} else {
		close(f.runDone)
	}
	f.runMu.Unlock()
	if started {
		select {
		case <-f.runDone:
		case <-ctx.Done():
			f.runMu.Lock()
			f.cancelRun()
			f.runMu.Unlock()
			<-f.runDone
		}
	}
	return f.closeQueues()
}

// Close stops at once: what is not yet sent stays queued for the next start.
func (f *Forwarder) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return f.Shutdown(ctx)
}

func (f *Forwarder) closeQueues() error {
	var errs []error
	for _, d := range f.dests {
		errs = append(errs, d.closeShards())
		if d.q != nil {
			errs = append(errs, d.q.close())
		}
	}
	return errors.Join(errs...)
}

func (d *destination) closeShards() error {
	var errs []error
	for _, s := range d.shards {
		errs = append(errs, s.closeProgress())
	}
	if d.relay != nil {
		errs = append(errs, d.relay.closeProgress())
	}
	return errors.Join(errs...)
}

// askFlush asks the shards to send at once the batches holding records before p: the relay
// waits for them.
func (d *destination) askFlush(p pos) {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	if p > d.flushTo {
		d.flushTo = p
		close(d.flushC)
		d.flushC = make(chan struct{})
	}
}

// flushAsked returns the position askFlush asked for and a channel closed when it moves.
func (d *destination) flushAsked() (pos, <-chan struct{}) {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	return d.flushTo, d.flushC
}

// captureTransport records the status and Retry-After of each answer for the request's sender:
// Prometheus' client keeps Retry-After to itself.
type captureTransport struct{ next http.RoundTripper }

type respInfoKey struct{}

type respInfo struct {
	status     int
	retryAfter string
}

func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if info, ok := req.Context().Value(respInfoKey{}).(*respInfo); ok && resp != nil {
		info.status = resp.StatusCode
		info.retryAfter = resp.Header.Get("Retry-After")
	}
	return resp, err
}

// throttle lets one log line per key through every 10 seconds.
type throttle struct {
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func (t *throttle) allow(key string) (suppressed int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last, t.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if now.Sub(t.last[key]) < 10*time.Second {
		t.suppressed[key]++
		return 0, false
	}
	t.last[key] = now
	n := t.suppressed[key]
	t.suppressed[key] = 0
	return n, true
}

// errorText trims an error for status and logs.
func errorText(err error) string {
	s := err.Error()
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return strings.TrimSpace(s)
}
