package fleet

import (
	"strings"
	"testing"
)

// TestValuesLookHealthy: error counters stay at zero, counters never decrease, and gauges stay
// in their ranges, so that the rules see a healthy fleet.
func TestValuesLookHealthy(t *testing.T) {
	for i := range 2 * seriesPerNode {
		var name string
		for _, l := range Series(i) {
			if l.Name == "__name__" {
				name = l.Value
			}
		}
		prev := Value(i, 0)
		for k := 1; k < 50; k++ {
			v := Value(i, k)
			switch {
			case strings.Contains(name, "XID") || strings.Contains(name, "DBE") || strings.Contains(name, "REPLAY") ||
				strings.Contains(name, "FAILURE") || strings.Contains(name, "UNCORRECTABLE") || strings.Contains(name, "THROTTLE") ||
				strings.Contains(name, "preemptions"):
				if v != 0 {
					t.Fatalf("%s (series %d) = %v at step %d, want 0", name, i, v, k)
				}
			case strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") || strings.Contains(name, "ENERGY"):
				if v < prev {
					t.Fatalf("counter %s (series %d) went from %v to %v", name, i, prev, v)
				}
			case name == "DCGM_FI_DEV_GPU_TEMP":
				if v < 30 || v > 70 {
					t.Fatalf("%s = %v", name, v)
				}
			case name == "vllm:kv_cache_usage_perc":
				if v < 0 || v > 0.8 {
					t.Fatalf("%s = %v", name, v)
				}
			}
			prev = v
		}
	}
}

func BenchmarkValue(b *testing.B) {
	var s float64
	i := 0
	for b.Loop() {
		s += Value(i, i/100000)
		i++
	}
	_ = s
}
