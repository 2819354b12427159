package diagnosis

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// BenchmarkEvaluate measures one evaluation of every rule file (all groups at once, each in
// its goroutine as the rules manager runs them) over a window holding 1000 GPUs (125 nodes × 8), 250 engines, 250 InfiniBand ports and
// 64 NPUs: 30 minutes of samples every $EAGLE_EYE_BENCH_STEP (default 5s; the probe sends every
// 1s).
func BenchmarkEvaluate(b *testing.B) {
	step := 5 * time.Second
	if s := os.Getenv("EAGLE_EYE_BENCH_STEP"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		step = d
	}
	const interval = 15 * time.Second
	h := newHarness(b, interval, time.Hour)
	fl := newTestFleet(125, 8, 2, 8, h.start)
	span := 30 * time.Minute
	start := time.Now()
	fl.run(b, h.w, 0, span, step, func(el time.Duration) {
		if el%interval == 0 {
			h.eval(el)
		}
	})
	b.Logf("window: %d series, 30m at %s, filled in %s", h.w.NumSeries(), step, time.Since(start).Round(time.Second))
	ts := h.start.Add(span - step)
	b.ReportAllocs()
	b.ResetTimer()
	// As the rules manager runs them: every group in its own goroutine.
	for b.Loop() {
		var wg sync.WaitGroup
		for _, g := range h.groups {
			wg.Go(func() { g.Eval(context.Background(), ts) })
		}
		wg.Wait()
	}
	b.StopTimer()
	// One group at a time, for the breakdown.
	var total time.Duration
	for _, g := range h.groups {
		t0 := time.Now()
		g.Eval(context.Background(), ts)
		d := time.Since(t0)
		total += d
		b.Logf("group %-9s %2d rules %s", g.Name(), len(g.Rules()), d.Round(time.Millisecond))
		if testing.Verbose() {
			for _, r := range g.Rules() {
				if d := r.GetEvaluationDuration(); d > 5*time.Millisecond {
					b.Logf("    %-40s %s", r.Name(), d.Round(time.Millisecond))
				}
			}
		}
	}
	b.Logf("all groups one after the other: %s", total.Round(time.Millisecond))
}
