package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPage(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{Title: "Test <gateway>", PollInterval: 500 * time.Millisecond}))
	defer srv.Close()

	for _, path := range []string{"/", "/index.html"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		for _, want := range []string{
			`id="status"`, `id="fleet"`, `id="diagnoses"`, `id="live"`, `id="query"`, `id="js-errors"`,
			"api/v1/status/buildinfo", "api/v1/query_range", "api/v1/diagnoses", "ui/status.json",
			"diagnosis not enabled",
			// The configuration, with the title's markup escaped by json.Marshal.
			`"title":"Test \u003cgateway\u003e"`, `"pollMillis":500`, `"endpointLabels":["node","instance"]`,
			`sglang:num_queue_reqs`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: page lacks %q", path, want)
			}
		}
		if strings.Contains(body, "/*EAGLE_EYE_CONFIG*/") {
			t.Error("configuration marker not replaced")
		}
		assertSelfContained(t, body)
	}

	for _, path := range []string{"/favicon.ico", "/api/v1/query", "/ui/", "/index.htm"} {
		if resp, _ := get(t, srv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
}

// assertSelfContained fails when the page loads anything from elsewhere: no absolute or
// protocol-relative URLs, no external scripts, styles, images or fonts.
func assertSelfContained(t *testing.T, body string) {
	t.Helper()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)https?://`),
		regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?//`),
		regexp.MustCompile(`(?i)<script[^>]+src=`),
		regexp.MustCompile(`(?i)<link[^>]+rel=["']?stylesheet`),
		regexp.MustCompile(`(?i)@import|url\(\s*["']?(https?:)?//`),
	} {
		if m := re.FindString(body); m != "" {
			t.Errorf("page refers to something external: %q", m)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	reg := prometheus.NewRegistry()
	samples := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eagle_eye_ingest_samples_total", Help: "h"}, []string{"version"})
	series := prometheus.NewGauge(prometheus.GaugeOpts{Name: "eagle_eye_window_series", Help: "h"})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "something_else", Help: "h"})
	reg.MustRegister(samples, series, other)
	samples.WithLabelValues("1").Add(10)
	samples.WithLabelValues("2").Add(32)
	series.Set(1234)
	other.Set(1)

	srv := httptest.NewServer(Handler(Options{Gatherer: reg}))
	defer srv.Close()
	resp, body := get(t, srv.URL+"/ui/status.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var st status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Metrics["eagle_eye_ingest_samples_total"] != 42 || st.Metrics["eagle_eye_window_series"] != 1234 {
		t.Errorf("metrics %v", st.Metrics)
	}
	if _, ok := st.Metrics["something_else"]; ok {
		t.Error("reported a metric outside the status list")
	}
	if d := time.Since(time.UnixMilli(int64(st.Time * 1000))); d < 0 || d > time.Minute {
		t.Errorf("time %v is %v off", st.Time, d)
	}

	// Without a Gatherer the endpoint still answers, with no figures.
	srv2 := httptest.NewServer(Handler(Options{}))
	defer srv2.Close()
	_, body = get(t, srv2.URL+"/ui/status.json")
	if !strings.Contains(body, `"metrics":{}`) {
		t.Errorf("no gatherer: %s", body)
	}
}

func TestHotFieldsOverride(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{
		HotFields:      []Field{{Name: "queue", Query: `trtllm_num_requests_waiting`}},
		EndpointLabels: []string{"namespace", "pod"},
	}))
	defer srv.Close()
	_, body := get(t, srv.URL+"/")
	if !strings.Contains(body, `"hotFields":[{"name":"queue","query":"trtllm_num_requests_waiting"}]`) ||
		!strings.Contains(body, `"endpointLabels":["namespace","pod"]`) {
		t.Error("options not passed to the page")
	}
	if strings.Contains(body, `"name":"waiting"`) {
		t.Error("defaults used despite HotFields")
	}
}

func TestStatusRates(t *testing.T) {
	h := &history{}
	t0 := time.Unix(1000, 0)
	if r := h.rates(t0, map[string]float64{"a_total": 10, "g": 5}); r != nil {
		t.Errorf("first reading: rates %v, want none", r)
	}
	if r := h.rates(t0.Add(500*time.Millisecond), map[string]float64{"a_total": 11}); r != nil {
		t.Errorf("half a second later: rates %v, want none yet", r)
	}
	r := h.rates(t0.Add(4*time.Second), map[string]float64{"a_total": 30, "g": 9})
	if r["a_total"] != 5 || len(r) != 1 {
		t.Errorf("rates %v, want a_total 5/s and no gauge", r)
	}
	// A counter reset reads as 0, not negative; readings older than rateWindow are dropped.
	r = h.rates(t0.Add(rateWindow+2*time.Second), map[string]float64{"a_total": 1})
	if r["a_total"] != 0 {
		t.Errorf("after reset: %v", r)
	}
	if len(h.readings) > int(rateWindow/time.Second)+1 {
		t.Errorf("%d readings kept", len(h.readings))
	}
}

// TestGraphRedirect: an alert's generatorURL (/graph?g0.expr=...) opens the expression in the
// page's PromQL box.
func TestGraphRedirect(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{}))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/graph?g0.expr=" + url.QueryEscape(`eagle_eye_gpu_reachable{UUID="GPU-1"} == 0`) + "&g0.tab=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound || loc.Path != "/" || loc.Query().Get("q") != `eagle_eye_gpu_reachable{UUID="GPU-1"} == 0` {
		t.Errorf("GET /graph: %d to %s", resp.StatusCode, loc)
	}
}
