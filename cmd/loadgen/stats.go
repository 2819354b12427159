package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is what one worker, or a whole run, came to.
type Result struct {
	Status     map[int]int     // answers by HTTP status code; 0 for transport errors
	Samples    int64           // samples in requests answered 2xx
	Failed     int64           // samples in other requests
	Latencies  []time.Duration // of every request, answered or not
	FirstError map[int]string  // the first answer body (or error) per non-2xx status
}

func newResult() *Result {
	return &Result{Status: map[int]int{}, FirstError: map[int]string{}}
}

// Add counts one request.
func (r *Result) Add(status, samples int, took time.Duration, errText string) {
	r.Status[status]++
	r.Latencies = append(r.Latencies, took)
	if status >= 200 && status < 300 {
		r.Samples += int64(samples)
		return
	}
	r.Failed += int64(samples)
	if _, ok := r.FirstError[status]; !ok {
		r.FirstError[status] = errText
	}
}

// Merge adds o into r.
func (r *Result) Merge(o *Result) {
	for k, v := range o.Status {
		r.Status[k] += v
	}
	for k, v := range o.FirstError {
		if _, ok := r.FirstError[k]; !ok {
			r.FirstError[k] = v
		}
	}
	r.Samples += o.Samples
	r.Failed += o.Failed
	r.Latencies = append(r.Latencies, o.Latencies...)
}

// OK and NotOK count requests answered 2xx and the others.
func (r *Result) OK() (ok, notOK int) {
	for k, v := range r.Status {
		if k >= 200 && k < 300 {
			ok += v
		} else {
			notOK += v
		}
	}
	return ok, notOK
}

// Quantile returns the q-quantile (nearest rank) of sorted durations; 0 when there are none.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ProcSample is a process's CPU time and memory at one moment.
type ProcSample struct {
	CPUTicks int64 // utime + stime, in clock ticks
	RSSKiB   int64 // VmRSS
	HWMKiB   int64 // VmHWM: peak RSS
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, err
	}
	ticks, err := ParseStatCPU(string(stat))
	if err != nil {
		return ProcSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, err
	}
	s := ProcSample{CPUTicks: ticks}
	s.RSSKiB, s.HWMKiB = ParseStatusMem(string(status))
	return s, nil
}

// ParseStatCPU returns utime+stime from the contents of /proc/<pid>/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted after its last ')'.
func ParseStatCPU(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat line has %d fields after the command", len(f))
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	s, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return u + s, nil
}

// ParseStatusMem returns VmRSS and VmHWM in KiB from the contents of /proc/<pid>/status.
func ParseStatusMem(status string) (rss, hwm int64) {
	for line := range strings.Lines(status) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		if name == "VmRSS" {
			rss = v
		} else {
			hwm = v
		}
	}
	return rss, hwm
}

// Report is the summary printed at the end of a run.
type Report struct {
	Protocol     Protocol
	URL          string
	Series       int
	Elapsed      time.Duration
	Result       *Result
	Bytes        int64 // compressed bytes sent
	Server       *ServerUsage
	ClockTicks   int64
	StoppedEarly string
	Router       *RouterLatency
}

// ServerUsage is the server's CPU and memory over the run.
type ServerUsage struct {
	PID           int
	Before, After ProcSample
}

// CPUSeconds is the server CPU time spent during the run.
func (u *ServerUsage) CPUSeconds(clockTicks int64) float64 {
	return float64(u.After.CPUTicks-u.Before.CPUTicks) / float64(clockTicks)
}

// CPUPerMillion is server CPU-seconds per million samples accepted; 0 when none were.
func CPUPerMillion(cpuSeconds float64, samples int64) float64 {
	if samples == 0 {
		return 0
	}
	return cpuSeconds / (float64(samples) / 1e6)
}

// Write prints the report.
func (rep *Report) Write(w io.Writer) {
	r := rep.Result
	ok, notOK := r.OK()
	lat := slices.Clone(r.Latencies)
	slices.Sort(lat)
	secs := rep.Elapsed.Seconds()
	fmt.Fprintf(w, "protocol:            %s\n", rep.Protocol)
	fmt.Fprintf(w, "url:                 %s\n", rep.URL)
	fmt.Fprintf(w, "series:              %d\n", rep.Series)
	fmt.Fprintf(w, "elapsed:             %.2fs\n", secs)
	fmt.Fprintf(w, "requests ok:         %d\n", ok)
	fmt.Fprintf(w, "requests failed:     %d\n", notOK)
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "error"
		}
		fmt.Fprintf(w, "  status %-5s      %d\n", name, r.Status[c])
		if msg, bad := r.FirstError[c]; bad {
			fmt.Fprintf(w, "    first answer:    %s\n", oneLine(msg, 300))
		}
	}
	fmt.Fprintf(w, "samples sent ok:     %d\n", r.Samples)
	fmt.Fprintf(w, "samples failed:      %d\n", r.Failed)
	if secs > 0 {
		fmt.Fprintf(w, "samples/s:           %.0f\n", float64(r.Samples)/secs)
		fmt.Fprintf(w, "compressed MiB/s:    %.1f\n", float64(rep.Bytes)/secs/(1<<20))
	}
	fmt.Fprintf(w, "latency p50:         %s\n", Quantile(lat, 0.50).Round(10*time.Microsecond))
	fmt.Fprintf(w, "latency p99:         %s\n", Quantile(lat, 0.99).Round(10*time.Microsecond))
	if rep.StoppedEarly != "" {
		fmt.Fprintf(w, "stopped early:       %s\n", rep.StoppedEarly)
	}
	if rep.Router != nil {
		rep.Router.Write(w)
	}
	if u := rep.Server; u != nil {
		cpu := u.CPUSeconds(rep.ClockTicks)
		fmt.Fprintf(w, "server pid:          %d\n", u.PID)
		fmt.Fprintf(w, "server cpu-seconds:  %.2f\n", cpu)
		fmt.Fprintf(w, "server cpu-s per 1M samples: %.3f\n", CPUPerMillion(cpu, r.Samples))
		fmt.Fprintf(w, "server rss after:    %.1f MiB\n", float64(u.After.RSSKiB)/1024)
		fmt.Fprintf(w, "server rss peak:     %.1f MiB\n", float64(u.After.HWMKiB)/1024)
		if rep.Series > 0 {
			fmt.Fprintf(w, "server rss per series: %.0f bytes\n", float64(u.After.RSSKiB)*1024/float64(rep.Series))
		}
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
