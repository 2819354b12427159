package hotseries

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

type role uint8

const (
	roleValue role = iota // the newest value (metrics sources)
	roleRate              // per-second rate (rate sources)
	roleNum               // ratio numerator
	roleDen               // ratio denominator
)

// use says that a series of some metric feeds one source of one field.
type use struct {
	field  uint16
	source uint16 // index into the group's sources, across fields
	role   role
}

type sourceKind uint8

const (
	kindMetrics sourceKind = iota
	kindRate
	kindRatio
)

type source struct {
	kind     sourceKind
	counters bool
}

type field struct {
	name      string
	agg       string
	perDevice bool
	subtract  int   // index of the subtracted field, -1 for none
	sources   []int // indices into group.sources, in order of preference
}

// group is a compiled GroupConfig plus its endpoints.
//
// Lock order: mu, then an endpoint's mu. dirtyMu is never held with another lock.
type group struct {
	idx            int // in Publisher.groups
	name           string
	matchers       [][]*labels.Matcher // any of them; none: every series
	endpointLabels []string
	modelLabel     string
	infoLabels     []string
	deviceLabel    string
	byMetric       map[string][]use
	fields         []field // sorted by name
	sources        []source
	anyPerDevice   bool

	onIngest     bool
	interval     time.Duration
	minGap       time.Duration
	staleAfter   time.Duration
	removedAfter time.Duration
	subject      string // templates
	topic        string

	mu        sync.RWMutex
	endpoints map[string]*endpoint

	dirtyMu sync.Mutex
	dirty   []*endpoint
	notify  chan struct{} // capacity 1: "something is dirty"

	annotated bool // Publisher.annotate applies to this group

	seq uint64 // owned by the group's publishing goroutine
	m   groupMetrics
}

func compileGroup(gc GroupConfig) (*group, error) {
	g := &group{
		name:           gc.Name,
		endpointLabels: slices.Clone(gc.EndpointLabels),
		modelLabel:     gc.ModelLabel,
		infoLabels:     slices.Clone(gc.InfoLabels),
		deviceLabel:    gc.DeviceLabel,
		byMetric:       map[string][]use{},
		onIngest:       gc.Mode == ModeOnIngest,
		interval:       orDefault(gc.Interval, DefaultInterval),
		minGap:         orDefault(gc.MinGap, DefaultMinGap),
		staleAfter:     orDefault(gc.StaleAfter, DefaultStaleAfter),
		removedAfter:   orDefault(gc.RemovedAfter, DefaultRemovedAfter),
		subject:        gc.NATSSubject,
		topic:          gc.ZMQTopic,
		endpoints:      map[string]*endpoint{},
		notify:         make(chan struct{}, 1),
	}
	if gc.RemovedAfter == 0 && g.removedAfter <= g.staleAfter {
		g.removedAfter = 30 * g.staleAfter
	}
	if g.subject == "" {
		g.subject = DefaultSubject
	}
	if g.topic == "" {
		g.topic = g.subject
	}
	for _, s := range gc.Selectors {
		ms, err := parseSelector(s)
		if err != nil {
			return nil, fmt.Errorf("group %s: selector %q: %w", gc.Name, s, err)
		}
		g.matchers = append(g.matchers, ms)
	}
	names := sortedKeys(gc.Fields)
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	for fi, name := range names {
		fc := gc.Fields[name]
		f := field{name: name, agg: fc.Aggregate, perDevice: fc.PerDevice, subtract: -1}
		if f.agg == "" {
			f.agg = AggSum
		}
		if fc.Subtract != "" {
			f.subtract = index[fc.Subtract]
		}
		g.anyPerDevice = g.anyPerDevice || f.perDevice
		for _, sc := range fc.Sources {
			si := len(g.sources)
			f.sources = append(f.sources, si)
			add := func(metric string, r role) {
				u := use{field: uint16(fi), source: uint16(si), role: r}
				if !slices.Contains(g.byMetric[metric], u) {
					g.byMetric[metric] = append(g.byMetric[metric], u)
				}
			}
			switch {
			case len(sc.Metrics) > 0:
				g.sources = append(g.sources, source{kind: kindMetrics})
				for _, m := range sc.Metrics {
					add(m, roleValue)
				}
			case len(sc.Rate) > 0:
				g.sources = append(g.sources, source{kind: kindRate})
				for _, m := range sc.Rate {
					add(m, roleRate)
				}
			default:
				g.sources = append(g.sources, source{kind: kindRatio, counters: sc.Counters})
				add(sc.Ratio[0], roleNum)
				for _, m := range sc.Ratio[1:] {
					add(m, roleDen)
				}
			}
		}
		g.fields = append(g.fields, f)
	}
	if len(g.fields) > 1<<16 || len(g.sources) > 1<<16 {
		return nil, fmt.Errorf("group %s: too many fields or sources", gc.Name)
	}
	return g, nil
}

func orDefault(d model.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// uses returns what a series feeds in this group, or nil when it is not one of its series.
func (g *group) uses(ls []ingest.Label) []use {
	us := g.byMetric[ingest.LabelValue(ls, "__name__")]
	if us == nil {
		return nil
	}
	if len(g.matchers) == 0 {
		return us
	}
	for _, ms := range g.matchers {
		if matchAll(ms, ls) {
			return us
		}
	}
	return nil
}

func matchAll(ms []*labels.Matcher, ls []ingest.Label) bool {
	for _, m := range ms {
		if !m.Matches(ingest.LabelValue(ls, m.Name)) {
			return false
		}
	}
	return true
}

// endpointKey builds the key of the endpoint a series belongs to, and reports false when
// the series lacks one of the endpoint labels. Values are escaped into NATS-key-safe tokens.
func (g *group) endpointKey(ls []ingest.Label) (string, bool) {
	var b strings.Builder
	for i, name := range g.endpointLabels {
		v := ingest.LabelValue(ls, name)
		if v == "" {
			return "", false
		}
		if i > 0 {
			b.WriteByte('.')
		}
		escapeToken(&b, v)
	}
	return b.String(), true
}

// escapeToken writes v keeping [A-Za-z0-9_-] and writing any other byte as =XX, so distinct
// values stay distinct and the result is a valid NATS subject token and KV key part.
func escapeToken(b *strings.Builder, v string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}

func escape(v string) string {
	var b strings.Builder
	escapeToken(&b, v)
	return b.String()
}

// expand fills a subject or topic template for one endpoint.
func (g *group) expand(tmpl, key, model string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	m := "none"
	if model != "" {
		m = escape(model)
	}
	return strings.NewReplacer("{group}", g.name, "{endpoint}", key, "{model}", m).Replace(tmpl)
}

// parseSelector parses a PromQL series selector with Prometheus' default parser options.
func parseSelector(s string) ([]*labels.Matcher, error) {
	return parser.NewParser(parser.Options{}).ParseMetricSelector(s)
}

// hasOnIngest reports whether any group publishes on ingest.
func (p *Publisher) hasOnIngest() bool {
	for _, g := range p.groups {
		if g.onIngest {
			return true
		}
	}
	return false
}
