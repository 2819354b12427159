package xid

import (
	"context"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

func TestNormalizePCI(t *testing.T) {
	for in, want := range map[string]string{
		"PCI:0000:3b:00":   "00000000:3B:00.0",
		"0000:03:00":       "00000000:03:00.0",
		"0000:18:00.0":     "00000000:18:00.0",
		"00000000:3B:00.0": "00000000:3B:00.0",
		"PCI:0018:01:00":   "00000018:01:00.0",
		"3b:00.1":          "00000000:3B:00.1",
		"junk":             "JUNK",
	} {
		if got := NormalizePCI(in); got != want {
			t.Errorf("NormalizePCI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTrackerCountsEveryOccurrenceOnce(t *testing.T) {
	tr := NewTracker()
	now := time.Unix(100, 0)
	// The kernel log sees three XID 79s; NVML events saw only the last two (started late).
	for i := range 3 {
		tr.Record("kmsg", "PCI:0000:3b:00", 79, now.Add(time.Duration(i)*time.Second))
	}
	tr.Record("nvml", "00000000:3B:00.0", 79, now.Add(time.Second))
	tr.Record("nvml", "00000000:3B:00.0", 79, now.Add(2*time.Second))
	tr.Record("kmsg", "0000:3b:00", 13, now.Add(-time.Second)) // older: not the last
	if got := tr.Count("0000:3b:00.0", 79); got != 3 {
		t.Fatalf("count = %d, want 3", got)
	}
	tr.SetUUID("PCI:0000:3b:00", "GPU-abc")
	a := probe.NewAppender(now)
	if err := tr.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range a.Series() {
		k := s.Name()
		for _, l := range s.Labels {
			if l.Name == "xid" {
				k += "/" + l.Value
			}
			if l.Name == "UUID" && l.Value != "GPU-abc" {
				t.Errorf("UUID = %q", l.Value)
			}
		}
		got[k] = s.Samples[0].V
	}
	want := map[string]float64{"eagle_eye_gpu_xid_errors_total/79": 3, "eagle_eye_gpu_xid_errors_total/13": 1, "DCGM_FI_DEV_XID_ERRORS": 79}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestTrackerResolver(t *testing.T) {
	tr := NewTracker()
	tr.SetResolver(func(pci string) []probe.Label {
		if pci == "00000000:3B:00.0" {
			return []probe.Label{probe.L("gpu", "3"), probe.L("UUID", "GPU-3"), probe.L("pci_bus_id", pci)}
		}
		return nil
	})
	tr.Record("kmsg", "PCI:0000:3b:00", 48, time.Now())
	a := probe.NewAppender(time.Now())
	_ = tr.Collect(context.Background(), a)
	ls := a.Series()[0].Labels
	found := false
	for _, l := range ls {
		if l.Name == "gpu" && l.Value == "3" {
			found = true
		}
	}
	if !found {
		t.Fatalf("resolver labels missing: %v", ls)
	}
}
