// Package ascend reads Huawei Ascend NPUs through npu-smi and hccn_tool and appends them
// under MindCluster npu-exporter's names (npu_chip_info_*), with its labels id, model_name and
// pcie_bus_info, so npu-exporter dashboards and the probe's rules work on either source.
//
// From the table `npu-smi info` prints it takes, per chip: health (OK → 1, anything else →
// 0, as npu-exporter maps a non-zero DCMI health), power (W), temperature (°C), AICore
// utilisation (%), DDR and HBM used/total (MB) and HBM utilisation (%). Then, per chip and
// concurrently: `npu-smi info -t ecc` (HBM ECC counters and isolated pages), `npu-smi info -t
// health` (error codes), `hccn_tool -i <logic id> -net_health -g` and `-link -g` (network
// and link status: 1 healthy/UP, 0 otherwise, -1 when the tool failed or timed out).
//
// Every command runs with its own timeout (Options.Timeout) and Collect never waits on a
// command past it: a driver wedged after a card drops can leave npu-smi or hccn_tool blocked
// in the kernel, so a command still running from an earlier collection is not started again
// (that read reports -1 or is left out) until it ends. A node without npu-smi gets
// ErrUnavailable: the collector says so once and stays off; a node without hccn_tool reports
// no network or link status. Commands go through Options.Run, so tests run on fixture text.
package ascend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Runner runs one command and returns its standard output. It returns an error wrapping
// probe.ErrUnavailable when the command is not installed.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Options configures the collector.
type Options struct {
	// Command is npu-smi's name or path; "npu-smi" when empty.
	Command string
	// HCCNTool is hccn_tool's name or path; "hccn_tool" when empty, "-" to read no network
	// or link status.
	HCCNTool string
	// Timeout bounds each command; 2 s when zero.
	Timeout time.Duration
	// Parallel is how many per-chip commands run at once; 4 when zero.
	Parallel int
	// Run runs a command; exec (after a PATH lookup) when nil.
	Run Runner
}

// Collector runs npu-smi and hccn_tool on each Collect. Collect is called from one goroutine
// at a time.
type Collector struct {
	o Options

	mu   sync.Mutex
	busy map[string]bool // commands still running, by key

	known    []Chip          // chips of the last table read, for -1 when npu-smi fails
	logic    map[chipKey]int // (NPU, chip) → logic (device) id, from `npu-smi info -m`
	logicAt  time.Time
	noHCCN   bool               // hccn_tool is not installed
	failures map[string]float64 // failed or timed-out commands, by kind
}

type chipKey struct{ npu, chip int }

// logicTTL is how long the `npu-smi info -m` mapping is trusted.
const logicTTL = 10 * time.Minute

// errBusy marks a command not started because the same one is still running.
var errBusy = errors.New("previous run still in progress")

// New returns a collector; it runs nothing until Collect.
func New(o Options) *Collector {
	if o.Command == "" {
		o.Command = "npu-smi"
	}
	if o.HCCNTool == "" {
		o.HCCNTool = "hccn_tool"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Run == nil {
		o.Run = Exec
	}
	return &Collector{o: o, busy: map[string]bool{}, failures: map[string]float64{}, noHCCN: o.HCCNTool == "-"}
}

// Exec runs name (looked up in PATH unless a path) with args. A process that does not exit
// when ctx ends is killed; its pipes are closed a second later at the latest.
func Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, err, probe.ErrUnavailable)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return out, fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
	}
	return out, nil
}

// call runs one command under the per-command timeout. It returns when the command ends or
// the timeout passes, whichever is first; a command that outlives its timeout keeps key busy
// until it ends, and calls with that key fail with errBusy meanwhile.
func (c *Collector) call(ctx context.Context, key, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.busy[key] {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), errBusy)
	}
	c.busy[key] = true
	c.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := c.o.Run(cctx, name, args...)
		c.mu.Lock()
		delete(c.busy, key)
		c.mu.Unlock()
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-cctx.Done():
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), cctx.Err())
	}
}

// Chip is one NPU chip as npu-smi reports it.
type Chip struct {
	NPU, Chip           int
	Name, Health, BusID string
	Power, Temp         float64
	AICore              float64
	MemUsed, MemTotal   float64
	HBMUsed, HBMTotal   float64
}

func (ch Chip) labels() []probe.Label {
	id := strconv.Itoa(ch.NPU)
	if ch.Chip != 0 {
		id += "-" + strconv.Itoa(ch.Chip)
	}
	return []probe.Label{probe.L("id", id), probe.L("model_name", "Ascend"+ch.Name), probe.L("pcie_bus_info", ch.BusID)}
}

// Collect runs npu-smi info, then the per-chip commands, and appends every chip's series.
func (c *Collector) Collect(ctx context.Context, a *probe.Appender) error {
	out, err := c.call(ctx, "info", c.o.Command, "info")
	if err != nil {
		if errors.Is(err, probe.ErrUnavailable) {
			return err
		}
		c.failures["info"]++
		c.appendFailures(a)
		// The driver did not answer: the chips seen last are in an unknown state.
		for _, ch := range c.known {
			ls := ch.labels()
			a.Gauge("npu_chip_info_health_status", -1, ls)
			if !c.noHCCN {
				a.Gauge("npu_chip_info_network_status", -1, ls)
				a.Gauge("npu_chip_info_link_status", -1, ls)
			}
		}
		return err
	}
	chips, err := Parse(out)
	if err != nil {
		c.failures["info"]++
		c.appendFailures(a)
		return err
	}
	c.known = chips
	for _, ch := range chips {
		ls := ch.labels()
		health := 0.0
		if ch.Health == "OK" {
			health = 1
		}
		a.Gauge("npu_chip_info_health_status", health, ls)
		a.Gauge("npu_chip_info_power", ch.Power, ls)
		a.Gauge("npu_chip_info_temperature", ch.Temp, ls)
		a.Gauge("npu_chip_info_utilization", ch.AICore, ls)
		if ch.MemTotal > 0 {
			a.Gauge("npu_chip_info_used_memory", ch.MemUsed, ls)
			a.Gauge("npu_chip_info_total_memory", ch.MemTotal, ls)
		}
		if ch.HBMTotal > 0 {
			a.Gauge("npu_chip_info_hbm_used_memory", ch.HBMUsed, ls)
			a.Gauge("npu_chip_info_hbm_total_memory", ch.HBMTotal, ls)
			a.Gauge("npu_chip_info_hbm_utilization", 100*ch.HBMUsed/ch.HBMTotal, ls)
		}
		a.Gauge("npu_chip_info_name", 1, ls, probe.L("name", "Ascend"+ch.Name), probe.L("health", ch.Health))
	}
	c.details(ctx, a, chips)
	c.appendFailures(a)
	return nil
}

// appendFailures appends the count of failed or timed-out commands per kind.
func (c *Collector) appendFailures(a *probe.Appender) {
	for _, k := range []string{"info", "map", "ecc", "health", "net_health", "link"} {
		if v, ok := c.failures[k]; ok {
			a.Counter("eagle_eye_probe_ascend_command_failures_total", v, nil, probe.L("command", k))
		}
	}
}

// Parse reads the chip table of `npu-smi info` (the rows between the header's "+===" line
// and the process table).
func Parse(out []byte) ([]Chip, error) {
	var (
		chips []Chip
		first []string // the first line of a chip's pair
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "+") {
			first = nil
			continue
		}
		cells := cells(line)
		if len(cells) < 3 {
			continue
		}
		if strings.HasPrefix(cells[0], "NPU") && strings.Contains(line, "Process") {
			break // the process table follows
		}
		if first == nil {
			f := strings.Fields(cells[0])
			if len(f) < 2 {
				continue
			}
			if _, err := strconv.Atoi(f[0]); err != nil {
				continue // a header line
			}
			first = cells
			continue
		}
		ch, err := chip(first, cells)
		if err != nil {
			return nil, err
		}
		chips = append(chips, ch)
		first = nil
	}
	if len(chips) == 0 {
		return nil, errors.New("npu-smi info: no chip rows found")
	}
	return chips, nil
}

// cells splits "| a | b | c |" into trimmed cells.
func cells(line string) []string {
	parts := strings.Split(strings.Trim(line, "|"), "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func chip(l1, l2 []string) (Chip, error) {
	var c Chip
	f := strings.Fields(l1[0])
	c.NPU, _ = strconv.Atoi(f[0])
	c.Name = f[1]
	c.Health = l1[1]
	nums := numbers(l1[2])
	if len(nums) < 2 {
		return c, fmt.Errorf("npu-smi info: NPU %d: cannot read power and temperature from %q", c.NPU, l1[2])
	}
	c.Power, c.Temp = nums[0], nums[1]
	c.Chip, _ = strconv.Atoi(strings.TrimSpace(l2[0]))
	c.BusID = l2[1]
	nums = numbers(l2[2])
	if len(nums) < 5 {
		return c, fmt.Errorf("npu-smi info: NPU %d: cannot read AICore and memory from %q", c.NPU, l2[2])
	}
	c.AICore, c.MemUsed, c.MemTotal, c.HBMUsed, c.HBMTotal = nums[0], nums[1], nums[2], nums[3], nums[4]
	return c, nil
}

// numbers returns the numbers in s, "/" separating used from total.
func numbers(s string) []float64 {
	var out []float64
	for _, f := range strings.Fields(strings.ReplaceAll(s, "/", " ")) {
		if v, err := strconv.ParseFloat(f, 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}
