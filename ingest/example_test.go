package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// A sink that keeps the last value of each series: it copies what it keeps, because the
// request's strings and slices are reused once Write returns.
type lastValues map[string]float64

func (m lastValues) Write(_ context.Context, req *ingest.Request) (ingest.Stats, error) {
	var st ingest.Stats
	for _, s := range req.Series {
		for _, smp := range s.Samples {
			m[fmt.Sprint(s.Labels)] = smp.V // fmt.Sprint copies the label strings
			st.Samples++
		}
	}
	return st, nil
}

func Example() {
	last := lastValues{}
	h, err := ingest.NewHandler(ingest.Options{
		Registerer: prometheus.NewRegistry(),
		Sinks:      []ingest.Sink{last},
	})
	if err != nil {
		panic(err)
	}

	// An RW 1.0 request, as a Prometheus server sends it.
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "vllm:num_requests_waiting"}, {Name: "model_name", Value: "llama"}},
		Samples: []prompb.Sample{{Value: 3, Timestamp: 1_700_000_000_000}},
	}}}
	raw, _ := wr.Marshal()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(s2.EncodeSnappy(nil, raw)))
	r.Header.Set("Content-Type", "application/x-protobuf;proto=prometheus.WriteRequest")
	r.Header.Set("Content-Encoding", "snappy")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)

	fmt.Println(w.Code)
	fmt.Println(last)
	// Output:
	// 204
	// map[[{__name__ vllm:num_requests_waiting} {model_name llama}]:3]
}
