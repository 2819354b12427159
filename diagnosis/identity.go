package diagnosis

import (
	"cmp"
	"context"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// deviceKey names the device an alert is about, from its labels. See Report.Device.
func deviceKey(component string, l labels.Labels) (key, node string) {
	node = nodeOf(l)
	switch component {
	case "gpu":
		if u := l.Get("UUID"); u != "" {
			return "gpu/" + u, node
		}
		return "gpu/" + node + "/" + firstOf(l, "gpu", "pci_bus_id", "device"), node
	case "npu":
		return "npu/" + node + "/" + firstOf(l, "id", "vdie_id", "pcie_bus_info"), node
	case "engine":
		if in := l.Get("instance"); in != "" {
			return "engine/" + in, node
		}
		return "engine/" + node + "/" + l.Get("pod"), node
	case "network":
		k := "network/" + node + "/" + l.Get("device")
		if p := l.Get("port"); p != "" {
			k += "/" + p
		}
		return k, node
	}
	return "node/" + node, node
}

// nodeOf returns the node an alert is about: the probe's node label, dcgm-exporter's Hostname,
// else the host of instance.
func nodeOf(l labels.Labels) string {
	if n := firstOf(l, "node", "Hostname"); n != "" {
		return n
	}
	in := l.Get("instance")
	if h, _, err := net.SplitHostPort(in); err == nil {
		return h
	}
	return in
}

func firstOf(l labels.Labels, names ...string) string {
	for _, n := range names {
		if v := l.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// engineSeries are series every engine exposes, one per engine (vLLM, SGLang).
var engineSeries = labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, "vllm:num_requests_running|sglang:num_running_reqs")

// identify completes the device identity from its info series and finds the engines that run
// on it. It reads at most lookback of data before t; it never fails (what is not found stays
// empty).
func (d *Diagnoser) identify(ctx context.Context, component string, l labels.Labels, t time.Time) (Identity, []Engine) {
	id := Identity{}
	node := nodeOf(l)
	switch component {
	case "gpu":
		id.UUID, id.Index, id.PCIBusID, id.Model = l.Get("UUID"), l.Get("gpu"), l.Get("pci_bus_id"), l.Get("modelName")
		var pods []Engine
		if id.UUID != "" {
			uuid := labels.MustNewMatcher(labels.MatchEqual, "UUID", id.UUID)
			if info := d.latest(ctx, t, eq(labels.MetricName, "eagle_eye_gpu_info"), uuid); !info.IsEmpty() {
				id.Serial, id.Firmware, id.Driver = info.Get("serial"), info.Get("vbios_version"), info.Get("driver_version")
				id.Model = cmp.Or(id.Model, info.Get("modelName"))
			}
			// dcgm-exporter's label-type fields, and the pod that holds the GPU.
			if s := d.latest(ctx, t, eq(labels.MetricName, "DCGM_FI_DEV_GPU_TEMP"), uuid); !s.IsEmpty() {
				id.Driver = cmp.Or(id.Driver, s.Get("DCGM_FI_DRIVER_VERSION"))
				id.Firmware = cmp.Or(id.Firmware, s.Get("DCGM_FI_DEV_VBIOS_VERSION"))
				id.Serial = cmp.Or(id.Serial, s.Get("DCGM_FI_DEV_SERIAL"))
				id.Model = cmp.Or(id.Model, s.Get("modelName"))
				if p := s.Get("pod"); p != "" {
					pods = append(pods, Engine{Pod: p, Namespace: s.Get("namespace")})
				}
			}
		}
		return id, d.enginesOn(ctx, node, pods, t)
	case "npu":
		id.Index, id.UUID, id.PCIBusID, id.Model = l.Get("id"), l.Get("vdie_id"), l.Get("pcie_bus_info"), l.Get("model_name")
		if node != "" && id.Index != "" {
			if info := d.latest(ctx, t, eq(labels.MetricName, "npu_chip_info_name"), eq("node", node), eq("id", id.Index)); !info.IsEmpty() {
				id.Model = cmp.Or(id.Model, info.Get("name"))
			}
		}
		if node != "" {
			if info := d.latest(ctx, t, eq(labels.MetricName, "node_base_info"), eq("node", node)); !info.IsEmpty() {
				id.Driver = info.Get("driverVersion")
			}
		}
		return id, d.enginesOn(ctx, node, nil, t)
	case "engine":
		id.Instance, id.Pod, id.Model = l.Get("instance"), l.Get("pod"), l.Get("model_name")
		return id, nil
	case "network":
		id.Index, id.Port = l.Get("device"), l.Get("port")
		if node != "" && id.Index != "" {
			if info := d.latest(ctx, t, eq(labels.MetricName, "node_infiniband_info"), eq("node", node), eq("device", id.Index)); !info.IsEmpty() {
				id.Model = cmp.Or(info.Get("hca_type"), info.Get("board_id"))
				id.Firmware = info.Get("firmware_version")
			}
		}
		return id, d.enginesOn(ctx, node, nil, t)
	}
	return id, d.enginesOn(ctx, node, nil, t)
}

// enginesOn lists the engines reporting with the node's label. When the device's series name
// the pods that hold it, only those pods' engines are kept (or the pods themselves when no
// engine series matches them).
func (d *Diagnoser) enginesOn(ctx context.Context, node string, pods []Engine, t time.Time) []Engine {
	if node == "" {
		return pods
	}
	var out []Engine
	seen := map[string]bool{}
	d.each(ctx, t, func(l labels.Labels) {
		e := Engine{Instance: l.Get("instance"), Job: l.Get("job"), Pod: l.Get("pod"), Namespace: l.Get("namespace"), Model: l.Get("model_name")}
		if seen[e.Instance+"\xff"+e.Pod] {
			return
		}
		if len(pods) > 0 && !slices.ContainsFunc(pods, func(p Engine) bool { return p.Pod == e.Pod && p.Namespace == e.Namespace }) {
			return
		}
		seen[e.Instance+"\xff"+e.Pod] = true
		out = append(out, e)
	}, engineSeries, eq("node", node))
	if len(out) == 0 {
		out = pods
	}
	slices.SortFunc(out, func(a, b Engine) int { return strings.Compare(a.Instance+a.Pod, b.Instance+b.Pod) })
	return out
}

func eq(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, name, value)
}

// latest returns the labels of the matching series with the newest sample in
// [t-lookback, t], or empty labels.
func (d *Diagnoser) latest(ctx context.Context, t time.Time, ms ...*labels.Matcher) labels.Labels {
	var (
		best  labels.Labels
		bestT int64 = math.MinInt64
	)
	d.series(ctx, t, func(l labels.Labels, maxT int64) {
		if maxT > bestT {
			best, bestT = l, maxT
		}
	}, ms...)
	return best
}

// each calls f with the labels of every matching series with a sample in [t-lookback, t].
func (d *Diagnoser) each(ctx context.Context, t time.Time, f func(labels.Labels), ms ...*labels.Matcher) {
	d.series(ctx, t, func(l labels.Labels, _ int64) { f(l) }, ms...)
}

func (d *Diagnoser) series(ctx context.Context, t time.Time, f func(labels.Labels, int64), ms ...*labels.Matcher) {
	if d.opts.Queryable == nil {
		return
	}
	maxt := t.UnixMilli()
	mint := t.Add(-d.opts.Lookback).UnixMilli()
	q, err := d.opts.Queryable.Querier(mint, maxt)
	if err != nil {
		d.logger.Debug("info lookup", "err", err)
		return
	}
	defer q.Close()
	ss := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	for ss.Next() {
		s := ss.At()
		last := int64(math.MinInt64)
		ci := s.Iterator(nil)
		for ci.Next() != chunkenc.ValNone {
			if ts := ci.AtT(); ts > last {
				last = ts
			}
		}
		if last != math.MinInt64 {
			f(s.Labels(), last)
		}
	}
	if err := ss.Err(); err != nil {
		d.logger.Debug("info lookup", "err", err)
	}
}
