package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

const (
	benchSeries        = 100_000
	benchSeriesPerReq  = 2000
	benchSamplesPerReq = benchSeriesPerReq // one sample per series, as Prometheus batches them
)

var dcgmMetrics = []string{
	"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_TEMP",
	"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_COPY_UTIL",
	"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
}

var vllmMetrics = []string{
	"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:gpu_cache_usage_perc",
	"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:num_preemptions_total",
	"vllm:prefix_cache_hit_rate", "vllm:time_to_first_token_seconds_sum",
	"vllm:inter_token_latency_seconds_sum", "vllm:request_success_total",
}

// benchLabelSets makes 100k label sets like a GPU inference fleet's: 80k DCGM series (1000
// nodes × 8 GPUs × 10 metrics, 12 labels each) and 20k vLLM series (2000 engine pods × 10
// metrics, 8 labels each). Labels are sorted by name, as senders send them.
var benchLabelSets = sync.OnceValue(func() [][]string {
	out := make([][]string, 0, benchSeries)
	for node := range 1000 {
		host := fmt.Sprintf("gpu-node-%04d", node)
		for gpu := range 8 {
			for _, m := range dcgmMetrics {
				out = append(out, []string{
					"Hostname", host,
					"UUID", fmt.Sprintf("GPU-%08x-%04x-4a1b-9c2d-%012x", node*8+gpu, gpu, node),
					"__name__", m,
					"container", "nvidia-dcgm-exporter",
					"device", fmt.Sprintf("nvidia%d", gpu),
					"gpu", fmt.Sprint(gpu),
					"instance", fmt.Sprintf("10.%d.%d.%d:9400", node/250, node%250, 10),
					"job", "gpu-metrics",
					"modelName", "NVIDIA H100 80GB HBM3",
					"namespace", "gpu-operator",
					"pci_bus_id", fmt.Sprintf("00000000:%02X:00.0", 0x18+gpu*0x10),
					"pod", fmt.Sprintf("nvidia-dcgm-exporter-%05x", node),
				})
			}
		}
	}
	for pod := range 2000 {
		for _, m := range vllmMetrics {
			out = append(out, []string{
				"__name__", m,
				"container", "vllm",
				"engine", fmt.Sprint(pod % 4),
				"instance", fmt.Sprintf("10.200.%d.%d:8000", pod/250, pod%250),
				"job", "vllm",
				"model_name", []string{"meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen2.5-72B-Instruct"}[pod%2],
				"namespace", "inference",
				"pod", fmt.Sprintf("vllm-%s-%05d", []string{"llama", "qwen"}[pod%2], pod),
			})
		}
	}
	return out
})

// benchPayloads are the uncompressed RW 1.0 and RW 2.0 requests covering the 100k series,
// 2000 series with one sample each per request.
type benchPayloads struct {
	v1, v2 [][]byte
}

var benchRequests = sync.OnceValue(func() benchPayloads {
	sets := benchLabelSets()
	var p benchPayloads
	for start := 0; start < len(sets); start += benchSeriesPerReq {
		r1 := prompb.WriteRequest{}
		st := writev2.NewSymbolTable()
		r2 := writev2.Request{}
		for i, set := range sets[start : start+benchSeriesPerReq] {
			ts := testTS + int64(i%15)
			v := float64(i%1000) * 1.25
			s1 := prompb.TimeSeries{Samples: []prompb.Sample{{Value: v, Timestamp: ts}}}
			s2 := writev2.TimeSeries{Samples: []writev2.Sample{{Value: v, Timestamp: ts}}}
			for j := 0; j < len(set); j += 2 {
				s1.Labels = append(s1.Labels, prompb.Label{Name: set[j], Value: set[j+1]})
				s2.LabelsRefs = append(s2.LabelsRefs, st.Symbolize(set[j]), st.Symbolize(set[j+1]))
			}
			r1.Timeseries = append(r1.Timeseries, s1)
			r2.Timeseries = append(r2.Timeseries, s2)
		}
		r2.Symbols = st.Symbols()
		b1, err := r1.Marshal()
		if err != nil {
			panic(err)
		}
		b2, err := r2.Marshal()
		if err != nil {
			panic(err)
		}
		p.v1 = append(p.v1, b1)
		p.v2 = append(p.v2, b2)
	}
	return p
})

func reportSamples(b *testing.B, samples int) {
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
}

func BenchmarkDecode(b *testing.B) {
	p := benchRequests()
	for _, bc := range []struct {
		name     string
		v        Version
		payloads [][]byte
	}{{"v1", V1, p.v1}, {"v2", V2, p.v2}} {
		b.Run(bc.name, func(b *testing.B) {
			lim := Limits{}.resolve()
			maxT := testNow.Add(DefaultMaxFutureSampleDelta).UnixMilli()
			var bytesTotal int
			for _, pl := range bc.payloads {
				bytesTotal += len(pl)
			}
			b.SetBytes(int64(bytesTotal / len(bc.payloads)))
			b.ReportAllocs()
			samples, i := 0, 0
			for b.Loop() {
				d := getDecoder(&lim, maxT)
				d.buf = bc.payloads[i%len(bc.payloads)]
				if err := d.decode(bc.v); err != nil || d.valid.Samples != benchSamplesPerReq {
					b.Fatalf("decode: %v, %d samples", err, d.valid.Samples)
				}
				samples += d.valid.Samples
				d.buf = nil // the payload is not the decoder's to keep
				putDecoder(d)
				i++
			}
			reportSamples(b, samples)
		})
	}
}

// benchBody is a reusable request body.
type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }

// discardWriter is a reusable ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func BenchmarkHandler(b *testing.B) {
	p := benchRequests()
	for _, bc := range []struct {
		name     string
		ctype    string
		payloads [][]byte
	}{{"v1", ctV1, p.v1}, {"v2", ctV2, p.v2}} {
		b.Run(bc.name, func(b *testing.B) {
			var compressed [][]byte
			for _, pl := range bc.payloads {
				compressed = append(compressed, snappy(pl))
			}
			noop := SinkFunc(func(_ context.Context, req *Request) (Stats, error) {
				return Stats{Samples: benchSamplesPerReq}, nil
			})
			h, _ := newTestHandler(b, Options{Sinks: []Sink{noop}, Now: func() time.Time { return testNow }})
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", nil)
			r.Header.Set("Content-Type", bc.ctype)
			r.Header.Set("Content-Encoding", "snappy")
			body := &benchBody{}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			samples, i := 0, 0
			for b.Loop() {
				pl := compressed[i%len(compressed)]
				body.Reset(pl)
				r.Body, r.ContentLength = body, int64(len(pl))
				clear(w.h)
				h.ServeHTTP(w, r)
				if w.code != http.StatusNoContent {
					b.Fatalf("status %d", w.code)
				}
				samples += benchSamplesPerReq
				i++
			}
			reportSamples(b, samples)
		})
	}
}

// BenchmarkDecodeGenerated decodes the same payloads with the generated (gogo) decoders, for
// comparison: they allocate every series, label and sample, and validate nothing.
func BenchmarkDecodeGenerated(b *testing.B) {
	p := benchRequests()
	b.Run("v1", func(b *testing.B) {
		b.ReportAllocs()
		samples, i := 0, 0
		for b.Loop() {
			var r prompb.WriteRequest
			if err := r.Unmarshal(p.v1[i%len(p.v1)]); err != nil {
				b.Fatal(err)
			}
			samples += benchSamplesPerReq
			i++
		}
		reportSamples(b, samples)
	})
	b.Run("v2", func(b *testing.B) {
		b.ReportAllocs()
		samples, i := 0, 0
		for b.Loop() {
			var r writev2.Request
			if err := r.Unmarshal(p.v2[i%len(p.v2)]); err != nil {
				b.Fatal(err)
			}
			samples += benchSamplesPerReq
			i++
		}
		reportSamples(b, samples)
	})
}
