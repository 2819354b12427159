// Package cpuslots bounds how much CPU-bound work runs at once in a process, across the
// kinds of work that can each keep a processor busy for milliseconds: decoding and writing a
// bulk remote-write request, and evaluating a PromQL query (rules and the HTTP API).
//
// The point is latency, not throughput. The Go runtime notices network events (a new
// request, a small write from an inference engine) when a processor looks for work; while
// every processor runs a long task, it notices them only on its 10 ms background poll. With
// the slots sized to the CPUs and the runtime given processors beyond them, one processor is
// always left for network events and small tasks, which then start within microseconds.
// Slots made by NewBackground go further for the heaviest kind of work (Run): it runs on
// threads whose operating-system priority is lowered, so that when the machine's CPUs are
// saturated (by this process or another), the kernel runs the latency-sensitive threads
// first instead of sharing time evenly.
//
//	slots := cpuslots.New(runtime.NumCPU())
//	if err := slots.Acquire(ctx); err != nil { ... }
//	defer slots.Release()
package cpuslots

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
)

// Slots is a counting semaphore. A nil *Slots, or one made with n ≤ 0, never waits. It is
// safe for concurrent use.
type Slots struct {
	ch      chan struct{}
	waiting atomic.Int64
	jobs    chan job // to the background threads; nil: none
}

type job struct {
	fn   func()
	done chan any // the panic fn raised, or nil
}

// New returns n slots; n ≤ 0 means no bound.
func New(n int) *Slots {
	if n <= 0 {
		return &Slots{}
	}
	return &Slots{ch: make(chan struct{}, n)}
}

// NewBackground returns n slots (n ≥ 1) with n background threads for Run: OS threads whose
// scheduling priority is lowered by nice (1 to 19, as nice(1) counts). While the machine's
// CPUs are all busy, the operating system then runs the process's other threads first:
// those that answer network events, small writes and publishers. With nice ≤ 0, or where a
// thread's priority cannot be set apart from the process's (not Linux), it returns New(n):
// a thread of its own would only cost a hand-off per call. The error, if any, says that the priority could
// not be lowered; the slots work all the same. Close stops the threads.
func NewBackground(n, nice int) (*Slots, error) {
	s := New(max(n, 1))
	if !threadPriorities || nice <= 0 {
		return s, nil
	}
	s.jobs = make(chan job)
	errs := make(chan error, cap(s.ch))
	for range cap(s.ch) {
		go s.background(nice, errs)
	}
	var first error
	for range cap(s.ch) {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("lowering a background thread's priority by %d: %w", nice, err)
		}
	}
	return s, first
}

// background runs jobs on a thread of its own, at a lower priority. It never unlocks the
// thread: an unprivileged process cannot raise a thread's priority back, so the thread must
// run nothing else, and the runtime ends it when this goroutine returns. The thread may be
// the process's main one, so tools that show a process's nice value from its main thread
// (ps -o ni) may show the lowered one.
func (s *Slots) background(nice int, started chan<- error) {
	runtime.LockOSThread()
	started <- lowerPriority(nice)
	for j := range s.jobs {
		j.done <- run(j.fn)
	}
}

// Close stops the background threads, if any. Run must not be called after it.
func (s *Slots) Close() {
	if s != nil && s.jobs != nil {
		close(s.jobs)
	}
}

func run(fn func()) (p any) {
	defer func() {
		if v := recover(); v != nil {
			p = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	fn()
	return nil
}

// PanicError is what Run panics with when fn, run on a background thread, panicked: the
// value fn panicked with and the background thread's stack at that point.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%v\n\nbackground thread's stack:\n%s", e.Value, e.Stack)
}

// Unwrap returns the value fn panicked with, if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Run takes a slot, waiting as Acquire does, and calls fn in it: on a background thread
// when the slots have them (NewBackground), else on the caller's goroutine. It returns
// once fn has, or ctx's error without calling fn. A panic in fn on a background thread is
// raised again in Run's caller as a *PanicError.
func (s *Slots) Run(ctx context.Context, fn func()) error {
	if err := s.Acquire(ctx); err != nil {
		return err
	}
	defer s.Release()
	if s == nil || s.jobs == nil {
		fn()
		return nil
	}
	done := make(chan any, 1)
	s.jobs <- job{fn: fn, done: done}
	if p := <-done; p != nil {
		panic(p)
	}
	return nil
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
