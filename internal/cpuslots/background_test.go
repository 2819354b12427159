package cpuslots

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func newBackground(t *testing.T, n, nice int) *Slots {
	t.Helper()
	s, err := NewBackground(n, nice)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBackgroundRunsAtLowerPriority(t *testing.T) {
	if !threadPriorities {
		t.Skip("thread priorities are set on Linux only")
	}
	base := niceOfThisThread(t)
	s := newBackground(t, 2, 5)
	defer s.Close()

	var got int
	if err := s.Run(context.Background(), func() { got = niceOfThisThread(t) }); err != nil {
		t.Fatal(err)
	}
	if want := min(19, base+5); got != want {
		t.Errorf("nice inside Run = %d, want %d (the process's %d + 5)", got, want, base)
	}
	if now := niceOfThisThread(t); now != base {
		t.Errorf("the caller's thread has nice %d after Run, want it untouched at %d", now, base)
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	for name, s := range map[string]*Slots{"New": New(2), "NewBackground": newBackground(t, 2, 10)} {
		t.Run(name, func(t *testing.T) {
			defer s.Close()
			var mu sync.Mutex
			running, most := 0, 0
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					err := s.Run(context.Background(), func() {
						mu.Lock()
						running++
						most = max(most, running)
						mu.Unlock()
						time.Sleep(5 * time.Millisecond)
						mu.Lock()
						running--
						mu.Unlock()
					})
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if most != 2 {
				t.Errorf("at most %d calls ran at once, want 2 (the slots)", most)
			}
			if s.InUse() != 0 {
				t.Errorf("%d slots held after every Run returned", s.InUse())
			}
		})
	}
}

func TestRunGivesUpWithItsContext(t *testing.T) {
	s := newBackground(t, 1, 10)
	defer s.Close()
	release := make(chan struct{})
	started := make(chan struct{})
	go s.Run(context.Background(), func() { close(started); <-release })
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	called := false
	if err := s.Run(ctx, func() { called = true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run while the only slot is held, until the deadline: %v, want DeadlineExceeded", err)
	}
	if called {
		t.Error("fn was called although Run gave up")
	}
	close(release)
	if err := s.Run(context.Background(), func() { called = true }); err != nil || !called {
		t.Fatalf("Run once the slot is free: err %v, called %v", err, called)
	}
}

func TestRunRaisesPanicsInTheCaller(t *testing.T) {
	if !threadPriorities {
		t.Skip("no background threads off Linux")
	}
	s := newBackground(t, 1, 10)
	defer s.Close()
	var p any
	func() {
		defer func() { p = recover() }()
		_ = s.Run(context.Background(), func() { panic(io.ErrUnexpectedEOF) })
	}()
	pe, ok := p.(*PanicError)
	if !ok {
		t.Fatalf("Run's caller recovered %T %v, want *PanicError", p, p)
	}
	if !errors.Is(pe, io.ErrUnexpectedEOF) {
		t.Errorf("PanicError does not wrap the value fn panicked with: %v", pe.Value)
	}
	if !strings.Contains(pe.Error(), "TestRunRaisesPanicsInTheCaller") {
		t.Errorf("PanicError lacks the background thread's stack:\n%s", pe.Error())
	}
	// The thread survives the panic and the slot was given back.
	if err := s.Run(context.Background(), func() {}); err != nil || s.InUse() != 0 {
		t.Fatalf("Run after a panic: %v, %d slots held", err, s.InUse())
	}
}
