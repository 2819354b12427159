// Package netdev reads RDMA (InfiniBand / RoCE) port counters and NIC byte counters from
// sysfs and computes transmit/receive rates and the bandwidth left on each link, for the
// routers that place KV-cache transfers and weight loads.
//
// Under <sysfs>/class/infiniband/<dev>/ports/<n>/ it reads state ("4: ACTIVE"), rate
// ("400 Gb/sec (4X NDR)") and counters/*. port_xmit_data and port_rcv_data count octets
// divided by 4 (per lane), so they are multiplied by 4 into bytes, as node_exporter does.
// Under <sysfs>/class/net/<if>/ it reads statistics/{rx,tx}_bytes, operstate and speed (Mb/s),
// for interfaces backed by a device (physical NICs; lo, veth, bridges are left out).
//
// Series use node_exporter's names where it has them (node_infiniband_*, node_network_*), so
// its dashboards work, plus eagle_eye_network_{transmit,receive}_bytes_per_second and
// eagle_eye_network_remaining_bandwidth_bytes_per_second{device[,port]} = link rate minus the
// busier direction (0 when the link is not up). Rates need two collections; a counter that
// goes backwards (reset) skips one rate.
package netdev

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Collector reads one sysfs tree. Collect is called from one goroutine at a time.
type Collector struct {
	sysfs string
	prev  map[string]sample // by device[/port]
}

type sample struct {
	t      time.Time
	tx, rx uint64
}

// New returns a collector over the sysfs mounted at root (/sys on a node).
func New(root string) *Collector {
	return &Collector{sysfs: root, prev: map[string]sample{}}
}

// ibCounters maps counters/ files to series (all counters; data counters are ×4 bytes).
var ibCounters = []struct{ file, name string }{
	{"port_xmit_packets", "node_infiniband_port_packets_transmitted_total"},
	{"port_rcv_packets", "node_infiniband_port_packets_received_total"},
	{"symbol_error", "node_infiniband_symbol_error_total"},
	{"port_rcv_errors", "node_infiniband_port_errors_received_total"},
	{"link_downed", "node_infiniband_link_downed_total"},
	{"link_error_recovery", "node_infiniband_link_error_recovery_total"},
	{"port_xmit_discards", "node_infiniband_port_discards_transmitted_total"},
	{"port_xmit_wait", "node_infiniband_port_transmit_wait_total"},
	{"local_link_integrity_errors", "node_infiniband_local_link_integrity_errors_total"},
	{"excessive_buffer_overrun_errors", "node_infiniband_excessive_buffer_overrun_errors_total"},
}

// Collect appends every InfiniBand port's and physical NIC's series.
func (c *Collector) Collect(_ context.Context, a *probe.Appender) error {
	ibRoot := filepath.Join(c.sysfs, "class", "infiniband")
	netRoot := filepath.Join(c.sysfs, "class", "net")
	ibDevs, err1 := os.ReadDir(ibRoot)
	netDevs, err2 := os.ReadDir(netRoot)
	if err1 != nil && err2 != nil {
		return fmt.Errorf("no %s nor %s: %w", ibRoot, netRoot, probe.ErrUnavailable)
	}
	now := a.Time()
	for _, d := range ibDevs {
		ports, _ := os.ReadDir(filepath.Join(ibRoot, d.Name(), "ports"))
		for _, p := range ports {
			c.ibPort(a, now, d.Name(), p.Name(), filepath.Join(ibRoot, d.Name(), "ports", p.Name()))
		}
	}
	for _, d := range netDevs {
		dir := filepath.Join(netRoot, d.Name())
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual interface
		}
		c.nic(a, now, d.Name(), dir)
	}
	return nil
}

func (c *Collector) ibPort(a *probe.Appender, now time.Time, dev, port, dir string) {
	ls := []probe.Label{probe.L("device", dev), probe.L("port", port)}
	state, stateOK := leadingInt(readString(filepath.Join(dir, "state")))
	if stateOK {
		a.Gauge("node_infiniband_state_id", float64(state), ls)
	}
	if ps, ok := leadingInt(readString(filepath.Join(dir, "phys_state"))); ok {
		a.Gauge("node_infiniband_physical_state_id", float64(ps), ls)
	}
	rate, rateOK := parseRate(readString(filepath.Join(dir, "rate")))
	if rateOK {
		a.Gauge("node_infiniband_rate_bytes_per_second", rate, ls)
	}
	cdir := filepath.Join(dir, "counters")
	tx, txOK := readUint(filepath.Join(cdir, "port_xmit_data"))
	rx, rxOK := readUint(filepath.Join(cdir, "port_rcv_data"))
	if txOK {
		a.Counter("node_infiniband_port_data_transmitted_bytes_total", float64(tx*4), ls)
	}
	if rxOK {
		a.Counter("node_infiniband_port_data_received_bytes_total", float64(rx*4), ls)
	}
	for _, ct := range ibCounters {
		if v, ok := readUint(filepath.Join(cdir, ct.file)); ok {
			a.Counter(ct.name, float64(v), ls)
		}
	}
	if txOK && rxOK {
		c.rates(a, now, dev+"/"+port, tx*4, rx*4, rate, rateOK, stateOK && state == 4, ls)
	}
}

func (c *Collector) nic(a *probe.Appender, now time.Time, dev, dir string) {
	ls := []probe.Label{probe.L("device", dev)}
	up := strings.TrimSpace(readString(filepath.Join(dir, "operstate"))) == "up"
	a.Gauge("node_network_up", b2f(up), ls)
	speed, speedOK := leadingInt(readString(filepath.Join(dir, "speed")))
	rate := float64(speed) * 1e6 / 8
	speedOK = speedOK && speed > 0
	if speedOK {
		a.Gauge("node_network_speed_bytes", rate, ls)
	}
	st := filepath.Join(dir, "statistics")
	tx, txOK := readUint(filepath.Join(st, "tx_bytes"))
	rx, rxOK := readUint(filepath.Join(st, "rx_bytes"))
	if txOK {
		a.Counter("node_network_transmit_bytes_total", float64(tx), ls)
	}
	if rxOK {
		a.Counter("node_network_receive_bytes_total", float64(rx), ls)
	}
	for _, f := range []struct{ file, name string }{
		{"rx_errors", "node_network_receive_errs_total"}, {"tx_errors", "node_network_transmit_errs_total"},
		{"rx_dropped", "node_network_receive_drop_total"}, {"tx_dropped", "node_network_transmit_drop_total"},
	} {
		if v, ok := readUint(filepath.Join(st, f.file)); ok {
			a.Counter(f.name, float64(v), ls)
		}
	}
	if txOK && rxOK {
		c.rates(a, now, dev, tx, rx, rate, speedOK, up, ls)
	}
}

// rates appends byte rates since the previous collection and the bandwidth left.
func (c *Collector) rates(a *probe.Appender, now time.Time, key string, tx, rx uint64, rate float64, rateOK, up bool, ls []probe.Label) {
	prev, ok := c.prev[key]
	c.prev[key] = sample{now, tx, rx}
	dt := now.Sub(prev.t).Seconds()
	if !ok || dt <= 0 || tx < prev.tx || rx < prev.rx {
		return
	}
	txr, rxr := float64(tx-prev.tx)/dt, float64(rx-prev.rx)/dt
	a.Gauge("eagle_eye_network_transmit_bytes_per_second", txr, ls)
	a.Gauge("eagle_eye_network_receive_bytes_per_second", rxr, ls)
	if rateOK {
		left := 0.0
		if up {
			left = max(0, rate-max(txr, rxr))
		}
		a.Gauge("eagle_eye_network_remaining_bandwidth_bytes_per_second", left, ls)
	}
}

func readString(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readUint reads a counter; "N/A (no PMA)" and absent files are not values.
func readUint(p string) (uint64, bool) {
	v, err := strconv.ParseUint(readString(p), 10, 64)
	return v, err == nil
}

// leadingInt reads "4: ACTIVE" or "400" or "-1".
func leadingInt(s string) (int64, bool) {
	f, _, _ := strings.Cut(s, ":")
	v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
	return v, err == nil
}

// parseRate reads "400 Gb/sec (4X NDR)" into bytes per second, as procfs does (× 125,000,000).
func parseRate(s string) (float64, bool) {
	fields := strings.Fields(s)
	if len(fields) < 2 || !strings.HasPrefix(fields[1], "Gb/sec") {
		return 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, false
	}
	return v * 125_000_000, true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
