package diagnosis

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestScenarios injects one fault per pattern into a small fleet (one node of 8 H100s with 4
// engines and 2 InfiniBand ports, one node of 8 Ascend NPUs), evaluates every rule file over
// the window every 15 s, and checks that exactly one report appears — the right pattern,
// device identity, conclusion and advice — within the rule's `for` (plus the time the
// expression's range needs to see the fault) plus two evaluation intervals, and that it
// resolves when the fault clears.
func TestScenarios(t *testing.T) {
	const (
		interval = 15 * time.Second
		step     = 5 * time.Second
		faultAt  = 15 * time.Minute // after 10m of history: new XID counters need it
	)
	uuid3 := gpuUUID(0, 3)
	cases := []struct {
		name    string
		fault   fault
		pattern string
		device  string
		// detect: the rule's `for` plus the time its expression needs to see the fault.
		detect time.Duration
		// clear: how long after the fault ends the report must be resolved.
		clear  time.Duration
		check  func(t *testing.T, r Report)
		states func(t *testing.T, s map[string]DeviceState)
	}{
		{
			name:    "G01 XID 79, GPU fell off the bus",
			fault:   fault{kind: "xid79", node: 0, target: 3, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "G01", device: "gpu/" + uuid3,
			// Once rebooted, the last XID and the XID counter stay visible for the 5m lookback.
			clear: 6 * time.Minute,
			check: func(t *testing.T, r Report) {
				want := Identity{UUID: uuid3, Serial: "1653220000003", Index: "3", PCIBusID: "00000000:48:00.0",
					Model: "NVIDIA H100 80GB HBM3", Driver: "550.54.15", Firmware: "96.00.99.00.01"}
				if r.Identity != want {
					t.Errorf("identity %+v, want %+v", r.Identity, want)
				}
				if len(r.Engines) != 1 || r.Engines[0].Instance != "node-0:30001" || r.Engines[0].Pod != "sglang-node-0-1" {
					t.Errorf("engines on the GPU: %+v, want the sglang pod on node-0:30001", r.Engines)
				}
				if !slices.Contains(r.Overrides, "hgx-nvswitch") {
					t.Errorf("H100 advice should include the NVSwitch step, overrides %v", r.Overrides)
				}
				signals := map[string]bool{}
				for _, e := range r.Evidence {
					signals[e.Signal] = true
				}
				if !signals["xid_79"] || !signals["gpu_is_lost"] {
					t.Errorf("evidence signals %v, want xid_79 and gpu_is_lost", signals)
				}
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if g := s["gpu/"+uuid3]; g.RouterAction != Unroutable || g.Pattern != "G01" {
					t.Errorf("GPU state %+v, want G01 unroutable", g)
				}
				if e := s["engine/node-0:30001"]; e.RouterAction != Unroutable || e.Via != "gpu/"+uuid3 {
					t.Errorf("engine state %+v, want unroutable via the GPU", e)
				}
			},
		},
		{
			name:    "G02 double-bit ECC storm",
			fault:   fault{kind: "dbe_storm", node: 0, target: 1, from: faultAt, to: faultAt + 3*time.Minute},
			pattern: "G02", device: "gpu/" + gpuUUID(0, 1),
			// The XID 48 counter keeps the 10m increase above zero, and stays visible for the
			// 5m lookback after the reset.
			clear: 11 * time.Minute,
			check: func(t *testing.T, r Report) {
				if r.Identity.Serial != "1653220000001" || r.RouterAction != Unroutable {
					t.Errorf("report %+v", r)
				}
			},
		},
		{
			name:    "G10 thermal throttling",
			fault:   fault{kind: "thermal", node: 0, target: 2, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "G10", device: "gpu/" + gpuUUID(0, 2),
			detect: time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				if r.RouterAction != Deprioritize || !slices.Contains(r.Overrides, "sxm-cold-plate") {
					t.Errorf("report %+v", r)
				}
			},
		},
		{
			name:    "E01 KV-cache saturation",
			fault:   fault{kind: "kv_saturation", node: 0, target: 0, from: faultAt, to: faultAt + 6*time.Minute},
			pattern: "E01", device: "engine/node-0:8000",
			detect: 2 * time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				if r.Identity.Instance != "node-0:8000" || r.Identity.Pod != "vllm-node-0-0" || r.RouterAction != Deprioritize {
					t.Errorf("report %+v", r)
				}
				var rel []string
				for _, x := range r.Related {
					rel = append(rel, x.Pattern)
				}
				if !slices.Contains(rel, "E02") || !slices.Contains(rel, "E04") {
					t.Errorf("related %v, want the queue build-up and preemption storm folded in", rel)
				}
			},
		},
		{
			name:    "E05 engine stall",
			fault:   fault{kind: "engine_stall", node: 0, target: 2, from: faultAt, to: faultAt + 5*time.Minute},
			pattern: "E05", device: "engine/node-0:8002",
			// rate(generation_tokens[1m]) reads 0 one minute after the last token, then for: 1m.
			detect: 2 * time.Minute, clear: 2 * time.Minute,
			check: func(t *testing.T, r Report) {
				if r.RouterAction != Unroutable || r.Severity != "critical" {
					t.Errorf("report %+v", r)
				}
			},
		},
		{
			name:    "N02 NPU parameter-plane link down",
			fault:   fault{kind: "npu_link_down", node: 1, target: 5, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "N02", device: "npu/node-1/5",
			detect: 20 * time.Second, clear: 90 * time.Second,
			check: func(t *testing.T, r Report) {
				if r.Identity.UUID != "5A4B0001-00000005" || r.Identity.Model != "Ascend910B3" || r.Identity.Index != "5" {
					t.Errorf("identity %+v", r.Identity)
				}
			},
		},
		{
			name:    "R01 InfiniBand port down",
			fault:   fault{kind: "link_down", node: 0, target: 1, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "R01", device: "network/node-0/mlx5_1/1",
			detect: 30 * time.Second, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				if len(r.Engines) != 4 {
					t.Errorf("engines on the node: %+v, want 4", r.Engines)
				}
			},
		},
	}
	cat := loadCatalog(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, interval, time.Hour)
			fl := newTestFleet(1, 8, 4, 1, h.start, tc.fault)
			var firstAt, resolvedAt time.Duration = -1, -1
			var sawStates bool
			end := tc.fault.to + tc.clear + 2*interval
			fl.run(t, h.w, 0, end, step, func(el time.Duration) {
				if el%interval != 0 {
					return
				}
				h.eval(el)
				reps := h.d.Reports(Filter{})
				if el < tc.fault.from && len(reps) > 0 {
					t.Fatalf("at %s, before the fault: %d reports, first %s %s (firing: %v)", el, len(reps), reps[0].Pattern, reps[0].Device, h.firing())
				}
				if len(reps) > 1 {
					var ps []string
					for _, r := range reps {
						ps = append(ps, r.Pattern+" "+r.Device+" "+r.State)
					}
					t.Fatalf("at %s: %d reports %v, want one", el, len(reps), ps)
				}
				if len(reps) == 1 {
					if firstAt < 0 {
						firstAt = el
					}
					if reps[0].State == StateResolved && resolvedAt < 0 {
						resolvedAt = el
					}
					if reps[0].State == StateFiring && tc.states != nil && !sawStates {
						sawStates = true
						tc.states(t, h.d.DeviceStates())
						if n := testutil.CollectAndCount(h.d.metrics.active); n != 1 {
							t.Errorf("eagle_eye_diagnosis_active has %d series while firing, want 1", n)
						}
					}
				}
			})
			reps := h.d.Reports(Filter{})
			if len(reps) != 1 {
				t.Fatalf("%d reports at the end, want 1", len(reps))
			}
			r := reps[0]
			if r.Pattern != tc.pattern || r.Device != tc.device {
				t.Fatalf("report %s on %s, want %s on %s", r.Pattern, r.Device, tc.pattern, tc.device)
			}
			if budget := tc.detect + 2*interval; firstAt-tc.fault.from > budget {
				t.Errorf("reported %s after the fault, want within %s", firstAt-tc.fault.from, budget)
			}
			if resolvedAt < 0 || resolvedAt-tc.fault.to > tc.clear {
				t.Errorf("resolved at %s (fault cleared at %s), want within %s", resolvedAt, tc.fault.to, tc.clear)
			}
			if !strings.Contains(r.Device, r.Identity.UUID) && r.Component == "gpu" {
				t.Errorf("device %s without its UUID %s", r.Device, r.Identity.UUID)
			}
			adv, _ := cat.Lookup(tc.pattern, DeviceInfo{Model: r.Identity.Model, Driver: r.Identity.Driver, Firmware: r.Identity.Firmware})
			if r.Conclusion != adv.Conclusion || !slices.Equal(r.Steps, adv.Steps) || r.RouterAction != adv.RouterAction {
				t.Errorf("advice %q %q %s, want the catalog's %q %q %s", r.Conclusion, r.Steps, r.RouterAction, adv.Conclusion, adv.Steps, adv.RouterAction)
			}
			if len(r.Evidence) == 0 || r.Evidence[0].Expr == "" || r.Evidence[0].Threshold == "" {
				t.Errorf("evidence %+v", r.Evidence)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			if n := testutil.CollectAndCount(h.d.metrics.active); n != 0 {
				t.Errorf("eagle_eye_diagnosis_active has %d series after resolution", n)
			}
			// Published: firing then resolved, on the severity's subject.
			h.pub.mu.Lock()
			defer h.pub.mu.Unlock()
			var states []string
			for i, p := range h.pub.payloads {
				var got Report
				if err := json.Unmarshal(p, &got); err != nil {
					t.Fatal(err)
				}
				if h.pub.subjects[i] != "eagle_eye.diagnosis."+got.Severity || got.ID != r.ID {
					t.Errorf("published %s for %s", h.pub.subjects[i], got.ID)
				}
				states = append(states, got.State)
			}
			if fmt.Sprint(states) != "[firing resolved]" {
				t.Errorf("published states %v, want [firing resolved]", states)
			}
			t.Logf("reported %s after the fault; resolved %s after it cleared", firstAt-tc.fault.from, resolvedAt-tc.fault.to)
		})
	}
}
