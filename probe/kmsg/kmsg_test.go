package kmsg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/xid"
)

// runOn reads path until cond holds (or 5 s pass), then stops the reader.
func runOn(t *testing.T, path string, tr *xid.Tracker, cond func() bool, during func()) *Reader {
	t.Helper()
	r, err := New(Options{Path: path, Tracker: tr, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	if during != nil {
		during()
	}
	for end := time.Now().Add(5 * time.Second); !cond() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKernLogFixture(t *testing.T) {
	tr := xid.NewTracker()
	r := runOn(t, "testdata/kern.log", tr, func() bool { return tr.Count("0000:9b:00", 48) == 1 }, nil)
	for _, tc := range []struct {
		pci  string
		xid  int
		want uint64
	}{
		{"00000000:9B:00.0", 119, 1},
		{"00000000:9B:00.0", 48, 1},
		{"00000000:3B:00.0", 79, 2}, // every occurrence
		{"00000000:03:00.0", 14, 1}, // no "PCI:" prefix
		{"00000018:01:00.0", 149, 1},
	} {
		if got := tr.Count(tc.pci, tc.xid); got != tc.want {
			t.Errorf("XID %d on %s counted %d, want %d", tc.xid, tc.pci, got, tc.want)
		}
	}
	a := probe.NewAppender(time.Now())
	if err := r.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range a.Series() {
		got[s.Name()] = s.Samples[0].V
	}
	if got["eagle_eye_gpu_fallen_off_bus_total"] != 1 || got["eagle_eye_probe_kmsg_lines_total"] != 12 || got["eagle_eye_probe_kmsg_xid_lines_total"] != 6 {
		t.Errorf("reader series: %v", got)
	}
	// The UUID learnt from "GPU at" labels XIDs when NVML is absent.
	a = probe.NewAppender(time.Now())
	_ = tr.Collect(context.Background(), a)
	found := false
	for _, s := range a.Series() {
		for _, l := range s.Labels {
			if l.Name == "UUID" && l.Value == "GPU-5d2ea4ff-2c44-9a14-d54b-2f1e0e8b1a11" {
				found = true
			}
		}
	}
	if !found {
		t.Error("UUID from the kernel log not attached")
	}
}

func TestDevKmsgRecords(t *testing.T) {
	tr := xid.NewTracker()
	r := runOn(t, "testdata/devkmsg.txt", tr, func() bool { return tr.Count("0000:9b:00", 79) == 2 }, nil)
	if got := tr.Count("0000:9b:00", 79); got != 2 {
		t.Fatalf("XID 79 counted %d, want 2", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lines != 4 { // continuation lines are not records
		t.Errorf("lines = %d, want 4", r.lines)
	}
}

func TestFollowsAppendsAndTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	line := "kernel: NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := xid.NewTracker()
	runOn(t, path, tr, func() bool { return tr.Count("0000:3b:00", 79) == 3 }, func() {
		for end := time.Now().Add(5 * time.Second); tr.Count("0000:3b:00", 79) < 1 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		_, _ = f.WriteString(line[:30]) // a line written in two parts
		time.Sleep(30 * time.Millisecond)
		_, _ = f.WriteString(line[30:])
		f.Close()
		for end := time.Now().Add(5 * time.Second); tr.Count("0000:3b:00", 79) < 2 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		_ = os.WriteFile(path, []byte(line), 0o644) // rotated: shorter than what was read
	})
	if got := tr.Count("0000:3b:00", 79); got != 3 {
		t.Fatalf("counted %d, want 3 (1 + appended 1 + 1 after truncation)", got)
	}
}

func TestMissingLogIsUnavailable(t *testing.T) {
	r, _ := New(Options{Path: filepath.Join(t.TempDir(), "absent"), Tracker: xid.NewTracker()})
	if err := r.Run(context.Background()); !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Collect(context.Background(), probe.NewAppender(time.Now())); !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("Collect: %v", err)
	}
}
