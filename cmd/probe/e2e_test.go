package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// gatewayOutage is how long the end-to-end test keeps the gateway down: 30 s, thirty intervals
// the probes must buffer and deliver in order once it is back.
const gatewayOutage = 30 * time.Second

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

func query(t *testing.T, base, q string) []promResult {
	t.Helper()
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %q: %v %s", q, err, body)
	}
	return r.Data.Result
}

// scalar returns the single value of q, or -1 when the result is empty.
func scalar(t *testing.T, base, q string) float64 {
	t.Helper()
	r := query(t, base, q)
	if len(r) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(r[0].Value[1].(string), 64)
	return v
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("after %v: %s", d, what)
}

// TestEndToEnd runs the real probe (--simulate) against the real gateway, checks the series
// with PromQL, then stops the gateway for gatewayOutage and restarts it: every 1 s interval of
// the outage must arrive, in order, once the gateway is back.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs two binaries for about 30 s")
	}
	dir := t.TempDir()
	bins := e2etest.Build(t, dir, "gateway", "probe")
	gwBin, probeBin := bins["gateway"], bins["probe"]
	addr := promtest.FreeAddr(t)
	base := "http://" + addr
	gwArgs := []string{"--web.listen-address=" + addr, "--storage.dir=" + filepath.Join(dir, "gw"), "--log.level=warn",
		"--nats.listen-address=127.0.0.1:0", "--zmq.bind=tcp://127.0.0.1:0"}
	gw := e2etest.Start(t, filepath.Join(dir, "gateway.log"), gwBin, gwArgs...)
	e2etest.WaitOK(t, base+"/-/ready")

	// One probe per protocol, told apart by their cluster label.
	for _, proto := range []string{"2.0", "1.0"} {
		e2etest.Start(t, filepath.Join(dir, "probe-"+proto+".log"), probeBin,
			"--simulate", "--gateway.url="+base+"/api/v1/write", "--gateway.protocol="+proto,
			"--web.listen-address=", "--gateway.max-backoff=1s",
			"--simulate.nodes=2", "--simulate.engines-per-node=2",
			"--simulate.fault=xid79@node-1/gpu-3@2s", "--simulate.fault=kv_saturation@node-0/engine-0@1s",
			"--label=cluster=e2e-"+proto)
	}

	eventually(t, 15*time.Second, "the simulated fleets in PromQL", func() bool {
		return scalar(t, base, `count(eagle_eye_probe_simulated{cluster="e2e-2.0"} == 1)`) == 3 && // 2 NVIDIA nodes + 1 Ascend
			scalar(t, base, `count(eagle_eye_probe_simulated{cluster="e2e-1.0"} == 1)`) == 3
	})
	eventually(t, 10*time.Second, "XID 79 counted on node-1 gpu 3", func() bool {
		return scalar(t, base, `eagle_eye_gpu_xid_errors_total{node="node-1",gpu="3",xid="79",cluster="e2e-2.0"}`) == 1
	})
	for _, c := range []string{"e2e-2.0", "e2e-1.0"} {
		for q, want := range map[string]float64{
			`count(DCGM_FI_DEV_GPU_TEMP{cluster="C"})`:                                              16,
			`count(eagle_eye_gpu_reachable{cluster="C"} == 1)`:                                      15, // one off the bus
			`DCGM_FI_DEV_XID_ERRORS{cluster="C",node="node-1",gpu="3"}`:                             79,
			`count(vllm:kv_cache_usage_perc{cluster="C"}) + count(sglang:token_usage{cluster="C"})`: 4,
			`vllm:kv_cache_usage_perc{cluster="C",node="node-0",instance="node-0:8000"}`:            0.99,
			`count(npu_chip_info_health_status{cluster="C"})`:                                       8,
			`count(node_infiniband_state_id{cluster="C"} == 4)`:                                     4,
			`eagle_eye_probe_collector_success{cluster="C",collector="simulate"}`:                   1,
		} {
			q = strings.ReplaceAll(q, `cluster="C"`, `cluster="`+c+`"`)
			if got := scalar(t, base, q); got != want {
				t.Errorf("%s = %v, want %v", q, got, want)
			}
		}
	}

	// Outage: stop the gateway, keep it down, restart it on the same address.
	t.Logf("stopping the gateway for %v", gatewayOutage)
	stopped := time.Now()
	gw.Stop(t)
	time.Sleep(gatewayOutage)
	gw = e2etest.Start(t, filepath.Join(dir, "gateway.log"), gwBin, gwArgs...)
	e2etest.WaitOK(t, base+"/-/ready")
	restarted := time.Now()
	for _, proto := range []string{"2.0", "1.0"} {
		sel := fmt.Sprintf(`DCGM_FI_DEV_GPU_TEMP{cluster="e2e-%s",node="node-0",gpu="0"}`, proto)
		// The restarted gateway's window starts empty: what it holds of this series must begin at
		// the stop and have one sample per second from there to now.
		var samples []float64
		eventually(t, 20*time.Second, "the outage's samples to arrive", func() bool {
			r := query(t, base, fmt.Sprintf("%s[%ds]", sel, int(time.Since(stopped).Seconds())+5))
			if len(r) != 1 {
				return false
			}
			samples = samples[:0]
			for _, v := range r[0].Values {
				samples = append(samples, v[0].(float64))
			}
			return len(samples) > 0 && samples[len(samples)-1] >= float64(restarted.Unix())+2
		})
		first, last := samples[0], samples[len(samples)-1]
		if first > float64(stopped.Unix())+1 {
			t.Errorf("first sample after the restart is at %v; the gateway stopped at %v: the outage's start was lost", first, stopped.Unix())
		}
		for i := 1; i < len(samples); i++ {
			if d := samples[i] - samples[i-1]; d != 1 {
				t.Errorf("gap of %vs between samples %d and %d (at %v)", d, i-1, i, samples[i-1])
			}
		}
		t.Logf("after a %v outage: %d samples of %s, one per second from %v to %v", gatewayOutage, len(samples), sel, first, last)
	}
	if testing.Verbose() {
		b, _ := os.ReadFile(filepath.Join(dir, "probe-2.0.log"))
		t.Logf("probe log:\n%s", strings.TrimSpace(string(b)))
	}
}
