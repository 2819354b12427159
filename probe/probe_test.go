package probe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

type memSink struct {
	mu  sync.Mutex
	got []remotewrite.Series
}

func (m *memSink) Append(s []remotewrite.Series) {
	m.mu.Lock()
	m.got = append(m.got, s...)
	m.mu.Unlock()
}

func (m *memSink) names() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, s := range m.got {
		out[s.Name()]++
	}
	return out
}

type funcCollector func(ctx context.Context, a *Appender) error

func (f funcCollector) Collect(ctx context.Context, a *Appender) error { return f(ctx, a) }

func TestAppenderLabels(t *testing.T) {
	a := NewAppender(time.UnixMilli(5000), L("node", "n1"), L("cluster", "c"))
	a.Gauge("m", 1, []Label{L("node", "own"), L("b", "2"), L("empty", "")}, L("a", "1"))
	s := a.Series()[0]
	want := "__name__=m a=1 b=2 cluster=c node=own"
	if got := labelString(s.Labels); got != want {
		t.Fatalf("labels %q, want %q", got, want)
	}
	if s.Samples[0].T != 5000 || s.Type != remotewrite.Gauge {
		t.Fatalf("sample %+v type %v", s.Samples, s.Type)
	}
}

func labelString(ls []Label) string {
	out := ""
	for i, l := range ls {
		if i > 0 {
			out += " "
		}
		out += l.Name + "=" + l.Value
	}
	return out
}

func TestProbeRunsCollectorsAndSelfMetrics(t *testing.T) {
	var absentCalls, failCalls atomic.Int32
	sink := &memSink{}
	reg := prometheus.NewRegistry()
	p, err := New(Options{
		Sink:       sink,
		Interval:   20 * time.Millisecond,
		Registerer: reg,
		Collectors: []Scheduled{
			{Name: "ok", Collector: funcCollector(func(_ context.Context, a *Appender) error {
				a.Gauge("ok_metric", 1, nil)
				return nil
			})},
			{Name: "absent", Collector: funcCollector(func(context.Context, *Appender) error {
				absentCalls.Add(1)
				return fmt.Errorf("no library: %w", ErrUnavailable)
			})},
			{Name: "failing", Collector: funcCollector(func(_ context.Context, a *Appender) error {
				failCalls.Add(1)
				a.Gauge("partial", 1, nil)
				return errors.New("boom")
			})},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	_ = p.Run(ctx)
	if n := absentCalls.Load(); n != 1 {
		t.Errorf("an absent collector was called %d times, want once", n)
	}
	if n := failCalls.Load(); n < 3 {
		t.Errorf("a failing collector was called %d times; it must be retried every interval", n)
	}
	names := sink.names()
	if names["ok_metric"] < 3 || names["partial"] < 3 || names["eagle_eye_probe_collector_success"] < 7 {
		t.Errorf("series appended: %v", names)
	}
	for c, want := range map[string]float64{"ok": 1, "absent": 0, "failing": 0} {
		if got := testutil.ToFloat64(p.success.WithLabelValues(c)); got != want {
			t.Errorf("success{collector=%q} = %v, want %v", c, got, want)
		}
	}
}

func TestNewProbeValidates(t *testing.T) {
	c := funcCollector(func(context.Context, *Appender) error { return nil })
	for name, o := range map[string]Options{
		"no sink":   {Collectors: []Scheduled{{Name: "a", Collector: c}}},
		"no name":   {Sink: &memSink{}, Collectors: []Scheduled{{Collector: c}}},
		"duplicate": {Sink: &memSink{}, Collectors: []Scheduled{{Name: "a", Collector: c}, {Name: "a", Collector: c}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
