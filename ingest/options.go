package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eagle-eye-ai/eagle-eye/internal/cpuslots"
)

// Default limits. Each applies when the matching Limits field is 0.
const (
	DefaultMaxBodyBytes         = 32 << 20
	DefaultMaxDecodedBytes      = 128 << 20
	DefaultMaxSeriesPerRequest  = 50_000
	DefaultMaxLabelsPerSeries   = 64
	DefaultMaxLabelNameLength   = 1024
	DefaultMaxLabelValueLength  = 4096
	DefaultMaxInflightWait      = 2 * time.Second
	DefaultRetryAfter           = 1 * time.Second
	DefaultMaxFutureSampleDelta = 10 * time.Minute
	// BulkWriteBytes is the decoded body size from which a write counts as bulk: about 250
	// series of a typical exporter. Smaller writes (an engine's few dozen series) never wait
	// for a bulk slot.
	BulkWriteBytes = 32 << 10
)

// DefaultMaxInflightWrites is the default for Limits.MaxInflightWrites: twice the number of
// CPUs the process may use, at least 4. Decoding is CPU-bound, so more concurrent writes than
// that only add memory (each holds its compressed and decoded body) without adding throughput.
func DefaultMaxInflightWrites() int {
	return max(4, 2*runtime.GOMAXPROCS(0))
}

// DefaultMaxBulkWrites is the default for Limits.MaxBulkWrites: the number of processors the
// Go runtime runs goroutines on (GOMAXPROCS), at least 1.
func DefaultMaxBulkWrites() int {
	return max(1, runtime.GOMAXPROCS(0))
}

// Limits bound what one write request may cost. A zero field takes its default; a negative
// field disables that limit (not recommended outside tests). Every violation is answered with
// an error that names the limit's value and the configuration knob that sets it, and is
// counted in eagle_eye_ingest_limit_hits_total{limit}.
type Limits struct {
	// MaxBodyBytes bounds the compressed body (limits.max_body_bytes, default 32 MiB).
	// A larger body is answered 413 without being read past the limit.
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the decompressed body (limits.max_decoded_bytes, default
	// 128 MiB). The length the snappy header announces is checked before decompressing, so a
	// tiny body that claims a huge decoded size costs nothing. Answered 413.
	MaxDecodedBytes int64
	// MaxSeriesPerRequest bounds the time series in one request
	// (limits.max_series_per_request, default 50000). Answered 413 for the whole request:
	// the batch is too big, not wrong, and the sender fixes it by sending smaller batches.
	MaxSeriesPerRequest int
	// MaxLabelsPerSeries bounds the labels of one series (limits.max_labels_per_series,
	// default 64). A series over it is rejected; the rest of the request is written (400).
	MaxLabelsPerSeries int
	// MaxLabelNameLength bounds a label name in bytes (limits.max_label_name_length, default
	// 1024). A series over it is rejected; the rest of the request is written (400).
	MaxLabelNameLength int
	// MaxLabelValueLength bounds a label value in bytes (limits.max_label_value_length,
	// default 4096). A series over it is rejected; the rest of the request is written (400).
	MaxLabelValueLength int
	// MaxInflightWrites bounds the write requests decoded and written at the same time
	// (limits.max_inflight_writes, default DefaultMaxInflightWrites()). A request that finds
	// them all busy waits up to MaxInflightWait for a slot before its body is read, then is
	// answered 503 (or 429, see Options.Overload429) with Retry-After.
	MaxInflightWrites int
	// MaxInflightWait is how long a request waits for an inflight slot (default 2 s; negative:
	// no wait at all).
	MaxInflightWait time.Duration
	// MaxBulkWrites bounds the bulk writes (decoded body of at least BulkWriteBytes) decoded
	// and written at the same time (limits.max_bulk_writes, default DefaultMaxBulkWrites()).
	// A bulk write that finds them all busy waits, holding its inflight slot, until one
	// frees or its client goes away; smaller writes skip this bound. With processors beyond
	// the bulk slots, a small write, such as an engine's queue depth that routers wait for,
	// finds a processor at once instead of queueing behind batches that take milliseconds
	// each. Negative: no bound.
	MaxBulkWrites int
}

// Options configures a Handler. The zero value of every field is usable.
type Options struct {
	// Logger receives the handler's logs, throttled to at most one line per problem kind per
	// 10 seconds. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the handler's metrics. Nil registers nothing (the metrics still
	// exist, unexported).
	Registerer prometheus.Registerer
	// Sinks receive every request's valid series, in this order. See Sink.
	Sinks []Sink
	// Limits bound each request; see Limits for defaults.
	Limits Limits
	// Now is the clock samples are checked against (samples more than 10 minutes ahead of it
	// are rejected). Nil means time.Now.
	Now func() time.Time
	// Overload429 answers overload with 429 instead of 503. Prometheus senders drop a batch
	// on 429 unless configured to retry it, so only set this when the senders are.
	Overload429 bool
	// RetryAfter is the delay announced in Retry-After on overload, rounded up to whole
	// seconds (default 1 s).
	RetryAfter time.Duration
	// CPUSlots, when set, are the slots bulk writes take, shared with the process's other
	// CPU-bound work (the gateway runs its PromQL queries in them too), and
	// Limits.MaxBulkWrites is not used. Nil: the handler's own, Limits.MaxBulkWrites of them.
	CPUSlots *cpuslots.Slots
}

// limits is Limits with defaults applied; a limit of 0 here means "unlimited".
type limits struct {
	maxBodyBytes, maxDecodedBytes int64
	maxSeries, maxLabels          int
	maxNameLen, maxValueLen       int
	maxInflight                   int
	inflightWait                  time.Duration
	maxBulk                       int
}

func defaultInt[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (l Limits) resolve() limits {
	r := limits{
		maxBodyBytes:    defaultInt(l.MaxBodyBytes, DefaultMaxBodyBytes),
		maxDecodedBytes: defaultInt(l.MaxDecodedBytes, DefaultMaxDecodedBytes),
		maxSeries:       defaultInt(l.MaxSeriesPerRequest, DefaultMaxSeriesPerRequest),
		maxLabels:       defaultInt(l.MaxLabelsPerSeries, DefaultMaxLabelsPerSeries),
		maxNameLen:      defaultInt(l.MaxLabelNameLength, DefaultMaxLabelNameLength),
		maxValueLen:     defaultInt(l.MaxLabelValueLength, DefaultMaxLabelValueLength),
		maxInflight:     defaultInt(l.MaxInflightWrites, DefaultMaxInflightWrites()),
		inflightWait:    l.MaxInflightWait,
		maxBulk:         defaultInt(l.MaxBulkWrites, DefaultMaxBulkWrites()),
	}
	switch {
	case r.inflightWait == 0:
		r.inflightWait = DefaultMaxInflightWait
	case r.inflightWait < 0:
		r.inflightWait = 0
	}
	return r
}

func (o *Options) validate() error {
	var errs []error
	for i, s := range o.Sinks {
		if s == nil {
			errs = append(errs, fmt.Errorf("sinks[%d] is nil", i))
		}
	}
	if o.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry-after %v is negative", o.RetryAfter))
	}
	return errors.Join(errs...)
}
