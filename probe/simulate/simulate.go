// Package simulate makes a synthetic fleet — nodes of NVIDIA GPUs, a node of Ascend NPUs,
// vLLM and SGLang engines, one endpoint picker per model pool, InfiniBand ports and Ethernet
// NICs — that produces the same series as the real collectors and exporters (dcgm-exporter
// names for GPUs, npu_chip_info_* for NPUs, vllm:* and sglang:* for engines, the Gateway API
// Inference Extension's inference_objective_* and inference_pool_* for pickers,
// node_exporter's node_infiniband_* and node_network_*), with scripted faults. Every node also
// reports eagle_eye_probe_simulated 1, so synthetic data is never mistaken for a real fleet.
//
// Apart from the scripted faults and the slow HBM wear of one NPU in five, the fleet stays
// clear of the diagnosis rules' thresholds (queues under 5, KV cache under 80%, links up and
// under 90% of their rate, error counters flat), so its diagnoses are the injected ones.
//
// Values are deterministic functions of the node, the device and the time since start, plus
// counters that accumulate; a Fleet is one Collector and is called from one goroutine.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Options sizes the fleet. Zero values mean the defaults written beside them.
type Options struct {
	Nodes          int // NVIDIA nodes; 3 when zero
	GPUsPerNode    int // 8 when zero
	EnginesPerNode int // 4 when zero; alternately vLLM and SGLang, each on GPUsPerNode/EnginesPerNode GPUs
	NPUNodes       int // Ascend nodes (8 NPUs each); 1 when zero, none when negative
	Faults         []Fault
	Start          time.Time // when elapsed time is 0; the first Collect when zero
}

// Fleet is the synthetic fleet; it implements probe.Collector.
type Fleet struct {
	o       Options
	nodes   []*node
	pools   []*pool
	started bool
	last    time.Time
	fired   map[int]bool // faults whose one-shot effect happened
}

type node struct {
	name    string
	npu     bool
	gpus    []*gpu
	engines []*engine
	npus    []*npu
	ports   []*port
	nics    []*nic
}

type gpu struct {
	idx          int
	labels       []probe.Label
	energy, sbe  float64
	dbe, pcieRpl float64
	xids         map[int]float64
	lastXID      int
	lost         bool
	temp         float64
	remapPending bool
}

type engine struct {
	idx                  int
	kind                 string // vllm or sglang
	model                string
	labels               []probe.Label
	prompt, gen, preempt float64
	queries, hits        float64
	requests             float64
	ttft, itl            *histogram
	// This collection's load and requests, read by the model's endpoint picker after every
	// engine has been collected.
	running, waiting, kv float64
	step                 engineStep
}

// engineStep is what one engine did in one collection.
type engineStep struct {
	requests       float64 // finished
	prompt, gen    float64 // tokens
	ttft, interTok float64 // seconds
}

type npu struct {
	idx      int
	labels   []probe.Label
	sbe, dbe float64 // HBM ECC errors since start
	sbeRate  float64 // single-bit errors a second
	sbeBase  float64 // lifetime single-bit errors before start
}

var ttftBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// itlBuckets are a subset of vLLM's inter-token latency buckets.
var itlBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1}

// outputTokens is every simulated request's length: requests finish at the generation rate
// divided by it.
const outputTokens = 250

var models = []string{"meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-72B-Instruct", "deepseek-ai/DeepSeek-V3", "mistralai/Mixtral-8x7B-Instruct-v0.1"}

// New builds the fleet.
func New(o Options) (*Fleet, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.GPUsPerNode == 0 {
		o.GPUsPerNode = 8
	}
	if o.EnginesPerNode == 0 {
		o.EnginesPerNode = 4
	}
	if o.NPUNodes == 0 {
		o.NPUNodes = 1
	}
	if o.Nodes < 0 || o.GPUsPerNode < 0 || o.EnginesPerNode < 0 || o.Nodes > 10000 || o.GPUsPerNode > 64 || o.EnginesPerNode > 256 {
		return nil, errors.New("simulate: nodes 0–10000, GPUs per node 0–64, engines per node 0–256")
	}
	f := &Fleet{o: o, fired: map[int]bool{}}
	for n := range o.Nodes {
		f.nodes = append(f.nodes, newGPUNode(n, o.GPUsPerNode, o.EnginesPerNode))
	}
	for n := range max(o.NPUNodes, 0) {
		f.nodes = append(f.nodes, newNPUNode(o.Nodes+n))
	}
	f.pools = newPools(f.nodes)
	names := map[string]bool{}
	for _, nd := range f.nodes {
		names[nd.name] = true
	}
	for _, ft := range o.Faults {
		if !names[ft.Node] {
			return nil, fmt.Errorf("simulate: fault on %q: no such node (node-0 … node-%d)", ft.Node, len(f.nodes)-1)
		}
	}
	return f, nil
}

func newGPUNode(n, gpus, engines int) *node {
	nd := &node{name: "node-" + strconv.Itoa(n)}
	for g := range gpus {
		pci := fmt.Sprintf("00000000:%02X:00.0", 0x18+g*0x10)
		nd.gpus = append(nd.gpus, &gpu{
			idx: g, xids: map[int]float64{}, temp: 38 + float64((n*7+g*3)%10),
			labels: []probe.Label{
				probe.L("gpu", strconv.Itoa(g)),
				probe.L("UUID", fmt.Sprintf("GPU-%08x-%04x-4d2a-9f10-%012x", n, g, n*gpus+g)),
				probe.L("device", "nvidia"+strconv.Itoa(g)),
				probe.L("modelName", "NVIDIA H100 80GB HBM3"),
				probe.L("pci_bus_id", pci),
				probe.L("Hostname", nd.name),
				probe.L("DCGM_FI_DRIVER_VERSION", "550.54.15"),
				probe.L("node", nd.name),
			},
		})
	}
	for e := range engines {
		kind, port, job := "vllm", 8000+e, "vllm"
		if e%2 == 1 {
			kind, port, job = "sglang", 30000+e, "sglang"
		}
		model := models[(n+e)%len(models)]
		nd.engines = append(nd.engines, &engine{
			idx: e, kind: kind, model: model, ttft: newHistogram(ttftBuckets), itl: newHistogram(itlBuckets),
			labels: []probe.Label{
				probe.L("model_name", model),
				probe.L("engine", "0"),
				probe.L("instance", fmt.Sprintf("%s:%d", nd.name, port)),
				probe.L("job", job),
				probe.L("pod", fmt.Sprintf("%s-%s-%d", kind, nd.name, e)),
				probe.L("namespace", "inference"),
				probe.L("node", nd.name),
			},
		})
	}
	nd.ports = newPorts(n, nd.name)
	nd.nics = newNICs(n, nd.name)
	return nd
}

func newNPUNode(n int) *node {
	nd := &node{name: "node-" + strconv.Itoa(n), npu: true}
	for i := range 8 {
		rate := 0.0005 // about one correctable error every half hour
		if (n+i)%5 == 3 {
			rate = 0.01 // one chip in five with degrading HBM (N04's trend)
		}
		nd.npus = append(nd.npus, &npu{idx: i, sbeRate: rate, sbeBase: float64((n*7 + i*13) % 40), labels: []probe.Label{
			probe.L("id", strconv.Itoa(i)),
			probe.L("model_name", "Ascend910B3"),
			probe.L("vdie_id", fmt.Sprintf("5A4B%04X-%08X", n, i)),
			probe.L("pcie_bus_info", fmt.Sprintf("0000:%02X:00.0", 0xc1+i)),
			probe.L("node", nd.name),
		}})
	}
	nd.nics = newNICs(n, nd.name)
	return nd
}

// Collect advances the fleet to the appender's time and appends every series.
func (f *Fleet) Collect(_ context.Context, a *probe.Appender) error {
	now := a.Time()
	if !f.started {
		f.started = true
		if f.o.Start.IsZero() {
			f.o.Start = now
		}
		f.last = now
	}
	dt := now.Sub(f.last).Seconds()
	if dt < 0 {
		dt = 0
	}
	f.last = now
	el := now.Sub(f.o.Start)
	for _, nd := range f.nodes {
		a.Gauge("eagle_eye_probe_simulated", 1, []probe.Label{probe.L("node", nd.name)})
		for _, g := range nd.gpus {
			f.gpu(a, nd, g, el, dt)
		}
		for _, e := range nd.engines {
			f.engine(a, nd, e, el, dt)
		}
		for _, p := range nd.ports {
			f.port(a, nd, p, el, dt)
		}
		for _, c := range nd.nics {
			f.nic(a, c, el, dt)
		}
		for _, n := range nd.npus {
			f.npu(a, nd, n, el, dt)
		}
	}
	for _, p := range f.pools {
		f.picker(a, p)
	}
	return nil
}

// faultOn returns the index and fault of kind active on (node, target) at el, or -1.
func (f *Fleet) faultOn(kind Kind, nd *node, target string, el time.Duration) (int, Fault) {
	for i, ft := range f.o.Faults {
		if ft.Kind == kind && ft.Node == nd.name && (ft.Target == target || ft.Target == "" && isFirst(target)) && ft.active(el) {
			return i, ft
		}
	}
	return -1, Fault{}
}

func isFirst(target string) bool {
	switch target {
	case "gpu-0", "engine-0", "npu-0", "mlx5_0/1":
		return true
	}
	return false
}

// wave is a smooth deterministic wander in [-1, 1].
func wave(seed int, t time.Duration, period float64) float64 {
	return math.Sin(2*math.Pi*t.Seconds()/period + float64(seed))
}

func (f *Fleet) gpu(a *probe.Appender, nd *node, g *gpu, el time.Duration, dt float64) {
	target := "gpu-" + strconv.Itoa(g.idx)
	seed := len(nd.name)*31 + g.idx*7
	for i, ft := range f.o.Faults { // one-shot XIDs
		if ft.Kind == XID && ft.Node == nd.name && (ft.Target == target || ft.Target == "" && g.idx == 0) && el >= ft.At && !f.fired[i] {
			f.fired[i] = true
			g.xids[ft.XID]++
			g.lastXID = ft.XID
			if ft.XID == 79 {
				g.lost = true
			}
		}
	}
	if i, ft := f.faultOn(DBEStorm, nd, target, el); i >= 0 {
		g.dbe += 5 * dt
		g.remapPending = true
		if n := int((el - ft.At) / (10 * time.Second)); float64(n+1) > g.xids[48] {
			g.xids[48] = float64(n + 1)
			g.lastXID = 48
		}
	}
	ls := g.labels
	for x, n := range g.xids {
		a.Counter("eagle_eye_gpu_xid_errors_total", n, ls, probe.L("xid", strconv.Itoa(x)))
	}
	if g.lastXID != 0 {
		a.Gauge("DCGM_FI_DEV_XID_ERRORS", float64(g.lastXID), ls)
	}
	if g.lost {
		a.Gauge("eagle_eye_gpu_reachable", 0, ls)
		return
	}
	util := 70 + 25*wave(seed, el, 60)
	base := 38 + float64(seed%10) + util/5
	reasons := 0.0
	smClock := 1980.0
	if i, ft := f.faultOn(Thermal, nd, target, el); i >= 0 {
		g.temp = min(97, base+1.5*(el-ft.At).Seconds())
		if g.temp > 85 {
			reasons, smClock = 0x20|0x40, 1200
		}
	} else {
		g.temp = base
	}
	power := 150 + 5.5*util
	g.energy += power * 1000 * dt
	g.sbe += 0.01 * dt
	a.Gauge("eagle_eye_gpu_reachable", 1, ls)
	a.Gauge("eagle_eye_gpu_info", 1, ls, probe.L("serial", fmt.Sprintf("16532200%05d", seed)), probe.L("vbios_version", "96.00.99.00.01"), probe.L("driver_version", "550.54.15"))
	a.Gauge("DCGM_FI_DEV_GPU_UTIL", math.Round(util), ls)
	a.Gauge("DCGM_FI_DEV_MEM_COPY_UTIL", math.Round(util*0.6), ls)
	a.Gauge("DCGM_FI_DEV_FB_USED", 72000+float64(seed%500), ls)
	a.Gauge("DCGM_FI_DEV_FB_FREE", 81559-72000-float64(seed%500), ls)
	a.Gauge("DCGM_FI_DEV_GPU_TEMP", math.Round(g.temp), ls)
	a.Gauge("DCGM_FI_DEV_MEMORY_TEMP", math.Round(g.temp+6), ls)
	a.Gauge("DCGM_FI_DEV_SLOWDOWN_TEMP", 87, ls)
	a.Gauge("DCGM_FI_DEV_SHUTDOWN_TEMP", 92, ls)
	a.Gauge("DCGM_FI_DEV_POWER_USAGE", math.Round(power*10)/10, ls)
	a.Counter("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", math.Floor(g.energy), ls)
	a.Gauge("DCGM_FI_DEV_SM_CLOCK", smClock, ls)
	a.Gauge("DCGM_FI_DEV_MEM_CLOCK", 2619, ls)
	a.Gauge("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", reasons, ls)
	a.Gauge("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", reasons, ls)
	a.Counter("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", math.Floor(g.sbe), ls)
	a.Counter("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", math.Floor(g.dbe), ls)
	a.Counter("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", math.Floor(g.sbe)+12, ls)
	a.Counter("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", math.Floor(g.dbe), ls)
	a.Counter("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", 0, ls)
	a.Counter("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", math.Min(math.Floor(g.dbe/20), 8), ls)
	a.Gauge("DCGM_FI_DEV_ROW_REMAP_PENDING", b2f(g.remapPending), ls)
	a.Gauge("DCGM_FI_DEV_ROW_REMAP_FAILURE", 0, ls)
	a.Counter("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", g.pcieRpl, ls)
	a.Gauge("DCGM_FI_PROF_PCIE_TX_BYTES", math.Round(util*2.1e8), ls)
	a.Gauge("DCGM_FI_PROF_PCIE_RX_BYTES", math.Round(util*3.3e8), ls)
	a.Gauge("eagle_eye_gpu_nvlink_links_up", 18, ls)
	a.Counter("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", 0, ls)
	a.Counter("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", 0, ls)
}

func (f *Fleet) engine(a *probe.Appender, nd *node, e *engine, el time.Duration, dt float64) {
	target := "engine-" + strconv.Itoa(e.idx)
	seed := len(nd.name)*13 + e.idx*5
	load := 0.5 + 0.4*wave(seed, el, 90)
	running := math.Round(8 + 24*load)
	// A queue forms above 60% load and stays under 5, the queue-build-up rule's threshold
	// (and the endpoint picker's default queue limit).
	waiting := math.Max(0, math.Round(14*(load-0.6)))
	kv := 0.25 + 0.5*load
	genRate, promptRate := 900*load+100, 3000*load+200
	if i, ft := f.faultOn(KVSaturation, nd, target, el); i >= 0 {
		kv = 0.99
		waiting = math.Min(200, 6+2*(el-ft.At).Seconds())
		e.preempt += 2 * dt
	}
	if i, ft := f.faultOn(EngineStall, nd, target, el); i >= 0 {
		running, kv, genRate, promptRate = 0, 0, 0, 0
		waiting = math.Min(500, 3+(el-ft.At).Seconds())
	}
	e.prompt += promptRate * dt
	e.gen += genRate * dt
	e.queries += promptRate * dt
	e.hits += 0.6 * promptRate * dt
	reqs := genRate * dt / outputTokens
	e.requests += reqs
	ttft := 0.08 + 0.4*kv + 0.05*waiting
	// Every running request gets one token per decode step, so a step takes running/genRate.
	itl := 0.0
	if genRate > 0 {
		itl = running / genRate
	}
	e.ttft.observe(ttft, reqs)
	e.itl.observe(itl, genRate*dt-reqs) // one interval per token after the first
	e.running, e.waiting, e.kv = running, waiting, kv
	e.step = engineStep{requests: reqs, prompt: promptRate * dt, gen: genRate * dt, ttft: ttft, interTok: itl}
	ls := e.labels
	a.Gauge("up", 1, ls)
	a.Gauge("scrape_duration_seconds", 0.002+0.001*float64(e.idx), ls)
	if e.kind == "vllm" {
		a.Gauge("vllm:num_requests_running", running, ls)
		a.Gauge("vllm:num_requests_waiting", waiting, ls)
		a.Gauge("vllm:kv_cache_usage_perc", kv, ls)
		a.Counter("vllm:prompt_tokens_total", math.Floor(e.prompt), ls)
		a.Counter("vllm:generation_tokens_total", math.Floor(e.gen), ls)
		a.Counter("vllm:num_preemptions_total", math.Floor(e.preempt), ls)
		a.Counter("vllm:prefix_cache_queries_total", math.Floor(e.queries), ls)
		a.Counter("vllm:prefix_cache_hits_total", math.Floor(e.hits), ls)
		a.Counter("vllm:request_success_total", math.Floor(e.requests), ls, probe.L("finished_reason", "stop"))
		a.Gauge("vllm:cache_config_info", 1, ls, probe.L("block_size", "16"), probe.L("num_gpu_blocks", "27264"))
		e.ttft.append(a, "vllm:time_to_first_token_seconds", ls)
		e.itl.append(a, "vllm:inter_token_latency_seconds", ls)
		return
	}
	a.Gauge("sglang:num_running_reqs", running, ls)
	a.Gauge("sglang:num_queue_reqs", waiting, ls)
	a.Gauge("sglang:token_usage", kv, ls)
	a.Gauge("sglang:gen_throughput", genRate, ls)
	a.Gauge("sglang:cache_hit_rate", 0.6, ls)
	a.Gauge("sglang:num_retracted_reqs", math.Floor(e.preempt), ls)
	a.Counter("sglang:prompt_tokens_total", math.Floor(e.prompt), ls)
	a.Counter("sglang:generation_tokens_total", math.Floor(e.gen), ls)
	a.Counter("sglang:num_requests_total", math.Floor(e.requests), ls)
	a.Gauge("sglang:cache_config_info", 1, ls, probe.L("page_size", "1"), probe.L("num_pages", "419430"))
	e.ttft.append(a, "sglang:time_to_first_token_seconds", ls)
	e.itl.append(a, "sglang:inter_token_latency_seconds", ls)
}

func (f *Fleet) npu(a *probe.Appender, nd *node, n *npu, el time.Duration, dt float64) {
	target := "npu-" + strconv.Itoa(n.idx)
	health, link := 1.0, 1.0
	var codes []string
	if i, _ := f.faultOn(NPUFault, nd, target, el); i >= 0 {
		health = 0
		codes = append(codes, "80E01801") // HBM multi-bit ECC error
		n.dbe += dt
	}
	i1, _ := f.faultOn(NPULinkDown, nd, target, el)
	i2, _ := f.faultOn(LinkDown, nd, target, el)
	if i1 >= 0 || i2 >= 0 {
		link = 0
		codes = append(codes, "81078603") // RoCE link down
	}
	n.sbe += n.sbeRate * dt
	util := 60 + 30*wave(n.idx, el, 70)
	ls := n.labels
	a.Gauge("npu_chip_info_health_status", health, ls)
	a.Gauge("npu_chip_info_network_status", link, ls)
	a.Gauge("npu_chip_info_link_status", link, ls)
	a.Gauge("npu_chip_info_temperature", math.Round(45+util/6), ls)
	a.Gauge("npu_chip_info_power", math.Round(180+2*util), ls)
	a.Gauge("npu_chip_info_utilization", math.Round(util), ls)
	a.Gauge("npu_chip_info_hbm_used_memory", 52000+float64(n.idx*100), ls)
	a.Gauge("npu_chip_info_hbm_total_memory", 65536, ls)
	a.Gauge("npu_chip_info_hbm_utilization", math.Round(1000*(52000+float64(n.idx*100))/65536)/10, ls)
	a.Gauge("npu_chip_info_hbm_ecc_enable_flag", 1, ls)
	a.Gauge("npu_chip_info_hbm_ecc_single_bit_error_cnt", math.Floor(n.sbe), ls)
	a.Gauge("npu_chip_info_hbm_ecc_double_bit_error_cnt", math.Floor(n.dbe), ls)
	a.Gauge("npu_chip_info_hbm_ecc_total_single_bit_error_cnt", n.sbeBase+math.Floor(n.sbe), ls)
	a.Gauge("npu_chip_info_hbm_ecc_total_double_bit_error_cnt", math.Floor(n.dbe), ls)
	a.Gauge("npu_chip_info_hbm_ecc_single_bit_isolated_pages_cnt", math.Floor((n.sbeBase+math.Floor(n.sbe))/16), ls)
	a.Gauge("npu_chip_info_hbm_ecc_double_bit_isolated_pages_cnt", math.Floor(n.dbe), ls)
	for i, code := range codes {
		name := "npu_chip_info_error_code"
		if i > 0 {
			name += "_" + strconv.Itoa(i)
		}
		v, _ := strconv.ParseUint(code, 16, 64)
		a.Gauge(name, float64(v), ls)
	}
	for _, code := range codes {
		a.Gauge("eagle_eye_npu_error_code_info", 1, ls, probe.L("code", code))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
