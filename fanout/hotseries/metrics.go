package hotseries

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the publisher's own metrics.
type metrics struct {
	published      []*prometheus.CounterVec // per transport, by group
	dropped        [numDropReasons]prometheus.Counter
	cacheEvictions prometheus.Counter
	natsConnected  prometheus.Gauge
	endpoints      *prometheus.GaugeVec
	latency        *prometheus.HistogramVec
}

type groupMetrics struct {
	endpoints prometheus.Gauge
	latency   prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, transports []string, groups []*group) (*metrics, error) {
	publishedVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eagle_eye_hot_series_messages_published_total",
		Help: "Hot-series messages handed to a transport, by transport and group; ZeroMQ counts only messages some subscriber asked for, and drops are counted apart.",
	}, []string{"transport", "group"})
	droppedVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eagle_eye_hot_series_dropped_total",
		Help: "Hot-series samples (limits, missing endpoint labels) or messages (transports) not published, by reason.",
	}, []string{"reason"})
	m := &metrics{
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_hot_series_cache_evictions_total",
			Help: "Series forgotten by the bounded series-membership cache (looked up again when next written).",
		}),
		natsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eagle_eye_hot_series_nats_connected",
			Help: "1 while the publisher is connected to NATS.",
		}),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eagle_eye_hot_series_endpoints",
			Help: "Endpoints tracked, by group.",
		}, []string{"group"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "eagle_eye_hot_series_publish_latency_seconds",
			Help:                            "Time from the first unpublished sample of an endpoint arriving to its message being handed to the transports.",
			Buckets:                         []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"group"}),
	}
	for _, c := range []prometheus.Collector{publishedVec, droppedVec, m.cacheEvictions, m.natsConnected, m.endpoints, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for i := range m.dropped {
		m.dropped[i] = droppedVec.WithLabelValues(dropReasonNames[i])
	}
	for _, t := range transports {
		m.published = append(m.published, publishedVec.MustCurryWith(prometheus.Labels{"transport": t}))
	}
	for _, g := range groups {
		g.m = groupMetrics{endpoints: m.endpoints.WithLabelValues(g.name), latency: m.latency.WithLabelValues(g.name)}
		for _, t := range transports {
			publishedVec.WithLabelValues(t, g.name)
		}
	}
	return m, nil
}

// throttle lets a log line through at most once per period per key and says how many were
// held back.
type throttle struct {
	logger *slog.Logger
	period time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
	held   map[string]int
}

func newThrottle(l *slog.Logger, period time.Duration) *throttle {
	return &throttle{logger: l, period: period, last: map[string]time.Time{}, held: map[string]int{}}
}

func (t *throttle) log(level slog.Level, key, msg string, args ...any) {
	t.mu.Lock()
	now := time.Now()
	if last, ok := t.last[key]; ok && now.Sub(last) < t.period {
		t.held[key]++
		t.mu.Unlock()
		return
	}
	held := t.held[key]
	t.last[key] = now
	t.held[key] = 0
	t.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	t.logger.Log(context.Background(), level, msg, args...)
}
