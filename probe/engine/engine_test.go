package engine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// serve serves a fixture file with the given content type.
func serve(t *testing.T, file, contentType string) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type got struct {
	v      float64
	typ    remotewrite.MetricType
	labels map[string]string
}

func collect(t *testing.T, s *Scraper) (map[string][]got, error) {
	t.Helper()
	a := probe.NewAppender(time.Now())
	err := s.Collect(context.Background(), a)
	out := map[string][]got{}
	for _, ser := range a.Series() {
		ls := map[string]string{}
		for _, l := range ser.Labels {
			ls[l.Name] = l.Value
		}
		out[ser.Name()] = append(out[ser.Name()], got{ser.Samples[0].V, ser.Type, ls})
	}
	return out, err
}

func TestScrapeEngines(t *testing.T) {
	text := "text/plain; version=0.0.4; charset=utf-8"
	vllm := serve(t, "vllm.txt", text)
	old := serve(t, "vllm_old.txt", text)
	sgl := serve(t, "sglang.txt", text)
	om := serve(t, "openmetrics.txt", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	var targets []Target
	for _, s := range []string{vllm.URL + "#job=vllm", old.URL + "#job=vllm", sgl.URL + "#job=sglang", om.URL + "#job=mooncake", down.URL} {
		tg, err := ParseTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	s, err := New(Options{Targets: targets, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	one := func(name string) got {
		t.Helper()
		if len(m[name]) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(m[name]))
		}
		return m[name][0]
	}
	if g := one("vllm:kv_cache_usage_perc"); g.v != 0.4213 || g.typ != remotewrite.Gauge || g.labels["job"] != "vllm" ||
		g.labels["instance"] != strings.TrimPrefix(vllm.URL, "http://") || g.labels["model_name"] != "meta-llama/Llama-3.1-8B-Instruct" {
		t.Errorf("new vLLM KV usage: %+v", g)
	}
	if g := one("vllm:gpu_cache_usage_perc"); g.v != 0.873 {
		t.Errorf("old vLLM KV usage: %+v", g)
	}
	if g := one("sglang:token_usage"); g.v != 0.61 || g.labels["tp_rank"] != "0" {
		t.Errorf("SGLang token usage: %+v", g)
	}
	if g := one("vllm:prefix_cache_hits_total"); g.typ != remotewrite.Counter {
		t.Errorf("counter type: %+v", g)
	}
	if n := len(m["vllm:time_to_first_token_seconds_bucket"]); n != 7 {
		t.Errorf("TTFT buckets = %d, want 7", n)
	}
	if g := one("master_put_start_requests_total"); g.v != 88210 {
		t.Errorf("OpenMetrics counter: %+v", g)
	}
	if n := len(m["vllm:num_requests_waiting"]); n != 2 { // new and old vLLM
		t.Errorf("waiting: %d series, want 2", n)
	}
	ups := map[string]float64{}
	for _, g := range m["up"] {
		ups[g.labels["job"]] += g.v
	}
	if ups["vllm"] != 2 || ups["sglang"] != 1 || ups["mooncake"] != 1 || ups["engine"] != 0 {
		t.Errorf("up = %v", ups)
	}
	if len(m["scrape_duration_seconds"]) != 5 {
		t.Errorf("scrape_duration_seconds for %d targets, want 5", len(m["scrape_duration_seconds"]))
	}
}

func TestExportedLabelsAndLimits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("a{job=\"inner\"} 1\nb 2\nc 3\n"))
	}))
	defer srv.Close()
	tg, _ := ParseTarget(srv.URL + "#job=outer")
	s, _ := New(Options{Targets: []Target{tg}})
	m, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if g := m["a"][0]; g.labels["job"] != "outer" || g.labels["exported_job"] != "inner" {
		t.Errorf("labels: %v", g.labels)
	}
	s, _ = New(Options{Targets: []Target{tg}, MaxSamples: 2})
	m, err = collect(t, s)
	if err == nil || m["up"][0].v != 0 || len(m["a"]) != 0 {
		t.Errorf("a scrape over the sample limit must fail whole: err=%v up=%v", err, m["up"])
	}
}

func TestParseTarget(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8000/metrics", "ftp://x/metrics", "http://127.0.0.1:1/m#job", "http://127.0.0.1:1/m#1x=y"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
	tg, err := ParseTarget("http://127.0.0.1:8000/metrics")
	if err != nil || len(tg.Labels) != 2 || tg.Labels[0] != probe.L("instance", "127.0.0.1:8000") || tg.Labels[1] != probe.L("job", "engine") {
		t.Errorf("defaults: %+v %v", tg, err)
	}
}

func TestTargetsFromPods(t *testing.T) {
	f, _ := os.Open("testdata/pods.json")
	defer f.Close()
	ts, err := TargetsFromPods(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 {
		t.Fatalf("targets = %+v, want the two running annotated pods with a port", ts)
	}
	if ts[0].URL != "http://10.42.1.17:8000/metrics" || ts[1].URL != "http://10.42.1.18:30000/metrics" {
		t.Errorf("URLs: %s, %s", ts[0].URL, ts[1].URL)
	}
	want := []probe.Label{probe.L("instance", "10.42.1.17:8000"), probe.L("job", "vllm"), probe.L("namespace", "inference"), probe.L("pod", "vllm-llama-0")}
	for i, l := range want {
		if ts[0].Labels[i] != l {
			t.Errorf("labels %v, want %v", ts[0].Labels, want)
			break
		}
	}
}

func TestKubeletDiscovery(t *testing.T) {
	pods, _ := os.ReadFile("testdata/pods.json")
	var auth string
	kl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		_, _ = w.Write(pods)
	}))
	defer kl.Close()
	tok := t.TempDir() + "/token"
	_ = os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	k, err := NewKubelet(KubeletOptions{URL: kl.URL + "/pods", TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(k.Targets(context.Background())); n != 2 {
		t.Fatalf("discovered %d targets, want 2", n)
	}
	if auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q", auth)
	}
}
