package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// Sink receives each collection's series and owns them from then on. *Sender implements it.
type Sink interface {
	Append([]remotewrite.Series)
}

// Scheduled is a collector with its name (the "collector" label of the self-metrics) and the
// interval it is called at.
type Scheduled struct {
	Name      string
	Collector Collector
	Interval  time.Duration // the probe's Interval when zero
}

// Options configures a Probe.
type Options struct {
	Collectors []Scheduled
	Sink       Sink          // required
	Interval   time.Duration // default collection interval; 1 s when zero
	// ExternalLabels are added to every series that does not carry a label of the same name
	// (node, cluster).
	ExternalLabels []Label
	Logger         *slog.Logger          // discards when nil
	Registerer     prometheus.Registerer // not registered when nil
}

// Probe calls its collectors on their intervals and hands what they append to the sink.
type Probe struct {
	o        Options
	log      *slog.Logger
	duration *prometheus.GaugeVec
	success  *prometheus.GaugeVec
}

// New validates o and returns a probe; it starts nothing.
func New(o Options) (*Probe, error) {
	if o.Sink == nil {
		return nil, errors.New("probe: no sink")
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	seen := map[string]bool{}
	for i, c := range o.Collectors {
		if c.Name == "" || c.Collector == nil {
			return nil, fmt.Errorf("probe: collector %d has no name or no collector", i)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("probe: collector %q listed twice", c.Name)
		}
		seen[c.Name] = true
		if c.Interval < 0 {
			return nil, fmt.Errorf("probe: collector %q: negative interval", c.Name)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Probe{
		o:   o,
		log: o.Logger,
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eagle_eye_probe_collector_duration_seconds",
			Help: "How long the collector's last run took.",
		}, []string{"collector"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eagle_eye_probe_collector_success",
			Help: "Whether the collector's last run succeeded (1) or failed or is off on this node (0).",
		}, []string{"collector"}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(p.duration, p.success)
	}
	return p, nil
}

// Run starts every collector's loop (and its Runner, if any) and waits until ctx ends and
// all of them have returned.
func (p *Probe) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range p.o.Collectors {
		iv := c.Interval
		if iv == 0 {
			iv = p.o.Interval
		}
		log := p.log.With("collector", c.Name)
		if r, ok := c.Collector.(Runner); ok {
			wg.Go(func() {
				if err := r.Run(ctx); err != nil && ctx.Err() == nil {
					if errors.Is(err, ErrUnavailable) { // the collect loop says so at info
						log.Debug("background reader off", "reason", err)
					} else {
						log.Error("background reader stopped", "err", err)
					}
				}
			})
		}
		wg.Go(func() { p.loop(ctx, c, iv, log) })
	}
	wg.Wait()
	return nil
}

// loop calls one collector every iv, aligned to multiples of iv, until ctx ends or the
// collector says its source is absent.
func (p *Probe) loop(ctx context.Context, c Scheduled, iv time.Duration, log *slog.Logger) {
	failing := false
	next := time.Now().Truncate(iv).Add(iv)
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := next
		next = next.Add(iv)
		if late := time.Now(); late.After(next) { // a slow run: skip missed ticks, keep alignment
			next = late.Truncate(iv).Add(iv)
		}
		if !p.collect(ctx, c, now, iv, log, &failing) {
			return
		}
	}
}

// collect runs one collection; false means the collector is off for good.
func (p *Probe) collect(ctx context.Context, c Scheduled, now time.Time, iv time.Duration, log *slog.Logger, failing *bool) bool {
	cctx, cancel := context.WithTimeout(ctx, iv)
	defer cancel()
	a := NewAppender(now, p.o.ExternalLabels...)
	start := time.Now()
	err := c.Collector.Collect(cctx, a)
	took := time.Since(start)
	ok := 1.0
	switch {
	case err == nil:
		if *failing {
			log.Info("collector recovered")
			*failing = false
		}
	case errors.Is(err, ErrUnavailable):
		log.Info("collector off: source not present on this node", "reason", err)
		ok = 0
	default:
		ok = 0
		if !*failing && ctx.Err() == nil { // log the first failure of a run of failures only
			log.Warn("collector failed; retrying every interval", "err", err)
			*failing = true
		}
	}
	p.duration.WithLabelValues(c.Name).Set(took.Seconds())
	p.success.WithLabelValues(c.Name).Set(ok)
	self := []Label{{Name: "collector", Value: c.Name}}
	a.Gauge("eagle_eye_probe_collector_duration_seconds", took.Seconds(), self)
	a.Gauge("eagle_eye_probe_collector_success", ok, self)
	p.o.Sink.Append(a.Series())
	return !errors.Is(err, ErrUnavailable)
}
