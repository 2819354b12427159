package simulate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is a scripted fault.
type Kind string

// Faults the simulator can inject. XID faults are written xidNN (xid79, xid48, ...).
const (
	XID          Kind = "xid"           // one XID NN on a GPU; xid79 also takes the GPU off the bus
	DBEStorm     Kind = "dbe_storm"     // double-bit ECC errors every second, XID 48 every 10 s, remap pending
	Thermal      Kind = "thermal"       // GPU temperature climbs 1.5 °C/s to 97 °C, thermal clock events, SM clock cut
	KVSaturation Kind = "kv_saturation" // engine KV cache near full, queue builds, preemptions
	EngineStall  Kind = "engine_stall"  // engine stops generating: running 0, waiting grows, tokens flat
	LinkDown     Kind = "link_down"     // an InfiniBand port goes DOWN, its counters stop; with an npu-N target, as npu_link_down
	NPUFault     Kind = "npu_fault"     // an Ascend NPU turns unhealthy with an HBM multi-bit error code
	NPULinkDown  Kind = "npu_link_down" // an Ascend NPU's RoCE link goes DOWN: link and network status 0, error code 81078603
)

// Fault is one injection: what, where, from when (after the simulation starts) and for how
// long (forever when zero).
type Fault struct {
	Kind     Kind
	XID      int    // for XID
	Node     string // node name, e.g. node-1
	Target   string // gpu-3, engine-1, mlx5_0/1 (device/port), npu-2; "" means the first of each kind
	At       time.Duration
	Duration time.Duration
}

// ParseFault reads KIND@NODE[/TARGET]@OFFSET[+DURATION], e.g. "xid79@node-1/gpu-3@30s",
// "kv_saturation@node-0/engine-1@20s+2m", "link_down@node-2/mlx5_0/1@45s",
// "npu_link_down@node-3/npu-2@1m+30s".
func ParseFault(s string) (Fault, error) {
	parts := strings.Split(s, "@")
	if len(parts) != 3 {
		return Fault{}, fmt.Errorf("fault %q: want KIND@NODE[/TARGET]@OFFSET[+DURATION]", s)
	}
	var f Fault
	k := strings.ToLower(parts[0])
	switch {
	case strings.HasPrefix(k, "xid"):
		n, err := strconv.Atoi(strings.TrimPrefix(k, "xid"))
		if err != nil || n <= 0 {
			return Fault{}, fmt.Errorf("fault %q: %q is not xidNN", s, parts[0])
		}
		f.Kind, f.XID = XID, n
	case k == string(DBEStorm), k == string(Thermal), k == string(KVSaturation), k == string(EngineStall),
		k == string(LinkDown), k == string(NPUFault), k == string(NPULinkDown):
		f.Kind = Kind(k)
	default:
		return Fault{}, fmt.Errorf("fault %q: unknown kind %q (xidNN, dbe_storm, thermal, kv_saturation, engine_stall, link_down, npu_fault, npu_link_down)", s, parts[0])
	}
	f.Node, f.Target, _ = strings.Cut(parts[1], "/")
	if f.Node == "" {
		return Fault{}, fmt.Errorf("fault %q: no node", s)
	}
	at, dur, _ := strings.Cut(parts[2], "+")
	var err error
	if f.At, err = time.ParseDuration(at); err != nil || f.At < 0 {
		return Fault{}, fmt.Errorf("fault %q: offset %q: want a duration like 30s", s, at)
	}
	if dur != "" {
		if f.Duration, err = time.ParseDuration(dur); err != nil || f.Duration <= 0 {
			return Fault{}, fmt.Errorf("fault %q: duration %q: want a duration like 1m", s, dur)
		}
	}
	return f, nil
}

// active reports whether the fault is on at elapsed time e.
func (f Fault) active(e time.Duration) bool {
	return e >= f.At && (f.Duration == 0 || e < f.At+f.Duration)
}

// index returns N from a target "prefix-N", or 0.
func index(target, prefix string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(target, prefix+"-"))
	if err != nil {
		return 0
	}
	return n
}
