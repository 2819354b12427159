package diagnosis

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"

	"github.com/eagle-eye-ai/eagle-eye/tsdb"
)

const catalogPath = "../rules/catalog.yaml"

func ruleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("../rules/*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("rule files: %v", err)
	}
	return files
}

func loadCatalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := LoadCatalog(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// harness evaluates every rule file over a real window with synthetic time: the rules manager's
// groups are loaded as the manager loads them and evaluated at explicit timestamps, with the
// diagnoser as the NotifyFunc.
type harness struct {
	w      *tsdb.Window
	d      *Diagnoser
	groups []*rules.Group
	start  time.Time
	now    time.Time
	pub    *fakePublisher
	reg    *prometheus.Registry
}

type fakePublisher struct {
	mu       sync.Mutex
	subjects []string
	payloads [][]byte
}

func (p *fakePublisher) PublishDiagnosis(_ context.Context, subject string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subjects = append(p.subjects, subject)
	p.payloads = append(p.payloads, append([]byte(nil), payload...))
	return nil
}

func newHarness(t testing.TB, interval, window time.Duration) *harness {
	t.Helper()
	h := &harness{start: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), pub: &fakePublisher{}, reg: prometheus.NewRegistry()}
	h.now = h.start
	clock := func() time.Time { return h.now }
	w, err := tsdb.New(tsdb.Options{Window: window, Dir: t.TempDir(), MaxExemplars: -1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	h.w = w
	h.d, err = New(Options{Catalog: loadCatalog(t), Queryable: w, Publisher: h.pub, Registerer: h.reg, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{
		Logger: slog.New(slog.DiscardHandler), MaxSamples: 50000000, Timeout: time.Minute,
		LookbackDelta: 5 * time.Minute, EnableAtModifier: true, EnableNegativeOffset: true,
	})
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(engine, w),
		NotifyFunc:   h.d.Notify,
		Context:      context.Background(),
		AppendableV2: w,
		Queryable:    w,
		Logger:       slog.New(slog.DiscardHandler),
		Registerer:   prometheus.NewRegistry(),
	})
	groups, errs := m.LoadGroups(interval, labels.EmptyLabels(), "", nil, false, ruleFiles(t)...)
	if len(errs) > 0 {
		t.Fatalf("load rules: %v", errs)
	}
	for _, g := range groups {
		h.groups = append(h.groups, g)
	}
	// Recording rules first, so that the anomaly rules read this evaluation's baselines.
	slices.SortFunc(h.groups, func(a, b *rules.Group) int {
		ra, rb := a.Name() == "recording", b.Name() == "recording"
		if ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name(), b.Name())
	})
	return h
}

// eval evaluates every group at start+el, then delivers queued events to the publisher.
func (h *harness) eval(el time.Duration) {
	ts := h.start.Add(el)
	h.now = ts
	for _, g := range h.groups {
		g.Eval(context.Background(), ts)
	}
	h.flush()
}

func (h *harness) flush() {
	for {
		select {
		case ev := <-h.d.pub:
			h.d.publish(context.Background(), ev)
		default:
			return
		}
	}
}

// ruleErrors lists the rules whose last evaluation failed, as "group/rule: error". A rule
// that fails (a selector whose series clash once a function drops their names, say) fires
// nothing, so a test that only counts alerts would not notice.
func (h *harness) ruleErrors() []string {
	var out []string
	for _, g := range h.groups {
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil {
				out = append(out, g.Name()+"/"+r.Name()+": "+err.Error())
			}
		}
	}
	return out
}

// firing lists the alerts in the firing state, as "alertname{signal}".
func (h *harness) firing() []string {
	var out []string
	for _, g := range h.groups {
		for _, r := range g.AlertingRules() {
			for _, a := range r.ActiveAlerts() {
				if a.State == rules.StateFiring {
					out = append(out, a.Labels.Get(labels.AlertName)+"{"+a.Labels.Get("signal")+" "+a.Labels.Get("UUID")+a.Labels.Get("instance")+"}")
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
