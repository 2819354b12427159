// Package fleet generates realistic label sets of an AI-inference fleet — DCGM-exporter GPU
// series and vLLM engine series, about ten labels each — for benchmarks, load generation and
// tests. It is deterministic: series i is always the same.
package fleet

import (
	"fmt"
	"sort"
)

// Label is one label pair.
type Label struct{ Name, Value string }

// gpuMetrics are DCGM-exporter field names, one series per GPU each.
var gpuMetrics = []string{
	"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
	"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK",
	"DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
	"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ROW_REMAP_FAILURE",
	"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
	"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
	"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
}

// engineMetrics are vLLM metric names, one series per engine each.
var engineMetrics = []string{
	"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
	"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total",
	"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total",
	"vllm:time_to_first_token_seconds_sum", "vllm:time_to_first_token_seconds_count",
	"vllm:inter_token_latency_seconds_sum", "vllm:inter_token_latency_seconds_count",
	"vllm:e2e_request_latency_seconds_sum", "vllm:e2e_request_latency_seconds_count",
}

var models = []string{"meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-72B-Instruct", "deepseek-ai/DeepSeek-V3", "mistralai/Mixtral-8x7B-Instruct-v0.1"}

const gpusPerNode = 8

// seriesPerNode is the number of series one node contributes: its GPUs, then its engines
// (one engine per two GPUs).
var seriesPerNode = gpusPerNode*len(gpuMetrics) + gpusPerNode/2*len(engineMetrics)

// Series returns the labels of series i, sorted by name, __name__ included.
func Series(i int) []Label {
	node := i / seriesPerNode
	j := i % seriesPerNode
	host := fmt.Sprintf("gpu-node-%04d", node)
	ip := fmt.Sprintf("10.%d.%d.%d", node>>16&255, node>>8&255, node&255)
	var ls []Label
	if j < gpusPerNode*len(gpuMetrics) {
		gpu := j / len(gpuMetrics)
		ls = []Label{
			{"__name__", gpuMetrics[j%len(gpuMetrics)]},
			{"Hostname", host},
			{"UUID", fmt.Sprintf("GPU-%08x-%04x-%04x-%04x-%012x", node, gpu, 0x4d2a, 0x9f10, node*gpusPerNode+gpu)},
			{"container", "vllm"},
			{"device", fmt.Sprintf("nvidia%d", gpu)},
			{"gpu", fmt.Sprint(gpu)},
			{"instance", ip + ":9400"},
			{"job", "dcgm-exporter"},
			{"modelName", "NVIDIA H100 80GB HBM3"},
			{"namespace", "inference"},
			{"pci_bus_id", fmt.Sprintf("00000000:%02X:00.0", 0x18+gpu*0x10)},
			{"pod", fmt.Sprintf("vllm-%s-%d", host, gpu/2)},
		}
	} else {
		j -= gpusPerNode * len(gpuMetrics)
		engine := j / len(engineMetrics)
		ls = []Label{
			{"__name__", engineMetrics[j%len(engineMetrics)]},
			{"engine", "0"},
			{"instance", fmt.Sprintf("%s:%d", ip, 8000+engine)},
			{"job", "vllm"},
			{"model_name", models[(node+engine)%len(models)]},
			{"namespace", "inference"},
			{"node", host},
			{"pod", fmt.Sprintf("vllm-%s-%d", host, engine)},
			{"container", "vllm"},
			{"endpoint", "metrics"},
		}
	}
	sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
	return ls
}

// Value returns the value of series i at step k, as a healthy fleet reports it: counters
// grow steadily from their own start, gauges wander within their normal range, and error
// counters and fault gauges stay put — so that diagnosis rules evaluated over a generated
// fleet do the work of a healthy one rather than of a fleet on fire. It costs a few
// nanoseconds: benchmarks call it in their loops.
func Value(i, k int) float64 {
	j := i % seriesPerNode
	var kind valueKind
	if j < gpusPerNode*len(gpuMetrics) {
		kind = gpuKinds[j%len(gpuMetrics)]
	} else {
		kind = engineKinds[(j-gpusPerNode*len(gpuMetrics))%len(engineMetrics)]
	}
	w := float64((i*7919+k*104729)%1000) / 1000 // 0..1, wandering
	base := float64(i%997) * 1000               // a counter's own start
	switch kind {
	case gauge:
		r := ranges[metricIndex(i)]
		return r.lo + (r.hi-r.lo)*w
	case counter:
		r := ranges[metricIndex(i)]
		return base*r.lo + float64(k)*r.hi // r.lo: start scale, r.hi: increase per step
	case stable:
		return float64(i % 3)
	}
	return 0 // error counters and fault gauges: XIDs, PCIe replays, DBE, remap failures, throttling, preemptions
}

type valueKind uint8

const (
	zero valueKind = iota
	gauge
	counter
	stable
)

// valueRange is a gauge's range, or a counter's start scale and increase per step.
type valueRange struct{ lo, hi float64 }

var (
	gpuKinds    = make([]valueKind, len(gpuMetrics))
	engineKinds = make([]valueKind, len(engineMetrics))
	ranges      = make([]valueRange, len(gpuMetrics)+len(engineMetrics))
)

func init() {
	set := func(name string, kind valueKind, lo, hi float64) {
		for n, m := range gpuMetrics {
			if m == name {
				gpuKinds[n], ranges[n] = kind, valueRange{lo, hi}
				return
			}
		}
		for n, m := range engineMetrics {
			if m == name {
				engineKinds[n], ranges[len(gpuMetrics)+n] = kind, valueRange{lo, hi}
				return
			}
		}
		panic("fleet: unknown metric " + name)
	}
	set("DCGM_FI_DEV_GPU_UTIL", gauge, 40, 90)
	set("DCGM_FI_PROF_GR_ENGINE_ACTIVE", gauge, 0.4, 0.9)
	set("DCGM_FI_DEV_MEM_COPY_UTIL", gauge, 20, 60)
	set("DCGM_FI_DEV_FB_USED", gauge, 60000, 70000)
	set("DCGM_FI_DEV_FB_FREE", gauge, 1000, 11000)
	set("DCGM_FI_DEV_GPU_TEMP", gauge, 45, 60)
	set("DCGM_FI_DEV_MEMORY_TEMP", gauge, 45, 60)
	set("DCGM_FI_DEV_POWER_USAGE", gauge, 300, 500)
	set("DCGM_FI_DEV_SM_CLOCK", gauge, 1755, 1980)
	set("DCGM_FI_DEV_MEM_CLOCK", gauge, 2619, 2619)
	set("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", gauge, 0, 1e9)
	set("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", counter, 1000, 400_000)
	set("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", stable, 0, 0) // a few old, stable corrections
	set("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", stable, 0, 0)
	set("vllm:num_requests_running", gauge, 0, 30)
	set("vllm:num_requests_waiting", gauge, 0, 3)
	set("vllm:kv_cache_usage_perc", gauge, 0.2, 0.7)
	set("vllm:prefix_cache_queries_total", counter, 1, 2000)
	set("vllm:prefix_cache_hits_total", counter, 0.5, 1200)
	set("vllm:prompt_tokens_total", counter, 1, 2000)
	set("vllm:generation_tokens_total", counter, 1, 1500)
	set("vllm:request_success_total", counter, 0.01, 10)
	set("vllm:time_to_first_token_seconds_count", counter, 0.01, 10)
	set("vllm:e2e_request_latency_seconds_count", counter, 0.01, 10)
	set("vllm:inter_token_latency_seconds_count", counter, 1, 1500)
	set("vllm:time_to_first_token_seconds_sum", counter, 0.001, 1.5) // 150 ms mean
	set("vllm:inter_token_latency_seconds_sum", counter, 0.02, 45)   // 30 ms mean
	set("vllm:e2e_request_latency_seconds_sum", counter, 0.1, 40)    // 4 s mean
}

// metricIndex is series i's metric as an index into gpuMetrics followed by engineMetrics.
func metricIndex(i int) int {
	j := i % seriesPerNode
	if j < gpusPerNode*len(gpuMetrics) {
		return j % len(gpuMetrics)
	}
	return len(gpuMetrics) + (j-gpusPerNode*len(gpuMetrics))%len(engineMetrics)
}
