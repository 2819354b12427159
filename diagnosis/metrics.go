package diagnosis

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active          *prometheus.GaugeVec
	changes         *prometheus.CounterVec
	suppressed      *prometheus.CounterVec
	published       prometheus.Counter
	publishFailures prometheus.Counter
	publishDropped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eagle_eye_diagnosis_active",
			Help: "1 while a diagnosis report fires, per pattern and device.",
		}, []string{"pattern", "component", "severity", "node", "device"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_diagnosis_state_changes_total",
			Help: "Report state changes, by the state entered.",
		}, []string{"state"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_diagnosis_suppressed_total",
			Help: "Alerts folded into another pattern's report on the same device (catalog suppressed_by).",
		}, []string{"pattern"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_diagnosis_published_total",
			Help: "Diagnosis events handed to the publisher.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_diagnosis_publish_failures_total",
			Help: "Diagnosis events the publisher refused.",
		}),
		publishDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_diagnosis_publish_dropped_total",
			Help: "Diagnosis events dropped because the publish queue was full.",
		}),
	}
	reg.MustRegister(m.active, m.changes, m.suppressed, m.published, m.publishFailures, m.publishDropped)
	return m
}
