package diagnosis

import (
	"testing"
	"time"
)

// TestHealthyFleet: 1000 GPUs (125 nodes × 8), 250 engines and 64 NPUs with realistic noise
// for one simulated hour (15 s samples, rules every 30 s) raise no alert and no report, and
// no rule fails to evaluate.
func TestHealthyFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("one simulated hour of 1000 GPUs")
	}
	testHealthy(t, 125, 2, 8, time.Hour, 15*time.Second, 30*time.Second)
}

// TestHealthyFleetSixHours: a smaller fleet (32 GPUs, 8 engines, 8 NPUs) for six simulated
// hours, so that every baseline and window rolls over many times.
func TestHealthyFleetSixHours(t *testing.T) {
	if testing.Short() {
		t.Skip("six simulated hours")
	}
	testHealthy(t, 4, 2, 1, 6*time.Hour, 30*time.Second, time.Minute)
}

func testHealthy(t *testing.T, nodes, engines, npuNodes int, span, step, interval time.Duration) {
	t.Parallel()
	h := newHarness(t, interval, time.Hour)
	fl := newTestFleet(nodes, 8, engines, npuNodes, h.start)
	evals := 0
	fl.run(t, h.w, 0, span, step, func(el time.Duration) {
		if el%interval != 0 {
			return
		}
		h.eval(el)
		evals++
		if errs := h.ruleErrors(); len(errs) > 0 {
			t.Fatalf("at %s: %v", el, errs)
		}
		if f := h.firing(); len(f) > 0 {
			t.Fatalf("at %s: firing %v", el, f)
		}
		if el%(10*time.Minute) == 0 {
			if err := h.w.Truncate(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if reps := h.d.Reports(Filter{}); len(reps) > 0 {
		t.Fatalf("%d reports on a healthy fleet, first %+v", len(reps), reps[0])
	}
	t.Logf("%d series, %d evaluations over %s: no alert", h.w.NumSeries(), evals, span)
}
