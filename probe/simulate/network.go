package simulate

import (
	"math"
	"strconv"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// port is an InfiniBand port, with node_exporter's node_infiniband_* names.
type port struct {
	dev    string
	port   int
	labels []probe.Label
	tx, rx float64 // bytes
	// Error counters since the port's counters were last cleared: a healthy port keeps the
	// few it has, so their rates are 0 and no rule on them fires.
	symbolErrors, rcvErrors, recoveries, discards float64
	linkDowned                                    float64 // +1 each time a link_down fault starts
	down                                          bool
}

// nic is a plain Ethernet interface (front-end or storage network), with node_exporter's
// node_network_* names.
type nic struct {
	dev       string
	speed     float64 // bytes/s
	pktSize   float64 // mean packet size, bytes
	txLoad    float64 // mean share of the speed
	rxLoad    float64
	seed      int
	labels    []probe.Label
	tx, rx    float64 // bytes
	rxErrs    float64 // since boot; constant on a healthy link
	rxDropped float64
}

func newPorts(n int, node string) []*port {
	var out []*port
	for i := range 2 {
		dev := "mlx5_" + strconv.Itoa(i)
		out = append(out, &port{dev: dev, port: 1,
			symbolErrors: float64((n + i) % 3), rcvErrors: float64((n*5 + i) % 2), recoveries: float64((n + i*2) % 2),
			discards: float64((n*3 + i) % 4),
			labels:   []probe.Label{probe.L("device", dev), probe.L("port", "1"), probe.L("node", node)}})
	}
	return out
}

// newNICs gives every node a front-end NIC (API traffic, image pulls) and a storage NIC (model
// weights, checkpoints), both 100 GbE and never busier than 40% of it.
func newNICs(n int, node string) []*nic {
	return []*nic{
		{dev: "eth0", speed: 100e9 / 8, pktSize: 1400, txLoad: 0.08, rxLoad: 0.15, seed: 3 * n, rxErrs: float64(n % 3), rxDropped: float64(120 + 37*n),
			labels: []probe.Label{probe.L("device", "eth0"), probe.L("node", node)}},
		{dev: "eth1", speed: 100e9 / 8, pktSize: 8000, txLoad: 0.03, rxLoad: 0.25, seed: 3*n + 1, rxDropped: float64(15 + 11*n),
			labels: []probe.Label{probe.L("device", "eth1"), probe.L("node", node)}},
	}
}

func (f *Fleet) port(a *probe.Appender, nd *node, p *port, el time.Duration, dt float64) {
	target := p.dev + "/" + strconv.Itoa(p.port)
	const rate = 400e9 / 8  // 400 Gb/s NDR
	state, phys := 4.0, 5.0 // ACTIVE, LinkUp
	txBps, rxBps := rate*(0.3+0.2*wave(len(nd.name)+p.port, el, 45)), rate*(0.25+0.2*wave(len(nd.name)+3, el, 50))
	i, _ := f.faultOn(LinkDown, nd, target, el)
	if i >= 0 {
		state, phys, txBps, rxBps = 1, 2, 0, 0 // DOWN, Polling
		if !p.down {
			p.linkDowned++
		}
	}
	p.down = i >= 0
	p.tx += txBps * dt
	p.rx += rxBps * dt
	ls := p.labels
	a.Gauge("node_infiniband_state_id", state, ls)
	a.Gauge("node_infiniband_physical_state_id", phys, ls)
	a.Gauge("node_infiniband_rate_bytes_per_second", rate, ls)
	a.Counter("node_infiniband_port_data_transmitted_bytes_total", math.Floor(p.tx), ls)
	a.Counter("node_infiniband_port_data_received_bytes_total", math.Floor(p.rx), ls)
	a.Counter("node_infiniband_port_packets_transmitted_total", math.Floor(p.tx/4096), ls) // 4 KiB MTU
	a.Counter("node_infiniband_port_packets_received_total", math.Floor(p.rx/4096), ls)
	a.Counter("node_infiniband_symbol_error_total", p.symbolErrors, ls)
	a.Counter("node_infiniband_port_errors_received_total", p.rcvErrors, ls)
	a.Counter("node_infiniband_link_error_recovery_total", p.recoveries, ls)
	a.Counter("node_infiniband_link_downed_total", p.linkDowned, ls)
	a.Counter("node_infiniband_local_link_integrity_errors_total", 0, ls)
	a.Counter("node_infiniband_excessive_buffer_overrun_errors_total", 0, ls)
	a.Counter("node_infiniband_port_discards_transmitted_total", p.discards, ls)
	a.Gauge("eagle_eye_network_transmit_bytes_per_second", math.Round(txBps), ls)
	a.Gauge("eagle_eye_network_receive_bytes_per_second", math.Round(rxBps), ls)
	remain := 0.0
	if state == 4 {
		remain = rate - math.Max(txBps, rxBps)
	}
	a.Gauge("eagle_eye_network_remaining_bandwidth_bytes_per_second", math.Round(remain), ls)
}

func (f *Fleet) nic(a *probe.Appender, c *nic, el time.Duration, dt float64) {
	txBps := c.speed * c.txLoad * (1 + 0.5*wave(c.seed, el, 75))
	rxBps := c.speed * c.rxLoad * (1 + 0.5*wave(c.seed+2, el, 65))
	c.tx += txBps * dt
	c.rx += rxBps * dt
	ls := c.labels
	a.Gauge("node_network_up", 1, ls)
	a.Gauge("node_network_carrier", 1, ls)
	a.Gauge("node_network_speed_bytes", c.speed, ls)
	a.Counter("node_network_transmit_bytes_total", math.Floor(c.tx), ls)
	a.Counter("node_network_receive_bytes_total", math.Floor(c.rx), ls)
	a.Counter("node_network_transmit_packets_total", math.Floor(c.tx/c.pktSize), ls)
	a.Counter("node_network_receive_packets_total", math.Floor(c.rx/c.pktSize), ls)
	a.Counter("node_network_transmit_errs_total", 0, ls)
	a.Counter("node_network_receive_errs_total", c.rxErrs, ls)
	a.Counter("node_network_transmit_drop_total", 0, ls)
	a.Counter("node_network_receive_drop_total", c.rxDropped, ls)
	a.Gauge("eagle_eye_network_transmit_bytes_per_second", math.Round(txBps), ls)
	a.Gauge("eagle_eye_network_receive_bytes_per_second", math.Round(rxBps), ls)
	a.Gauge("eagle_eye_network_remaining_bandwidth_bytes_per_second", math.Round(c.speed-math.Max(txBps, rxBps)), ls)
}
