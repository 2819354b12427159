package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	versionLabelV1      = "1"
	versionLabelV2      = "2"
	versionLabelUnknown = "unknown"
)

func versionLabel(v Version) string {
	switch v {
	case V1:
		return versionLabelV1
	case V2:
		return versionLabelV2
	}
	return versionLabelUnknown
}

// handlerMetrics are the write handler's metrics. Children used on every request are
// resolved once so that counting costs no label lookup.
type handlerMetrics struct {
	requests         *prometheus.CounterVec
	samples          *prometheus.CounterVec
	histograms       prometheus.Counter
	exemplars        prometheus.Counter
	seriesRejected   *prometheus.CounterVec
	limitHits        *prometheus.CounterVec
	duration         prometheus.Histogram
	inflight         prometheus.Gauge
	bulkWait         prometheus.Histogram
	compressedBytes  prometheus.Counter
	decodedBytes     prometheus.Counter
	samplesByVersion [3]prometheus.Counter // indexed by Version
	rejectedByReason [numReasons]prometheus.Counter
}

func newHandlerMetrics(reg prometheus.Registerer) (*handlerMetrics, error) {
	m := &handlerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_requests_total",
			Help: "Remote-write requests answered, by protocol version and HTTP status code.",
		}, []string{"version", "code"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_samples_total",
			Help: "Float samples that passed validation and were handed to the sinks.",
		}, []string{"version"}),
		histograms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_histograms_total",
			Help: "Native histogram samples that passed validation and were handed to the sinks.",
		}),
		exemplars: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_exemplars_total",
			Help: "Exemplars that passed validation and were handed to the sinks.",
		}),
		seriesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_series_rejected_total",
			Help: "Series (and RW 1.0 metadata entries) dropped from requests as invalid, by reason.",
		}, []string{"reason"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_limit_hits_total",
			Help: "Times a request or series was refused by a limit, by limit (the knob is limits.<limit>).",
		}, []string{"limit"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:                            "eagle_eye_ingest_request_duration_seconds",
			Help:                            "Time to answer a remote-write request, sinks included.",
			Buckets:                         []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eagle_eye_ingest_inflight_requests",
			Help: "Write requests being read, decoded or written right now.",
		}),
		bulkWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:                            "eagle_eye_ingest_bulk_wait_seconds",
			Help:                            "Time bulk write requests (decoded body of 32 KiB or more) waited for a bulk slot (limits.max_bulk_writes) before decoding.",
			Buckets:                         []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
		compressedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_compressed_bytes_total",
			Help: "Bytes of request bodies read, as sent (compressed).",
		}),
		decodedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eagle_eye_ingest_decoded_bytes_total",
			Help: "Bytes of request bodies after snappy decompression.",
		}),
	}
	m.samplesByVersion[V1] = m.samples.WithLabelValues(versionLabelV1)
	m.samplesByVersion[V2] = m.samples.WithLabelValues(versionLabelV2)
	for r := reasonNone + 1; r < numReasons; r++ {
		m.rejectedByReason[r] = m.seriesRejected.WithLabelValues(r.String())
	}
	for _, l := range []string{limitMaxBodyBytes, limitMaxDecodedBytes, limitMaxSeries, limitMaxLabels,
		limitMaxNameLength, limitMaxValueLength, limitMaxInflightWrite} {
		m.limitHits.WithLabelValues(l)
	}
	for _, v := range []string{versionLabelV1, versionLabelV2} {
		for _, c := range []int{204, 400, 413, 500, 503} {
			m.requests.WithLabelValues(v, statusLabel(c))
		}
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.samples, m.histograms, m.exemplars,
		m.seriesRejected, m.limitHits, m.duration, m.inflight, m.bulkWait, m.compressedBytes, m.decodedBytes} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register ingest metrics: %w", err)
	}
	return m, nil
}

// statusLabel avoids formatting the common codes on every request.
func statusLabel(code int) string {
	switch code {
	case 204:
		return "204"
	case 400:
		return "400"
	case 405:
		return "405"
	case 413:
		return "413"
	case 415:
		return "415"
	case 429:
		return "429"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// logThrottle lets through at most one log line per key per interval and says how many it
// held back in between. Keys come from a small fixed set (reasons, limits, error classes), so
// the map stays small.
type logThrottle struct {
	logger *slog.Logger
	now    func() time.Time
	every  time.Duration

	mu   sync.Mutex
	keys map[string]*throttleState
}

type throttleState struct {
	last       time.Time
	suppressed int
}

func newLogThrottle(logger *slog.Logger, now func() time.Time, every time.Duration) *logThrottle {
	return &logThrottle{logger: logger, now: now, every: every, keys: map[string]*throttleState{}}
}

// allow reports whether a line for key may be logged now, and how many were held back since
// the last one.
func (t *logThrottle) allow(key string) (suppressed int, ok bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.keys[key]
	if s == nil {
		s = &throttleState{}
		t.keys[key] = s
	} else if now.Sub(s.last) < t.every {
		s.suppressed++
		return 0, false
	}
	suppressed, s.suppressed, s.last = s.suppressed, 0, now
	return suppressed, true
}

// warn logs msg at warning level unless a line with the same key was logged less than the
// interval ago.
func (t *logThrottle) warn(key, msg string, attrs ...any) {
	t.log(slog.LevelWarn, key, msg, attrs...)
}

func (t *logThrottle) log(level slog.Level, key, msg string, attrs ...any) {
	suppressed, ok := t.allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed_since_last", suppressed)
	}
	t.logger.Log(context.Background(), level, msg, attrs...)
}
