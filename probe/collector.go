package probe

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// Label is one label pair.
type Label = remotewrite.Label

// L is shorthand for a Label.
func L(name, value string) Label { return Label{Name: name, Value: value} }

// Collector reads one source (a device library, a log, an endpoint, a directory) and appends
// what it finds. Collect is called from one goroutine at a time, once per interval; it must
// return within the interval and must not keep a after returning.
//
// A collector whose device or library is absent returns an error wrapping ErrUnavailable: the
// probe says so once and stops calling it. Any other error marks that run failed
// (eagle_eye_probe_collector_success 0) and the collector is called again next interval; what
// it appended before failing is still sent.
type Collector interface {
	Collect(ctx context.Context, a *Appender) error
}

// Runner is implemented by collectors that also need a background loop (following the kernel
// log, waiting on NVML events). Run is started once, before the first Collect, and must
// return when ctx ends. An error wrapping ErrUnavailable ends it quietly after one log line.
type Runner interface {
	Run(ctx context.Context) error
}

// ErrUnavailable marks a source that is not present on this node (no library, no device file,
// no command). It is not a failure: the collector stays off.
var ErrUnavailable = errors.New("not available on this node")

// Appender gathers one collection's samples, all stamped with the same time, each carrying
// the probe's external labels unless the collector set a label of the same name.
type Appender struct {
	t        int64
	external []Label
	out      []remotewrite.Series
}

// NewAppender returns an appender stamping samples with now; tests use it to run a collector
// directly.
func NewAppender(now time.Time, external ...Label) *Appender {
	return &Appender{t: now.UnixMilli(), external: external}
}

// Time is the collection's timestamp.
func (a *Appender) Time() time.Time { return time.UnixMilli(a.t) }

// Gauge appends a gauge sample. base and extra are the series' labels, without __name__; the
// appender copies them.
func (a *Appender) Gauge(name string, v float64, base []Label, extra ...Label) {
	a.add(remotewrite.Gauge, name, a.t, v, base, extra)
}

// Counter appends a counter sample (a cumulative total).
func (a *Appender) Counter(name string, v float64, base []Label, extra ...Label) {
	a.add(remotewrite.Counter, name, a.t, v, base, extra)
}

// Sample appends a sample of the given type with its own timestamp (ms), for sources that
// carry one (scraped exposition with timestamps).
func (a *Appender) Sample(typ remotewrite.MetricType, name string, tms int64, v float64, base []Label) {
	a.add(typ, name, tms, v, base, nil)
}

func (a *Appender) add(typ remotewrite.MetricType, name string, t int64, v float64, base, extra []Label) {
	ls := make([]Label, 0, 1+len(base)+len(extra)+len(a.external))
	ls = append(ls, Label{Name: "__name__", Value: name})
	ls = append(ls, base...)
	ls = append(ls, extra...)
	for _, e := range a.external {
		if !hasLabel(ls, e.Name) {
			ls = append(ls, e)
		}
	}
	slices.SortStableFunc(ls, func(x, y Label) int { return strings.Compare(x.Name, y.Name) })
	// Drop empty values (Prometheus treats them as absent) and keep the first of duplicates.
	ls = slices.DeleteFunc(ls, func(l Label) bool { return l.Value == "" })
	ls = slices.CompactFunc(ls, func(x, y Label) bool { return x.Name == y.Name })
	a.out = append(a.out, remotewrite.Series{Labels: ls, Samples: []remotewrite.Sample{{T: t, V: v}}, Type: typ})
}

func hasLabel(ls []Label, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// Len is the number of samples appended so far.
func (a *Appender) Len() int { return len(a.out) }

// Series returns what was appended; the caller owns it.
func (a *Appender) Series() []remotewrite.Series { return a.out }
