package hotseries

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// Options are a Publisher's dependencies.
type Options struct {
	// Config is the hot_series section; DefaultConfig() when it is the zero value.
	Config Config
	// DataDir holds the embedded NATS server's JetStream store (<DataDir>/nats) unless
	// Config.NATS.StoreDir is set; empty: a temporary directory, removed on Close.
	DataDir string
	// Logger; nil discards. Registerer; nil registers nothing.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Annotate, when set, adds string fields under "annotations" to each message, from other
	// gateway components: the gateway uses it to put the diagnosis of a node's devices into
	// the hardware group. It gets the group and the endpoint's identity labels, is called from
	// the publishing goroutines, and must be fast and safe for concurrent use.
	Annotate func(group string, endpoint map[string]string) map[string]string
	// AnnotateGroups limits Annotate to these groups (empty: every group), so that the
	// others do not build an identity map per message for nothing.
	AnnotateGroups []string

	// now and transports replace the clock and the transports in tests.
	now        func() time.Time
	transports []transport
}

// Publisher is the hot-series tap: an ingest.Sink that keeps the newest samples of the
// configured groups' series and publishes one message per endpoint to NATS (subject and
// JetStream KV) and ZeroMQ.
type Publisher struct {
	cfg                  Config
	dataDir              string
	logger               *slog.Logger
	log                  *throttle
	now                  func() time.Time
	id                   string
	groups               []*group
	cache                *seriesCache
	maxEndpoints         int
	maxSeriesPerEndpoint int
	kvEvery              int64 // nats.kv_update_interval, ns
	m                    *metrics
	annotate             func(group string, endpoint map[string]string) map[string]string

	mu         sync.Mutex // guards the lifecycle below
	started    bool
	closed     bool
	transports []transport
	nats       *natsTransport
	zmq        *zmqTransport
	running    sync.WaitGroup
	stop       chan struct{} // closed by Close
}

var _ ingest.Sink = (*Publisher)(nil)

// ErrClosed is returned by Start and Run after Close.
var ErrClosed = errors.New("hot-series publisher closed")

// New validates the configuration and builds a Publisher; it starts nothing. Write may be
// called at once; messages flow once Start (or Run) has run.
func New(opts Options) (*Publisher, error) {
	cfg := opts.Config
	if cfg.isZero() {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hot_series: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "hot-series")
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	p := &Publisher{
		cfg:                  cfg,
		dataDir:              opts.DataDir,
		logger:               logger,
		log:                  newThrottle(logger, 10*time.Second),
		now:                  opts.now,
		id:                   hex.EncodeToString(idb[:]),
		cache:                newSeriesCache(cmpOr(cfg.MaxCachedSeries, 1<<20)),
		maxEndpoints:         cmpOr(cfg.MaxEndpointsPerGroup, 10000),
		maxSeriesPerEndpoint: cmpOr(cfg.MaxSeriesPerEndpoint, 1024),
		transports:           opts.transports,
		kvEvery:              int64(cfg.NATS.KVUpdateInterval),
		stop:                 make(chan struct{}),
	}
	if p.now == nil {
		p.now = time.Now
	}
	if cfg.Enabled {
		for _, gc := range cfg.ResolvedGroups() {
			if errs := gc.validate("groups[" + gc.Name + "]"); len(errs) > 0 {
				return nil, fmt.Errorf("hot_series: %w", errors.Join(errs...))
			}
			g, err := compileGroup(gc)
			if err != nil {
				return nil, fmt.Errorf("hot_series: %w", err)
			}
			g.idx = len(p.groups)
			p.groups = append(p.groups, g)
		}
	}
	p.SetAnnotate(opts.Annotate, opts.AnnotateGroups...)
	names := []string{}
	if opts.transports != nil {
		for _, t := range opts.transports {
			names = append(names, t.name())
		}
	} else {
		if cfg.NATS.Enabled {
			names = append(names, "nats")
		}
		if cfg.ZMQ.Enabled {
			names = append(names, "zmq")
		}
	}
	m, err := newMetrics(reg, names, p.groups)
	if err != nil {
		return nil, fmt.Errorf("hot_series metrics: %w", err)
	}
	p.m = m
	return p, nil
}

func (c *Config) isZero() bool {
	return !c.Enabled && c.BuiltinGroups == nil && c.Groups == nil && c.NATS == (NATSConfig{}) && c.ZMQ == (ZMQConfig{}) &&
		c.MaxEndpointsPerGroup == 0 && c.MaxSeriesPerEndpoint == 0 && c.MaxCachedSeries == 0
}

// Start starts the embedded NATS server (or connects to the external one) and binds the
// ZeroMQ socket, so that a port in use fails here. An unreachable external NATS server does
// not fail Start: the publisher connects when it comes up. Start is a no-op when the
// publisher is disabled or already started.
func (p *Publisher) Start(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.started || !p.cfg.Enabled {
		p.started = true
		return nil
	}
	if p.transports == nil {
		if p.cfg.NATS.Enabled {
			t, err := startNATS(p.cfg.NATS, p.dataDir, p)
			if err != nil {
				return err
			}
			p.nats = t
			p.transports = append(p.transports, t)
		}
		if p.cfg.ZMQ.Enabled {
			t, err := startZMQ(p.cfg.ZMQ, p)
			if err != nil {
				p.closeTransports()
				return err
			}
			p.zmq = t
			p.transports = append(p.transports, t)
		}
	}
	p.started = true
	p.logger.Info("hot-series publisher started", "groups", len(p.groups), "nats", p.NATSURL(), "zmq", p.ZMQAddress())
	return nil
}

// Run starts the publisher if needed and publishes until ctx ends; it returns nil then. It
// does not close the transports: Close does.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.running.Add(len(p.groups))
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range p.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.running.Done()
			p.runGroup(ctx, g)
		}()
	}
	wg.Wait()
	return nil
}

// Close stops the publishing loops (Run returns), then the transports and the embedded
// server. Write keeps working after Close and publishes nothing.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	p.mu.Unlock()
	p.running.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closeTransports()
}

func (p *Publisher) closeTransports() error {
	var errs []error
	for _, t := range p.transports {
		if err := t.close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", t.name(), err))
		}
	}
	p.transports = nil
	return errors.Join(errs...)
}

// NATSURL is where routers connect to NATS: the embedded server's address (empty when it
// does not listen, or before Start), or the configured external URL.
func (p *Publisher) NATSURL() string {
	if p.nats == nil {
		return ""
	}
	return p.nats.url()
}

// EmbeddedNATSURL is the embedded server's client URL, empty when NATS is external, not
// listening, or not started.
func (p *Publisher) EmbeddedNATSURL() string {
	if p.nats == nil || p.nats.srv == nil {
		return ""
	}
	return p.nats.url()
}

// ZMQAddress is the bound ZeroMQ endpoint (with the port chosen for port 0); empty before
// Start or when ZeroMQ is off.
func (p *Publisher) ZMQAddress() string {
	if p.zmq == nil {
		return ""
	}
	return p.zmq.addr()
}

func (p *Publisher) drop(r dropReason, n int) {
	p.m.dropped[r].Add(float64(n))
}

// ErrNoNATS is returned by Publish when NATS publishing is off.
var ErrNoNATS = errors.New("hot series: NATS publishing is off")

// Publish sends one message on subject over the publisher's NATS connection (embedded or
// external, with its credentials and reconnect buffering), for other gateway components
// such as diagnosis reports. It does not wait for delivery.
func (p *Publisher) Publish(_ context.Context, subject string, payload []byte) error {
	if p.nats == nil || p.nats.nc == nil {
		return ErrNoNATS
	}
	return p.nats.nc.Publish(subject, payload)
}

// SetAnnotate sets Options.Annotate and AnnotateGroups after New, for a component built
// later; call it before Start.
func (p *Publisher) SetAnnotate(f func(group string, endpoint map[string]string) map[string]string, groups ...string) {
	p.annotate = f
	for _, g := range p.groups {
		g.annotated = f != nil && (len(groups) == 0 || slices.Contains(groups, g.name))
	}
}
