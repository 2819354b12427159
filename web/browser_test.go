package web

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// findChromium returns a headless-capable Chromium: $EAGLE_EYE_CHROMIUM, else the first of
// the usual names on PATH. Absent, the test skips unless EAGLE_EYE_REQUIRE_PEERS=1.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EAGLE_EYE_CHROMIUM"); p != "" {
		return p
	}
	return e2etest.Peer(t, "apt-get install -y chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
}

// artifactDir is where the screenshot is kept after the test: $EAGLE_EYE_ARTIFACTS, else a
// fresh directory under the system temp dir that the test does not remove.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("EAGLE_EYE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "eagle-eye-web-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// scrapeGatherer reads another process's /metrics, so that the page's status endpoint can
// report the real gateway's figures in a test that serves the page in-process.
func scrapeGatherer(metricsURL string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		resp, err := http.Get(metricsURL)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, err
		}
		out := make([]*dto.MetricFamily, 0, len(fams))
		for _, f := range fams {
			out = append(out, f)
		}
		return out, nil
	})
}

// TestBrowser serves the page in front of a real gateway fed by a simulated fleet with
// injected faults, loads it in headless Chromium, and checks the rendered DOM: no script
// errors, the fleet, the live view, the faults, the chart. It keeps a screenshot.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway, a probe and Chromium")
	}
	chromium := findChromium(t)
	dir := t.TempDir()
	bins := e2etest.Build(t, dir, "gateway", "probe")
	addr := promtest.FreeAddr(t)
	gw := "http://" + addr
	e2etest.Start(t, filepath.Join(dir, "gateway.log"), bins["gateway"], "--web.listen-address="+addr,
		"--storage.dir="+filepath.Join(dir, "data"), "--nats.listen-address=", "--zmq.bind=tcp://127.0.0.1:0",
		"--rules.evaluation-interval=2s")
	e2etest.WaitOK(t, gw+"/-/ready")
	e2etest.Start(t, filepath.Join(dir, "probe.log"), bins["probe"], "--simulate", "--gateway.url="+gw+"/api/v1/write",
		"--web.listen-address=", "--simulate.fault=xid79@node-1/gpu-3@1s", "--simulate.fault=kv_saturation@node-0/engine-0@1s",
		"--simulate.fault=npu_fault@node-3/npu-2@1s")

	// The gateway serves the page at "/" itself.
	srv := struct{ URL string }{gw}

	// Wait until the faults are visible through the API and diagnosed, then a few seconds
	// more for rates.
	e2etest.WaitOK(t, srv.URL+"/")
	deadline := time.Now().Add(60 * time.Second)
	for !hasResult(srv.URL, `eagle_eye_gpu_reachable == 0`) || !hasResult(srv.URL, `vllm:kv_cache_usage_perc > 0.8`) ||
		!hasDiagnosis(srv.URL, "G01") {
		if time.Now().After(deadline) {
			t.Fatal("faults not visible, or not diagnosed, after 60 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(6 * time.Second)

	args := func(extra ...string) []string {
		return append([]string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
			"--user-data-dir=" + filepath.Join(dir, "chromium-profile"),
			"--enable-logging=stderr", "--v=0", "--window-size=1400,1000",
			// Lets the page's fetches and first polls finish before the DOM is dumped or
			// the screenshot taken.
			"--virtual-time-budget=8000",
		}, extra...)
	}
	dom, logs := runChromium(t, chromium, args("--dump-dom", srv.URL+"/")...)
	if err := os.WriteFile(filepath.Join(dir, "dom.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}

	if m := regexp.MustCompile(`id="js-errors" data-count="(\d+)"`).FindStringSubmatch(dom); m == nil {
		t.Fatalf("no js-errors marker in the DOM (page did not run?); DOM in %s", dir)
	} else if m[1] != "0" {
		t.Errorf("page recorded %s script errors: %s", m[1], between(dom, `id="js-errors"`, "</div></div>"))
	}
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "CONSOLE") {
			continue
		}
		t.Errorf("console: %s", line)
	}
	for _, want := range []string{
		"node-0", "node-3", // the fleet table
		"vllm-node-0-0", "sglang-node-0-1", // the live view, by pod
		"GPU off the bus", "node-1 gpu3", "KV cache saturated", "NPU not healthy", // the faults
		"G01", "router: unroutable", "node-1", // the XID 79 diagnosis with its advice
		"synthetic",
		"<svg", "<path d=\"M", // the chart drew a line
		"version ",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, "version …") {
		t.Error("build info not loaded")
	}
	if m := regexp.MustCompile(`id="c-series">([^<]*)<`).FindStringSubmatch(dom); m == nil || m[1] == "–" {
		t.Errorf("series count not shown: %v", m)
	}
	if m := regexp.MustCompile(`id="c-ingest">([^<]*)<`).FindStringSubmatch(dom); m == nil || m[1] == "–" {
		t.Errorf("ingest rate not shown: %v", m)
	}

	art := artifactDir(t)
	shot := filepath.Join(art, "eagle-eye-page.png")
	_, logs = runChromium(t, chromium, args("--hide-scrollbars", "--screenshot="+shot, srv.URL+"/")...)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v (%v)\n%s", shot, err, st, logs)
	}
	// The whole page too, for people reading the artifact.
	full := filepath.Join(art, "eagle-eye-page-full.png")
	fullArgs := args("--hide-scrollbars", "--screenshot="+full, srv.URL+"/")
	for i, a := range fullArgs {
		if strings.HasPrefix(a, "--window-size=") {
			fullArgs[i] = "--window-size=1400,1900"
		}
	}
	runChromium(t, chromium, fullArgs...)
	_ = os.WriteFile(filepath.Join(art, "dom.html"), []byte(dom), 0o644)
	t.Logf("screenshots: %s, %s", shot, full)
}

func runChromium(t *testing.T, bin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, tail(errb.String(), 4000))
	}
	return out.String(), errb.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

func hasResult(base, expr string) bool {
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(b.String(), `"metric"`)
}

// hasDiagnosis reports whether the gateway has a firing report of pattern.
func hasDiagnosis(base, pattern string) bool {
	resp, err := http.Get(base + "/api/v1/diagnoses?state=firing&pattern=" + pattern)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(b.String(), `"pattern":"`+pattern+`"`)
}
