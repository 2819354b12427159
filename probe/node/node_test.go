package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

func collect(t *testing.T, c *Collector) (map[string]float64, error) {
	t.Helper()
	a := probe.NewAppender(time.Now())
	err := c.Collect(context.Background(), a)
	out := map[string]float64{}
	for _, s := range a.Series() {
		k := s.Name()
		for _, l := range s.Labels {
			if l.Name == "device" {
				k += "/" + l.Value
			}
		}
		out[k] = s.Samples[0].V
	}
	return out, err
}

func TestFixture(t *testing.T) {
	got, err := collect(t, New(Options{Procfs: "testdata/proc"}))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"eagle_eye_node_load1":                                  3.52,
		"eagle_eye_node_load5":                                  2.91,
		"eagle_eye_node_load15":                                 2.47,
		"eagle_eye_node_procs_running":                          5,
		"eagle_eye_node_memory_total_bytes":                     2113531188 * 1024,
		"eagle_eye_node_memory_available_bytes":                 1988706504 * 1024,
		"eagle_eye_node_memory_hugepages_total":                 2048,
		"eagle_eye_node_memory_hugepages_free":                  1024,
		"eagle_eye_node_network_receive_bytes_total/eth0":       1928374650123,
		"eagle_eye_node_network_transmit_bytes_total/ens1f0np0": 83746501928374,
		"eagle_eye_node_network_receive_drop_total/eth0":        17,
		"eagle_eye_node_network_transmit_errs_total/ens1f0np0":  1,
		"eagle_eye_node_network_transmit_drop_total/bond0":      2,
		"eagle_eye_node_network_receive_errs_total/bond0":       3,
		"eagle_eye_node_network_transmit_bytes_total/bond0":     872364512901,
		"eagle_eye_node_network_receive_bytes_total/ens1f0np0":  91827364501234,
		"eagle_eye_node_network_transmit_errs_total/eth0":       0,
		"eagle_eye_node_network_receive_drop_total/ens1f0np0":   0,
		"eagle_eye_node_network_receive_errs_total/eth0":        3,
		"eagle_eye_node_network_transmit_drop_total/ens1f0np0":  0,
		"eagle_eye_node_network_receive_bytes_total/bond0":      1928374650123,
		"eagle_eye_node_network_transmit_bytes_total/eth0":      872364512901,
		"eagle_eye_node_network_receive_drop_total/bond0":       17,
		"eagle_eye_node_network_receive_errs_total/ens1f0np0":   0,
		"eagle_eye_node_network_transmit_drop_total/eth0":       2,
		"eagle_eye_node_network_transmit_errs_total/bond0":      0,
	} {
		if g, ok := got[k]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, want)
		}
	}
	for _, dev := range []string{"lo", "vethd3a1c2f", "cali8f1e2d3c4b5", "docker0"} {
		if _, ok := got["eagle_eye_node_network_receive_bytes_total/"+dev]; ok {
			t.Errorf("%s reported", dev)
		}
	}
	if n := len(got); n != 8+3*6 {
		t.Errorf("%d series, want 26", n)
	}
}

func TestExclude(t *testing.T) {
	got, err := collect(t, New(Options{Procfs: "testdata/proc", Exclude: regexp.MustCompile(`^$`)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["eagle_eye_node_network_receive_bytes_total/lo"]; !ok {
		t.Error("lo left out with an empty exclusion")
	}
}

func TestPartialAndAbsent(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loadavg"), []byte("0.00 0.01 0.05 1/90 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, New(Options{Procfs: dir}))
	if err != nil || got["eagle_eye_node_load15"] != 0.05 || len(got) != 4 {
		t.Errorf("loadavg only: %v %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loadavg"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, New(Options{Procfs: dir})); err == nil || errors.Is(err, probe.ErrUnavailable) {
		t.Errorf("bad loadavg: err %v", err)
	}
	if _, err := collect(t, New(Options{Procfs: filepath.Join(dir, "absent")})); !errors.Is(err, probe.ErrUnavailable) {
		t.Errorf("no procfs: err %v, want ErrUnavailable", err)
	}
}
