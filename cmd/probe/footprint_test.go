//go:build cgo && linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/nvml"
	"github.com/eagle-eye-ai/eagle-eye/probe/nvml/nvmltest"
)

// TestFootprint measures the probe's CPU and memory at a 1 s interval with 8 mocked GPUs
// (every NVML call the collector makes, answered by go-nvml's mock), 4 engine targets serving
// the vLLM/SGLang fixtures, the kernel-log reader, the network collector on the fixture sysfs,
// and remote write to a receiver that accepts everything. The probe runs as a child process
// (this test binary re-executed), measured from /proc after a warm-up.
//
//	EAGLE_EYE_FOOTPRINT=60s go test -run '^TestFootprint$' -v ./cmd/probe/
func TestFootprint(t *testing.T) {
	if os.Getenv("EAGLE_EYE_FOOTPRINT_CHILD") != "" {
		footprintChild(t)
		return
	}
	d, err := time.ParseDuration(os.Getenv("EAGLE_EYE_FOOTPRINT"))
	if err != nil {
		t.Skip("set EAGLE_EYE_FOOTPRINT=60s to measure the probe's footprint")
	}
	var bodyBytes, requests, samples atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodyBytes.Add(int64(len(body)))
		requests.Add(1)
		if raw, err := snappy.Decode(nil, body); err == nil {
			var req writev2.Request
			if req.Unmarshal(raw) == nil {
				for _, ts := range req.Timeseries {
					samples.Add(int64(len(ts.Samples)))
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	var targets []string
	for i, f := range []string{"vllm.txt", "vllm_old.txt", "sglang.txt", "vllm.txt"} {
		body, err := os.ReadFile(filepath.Join("../../probe/engine/testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write(body)
		}))
		defer srv.Close()
		targets = append(targets, fmt.Sprintf("%s/metrics#job=engine-%d", srv.URL, i))
	}
	kern := filepath.Join(t.TempDir(), "kern.log")
	b, _ := os.ReadFile("../../probe/kmsg/testdata/kern.log")
	_ = os.WriteFile(kern, b, 0o644)

	cmd := exec.Command(os.Args[0], "-test.run=^TestFootprint$")
	cmd.Env = append(os.Environ(), "EAGLE_EYE_FOOTPRINT_CHILD=1",
		"FOOTPRINT_GATEWAY="+recv.URL+"/api/v1/write", "FOOTPRINT_TARGETS="+strings.Join(targets, " "),
		"FOOTPRINT_KMSG="+kern)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	time.Sleep(10 * time.Second) // warm-up: first collections, connections, GC settling
	cpu0, at0 := cpuTicks(t, pid), time.Now()
	req0, bytes0, samples0 := requests.Load(), bodyBytes.Load(), samples.Load()
	var maxRSS int64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
		maxRSS = max(maxRSS, statusKB(t, pid, "VmRSS"))
	}
	cpu1, at1 := cpuTicks(t, pid), time.Now()
	secs := at1.Sub(at0).Seconds()
	cpuPct := 100 * float64(cpu1-cpu0) / clockTicks(t) / secs
	hwm := statusKB(t, pid, "VmHWM")
	n := float64(samples.Load() - samples0)
	t.Logf("over %.0f s: CPU %.2f %% of one core, RSS max %.1f MiB (high-water mark %.1f MiB), %d requests (%.1f/s), %.0f samples/s, %.1f compressed bytes a sample",
		secs, cpuPct, float64(maxRSS)/1024, float64(hwm)/1024, requests.Load()-req0, float64(requests.Load()-req0)/secs,
		n/secs, float64(bodyBytes.Load()-bytes0)/n)
	if cpuPct > 1 {
		t.Errorf("CPU %.2f %% of one core: the target is 1 %%", cpuPct)
	}
	if maxRSS > 30*1024 {
		t.Errorf("RSS %.1f MiB: the target is 30 MiB", float64(maxRSS)/1024)
	}
}

// footprintChild is the measured probe: the real wiring, with NVML mocked.
func footprintChild(t *testing.T) {
	f := Flags{
		GatewayURL: os.Getenv("FOOTPRINT_GATEWAY"), Protocol: "2.0", Interval: time.Second,
		BufferSamples: 1_000_000, GatewayTimeout: 10 * time.Second, MaxBackoff: 5 * time.Second,
		FlushTimeout: time.Second, Labels: []string{"node=bench"}, SysfsPath: "../../probe/netdev/testdata/sys",
		KmsgPath: os.Getenv("FOOTPRINT_KMSG"), NVML: true, Kmsg: true, Netdev: true, Engine: true,
		EngineTargets: strings.Fields(os.Getenv("FOOTPRINT_TARGETS")), EngineInterval: time.Second,
	}
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	machine := nvmltest.NewMachine(8)
	cfg.newNVML = func(o nvml.Options) probe.Collector { return nvml.NewWithLibrary(o, machine.Lib) }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, newLogger("warn", "logfmt", os.Stderr), nil); err != nil {
		t.Fatal(err)
	}
}

// cpuTicks returns utime+stime of pid from /proc/<pid>/stat.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return ut + st
}

func statusKB(t *testing.T, pid int, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func clockTicks(t *testing.T) float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || v <= 0 {
		return 100
	}
	return v
}
