// Package node reads the node's context from procfs: load averages (<procfs>/loadavg), memory
// (<procfs>/meminfo) and the byte, error and drop counters of every network interface the
// kernel lists in <procfs>/net/dev, which include bonds, VLANs and interfaces without a
// sysfs device link that the netdev collector leaves out, and which remain when sysfs is not
// mounted.
//
// Names are eagle_eye_node_*, so they never collide with node_exporter's series for the same
// node. <procfs>/net/dev is the reading process's network namespace: a containerised probe
// needs the host's network (hostNetwork in Kubernetes) to see the node's interfaces.
package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// DefaultExclude matches interfaces left out of the network counters: loopback and the
// per-pod, bridge and overlay interfaces container runtimes and CNIs create.
const DefaultExclude = `^(lo|veth.*|cali.*|cilium.*|lxc.*|docker\d*|br-.*|virbr.*|cni\d*|flannel.*|vxlan.*|tunl\d*|kube-.*|nodelocaldns|genev_sys_.*)$`

// Options configures the collector.
type Options struct {
	Procfs  string         // procfs mount point; /proc when empty
	Exclude *regexp.Regexp // interfaces to leave out; DefaultExclude when nil
}

// Collector reads procfs on each Collect.
type Collector struct {
	o Options
}

// New returns a collector; it reads nothing until Collect.
func New(o Options) *Collector {
	if o.Procfs == "" {
		o.Procfs = "/proc"
	}
	if o.Exclude == nil {
		o.Exclude = regexp.MustCompile(DefaultExclude)
	}
	return &Collector{o: o}
}

// Collect appends load, memory and interface counters. It reports ErrUnavailable when none
// of the three files can be read.
func (c *Collector) Collect(_ context.Context, a *probe.Appender) error {
	var missing []string
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(c.o.Procfs, name))
		if err != nil {
			missing = append(missing, name)
			return nil
		}
		return b
	}
	if b := read("loadavg"); b != nil {
		if err := loadavg(a, b); err != nil {
			return err
		}
	}
	if b := read("meminfo"); b != nil {
		meminfo(a, b)
	}
	if b := read(filepath.Join("net", "dev")); b != nil {
		c.netdev(a, b)
	}
	if len(missing) == 3 {
		return fmt.Errorf("%s: no loadavg, meminfo nor net/dev: %w", c.o.Procfs, probe.ErrUnavailable)
	}
	return nil
}

// loadavg reads "3.52 2.91 2.47 5/1843 2718391".
func loadavg(a *probe.Appender, b []byte) error {
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return fmt.Errorf("loadavg: %q: want at least 4 fields", strings.TrimSpace(string(b)))
	}
	for i, name := range []string{"eagle_eye_node_load1", "eagle_eye_node_load5", "eagle_eye_node_load15"} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return fmt.Errorf("loadavg: %q: %w", f[i], err)
		}
		a.Gauge(name, v, nil)
	}
	if run, _, ok := strings.Cut(f[3], "/"); ok {
		if v, err := strconv.ParseFloat(run, 64); err == nil {
			a.Gauge("eagle_eye_node_procs_running", v, nil)
		}
	}
	return nil
}

// memFields maps meminfo keys to series; values in kB become bytes, HugePages_* are pages.
var memFields = []struct {
	key, name string
	kB        bool
}{
	{"MemTotal", "eagle_eye_node_memory_total_bytes", true},
	{"MemAvailable", "eagle_eye_node_memory_available_bytes", true},
	{"HugePages_Total", "eagle_eye_node_memory_hugepages_total", false},
	{"HugePages_Free", "eagle_eye_node_memory_hugepages_free", false},
}

func meminfo(a *probe.Appender, b []byte) {
	vals := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		vals[k] = n
	}
	for _, m := range memFields {
		v, ok := vals[m.key]
		if !ok {
			continue
		}
		if m.kB {
			v *= 1024
		}
		a.Gauge(m.name, v, nil)
	}
}

// netFields are the /proc/net/dev columns reported: receive 0–7, transmit 8–15.
var netFields = []struct {
	col  int
	name string
}{
	{0, "eagle_eye_node_network_receive_bytes_total"},
	{2, "eagle_eye_node_network_receive_errs_total"},
	{3, "eagle_eye_node_network_receive_drop_total"},
	{8, "eagle_eye_node_network_transmit_bytes_total"},
	{10, "eagle_eye_node_network_transmit_errs_total"},
	{11, "eagle_eye_node_network_transmit_drop_total"},
}

func (c *Collector) netdev(a *probe.Appender, b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		dev, rest, ok := strings.Cut(sc.Text(), ":")
		dev = strings.TrimSpace(dev)
		if !ok || strings.Contains(dev, "|") || c.o.Exclude.MatchString(dev) {
			continue // a header line or an excluded interface
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		ls := []probe.Label{probe.L("device", dev)}
		for _, nf := range netFields {
			if v, err := strconv.ParseUint(f[nf.col], 10, 64); err == nil {
				a.Counter(nf.name, float64(v), ls)
			}
		}
	}
}
