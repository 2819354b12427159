package diagnosis

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/tsdb"
)

// testFleet generates a fleet's series as the probe sends them — GPU nodes with dcgm-exporter
// series, vLLM and SGLang engines, InfiniBand ports, Ascend NPU nodes — with realistic noise and
// scripted faults, written straight into a window.
type testFleet struct {
	nodes, gpusPerNode, enginesPerNode, npuNodes int
	model, driver, vbios                         string
	faults                                       []fault

	start time.Time
	rng   *rand.Rand
	cache map[string]*ingest.Series
	req   ingest.Request
	state map[string]float64 // counters
	last  time.Duration
}

type fault struct {
	kind     string // xid79, dbe_storm, thermal, kv_saturation, engine_stall, link_down, npu_link_down
	node     int
	target   int
	from, to time.Duration // to 0: until the end
}

func (f fault) on(kind string, node, target int, el time.Duration) bool {
	return f.kind == kind && f.node == node && f.target == target && el >= f.from && (f.to == 0 || el < f.to)
}

func newTestFleet(nodes, gpus, engines, npuNodes int, start time.Time, faults ...fault) *testFleet {
	return &testFleet{
		nodes: nodes, gpusPerNode: gpus, enginesPerNode: engines, npuNodes: npuNodes,
		model: "NVIDIA H100 80GB HBM3", driver: "550.54.15", vbios: "96.00.99.00.01",
		faults: faults, start: start, rng: rand.New(rand.NewPCG(1, 2)),
		cache: map[string]*ingest.Series{}, state: map[string]float64{},
	}
}

func (f *testFleet) faultOn(kind string, node, target int, el time.Duration) (fault, bool) {
	for _, ft := range f.faults {
		if ft.on(kind, node, target, el) {
			return ft, true
		}
	}
	return fault{}, false
}

// add appends one sample of the series name{base..., extra...}.
func (f *testFleet) add(name, dev string, base []ingest.Label, v float64, extra ...string) {
	key := name + "\xff" + dev
	for _, e := range extra {
		key += "\xff" + e
	}
	s := f.cache[key]
	if s == nil {
		ls := append([]ingest.Label{{Name: "__name__", Value: name}}, base...)
		for i := 0; i+1 < len(extra); i += 2 {
			ls = append(ls, ingest.Label{Name: extra[i], Value: extra[i+1]})
		}
		sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
		var k []byte
		for _, l := range ls {
			k = append(append(append(append(k, l.Name...), 0xff), l.Value...), 0xff)
		}
		s = &ingest.Series{Labels: ls, Samples: make([]ingest.Sample, 1)}
		s.Hash, s.Hash2 = ingest.KeyHashes(k)
		f.cache[key] = s
	}
	f.req.Series = append(f.req.Series, ingest.Series{Labels: s.Labels, Hash: s.Hash, Hash2: s.Hash2,
		Samples: []ingest.Sample{{T: f.start.Add(f.last).UnixMilli(), V: v}}})
}

// counter adds dv (per second × dt) to a named counter and returns it.
func (f *testFleet) counter(key string, inc float64) float64 {
	f.state[key] += inc
	return math.Floor(f.state[key])
}

func gpuLabels(node, g int, model, driver string) []ingest.Label {
	n := "node-" + strconv.Itoa(node)
	return []ingest.Label{
		{Name: "DCGM_FI_DRIVER_VERSION", Value: driver},
		{Name: "Hostname", Value: n},
		{Name: "UUID", Value: gpuUUID(node, g)},
		{Name: "device", Value: "nvidia" + strconv.Itoa(g)},
		{Name: "gpu", Value: strconv.Itoa(g)},
		{Name: "modelName", Value: model},
		{Name: "namespace", Value: "inference"},
		{Name: "node", Value: n},
		{Name: "pci_bus_id", Value: fmt.Sprintf("00000000:%02X:00.0", 0x18+g*0x10)},
	}
}

func gpuUUID(node, g int) string {
	return fmt.Sprintf("GPU-%08x-%04x-4d2a-9f10-%012x", node, g, node*64+g)
}

func enginePod(node, e int) string {
	kind := "vllm"
	if e%2 == 1 {
		kind = "sglang"
	}
	return fmt.Sprintf("%s-node-%d-%d", kind, node, e)
}

func wave(seed float64, el time.Duration, period float64) float64 {
	return math.Sin(2*math.Pi*el.Seconds()/period + seed)
}

// step generates every series at elapsed time el (dt seconds after the previous step).
func (f *testFleet) step(el time.Duration) *ingest.Request {
	dt := (el - f.last).Seconds()
	f.last = el
	f.req = ingest.Request{Version: ingest.V2, Series: f.req.Series[:0]}
	for n := range f.nodes {
		f.gpuNode(n, el, dt)
	}
	for n := f.nodes; n < f.nodes+f.npuNodes; n++ {
		f.npuNode(n, el, dt)
	}
	return &f.req
}

func (f *testFleet) gpuNode(n int, el time.Duration, dt float64) {
	node := "node-" + strconv.Itoa(n)
	gpusPerEngine := max(1, f.gpusPerNode/max(1, f.enginesPerNode))
	for g := range f.gpusPerNode {
		dev := fmt.Sprintf("%d/%d", n, g)
		ls := gpuLabels(n, g, f.model, f.driver)
		if f.enginesPerNode > 0 {
			ls = append(ls, ingest.Label{Name: "pod", Value: enginePod(n, min(g/gpusPerEngine, f.enginesPerNode-1))})
		}
		seed := float64(n*31 + g*7)
		lostKey := "lost/" + dev
		if ft, ok := f.faultOn("xid79", n, g, el); ok {
			if f.state[lostKey] == 0 {
				f.state[lostKey] = 1
				f.state["xid79/"+dev] = 1
			}
			_ = ft
		} else if f.state[lostKey] == 1 {
			// Rebooted: back on the bus; the new boot has no XIDs.
			f.state[lostKey] = 0
			f.state["xid79/"+dev] = 0
		}
		dbe := false
		if _, ok := f.faultOn("dbe_storm", n, g, el); ok {
			dbe = true
			f.counter("dbe/"+dev, 5*dt)
			f.state["xid48/"+dev] = math.Max(f.state["xid48/"+dev], 1) + math.Floor(dt/10)
		}
		if f.state["xid79/"+dev] > 0 {
			f.add("eagle_eye_gpu_xid_errors_total", dev, ls, 1, "xid", "79")
			f.add("DCGM_FI_DEV_XID_ERRORS", dev, ls, 79)
		}
		if x := f.state["xid48/"+dev]; x > 0 {
			f.add("eagle_eye_gpu_xid_errors_total", dev, ls, x, "xid", "48")
			f.add("DCGM_FI_DEV_XID_ERRORS", dev, ls, 48)
		}
		if f.state[lostKey] == 1 {
			f.add("eagle_eye_gpu_reachable", dev, ls, 0)
			continue
		}
		util := 65 + 25*wave(seed, el, 240+seed) + 4*f.rng.NormFloat64()
		util = math.Max(0, math.Min(100, util))
		temp := 40 + float64(int(seed)%6) + util/5 + 0.7*f.rng.NormFloat64()
		reasons, sm := 0.0, 1980.0
		if util > 85 {
			reasons = 4 // SW power cap under full load: normal
		}
		if _, ok := f.faultOn("thermal", n, g, el); ok {
			temp, reasons, sm = 92, 0x60, 1200
		}
		pending := 0.0
		if dbe {
			pending = 1
		}
		f.add("eagle_eye_gpu_reachable", dev, ls, 1)
		f.add("eagle_eye_gpu_info", dev, ls, 1, "driver_version", f.driver, "serial", fmt.Sprintf("1653220%06d", n*64+g), "vbios_version", f.vbios)
		f.add("DCGM_FI_DEV_GPU_UTIL", dev, ls, math.Round(util))
		f.add("DCGM_FI_DEV_MEM_COPY_UTIL", dev, ls, math.Round(util*0.6))
		f.add("DCGM_FI_DEV_FB_USED", dev, ls, 72000+seed)
		f.add("DCGM_FI_DEV_GPU_TEMP", dev, ls, math.Round(temp))
		f.add("DCGM_FI_DEV_MEMORY_TEMP", dev, ls, math.Round(temp+6))
		f.add("DCGM_FI_DEV_SLOWDOWN_TEMP", dev, ls, 87)
		f.add("DCGM_FI_DEV_POWER_USAGE", dev, ls, math.Round(150+5.5*util))
		f.add("DCGM_FI_DEV_SM_CLOCK", dev, ls, sm)
		f.add("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", dev, ls, reasons)
		f.add("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", dev, ls, reasons)
		f.add("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", dev, ls, f.counter("sbe/"+dev, 0.002*dt))
		f.add("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", dev, ls, math.Floor(f.state["dbe/"+dev]))
		f.add("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", dev, ls, 0)
		f.add("DCGM_FI_DEV_ROW_REMAP_PENDING", dev, ls, pending)
		f.add("DCGM_FI_DEV_ROW_REMAP_FAILURE", dev, ls, 0)
		f.add("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", dev, ls, f.counter("pcie/"+dev, 0.01*dt))
		f.add("DCGM_FI_DEV_THERMAL_VIOLATION", dev, ls, 0)
		f.add("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", dev, ls, 0)
		f.add("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", dev, ls, 0)
		f.add("eagle_eye_gpu_nvlink_links_up", dev, ls, 18)
	}
	for e := range f.enginesPerNode {
		f.engine(n, node, e, el, dt)
	}
	for p := range 2 {
		f.ibPort(n, node, p, el, dt)
	}
}

func (f *testFleet) engine(n int, node string, e int, el time.Duration, dt float64) {
	dev := fmt.Sprintf("e%d/%d", n, e)
	kind, port := "vllm", 8000+e
	if e%2 == 1 {
		kind, port = "sglang", 30000+e
	}
	ls := []ingest.Label{
		{Name: "engine", Value: "0"},
		{Name: "instance", Value: fmt.Sprintf("%s:%d", node, port)},
		{Name: "job", Value: kind},
		{Name: "model_name", Value: "meta-llama/Llama-3.1-8B-Instruct"},
		{Name: "namespace", Value: "inference"},
		{Name: "node", Value: node},
		{Name: "pod", Value: enginePod(n, e)},
	}
	seed := float64(n*13 + e*5)
	load := 0.5 + 0.35*wave(seed, el, 90+math.Mod(seed, 60)) + 0.03*f.rng.NormFloat64()
	running := math.Round(8 + 24*load)
	waiting := math.Max(0, math.Round(6*(load-0.6)*10)/2)
	kv := 0.25 + 0.5*load
	gen, prompt := 900*load+100, 3000*load+200
	preempt := 0.0
	if ft, ok := f.faultOn("kv_saturation", n, e, el); ok {
		kv = 0.99
		waiting = math.Min(200, 6+2*(el-ft.from).Seconds())
		preempt = 2
	}
	if ft, ok := f.faultOn("engine_stall", n, e, el); ok {
		running, kv, gen, prompt = 0, 0, 0, 0
		waiting = math.Min(500, 3+(el-ft.from).Seconds())
	}
	reqs := gen * dt / 250
	ttft := 0.08 + 0.4*kv + 0.05*waiting
	f.add("up", dev, ls, 1)
	buckets := []float64{0.1, 0.25, 0.5, 1, 2.5, 5}
	hist := func(name string) {
		for _, ub := range buckets {
			inc := 0.0
			if ttft <= ub {
				inc = reqs
			}
			f.add(name+"_bucket", dev, ls, f.counter(name+dev+strconv.FormatFloat(ub, 'f', -1, 64), inc), "le", strconv.FormatFloat(ub, 'f', -1, 64))
		}
		c := f.counter(name+dev+"+Inf", reqs)
		f.add(name+"_bucket", dev, ls, c, "le", "+Inf")
		f.add(name+"_count", dev, ls, c)
		f.add(name+"_sum", dev, ls, f.counter(name+dev+"sum", reqs*ttft))
	}
	if kind == "vllm" {
		f.add("vllm:num_requests_running", dev, ls, running)
		f.add("vllm:num_requests_waiting", dev, ls, waiting)
		f.add("vllm:kv_cache_usage_perc", dev, ls, kv)
		f.add("vllm:prompt_tokens_total", dev, ls, f.counter("p"+dev, prompt*dt))
		f.add("vllm:generation_tokens_total", dev, ls, f.counter("g"+dev, gen*dt))
		f.add("vllm:num_preemptions_total", dev, ls, f.counter("pre"+dev, preempt*dt))
		f.add("vllm:prefix_cache_queries_total", dev, ls, f.counter("q"+dev, prompt*dt))
		f.add("vllm:prefix_cache_hits_total", dev, ls, f.counter("h"+dev, (0.6+0.05*f.rng.NormFloat64())*prompt*dt))
		hist("vllm:time_to_first_token_seconds")
		return
	}
	f.add("sglang:num_running_reqs", dev, ls, running)
	f.add("sglang:num_queue_reqs", dev, ls, waiting)
	f.add("sglang:token_usage", dev, ls, kv)
	f.add("sglang:gen_throughput", dev, ls, gen)
	f.add("sglang:cache_hit_rate", dev, ls, 0.6+0.02*f.rng.NormFloat64())
	f.add("sglang:num_retracted_reqs", dev, ls, preempt)
	f.add("sglang:prompt_tokens_total", dev, ls, f.counter("p"+dev, prompt*dt))
	f.add("sglang:generation_tokens_total", dev, ls, f.counter("g"+dev, gen*dt))
	hist("sglang:time_to_first_token_seconds")
}

func (f *testFleet) ibPort(n int, node string, p int, el time.Duration, dt float64) {
	dev := fmt.Sprintf("ib%d/%d", n, p)
	ls := []ingest.Label{{Name: "device", Value: "mlx5_" + strconv.Itoa(p)}, {Name: "node", Value: node}, {Name: "port", Value: "1"}}
	const rate = 400e9 / 8
	state, tx := 4.0, rate*(0.35+0.15*wave(float64(n+p), el, 45))
	if _, ok := f.faultOn("link_down", n, p, el); ok {
		state, tx = 1, 0
	}
	f.add("node_infiniband_state_id", dev, ls, state)
	f.add("node_infiniband_rate_bytes_per_second", dev, ls, rate)
	f.add("node_infiniband_port_data_transmitted_bytes_total", dev, ls, f.counter("tx"+dev, tx*dt))
	f.add("node_infiniband_port_data_received_bytes_total", dev, ls, f.counter("rx"+dev, 0.8*tx*dt))
	f.add("node_infiniband_symbol_error_total", dev, ls, 0)
	f.add("node_infiniband_link_downed_total", dev, ls, 0)
}

func (f *testFleet) npuNode(n int, el time.Duration, dt float64) {
	node := "node-" + strconv.Itoa(n)
	for i := range 8 {
		dev := fmt.Sprintf("npu%d/%d", n, i)
		ls := []ingest.Label{
			{Name: "id", Value: strconv.Itoa(i)},
			{Name: "model_name", Value: "Ascend910B3"},
			{Name: "node", Value: node},
			{Name: "pcie_bus_info", Value: fmt.Sprintf("0000:%02X:00.0", 0xc1+i)},
			{Name: "vdie_id", Value: fmt.Sprintf("5A4B%04X-%08X", n, i)},
		}
		link := 1.0
		if _, ok := f.faultOn("npu_link_down", n, i, el); ok {
			link = 0
			f.add("npu_chip_info_error_code", dev, ls, 2164753923)
			f.add("eagle_eye_npu_error_code_info", dev, ls, 1, "code", "81078603")
		}
		util := 60 + 30*wave(float64(i), el, 70)
		f.add("npu_chip_info_health_status", dev, ls, 1)
		f.add("npu_chip_info_network_status", dev, ls, link)
		f.add("npu_chip_info_link_status", dev, ls, link)
		f.add("npu_chip_info_temperature", dev, ls, math.Round(45+util/6))
		f.add("npu_chip_info_utilization", dev, ls, math.Round(util))
		f.add("npu_chip_info_hbm_ecc_double_bit_error_cnt", dev, ls, 0)
		f.add("npu_chip_info_hbm_ecc_single_bit_isolated_pages_cnt", dev, ls, 2)
		f.add("npu_chip_info_name", dev, ls, 1, "name", "910B3")
	}
}

// run writes the fleet into w every step from el0 to el1 (exclusive), calling each after every
// write.
func (f *testFleet) run(t testing.TB, w *tsdb.Window, el0, el1, step time.Duration, each func(el time.Duration)) {
	t.Helper()
	for el := el0; el < el1; el += step {
		if _, err := w.Write(context.Background(), f.step(el)); err != nil {
			t.Fatalf("write at %s: %v", el, err)
		}
		if each != nil {
			each(el)
		}
	}
}
