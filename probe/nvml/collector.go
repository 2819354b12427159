//go:build cgo && linux

package nvml

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/xid"
)

// Collector reads every GPU NVML sees. See the package documentation.
type Collector struct {
	o   Options
	lib nvml.Interface
	log *slog.Logger

	once    sync.Once
	initErr error
	driver  string
	devs    []*device
	byPCI   map[string]*device

	mu     sync.Mutex // guards events
	events map[eventKey]uint64
}

type eventKey struct {
	gpu   int
	event string
}

type device struct {
	h        nvml.Device
	index    int
	pci      string
	labels   []probe.Label
	info     []probe.Label
	links    []int // NVLink links that exist
	slowdown uint32
	shutdown uint32
	hasTemps bool
}

// New returns a collector over the system's NVML; it loads nothing until first used.
func New(o Options) *Collector {
	var opts []nvml.LibraryOption
	if o.LibraryPath != "" {
		opts = append(opts, nvml.WithLibraryPath(o.LibraryPath))
	}
	return NewWithLibrary(o, nvml.New(opts...))
}

// NewWithLibrary returns a collector over lib: an nvml.Interface of one's own (tests pass
// go-nvml's mock; see nvmltest).
func NewWithLibrary(o Options, lib nvml.Interface) *Collector {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{o: o, lib: lib, log: o.Logger, events: map[eventKey]uint64{}}
}

// init loads NVML and builds the device list, once.
func (c *Collector) init() error {
	c.once.Do(func() { c.initErr = c.discover() })
	return c.initErr
}

func (c *Collector) discover() error {
	if ret := c.lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND || ret == nvml.ERROR_DRIVER_NOT_LOADED {
			return fmt.Errorf("NVML: %s (no NVIDIA driver on this node): %w", c.errString(ret), probe.ErrUnavailable)
		}
		return fmt.Errorf("NVML init: %s: %w", c.errString(ret), probe.ErrUnavailable)
	}
	n, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("NVML device count: %s: %w", c.errString(ret), probe.ErrUnavailable)
	}
	if n == 0 {
		return fmt.Errorf("NVML sees no GPU: %w", probe.ErrUnavailable)
	}
	c.driver, _ = c.lib.SystemGetDriverVersion()
	c.byPCI = map[string]*device{}
	for i := range n {
		h, ret := c.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			c.log.Warn("GPU not readable; skipped", "gpu", i, "err", c.errString(ret))
			continue
		}
		d := &device{h: h, index: i}
		uuid, _ := h.GetUUID()
		name, _ := h.GetName()
		serial, _ := h.GetSerial()
		vbios, _ := h.GetVbiosVersion()
		minor, ret := h.GetMinorNumber()
		if ret != nvml.SUCCESS {
			minor = i
		}
		if pi, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
			d.pci = xid.NormalizePCI(cString(pi.BusId[:]))
		}
		d.labels = []probe.Label{
			probe.L("gpu", strconv.Itoa(i)),
			probe.L("UUID", uuid),
			probe.L("device", "nvidia"+strconv.Itoa(minor)),
			probe.L("modelName", name),
			probe.L("pci_bus_id", d.pci),
			probe.L("Hostname", c.o.Hostname),
			probe.L("DCGM_FI_DRIVER_VERSION", c.driver),
		}
		d.info = []probe.Label{probe.L("serial", serial), probe.L("vbios_version", vbios), probe.L("driver_version", c.driver)}
		sd, r1 := h.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SLOWDOWN)
		st, r2 := h.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SHUTDOWN)
		d.slowdown, d.shutdown, d.hasTemps = sd, st, r1 == nvml.SUCCESS && r2 == nvml.SUCCESS
		for l := range nvml.NVLINK_MAX_LINKS {
			if _, ret := h.GetNvLinkState(l); ret == nvml.SUCCESS {
				d.links = append(d.links, l)
			} else if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
				break
			}
		}
		c.devs = append(c.devs, d)
		c.byPCI[d.pci] = d
	}
	if len(c.devs) == 0 {
		return fmt.Errorf("no GPU readable through NVML: %w", probe.ErrUnavailable)
	}
	if c.o.Tracker != nil {
		c.o.Tracker.SetResolver(c.resolve)
	}
	c.log.Info("NVML ready", "gpus", len(c.devs), "driver", c.driver)
	return nil
}

// resolve gives the tracker the labels of the GPU at a PCI bus id.
func (c *Collector) resolve(pci string) []probe.Label {
	if d := c.byPCI[pci]; d != nil {
		return d.labels
	}
	return nil
}

// errString names an NVML return code without needing the library loaded.
func (c *Collector) errString(ret nvml.Return) string { return ret.Error() }

// Close shuts NVML down if it was loaded.
func (c *Collector) Close() {
	if c.initErr == nil && c.devs != nil {
		c.lib.Shutdown()
	}
}

// Collect appends every GPU's telemetry. A GPU that has fallen off the bus reports
// eagle_eye_gpu_reachable 0 and nothing else; the collection fails only when no GPU answers.
func (c *Collector) Collect(ctx context.Context, a *probe.Appender) error {
	if err := c.init(); err != nil {
		return err
	}
	// PCIe throughput blocks 20 ms per call: read every GPU's at once.
	type pcie struct {
		tx, rx uint32
		ok     bool
	}
	tp := make([]pcie, len(c.devs))
	var wg sync.WaitGroup
	for i, d := range c.devs {
		wg.Go(func() {
			tx, r1 := d.h.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES)
			rx, r2 := d.h.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES)
			tp[i] = pcie{tx, rx, r1 == nvml.SUCCESS && r2 == nvml.SUCCESS}
		})
	}
	wg.Wait()
	lost := 0
	for i, d := range c.devs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !c.collectDevice(a, d) {
			lost++
			continue
		}
		if tp[i].ok {
			a.Gauge("DCGM_FI_PROF_PCIE_TX_BYTES", float64(tp[i].tx)*1024, d.labels)
			a.Gauge("DCGM_FI_PROF_PCIE_RX_BYTES", float64(tp[i].rx)*1024, d.labels)
		}
	}
	c.mu.Lock()
	for k, n := range c.events {
		a.Counter("eagle_eye_gpu_nvml_events_total", float64(n), c.devs[k.gpu].labels, probe.L("event", k.event))
	}
	c.mu.Unlock()
	if lost == len(c.devs) {
		return errors.New("no GPU answered NVML")
	}
	return nil
}

// collectDevice appends one GPU's series; false when the GPU is lost.
func (c *Collector) collectDevice(a *probe.Appender, d *device) bool {
	ls := d.labels
	util, ret := d.h.GetUtilizationRates()
	if ret == nvml.ERROR_GPU_IS_LOST {
		a.Gauge("eagle_eye_gpu_reachable", 0, ls)
		return false
	}
	a.Gauge("eagle_eye_gpu_reachable", 1, ls)
	a.Gauge("eagle_eye_gpu_info", 1, ls, d.info...)
	if ret == nvml.SUCCESS {
		a.Gauge("DCGM_FI_DEV_GPU_UTIL", float64(util.Gpu), ls)
		a.Gauge("DCGM_FI_DEV_MEM_COPY_UTIL", float64(util.Memory), ls)
	}
	if m, ret := d.h.GetMemoryInfo(); ret == nvml.SUCCESS {
		a.Gauge("DCGM_FI_DEV_FB_USED", float64(m.Used)/(1<<20), ls)
		a.Gauge("DCGM_FI_DEV_FB_FREE", float64(m.Free)/(1<<20), ls)
		a.Gauge("DCGM_FI_DEV_FB_TOTAL", float64(m.Total)/(1<<20), ls)
	}
	if v, ret := d.h.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		a.Gauge("DCGM_FI_DEV_GPU_TEMP", float64(v), ls)
	}
	fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_MEMORY_TEMP}}
	if ret := d.h.GetFieldValues(fv); ret == nvml.SUCCESS && fv[0].NvmlReturn == uint32(nvml.SUCCESS) {
		if v, ok := fieldValue(fv[0]); ok {
			a.Gauge("DCGM_FI_DEV_MEMORY_TEMP", v, ls)
		}
	}
	if d.hasTemps {
		a.Gauge("DCGM_FI_DEV_SLOWDOWN_TEMP", float64(d.slowdown), ls)
		a.Gauge("DCGM_FI_DEV_SHUTDOWN_TEMP", float64(d.shutdown), ls)
	}
	if v, ret := d.h.GetPowerUsage(); ret == nvml.SUCCESS {
		a.Gauge("DCGM_FI_DEV_POWER_USAGE", float64(v)/1000, ls) // mW → W
	}
	if v, ret := d.h.GetTotalEnergyConsumption(); ret == nvml.SUCCESS {
		a.Counter("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", float64(v), ls) // mJ
	}
	if v, ret := d.h.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
		a.Gauge("DCGM_FI_DEV_SM_CLOCK", float64(v), ls)
	}
	if v, ret := d.h.GetClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS {
		a.Gauge("DCGM_FI_DEV_MEM_CLOCK", float64(v), ls)
	}
	if v, ret := d.h.GetCurrentClocksEventReasons(); ret == nvml.SUCCESS {
		// DCGM 4 name, and the name older dcgm-exporter releases and dashboards use.
		a.Gauge("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", float64(v), ls)
		a.Gauge("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", float64(v), ls)
	}
	for _, e := range []struct {
		name string
		typ  nvml.MemoryErrorType
		cnt  nvml.EccCounterType
	}{
		{"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC},
		{"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC},
		{"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC},
		{"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC},
	} {
		if v, ret := d.h.GetTotalEccErrors(e.typ, e.cnt); ret == nvml.SUCCESS {
			a.Counter(e.name, float64(v), ls)
		}
	}
	if corr, unc, pending, failed, ret := d.h.GetRemappedRows(); ret == nvml.SUCCESS {
		a.Counter("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", float64(corr), ls)
		a.Counter("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", float64(unc), ls)
		a.Gauge("DCGM_FI_DEV_ROW_REMAP_PENDING", b2f(pending), ls)
		a.Gauge("DCGM_FI_DEV_ROW_REMAP_FAILURE", b2f(failed), ls)
	}
	if v, ret := d.h.GetPcieReplayCounter(); ret == nvml.SUCCESS {
		a.Counter("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", float64(v), ls)
	}
	if v, ret := d.h.GetViolationStatus(nvml.PERF_POLICY_POWER); ret == nvml.SUCCESS {
		a.Counter("DCGM_FI_DEV_POWER_VIOLATION", float64(v.ViolationTime), ls)
	}
	if v, ret := d.h.GetViolationStatus(nvml.PERF_POLICY_THERMAL); ret == nvml.SUCCESS {
		a.Counter("DCGM_FI_DEV_THERMAL_VIOLATION", float64(v.ViolationTime), ls)
	}
	if len(d.links) > 0 {
		c.collectNvLink(a, d)
	}
	return true
}

// collectNvLink appends per-link state and dcgm-exporter's per-GPU error totals.
func (c *Collector) collectNvLink(a *probe.Appender, d *device) {
	counters := []struct {
		name string
		ctr  nvml.NvLinkErrorCounter
	}{
		{"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", nvml.NVLINK_ERROR_DL_CRC_FLIT},
		{"DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", nvml.NVLINK_ERROR_DL_CRC_DATA},
		{"DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", nvml.NVLINK_ERROR_DL_REPLAY},
		{"DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", nvml.NVLINK_ERROR_DL_RECOVERY},
	}
	totals := make([]uint64, len(counters))
	have := make([]bool, len(counters))
	up := 0
	for _, l := range d.links {
		st, ret := d.h.GetNvLinkState(l)
		if ret != nvml.SUCCESS {
			continue
		}
		v := 0.0
		if st == nvml.FEATURE_ENABLED {
			v, up = 1, up+1
		}
		a.Gauge("eagle_eye_gpu_nvlink_up", v, d.labels, probe.L("link", strconv.Itoa(l)))
		for i, ct := range counters {
			if n, ret := d.h.GetNvLinkErrorCounter(l, ct.ctr); ret == nvml.SUCCESS {
				totals[i] += n
				have[i] = true
			}
		}
	}
	a.Gauge("eagle_eye_gpu_nvlink_links_up", float64(up), d.labels)
	for i, ct := range counters {
		if have[i] {
			a.Counter(ct.name, float64(totals[i]), d.labels)
		}
	}
}

// eventMask is what the event loop asks NVML for: XIDs and memory-error events.
const eventMask = nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError |
	nvml.EventTypeSingleBitEccError | nvml.EventTypeSingleBitEccErrorStorm |
	nvml.EventTypeDramRetirementEvent | nvml.EventTypeDramRetirementFailure |
	nvml.EventTypeGpuUnavailableError

var eventNames = map[uint64]string{
	nvml.EventTypeXidCriticalError:       "xid",
	nvml.EventTypeDoubleBitEccError:      "double_bit_ecc",
	nvml.EventTypeSingleBitEccError:      "single_bit_ecc",
	nvml.EventTypeSingleBitEccErrorStorm: "single_bit_ecc_storm",
	nvml.EventTypeDramRetirementEvent:    "dram_retirement",
	nvml.EventTypeDramRetirementFailure:  "dram_retirement_failure",
	nvml.EventTypeGpuUnavailableError:    "gpu_unavailable",
}

// Run waits on an NVML event set for XID and memory-error events until ctx ends: XIDs go to
// the tracker (source "nvml"), every event is counted in eagle_eye_gpu_nvml_events_total.
func (c *Collector) Run(ctx context.Context) error {
	if c.o.Tracker == nil {
		return nil
	}
	if err := c.init(); err != nil {
		return err
	}
	set, ret := c.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("NVML event set: %s: %w", c.errString(ret), probe.ErrUnavailable)
	}
	defer set.Free()
	registered := 0
	for _, d := range c.devs {
		sup, ret := d.h.GetSupportedEventTypes()
		if ret != nvml.SUCCESS {
			continue
		}
		if ret := d.h.RegisterEvents(eventMask&sup, set); ret == nvml.SUCCESS {
			registered++
		}
	}
	if registered == 0 {
		return fmt.Errorf("no GPU supports NVML XID events: %w", probe.ErrUnavailable)
	}
	c.log.Info("waiting for NVML events", "gpus", registered)
	for ctx.Err() == nil {
		ev, ret := set.Wait(1000)
		switch ret {
		case nvml.SUCCESS:
			c.record(ev)
		case nvml.ERROR_TIMEOUT:
		default:
			// GPU_IS_LOST and the like: the getters report it; do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (c *Collector) record(ev nvml.EventData) {
	var d *device
	for _, x := range c.devs {
		if x.h == ev.Device {
			d = x
			break
		}
	}
	if d == nil {
		return
	}
	name := eventNames[ev.EventType]
	if name == "" {
		name = "other"
	}
	c.mu.Lock()
	c.events[eventKey{d.index, name}]++
	c.mu.Unlock()
	if ev.EventType == nvml.EventTypeXidCriticalError {
		c.o.Tracker.Record("nvml", d.pci, int(ev.EventData), time.Now())
	}
}

// fieldValue decodes an NVML field value.
func fieldValue(f nvml.FieldValue) (float64, bool) {
	b := f.Value[:]
	switch nvml.ValueType(f.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.LittleEndian.Uint32(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(binary.LittleEndian.Uint64(b)), true
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.LittleEndian.Uint64(b))), true
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.LittleEndian.Uint32(b))), true
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.LittleEndian.Uint16(b)), true
	}
	return 0, false
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
