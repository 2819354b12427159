package web

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

//go:embed index.html
var page []byte

// configMarker is replaced in index.html by the page's configuration (JSON).
var configMarker = []byte("/*EAGLE_EYE_CONFIG*/{}")

// Field is one column of the live per-endpoint view: a PromQL query whose result series are
// matched to endpoints by their endpoint labels.
type Field struct {
	// Name is the column heading, e.g. "waiting".
	Name string `json:"name"`
	// Query is an instant PromQL query returning one series per endpoint.
	Query string `json:"query"`
	// Unit is how the page formats values: "" (a number) or "ratio" (shown as a percentage
	// with a bar).
	Unit string `json:"unit,omitempty"`
}

// DefaultHotFields are the live view's columns when Options.HotFields is empty: the engine
// load fields routers read (queue, running, KV cache) for vLLM and SGLang.
var DefaultHotFields = []Field{
	{Name: "waiting", Query: `{__name__=~"vllm:num_requests_waiting|sglang:num_queue_reqs"}`},
	{Name: "running", Query: `{__name__=~"vllm:num_requests_running|sglang:num_running_reqs"}`},
	{Name: "KV cache", Query: `{__name__=~"vllm:kv_cache_usage_perc|vllm:gpu_cache_usage_perc|sglang:token_usage"}`, Unit: "ratio"},
}

// DefaultEndpointLabels identify an endpoint in the live view when Options.EndpointLabels is
// empty.
var DefaultEndpointLabels = []string{"node", "instance"}

// Options configures the page. The zero value is usable.
type Options struct {
	// Gatherer is the gateway's metric registry. /ui/status.json reads the gateway's own
	// figures (ingest counters, series in the window, hot-series and forwarding counters) from
	// it on each request. Nil: the page shows those figures as unknown.
	Gatherer prometheus.Gatherer
	// HotFields are the live view's columns; empty means DefaultHotFields.
	HotFields []Field
	// EndpointLabels identify an endpoint in the live view; empty means DefaultEndpointLabels.
	EndpointLabels []string
	// PollInterval is how often the live view and the status refresh; 0 means 2 s.
	PollInterval time.Duration
	// Title heads the page; empty means "Eagle Eye gateway".
	Title string
}

// pageConfig is what the page's script reads.
type pageConfig struct {
	Title          string   `json:"title"`
	HotFields      []Field  `json:"hotFields"`
	EndpointLabels []string `json:"endpointLabels"`
	PollMillis     int64    `json:"pollMillis"`
}

// statusMetrics are the gateway self-metrics /ui/status.json reports, each summed over its
// series, when present in the Gatherer.
var statusMetrics = []string{
	"eagle_eye_ingest_samples_total",
	"eagle_eye_ingest_requests_total",
	"eagle_eye_ingest_inflight_requests",
	"eagle_eye_window_series",
	"eagle_eye_window_series_limit",
	"eagle_eye_window_length_seconds",
	"eagle_eye_window_samples_rejected_total",
	"eagle_eye_hot_series_messages_published_total",
	"eagle_eye_hot_series_endpoints",
	"eagle_eye_hot_series_nats_connected",
	"eagle_eye_forward_sent_samples_total",
	"eagle_eye_forward_queue_bytes",
	"eagle_eye_forward_oldest_queued_age_seconds",
	"eagle_eye_diagnosis_active",
	"process_start_time_seconds",
	"process_resident_memory_bytes",
}

// Handler returns the page's handler. It serves GET / and /index.html (the page) and
// /ui/status.json (the gateway's own figures), and answers 404 for any other path, so it can
// be mounted as a mux's catch-all.
func Handler(o Options) http.Handler {
	cfg := pageConfig{Title: o.Title, HotFields: o.HotFields, EndpointLabels: o.EndpointLabels,
		PollMillis: o.PollInterval.Milliseconds()}
	if cfg.Title == "" {
		cfg.Title = "Eagle Eye gateway"
	}
	if len(cfg.HotFields) == 0 {
		cfg.HotFields = DefaultHotFields
	}
	if len(cfg.EndpointLabels) == 0 {
		cfg.EndpointLabels = DefaultEndpointLabels
	}
	if cfg.PollMillis <= 0 {
		cfg.PollMillis = 2000
	}
	// json.Marshal escapes <, > and &, so the configuration cannot end the script element.
	js, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // only strings and numbers: cannot fail
	}
	body := bytes.Replace(page, configMarker, js, 1)

	mux := http.NewServeMux()
	servePage := func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		// Only inline script and style, and requests to this origin.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	}
	mux.HandleFunc("GET /{$}", servePage)
	mux.HandleFunc("GET /index.html", servePage)
	// Alerts carry Prometheus' generatorURL, <external URL>/graph?g0.expr=...: open the
	// expression in the page's PromQL box instead of a 404.
	mux.HandleFunc("GET /graph", func(w http.ResponseWriter, r *http.Request) {
		target := "./"
		if expr := r.URL.Query().Get("g0.expr"); expr != "" {
			target += "?" + url.Values{"q": {expr}}.Encode()
		}
		http.Redirect(w, r, target, http.StatusFound)
	})
	hist := &history{}
	mux.HandleFunc("GET /ui/status.json", func(w http.ResponseWriter, _ *http.Request) {
		now := time.Now()
		st := status{Time: float64(now.UnixMilli()) / 1000, Metrics: map[string]float64{}}
		if o.Gatherer != nil {
			mfs, err := o.Gatherer.Gather()
			if err != nil && len(mfs) == 0 {
				st.Error = err.Error()
			}
			st.Metrics = pick(mfs)
			st.Rates = hist.rates(now, st.Metrics)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}

type status struct {
	// Time is when the figures were read, in Unix seconds.
	Time float64 `json:"time"`
	// Metrics maps each present status metric to its value summed over its series.
	Metrics map[string]float64 `json:"metrics"`
	// Rates holds the per-second rate of each counter (a name ending in _total) over the last
	// few seconds, once an earlier reading exists.
	Rates map[string]float64 `json:"rates,omitempty"`
	Error string             `json:"error,omitempty"`
}

// history keeps a few recent readings of the status counters, so that /ui/status.json can
// answer rates at once, whoever asked before. At most one reading per second is kept, for
// rateWindow; rates are taken against the oldest reading at least a second old.
type history struct {
	mu       sync.Mutex
	readings []reading
}

type reading struct {
	at     time.Time
	values map[string]float64
}

const rateWindow = 15 * time.Second

func (h *history) rates(now time.Time, values map[string]float64) map[string]float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.readings) > 0 && now.Sub(h.readings[0].at) > rateWindow {
		h.readings = h.readings[1:]
	}
	var out map[string]float64
	if len(h.readings) > 0 {
		if base := h.readings[0]; now.Sub(base.at) >= time.Second {
			dt := now.Sub(base.at).Seconds()
			out = map[string]float64{}
			for name, v := range values {
				prev, ok := base.values[name]
				if !ok || !strings.HasSuffix(name, "_total") {
					continue
				}
				out[name] = max(0, v-prev) / dt // a restart reads as 0, not negative
			}
		}
	}
	if n := len(h.readings); n == 0 || now.Sub(h.readings[n-1].at) >= time.Second {
		h.readings = append(h.readings, reading{at: now, values: values})
	}
	return out
}

func pick(mfs []*dto.MetricFamily) map[string]float64 {
	want := make(map[string]bool, len(statusMetrics))
	for _, n := range statusMetrics {
		want[n] = true
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !want[mf.GetName()] {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Untyped != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
		if !math.IsNaN(sum) && !math.IsInf(sum, 0) {
			out[mf.GetName()] = sum
		}
	}
	return out
}
