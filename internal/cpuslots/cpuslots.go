// Package cpuslots bounds how much CPU-bound work runs at once in a process, across the
// kinds of work that can each keep a processor busy for milliseconds: decoding and writing a
// bulk remote-write request, and evaluating a PromQL query (rules and the HTTP API).
//
// The point is latency, not throughput. The Go runtime notices network events (a new
// request, a small write from an inference engine) when a processor looks for work; while
// every processor runs a long task, it notices them only on its 10 ms background poll. With
// the slots sized to the CPUs and the runtime given processors beyond them, one processor is
// always left for network events and small tasks, which then start within microseconds.
//
//	slots := cpuslots.New(runtime.NumCPU())
//	if err := slots.Acquire(ctx); err != nil { ... }
//	defer slots.Release()
package cpuslots

import (
	"context"
	"sync/atomic"
)

// Slots is a counting semaphore. A nil *Slots, or one made with n ≤ 0, never waits. It is
// safe for concurrent use.
type Slots struct {
	ch      chan struct{}
	waiting atomic.Int64
}

// New returns n slots; n ≤ 0 means no bound.
func New(n int) *Slots {
	if n <= 0 {
		return &Slots{}
	}
	return &Slots{ch: make(chan struct{}, n)}
}

// Cap is the number of slots, 0 when unbounded.
func (s *Slots) Cap() int {
	if s == nil {
		return 0
	}
	return cap(s.ch)
}

// TryAcquire takes a slot if one is free at once.
func (s *Slots) TryAcquire() bool {
	if s == nil || s.ch == nil {
		return true
	}
	select {
	case s.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// Acquire takes a slot, waiting until one frees or ctx ends (then it returns ctx's error
// and holds nothing).
func (s *Slots) Acquire(ctx context.Context) error {
	if s.TryAcquire() {
		return nil
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives back a slot taken by Acquire or TryAcquire.
func (s *Slots) Release() {
	if s == nil || s.ch == nil {
		return
	}
	<-s.ch
}

// InUse is the number of slots held now.
func (s *Slots) InUse() int {
	if s == nil {
		return 0
	}
	return len(s.ch)
}

// Waiting is the number of tasks waiting for a slot now.
func (s *Slots) Waiting() int {
	if s == nil {
		return 0
	}
	return int(s.waiting.Load())
}

// QueryTracker runs every PromQL query of an engine in a slot: it implements
// promql.QueryTracker (set it as promql.EngineOpts.ActiveQueryTracker), whose Insert the
// engine calls before evaluating a query and Delete after. The engine counts the wait as the
// query's queue time.
type QueryTracker struct {
	Slots *Slots
}

// GetMaxConcurrent is the number of slots (0: unbounded), which the engine exports as
// prometheus_engine_queries_concurrent_max.
func (t QueryTracker) GetMaxConcurrent() int { return t.Slots.Cap() }

// Insert waits for a slot; the index it returns means nothing.
func (t QueryTracker) Insert(ctx context.Context, _ string) (int, error) {
	return 0, t.Slots.Acquire(ctx)
}

// Delete gives the query's slot back.
func (t QueryTracker) Delete(int) { t.Slots.Release() }

// Close does nothing: the slots outlive any one engine.
func (t QueryTracker) Close() error { return nil }
