package simulate

import (
	"context"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
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
			if l.Name == "node" || l.Name == "gpu" || l.Name == "instance" || l.Name == "id" || l.Name == "code" || l.Name == "device" && len(l.Value) > 4 && l.Value[:4] == "mlx5" || l.Name == "xid" {
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
