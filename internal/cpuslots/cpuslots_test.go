package cpuslots

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

func TestSlotsBound(t *testing.T) {
	s := New(2)
	if !s.TryAcquire() || !s.TryAcquire() {
		t.Fatal("two free slots refused")
	}
	if s.TryAcquire() {
		t.Fatal("a third slot taken out of two")
	}
	if s.InUse() != 2 || s.Cap() != 2 {
		t.Fatalf("in use %d of %d, want 2 of 2", s.InUse(), s.Cap())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on full slots until the deadline: %v, want DeadlineExceeded", err)
	}
	if s.InUse() != 2 || s.Waiting() != 0 {
		t.Fatalf("after a failed Acquire: %d in use, %d waiting; want 2, 0", s.InUse(), s.Waiting())
	}

	got := make(chan error)
	go func() { got <- s.Acquire(context.Background()) }()
	for s.Waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-got:
		t.Fatalf("Acquire returned (%v) while both slots were held", err)
	case <-time.After(20 * time.Millisecond):
	}
	s.Release()
	if err := <-got; err != nil {
		t.Fatalf("Acquire after a Release: %v", err)
	}
	if s.InUse() != 2 {
		t.Fatalf("in use %d, want 2", s.InUse())
	}
}

func TestUnbounded(t *testing.T) {
	for name, s := range map[string]*Slots{"nil": nil, "New(0)": New(0), "New(-1)": New(-1)} {
		for range 100 {
			if err := s.Acquire(context.Background()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		s.Release()
		if s.Cap() != 0 {
			t.Errorf("%s: Cap %d, want 0 (unbounded)", name, s.Cap())
		}
	}
}

// TestQueriesWaitForASlot runs a real PromQL engine with the tracker: a query waits while
// other work holds the only slot, and runs once it is free.
func TestQueriesWaitForASlot(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 15s\n  gpu_util{gpu=\"0\"} 10 20 30 40\n  gpu_util{gpu=\"1\"} 50 60 70 80")
	slots := New(1)
	reg := prometheus.NewRegistry()
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 1000, Timeout: time.Minute, Reg: reg,
		ActiveQueryTracker: QueryTracker{Slots: slots},
	})
	if got := gaugeValue(t, reg, "prometheus_engine_queries_concurrent_max"); got != 1 {
		t.Fatalf("prometheus_engine_queries_concurrent_max = %v, want 1", got)
	}
	eval := func(ctx context.Context) (promql.Vector, error) {
		// The engine queues both the parsing (here) and the evaluation (Exec).
		q, err := engine.NewInstantQuery(ctx, st, nil, "sum(gpu_util)", time.Unix(45, 0))
		if err != nil {
			return nil, err
		}
		defer q.Close()
		r := q.Exec(ctx)
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Vector()
	}

	slots.TryAcquire() // a bulk write holds the only slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := eval(ctx); !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "query queue")) {
		t.Fatalf("a query while the only slot was held: %v, want it to time out waiting", err)
	}

	done := make(chan error, 1)
	var v promql.Vector
	go func() {
		var err error
		v, err = eval(context.Background())
		done <- err
	}()
	for slots.Waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	slots.Release()
	if err := <-done; err != nil {
		t.Fatalf("query after the slot was released: %v", err)
	}
	if len(v) != 1 || v[0].F != 120 {
		t.Fatalf("sum(gpu_util) = %v, want 120", v)
	}
	if slots.InUse() != 0 {
		t.Fatalf("%d slots held after the query ended, want 0", slots.InUse())
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not exported", name)
	return 0
}
