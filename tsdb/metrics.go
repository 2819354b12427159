package tsdb

import "github.com/prometheus/client_golang/prometheus"

type windowMetrics struct {
	appended         prometheus.Counter
	exemplars        prometheus.Counter
	rejected         *prometheus.CounterVec
	truncations      *prometheus.CounterVec
	truncateDuration prometheus.Histogram
}

func newWindowMetrics(reg prometheus.Registerer, w *Window) *windowMetrics {
	m := &windowMetrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_window_samples_appended_total",
			Help: "Float and histogram samples appended to the window.",
		}),
		exemplars: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_window_exemplars_appended_total",
			Help: "Exemplars appended to the window.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_window_samples_rejected_total",
			Help: "Samples the window refused, by reason.",
		}, []string{"reason"}),
		truncations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_window_truncations_total",
			Help: "Truncations of the window to its configured length, by result.",
		}, []string{"result"}),
		truncateDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eagle_eye_window_truncate_duration_seconds",
			Help:    "Time spent truncating the window.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	for _, r := range append(rejectReasons[:], "exemplar") {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(m.appended, m.exemplars, m.rejected, m.truncations, m.truncateDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eagle_eye_window_series",
			Help: "Active series in the window.",
		}, func() float64 { return float64(w.NumSeries()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eagle_eye_window_series_limit",
			Help: "Configured maximum of active series in the window (0: no limit).",
		}, func() float64 { return float64(w.opts.MaxSeries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eagle_eye_window_length_seconds",
			Help: "Configured length of the window.",
		}, func() float64 { return w.opts.Window.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eagle_eye_window_oldest_sample_timestamp_seconds",
			Help: "Timestamp of the oldest sample the window can still hold.",
		}, func() float64 { mint, _ := w.Span(); return float64(mint) / 1000 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eagle_eye_window_cached_series",
			Help: "Series in the ingest-side series cache of the window.",
		}, func() float64 { return float64(w.cache.len()) }),
	)
	return m
}
