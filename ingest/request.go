package ingest

import (
	"context"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/metadata"
)

// Version is the remote-write protocol version of a request.
type Version uint8

const (
	// V1 is Remote-Write 1.0 (prometheus.WriteRequest).
	V1 Version = 1
	// V2 is Remote-Write 2.0 rc.4 (io.prometheus.write.v2.Request).
	V2 Version = 2
)

// Label is one label pair. Its strings alias the decoded request buffer and are valid only
// during Sink.Write; a sink that keeps one must copy it (strings.Clone).
type Label struct {
	Name, Value string
}

// LabelValue returns the value of the label called name in ls, "" when there is none.
func LabelValue(ls []Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Sample is one float sample. ST is the start (created) timestamp from RW 2.0, 0 when unknown.
type Sample struct {
	T, ST int64
	V     float64
}

// Histogram is one native histogram sample: exactly one of H and FH is set. The histogram
// values are owned by the request and valid only during Sink.Write.
type Histogram struct {
	T, ST int64
	H     *histogram.Histogram
	FH    *histogram.FloatHistogram
}

// Exemplar is one exemplar; its Labels alias the request buffer like Series.Labels.
type Exemplar struct {
	Labels []Label
	T      int64
	V      float64
}

// Series is one time series of a request after validation: Labels are sorted by name, unique,
// non-empty and include __name__.
type Series struct {
	Labels []Label
	// Hash identifies the label set: xxhash64 over name 0xff value 0xff for each label in
	// order. Sinks use it as a cache key for series identity; equal label sets hash equally
	// whatever protocol version carried them.
	Hash uint64
	// Hash2 is a second, independent hash of the same bytes (hash/maphash, seeded once per
	// process, so stable only within it). Hash and Hash2 together identify a label set in
	// in-memory caches with a 128-bit key; see KeyHashes.
	Hash2      uint64
	Samples    []Sample
	Histograms []Histogram
	Exemplars  []Exemplar
	// Metadata is the series' metadata (RW 2.0); zero when the request carried none.
	Metadata metadata.Metadata
}

// FamilyMetadata is RW 1.0 request-level metadata for one metric family.
type FamilyMetadata struct {
	Family string
	metadata.Metadata
}

// Request is one decoded, validated write request. It and everything it references are valid
// only during Sink.Write: buffers are pooled and reused for the next request.
type Request struct {
	Version  Version
	Series   []Series
	Metadata []FamilyMetadata
	// Body is the request body as it arrived (snappy-compressed protobuf of Version), set only
	// when Series and Metadata carry all of it unchanged (validation dropped nothing and no
	// series had its labels reordered) and no earlier sink refused any of it (out of order,
	// a duplicate timestamp with another value). A sink that forwards the request in the same
	// protocol may send Body as it is instead of encoding Series again. Nil otherwise.
	Body []byte
}

// Stats counts what a sink accepted.
type Stats struct {
	Samples, Histograms, Exemplars int
}

// Sink receives every valid write request. Sinks are called in the order they were given to
// the handler, one after the other, on the request's goroutine; a sink must not keep req or
// anything it references after Write returns. A sink may take out of a series' Samples those
// it refused as out of order or as duplicates: the sinks after it then do not see them.
//
// Write returns what it accepted. An error wrapping ErrInvalid means some data was rejected
// for a reason the sender cannot fix by retrying (out of order, too old, a limit); the
// accepted part stays written and the request is answered 400. ErrOverloaded answers 503 with
// Retry-After. Any other error is the gateway's own fault and answers 500.
type Sink interface {
	Write(ctx context.Context, req *Request) (Stats, error)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, req *Request) (Stats, error)

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, req *Request) (Stats, error) { return f(ctx, req) }
