//go:build cgo && linux

package nvml

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/nvml/nvmltest"
	"github.com/eagle-eye-ai/eagle-eye/probe/xid"
)

const nGPU = 8

// values indexes one collection by metric name and gpu label.
func values(t *testing.T, a *probe.Appender) map[string]map[string]float64 {
	t.Helper()
	out := map[string]map[string]float64{}
	for _, s := range a.Series() {
		gpu := ""
		for _, l := range s.Labels {
			if l.Name == "gpu" {
				gpu = l.Value
			}
		}
		if out[s.Name()] == nil {
			out[s.Name()] = map[string]float64{}
		}
		out[s.Name()][gpu] += s.Samples[0].V
	}
	return out
}

func TestCollectEightGPUs(t *testing.T) {
	m := nvmltest.NewMachine(nGPU)
	c := NewWithLibrary(Options{Hostname: "node-1"}, m.Lib)
	a := probe.NewAppender(time.Now())
	if err := c.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	v := values(t, a)
	for name, want := range map[string]float64{
		"DCGM_FI_DEV_GPU_UTIL":                          53,
		"DCGM_FI_DEV_MEM_COPY_UTIL":                     23,
		"DCGM_FI_DEV_FB_USED":                           60 * 1024,
		"DCGM_FI_DEV_FB_FREE":                           20 * 1024,
		"DCGM_FI_DEV_GPU_TEMP":                          43,
		"DCGM_FI_DEV_MEMORY_TEMP":                       53,
		"DCGM_FI_DEV_SLOWDOWN_TEMP":                     87,
		"DCGM_FI_DEV_SHUTDOWN_TEMP":                     92,
		"DCGM_FI_DEV_POWER_USAGE":                       350.5,
		"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION":          123_456_789,
		"DCGM_FI_DEV_SM_CLOCK":                          1980,
		"DCGM_FI_DEV_MEM_CLOCK":                         2619,
		"DCGM_FI_DEV_CLOCKS_EVENT_REASONS":              0x20,
		"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS":            0x20,
		"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL":                 0,
		"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL":                 10,
		"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL":                 1,
		"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL":                 11,
		"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS":         2,
		"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS":       1,
		"DCGM_FI_DEV_ROW_REMAP_FAILURE":                 0,
		"DCGM_FI_DEV_PCIE_REPLAY_COUNTER":               7,
		"DCGM_FI_PROF_PCIE_TX_BYTES":                    1000 * 1024,
		"DCGM_FI_PROF_PCIE_RX_BYTES":                    2000 * 1024,
		"DCGM_FI_DEV_POWER_VIOLATION":                   5000,
		"DCGM_FI_DEV_THERMAL_VIOLATION":                 5000,
		"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": 18,
		"DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": 18,
		"eagle_eye_gpu_nvlink_links_up":                 18,
		"eagle_eye_gpu_reachable":                       1,
		"eagle_eye_gpu_info":                            1,
	} {
		if len(v[name]) != nGPU {
			t.Errorf("%s: %d GPUs, want %d", name, len(v[name]), nGPU)
			continue
		}
		if got := v[name]["3"]; got != want {
			t.Errorf("%s{gpu=3} = %v, want %v", name, got, want)
		}
	}
	if v["DCGM_FI_DEV_ROW_REMAP_PENDING"]["2"] != 1 || v["eagle_eye_gpu_nvlink_links_up"]["4"] != 17 {
		t.Errorf("pending remap / link down not seen: %v %v", v["DCGM_FI_DEV_ROW_REMAP_PENDING"], v["eagle_eye_gpu_nvlink_links_up"])
	}
	// dcgm-exporter's label set on every GPU series.
	s := a.Series()[0]
	want := map[string]string{"gpu": "0", "UUID": "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd", "device": "nvidia0",
		"modelName": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:18:00.0", "Hostname": "node-1",
		"DCGM_FI_DRIVER_VERSION": "550.54.15"}
	for _, l := range s.Labels {
		if w, ok := want[l.Name]; ok && w != l.Value {
			t.Errorf("label %s = %q, want %q", l.Name, l.Value, w)
		}
		delete(want, l.Name)
	}
	if len(want) != 0 {
		t.Errorf("labels missing from %s: %v", s.Name(), want)
	}
}

func TestGPULost(t *testing.T) {
	m := nvmltest.NewMachine(nGPU)
	m.SetLost(5)
	c := NewWithLibrary(Options{}, m.Lib)
	a := probe.NewAppender(time.Now())
	if err := c.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	v := values(t, a)
	if v["eagle_eye_gpu_reachable"]["5"] != 0 || v["eagle_eye_gpu_reachable"]["4"] != 1 {
		t.Fatalf("reachable = %v", v["eagle_eye_gpu_reachable"])
	}
	if _, ok := v["DCGM_FI_DEV_GPU_TEMP"]["5"]; ok {
		t.Error("a lost GPU must report nothing but reachable 0")
	}
}

func TestLibraryNotFound(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	c := NewWithLibrary(Options{Tracker: xid.NewTracker()}, lib)
	err := c.Collect(context.Background(), probe.NewAppender(time.Now()))
	if !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("Run err = %v, want ErrUnavailable", err)
	}
}

// TestRealLibrary runs against whatever NVML this host has: none on a CI machine (the
// collector must say unavailable, not fail), real GPUs elsewhere.
func TestRealLibrary(t *testing.T) {
	c := New(Options{Hostname: "host"})
	defer c.Close()
	a := probe.NewAppender(time.Now())
	err := c.Collect(context.Background(), a)
	switch {
	case errors.Is(err, probe.ErrUnavailable):
		t.Logf("no NVML here: %v", err)
	case err != nil:
		t.Fatalf("real NVML: %v", err)
	default:
		t.Logf("real NVML: %d series from %d GPUs", a.Len(), len(c.devs))
		for _, s := range a.Series() {
			t.Logf("%s %v = %v", s.Name(), s.Labels, s.Samples[0].V)
		}
	}
}

func TestEventsFeedTracker(t *testing.T) {
	m := nvmltest.NewMachine(nGPU)
	tr := xid.NewTracker()
	c := NewWithLibrary(Options{Tracker: tr}, m.Lib)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	m.Events <- nvml.EventData{Device: m.Devs[3], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	m.Events <- nvml.EventData{Device: m.Devs[3], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	m.Events <- nvml.EventData{Device: m.Devs[1], EventType: nvml.EventTypeDoubleBitEccError}
	deadline := time.Now().Add(5 * time.Second)
	for tr.Count("00000000:48:00.0", 79) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := tr.Count("00000000:48:00.0", 79); n != 2 {
		t.Fatalf("XID 79 on gpu 3 counted %d times, want 2", n)
	}
	a := probe.NewAppender(time.Now())
	_ = tr.Collect(context.Background(), a)
	v := values(t, a)
	if v["eagle_eye_gpu_xid_errors_total"]["3"] != 2 || v["DCGM_FI_DEV_XID_ERRORS"]["3"] != 79 {
		t.Fatalf("tracker series (resolved to gpu labels): %v", v)
	}
	a = probe.NewAppender(time.Now())
	_ = c.Collect(context.Background(), a)
	if got := values(t, a)["eagle_eye_gpu_nvml_events_total"]["1"]; got != 1 {
		t.Errorf("DBE events on gpu 1 = %v, want 1", got)
	}
}
