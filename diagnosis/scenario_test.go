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

// TestScenarios injects one fault per pattern (and per alerting rule where a pattern has
// several) into a small fleet (one node of 8 GPUs, H100s unless the row says otherwise, with 4
// engines and 2 InfiniBand ports, one node of 8 Ascend NPUs), evaluates every rule file over
// the window every 15 s, and checks that exactly one report appears — the right pattern,
// device identity, conclusion and advice — within the rule's `for` (plus the time the
// expression's range needs to see the fault) plus two evaluation intervals, and that it
// resolves when the fault clears. A pattern that the catalog folds into another
// (suppressed_by) gets its symptom alone: a queue without a full KV cache, a TTFT breach
// without a queue.
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
		setup   func(f *testFleet) // other hardware than the default fleet's
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
		{
			name:    "G03 contained ECC error, its pending row remap folded in",
			fault:   fault{kind: "xid", code: 94, node: 0, target: 5, from: faultAt, to: faultAt + 6*time.Minute},
			pattern: "G03", device: "gpu/" + gpuUUID(0, 5),
			// The reset at `to` applies the remap; the XID stays in its 10m window 4m longer.
			clear: 5 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "xid_94")
				if !slices.Contains(relatedPatterns(r), "G05") {
					t.Errorf("related %v, want the pending row remap (G05) folded in", relatedPatterns(r))
				}
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if e := s["engine/node-0:8002"]; e.RouterAction != Deprioritize || e.Via != "gpu/"+gpuUUID(0, 5) {
					t.Errorf("engine state %+v, want deprioritized via the GPU", e)
				}
			},
		},
		{
			name:    "G04 row remapping failure",
			fault:   fault{kind: "remap_failure", node: 0, target: 6, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "G04", device: "gpu/" + gpuUUID(0, 6),
			clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "critical", Unroutable, "row_remap_failure")
				if r.Identity.Serial != "1653220000006" || r.Identity.PCIBusID != "00000000:78:00.0" {
					t.Errorf("identity %+v", r.Identity)
				}
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if e := s["engine/node-0:30003"]; e.RouterAction != Unroutable || e.Via != "gpu/"+gpuUUID(0, 6) {
					t.Errorf("engine state %+v, want unroutable via the GPU", e)
				}
			},
		},
		{
			name:    "G05 row remap pending",
			fault:   fault{kind: "remap_pending", node: 0, target: 7, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "G05", device: "gpu/" + gpuUUID(0, 7),
			detect: 5 * time.Minute, clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Observe, "row_remap_pending")
				if len(r.Overrides) != 0 || !strings.Contains(r.Conclusion, "row remap is pending") {
					t.Errorf("H100 advice: overrides %v, conclusion %q", r.Overrides, r.Conclusion)
				}
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if e, ok := s["engine/node-0:30003"]; ok {
					t.Errorf("engine state %+v: an observed GPU must not change its engines' routing", e)
				}
			},
		},
		{
			name: "G05 page retirement pending on a V100",
			setup: func(f *testFleet) {
				f.model, f.driver, f.vbios = "Tesla V100-SXM2-32GB", "470.182.03", "88.00.80.00.01"
			},
			fault:   fault{kind: "retired_pending", node: 0, target: 4, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "G05", device: "gpu/" + gpuUUID(0, 4),
			detect: 5 * time.Minute, clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Observe, "retired_pages_pending")
				if r.Identity.Model != "Tesla V100-SXM2-32GB" || !slices.Equal(r.Overrides, []string{"pre-ampere-page-retirement"}) ||
					!strings.Contains(r.Conclusion, "retires pages") {
					t.Errorf("V100 advice: model %q, overrides %v, conclusion %q", r.Identity.Model, r.Overrides, r.Conclusion)
				}
			},
		},
		{
			name: "G06 GSP timeout on an A100 with a driver before R535",
			setup: func(f *testFleet) {
				f.model, f.driver, f.vbios = "NVIDIA A100-SXM4-80GB", "525.85.12", "92.00.45.00.06"
			},
			fault:   fault{kind: "xid", code: 119, node: 0, target: 0, from: faultAt, to: faultAt + 2*time.Minute},
			pattern: "G06", device: "gpu/" + gpuUUID(0, 0),
			// The XID stays in the 10m window.
			clear: 9 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "critical", Unroutable, "xid_119")
				if r.Identity.Driver != "525.85.12" || !slices.Equal(r.Overrides, []string{"gsp-before-r535"}) ||
					!strings.Contains(r.Conclusion, "before R535") || !strings.Contains(strings.Join(r.Steps, " "), "NVreg_EnableGpuFirmware=0") {
					t.Errorf("R525 advice: driver %q, overrides %v, conclusion %q, steps %q", r.Identity.Driver, r.Overrides, r.Conclusion, r.Steps)
				}
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if e := s["engine/node-0:8000"]; e.RouterAction != Unroutable || e.Via != "gpu/"+gpuUUID(0, 0) {
					t.Errorf("engine state %+v, want unroutable via the GPU", e)
				}
			},
		},
		{
			name:    "G07 application XID alone",
			fault:   fault{kind: "xid", code: 13, node: 0, target: 2, from: faultAt, to: faultAt + 2*time.Minute},
			pattern: "G07", device: "gpu/" + gpuUUID(0, 2),
			clear: 9 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "xid_13")
				if len(r.Engines) != 1 || r.Engines[0].Pod != "sglang-node-0-1" {
					t.Errorf("engines on the GPU: %+v, want the pod to restart", r.Engines)
				}
			},
		},
		{
			name:    "G08 NVLink links down",
			fault:   fault{kind: "nvlink_down", node: 0, target: 4, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "G08", device: "gpu/" + gpuUUID(0, 4),
			detect: time.Minute, clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "critical", Deprioritize, "fewer_links_than_peers")
			},
		},
		{
			name:    "G08 NVLink error counters",
			fault:   fault{kind: "nvlink_errors", node: 0, target: 1, from: faultAt, to: faultAt + 12*time.Minute},
			pattern: "G08", device: "gpu/" + gpuUUID(0, 1),
			// The 5m rate reads errors for 5m after the last one.
			detect: 10 * time.Minute, clear: 5 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "nvlink_error_counters")
			},
		},
		{
			name:    "G09 PCIe replays",
			fault:   fault{kind: "pcie_replays", node: 0, target: 3, from: faultAt, to: faultAt + 12*time.Minute},
			pattern: "G09", device: "gpu/" + gpuUUID(0, 3),
			// The 5m rate passes 8/min 40 s into the fault, and falls below it 4m20s after.
			detect: 11 * time.Minute, clear: 5 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "pcie_replays_per_minute")
			},
		},
		{
			name: "G10 power brake on a PCIe L40S",
			setup: func(f *testFleet) {
				f.model, f.driver, f.vbios = "NVIDIA L40S", "535.104.05", "95.02.66.00.02"
			},
			fault:   fault{kind: "power_brake", node: 0, target: 5, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "G10", device: "gpu/" + gpuUUID(0, 5),
			detect: time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "power_brake_clock_event")
				if !slices.Equal(r.Overrides, []string{"pcie-card-airflow"}) {
					t.Errorf("L40S overrides %v, want the PCIe card's", r.Overrides)
				}
			},
		},
		{
			name:    "G11 temperature jump at the same load",
			fault:   fault{kind: "hot", node: 0, target: 6, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "G11", device: "gpu/" + gpuUUID(0, 6),
			// The 1m average sees the jump within a minute; then for: 5m.
			detect: 6 * time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "temperature_above_own_baseline")
			},
		},
		{
			// A GPU that ran hot before the gateway started has no jump of its own to report.
			name:    "G12 GPU hotter than its peers since the start",
			fault:   fault{kind: "hot", node: 0, target: 1, from: 0, to: 14 * time.Minute},
			pattern: "G12", device: "gpu/" + gpuUUID(0, 1),
			// for: 10m, once the 5m utilization averages that say "at the same load" have
			// their history.
			detect: 15 * time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "temperature_above_host_median")
			},
		},
		{
			name:    "N01 NPU unhealthy on an Atlas 300 inference card",
			setup:   func(f *testFleet) { f.npuModel = "Ascend310P3" },
			fault:   fault{kind: "npu_unhealthy", code: 0x80E18402, node: 1, target: 2, from: faultAt, to: faultAt + 3*time.Minute},
			pattern: "N01", device: "npu/node-1/2",
			detect: 15 * time.Second, clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "critical", Unroutable, "health_status_unhealthy")
				if r.Identity.UUID != "5A4B0001-00000002" || r.Identity.Model != "Ascend310P3" || !slices.Equal(r.Overrides, []string{"atlas-inference-card"}) {
					t.Errorf("identity %+v, overrides %v", r.Identity, r.Overrides)
				}
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if n := s["npu/node-1/2"]; n.RouterAction != Unroutable || n.Pattern != "N01" {
					t.Errorf("NPU state %+v, want N01 unroutable", n)
				}
			},
		},
		{
			name:    "N01 NPU state unknown",
			fault:   fault{kind: "npu_unknown", node: 1, target: 6, from: faultAt, to: faultAt + 3*time.Minute},
			pattern: "N01", device: "npu/node-1/6",
			detect: time.Minute, clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "critical", Unroutable, "health_status_unknown")
				if len(r.Overrides) != 0 {
					t.Errorf("910B overrides %v, want none", r.Overrides)
				}
			},
		},
		{
			name:    "N03 NPU HBM multi-bit error",
			fault:   fault{kind: "npu_hbm_dbe", node: 1, target: 3, from: faultAt, to: faultAt + 2*time.Minute},
			pattern: "N03", device: "npu/node-1/3",
			// The double-bit count stays raised in the 10m window.
			clear: 9 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "hbm_dbe_count", "fault_code_80E01801")
			},
		},
		{
			name:    "N04 NPU HCCS CRC errors",
			fault:   fault{kind: "npu_hccs_errors", node: 1, target: 4, from: faultAt, to: faultAt + 12*time.Minute},
			pattern: "N04", device: "npu/node-1/4",
			detect: 10 * time.Minute, clear: 5 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "hccs_crc_errors")
			},
		},
		{
			name:    "E02 queue build-up without KV saturation",
			fault:   fault{kind: "queue_buildup", node: 0, target: 2, from: faultAt, to: faultAt + 6*time.Minute},
			pattern: "E02", device: "engine/node-0:8002",
			detect: 3 * time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "requests_waiting")
				if r.Identity.Pod != "vllm-node-0-2" || r.Identity.Model != "meta-llama/Llama-3.1-8B-Instruct" {
					t.Errorf("identity %+v", r.Identity)
				}
			},
		},
		{
			name:    "E03 TTFT SLO breach from long prefills",
			fault:   fault{kind: "slow_prefill", node: 0, target: 1, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "E03", device: "engine/node-0:30001",
			// p95 over the 5m rate passes 2 s once 5% of the requests are slow; it falls back
			// once fewer than 5% of the last 5m were.
			detect: 5*time.Minute + 30*time.Second, clear: 5 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "ttft_p95_seconds")
				if r.Identity.Pod != "sglang-node-0-1" {
					t.Errorf("identity %+v", r.Identity)
				}
			},
		},
		{
			name:    "E04 preemption storm without KV saturation",
			fault:   fault{kind: "preemption_storm", node: 0, target: 0, from: faultAt, to: faultAt + 6*time.Minute},
			pattern: "E04", device: "engine/node-0:8000",
			// 0.5/s passes 0.1/s over 5m after a minute; it falls below 4 minutes after.
			detect: 3 * time.Minute, clear: 4 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "preemptions_per_second")
			},
		},
		{
			name:    "E05 engine down",
			fault:   fault{kind: "engine_down", node: 0, target: 3, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "E05", device: "engine/node-0:30003",
			detect: time.Minute, clear: 30 * time.Second,
			check: func(t *testing.T, r Report) {
				expect(t, r, "critical", Unroutable, "scrape_failed")
			},
			states: func(t *testing.T, s map[string]DeviceState) {
				if e := s["engine/node-0:30003"]; e.RouterAction != Unroutable || e.Via != "" {
					t.Errorf("engine state %+v, want unroutable on its own report", e)
				}
			},
		},
		{
			name:    "E06 prefix-cache collapse",
			fault:   fault{kind: "prefix_collapse", node: 0, target: 2, from: faultAt, to: faultAt + 16*time.Minute},
			pattern: "E06", device: "engine/node-0:8002",
			// The 5m ratio falls below half its baseline after 3-4 minutes; then for: 10m.
			detect: 14 * time.Minute, clear: 2 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "hit_ratio_below_half_baseline")
			},
		},
		{
			name:    "E07 KV transfer failures",
			fault:   fault{kind: "kv_transfer_failures", node: 0, target: 3, from: faultAt, to: faultAt + 5*time.Minute},
			pattern: "E07", device: "engine/node-0:30003",
			// The 5m increase reads the last failure for 5 minutes.
			detect: 2 * time.Minute, clear: 6 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "kv_transfer_failed")
			},
		},
		{
			name:    "R01 InfiniBand link flapping",
			fault:   fault{kind: "link_flapping", node: 0, target: 0, from: faultAt, to: faultAt + 4*time.Minute},
			pattern: "R01", device: "network/node-0/mlx5_0/1",
			// Down twice: the second drop is 90 s in. The 10m window keeps the drops.
			detect: 90 * time.Second, clear: 9 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "warning", Deprioritize, "link_downed")
			},
		},
		{
			name:    "R02 InfiniBand symbol errors",
			fault:   fault{kind: "link_errors", node: 0, target: 1, from: faultAt, to: faultAt + 12*time.Minute},
			pattern: "R02", device: "network/node-0/mlx5_1/1",
			detect: 10 * time.Minute, clear: 5 * time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "symbol_errors")
				if r.Identity.Index != "mlx5_1" || r.Identity.Port != "1" || len(r.Engines) != 4 {
					t.Errorf("identity %+v, engines %d", r.Identity, len(r.Engines))
				}
			},
		},
		{
			name:    "R03 InfiniBand link saturated",
			fault:   fault{kind: "link_saturation", node: 0, target: 0, from: faultAt, to: faultAt + 8*time.Minute},
			pattern: "R03", device: "network/node-0/mlx5_0/1",
			// The 1m rate, then for: 5m.
			detect: 6 * time.Minute, clear: time.Minute,
			check: func(t *testing.T, r Report) {
				expect(t, r, "info", Observe, "ib_transmit_utilization")
			},
		},
	}
	cat := loadCatalog(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, interval, time.Hour)
			fl := newTestFleet(1, 8, 4, 1, h.start, tc.fault)
			if tc.setup != nil {
				tc.setup(fl)
			}
			var firstAt, resolvedAt time.Duration = -1, -1
			var sawStates bool
			end := tc.fault.to + tc.clear + 2*interval
			fl.run(t, h.w, 0, end, step, func(el time.Duration) {
				if el%interval != 0 {
					return
				}
				h.eval(el)
				if errs := h.ruleErrors(); len(errs) > 0 {
					t.Fatalf("at %s: %v", el, errs)
				}
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

// expect checks a report's severity, router action and that its evidence has the signals.
func expect(t *testing.T, r Report, severity string, action RouterAction, signals ...string) {
	t.Helper()
	if r.Severity != severity || r.RouterAction != action {
		t.Errorf("severity %s, router action %s; want %s, %s", r.Severity, r.RouterAction, severity, action)
	}
	got := map[string]bool{}
	for _, e := range r.Evidence {
		got[e.Signal] = true
	}
	for _, s := range signals {
		if !got[s] {
			t.Errorf("evidence signals %v, want %s", got, s)
		}
	}
}

func relatedPatterns(r Report) []string {
	var out []string
	for _, x := range r.Related {
		out = append(out, x.Pattern)
	}
	return out
}
