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
// GPU, KV saturation, hot GPUs, a sick NPU, a link down) have something to show.
var fleetFaults = []string{
	"xid79@node-1/gpu-3@2s",
	"xid13@node-2/gpu-5@2s",
	"kv_saturation@node-0/engine-0@2s",
	"thermal@node-2/gpu-1@2s",
	"npu_fault@node-3/npu-2@2s",
	"link_down@node-1/mlx5_1/1@2s",
}

// fleetWarmup is how long the probes feed the gateway before the panels are queried: long
// enough for rate() over a one-minute range to have several samples.
const fleetWarmup = 20 * time.Second

// startFleet builds the gateway and probe, runs the gateway on a free loopback port, one
// probe with --simulate and the faults above, and one probe that scrapes the gateway's own
// /metrics as an engine target (job="eagle-eye-gateway"), so its self-metrics are queryable
// too. It returns the gateway's base URL once fleetWarmup has passed.
func startFleet(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bins := e2etest.Build(t, dir, "gateway", "probe")
	addr := promtest.FreeAddr(t)
	base := "http://" + addr
	cfg := filepath.Join(dir, "gateway.yml")
	// A series limit so that the window's limit panel has a line to draw.
	if err := os.WriteFile(cfg, []byte("limits:\n  max_series: 1000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e2etest.Start(t, filepath.Join(dir, "gateway.log"), bins["gateway"],
		"--web.listen-address="+addr, "--storage.dir="+filepath.Join(dir, "data"),
		"--config.file="+cfg, "--nats.listen-address=", "--zmq.bind=tcp://127.0.0.1:0")
	e2etest.WaitOK(t, base+"/-/ready")
	args := []string{"--simulate", "--gateway.url=" + base + "/api/v1/write", "--web.listen-address="}
	for _, f := range fleetFaults {
		args = append(args, "--simulate.fault="+f)
	}
	begin := time.Now()
	e2etest.Start(t, filepath.Join(dir, "probe-sim.log"), bins["probe"], args...)
	e2etest.Start(t, filepath.Join(dir, "probe-self.log"), bins["probe"],
		"--gateway.url="+base+"/api/v1/write", "--web.listen-address=", "--label=node=gateway",
		"--no-collector.nvml", "--no-collector.kmsg", "--no-collector.netdev", "--no-collector.node", "--no-collector.ascend",
		"--engine.target="+base+"/metrics#job=eagle-eye-gateway")
	t.Logf("gateway %s, logs in %s; feeding it for %v", base, dir, fleetWarmup)
	time.Sleep(time.Until(begin.Add(fleetWarmup)))
	return base
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
// by the simulated fleet: each must succeed and, unless allowlisted in noDataYet, return data.
func TestPanelsReturnData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway and probes for about 25 s")
	}
	docs := loadAll(t)
	base := startFleet(t)

	var empty, nowHasData []string
	for _, q := range queries(docs) {
		n, err := instant(base, expand(q.expr))
		if err != nil {
			t.Errorf("%s: %v\n%s", q, err, q.expr)
			continue
		}
		reason := q.allowed()
		switch {
		case n == 0 && reason == "":
			empty = append(empty, fmt.Sprintf("%s\n    %s", q, q.expr))
		case n > 0 && reason != "":
			nowHasData = append(nowHasData, q.String())
		}
	}
	if len(empty) > 0 {
		t.Errorf("%d panel queries returned no data on the simulated fleet:\n  %s", len(empty), strings.Join(empty, "\n  "))
	}
	if len(nowHasData) > 0 {
		t.Logf("allowlisted queries that now return data (remove them from noDataYet):\n  %s", strings.Join(nowHasData, "\n  "))
	}

	vars := variableQueries(t, docs)
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := labelValuesQuery.FindStringSubmatch(vars[k])
		if m == nil {
			continue
		}
		n, err := labelValues(base, m[2], m[1])
		if err != nil || n == 0 {
			t.Errorf("%s: %s has no values (%v)", k, vars[k], err)
		}
	}
}
