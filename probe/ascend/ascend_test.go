package ascend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// node is a fake Ascend node: npu-smi and hccn_tool answer from the fixtures. Chip 2 has
// HBM errors, error codes and its network down; hccn_tool on device 3 hangs until release is
// closed, ignoring its context, as a wedged driver does.
type node struct {
	t       *testing.T
	mu      sync.Mutex
	calls   map[string]int
	release chan struct{}
	noHCCN  bool // hccn_tool not installed
	hangNPU bool // npu-smi info hangs too
}

func newNode(t *testing.T) *node {
	n := &node{t: t, calls: map[string]int{}, release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-n.release:
		default:
			close(n.release)
		}
	})
	return n
}

func (n *node) count(cmd string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[cmd]
}

func (n *node) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := name + " " + strings.Join(args, " ")
	n.mu.Lock()
	n.calls[cmd]++
	n.mu.Unlock()
	switch {
	case cmd == "npu-smi info":
		if n.hangNPU {
			<-n.release
			return nil, errors.New("killed")
		}
		return fixture(n.t, "npu-smi-info.txt"), nil
	case cmd == "npu-smi info -m":
		return fixture(n.t, "npu-smi-info-m.txt"), nil
	case cmd == "npu-smi info -t ecc -i 2 -c 0":
		return fixture(n.t, "npu-smi-ecc-errors.txt"), nil
	case strings.HasPrefix(cmd, "npu-smi info -t ecc"):
		return fixture(n.t, "npu-smi-ecc.txt"), nil
	case cmd == "npu-smi info -t health -i 2 -c 0":
		return fixture(n.t, "npu-smi-health-error.txt"), nil
	case strings.HasPrefix(cmd, "npu-smi info -t health"):
		return fixture(n.t, "npu-smi-health-ok.txt"), nil
	case name == "hccn_tool":
		if n.noHCCN {
			return nil, fmt.Errorf("hccn_tool: not found: %w", probe.ErrUnavailable)
		}
		switch args[1] {
		case "3":
			<-n.release
			return nil, errors.New("killed")
		case "2":
			if args[2] == "-net_health" {
				return fixture(n.t, "hccn/net-health-fault.txt"), nil
			}
			return fixture(n.t, "hccn/link-down.txt"), nil
		}
		if args[2] == "-net_health" {
			return fixture(n.t, "hccn/net-health-success.txt"), nil
		}
		return fixture(n.t, "hccn/link-up.txt"), nil
	}
	return nil, fmt.Errorf("unexpected command %q", cmd)
}

// values indexes a collection by name, id and code.
func values(t *testing.T, c *Collector) (map[string]float64, error) {
	t.Helper()
	a := probe.NewAppender(time.Now())
	err := c.Collect(context.Background(), a)
	got := map[string]float64{}
	for _, s := range a.Series() {
		var id, code, command string
		for _, l := range s.Labels {
			switch l.Name {
			case "id":
				id = "/" + l.Value
			case "code":
				code = "/" + l.Value
			case "command":
				command = "/" + l.Value
			case "model_name":
				if l.Value != "Ascend910B3" {
					t.Errorf("model_name %q", l.Value)
				}
			}
		}
		k := s.Name() + id + code + command
		if _, dup := got[k]; dup {
			t.Errorf("series %s appended twice", k)
		}
		got[k] = s.Samples[0].V
	}
	return got, err
}

func check(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
}

func TestParseFixture(t *testing.T) {
	n := newNode(t)
	c := New(Options{Run: n.run, Timeout: 200 * time.Millisecond})
	start := time.Now()
	got, err := values(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Collect took %v with a hung hccn_tool: it must not wait past the command timeout", took)
	}
	check(t, got, map[string]float64{
		"npu_chip_info_health_status/0":    1,
		"npu_chip_info_health_status/2":    0, // Critical
		"npu_chip_info_health_status/3":    0, // Warning
		"npu_chip_info_power/1":            181.6,
		"npu_chip_info_temperature/3":      61,
		"npu_chip_info_utilization/1":      87,
		"npu_chip_info_hbm_used_memory/1":  52410, // "52410/ 65536"
		"npu_chip_info_hbm_total_memory/3": 65536,

		"npu_chip_info_network_status/0": 1,
		"npu_chip_info_link_status/1":    1,
		"npu_chip_info_network_status/2": 0,  // Fault
		"npu_chip_info_link_status/2":    0,  // DOWN
		"npu_chip_info_network_status/3": -1, // hccn_tool hung past its timeout
		"npu_chip_info_link_status/3":    -1,

		"npu_chip_info_hbm_ecc_single_bit_error_cnt/0":          0,
		"npu_chip_info_hbm_ecc_total_single_bit_error_cnt/0":    3,
		"npu_chip_info_hbm_ecc_single_bit_error_cnt/2":          17,
		"npu_chip_info_hbm_ecc_double_bit_error_cnt/2":          2,
		"npu_chip_info_hbm_ecc_total_single_bit_error_cnt/2":    1093,
		"npu_chip_info_hbm_ecc_total_double_bit_error_cnt/2":    5,
		"npu_chip_info_hbm_ecc_single_bit_isolated_pages_cnt/2": 12,
		"npu_chip_info_hbm_ecc_double_bit_isolated_pages_cnt/2": 2,
		"npu_chip_info_hbm_ecc_enable_flag/2":                   1,
		"eagle_eye_npu_dram_ecc_single_bit_error_cnt/2":         4,
		"eagle_eye_npu_dram_ecc_double_bit_error_cnt/0":         0,

		"npu_chip_info_error_code/2":               0x80E01801, // the first code
		"npu_chip_info_error_code_1/2":             0x80E18005,
		"eagle_eye_npu_error_code_info/2/80E01801": 1,
		"eagle_eye_npu_error_code_info/2/80E18005": 1,

		"eagle_eye_probe_ascend_command_failures_total/net_health": 1,
		"eagle_eye_probe_ascend_command_failures_total/link":       1,
	})
	for _, absent := range []string{
		"npu_chip_info_used_memory/0",                   // DDR total 0
		"npu_chip_info_health_status/4",                 // the process table
		"npu_chip_info_error_code/0",                    // Error Code: NA
		"eagle_eye_npu_dram_ecc_double_bit_error_cnt/2", // NA
		"npu_chip_info_hbm_ecc_enable_flag/0",           // no enable line
	} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s reported", absent)
		}
	}
	if n.count("npu-smi info -m") != 1 {
		t.Errorf("npu-smi info -m ran %d times", n.count("npu-smi info -m"))
	}

	// Next collection: the hung commands are still running and are not started again.
	got, err = values(t, c)
	if err != nil {
		t.Fatal(err)
	}
	check(t, got, map[string]float64{
		"npu_chip_info_network_status/3":                           -1,
		"npu_chip_info_network_status/0":                           1,
		"eagle_eye_probe_ascend_command_failures_total/net_health": 2,
	})
	if k := "hccn_tool -i 3 -net_health -g"; n.count(k) != 1 {
		t.Errorf("%s started %d times while the first run hangs", k, n.count(k))
	}
	if n.count("npu-smi info -m") != 1 {
		t.Error("the logic-id mapping was read again within its lifetime")
	}

	// The driver recovers: the commands end, the next collection runs them again.
	close(n.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		busy := len(c.busy)
		c.mu.Unlock()
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hung commands never cleared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := values(t, c); err != nil {
		t.Fatal(err)
	}
	if k := "hccn_tool -i 3 -net_health -g"; n.count(k) != 2 {
		t.Errorf("%s ran %d times, want 2", k, n.count(k))
	}
}

func TestNoHCCNTool(t *testing.T) {
	n := newNode(t)
	n.noHCCN = true
	c := New(Options{Run: n.run})
	for range 2 {
		got, err := values(t, c)
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if strings.HasPrefix(k, "npu_chip_info_network_status") || strings.HasPrefix(k, "npu_chip_info_link_status") {
				t.Errorf("%s reported without hccn_tool", k)
			}
		}
		check(t, got, map[string]float64{"npu_chip_info_hbm_ecc_double_bit_error_cnt/2": 2})
	}
	if k := "hccn_tool -i 0 -net_health -g"; n.count(k) != 1 {
		t.Errorf("an absent hccn_tool was tried %d times", n.count(k))
	}
	if n.count("npu-smi info -m") > 1 {
		t.Error("logic ids read again once hccn_tool is known to be absent")
	}
}

func TestNpuSmiHangs(t *testing.T) {
	n := newNode(t)
	c := New(Options{Run: n.run, Timeout: 100 * time.Millisecond, HCCNTool: "-"})
	if _, err := values(t, c); err != nil {
		t.Fatal(err)
	}
	n.hangNPU = true
	start := time.Now()
	got, err := values(t, c)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Collect took %v", took)
	}
	// The chips seen before are unknown now.
	check(t, got, map[string]float64{
		"npu_chip_info_health_status/0":                      -1,
		"npu_chip_info_health_status/3":                      -1,
		"eagle_eye_probe_ascend_command_failures_total/info": 1,
	})
	if _, ok := got["npu_chip_info_network_status/0"]; ok {
		t.Error("network status reported with hccn_tool off")
	}
}

func TestParseDetails(t *testing.T) {
	if m := ParseMapping(fixture(t, "npu-smi-info-m.txt")); len(m) != 4 || m[chipKey{3, 0}] != 3 {
		t.Errorf("mapping %v", m)
	}
	for _, tc := range []struct {
		out, good string
		want      float64
		ok        bool
	}{
		{"net health status: Success\n", "success", 1, true},
		{"net health status: Init\n", "success", 0, true},
		{"link status: up\n", "up", 1, true},
		{"link status: DOWN\n", "up", 0, true},
		{"Error: the device is busy\n", "up", 0, false},
		{"", "up", 0, false},
	} {
		v, ok := ParseStatus([]byte(tc.out), tc.good)
		if v != tc.want || ok != tc.ok {
			t.Errorf("ParseStatus(%q) = %v %v", tc.out, v, ok)
		}
	}
	st, codes := ParseHealth([]byte("Health Status : Warning\nError Code : 0x80e01801,81078603; 80E01801\n"))
	if st != "Warning" || strings.Join(codes, " ") != "80E01801 81078603" {
		t.Errorf("ParseHealth: %q %q", st, codes)
	}
	if _, codes := ParseHealth(fixture(t, "npu-smi-health-ok.txt")); len(codes) != 0 {
		t.Errorf("NA read as codes %q", codes)
	}
	ecc := ParseECC([]byte("HBM ECC Enable : 0\nhbm double bit error count:7\nsomething else : 3\n"))
	if len(ecc) != 2 || ecc["npu_chip_info_hbm_ecc_enable_flag"] != 0 || ecc["npu_chip_info_hbm_ecc_double_bit_error_cnt"] != 7 {
		t.Errorf("ParseECC: %v", ecc)
	}
}

// TestLogicFallback: without npu-smi info -m, chips get their position in the table.
func TestLogicFallback(t *testing.T) {
	n := newNode(t)
	close(n.release)
	c := New(Options{Run: func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name == "npu-smi" && len(args) == 2 && args[1] == "-m" {
			return []byte("Usage: npu-smi info [-t type] ...\n"), nil
		}
		return n.run(ctx, name, args...)
	}})
	got, err := values(t, c)
	if err != nil {
		t.Fatal(err)
	}
	check(t, got, map[string]float64{"npu_chip_info_link_status/2": 0, "npu_chip_info_link_status/1": 1,
		"eagle_eye_probe_ascend_command_failures_total/map": 1})
}

func TestNoNpuSmi(t *testing.T) {
	c := New(Options{Command: "npu-smi-absent-here"})
	err := c.Collect(context.Background(), probe.NewAppender(time.Now()))
	if !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestExecTimeout runs a real process that outlives the timeout.
func TestExecTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Exec(ctx, "sleep", "10")
	if _, lookErr := os.Stat("/bin/sleep"); lookErr != nil && errors.Is(err, probe.ErrUnavailable) {
		t.Skip("no sleep command")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Exec took %v", took)
	}
}

func TestParseGarbage(t *testing.T) {
	if _, err := Parse([]byte("command not found\n")); err == nil {
		t.Error("no rows accepted")
	}
}
