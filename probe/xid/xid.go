// Package xid counts NVIDIA XID errors per GPU and code, every occurrence, as reported by
// any number of readers (the NVML event set, the kernel log), and exposes them as
// eagle_eye_gpu_xid_errors_total{xid} and the dcgm-exporter-compatible last-XID gauge
// DCGM_FI_DEV_XID_ERRORS.
//
// Each reader counts under its own source. Where two readers see the same occurrences (NVML
// events and the kernel log both report every XID on Linux), the exposed count is the larger
// of the per-source counts, so an XID is counted once, and a reader that missed some (started
// late, lost lines) does not lower it. The result stays monotonic.
//
// A Tracker is safe for concurrent use: readers call Record from their own goroutines, the
// probe calls Collect.
package xid

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Resolver returns the labels identifying the GPU at a PCI bus id (normalised as
// NormalizePCI does): gpu, UUID, device, modelName... nil when it does not know the GPU.
type Resolver func(pciBusID string) []probe.Label

type key struct {
	pci string
	xid int
}

type entry struct {
	bySource map[string]uint64
	total    uint64
}

type last struct {
	xid int
	at  time.Time
}

// Tracker holds the XID counts of one node.
type Tracker struct {
	mu       sync.Mutex
	counts   map[key]*entry
	last     map[string]last   // by PCI bus id
	uuids    map[string]string // PCI bus id → UUID learnt from the kernel log
	devices  map[string]bool   // every PCI bus id seen, for the last-XID gauge
	resolver Resolver
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{counts: map[key]*entry{}, last: map[string]last{}, uuids: map[string]string{}, devices: map[string]bool{}}
}

// SetResolver sets how PCI bus ids map to GPU labels (the NVML collector provides it).
func (t *Tracker) SetResolver(r Resolver) {
	t.mu.Lock()
	t.resolver = r
	t.mu.Unlock()
}

// SetUUID records that the GPU at pci has uuid (from "NVRM: GPU at PCI:...: GPU-..." lines).
func (t *Tracker) SetUUID(pci, uuid string) {
	t.mu.Lock()
	t.uuids[NormalizePCI(pci)] = uuid
	t.mu.Unlock()
}

// Record counts one occurrence of xid on the GPU at pci, reported by source.
func (t *Tracker) Record(source, pci string, xid int, at time.Time) {
	pci = NormalizePCI(pci)
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{pci, xid}
	e := t.counts[k]
	if e == nil {
		e = &entry{bySource: map[string]uint64{}}
		t.counts[k] = e
	}
	e.bySource[source]++
	if n := e.bySource[source]; n > e.total {
		e.total = n
		t.devices[pci] = true
		if l, ok := t.last[pci]; !ok || !at.Before(l.at) {
			t.last[pci] = last{xid: xid, at: at}
		}
	}
}

// Count returns the exposed count for (pci, xid).
func (t *Tracker) Count(pci string, xid int) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.counts[key{NormalizePCI(pci), xid}]; e != nil {
		return e.total
	}
	return 0
}

// Collect appends eagle_eye_gpu_xid_errors_total per GPU and code seen, and
// DCGM_FI_DEV_XID_ERRORS (the last code) per GPU that had one.
func (t *Tracker) Collect(_ context.Context, a *probe.Appender) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]key, 0, len(t.counts))
	for k := range t.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y key) int {
		if c := strings.Compare(x.pci, y.pci); c != 0 {
			return c
		}
		return x.xid - y.xid
	})
	for _, k := range keys {
		a.Counter("eagle_eye_gpu_xid_errors_total", float64(t.counts[k].total), t.labelsLocked(k.pci),
			probe.L("xid", strconv.Itoa(k.xid)))
	}
	for pci := range t.devices {
		a.Gauge("DCGM_FI_DEV_XID_ERRORS", float64(t.last[pci].xid), t.labelsLocked(pci))
	}
	return nil
}

func (t *Tracker) labelsLocked(pci string) []probe.Label {
	var ls []probe.Label
	if t.resolver != nil {
		ls = t.resolver(pci)
	}
	if ls == nil {
		ls = []probe.Label{probe.L("pci_bus_id", pci)}
		if u := t.uuids[pci]; u != "" {
			ls = append(ls, probe.L("UUID", u))
		}
	}
	return ls
}

// NormalizePCI turns the PCI addresses found in kernel logs and NVML ("PCI:0000:3b:00",
// "0000:3b:00", "0000:3b:00.0", "00000000:3B:00.0") into NVML's form, which dcgm-exporter
// uses for its pci_bus_id label: an 8-digit domain, upper-case hex, and the function.
// Anything it cannot parse is returned upper-cased.
func NormalizePCI(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "PCI:")
	fn := "0"
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		fn = s[i+1:]
		s = s[:i]
	}
	parts := strings.Split(s, ":")
	if len(parts) == 2 {
		parts = append([]string{"0"}, parts...)
	}
	if len(parts) != 3 {
		return strings.ToUpper(s)
	}
	dom, err1 := strconv.ParseUint(parts[0], 16, 32)
	bus, err2 := strconv.ParseUint(parts[1], 16, 8)
	dev, err3 := strconv.ParseUint(parts[2], 16, 8)
	if err1 != nil || err2 != nil || err3 != nil {
		return strings.ToUpper(s)
	}
	return fmt.Sprintf("%08X:%02X:%02X.%s", dom, bus, dev, strings.ToUpper(fn))
}
