package simulate

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

func TestParseFault(t *testing.T) {
	f, err := ParseFault("xid79@node-1/gpu-3@30s")
	if err != nil || f.Kind != XID || f.XID != 79 || f.Node != "node-1" || f.Target != "gpu-3" || f.At != 30*time.Second {
		t.Fatalf("%+v %v", f, err)
	}
	if f, err = ParseFault("npu_link_down@node-3/npu-2@1m+30s"); err != nil || f.Kind != NPULinkDown || f.Target != "npu-2" {
		t.Fatalf("%+v %v", f, err)
	}
	f, err = ParseFault("link_down@node-2/mlx5_0/1@45s+1m")
	if err != nil || f.Target != "mlx5_0/1" || f.Duration != time.Minute {
		t.Fatalf("%+v %v", f, err)
	}
	for _, bad := range []string{"", "xid@node-1@1s", "melt@node-1@1s", "thermal@node-1", "thermal@@1s", "thermal@node-1@soon", "thermal@node-1@1s+0s"} {
		if _, err := ParseFault(bad); err == nil {
			t.Errorf("ParseFault(%q) accepted", bad)
		}
	}
}

// collect runs the fleet at start+el and indexes the values by name and a key label.
func collect(t *testing.T, f *Fleet, start time.Time, el time.Duration) map[string]map[string]float64 {
	t.Helper()
	a := probe.NewAppender(start.Add(el))
	if err := f.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, s := range a.Series() {
		k := ""
		for _, l := range s.Labels {
			if l.Name == "node" || l.Name == "gpu" || l.Name == "instance" || l.Name == "id" || l.Name == "code" || l.Name == "device" && !strings.HasPrefix(l.Value, "nvidia") || l.Name == "xid" {
				k += l.Name + "=" + l.Value + ","
			}
		}
		if out[s.Name()] == nil {
			out[s.Name()] = map[string]float64{}
		}
		out[s.Name()][k] = s.Samples[0].V
	}
	return out
}

func TestDefaultFleet(t *testing.T) {
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_000_000, 0)
	v := collect(t, f, start, 0)
	if n := len(v["DCGM_FI_DEV_GPU_TEMP"]); n != 24 {
		t.Errorf("GPUs = %d, want 3 nodes × 8", n)
	}
	if n := len(v["vllm:kv_cache_usage_perc"]) + len(v["sglang:token_usage"]); n != 12 {
		t.Errorf("engines = %d, want 3 × 4", n)
	}
	if n := len(v["npu_chip_info_health_status"]); n != 8 {
		t.Errorf("NPUs = %d, want 8", n)
	}
	for _, name := range []string{"npu_chip_info_network_status", "npu_chip_info_link_status", "npu_chip_info_hbm_ecc_enable_flag",
		"npu_chip_info_hbm_ecc_single_bit_error_cnt", "npu_chip_info_hbm_ecc_total_single_bit_error_cnt", "npu_chip_info_hbm_ecc_single_bit_isolated_pages_cnt"} {
		if n := len(v[name]); n != 8 {
			t.Errorf("%s: %d chips, want 8", name, n)
		}
	}
	if n := len(v["npu_chip_info_error_code"]); n != 0 {
		t.Errorf("error codes on a healthy fleet: %v", v["npu_chip_info_error_code"])
	}
	if n := len(v["eagle_eye_probe_simulated"]); n != 4 {
		t.Errorf("simulated markers = %d, want one per node (4)", n)
	}
	if n := len(v["vllm:inter_token_latency_seconds_count"]) + len(v["sglang:inter_token_latency_seconds_count"]); n != 12 {
		t.Errorf("inter-token latency histograms = %d, want one per engine (12)", n)
	}
	if n := len(v["inference_pool_ready_pods"]); n != 4 {
		t.Errorf("endpoint pickers = %d, want one per model (4)", n)
	}
	if n := len(v["node_infiniband_symbol_error_total"]); n != 6 {
		t.Errorf("InfiniBand ports with error counters = %d, want 3 × 2", n)
	}
	if n := len(v["node_network_up"]); n != 8 {
		t.Errorf("NICs = %d, want 2 on each of the 4 nodes", n)
	}
}

func TestFaults(t *testing.T) {
	var faults []Fault
	for _, s := range []string{"xid79@node-1/gpu-3@10s", "thermal@node-0/gpu-2@5s", "kv_saturation@node-0/engine-0@5s",
		"engine_stall@node-0/engine-1@5s", "link_down@node-2/mlx5_0/1@5s", "dbe_storm@node-2/gpu-0@5s", "npu_fault@node-3/npu-1@5s",
		"npu_link_down@node-3/npu-4@5s+10s", "link_down@node-3/npu-6@20s", "npu_fault@node-3/npu-6@25s"} {
		ft, err := ParseFault(s)
		if err != nil {
			t.Fatal(err)
		}
		faults = append(faults, ft)
	}
	f, err := New(Options{Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_000_000, 0)
	var v map[string]map[string]float64
	for s := 0; s <= 30; s++ {
		v = collect(t, f, start, time.Duration(s)*time.Second)
	}
	lost := "gpu=3,node=node-1,"
	if v["eagle_eye_gpu_reachable"][lost] != 0 || v["DCGM_FI_DEV_XID_ERRORS"][lost] != 79 || v["eagle_eye_gpu_xid_errors_total"][lost+"xid=79,"] != 1 {
		t.Errorf("xid79: reachable %v last %v", v["eagle_eye_gpu_reachable"][lost], v["DCGM_FI_DEV_XID_ERRORS"][lost])
	}
	if _, ok := v["DCGM_FI_DEV_GPU_TEMP"][lost]; ok {
		t.Error("a GPU off the bus must not report telemetry")
	}
	if got := v["DCGM_FI_DEV_GPU_TEMP"]["gpu=2,node=node-0,"]; got < 85 {
		t.Errorf("thermal: temp %v", got)
	}
	if got := v["vllm:kv_cache_usage_perc"]["instance=node-0:8000,node=node-0,"]; got != 0.99 {
		t.Errorf("kv saturation: %v", got)
	}
	if got := v["sglang:num_running_reqs"]["instance=node-0:30001,node=node-0,"]; got != 0 {
		t.Errorf("stall: running %v", got)
	}
	if got := v["node_infiniband_state_id"]["device=mlx5_0,node=node-2,"]; got != 1 {
		t.Errorf("link down: state %v", got)
	}
	if got := v["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"]["gpu=0,node=node-2,"]; got < 100 {
		t.Errorf("dbe storm: %v", got)
	}
	if got := v["npu_chip_info_health_status"]["id=1,node=node-3,"]; got != 0 {
		t.Errorf("npu fault: %v", got)
	}
	if got := v["npu_chip_info_hbm_ecc_double_bit_error_cnt"]["id=1,node=node-3,"]; got < 20 {
		t.Errorf("npu fault: HBM DBE %v", got)
	}
	if v["npu_chip_info_error_code"]["id=1,node=node-3,"] != 0x80E01801 || v["eagle_eye_npu_error_code_info"]["code=80E01801,id=1,node=node-3,"] != 1 {
		t.Errorf("npu fault: error codes %v", v["npu_chip_info_error_code"])
	}
	// npu-4's link came back at 15 s; npu-6's went down at 20 s, then it faulted too.
	for id, want := range map[string]float64{"4": 1, "6": 0, "0": 1} {
		k := "id=" + id + ",node=node-3,"
		if v["npu_chip_info_link_status"][k] != want || v["npu_chip_info_network_status"][k] != want {
			t.Errorf("npu-%s: link %v network %v, want %v", id, v["npu_chip_info_link_status"][k], v["npu_chip_info_network_status"][k], want)
		}
	}
	if v["npu_chip_info_error_code"]["id=6,node=node-3,"] != 0x80E01801 || v["npu_chip_info_error_code_1"]["id=6,node=node-3,"] != 0x81078603 ||
		v["eagle_eye_npu_error_code_info"]["code=81078603,id=6,node=node-3,"] != 1 {
		t.Errorf("npu-6: error codes %v %v", v["npu_chip_info_error_code"], v["npu_chip_info_error_code_1"])
	}
	if _, ok := v["npu_chip_info_error_code"]["id=4,node=node-3,"]; ok {
		t.Error("npu-4: error code after its link came back")
	}
	if _, err := New(Options{Faults: []Fault{{Kind: Thermal, Node: "node-99"}}}); err == nil {
		t.Error("a fault on a missing node was accepted")
	}
}

// run collects the fleet every second from start to start+span and returns the last
// collection's series.
func run(t *testing.T, f *Fleet, start time.Time, span time.Duration) []remotewrite.Series {
	t.Helper()
	var out []remotewrite.Series
	for el := time.Duration(0); el <= span; el += time.Second {
		a := probe.NewAppender(start.Add(el))
		if err := f.Collect(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		out = a.Series()
	}
	return out
}

// labelsOf returns a series' labels without __name__, as a map.
func labelsOf(s remotewrite.Series) map[string]string {
	m := map[string]string{}
	for _, l := range s.Labels {
		if l.Name != "__name__" {
			m[l.Name] = l.Value
		}
	}
	return m
}

// pick returns the series named name whose labels include every pair of match.
func pick(ss []remotewrite.Series, name string, match ...string) []remotewrite.Series {
	var out []remotewrite.Series
next:
	for _, s := range ss {
		if s.Name() != name {
			continue
		}
		ls := labelsOf(s)
		for i := 0; i+1 < len(match); i += 2 {
			if ls[match[i]] != match[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// sum adds the newest values of the series named name matching match.
func sum(ss []remotewrite.Series, name string, match ...string) float64 {
	v := 0.0
	for _, s := range pick(ss, name, match...) {
		v += s.Samples[len(s.Samples)-1].V
	}
	return v
}

// checkHistogram checks one classic histogram: bucket counters with increasing le and
// non-decreasing counts, +Inf equal to _count, every series a counter with the same labels
// besides le; it returns the mean observation (_sum / _count).
func checkHistogram(t *testing.T, ss []remotewrite.Series, name string, match ...string) float64 {
	t.Helper()
	buckets := pick(ss, name+"_bucket", match...)
	sums, counts := pick(ss, name+"_sum", match...), pick(ss, name+"_count", match...)
	if len(buckets) < 2 || len(sums) != 1 || len(counts) != 1 {
		t.Fatalf("%s%v: %d buckets, %d _sum, %d _count, want one histogram", name, match, len(buckets), len(sums), len(counts))
	}
	want := labelsOf(counts[0])
	prevLE, prevN := math.Inf(-1), 0.0
	for _, s := range append(append(buckets, sums...), counts...) {
		if s.Type != remotewrite.Counter {
			t.Errorf("%s: type %v, want counter", s.Name(), s.Type)
		}
		ls := labelsOf(s)
		le := ls["le"]
		delete(ls, "le")
		if fmt.Sprint(ls) != fmt.Sprint(want) {
			t.Errorf("%s{le=%q}: labels %v, want %v", s.Name(), le, ls, want)
		}
		if le == "" {
			continue
		}
		ub, err := strconv.ParseFloat(le, 64)
		v := s.Samples[0].V
		if err != nil || ub <= prevLE || v < prevN {
			t.Errorf("%s: bucket le=%q count %v after le=%v count %v", name, le, v, prevLE, prevN)
		}
		prevLE, prevN = ub, v
	}
	n := counts[0].Samples[0].V
	if !math.IsInf(prevLE, 1) || prevN != n || n <= 0 {
		t.Fatalf("%s: +Inf bucket %v (last le %v), _count %v", name, prevN, prevLE, n)
	}
	return sums[0].Samples[0].V / n
}

func TestInterTokenLatency(t *testing.T) {
	f, err := New(Options{Nodes: 1, NPUNodes: -1})
	if err != nil {
		t.Fatal(err)
	}
	ss := run(t, f, time.Unix(1_000_000, 0), 30*time.Second)
	for _, tc := range []struct{ name, instance string }{
		{"vllm:inter_token_latency_seconds", "node-0:8000"},
		{"sglang:inter_token_latency_seconds", "node-0:30001"},
	} {
		mean := checkHistogram(t, ss, tc.name, "instance", tc.instance)
		// A decode step of 8–32 running requests at 100–1000 tokens/s.
		if mean < 0.02 || mean > 0.1 {
			t.Errorf("%s: mean %v s, want 20–100 ms", tc.name, mean)
		}
		ls := labelsOf(pick(ss, tc.name+"_count", "instance", tc.instance)[0])
		for _, l := range []string{"model_name", "engine", "job", "pod", "namespace", "node"} {
			if ls[l] == "" {
				t.Errorf("%s: no %s label: %v", tc.name, l, ls)
			}
		}
		// One interval per generated token but the first of each request.
		kind := tc.name[:strings.IndexByte(tc.name, ':')]
		gen, n := sum(ss, kind+":generation_tokens_total", "instance", tc.instance), sum(ss, tc.name+"_count", "instance", tc.instance)
		if n > gen || n < 0.99*gen-gen/outputTokens-2 {
			t.Errorf("%s: %v intervals for %v generated tokens", tc.name, n, gen)
		}
	}
}

func TestEndpointPicker(t *testing.T) {
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := run(t, f, time.Unix(1_000_000, 0), time.Minute)
	pools := pick(ss, "inference_pool_ready_pods")
	if len(pools) != len(models) {
		t.Fatalf("%d pools, want one per model (%d)", len(pools), len(models))
	}
	for _, m := range models {
		name := poolName(m)
		if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(name) {
			t.Errorf("pool name %q is not a Kubernetes name", name)
		}
		engines := pick(ss, "up", "model_name", m)
		if got := sum(ss, "inference_pool_ready_pods", "name", name); got != float64(len(engines)) || got == 0 {
			t.Errorf("%s: ready pods %v, want its %d engines", name, got, len(engines))
		}
		if got := pick(ss, "inference_pool_per_pod_queue_size", "name", name); len(got) != len(engines) {
			t.Errorf("%s: per-pod queue sizes %d, want %d", name, len(got), len(engines))
		}
		target := labelsOf(pick(ss, "inference_pool_ready_pods", "name", name)[0])
		if target["job"] != "epp" || target["pod"] != name+"-epp" || target["namespace"] != "inference" || target["node"] == "" || target["instance"] == "" {
			t.Errorf("%s: target labels %v", name, target)
		}
		if v := sum(ss, "up", "job", "epp", "pod", name+"-epp"); v != 1 {
			t.Errorf("%s: up %v", name, v)
		}

		// The picker sees what its engines finished, and the requests it refused.
		finished := sum(ss, "vllm:request_success_total", "model_name", m) + sum(ss, "sglang:num_requests_total", "model_name", m)
		reqs := sum(ss, "inference_objective_request_total", "model_name", m, "target_model_name", m)
		errs := sum(ss, "inference_objective_request_error_total", "model_name", m)
		if finished < 50 || reqs < finished || reqs > finished*1.01+float64(len(engines))+1 {
			t.Errorf("%s: picker counted %v requests, engines finished %v", m, reqs, finished)
		}
		if errs > reqs*0.01 {
			t.Errorf("%s: %v errors of %v requests on a healthy pool", m, errs, reqs)
		}
		prompt := sum(ss, "vllm:prompt_tokens_total", "model_name", m) + sum(ss, "sglang:prompt_tokens_total", "model_name", m)
		if in := sum(ss, "inference_objective_input_tokens_sum", "model_name", m); math.Abs(in-prompt) > float64(len(engines))+1 {
			t.Errorf("%s: picker input tokens %v, engines' prompt tokens %v", m, in, prompt)
		}

		lat := checkHistogram(t, ss, "inference_objective_request_duration_seconds", "model_name", m)
		ntpot := checkHistogram(t, ss, "inference_objective_normalized_time_per_output_token_seconds", "model_name", m)
		in := checkHistogram(t, ss, "inference_objective_input_tokens", "model_name", m)
		out := checkHistogram(t, ss, "inference_objective_output_tokens", "model_name", m)
		if lat < 3 || lat > 30 || ntpot < 0.015 || ntpot > 0.15 || math.Abs(ntpot-lat/out) > 0.01 {
			t.Errorf("%s: mean latency %v s, NTPOT %v s for %v output tokens", m, lat, ntpot, out)
		}
		if math.Abs(out-outputTokens) > 1 || in < 300 || in > 2000 {
			t.Errorf("%s: mean %v input and %v output tokens per request", m, in, out)
		}
		kv := sum(ss, "inference_pool_average_kv_cache_utilization", "name", name)
		if kv < 0.25 || kv > 0.75 {
			t.Errorf("%s: mean KV-cache use %v", name, kv)
		}
		if q := sum(ss, "inference_pool_average_queue_size", "name", name); q < 0 || q > 9 {
			t.Errorf("%s: mean queue %v", name, q)
		}
		if r := sum(ss, "inference_objective_running_requests", "model_name", m); r < 8*float64(len(engines)) {
			t.Errorf("%s: %v requests in flight", m, r)
		}
	}
	for _, s := range ss {
		n := s.Name()
		if !strings.HasPrefix(n, "inference_") {
			continue
		}
		want := remotewrite.Gauge
		if strings.HasSuffix(n, "_total") || strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count") {
			want = remotewrite.Counter
		}
		if s.Type != want {
			t.Errorf("%s: type %v, want %v", n, s.Type, want)
		}
	}
}

// TestPickerUnderFaults: a saturated engine raises its pool's KV-cache mean and queue, and a
// pool whose every engine is saturated sheds requests (InferencePoolResourceExhausted).
func TestPickerUnderFaults(t *testing.T) {
	var faults []Fault
	for _, s := range []string{"kv_saturation@node-0/engine-0@0s", "kv_saturation@node-0/engine-1@0s"} {
		ft, err := ParseFault(s)
		if err != nil {
			t.Fatal(err)
		}
		faults = append(faults, ft)
	}
	// One node, two engines: each model's pool has a single engine, both saturated.
	f, err := New(Options{Nodes: 1, EnginesPerNode: 2, NPUNodes: -1, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	ss := run(t, f, time.Unix(1_000_000, 0), 30*time.Second)
	if n := len(pick(ss, "inference_pool_ready_pods")); n != 2 {
		t.Fatalf("%d pools, want 2", n)
	}
	m := models[0]
	if kv := sum(ss, "inference_pool_average_kv_cache_utilization", "name", poolName(m)); kv != 0.99 {
		t.Errorf("pool KV-cache mean %v, want the saturated engine's 0.99", kv)
	}
	if q := sum(ss, "inference_pool_average_queue_size", "name", poolName(m)); q < 60 {
		t.Errorf("pool queue %v after 30 s of saturation", q)
	}
	shed := sum(ss, "inference_objective_request_error_total", "model_name", m, "error_code", "InferencePoolResourceExhausted")
	reqs := sum(ss, "inference_objective_request_total", "model_name", m)
	if shed < 1 || shed > reqs*0.15 {
		t.Errorf("shed %v of %v requests", shed, reqs)
	}
}

// TestNetwork: InfiniBand ports carry node_exporter's error counters and NICs node_network_*;
// on a healthy fleet errors do not grow, links stay up and below 90% of their rate (the
// thresholds of rules/network.rules.yml); a link_down fault counts one link-down event.
func TestNetwork(t *testing.T) {
	ft, err := ParseFault("link_down@node-1/mlx5_1/1@10s")
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{Faults: []Fault{ft}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_000_000, 0)
	first := run(t, f, start, 0)
	var last []remotewrite.Series
	maxUse := 0.0
	for el := time.Second; el <= 3*time.Minute; el += time.Second {
		a := probe.NewAppender(start.Add(el))
		if err := f.Collect(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		last = a.Series()
		for _, s := range pick(last, "eagle_eye_network_transmit_bytes_per_second") {
			ls := labelsOf(s)
			speed := sum(last, "node_infiniband_rate_bytes_per_second", "node", ls["node"], "device", ls["device"]) +
				sum(last, "node_network_speed_bytes", "node", ls["node"], "device", ls["device"])
			rx := sum(last, "eagle_eye_network_receive_bytes_per_second", "node", ls["node"], "device", ls["device"])
			maxUse = max(maxUse, s.Samples[0].V/speed, rx/speed)
		}
	}
	if maxUse >= 0.9 || maxUse < 0.2 {
		t.Errorf("busiest link at %.0f%% of its rate; want below the 90%% saturation threshold and busy", 100*maxUse)
	}

	ibErrors := []string{"node_infiniband_symbol_error_total", "node_infiniband_port_errors_received_total",
		"node_infiniband_link_error_recovery_total", "node_infiniband_local_link_integrity_errors_total",
		"node_infiniband_excessive_buffer_overrun_errors_total", "node_infiniband_port_discards_transmitted_total",
		"node_infiniband_link_downed_total"}
	for _, name := range ibErrors {
		if n := len(pick(last, name)); n != 6 {
			t.Errorf("%s: %d ports, want 3 nodes × 2", name, n)
		}
		for _, s := range pick(last, name) {
			ls := labelsOf(s)
			if s.Type != remotewrite.Counter || ls["device"] == "" || ls["port"] != "1" || ls["node"] == "" {
				t.Errorf("%s %v: type %v", name, ls, s.Type)
			}
			faulted := ls["node"] == "node-1" && ls["device"] == "mlx5_1"
			before := sum(first, name, "node", ls["node"], "device", ls["device"])
			want := before
			if faulted && name == "node_infiniband_link_downed_total" {
				want++
			}
			if s.Samples[0].V != want {
				t.Errorf("%s %v: %v after 3 minutes, %v at start", name, ls, s.Samples[0].V, before)
			}
		}
	}
	if v := sum(last, "node_infiniband_state_id", "node", "node-1", "device", "mlx5_1"); v != 1 {
		t.Errorf("link_down: state %v", v)
	}
	if v := sum(last, "node_infiniband_physical_state_id", "node", "node-1", "device", "mlx5_0"); v != 5 {
		t.Errorf("physical state %v, want 5 (LinkUp)", v)
	}
	if tx := sum(last, "node_infiniband_port_packets_transmitted_total", "node", "node-0", "device", "mlx5_0"); tx < 1e6 {
		t.Errorf("packets transmitted %v", tx)
	}

	nics := pick(last, "node_network_up")
	if len(nics) != 8 {
		t.Errorf("%d NICs, want 2 on each of 4 nodes", len(nics))
	}
	for _, s := range nics {
		ls := labelsOf(s)
		dev, node := ls["device"], ls["node"]
		if s.Type != remotewrite.Gauge || s.Samples[0].V != 1 || dev == "" || node == "" {
			t.Errorf("node_network_up %v = %v (%v)", ls, s.Samples[0].V, s.Type)
		}
		for name, typ := range map[string]remotewrite.MetricType{
			"node_network_carrier": remotewrite.Gauge, "node_network_speed_bytes": remotewrite.Gauge,
			"node_network_transmit_bytes_total": remotewrite.Counter, "node_network_receive_bytes_total": remotewrite.Counter,
			"node_network_transmit_packets_total": remotewrite.Counter, "node_network_receive_packets_total": remotewrite.Counter,
			"node_network_transmit_errs_total": remotewrite.Counter, "node_network_receive_errs_total": remotewrite.Counter,
			"node_network_transmit_drop_total": remotewrite.Counter, "node_network_receive_drop_total": remotewrite.Counter,
			"eagle_eye_network_remaining_bandwidth_bytes_per_second": remotewrite.Gauge,
		} {
			got := pick(last, name, "node", node, "device", dev)
			if len(got) != 1 || got[0].Type != typ {
				t.Errorf("%s{node=%s,device=%s}: %d series", name, node, dev, len(got))
				continue
			}
			if strings.HasSuffix(name, "_errs_total") || strings.HasSuffix(name, "_drop_total") {
				if before := sum(first, name, "node", node, "device", dev); got[0].Samples[0].V != before {
					t.Errorf("%s{%s,%s}: %v, %v at start", name, node, dev, got[0].Samples[0].V, before)
				}
			}
		}
		if sp := sum(last, "node_network_speed_bytes", "node", node, "device", dev); sp != 100e9/8 {
			t.Errorf("%s %s: speed %v bytes/s", node, dev, sp)
		}
		b, p := sum(last, "node_network_receive_bytes_total", "node", node, "device", dev), sum(last, "node_network_receive_packets_total", "node", node, "device", dev)
		if p <= 0 || b/p < 64 || b/p > 9000 {
			t.Errorf("%s %s: %v bytes in %v packets", node, dev, b, p)
		}
	}
}
