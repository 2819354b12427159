package diagnosis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Publisher sends a diagnosis event. It is called from Run's goroutine only, one call at a time;
// payload is a JSON Report and is not used after the call returns. The subject is
// eagle_eye.diagnosis.<severity>.
type Publisher interface {
	PublishDiagnosis(ctx context.Context, subject string, payload []byte) error
}

// Options configures a Diagnoser. Zero values mean the documented defaults.
type Options struct {
	// Catalog maps patterns to advice. Required; replace it later with SetCatalog.
	Catalog *Catalog
	// Queryable is read for the device's info series and its engines (the window).
	Queryable storage.Queryable
	// Publisher receives every state change; nil publishes nothing.
	Publisher Publisher
	// FlapHold: a report that resolves and fires again within this time is re-opened instead
	// of a new one being created. Default 10m; negative disables (every re-fire is a new report).
	FlapHold time.Duration
	// Retention: how long resolved reports are kept. Default 24h.
	Retention time.Duration
	// Lookback: how far back info series are searched. Default 30m (the window).
	Lookback time.Duration
	// PublishQueue bounds the events waiting for the Publisher; beyond it events are dropped
	// and counted (eagle_eye_diagnosis_publish_dropped_total). Default 1024.
	PublishQueue int
	// SweepInterval: how often Run expires silent alerts and drops old reports. Default 30s.
	SweepInterval time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Diagnoser turns alerts from the rules manager into reports. See the package documentation.
type Diagnoser struct {
	opts    Options
	logger  *slog.Logger
	metrics *metrics
	catalog atomic.Pointer[Catalog]
	pub     chan event

	mu       sync.Mutex
	byDevice map[string]map[string]*report // device key → pattern → latest report
	closed   []*report                     // older resolved reports, until Retention passes
	unknown  map[string]bool               // patterns missing from the catalog, logged once
	// folded holds the alert instances taken into another pattern's report (catalog
	// suppressed_by), by fingerprint, until they resolve: an effect that outlasts its cause
	// by a few evaluations (a preemption rate over 5m after the KV cache recovered) does not
	// open a report of its own.
	folded map[uint64]time.Time // fingerprint → valid until
}

type report struct {
	Report
	instances map[uint64]*instance
}

type instance struct {
	ev         Evidence
	severity   string
	validUntil time.Time
}

type event struct {
	subject string
	payload []byte
}

// New validates opts and returns a Diagnoser. It starts nothing; call Run.
func New(opts Options) (*Diagnoser, error) {
	if opts.Catalog == nil {
		return nil, errors.New("diagnosis: a catalog is required")
	}
	if opts.FlapHold == 0 {
		opts.FlapHold = 10 * time.Minute
	}
	if opts.Retention == 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.Retention < 0 {
		return nil, fmt.Errorf("diagnosis: retention %s must not be negative", opts.Retention)
	}
	if opts.Lookback <= 0 {
		opts.Lookback = 30 * time.Minute
	}
	if opts.PublishQueue <= 0 {
		opts.PublishQueue = 1024
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	d := &Diagnoser{
		opts:     opts,
		logger:   opts.Logger.With("component", "diagnosis"),
		metrics:  newMetrics(opts.Registerer),
		byDevice: map[string]map[string]*report{},
		unknown:  map[string]bool{},
		folded:   map[uint64]time.Time{},
	}
	if opts.Publisher != nil {
		d.pub = make(chan event, opts.PublishQueue)
	}
	d.catalog.Store(opts.Catalog)
	return d, nil
}

// SetCatalog replaces the catalog (on reload). Existing reports keep their advice; reports
// created or re-opened afterwards use the new catalog.
func (d *Diagnoser) SetCatalog(c *Catalog) {
	if c != nil {
		d.catalog.Store(c)
	}
}

// Run publishes events and, every SweepInterval, resolves reports whose alerts stopped being
// sent (a rule removed by a reload) and drops resolved reports older than Retention. It returns
// when ctx ends, after trying the events still queued once.
func (d *Diagnoser) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.drain()
			return nil
		case <-t.C:
			d.sweep(d.opts.Now())
		case ev := <-d.pub:
			d.publish(ctx, ev)
		}
	}
}

func (d *Diagnoser) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		select {
		case ev := <-d.pub:
			d.publish(ctx, ev)
		default:
			return
		}
	}
}

func (d *Diagnoser) publish(ctx context.Context, ev event) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.opts.Publisher.PublishDiagnosis(pctx, ev.subject, ev.payload); err != nil {
		d.metrics.publishFailures.Inc()
		d.logger.Warn("publish diagnosis", "subject", ev.subject, "err", err)
		return
	}
	d.metrics.published.Inc()
}

// Notify takes the alerts the rules manager sends after each evaluation of an alerting rule;
// it has the signature of rules.NotifyFunc. Alerts without a `pattern` label are ignored.
// It is safe for concurrent use (rule groups evaluate concurrently).
func (d *Diagnoser) Notify(ctx context.Context, expr string, alerts ...*rules.Alert) {
	if len(alerts) == 0 {
		return
	}
	cat := d.catalog.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	// Firing alerts first: an instance replaced by another in the same evaluation must not
	// resolve the report in between.
	for _, pass := range []bool{true, false} {
		for _, a := range alerts {
			if a.Labels.Get("pattern") == "" {
				continue
			}
			firing := a.State == rules.StateFiring
			if firing != pass || (!firing && a.ResolvedAt.IsZero()) {
				continue
			}
			if firing {
				d.fire(ctx, cat, expr, a)
			} else {
				d.resolve(a)
			}
		}
	}
}

func (d *Diagnoser) fire(ctx context.Context, cat *Catalog, expr string, a *rules.Alert) {
	pattern := a.Labels.Get("pattern")
	component := a.Labels.Get("component")
	dev, node := deviceKey(component, a.Labels)
	ts := a.LastSentAt
	if ts.IsZero() {
		ts = d.opts.Now()
	}
	fp := a.Labels.Hash()
	ev := evidence(expr, a, ts)

	if _, ok := d.folded[fp]; ok {
		d.folded[fp] = a.ValidUntil
		return
	}
	// A firing pattern that explains this one takes it in.
	if sup := d.suppressor(cat, pattern, dev); sup != nil {
		d.folded[fp] = a.ValidUntil
		if !slices.ContainsFunc(sup.Related, func(r Related) bool { return r.Pattern == pattern && r.Signal == ev.Signal }) {
			sup.Related = append(sup.Related, Related{Pattern: pattern, Alert: ev.Alert, Signal: ev.Signal, FirstSeen: ts})
			d.metrics.suppressed.WithLabelValues(pattern).Inc()
		}
		return
	}

	devReports := d.byDevice[dev]
	r := devReports[pattern]
	if r != nil && r.State == StateResolved && (d.opts.FlapHold < 0 || ts.Sub(*r.ResolvedAt) > d.opts.FlapHold) {
		d.closed = append(d.closed, r)
		r = nil
	}
	changed := false
	switch {
	case r == nil:
		r = d.newReport(ctx, cat, a, pattern, component, dev, node, ts)
		if devReports == nil {
			devReports = map[string]*report{}
			d.byDevice[dev] = devReports
		}
		devReports[pattern] = r
		changed = true
		d.supersede(cat, r, ts)
	case r.State == StateResolved:
		r.State, r.ResolvedAt = StateFiring, nil
		r.Flaps++
		changed = true
	}
	oldSeverity := r.Severity
	in := r.instances[fp]
	if in == nil {
		in = &instance{}
		r.instances[fp] = in
	}
	in.ev, in.severity = ev, a.Labels.Get("severity")
	in.validUntil = a.ValidUntil
	r.LastSeen = ts
	r.Severity = r.worstSeverity()
	if changed || oldSeverity != r.Severity {
		if oldSeverity != r.Severity && !changed {
			d.metrics.active.DeleteLabelValues(r.Pattern, r.Component, oldSeverity, r.Node, r.Device)
		}
		d.metrics.active.WithLabelValues(r.Pattern, r.Component, r.Severity, r.Node, r.Device).Set(1)
	}
	if changed {
		d.metrics.changes.WithLabelValues(StateFiring).Inc()
		d.emit(r)
	}
}

func (d *Diagnoser) resolve(a *rules.Alert) {
	if _, ok := d.folded[a.Labels.Hash()]; ok {
		delete(d.folded, a.Labels.Hash())
		return
	}
	pattern := a.Labels.Get("pattern")
	dev, _ := deviceKey(a.Labels.Get("component"), a.Labels)
	r := d.byDevice[dev][pattern]
	if r == nil || r.State != StateFiring {
		return
	}
	in := r.instances[a.Labels.Hash()]
	if in == nil || in.ev.State != StateFiring {
		return
	}
	in.ev.State, in.ev.Time = StateResolved, a.ResolvedAt
	d.maybeResolve(r, a.ResolvedAt)
}

// maybeResolve resolves r once none of its instances fires.
func (d *Diagnoser) maybeResolve(r *report, ts time.Time) {
	for _, in := range r.instances {
		if in.ev.State == StateFiring {
			return
		}
	}
	r.State = StateResolved
	r.ResolvedAt = &ts
	r.LastSeen = ts
	d.metrics.active.DeleteLabelValues(r.Pattern, r.Component, r.Severity, r.Node, r.Device)
	d.metrics.changes.WithLabelValues(StateResolved).Inc()
	d.emit(r)
}

// suppressor returns a firing report on dev whose pattern explains pattern.
func (d *Diagnoser) suppressor(cat *Catalog, pattern, dev string) *report {
	for _, s := range cat.suppressedBy(pattern) {
		if r := d.byDevice[dev][s]; r != nil && r.State == StateFiring {
			return r
		}
	}
	return nil
}

// supersede closes the reports on r's device that r's pattern explains, folding them into r.
// They leave the list of reports; one resolved event with superseded_by is published.
func (d *Diagnoser) supersede(cat *Catalog, r *report, ts time.Time) {
	for pattern, o := range d.byDevice[r.Device] {
		if o == r || o.State != StateFiring || !slices.Contains(cat.suppressedBy(pattern), r.Pattern) {
			continue
		}
		for fp, in := range o.instances {
			if in.ev.State == StateFiring {
				d.folded[fp] = in.validUntil
			}
			in.ev.State = StateResolved
		}
		r.Related = append(r.Related, Related{Pattern: o.Pattern, Alert: o.Title, FirstSeen: o.FirstSeen})
		o.State, o.ResolvedAt, o.SupersededBy = StateResolved, &ts, r.ID
		d.metrics.active.DeleteLabelValues(o.Pattern, o.Component, o.Severity, o.Node, o.Device)
		d.metrics.changes.WithLabelValues(StateResolved).Inc()
		d.emit(o)
		delete(d.byDevice[r.Device], pattern)
	}
}

func (d *Diagnoser) newReport(ctx context.Context, cat *Catalog, a *rules.Alert, pattern, component, dev, node string, ts time.Time) *report {
	id, engines := d.identify(ctx, component, a.Labels, ts)
	adv, ok := cat.Lookup(pattern, DeviceInfo{Model: id.Model, Driver: id.Driver, Firmware: id.Firmware})
	if !ok {
		if !d.unknown[pattern] {
			d.unknown[pattern] = true
			d.logger.Warn("pattern not in the catalog; using the rule's annotations", "pattern", pattern, "alert", a.Labels.Get(labels.AlertName))
		}
		adv = Advice{
			Pattern:      pattern,
			Title:        a.Labels.Get(labels.AlertName),
			Component:    component,
			Conclusion:   cmp.Or(a.Annotations.Get("description"), a.Annotations.Get("summary")),
			RouterAction: Observe,
		}
		if rb := a.Annotations.Get("runbook"); rb != "" {
			adv.Steps = []string{rb}
		}
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\xff%s\xff%d", pattern, dev, ts.UnixNano())
	return &report{
		Report: Report{
			ID:           fmt.Sprintf("%016x", h.Sum64()),
			Pattern:      pattern,
			Title:        adv.Title,
			Component:    component,
			Severity:     a.Labels.Get("severity"),
			State:        StateFiring,
			Node:         node,
			Device:       dev,
			Identity:     id,
			Engines:      engines,
			Conclusion:   adv.Conclusion,
			Steps:        adv.Steps,
			RouterAction: adv.RouterAction,
			Overrides:    adv.Overrides,
			FirstSeen:    ts,
			LastSeen:     ts,
		},
		instances: map[uint64]*instance{},
	}
}

func evidence(expr string, a *rules.Alert, ts time.Time) Evidence {
	lm := map[string]string{}
	a.Labels.Range(func(l labels.Label) {
		switch l.Name {
		case labels.AlertName, "pattern", "component", "severity", "signal":
		default:
			lm[l.Name] = l.Value
		}
	})
	return Evidence{
		Alert:     a.Labels.Get(labels.AlertName),
		Signal:    a.Labels.Get("signal"),
		Labels:    lm,
		Value:     a.Value,
		Threshold: a.Annotations.Get("threshold"),
		Summary:   a.Annotations.Get("summary"),
		Expr:      expr,
		ActiveAt:  a.ActiveAt,
		Time:      ts,
		State:     StateFiring,
	}
}

func (r *report) worstSeverity() string {
	worst := ""
	for _, in := range r.instances {
		if in.ev.State == StateFiring && severityRank(in.severity) > severityRank(worst) {
			worst = in.severity
		}
	}
	if worst == "" {
		return r.Severity
	}
	return worst
}

// snapshot copies the report for readers outside the lock.
func (r *report) snapshot() Report {
	out := r.Report
	out.Evidence = make([]Evidence, 0, len(r.instances))
	for _, in := range r.instances {
		ev := in.ev
		ev.Labels = maps.Clone(ev.Labels)
		out.Evidence = append(out.Evidence, ev)
	}
	slices.SortFunc(out.Evidence, func(a, b Evidence) int {
		if c := strings.Compare(a.Alert, b.Alert); c != 0 {
			return c
		}
		return strings.Compare(a.Signal, b.Signal)
	})
	out.Steps = slices.Clone(r.Steps)
	out.Engines = slices.Clone(r.Engines)
	out.Related = slices.Clone(r.Related)
	out.Overrides = slices.Clone(r.Overrides)
	if r.ResolvedAt != nil {
		t := *r.ResolvedAt
		out.ResolvedAt = &t
	}
	return out
}

// emit queues r's current state for the Publisher (under d.mu).
func (d *Diagnoser) emit(r *report) {
	if d.pub == nil {
		return
	}
	b, err := json.Marshal(r.snapshot())
	if err != nil {
		d.logger.Error("encode diagnosis", "err", err)
		return
	}
	sev := r.Severity
	if sev == "" {
		sev = "info"
	}
	select {
	case d.pub <- event{subject: "eagle_eye.diagnosis." + sev, payload: b}:
	default:
		d.metrics.publishDropped.Inc()
	}
}

// sweep resolves reports whose firing alerts were not sent again before their ValidUntil
// (the rule was removed, or the manager stopped) and forgets resolved reports older than
// Retention.
func (d *Diagnoser) sweep(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for dev, reps := range d.byDevice {
		for pattern, r := range reps {
			if r.State == StateFiring {
				expired := false
				for _, in := range r.instances {
					if in.ev.State == StateFiring && !in.validUntil.IsZero() && now.After(in.validUntil) {
						in.ev.State, in.ev.Time = StateResolved, in.validUntil
						expired = true
					}
				}
				if expired {
					d.maybeResolve(r, now)
				}
			}
			if r.State == StateResolved && now.Sub(*r.ResolvedAt) > d.opts.Retention {
				delete(reps, pattern)
			}
		}
		if len(reps) == 0 {
			delete(d.byDevice, dev)
		}
	}
	for fp, until := range d.folded {
		if !until.IsZero() && now.After(until) {
			delete(d.folded, fp)
		}
	}
	d.closed = slices.DeleteFunc(d.closed, func(r *report) bool { return now.Sub(*r.ResolvedAt) > d.opts.Retention })
}

// Reports returns the reports that pass f, firing first, then by severity, newest first.
func (d *Diagnoser) Reports(f Filter) []Report {
	d.mu.Lock()
	var out []Report
	add := func(r *report) {
		if f.match(r) {
			out = append(out, r.snapshot())
		}
	}
	for _, reps := range d.byDevice {
		for _, r := range reps {
			add(r)
		}
	}
	for _, r := range d.closed {
		add(r)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Report) int {
		if a.State != b.State {
			if a.State == StateFiring {
				return -1
			}
			return 1
		}
		if c := severityRank(b.Severity) - severityRank(a.Severity); c != 0 {
			return c
		}
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// DeviceStates returns the current state of every device that has a report (devices without
// one are healthy), keyed by device key (Report.Device). Engines on a device whose firing
// report asks to route away (unroutable or deprioritize) get an entry too, with Via naming the
// device, unless their own state is worse.
func (d *Diagnoser) DeviceStates() map[string]DeviceState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]DeviceState{}
	worse := func(a DeviceState, b DeviceState) bool { // a worse than b
		if a.Healthy != b.Healthy {
			return !a.Healthy
		}
		if a.RouterAction.Rank() != b.RouterAction.Rank() {
			return a.RouterAction.Rank() > b.RouterAction.Rank()
		}
		return severityRank(a.Severity) > severityRank(b.Severity)
	}
	put := func(key string, s DeviceState) {
		if cur, ok := out[key]; !ok || worse(s, cur) {
			out[key] = s
		}
	}
	for dev, reps := range d.byDevice {
		for _, r := range reps {
			if r.State != StateFiring {
				put(dev, DeviceState{Component: r.Component, Node: r.Node, Device: dev, Healthy: true})
				continue
			}
			s := DeviceState{
				Component: r.Component, Node: r.Node, Device: dev, Pattern: r.Pattern, Severity: r.Severity,
				RouterAction: r.RouterAction, ReportID: r.ID, Since: r.FirstSeen,
			}
			put(dev, s)
			if r.Component == "engine" || r.RouterAction.Rank() < Deprioritize.Rank() {
				continue
			}
			for _, e := range r.Engines {
				if e.Instance == "" {
					continue
				}
				es := s
				es.Component, es.Device, es.Via = "engine", "engine/"+e.Instance, dev
				put(es.Device, es)
			}
		}
	}
	return out
}
