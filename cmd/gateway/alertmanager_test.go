package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// alertmanagerVersion is the release .ci/run installs; later ones do not build with go install.
const alertmanagerVersion = "v0.28.1"

// findAlertmanager returns alertmanager from PATH or $(go env GOPATH)/bin. Absent, the test
// skips unless EAGLE_EYE_REQUIRE_PEERS=1.
func findAlertmanager(t *testing.T) string {
	t.Helper()
	return e2etest.Peer(t, "go install github.com/prometheus/alertmanager/cmd/alertmanager@"+alertmanagerVersion, "alertmanager")
}

// startAlertmanager runs a real Alertmanager on a free loopback port, clustering off, with one
// receiver that notifies nobody; it is stopped when the test ends. It returns its base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := findAlertmanager(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := promtest.FreeAddr(t)
	e2etest.Start(t, filepath.Join(dir, "alertmanager.log"), bin,
		"--config.file="+cfg, "--web.listen-address="+addr, "--cluster.listen-address=",
		"--storage.path="+filepath.Join(dir, "data"))
	base := "http://" + addr
	e2etest.WaitOK(t, base+"/-/ready")
	return base
}

// amAlert is an alert as Alertmanager's API v2 lists it.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// amAlerts lists the alerts Alertmanager holds as active (not resolved) that match filter.
func amAlerts(t *testing.T, base, filter string) []amAlert {
	t.Helper()
	code, body := httpGet(t, base+"/api/v2/alerts?filter="+url.QueryEscape(filter))
	if code != http.StatusOK {
		t.Fatalf("alertmanager /api/v2/alerts: %d %s", code, body)
	}
	var as []amAlert
	if err := json.Unmarshal([]byte(body), &as); err != nil {
		t.Fatalf("alertmanager /api/v2/alerts: %v: %s", err, body)
	}
	return as
}

// TestAlertsReachAlertmanager sends a diagnosis alert through a real Alertmanager: a GPU of
// node-1 becomes unreachable (G01, critical), Alertmanager lists the alert with the rule's
// labels and annotations and a link back to the gateway; the GPU comes back and the alert is
// resolved there.
func TestAlertsReachAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Alertmanager; skipped with -short")
	}
	am := startAlertmanager(t) // first, so that it is stopped after the gateway
	amHost := strings.TrimPrefix(am, "http://")
	gw := startGateway(t, fmt.Sprintf(`alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
      timeout: 5s
`, amHost), func(f *Flags) {
		f.EvalInterval = time.Second
		f.ExternalURL = "http://gateway.example:9095/eagle/"
	})

	// The discovery manager hands the static target to the notifier within a second.
	wantAM := am + "/api/v2/alerts"
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body := httpGet(t, gw.URL+"/api/v1/alertmanagers")
		if strings.Contains(body, `"activeAlertmanagers":[{"url":"`+wantAM+`"}]`) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("/api/v1/alertmanagers does not list %s: %s", wantAM, body)
		}
	}

	gpu := []string{"Hostname", "node-1", "node", "node-1", "UUID", "GPU-5fb3c8a0-0003", "gpu", "3",
		"pci_bus_id", "00000000:3B:00.0", "modelName", "NVIDIA H100 80GB HBM3"}
	write := func(reachable float64) {
		t.Helper()
		body := rw1Body(t, ts("eagle_eye_gpu_reachable", time.Now(), reachable, gpu...))
		if code, msg := postWrite(t, http.DefaultClient, gw.URL, body, nil); code != http.StatusNoContent {
			t.Fatalf("write: %d %s", code, msg)
		}
	}
	const filter = `alertname="GPUFellOffBus"`
	start := time.Now()
	var firing []amAlert
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		write(0)
		if firing = amAlerts(t, am, filter); len(firing) > 0 {
			break
		}
		if time.Now().After(end) {
			_, alerts := httpGet(t, gw.URL+"/api/v1/alerts")
			t.Fatalf("no GPUFellOffBus alert in Alertmanager after 30s; the gateway's alerts: %.1000s", alerts)
		}
	}
	t.Logf("firing in Alertmanager %s after the fault", time.Since(start).Round(100*time.Millisecond))
	if len(firing) != 1 {
		t.Fatalf("%d GPUFellOffBus alerts in Alertmanager, want 1: %+v", len(firing), firing)
	}
	a := firing[0]
	for k, v := range map[string]string{
		"pattern": "G01", "severity": "critical", "component": "gpu", "signal": "gpu_is_lost",
		"node": "node-1", "Hostname": "node-1", "UUID": "GPU-5fb3c8a0-0003", "gpu": "3", "modelName": "NVIDIA H100 80GB HBM3",
	} {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if !strings.Contains(a.Annotations["summary"], "node-1") { // templated from the labels
		t.Errorf("summary annotation %q does not name node-1", a.Annotations["summary"])
	}
	for _, k := range []string{"description", "runbook", "threshold"} {
		if a.Annotations[k] == "" {
			t.Errorf("annotation %s missing: %v", k, a.Annotations)
		}
	}
	if !strings.HasPrefix(a.GeneratorURL, "http://gateway.example:9095/eagle/graph?g0.expr=") {
		t.Errorf("generatorURL %q does not start with the external URL", a.GeneratorURL)
	}
	if a.Status.State == "suppressed" || !a.EndsAt.After(time.Now()) {
		t.Errorf("alert not active: state %q, endsAt %s", a.Status.State, a.EndsAt)
	}

	// The GPU answers again: the rule resolves the alert and the notifier sends it resolved.
	start = time.Now()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		write(1)
		if len(amAlerts(t, am, filter)) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("GPUFellOffBus still active in Alertmanager 30s after the GPU came back: %+v", amAlerts(t, am, filter))
		}
	}
	t.Logf("resolved in Alertmanager %s after the fault cleared", time.Since(start).Round(100*time.Millisecond))
	if _, alerts := httpGet(t, gw.URL+"/api/v1/alerts"); strings.Contains(alerts, `"GPUFellOffBus"`) {
		t.Errorf("the gateway still lists GPUFellOffBus: %.500s", alerts)
	}
	// A resolved alert is sent again at every evaluation for a while: the notifier keeps
	// delivering after the resolution, which is what ended the alert in Alertmanager (not only
	// its endsAt running out).
	before := sentTotal(t, gw.URL, wantAM)
	for end := time.Now().Add(10 * time.Second); sentTotal(t, gw.URL, wantAM) <= before; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("prometheus_notifications_sent_total stayed at %g after the resolution", before)
		}
	}
}

// sentTotal reads the gateway's prometheus_notifications_sent_total for one Alertmanager.
func sentTotal(t *testing.T, gwURL, am string) float64 {
	t.Helper()
	_, metrics := httpGet(t, gwURL+"/metrics")
	re := regexp.MustCompile(`(?m)^prometheus_notifications_sent_total\{alertmanager="` + regexp.QuoteMeta(am) + `"\} (\S+)$`)
	m := re.FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("/metrics has no prometheus_notifications_sent_total for %s", am)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAlertingReload turns alerting on by reloading the configuration file, refuses a bad
// alerting section with its line while the previous Alertmanagers stay, and turns it off.
// Nothing listens at the Alertmanager addresses: no rule fires, so nothing is sent.
func TestAlertingReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gateway.yml")
	writeConfig := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("storage:\n  window: 10m\n")
	gw := startGateway(t, "", func(f *Flags) { f.ConfigFile = file })
	reload := func(wantCode int, want string) {
		t.Helper()
		if code, body := postReload(t, gw.URL); code != wantCode || !strings.Contains(body, want) {
			t.Fatalf("reload: %d %s; want %d containing %q", code, body, wantCode, want)
		}
	}
	waitAlertmanagers := func(want string) {
		t.Helper()
		var body string
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if _, body = httpGet(t, gw.URL+"/api/v1/alertmanagers"); strings.Contains(body, want) {
				return
			}
		}
		t.Fatalf("/api/v1/alertmanagers: %s; want it to contain %s", body, want)
	}
	waitAlertmanagers(`"activeAlertmanagers":[]`)
	_, metrics := httpGet(t, gw.URL+"/metrics")
	if !strings.Contains(metrics, "prometheus_notifications_alertmanagers_discovered 0") {
		t.Error("/metrics lacks prometheus_notifications_alertmanagers_discovered 0")
	}

	writeConfig(`storage:
  window: 10m
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:1", "127.0.0.1:4"]
      relabel_configs:
        - action: drop
          source_labels: [__address__]
          regex: 127.0.0.1:4
    - path_prefix: /am
      static_configs:
        - targets: ["127.0.0.1:2"]
`)
	reload(http.StatusOK, "reloaded")
	waitAlertmanagers(`{"url":"http://127.0.0.1:1/api/v2/alerts"}`)
	waitAlertmanagers(`{"url":"http://127.0.0.1:2/am/api/v2/alerts"}`)
	waitAlertmanagers(`"droppedAlertmanagers":[{"url":"http://127.0.0.1:4/api/v2/alerts"}]`)

	writeConfig(`storage:
  window: 10m
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:3"]
      kubernetes_sd_configs:
        - role: pod
`)
	reload(http.StatusBadRequest, "gateway.yml:7: alerting.alertmanagers[0].kubernetes_sd_configs: the gateway has no kubernetes service discovery")
	if _, body := httpGet(t, gw.URL+"/api/v1/alertmanagers"); !strings.Contains(body, "127.0.0.1:1/") || strings.Contains(body, "127.0.0.1:3") {
		t.Errorf("a refused reload changed the Alertmanagers: %s", body)
	}

	writeConfig("storage:\n  window: 10m\n")
	reload(http.StatusOK, "reloaded")
	waitAlertmanagers(`"activeAlertmanagers":[]`)
}

func TestExternalURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(tlsConfig, []byte("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, listen, webConfig, want string }{
		{"", "127.0.0.1:9095", "", "http://" + host + ":9095"},
		{"", ":9095", tlsConfig, "https://" + host + ":9095"},
		{"https://gw.example/eagle/", "127.0.0.1:9095", "", "https://gw.example/eagle"},
		{"http://gw.example:8080", "", "", "http://gw.example:8080"},
	} {
		u, err := externalURL(c.flag, c.listen, c.webConfig)
		if err != nil || u.String() != c.want {
			t.Errorf("externalURL(%q, %q, web config %v) = %v, %v; want %s", c.flag, c.listen, c.webConfig != "", u, err, c.want)
		}
	}
	for _, bad := range []string{"gw.example", "ftp://gw.example/", "http://"} {
		if _, err := externalURL(bad, "", ""); err == nil {
			t.Errorf("externalURL(%q) accepted", bad)
		}
	}
	var out, errb strings.Builder
	if code := cli([]string{"--web.external-url=gw.example"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "want an absolute http or https URL") {
		t.Errorf("a bad --web.external-url: exit %d, stderr %q", code, errb.String())
	}
}
