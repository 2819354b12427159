// Package ascend reads Huawei Ascend NPUs through `npu-smi info` and appends them under
// MindCluster npu-exporter's names (npu_chip_info_*), with its labels id, model_name and
// pcie_bus_info, so npu-exporter dashboards and the probe's rules work on either source.
//
// From the table `npu-smi info` prints it takes, per chip: health (OK → 1, anything else →
// 0, as npu-exporter maps a non-zero DCMI health), power (W), temperature (°C), AICore
// utilisation (%), DDR and HBM used/total (MB) and HBM utilisation (%). A node without
// npu-smi gets ErrUnavailable: the collector says so once and stays off. The command is
// injectable (Options.Run) so tests run on fixture text.
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

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Options configures the collector.
type Options struct {
	// Command is npu-smi's name or path; "npu-smi" when empty.
	Command string
	// Run runs `npu-smi info` and returns its output; exec of Command when nil.
	Run func(ctx context.Context) ([]byte, error)
}

// Collector runs npu-smi on each Collect.
type Collector struct {
	run func(ctx context.Context) ([]byte, error)
	cmd string
}

// New returns a collector; it runs nothing until Collect.
func New(o Options) *Collector {
	if o.Command == "" {
		o.Command = "npu-smi"
	}
	c := &Collector{run: o.Run, cmd: o.Command}
	if c.run == nil {
		c.run = c.exec
	}
	return c
}

func (c *Collector) exec(ctx context.Context) ([]byte, error) {
	path, err := exec.LookPath(c.cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", c.cmd, err, probe.ErrUnavailable)
	}
	out, err := exec.CommandContext(ctx, path, "info").Output()
	if err != nil {
		return nil, fmt.Errorf("%s info: %w", path, err)
	}
	return out, nil
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

// Collect runs npu-smi info and appends every chip's series.
func (c *Collector) Collect(ctx context.Context, a *probe.Appender) error {
	out, err := c.run(ctx)
	if err != nil {
		return err
	}
	chips, err := Parse(out)
	if err != nil {
		return err
	}
	for _, ch := range chips {
		id := strconv.Itoa(ch.NPU)
		if ch.Chip != 0 {
			id += "-" + strconv.Itoa(ch.Chip)
		}
		ls := []probe.Label{probe.L("id", id), probe.L("model_name", "Ascend"+ch.Name), probe.L("pcie_bus_info", ch.BusID)}
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
	return nil
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
