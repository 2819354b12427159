package simulate

import (
	"fmt"
	"math"
	"strings"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Bucket bounds of the Gateway API Inference Extension's endpoint picker (pkg/epp/metrics).
var (
	pickerLatencyBuckets = []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3,
		4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}
	pickerNTPOTBuckets       = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0}
	pickerInputTokenBuckets  = []float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288, 1048576}
	pickerOutputTokenBuckets = []float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192}
)

// Error codes the picker counts requests under (inference_objective_request_error_total).
const (
	errBadRequest = "BadRequest"                     // the client's fault: no model, no prompt
	errExhausted  = "InferencePoolResourceExhausted" // shed: every endpoint saturated
)

// pool is one model's InferencePool and its endpoint picker (the EPP), which routes the
// model's requests to the engines serving it. The probe on the picker's node scrapes its
// /metrics like an engine's, so its series carry the target labels (instance, job, pod,
// namespace, node). Its counts are the sums of its engines' in the same collection: what the
// engines finished, the picker saw arrive; plus the requests it refused.
type pool struct {
	name, model string
	engines     []*engine
	labels      []probe.Label
	requests    float64
	errors      map[string]float64
	// Per request, observed at the latency of the engine that served it.
	latency, ntpot, inTokens, outTokens *histogram
}

// newPools builds one picker per model that at least one engine serves, in the order of
// models. Pickers spread over the nodes of their engines, as a scheduler would place them.
func newPools(nodes []*node) []*pool {
	var out []*pool
	for _, m := range models {
		p := &pool{name: poolName(m), model: m, errors: map[string]float64{},
			latency: newHistogram(pickerLatencyBuckets), ntpot: newHistogram(pickerNTPOTBuckets),
			inTokens: newHistogram(pickerInputTokenBuckets), outTokens: newHistogram(pickerOutputTokenBuckets)}
		for _, nd := range nodes {
			for _, e := range nd.engines {
				if e.model == m {
					p.engines = append(p.engines, e)
				}
			}
		}
		if len(p.engines) == 0 {
			continue
		}
		home := labelValue(p.engines[len(out)%len(p.engines)].labels, "node")
		// 9090 is the picker's metrics port; pickers sharing a node get the next ones.
		p.labels = []probe.Label{
			probe.L("instance", fmt.Sprintf("%s:%d", home, 9090+len(out))),
			probe.L("job", "epp"),
			probe.L("pod", p.name+"-epp"),
			probe.L("namespace", "inference"),
			probe.L("node", home),
		}
		out = append(out, p)
	}
	return out
}

// poolName makes an InferencePool name (a Kubernetes name) from a model name:
// "meta-llama/Llama-3.1-8B-Instruct" → "llama-3-1-8b-instruct".
func poolName(model string) string {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, model)
}

// picker appends the pool's endpoint-picker series for this collection, after its engines'.
func (f *Fleet) picker(a *probe.Appender, p *pool) {
	var served, kv, waiting, inflight float64
	saturated := true
	for _, e := range p.engines {
		kv += e.kv
		waiting += e.waiting
		inflight += e.running + e.waiting
		// The picker's saturation detector: queue above 5 or KV cache above 80% (its defaults).
		if e.waiting <= 5 && e.kv <= 0.8 {
			saturated = false
		}
		st := e.step
		if st.requests <= 0 {
			continue
		}
		served += st.requests
		in, out := st.prompt/st.requests, st.gen/st.requests
		latency := st.ttft + (out-1)*st.interTok
		p.latency.observe(latency, st.requests)
		p.ntpot.observe(latency/out, st.requests)
		p.inTokens.observe(in, st.requests)
		p.outTokens.observe(out, st.requests)
	}
	// One request in 500 is malformed; a saturated pool sheds a tenth more than it serves.
	refused := served / 500
	p.errors[errBadRequest] += refused
	if saturated {
		p.errors[errExhausted] += served / 10
		refused += served / 10
	}
	p.requests += served + refused

	ls := p.labels
	n := float64(len(p.engines))
	a.Gauge("up", 1, ls)
	a.Gauge("scrape_duration_seconds", 0.004, ls)
	obj := []probe.Label{probe.L("model_name", p.model), probe.L("target_model_name", p.model)}
	a.Counter("inference_objective_request_total", math.Floor(p.requests), ls, obj...)
	for _, code := range []string{errBadRequest, errExhausted} {
		// A counter vector has a child only once it was incremented.
		if v := p.errors[code]; v > 0 {
			a.Counter("inference_objective_request_error_total", math.Floor(v), ls, append(obj, probe.L("error_code", code))...)
		}
	}
	p.latency.append(a, "inference_objective_request_duration_seconds", ls, obj...)
	p.ntpot.append(a, "inference_objective_normalized_time_per_output_token_seconds", ls, obj...)
	p.inTokens.append(a, "inference_objective_input_tokens", ls, obj...)
	p.outTokens.append(a, "inference_objective_output_tokens", ls, obj...)
	a.Gauge("inference_objective_running_requests", inflight, ls, probe.L("model_name", p.model))
	name := probe.L("name", p.name)
	a.Gauge("inference_pool_average_kv_cache_utilization", kv/n, ls, name)
	a.Gauge("inference_pool_average_queue_size", waiting/n, ls, name)
	a.Gauge("inference_pool_ready_pods", n, ls, name)
	for _, e := range p.engines {
		a.Gauge("inference_pool_per_pod_queue_size", e.waiting, ls, name, probe.L("model_server_pod", labelValue(e.labels, "pod")))
	}
}

func labelValue(ls []probe.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}
