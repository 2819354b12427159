package hotseries

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// SchemaVersion is the version of the message format (docs/hot-series.schema.json).
const SchemaVersion = 1

// outMessage is one encoded message on its way to the transports. Data is valid only during
// transport.send.
type outMessage struct {
	group   string
	subject string // NATS subject
	topic   string // ZeroMQ topic
	kvKey   string // key in the KV bucket
	removed bool   // delete the key instead of putting it
	// noKV: the endpoint's KV entry was written less than kv_update_interval ago; this
	// message goes out live only. kvOnly: the entry is being brought up to date with the
	// last message, which went out live before; nothing goes out live.
	noKV, kvOnly bool
	// live: the message is from an on-ingest group, whose subscribers wait for it; NATS
	// sends it on a connection of its own, not behind interval groups' rounds.
	live bool
	data []byte
}

// transport delivers messages. send must not block for long and must copy what it keeps; it
// reports whether the message went out (not dropped, and not skipped for want of a
// subscriber). close releases everything it holds. Implementations count their own drops.
type transport interface {
	name() string
	send(m *outMessage) bool
	close() error
}

// acc accumulates one source's series for one field (or one device of it).
type acc struct {
	n        int
	sum      float64
	min, max float64
	lastT    int64
	last     float64
	nonzero  int
	num, den float64
	denN     int
}

func (a *acc) add(v float64, t int64) {
	if a.n == 0 || v < a.min {
		a.min = v
	}
	if a.n == 0 || v > a.max {
		a.max = v
	}
	if a.n == 0 || t >= a.lastT {
		a.lastT, a.last = t, v
	}
	a.n++
	a.sum += v
	if v != 0 {
		a.nonzero++
	}
}

// value is the source's result under aggregation agg.
func (a *acc) value(kind sourceKind, agg string) (float64, bool) {
	if kind == kindRatio {
		if a.denN == 0 || a.den == 0 {
			return 0, false
		}
		return a.num / a.den, true
	}
	if a.n == 0 {
		return 0, false
	}
	switch agg {
	case AggMax:
		return a.max, true
	case AggMin:
		return a.min, true
	case AggAvg:
		return a.sum / float64(a.n), true
	case AggLast:
		return a.last, true
	case AggCount:
		return float64(a.n), true
	case AggAllZero:
		if a.nonzero == 0 {
			return 1, true
		}
		return 0, true
	}
	return a.sum, true
}

// scratch is the publishing goroutine's reusable memory for one group.
type scratch struct {
	accs    []acc
	devs    []string
	devIdx  map[string]int
	devAccs [][]acc
	vals    []float64
	has     []bool
	devVals [][]float64
	devHas  [][]bool
	info    []ingest.Label
	infoAt  []int64
	buf     []byte
	batch   []*endpoint
	pending []*endpoint // deferred by min_gap, in the order they were deferred
	nextDue int64       // unix ns when the first of pending is due
	all     []*endpoint
}

// runGroup publishes one group until ctx ends.
func (p *Publisher) runGroup(ctx context.Context, g *group) {
	sc := &scratch{devIdx: map[string]int{}}
	every := g.interval
	if g.onIngest {
		every = min(max(g.staleAfter/4, 25*time.Millisecond), time.Second)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	defer gap.Stop()
	var notify <-chan struct{}
	if g.onIngest {
		notify = g.notify
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stop:
			return
		case <-tick.C:
			now := p.now()
			if !g.onIngest {
				p.publishDirty(g, sc, now, false)
			}
			p.sweep(g, sc, now)
		case <-notify:
			if wait, ok := p.publishDirty(g, sc, p.now(), true); ok {
				gap.Reset(wait)
			}
		case <-gap.C:
			if wait, ok := p.publishDue(g, sc, p.now()); ok {
				gap.Reset(wait)
			}
		}
	}
}

// dueChunk is how many deferred endpoints publishDue publishes before going back to the
// select loop: a few hundred microseconds, so that endpoints written meanwhile (the freshest
// news a router waits for) do not wait behind a wave of deferred ones.
const dueChunk = 64

// publishDirty publishes the endpoints that received samples. With gapped, an endpoint
// published less than min_gap ago is deferred to sc.pending instead, for publishDue; the
// result is then how long until the first deferred endpoint is due, and whether there is one.
func (p *Publisher) publishDirty(g *group, sc *scratch, now time.Time, gapped bool) (time.Duration, bool) {
	g.dirtyMu.Lock()
	sc.batch = append(sc.batch[:0], g.dirty...)
	clear(g.dirty)
	g.dirty = g.dirty[:0]
	g.dirtyMu.Unlock()

	nowNS := now.UnixNano()
	for _, ep := range sc.batch {
		ep.mu.Lock()
		if ep.removed || !ep.dirty {
			ep.queued = false
			ep.mu.Unlock()
			continue
		}
		if gapped && ep.lastPub != 0 {
			if due := ep.lastPub + int64(g.minGap); due > nowNS {
				ep.mu.Unlock()
				if len(sc.pending) == 0 || due < sc.nextDue {
					sc.nextDue = due
				}
				sc.pending = append(sc.pending, ep) // still queued: writes do not list it again
				continue
			}
		}
		p.publishFresh(g, sc, ep, now, nowNS)
	}
	clear(sc.batch)
	if len(sc.pending) == 0 {
		return 0, false
	}
	return time.Duration(max(0, sc.nextDue-nowNS)), true
}

// publishDue publishes deferred endpoints whose min_gap has passed, at most dueChunk of them,
// and keeps the rest. It reports when to call it again: at once when due ones are left,
// otherwise when the next one is due.
func (p *Publisher) publishDue(g *group, sc *scratch, now time.Time) (time.Duration, bool) {
	nowNS := now.UnixNano()
	kept, published := sc.pending[:0], 0
	sc.nextDue = 0
	for _, ep := range sc.pending {
		ep.mu.Lock()
		switch {
		case ep.removed || !ep.dirty:
			ep.queued = false
			ep.mu.Unlock()
			continue
		case ep.lastPub+int64(g.minGap) > nowNS || published == dueChunk:
			due := ep.lastPub + int64(g.minGap)
			ep.mu.Unlock()
			if len(kept) == 0 || due < sc.nextDue {
				sc.nextDue = due
			}
			kept = append(kept, ep)
			continue
		}
		p.publishFresh(g, sc, ep, now, nowNS)
		published++
	}
	clear(sc.pending[len(kept):])
	sc.pending = kept
	if len(kept) == 0 {
		return 0, false
	}
	return time.Duration(max(0, sc.nextDue-nowNS)), true
}

// publishFresh publishes ep, locked by the caller, as a fresh message and unlocks it.
func (p *Publisher) publishFresh(g *group, sc *scratch, ep *endpoint, now time.Time, nowNS int64) {
	latency := time.Duration(nowNS - ep.dirtySince)
	ep.dirty = false
	ep.queued = false
	ep.lastPub = nowNS
	ep.status = statusFresh
	m := p.encode(g, sc, ep, now, statusFresh)
	ep.mu.Unlock()
	p.sendAll(&m)
	g.m.latency.Observe(latency.Seconds())
}

// sweep publishes endpoints that fell silent as stale, and removes those silent for longer.
func (p *Publisher) sweep(g *group, sc *scratch, now time.Time) {
	nowNS := now.UnixNano()
	g.mu.RLock()
	sc.all = sc.all[:0]
	for _, ep := range g.endpoints {
		sc.all = append(sc.all, ep)
	}
	g.mu.RUnlock()
	var gone []*endpoint
	for _, ep := range sc.all {
		ep.mu.Lock()
		silent := time.Duration(nowNS - ep.lastArrival)
		switch {
		case silent > g.removedAfter:
			gone = append(gone, ep)
		case silent > g.staleAfter && ep.status == statusFresh:
			ep.status = statusStale
			m := p.encode(g, sc, ep, now, statusStale)
			ep.mu.Unlock()
			p.sendAll(&m)
			continue
		default:
			// Forget series silent for removed_after within a live endpoint.
			for h, st := range ep.series {
				if nowNS-st.arrival > int64(g.removedAfter) {
					st.dead = true
					delete(ep.series, h)
				}
			}
			if m, ok := p.kvCatchUp(g, ep, nowNS); ok {
				ep.mu.Unlock()
				p.sendAll(&m) // m.data is ep.kvData, written only on this goroutine
				continue
			}
		}
		ep.mu.Unlock()
	}
	if len(gone) == 0 {
		clear(sc.all)
		return
	}
	g.mu.Lock()
	for _, ep := range gone {
		ep.mu.Lock()
		if time.Duration(nowNS-ep.lastArrival) <= g.removedAfter { // written to meanwhile
			ep.mu.Unlock()
			continue
		}
		ep.removed = true
		for _, st := range ep.series {
			st.dead = true
		}
		delete(g.endpoints, ep.key)
		m := p.encode(g, sc, ep, now, statusRemoved)
		ep.mu.Unlock()
		p.sendAll(&m)
	}
	g.m.endpoints.Set(float64(len(g.endpoints)))
	g.mu.Unlock()
	clear(sc.all)
}

func (p *Publisher) sendAll(m *outMessage) {
	for i, t := range p.transports {
		if t.send(m) && !m.kvOnly {
			p.m.published[i].WithLabelValues(m.group).Inc()
		}
	}
}

// kvCatchUp returns the message that brings ep's KV entry up to date, when a fresh message
// skipped it and kv_update_interval has passed since the entry was written. ep.mu is held.
func (p *Publisher) kvCatchUp(g *group, ep *endpoint, nowNS int64) (outMessage, bool) {
	if !ep.kvBehind || nowNS-ep.kvAt < p.kvEvery {
		return outMessage{}, false
	}
	ep.kvAt, ep.kvBehind = nowNS, false
	return outMessage{group: g.name, kvKey: ep.kvKey, kvOnly: true, data: ep.kvData}, true
}

// encode computes ep's fields and encodes its message into sc.buf. ep.mu is held.
func (p *Publisher) encode(g *group, sc *scratch, ep *endpoint, now time.Time, status string) outMessage {
	g.seq++
	model := ""
	nInfo := 0
	if status != statusRemoved {
		model, nInfo = p.compute(g, sc, ep, now, status == statusStale)
	}
	if !ep.subjSet || ep.subjModel != model {
		ep.subject = g.expand(g.subject, ep.key, model)
		ep.topic = g.expand(g.topic, ep.key, model)
		ep.subjModel = model
		ep.subjSet = true
	}

	b := sc.buf[:0]
	b = append(b, `{"schema_version":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"group":`...)
	b = appendString(b, g.name)
	b = append(b, `,"key":`...)
	b = appendString(b, ep.kvKey)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","publisher":"`...)
	b = append(b, p.id...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, g.seq, 10)
	b = append(b, `,"endpoint":{`...)
	for i, l := range ep.identity {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, l.Name)
		b = append(b, ':')
		b = appendString(b, l.Value)
	}
	b = append(b, '}')
	if model != "" {
		b = append(b, `,"model":`...)
		b = appendString(b, model)
	}
	if nInfo > 0 {
		b = append(b, `,"labels":{`...)
		first := true
		for _, l := range sc.info[:nInfo] {
			if l.Value == "" {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, l.Name)
			b = append(b, ':')
			b = appendString(b, l.Value)
		}
		b = append(b, '}')
	}
	if g.annotated && status != statusRemoved {
		id := make(map[string]string, len(ep.identity))
		for _, l := range ep.identity {
			id[l.Name] = l.Value
		}
		if ann := p.annotate(g.name, id); len(ann) > 0 {
			keys := make([]string, 0, len(ann))
			for k := range ann {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b = append(b, `,"annotations":{`...)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = append(b, ':')
				b = appendString(b, ann[k])
			}
			b = append(b, '}')
		}
	}
	b = append(b, `,"metrics":{`...)
	if status != statusRemoved {
		b = appendFields(b, g, sc.vals, sc.has)
	}
	b = append(b, '}')
	if status != statusRemoved && len(sc.devs) > 0 {
		b = append(b, `,"devices":{`...)
		for i, d := range sc.devs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, d)
			b = append(b, `:{`...)
			b = appendFields(b, g, sc.devVals[i], sc.devHas[i])
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if status != statusRemoved {
		first := true
		for i, f := range g.fields {
			if sc.has[i] {
				continue
			}
			if first {
				b = append(b, `,"missing":[`...)
				first = false
			} else {
				b = append(b, ',')
			}
			b = appendString(b, f.name)
		}
		if !first {
			b = append(b, ']')
		}
	}
	b = append(b, `,"sample_timestamp":`...)
	b = strconv.AppendInt(b, ep.newestT, 10)
	b = append(b, `,"publish_timestamp":`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, '}')
	sc.buf = b
	m := outMessage{group: g.name, subject: ep.subject, topic: ep.topic, kvKey: ep.kvKey, removed: status == statusRemoved,
		live: g.onIngest, data: b}
	// A fresh message following a fresh one within kv_update_interval skips the KV entry and
	// leaves a copy for sweep to write later; any change of status is written at once.
	nowNS := now.UnixNano()
	if status == statusFresh && ep.kvStatus == statusFresh && nowNS-ep.kvAt < p.kvEvery {
		m.noKV = true
		ep.kvBehind = true
		ep.kvData = append(ep.kvData[:0], b...)
	} else {
		ep.kvAt, ep.kvStatus, ep.kvBehind = nowNS, status, false
	}
	return m
}

func appendFields(b []byte, g *group, vals []float64, has []bool) []byte {
	first := true
	for i, f := range g.fields {
		if !has[i] {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, f.name)
		b = append(b, ':')
		b = strconv.AppendFloat(b, vals[i], 'g', -1, 64)
	}
	return b
}

// compute fills sc.vals/sc.has (and the per-device ones) for ep and returns its model and
// the number of info labels in sc.info. With all, series silent for stale_after count too
// (a stale message carries the last known values). ep.mu is held.
func (p *Publisher) compute(g *group, sc *scratch, ep *endpoint, now time.Time, all bool) (string, int) {
	nf, ns := len(g.fields), len(g.sources)
	sc.accs = resize(sc.accs, ns)
	clear(sc.accs)
	sc.vals = resize(sc.vals, nf)
	sc.has = resize(sc.has, nf)
	clear(sc.has)
	sc.devs = sc.devs[:0]
	clear(sc.devIdx)
	sc.info = sc.info[:0]
	sc.infoAt = sc.infoAt[:0]
	for range g.infoLabels {
		sc.info = append(sc.info, ingest.Label{})
		sc.infoAt = append(sc.infoAt, -1)
	}
	model := ""
	var modelAt int64 = -1
	cutoff := now.UnixNano() - int64(g.staleAfter)

	for _, st := range ep.series {
		if st.arrival == 0 || (!all && st.arrival < cutoff) {
			continue
		}
		if st.model != "" && st.arrival > modelAt {
			model, modelAt = st.model, st.arrival
		}
		for _, l := range st.info {
			i := slices.Index(g.infoLabels, l.Name)
			if st.arrival > sc.infoAt[i] {
				sc.info[i], sc.infoAt[i] = l, st.arrival
			}
		}
		var dev []acc
		for _, u := range st.uses {
			src := g.sources[u.source]
			v, ok := seriesValue(st, u.role, src.counters)
			if !ok {
				continue
			}
			addTo(&sc.accs[u.source], u.role, v, st.lastT)
			if st.device == "" || !g.fields[u.field].perDevice {
				continue
			}
			if dev == nil {
				dev = sc.device(st.device, ns)
			}
			addTo(&dev[u.source], u.role, v, st.lastT)
		}
	}
	fieldValues(g, sc.accs, sc.vals, sc.has, false)
	if len(sc.devs) > 0 {
		// Devices in a stable order.
		order := make([]int, len(sc.devs))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return compareDevice(sc.devs[a], sc.devs[b]) })
		sortedDevs := make([]string, len(order))
		sortedAccs := make([][]acc, len(order))
		for i, o := range order {
			sortedDevs[i], sortedAccs[i] = sc.devs[o], sc.devAccs[o]
		}
		copy(sc.devs, sortedDevs)
		copy(sc.devAccs, sortedAccs)
		for len(sc.devVals) < len(sc.devs) {
			sc.devVals = append(sc.devVals, nil)
			sc.devHas = append(sc.devHas, nil)
		}
		for i := range sc.devs {
			sc.devVals[i] = resize(sc.devVals[i], nf)
			sc.devHas[i] = resize(sc.devHas[i], nf)
			clear(sc.devHas[i])
			fieldValues(g, sc.devAccs[i], sc.devVals[i], sc.devHas[i], true)
		}
	}
	n := 0
	for i := range sc.info {
		if sc.infoAt[i] >= 0 {
			n = len(sc.info)
		}
	}
	return model, n
}

func addTo(a *acc, r role, v float64, t int64) {
	switch r {
	case roleNum:
		a.num += v
	case roleDen:
		a.den += v
		a.denN++
	default:
		a.add(v, t)
	}
}

// device returns the accumulators of device d, created empty on first use.
func (sc *scratch) device(d string, ns int) []acc {
	if i, ok := sc.devIdx[d]; ok {
		return sc.devAccs[i]
	}
	i := len(sc.devs)
	sc.devIdx[d] = i
	sc.devs = append(sc.devs, d)
	if len(sc.devAccs) <= i {
		sc.devAccs = append(sc.devAccs, nil)
	}
	sc.devAccs[i] = resize(sc.devAccs[i], ns)
	clear(sc.devAccs[i])
	return sc.devAccs[i]
}

// fieldValues turns accumulators into field values: the first source with data wins, then
// subtractions. With perDevice only per-device fields are filled.
func fieldValues(g *group, accs []acc, vals []float64, has []bool, perDevice bool) {
	for i, f := range g.fields {
		if perDevice && !f.perDevice {
			continue
		}
		for _, si := range f.sources {
			if v, ok := accs[si].value(g.sources[si].kind, f.agg); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				vals[i], has[i] = v, true
				break
			}
		}
	}
	for i, f := range g.fields {
		if f.subtract < 0 || !has[i] {
			continue
		}
		if !has[f.subtract] {
			has[i] = false
			continue
		}
		vals[i] = max(0, vals[i]-vals[f.subtract])
	}
}

// compareDevice orders numeric device ids numerically, others as strings.
func compareDevice(a, b string) int {
	ai, aerr := strconv.Atoi(a)
	bi, berr := strconv.Atoi(b)
	if aerr == nil && berr == nil {
		return cmp.Compare(ai, bi)
	}
	return strings.Compare(a, b)
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
