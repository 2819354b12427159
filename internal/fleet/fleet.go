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

// Value returns a plausible value for series i at step k: counters grow, gauges wander.
func Value(i, k int) float64 {
	return float64((i*7919+k*104729)%1000) / 10
}
