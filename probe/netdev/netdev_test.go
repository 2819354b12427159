package netdev

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// copyTree copies the fixture sysfs into a temporary directory the test may change.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS("testdata/sys")); err != nil {
		t.Fatal(err)
	}
	return dst
}

func collect(t *testing.T, c *Collector, at time.Time) map[string]float64 {
	t.Helper()
	a := probe.NewAppender(at)
	if err := c.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
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
	return out
}

func write(t *testing.T, root, rel string, v uint64) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, rel), []byte(strconv.FormatUint(v, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFixtureTree(t *testing.T) {
	root := copyTree(t)
	c := New(root)
	t0 := time.Unix(1000, 0)
	v := collect(t, c, t0)
	for k, want := range map[string]float64{
		"node_infiniband_state_id/mlx5_0":                          4,
		"node_infiniband_state_id/mlx5_1":                          1,
		"node_infiniband_rate_bytes_per_second/mlx5_0":             50e9,
		"node_infiniband_port_data_transmitted_bytes_total/mlx5_0": 4e9, // ×4
		"node_infiniband_port_data_received_bytes_total/mlx5_0":    8e9,
		"node_infiniband_port_transmit_wait_total/mlx5_0":          88123,
		"node_infiniband_link_downed_total/mlx5_1":                 3,
		"node_network_transmit_bytes_total/eth0":                   123456789,
		"node_network_speed_bytes/eth0":                            12.5e9,
		"node_network_up/eth0":                                     1,
		"node_network_receive_drop_total/eth0":                     12,
	} {
		if got, ok := v[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	for k := range v {
		if filepath.Base(k) == "veth1a2b" || filepath.Base(k) == "lo" {
			t.Errorf("virtual interface reported: %s", k)
		}
	}
	if _, ok := v["eagle_eye_network_transmit_bytes_per_second/mlx5_0"]; ok {
		t.Error("a rate needs two collections")
	}

	// One second later: 10 GB/s more each way on mlx5_0 (2.5e9 lane-octets ×4), 1 GB/s on eth0.
	write(t, root, "class/infiniband/mlx5_0/ports/1/counters/port_xmit_data", 1_000_000_000+2_500_000_000)
	write(t, root, "class/infiniband/mlx5_0/ports/1/counters/port_rcv_data", 2_000_000_000+1_250_000_000)
	write(t, root, "class/net/eth0/statistics/tx_bytes", 123456789+1_000_000_000)
	write(t, root, "class/net/eth0/statistics/rx_bytes", 987654321)
	v = collect(t, c, t0.Add(time.Second))
	for k, want := range map[string]float64{
		"eagle_eye_network_transmit_bytes_per_second/mlx5_0":            10e9,
		"eagle_eye_network_receive_bytes_per_second/mlx5_0":             5e9,
		"eagle_eye_network_remaining_bandwidth_bytes_per_second/mlx5_0": 40e9,
		"eagle_eye_network_remaining_bandwidth_bytes_per_second/mlx5_1": 0, // down
		"eagle_eye_network_transmit_bytes_per_second/eth0":              1e9,
		"eagle_eye_network_remaining_bandwidth_bytes_per_second/eth0":   11.5e9,
	} {
		if got, ok := v[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}

	// A counter reset skips one rate instead of reporting a negative one.
	write(t, root, "class/infiniband/mlx5_0/ports/1/counters/port_xmit_data", 10)
	v = collect(t, c, t0.Add(2*time.Second))
	if _, ok := v["eagle_eye_network_transmit_bytes_per_second/mlx5_0"]; ok {
		t.Error("rate reported across a counter reset")
	}
}

func TestNoSysfsIsUnavailable(t *testing.T) {
	err := New(t.TempDir()).Collect(context.Background(), probe.NewAppender(time.Now()))
	if !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"400 Gb/sec (4X NDR)": 50e9, "100 Gb/sec (4X EDR)": 12.5e9, "2.5 Gb/sec (1X SDR)": 312.5e6} {
		if got, ok := parseRate(in); !ok || got != want {
			t.Errorf("parseRate(%q) = %v, want %v", in, got, want)
		}
	}
	if _, ok := parseRate("N/A"); ok {
		t.Error("parseRate(N/A) accepted")
	}
}
