package remotewrite

import (
	"fmt"
	"strings"
)

// Label is one label pair. The metric name is the label "__name__".
type Label struct{ Name, Value string }

// Sample is one float sample: a value at a time in milliseconds since the Unix epoch.
type Sample struct {
	T int64
	V float64
}

// MetricType is the type of the metric family a series belongs to, sent as metadata.
type MetricType uint8

// Metric types, as in the Prometheus exposition formats.
const (
	Unknown MetricType = iota
	Counter
	Gauge
	Info
)

// String returns the type's name in the text exposition format.
func (t MetricType) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Info:
		return "info"
	}
	return "unknown"
}

// Series is one time series and its samples, oldest first. Labels must be sorted by name and
// include __name__; Encode does not sort them.
type Series struct {
	Labels  []Label
	Samples []Sample
	Type    MetricType
	Help    string
}

// Name returns the value of the __name__ label.
func (s *Series) Name() string {
	for _, l := range s.Labels {
		if l.Name == "__name__" {
			return l.Value
		}
	}
	return ""
}

// Protocol selects the remote-write message.
type Protocol int

// The two remote-write protocols.
const (
	V1 Protocol = 1 // prometheus.WriteRequest
	V2 Protocol = 2 // io.prometheus.write.v2.Request
)

// ParseProtocol accepts "1", "1.0", "v1", "2", "2.0" or "v2".
func ParseProtocol(s string) (Protocol, error) {
	switch strings.TrimPrefix(strings.ToLower(s), "v") {
	case "1", "1.0":
		return V1, nil
	case "2", "2.0":
		return V2, nil
	}
	return 0, fmt.Errorf("unknown remote-write protocol %q: want 1.0 or 2.0", s)
}

// String returns "1.0" or "2.0".
func (p Protocol) String() string {
	if p == V2 {
		return "2.0"
	}
	return "1.0"
}

// ContentType is the Content-Type header for the protocol.
func (p Protocol) ContentType() string {
	if p == V2 {
		return "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	return "application/x-protobuf"
}

// VersionHeader is the value of X-Prometheus-Remote-Write-Version for the protocol.
func (p Protocol) VersionHeader() string {
	if p == V2 {
		return "2.0.0"
	}
	return "0.1.0"
}
