package forward

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the forwarder's self-metrics, every one labelled by destination.
type metrics struct {
	enqueued    *prometheus.CounterVec
	passed      *prometheus.CounterVec
	transcoded  *prometheus.CounterVec
	sent        *prometheus.CounterVec
	sentEx      *prometheus.CounterVec
	retried     *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	requests    *prometheus.CounterVec
	sendLatency *prometheus.HistogramVec
	fsyncWait   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, f *Forwarder) *metrics {
	m := &metrics{
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_enqueued_samples_total",
			Help: "Samples (float and histogram) appended to a destination's queue, after relabelling and downsampling.",
		}, []string{"destination"}),
		passed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_passthrough_samples_total",
			Help: "Samples (float and histogram) queued as the request body they arrived in, to be sent as it is: the destination takes the request's protocol and nothing in it is relabelled, downsampled or left out. Included in eagle_eye_forward_enqueued_samples_total.",
		}, []string{"destination"}),
		transcoded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_transcoded_samples_total",
			Help: "Samples of RW 2.0 writes queued, for an RW 1.0 destination, as the RW 1.0 request it is sent as (encoded once when queued, sent like a pass-through write). Included in eagle_eye_forward_enqueued_samples_total.",
		}, []string{"destination"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_sent_samples_total",
			Help: "Samples (float and histogram) the destination acknowledged.",
		}, []string{"destination"}),
		sentEx: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_sent_exemplars_total",
			Help: "Exemplars the destination acknowledged.",
		}, []string{"destination"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_retried_samples_total",
			Help: "Samples in requests that failed with a retryable error (5xx, 429, network) and were sent again.",
		}, []string{"destination"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_dropped_samples_total",
			Help: "Samples never delivered, by reason: max_queue_bytes and max_age (queue bounds), http_<code> (refused with a 4xx other than 429), rw2_unconfirmed (2xx without Written headers to an RW 2.0 request), out_of_order (not newer than the series' last sent sample), resend_refused (possibly sent before a restart, refused when resent), undefined_series (the record defining the series was lost to corruption), encode.",
		}, []string{"destination", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_forward_requests_total",
			Help: "Remote-write requests sent, by HTTP status code (\"network\" when there was no answer).",
		}, []string{"destination", "code"}),
		sendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "eagle_eye_forward_send_duration_seconds",
			Help:                            "Duration of one remote-write request, answered or not.",
			Buckets:                         []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"destination"}),
		fsyncWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eagle_eye_forward_write_durable_wait_seconds",
			Help:    "How long a write waited for its record to be fsynced (fsync policy always).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"destination"}),
	}
	if reg != nil {
		reg.MustRegister(m.enqueued, m.passed, m.transcoded, m.sent, m.sentEx, m.retried, m.dropped, m.requests, m.sendLatency, m.fsyncWait, &queueCollector{f: f})
	}
	return m
}

// queueCollector reads the queue gauges at scrape time.
type queueCollector struct{ f *Forwarder }

var (
	descQueueBytes = prometheus.NewDesc("eagle_eye_forward_queue_bytes",
		"Bytes of the destination's queue on disk (sent records are removed a segment at a time).", []string{"destination"}, nil)
	descQueueSamples = prometheus.NewDesc("eagle_eye_forward_queue_samples",
		"Samples queued and not yet sent by every shard.", []string{"destination"}, nil)
	descQueueRecords = prometheus.NewDesc("eagle_eye_forward_queue_records",
		"Records (one per write request) queued and not yet sent by every shard.", []string{"destination"}, nil)
	descQueueMem = prometheus.NewDesc("eagle_eye_forward_queue_memory_bytes",
		"Bytes of queued records also held in memory.", []string{"destination"}, nil)
	descOldest = prometheus.NewDesc("eagle_eye_forward_oldest_queued_age_seconds",
		"Age of the oldest record not yet sent by every shard; 0 when the queue is drained.", []string{"destination"}, nil)
	descLastSuccess = prometheus.NewDesc("eagle_eye_forward_last_success_timestamp_seconds",
		"When the destination last acknowledged a request (unix seconds); 0 if never.", []string{"destination"}, nil)
	descShards = prometheus.NewDesc("eagle_eye_forward_shards",
		"Parallel senders of the destination.", []string{"destination"}, nil)
	descRelayLimit = prometheus.NewDesc("eagle_eye_forward_passthrough_concurrency",
		"Most pass-through requests the destination's relay may have in flight now: from the shard count up to queue_config.max_shards, as the destination's latency needs.", []string{"destination"}, nil)
	descFsyncs = prometheus.NewDesc("eagle_eye_forward_fsyncs_total",
		"fsync calls on the destination's queue.", []string{"destination"}, nil)
	descFsyncSeconds = prometheus.NewDesc("eagle_eye_forward_fsync_seconds_total",
		"Time spent in fsync on the destination's queue.", []string{"destination"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueBytes, descQueueSamples, descQueueRecords, descQueueMem, descOldest, descLastSuccess, descShards, descRelayLimit, descFsyncs, descFsyncSeconds} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.f.now()
	for _, d := range c.f.dests {
		st := d.q.stats()
		age := 0.0
		if !st.OldestPending.IsZero() {
			age = max(0, now.Sub(st.OldestPending).Seconds())
		}
		last := 0.0
		if ns := d.lastSuccess.Load(); ns > 0 {
			last = float64(ns) / 1e9
		}
		g := func(desc *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, d.name)
		}
		g(descQueueBytes, float64(st.DiskBytes))
		g(descQueueSamples, float64(st.PendingSamps))
		g(descQueueRecords, float64(st.PendingRecs))
		g(descQueueMem, float64(st.MemBytes))
		g(descOldest, age)
		g(descLastSuccess, last)
		g(descShards, float64(len(d.shards)))
		g(descRelayLimit, float64(d.relay.limitGauge.Load()))
		ch <- prometheus.MustNewConstMetric(descFsyncs, prometheus.CounterValue, float64(d.q.fsyncs.Load()), d.name)
		ch <- prometheus.MustNewConstMetric(descFsyncSeconds, prometheus.CounterValue, float64(d.q.fsyncNs.Load())/1e9, d.name)
	}
}
