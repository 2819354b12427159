package ascend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// maxErrorCodes is how many codes npu-exporter exports per chip (npu_chip_info_error_code and
// npu_chip_info_error_code_1 … _9).
const maxErrorCodes = 10

// job is one per-chip command.
type job struct {
	chip int    // index into the chips
	kind string // ecc, health, net_health, link
	out  []byte
	err  error
}

// details runs the per-chip commands, at most Options.Parallel at once, and appends what
// they report. It returns when every command has returned or timed out.
func (c *Collector) details(ctx context.Context, a *probe.Appender, chips []Chip) {
	logic := c.logicIDs(ctx, chips)
	var jobs []*job
	for i := range chips {
		jobs = append(jobs, &job{chip: i, kind: "ecc"}, &job{chip: i, kind: "health"})
		if !c.noHCCN {
			jobs = append(jobs, &job{chip: i, kind: "net_health"}, &job{chip: i, kind: "link"})
		}
	}
	sem := make(chan struct{}, c.o.Parallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				j.err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			ch := chips[j.chip]
			npu, chip := strconv.Itoa(ch.NPU), strconv.Itoa(ch.Chip)
			dev := strconv.Itoa(logic[chipKey{ch.NPU, ch.Chip}])
			switch j.kind {
			case "ecc", "health":
				j.out, j.err = c.call(ctx, j.kind+"/"+npu+"/"+chip, c.o.Command, "info", "-t", j.kind, "-i", npu, "-c", chip)
			case "net_health", "link":
				j.out, j.err = c.call(ctx, j.kind+"/"+dev, c.o.HCCNTool, "-i", dev, "-"+j.kind, "-g")
			}
		})
	}
	wg.Wait()

	for _, j := range jobs {
		if (j.kind == "net_health" || j.kind == "link") && errors.Is(j.err, probe.ErrUnavailable) {
			c.noHCCN = true // not installed: no network or link status from now on
		}
	}
	for _, j := range jobs {
		ls := chips[j.chip].labels()
		if j.err != nil {
			if errors.Is(j.err, probe.ErrUnavailable) {
				continue
			}
			c.failures[j.kind]++
		}
		switch j.kind {
		case "net_health", "link":
			if c.noHCCN {
				continue
			}
			good := "success"
			name := "npu_chip_info_network_status"
			if j.kind == "link" {
				good, name = "up", "npu_chip_info_link_status"
			}
			v := -1.0
			if j.err == nil {
				if s, ok := ParseStatus(j.out, good); ok {
					v = s
				}
			}
			a.Gauge(name, v, ls)
		case "ecc":
			if j.err != nil {
				continue // as npu-exporter: a failed read is not reported
			}
			ecc := ParseECC(j.out)
			names := make([]string, 0, len(ecc))
			for n := range ecc {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				a.Gauge(n, ecc[n], ls)
			}
		case "health":
			if j.err != nil {
				continue
			}
			_, codes := ParseHealth(j.out)
			for i, code := range codes {
				if i >= maxErrorCodes {
					break
				}
				v, _ := strconv.ParseUint(code, 16, 64)
				name := "npu_chip_info_error_code"
				if i > 0 {
					name += "_" + strconv.Itoa(i)
				}
				a.Gauge(name, float64(v), ls)
			}
			for _, code := range codes {
				a.Gauge("eagle_eye_npu_error_code_info", 1, ls, probe.L("code", code))
			}
		}
	}
}

// logicIDs maps every chip to the logic (device) id hccn_tool takes, from `npu-smi info -m`,
// read again every logicTTL (every minute while a chip is missing from it). A chip it does not
// list gets its position in the table, which is how logic ids are numbered.
func (c *Collector) logicIDs(ctx context.Context, chips []Chip) map[chipKey]int {
	missing := func() bool {
		for _, ch := range chips {
			if _, ok := c.logic[chipKey{ch.NPU, ch.Chip}]; !ok {
				return true
			}
		}
		return false
	}
	if !c.noHCCN {
		age := time.Since(c.logicAt)
		if c.logicAt.IsZero() || age >= logicTTL || age >= time.Minute && missing() {
			c.logicAt = time.Now()
			out, err := c.call(ctx, "map", c.o.Command, "info", "-m")
			if m := ParseMapping(out); err == nil && len(m) > 0 {
				c.logic = m
			} else if !errors.Is(err, probe.ErrUnavailable) {
				c.failures["map"]++
			}
		}
	}
	ids := make(map[chipKey]int, len(chips))
	for i, ch := range chips {
		k := chipKey{ch.NPU, ch.Chip}
		if id, ok := c.logic[k]; ok {
			ids[k] = id
		} else {
			ids[k] = i
		}
	}
	return ids
}

// ParseMapping reads `npu-smi info -m`: rows "NPU-ID Chip-ID Logic-ID Name…"; chips without a
// logic id ("-", the MCU) are left out.
func ParseMapping(out []byte) map[chipKey]int {
	m := map[chipKey]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		npu, err1 := strconv.Atoi(f[0])
		chip, err2 := strconv.Atoi(f[1])
		logic, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		m[chipKey{npu, chip}] = logic
	}
	return m
}

// ParseStatus reads hccn_tool's "net health status: Success" or "link status: UP": 1 when
// the status is good (case-insensitive), 0 for any other status; false when no status line.
func ParseStatus(out []byte, good string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.Contains(strings.ToLower(k), "status") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return 0, false
		}
		if strings.EqualFold(v, good) {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// eccSuffix maps a normalised `npu-smi info -t ecc` key (memory prefix removed) to the series
// name's suffix.
var eccSuffix = map[string]string{
	"singlebiterrcnt":               "single_bit_error_cnt",
	"doublebiterrcnt":               "double_bit_error_cnt",
	"singlebitaggregatetotalerrcnt": "total_single_bit_error_cnt",
	"doublebitaggregatetotalerrcnt": "total_double_bit_error_cnt",
	"singlebittotalerrcnt":          "total_single_bit_error_cnt",
	"doublebittotalerrcnt":          "total_double_bit_error_cnt",
	"singlebitisolatedpagecnt":      "single_bit_isolated_pages_cnt",
	"doublebitisolatedpagecnt":      "double_bit_isolated_pages_cnt",
}

// ParseECC reads the `key : value` lines of `npu-smi info -t ecc -i N -c C` into series:
// HBM keys under npu-exporter's names (npu_chip_info_hbm_ecc_single_bit_error_cnt, …),
// DRAM/DDR keys under eagle_eye_npu_dram_ecc_*, an ECC enable line (1/0, Enable/Disable)
// as npu_chip_info_hbm_ecc_enable_flag. Keys are matched ignoring case, spaces and
// punctuation ("Count"/"Cnt", "Error"/"Err" alike); unknown keys and values that are not
// numbers (NA) are left out.
func ParseECC(out []byte) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = normKey(k), strings.TrimSpace(v)
		prefix := ""
		switch {
		case strings.HasPrefix(k, "hbm"):
			k, prefix = strings.TrimPrefix(k, "hbm"), "npu_chip_info_hbm_ecc_"
		case strings.HasPrefix(k, "dram"):
			k, prefix = strings.TrimPrefix(k, "dram"), "eagle_eye_npu_dram_ecc_"
		case strings.HasPrefix(k, "ddr"):
			k, prefix = strings.TrimPrefix(k, "ddr"), "eagle_eye_npu_dram_ecc_"
		}
		if strings.Contains(k, "enable") {
			if prefix == "" || prefix == "npu_chip_info_hbm_ecc_" {
				if f, ok := flag(v); ok {
					m["npu_chip_info_hbm_ecc_enable_flag"] = f
				}
			}
			continue
		}
		suffix, known := eccSuffix[k]
		if prefix == "" || !known {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		m[prefix+suffix] = n
	}
	return m
}

// normKey lowercases k and keeps letters and digits, with Count → cnt, Error → err, Pages →
// page.
func normKey(k string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(k) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	for _, r := range [][2]string{{"count", "cnt"}, {"errors", "err"}, {"error", "err"}, {"pages", "page"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// flag reads an enable value.
func flag(v string) (float64, bool) {
	switch strings.ToLower(v) {
	case "1", "enable", "enabled", "on", "true", "yes":
		return 1, true
	case "0", "disable", "disabled", "off", "false", "no":
		return 0, true
	}
	return 0, false
}

// ParseHealth reads `npu-smi info -t health -i N -c C`: the "Health Status" value and the
// codes of "Error Code" (hex, upper case, without 0x; none for NA or 0). Codes may be separated
// by spaces, commas or semicolons.
func ParseHealth(out []byte) (status string, codes []string) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch normKey(k) {
		case "healthstatus":
			status = strings.TrimSpace(v)
		case "errcode", "errcodes":
			for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == ';' }) {
				f = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(f, "0x"), "0X"))
				if n, err := strconv.ParseUint(f, 16, 32); err == nil && n != 0 && !slices.Contains(codes, f) {
					codes = append(codes, f)
				}
			}
		}
	}
	return status, codes
}
