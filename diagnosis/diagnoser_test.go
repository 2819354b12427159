package diagnosis

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type alertSpec struct {
	alert, pattern, component, severity string
	dev, signal                         string
}

func (s alertSpec) labels() labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	b.Set(labels.AlertName, s.alert)
	b.Set("pattern", s.pattern)
	b.Set("component", s.component)
	b.Set("severity", s.severity)
	b.Set("signal", s.signal)
	switch s.component {
	case "gpu":
		b.Set("UUID", s.dev)
		b.Set("Hostname", "node-a")
		b.Set("node", "node-a")
		b.Set("modelName", "NVIDIA H100 80GB HBM3")
	case "engine":
		b.Set("instance", s.dev)
		b.Set("node", "node-a")
	}
	return b.Labels()
}

func firingAt(s alertSpec, ts time.Time) *rules.Alert {
	return &rules.Alert{State: rules.StateFiring, Labels: s.labels(), Value: 1, ActiveAt: ts, FiredAt: ts,
		LastSentAt: ts, ValidUntil: ts.Add(time.Minute),
		Annotations: labels.FromStrings("summary", "s", "threshold", "> 0", "runbook", "do it", "description", "it broke")}
}

func resolvedAt(s alertSpec, ts time.Time) *rules.Alert {
	a := firingAt(s, ts)
	a.State, a.ResolvedAt = rules.StateInactive, ts
	return a
}

func newTestDiagnoser(t *testing.T) (*Diagnoser, *fakePublisher) {
	t.Helper()
	pub := &fakePublisher{}
	d, err := New(Options{Catalog: loadCatalog(t), Publisher: pub, Registerer: prometheus.NewRegistry(), FlapHold: 5 * time.Minute, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return d, pub
}

func drainEvents(d *Diagnoser) {
	for {
		select {
		case ev := <-d.pub:
			d.publish(context.Background(), ev)
		default:
			return
		}
	}
}

func (p *fakePublisher) states(t *testing.T) []string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, b := range p.payloads {
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		s := r.Pattern + ":" + r.State
		if r.SupersededBy != "" {
			s += ":superseded"
		}
		out = append(out, s)
	}
	return out
}

var (
	dbe     = alertSpec{"GPUUncorrectableECC", "G02", "gpu", "critical", "GPU-1", "dbe_volatile"}
	dbeXID  = alertSpec{"GPUUncorrectableECC", "G02", "gpu", "critical", "GPU-1", "xid_48"}
	remap   = alertSpec{"GPUMemoryDegrading", "G05", "gpu", "warning", "GPU-1", "row_remap_pending"}
	dbeGPU2 = alertSpec{"GPUUncorrectableECC", "G02", "gpu", "critical", "GPU-2", "dbe_volatile"}
)

func TestLifecycle(t *testing.T) {
	d, pub := newTestDiagnoser(t)
	ctx := context.Background()
	d.Notify(ctx, "expr", firingAt(dbe, t0))
	d.Notify(ctx, "expr", firingAt(dbe, t0.Add(15*time.Second)), firingAt(dbeXID, t0.Add(15*time.Second)))
	reps := d.Reports(Filter{})
	if len(reps) != 1 || len(reps[0].Evidence) != 2 || reps[0].State != StateFiring {
		t.Fatalf("want one firing report with two pieces of evidence: %+v", reps)
	}
	r := reps[0]
	if r.Device != "gpu/GPU-1" || r.Node != "node-a" || r.FirstSeen != t0 || r.LastSeen != t0.Add(15*time.Second) || r.RouterAction != Unroutable {
		t.Fatalf("report %+v", r)
	}
	if r.Evidence[0].Threshold != "> 0" || r.Evidence[0].Expr != "expr" || r.Evidence[0].Labels["UUID"] != "GPU-1" {
		t.Fatalf("evidence %+v", r.Evidence[0])
	}
	if n := testutil.ToFloat64(d.metrics.active.WithLabelValues("G02", "gpu", "critical", "node-a", "gpu/GPU-1")); n != 1 {
		t.Fatalf("active gauge %v", n)
	}
	// One instance resolves: still firing. Both: resolved.
	d.Notify(ctx, "expr", resolvedAt(dbe, t0.Add(time.Minute)), firingAt(dbeXID, t0.Add(time.Minute)))
	if d.Reports(Filter{})[0].State != StateFiring {
		t.Fatal("resolved while an instance still fires")
	}
	d.Notify(ctx, "expr", resolvedAt(dbeXID, t0.Add(2*time.Minute)))
	d.Notify(ctx, "expr", resolvedAt(dbeXID, t0.Add(2*time.Minute+15*time.Second))) // re-sent: ignored
	r = d.Reports(Filter{})[0]
	if r.State != StateResolved || r.ResolvedAt == nil || !r.ResolvedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("report %+v", r)
	}
	if n := testutil.CollectAndCount(d.metrics.active); n != 0 {
		t.Fatalf("active gauge has %d series after resolution", n)
	}
	drainEvents(d)
	if got := pub.states(t); !slices.Equal(got, []string{"G02:firing", "G02:resolved"}) {
		t.Fatalf("published %v", got)
	}
}

// TestFlapSuppression: a report that resolves and fires again within the hold stays one
// report (Flaps counts it); after the hold a new report opens and the old one is kept.
func TestFlapSuppression(t *testing.T) {
	d, _ := newTestDiagnoser(t)
	ctx := context.Background()
	d.Notify(ctx, "e", firingAt(dbe, t0))
	d.Notify(ctx, "e", resolvedAt(dbe, t0.Add(time.Minute)))
	d.Notify(ctx, "e", firingAt(dbe, t0.Add(3*time.Minute)))
	reps := d.Reports(Filter{})
	if len(reps) != 1 || reps[0].Flaps != 1 || reps[0].State != StateFiring || reps[0].FirstSeen != t0 {
		t.Fatalf("want one re-opened report: %+v", reps)
	}
	id := reps[0].ID
	d.Notify(ctx, "e", resolvedAt(dbe, t0.Add(4*time.Minute)))
	d.Notify(ctx, "e", firingAt(dbe, t0.Add(20*time.Minute))) // past the 5m hold
	reps = d.Reports(Filter{})
	if len(reps) != 2 || reps[0].State != StateFiring || reps[0].ID == id || reps[1].ID != id || reps[1].State != StateResolved {
		t.Fatalf("want a new firing report and the old resolved one: %+v", reps)
	}
	// Retention drops the old one.
	d.sweep(t0.Add(4*time.Minute + time.Hour + time.Second))
	if reps = d.Reports(Filter{}); len(reps) != 1 || reps[0].ID == id {
		t.Fatalf("after retention: %+v", reps)
	}
}

func TestOneReportPerDeviceAndPattern(t *testing.T) {
	d, _ := newTestDiagnoser(t)
	ctx := context.Background()
	d.Notify(ctx, "e", firingAt(dbe, t0), firingAt(dbeXID, t0), firingAt(dbeGPU2, t0))
	d.Notify(ctx, "e", firingAt(alertSpec{"EngineKVCacheSaturated", "E01", "engine", "warning", "node-a:8000", "kv"}, t0))
	reps := d.Reports(Filter{})
	if len(reps) != 3 {
		t.Fatalf("%d reports, want 3 (two GPUs, one engine)", len(reps))
	}
}

// TestSuppression: a pattern the catalog explains by another one active on the same device
// is folded into that report, and stays folded until it resolves; a pattern that explains an
// existing report supersedes it.
func TestSuppression(t *testing.T) {
	d, pub := newTestDiagnoser(t)
	ctx := context.Background()
	d.Notify(ctx, "e", firingAt(dbe, t0))
	d.Notify(ctx, "e", firingAt(remap, t0.Add(5*time.Minute)))
	reps := d.Reports(Filter{})
	if len(reps) != 1 || reps[0].Pattern != "G02" || len(reps[0].Related) != 1 || reps[0].Related[0].Pattern != "G05" {
		t.Fatalf("G05 not folded into G02: %+v", reps)
	}
	// The cause clears first; the effect, still firing, stays folded.
	d.Notify(ctx, "e", resolvedAt(dbe, t0.Add(6*time.Minute)))
	d.Notify(ctx, "e", firingAt(remap, t0.Add(6*time.Minute)))
	if reps = d.Reports(Filter{State: StateFiring}); len(reps) != 0 {
		t.Fatalf("folded alert opened a report: %+v", reps)
	}
	// Once it resolved, a new occurrence is a report of its own.
	d.Notify(ctx, "e", resolvedAt(remap, t0.Add(7*time.Minute)))
	d.Notify(ctx, "e", firingAt(remap, t0.Add(30*time.Minute)))
	if reps = d.Reports(Filter{State: StateFiring}); len(reps) != 1 || reps[0].Pattern != "G05" {
		t.Fatalf("G05 alone: %+v", reps)
	}
	// Now G02 fires on the same GPU: it supersedes the G05 report.
	d.Notify(ctx, "e", firingAt(dbe, t0.Add(31*time.Minute)))
	reps = d.Reports(Filter{State: StateFiring})
	if len(reps) != 1 || reps[0].Pattern != "G02" || !slices.ContainsFunc(reps[0].Related, func(r Related) bool { return r.Pattern == "G05" }) {
		t.Fatalf("G02 did not supersede G05: %+v", reps)
	}
	if all := d.Reports(Filter{Pattern: "G05"}); len(all) != 0 {
		t.Fatalf("superseded report still listed: %+v", all)
	}
	drainEvents(d)
	if got := pub.states(t); !slices.Contains(got, "G05:resolved:superseded") {
		t.Fatalf("published %v", got)
	}
}

// TestExpiry: an alert that stops being sent (its rule was removed) resolves once its
// ValidUntil passes.
func TestExpiry(t *testing.T) {
	d, _ := newTestDiagnoser(t)
	d.Notify(context.Background(), "e", firingAt(dbe, t0))
	d.sweep(t0.Add(30 * time.Second))
	if d.Reports(Filter{})[0].State != StateFiring {
		t.Fatal("expired before ValidUntil")
	}
	d.sweep(t0.Add(2 * time.Minute))
	if r := d.Reports(Filter{})[0]; r.State != StateResolved {
		t.Fatalf("not expired: %+v", r)
	}
}

func TestDeviceStatesAndSeverity(t *testing.T) {
	d, _ := newTestDiagnoser(t)
	ctx := context.Background()
	nvlinkErr := alertSpec{"GPUNVLinkErrors", "G08", "gpu", "warning", "GPU-3", "nvlink_error_counters"}
	nvlinkDown := alertSpec{"GPUNVLinkDown", "G08", "gpu", "critical", "GPU-3", "fewer_links_than_peers"}
	thermal := alertSpec{"GPUThermalThrottling", "G10", "gpu", "warning", "GPU-3", "thermal_clock_event"}
	d.Notify(ctx, "e", firingAt(nvlinkErr, t0), firingAt(thermal, t0))
	d.Notify(ctx, "e", firingAt(nvlinkDown, t0.Add(time.Minute)))
	r := d.Reports(Filter{Pattern: "G08"})
	if len(r) != 1 || r[0].Severity != "critical" {
		t.Fatalf("severity should be the worst firing instance: %+v", r)
	}
	s := d.DeviceStates()["gpu/GPU-3"]
	if s.Healthy || s.Pattern != "G08" || s.RouterAction != Deprioritize || s.Severity != "critical" {
		t.Fatalf("state %+v", s)
	}
	d.Notify(ctx, "e", resolvedAt(nvlinkDown, t0.Add(2*time.Minute)), resolvedAt(nvlinkErr, t0.Add(2*time.Minute)), resolvedAt(thermal, t0.Add(2*time.Minute)))
	if s := d.DeviceStates()["gpu/GPU-3"]; !s.Healthy {
		t.Fatalf("state after resolution %+v", s)
	}
}

func TestUnknownPatternUsesAnnotations(t *testing.T) {
	d, _ := newTestDiagnoser(t)
	d.Notify(context.Background(), "e", firingAt(alertSpec{"Custom", "Z01", "node", "info", "", ""}, t0))
	r := d.Reports(Filter{})[0]
	if r.Conclusion != "it broke" || !slices.Equal(r.Steps, []string{"do it"}) || r.RouterAction != Observe || r.Title != "Custom" {
		t.Fatalf("report %+v", r)
	}
	// Alerts of other rules (no pattern label) are ignored.
	a := firingAt(dbe, t0)
	a.Labels = labels.FromStrings(labels.AlertName, "Watchdog")
	d.Notify(context.Background(), "e", a)
	if n := len(d.Reports(Filter{})); n != 1 {
		t.Fatalf("%d reports", n)
	}
}

func TestHandlerFilters(t *testing.T) {
	d, _ := newTestDiagnoser(t)
	ctx := context.Background()
	kv := alertSpec{"EngineKVCacheSaturated", "E01", "engine", "warning", "node-a:8000", "kv"}
	d.Notify(ctx, "e", firingAt(dbe, t0), firingAt(dbeGPU2, t0), firingAt(kv, t0))
	d.Notify(ctx, "e", resolvedAt(dbeGPU2, t0.Add(time.Minute)))
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(q string) (int, []Report) {
		resp, err := http.Get(srv.URL + "/api/v1/diagnoses?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Status string   `json:"status"`
			Data   []Report `json:"data"`
			Error  string   `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if (resp.StatusCode == 200) != (body.Status == "success") {
			t.Fatalf("%s: status %d, body status %q", q, resp.StatusCode, body.Status)
		}
		return resp.StatusCode, body.Data
	}
	for q, want := range map[string][]string{
		"":                             {"gpu/GPU-1", "engine/node-a:8000", "gpu/GPU-2"},
		"state=firing":                 {"gpu/GPU-1", "engine/node-a:8000"},
		"state=resolved":               {"gpu/GPU-2"},
		"severity=critical":            {"gpu/GPU-1", "gpu/GPU-2"},
		"device=GPU-2":                 {"gpu/GPU-2"},
		"device=engine/node-a:8000":    {"engine/node-a:8000"},
		"node=node-a&pattern=E01":      {"engine/node-a:8000"},
		"node=elsewhere":               {},
		"component=gpu&state=firing":   {"gpu/GPU-1"},
		"severity=warning&device=nope": {},
	} {
		code, reps := get(q)
		var got []string
		for _, r := range reps {
			got = append(got, r.Device)
		}
		if code != 200 || !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%q: %d %v, want %v", q, code, got, want)
		}
	}
	for _, q := range []string{"state=pending", "severity=page"} {
		if code, _ := get(q); code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", q, code)
		}
	}
	resp, err := http.Post(srv.URL, "application/x-www-form-urlencoded", strings.NewReader("state=firing&component=engine"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}
