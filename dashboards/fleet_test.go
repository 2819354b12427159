package dashboards

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// fleetFaults are injected into the simulated fleet so that the fault panels (XIDs, a lost
// GPU, KV saturation, hot GPUs, a sick NPU, a link down, diagnoses and firing alerts) have
// something to show. target holds the labels that name the faulted device or engine in an
// alert: every alert must carry one fault's target labels, which shows that the healthy rest
// of the fleet raises none.
var fleetFaults = []struct {
	fault  string
	target map[string]string
}{
	{"xid79@node-1/gpu-3@1s", map[string]string{"node": "node-1", "gpu": "3"}},
	{"xid13@node-2/gpu-5@1s", map[string]string{"node": "node-2", "gpu": "5"}},
	{"kv_saturation@node-0/engine-0@1s", map[string]string{"node": "node-0", "instance": "node-0:8000"}},
	{"thermal@node-2/gpu-1@1s", map[string]string{"node": "node-2", "gpu": "1"}},
	{"npu_fault@node-3/npu-2@1s", map[string]string{"node": "node-3", "id": "2"}},
	{"link_down@node-1/mlx5_1/1@1s", map[string]string{"node": "node-1", "device": "mlx5_1", "port": "1"}},
}

// fleetDeadline is the longest the fleet may take until every panel query returns data. It
// takes about six seconds: two samples for rate(), rule evaluations (every second, 2 s in the
// past) for ALERTS and the diagnoses, and two self-scrapes for their and the forwarder's
// metrics.
const fleetDeadline = time.Minute

// startGateway runs a gateway named name on addr, with its own storage and forward-queue
// directories under dir, the configuration cfg (none when empty) and extra flags, and waits
// until it is ready.
func startGateway(t *testing.T, bin, dir, name, addr, cfg string, extra ...string) {
	t.Helper()
	args := []string{"--web.listen-address=" + addr,
		"--storage.dir=" + filepath.Join(dir, name, "data"), "--forward.queue-dir=" + filepath.Join(dir, name, "forward"),
		"--nats.listen-address=", "--zmq.bind=tcp://127.0.0.1:0"}
	if cfg != "" {
		f := filepath.Join(dir, name+".yml")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config.file="+f)
	}
	e2etest.Start(t, filepath.Join(dir, name+".log"), bin, append(args, extra...)...)
	e2etest.WaitOK(t, "http://"+addr+"/-/ready")
}

// startFleet builds the gateway and probe and runs, on free loopback ports: a gateway standing
// in for long-term storage; the gateway under test, with its bundled diagnosis rules evaluated
// every second and forwarding everything to the first; one probe with --simulate and the
// faults above; and one probe that scrapes the gateway's own /metrics as an engine target
// (job="eagle-eye-gateway"), so its self-metrics are queryable too. It returns the base URLs
// of the gateway under test and of the long-term one.
func startFleet(t *testing.T) (base, longterm string) {
	t.Helper()
	dir := t.TempDir()
	// The binaries go apart: the gateways' directories are named after them.
	bins := e2etest.Build(t, t.TempDir(), "gateway", "probe")
	// Only the data path matters in long-term storage: no rules there.
	ltAddr := promtest.FreeAddr(t)
	startGateway(t, bins["gateway"], dir, "longterm", ltAddr, "", "--no-diagnosis.enabled")
	addr := promtest.FreeAddr(t)
	base, longterm = "http://"+addr, "http://"+ltAddr
	// A series limit so that the window's limit panel has a line to draw.
	cfg := fmt.Sprintf("limits:\n  max_series: 1000000\nremote_write:\n  - url: %s/api/v1/write\n    name: longterm\n", longterm)
	startGateway(t, bins["gateway"], dir, "gateway", addr, cfg, "--rules.evaluation-interval=1s")
	args := []string{"--simulate", "--gateway.url=" + base + "/api/v1/write", "--web.listen-address="}
	for _, f := range fleetFaults {
		args = append(args, "--simulate.fault="+f.fault)
	}
	e2etest.Start(t, filepath.Join(dir, "probe-sim.log"), bins["probe"], args...)
	e2etest.Start(t, filepath.Join(dir, "probe-self.log"), bins["probe"],
		"--gateway.url="+base+"/api/v1/write", "--web.listen-address=", "--label=node=gateway",
		"--no-collector.nvml", "--no-collector.kmsg", "--no-collector.netdev", "--no-collector.node", "--no-collector.ascend",
		"--engine.target="+base+"/metrics#job=eagle-eye-gateway")
	t.Logf("gateway %s, long-term %s, logs in %s", base, longterm, dir)
	return base, longterm
}

// instant runs expr at now and returns how many series or the scalar it answered.
func instant(base, expr string) (int, error) {
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s", r.Error)
	}
	if r.Data.ResultType == "scalar" {
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(r.Data.Result, &series); err != nil {
		return 0, err
	}
	return len(series), nil
}

func labelValues(base, label, match string) (int, error) {
	v := url.Values{}
	if match != "" {
		v.Set("match[]", match)
	}
	resp, err := http.Get(base + "/api/v1/label/" + label + "/values?" + v.Encode())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return len(r.Data), nil
}

// TestPanelsReturnData runs every panel query and every variable query against a gateway fed
// by the simulated fleet: each must succeed and return data. It waits until they all do (at
// most fleetDeadline), then checks that every alert belongs to an injected fault and that
// forwarding reached long-term storage.
func TestPanelsReturnData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateways and two probes for about 10 s")
	}
	docs := loadAll(t)
	qs := queries(docs)
	vars := variableQueries(t, docs)
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// check runs every query once and returns what failed or returned nothing.
	check := func(base string) []string {
		var bad []string
		for _, q := range qs {
			if n, err := instant(base, expand(q.expr)); err != nil || n == 0 {
				bad = append(bad, fmt.Sprintf("%s: %d series, error %v\n    %s", q, n, err, q.expr))
			}
		}
		for _, k := range keys {
			m := labelValuesQuery.FindStringSubmatch(vars[k])
			if m == nil {
				continue
			}
			if n, err := labelValues(base, m[2], m[1]); err != nil || n == 0 {
				bad = append(bad, fmt.Sprintf("%s: %s has no values (%v)", k, vars[k], err))
			}
		}
		return bad
	}

	base, longterm := startFleet(t)
	begin := time.Now()
	bad := check(base)
	for len(bad) > 0 && time.Since(begin) < fleetDeadline {
		time.Sleep(time.Second)
		bad = check(base)
	}
	if len(bad) > 0 {
		t.Errorf("%d panel or variable queries returned no data on the simulated fleet after %v:\n  %s", len(bad), fleetDeadline, strings.Join(bad, "\n  "))
	}
	t.Logf("%d panel queries and %d variable queries returned data %.1f s after the fleet started", len(qs), len(keys), time.Since(begin).Seconds())

	alerts, err := series(base, "ALERTS")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		ok := false
		for _, f := range fleetFaults {
			ok = ok || matches(a, f.target)
		}
		if !ok {
			t.Errorf("alert on a healthy part of the simulated fleet: %v", a)
		}
	}
	if n, err := instant(longterm, `eagle_eye_probe_simulated`); err != nil || n == 0 {
		t.Errorf("long-term storage has no simulated series (%d, %v)", n, err)
	}
}

// series runs expr at now and returns the labels of each series.
func series(base, expr string) ([]map[string]string, error) {
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, s := range r.Data.Result {
		out = append(out, s.Metric)
	}
	return out, nil
}

// matches reports whether ls has every label of want.
func matches(ls, want map[string]string) bool {
	for k, v := range want {
		if ls[k] != v {
			return false
		}
	}
	return true
}
