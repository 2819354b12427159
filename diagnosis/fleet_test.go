package diagnosis

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
	npuModel                                     string
	faults                                       []fault

	start time.Time
	rng   *rand.Rand
	cache map[string]*ingest.Series
	req   ingest.Request
	state map[string]float64 // counters
	xids  map[string][]int   // device → XID codes since boot, in order of first occurrence
	last  time.Duration
}

// fault is one scripted fault on one device: target is the GPU, engine, InfiniBand port or NPU
// index on the node. Kinds, by device:
//
//	GPU:    xid79 (falls off the bus until rebooted at `to`), xid (XID `code` once, at `from`;
//	        94 also leaves a row remap pending until the reset at `to`), dbe_storm,
//	        remap_pending, remap_failure, retired_pending (pre-Ampere page retirement),
//	        nvlink_down, nvlink_errors, pcie_replays, thermal, power_brake, hot (runs 25 °C
//	        hotter at the same load and clocks: a cooling fault before it throttles)
//	engine: kv_saturation, engine_stall, engine_down, queue_buildup, slow_prefill,
//	        preemption_storm, prefix_collapse, kv_transfer_failures
//	port:   link_down, link_flapping, link_errors, link_saturation
//	NPU:    npu_link_down, npu_unhealthy (fault `code`), npu_unknown, npu_hbm_dbe,
//	        npu_hccs_errors
type fault struct {
	kind     string
	node     int
	target   int
	code     int           // the XID of an xid fault, the error code of npu_unhealthy
	from, to time.Duration // to 0: until the end
}

func (f fault) on(kind string, node, target int, el time.Duration) bool {
	return f.kind == kind && f.node == node && f.target == target && el >= f.from && (f.to == 0 || el < f.to)
}

func newTestFleet(nodes, gpus, engines, npuNodes int, start time.Time, faults ...fault) *testFleet {
	return &testFleet{
		nodes: nodes, gpusPerNode: gpus, enginesPerNode: engines, npuNodes: npuNodes,
		model: "NVIDIA H100 80GB HBM3", driver: "550.54.15", vbios: "96.00.99.00.01",
		npuModel: "Ascend910B3", faults: faults, start: start, rng: rand.New(rand.NewPCG(1, 2)),
		cache: map[string]*ingest.Series{}, state: map[string]float64{}, xids: map[string][]int{},
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
	// Pre-Ampere GPUs retire pages instead of remapping rows; DCGM has no value for the
	// other mechanism's fields, and dcgm-exporter skips a field without a value.
	preAmpere := preAmpereModel.MatchString(f.model)
	for g := range f.gpusPerNode {
		dev := fmt.Sprintf("%d/%d", n, g)
		ls := gpuLabels(n, g, f.model, f.driver)
		if f.enginesPerNode > 0 {
			ls = append(ls, ingest.Label{Name: "pod", Value: enginePod(n, min(g/gpusPerEngine, f.enginesPerNode-1))})
		}
		seed := float64(n*31 + g*7)
		lostKey := "lost/" + dev
		if _, ok := f.faultOn("xid79", n, g, el); ok {
			if f.state[lostKey] == 0 {
				f.state[lostKey] = 1
				f.xid(dev, 79, 1)
			}
		} else if f.state[lostKey] == 1 {
			// Rebooted: back on the bus; the new boot has no XIDs.
			f.state[lostKey] = 0
			for _, code := range f.xids[dev] {
				delete(f.state, xidKey(code, dev))
			}
			delete(f.xids, dev)
			delete(f.state, "lastxid/"+dev)
		}
		for i, ft := range f.faults {
			// An XID is an event: counted once, at the fault's start.
			if k := "xidsent/" + strconv.Itoa(i); ft.kind == "xid" && ft.node == n && ft.target == g && el >= ft.from && f.state[k] == 0 {
				f.state[k] = 1
				f.xid(dev, ft.code, 1)
			}
		}
		dbe := false
		if _, ok := f.faultOn("dbe_storm", n, g, el); ok {
			dbe = true
			f.counter("dbe/"+dev, 5*dt)
			inc := math.Floor(dt / 10)
			if f.state[xidKey(48, dev)] == 0 {
				inc++
			}
			f.xid(dev, 48, inc)
		}
		for _, code := range f.xids[dev] {
			f.add("eagle_eye_gpu_xid_errors_total", dev, ls, f.state[xidKey(code, dev)], "xid", strconv.Itoa(code))
		}
		if last := f.state["lastxid/"+dev]; last > 0 {
			f.add("DCGM_FI_DEV_XID_ERRORS", dev, ls, last)
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
		if _, ok := f.faultOn("hot", n, g, el); ok {
			temp += 25
		}
		if _, ok := f.faultOn("thermal", n, g, el); ok {
			temp, reasons, sm = 92, 0x60, 1200
		}
		if _, ok := f.faultOn("power_brake", n, g, el); ok {
			reasons, sm = reasons+0x80, 1100
		}
		pending, failure, retired := 0.0, 0.0, 0.0
		if ft, ok := f.faultOn("xid", n, g, el); dbe || (ok && ft.code == 94) {
			pending = 1 // the row that failed is remapped at the next reset
		}
		if _, ok := f.faultOn("remap_pending", n, g, el); ok {
			pending = 1
		}
		if _, ok := f.faultOn("remap_failure", n, g, el); ok {
			failure = 1
		}
		if _, ok := f.faultOn("retired_pending", n, g, el); ok {
			retired = 1
		}
		links, nvlinkErr, pcieReplay := 18.0, 0.0, 0.01
		if _, ok := f.faultOn("nvlink_down", n, g, el); ok {
			links = 16
		}
		if _, ok := f.faultOn("nvlink_errors", n, g, el); ok {
			nvlinkErr = 2
		}
		if _, ok := f.faultOn("pcie_replays", n, g, el); ok {
			pcieReplay = 1
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
		if preAmpere {
			f.add("DCGM_FI_DEV_RETIRED_PENDING", dev, ls, retired)
		} else {
			f.add("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", dev, ls, 0)
			f.add("DCGM_FI_DEV_ROW_REMAP_PENDING", dev, ls, pending)
			f.add("DCGM_FI_DEV_ROW_REMAP_FAILURE", dev, ls, failure)
		}
		f.add("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", dev, ls, f.counter("pcie/"+dev, pcieReplay*dt))
		f.add("DCGM_FI_DEV_THERMAL_VIOLATION", dev, ls, 0)
		f.add("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", dev, ls, f.counter("nvflit/"+dev, 1.5*nvlinkErr*dt))
		f.add("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", dev, ls, f.counter("nvreplay/"+dev, nvlinkErr*dt))
		f.add("eagle_eye_gpu_nvlink_links_up", dev, ls, links)
	}
	for e := range f.enginesPerNode {
		f.engine(n, node, e, el, dt)
	}
	for p := range 2 {
		f.ibPort(n, node, p, el, dt)
	}
}

var preAmpereModel = regexp.MustCompile(`V100|T4|P100|P40`)

func xidKey(code int, dev string) string { return "xid" + strconv.Itoa(code) + "/" + dev }

// xid counts inc more XIDs of code on dev, which also becomes its last XID.
func (f *testFleet) xid(dev string, code int, inc float64) {
	if inc <= 0 {
		return
	}
	if f.state[xidKey(code, dev)] == 0 {
		f.xids[dev] = append(f.xids[dev], code)
	}
	f.state[xidKey(code, dev)] += inc
	f.state["lastxid/"+dev] = float64(code)
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
	// preempt: vLLM preemptions per second; retracted: SGLang's retracted requests (a gauge).
	preempt, retracted, transferFailed := 0.0, 0.0, 0.0
	hit := 0.6 + 0.05*f.rng.NormFloat64()
	if kind == "sglang" {
		hit = 0.6 + 0.02*f.rng.NormFloat64() // SGLang reports its own, smoothed ratio
	}
	if ft, ok := f.faultOn("kv_saturation", n, e, el); ok {
		kv = 0.99
		waiting = math.Min(200, 6+2*(el-ft.from).Seconds())
		preempt, retracted = 2, 2
	}
	if ft, ok := f.faultOn("engine_stall", n, e, el); ok {
		running, kv, gen, prompt = 0, 0, 0, 0
		waiting = math.Min(500, 3+(el-ft.from).Seconds())
	}
	if _, ok := f.faultOn("engine_down", n, e, el); ok {
		// The scrape fails: up is 0 and the engine's own series go stale.
		f.add("up", dev, ls, 0)
		return
	}
	if _, ok := f.faultOn("queue_buildup", n, e, el); ok {
		// Demand beyond capacity: every slot runs, requests wait, the KV cache is not full
		// (short contexts).
		running, kv = 32, 0.7
		waiting = math.Round(12 + 2*f.rng.NormFloat64())
	}
	slowPrefill := 0.0
	if _, ok := f.faultOn("slow_prefill", n, e, el); ok {
		// Long prompts: each prefill takes seconds, while queue and KV use stay normal.
		prompt *= 4
		slowPrefill = 2.5
	}
	if _, ok := f.faultOn("preemption_storm", n, e, el); ok {
		// KV thrash: preemption frees blocks, so usage hovers below saturation.
		kv, preempt, retracted = 0.86, 0.5, 3
	}
	if _, ok := f.faultOn("prefix_collapse", n, e, el); ok {
		hit = 0.05 + 0.01*f.rng.NormFloat64()
	}
	if _, ok := f.faultOn("kv_transfer_failures", n, e, el); ok {
		transferFailed = 0.2
	}
	reqs := gen * dt / 250
	ttft := 0.08 + 0.4*kv + 0.05*waiting + slowPrefill
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
		f.add("vllm:prefix_cache_hits_total", dev, ls, f.counter("h"+dev, hit*prompt*dt))
		hist("vllm:time_to_first_token_seconds")
		return
	}
	f.add("sglang:num_running_reqs", dev, ls, running)
	f.add("sglang:num_queue_reqs", dev, ls, waiting)
	f.add("sglang:token_usage", dev, ls, kv)
	f.add("sglang:gen_throughput", dev, ls, gen)
	f.add("sglang:cache_hit_rate", dev, ls, hit)
	f.add("sglang:num_retracted_reqs", dev, ls, retracted)
	f.add("sglang:prompt_tokens_total", dev, ls, f.counter("p"+dev, prompt*dt))
	f.add("sglang:generation_tokens_total", dev, ls, f.counter("g"+dev, gen*dt))
	// Prefill/decode disaggregation: KV transfers between the prefill and decode servers.
	f.add("sglang:num_transfer_failed_reqs_total", dev, ls, f.counter("xf"+dev, transferFailed*dt))
	f.add("sglang:num_bootstrap_failed_reqs_total", dev, ls, 0)
	hist("sglang:time_to_first_token_seconds")
}

func (f *testFleet) ibPort(n int, node string, p int, el time.Duration, dt float64) {
	dev := fmt.Sprintf("ib%d/%d", n, p)
	ls := []ingest.Label{{Name: "device", Value: "mlx5_" + strconv.Itoa(p)}, {Name: "node", Value: node}, {Name: "port", Value: "1"}}
	const rate = 400e9 / 8
	state, tx, symbolErr := 4.0, rate*(0.35+0.15*wave(float64(n+p), el, 45)), 0.0
	if _, ok := f.faultOn("link_down", n, p, el); ok {
		state, tx = 1, 0
	} else if f.state["ibstate/"+dev] == 1 {
		state, tx = 2, 0 // back up: INIT until the subnet manager activates the port
	}
	if ft, ok := f.faultOn("link_flapping", n, p, el); ok {
		// Down for 10 s every 90 s, back through INIT before ACTIVE.
		switch phase := (el - ft.from) % (90 * time.Second); {
		case phase < 10*time.Second:
			state, tx = 1, 0
		case phase < 15*time.Second:
			state, tx = 2, 0
		}
	}
	if _, ok := f.faultOn("link_errors", n, p, el); ok {
		symbolErr = 0.5
	}
	if _, ok := f.faultOn("link_saturation", n, p, el); ok {
		tx = 0.97 * rate
	}
	stateKey := "ibstate/" + dev
	if _, ok := f.state[stateKey]; !ok {
		f.state["downed"+dev] = 2 // the link trained twice at boot, as ports do
	}
	if prev := f.state[stateKey]; prev >= 4 && state == 1 {
		f.counter("downed"+dev, 1)
	}
	f.state[stateKey] = state
	f.add("node_infiniband_state_id", dev, ls, state)
	f.add("node_infiniband_rate_bytes_per_second", dev, ls, rate)
	f.add("node_infiniband_port_data_transmitted_bytes_total", dev, ls, f.counter("tx"+dev, tx*dt))
	f.add("node_infiniband_port_data_received_bytes_total", dev, ls, f.counter("rx"+dev, 0.8*tx*dt))
	f.add("node_infiniband_symbol_error_total", dev, ls, f.counter("sym"+dev, symbolErr*dt))
	f.add("node_infiniband_link_downed_total", dev, ls, f.counter("downed"+dev, 0))
}

func (f *testFleet) npuNode(n int, el time.Duration, dt float64) {
	node := "node-" + strconv.Itoa(n)
	for i := range 8 {
		dev := fmt.Sprintf("npu%d/%d", n, i)
		ls := []ingest.Label{
			{Name: "id", Value: strconv.Itoa(i)},
			{Name: "model_name", Value: f.npuModel},
			{Name: "node", Value: node},
			{Name: "pcie_bus_info", Value: fmt.Sprintf("0000:%02X:00.0", 0xc1+i)},
			{Name: "vdie_id", Value: fmt.Sprintf("5A4B%04X-%08X", n, i)},
		}
		code := 0
		health, link, hccsErr := 1.0, 1.0, 0.0
		if _, ok := f.faultOn("npu_link_down", n, i, el); ok {
			link, code = 0, 0x81078603
		}
		if ft, ok := f.faultOn("npu_unhealthy", n, i, el); ok {
			health, code = 0, ft.code
		}
		if _, ok := f.faultOn("npu_hbm_dbe", n, i, el); ok {
			if f.state["npudbe/"+dev] == 0 {
				f.counter("npudbe/"+dev, 1)
			}
			health, code = 0, 0x80E01801
		}
		if _, ok := f.faultOn("npu_hccs_errors", n, i, el); ok {
			hccsErr = 0.5
		}
		if code != 0 {
			// npu-exporter writes the hex code as a decimal number; the probe adds it as hex.
			f.add("npu_chip_info_error_code", dev, ls, float64(code))
			f.add("eagle_eye_npu_error_code_info", dev, ls, 1, "code", fmt.Sprintf("%08X", code))
		}
		if _, ok := f.faultOn("npu_unknown", n, i, el); ok {
			// DCMI calls fail (driver hung, card dropped): the states read -1 and npu-exporter
			// leaves out every metric it could not read.
			f.add("npu_chip_info_health_status", dev, ls, -1)
			f.add("npu_chip_info_network_status", dev, ls, -1)
			f.add("npu_chip_info_link_status", dev, ls, -1)
			continue
		}
		util := 60 + 30*wave(float64(i), el, 70)
		f.add("npu_chip_info_health_status", dev, ls, health)
		f.add("npu_chip_info_network_status", dev, ls, link)
		f.add("npu_chip_info_link_status", dev, ls, link)
		f.add("npu_chip_info_temperature", dev, ls, math.Round(45+util/6))
		f.add("npu_chip_info_utilization", dev, ls, math.Round(util))
		f.add("npu_chip_info_hbm_ecc_double_bit_error_cnt", dev, ls, f.state["npudbe/"+dev])
		f.add("npu_chip_info_hbm_ecc_single_bit_isolated_pages_cnt", dev, ls, 2)
		f.add("npu_chip_info_name", dev, ls, 1, "name", strings.TrimPrefix(f.npuModel, "Ascend"))
		f.add("npu_chip_roce_rx_err_pkt_num", dev, ls, 0)
		if strings.Contains(f.npuModel, "910") {
			// HCCS, the chip-to-chip links of training/inference servers (not on Atlas cards).
			for port := range 7 {
				inc := 0.0
				if port == 2 {
					inc = hccsErr
				}
				f.add("npu_chip_info_hccs_statistic_info_crc_err_cnt_"+strconv.Itoa(port), dev, ls, f.counter("hccs"+strconv.Itoa(port)+dev, inc*dt))
			}
		}
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
