package hotseries

import (
	"strings"
	"sync"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// seriesState is what is kept of one hot series: its last two samples and the strings the
// message needs, copied out of the request once when the series is first seen. Its fields
// are guarded by its endpoint's mu.
type seriesState struct {
	ep      *endpoint
	uses    []use  // shared, read-only
	device  string // the group's device label value, "" for none
	model   string
	info    []ingest.Label // the group's info labels present on the series, copied
	lastT   int64
	prevT   int64 // 0: only one sample so far
	lastV   float64
	prevV   float64
	arrival int64 // unix nanoseconds of the last write that carried a sample
	dead    bool  // removed from its endpoint; the cache entry must be resolved again
}

// Endpoint statuses.
const (
	statusFresh   = "fresh"
	statusStale   = "stale"
	statusRemoved = "removed"
)

// endpoint is the state of one endpoint of a group.
type endpoint struct {
	g        *group
	key      string         // escaped endpoint label values, '.'-separated
	kvKey    string         // <group>.<key>
	identity []ingest.Label // endpoint label name → value, copied

	mu          sync.Mutex
	series      map[seriesKey]*seriesState
	lastArrival int64 // unix ns
	newestT     int64 // newest sample timestamp, ms
	dirty       bool  // samples arrived since the last fresh message
	dirtySince  int64 // unix ns of the first arrival not yet published
	queued      bool  // on the group's dirty list or its pending list
	status      string
	lastPub     int64 // unix ns of the last fresh message
	removed     bool
	subject     string // expanded templates for model subjModel
	topic       string
	subjModel   string
	subjSet     bool

	// The KV entry, owned by the group's publishing goroutine: when it was last written, with
	// which status, and whether a later fresh message skipped it (kvData holds that message).
	kvAt     int64
	kvStatus string
	kvBehind bool
	kvData   []byte
}

// cacheShards splits the series-membership cache to keep concurrent writers apart.
const cacheShards = 64

// seriesKey identifies a label set by its two independent hashes (ingest.Series.Hash and
// Hash2), as the window's caches do.
type seriesKey struct{ h, h2 uint64 }

func keyOf(s *ingest.Series) seriesKey { return seriesKey{s.Hash, s.Hash2} }

// cacheEntry is what a series feeds: one state per group it belongs to. An entry is never
// modified once stored; noEntry marks a series that feeds nothing.
type cacheEntry struct {
	states []*seriesState
}

var noEntry = &cacheEntry{}

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]cacheSlot // by Hash: a uint64 key keeps lookups on the fast map path
	_  [40]byte             // keep shards on separate cache lines
}

// cacheSlot is a cached entry and the second hash that confirms it is this series'.
type cacheSlot struct {
	h2 uint64
	e  *cacheEntry
}

// seriesCache maps a series' key to its cacheEntry, bounded: a shard that reaches its share
// of the bound is emptied and filled again from new writes. Two series with the same Hash
// (and different Hash2) take turns in one slot; both stay correct, only slower.
type seriesCache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

func newSeriesCache(max int) *seriesCache {
	c := &seriesCache{perShard: max / cacheShards}
	if c.perShard < 16 {
		c.perShard = 16
	}
	for i := range c.shards {
		c.shards[i].m = map[uint64]cacheSlot{}
	}
	return c
}

func (c *seriesCache) get(k seriesKey) *cacheEntry {
	s := &c.shards[k.h>>58]
	s.mu.RLock()
	slot := s.m[k.h]
	s.mu.RUnlock()
	if slot.h2 != k.h2 {
		return nil
	}
	return slot.e
}

// put stores e and reports how many entries were evicted to make room.
func (c *seriesCache) put(k seriesKey, e *cacheEntry) (evicted int) {
	s := &c.shards[k.h>>58]
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		if _, ok := s.m[k.h]; !ok {
			evicted = len(s.m)
			clear(s.m)
		}
	}
	s.m[k.h] = cacheSlot{h2: k.h2, e: e}
	s.mu.Unlock()
	return evicted
}

func (c *seriesCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// dropReason is why a sample or message was not published.
type dropReason int

const (
	dropEndpointLimit dropReason = iota
	dropSeriesLimit
	dropNoEndpointLabels
	dropNATSBuffer
	dropNATSError
	dropZMQQueue
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"endpoint_limit", "series_limit", "missing_endpoint_labels", "nats_reconnect_buffer_full", "nats_error", "zmq_queue_full",
}

// resolve finds or creates the states of a series in every group it belongs to. It copies
// every string it keeps. A nil result means the series feeds nothing right now.
func (p *Publisher) resolve(s *ingest.Series, now int64) *cacheEntry {
	var states []*seriesState
	cacheable := true
	for _, g := range p.groups {
		uses := g.uses(s.Labels)
		if uses == nil {
			continue
		}
		key, ok := g.endpointKey(s.Labels)
		if !ok {
			p.drop(dropNoEndpointLabels, 1)
			continue
		}
		st, reason := p.seriesIn(g, key, s, uses, now)
		if st == nil {
			// Over a limit: not cached, so it joins once there is room.
			p.drop(reason, 1)
			cacheable = false
			continue
		}
		states = append(states, st)
	}
	if len(states) == 0 {
		if !cacheable {
			return nil
		}
		return noEntry
	}
	return &cacheEntry{states: states}
}

// seriesIn returns the state of series s in endpoint key of g, creating both as needed.
func (p *Publisher) seriesIn(g *group, key string, s *ingest.Series, uses []use, now int64) (*seriesState, dropReason) {
	for range 3 { // an endpoint removed between the two locks is looked up again
		g.mu.Lock()
		ep := g.endpoints[key]
		if ep == nil {
			if len(g.endpoints) >= p.maxEndpoints {
				g.mu.Unlock()
				return nil, dropEndpointLimit
			}
			ep = newEndpoint(g, key, s.Labels, now)
			g.endpoints[ep.key] = ep
			g.m.endpoints.Set(float64(len(g.endpoints)))
		}
		g.mu.Unlock()

		ep.mu.Lock()
		if ep.removed {
			ep.mu.Unlock()
			continue
		}
		st := ep.series[keyOf(s)]
		if st == nil {
			if len(ep.series) >= p.maxSeriesPerEndpoint {
				ep.mu.Unlock()
				return nil, dropSeriesLimit
			}
			st = newSeriesState(g, ep, s.Labels, uses)
			ep.series[keyOf(s)] = st
		}
		ep.mu.Unlock()
		return st, 0
	}
	return nil, dropEndpointLimit
}

func newEndpoint(g *group, key string, ls []ingest.Label, now int64) *endpoint {
	ep := &endpoint{
		g:           g,
		key:         strings.Clone(key),
		series:      map[seriesKey]*seriesState{},
		status:      statusFresh,
		lastArrival: now,
	}
	ep.kvKey = g.name + "." + ep.key
	for _, name := range g.endpointLabels {
		ep.identity = append(ep.identity, ingest.Label{Name: name, Value: strings.Clone(ingest.LabelValue(ls, name))})
	}
	return ep
}

func newSeriesState(g *group, ep *endpoint, ls []ingest.Label, uses []use) *seriesState {
	st := &seriesState{ep: ep, uses: uses}
	if g.deviceLabel != "" {
		st.device = strings.Clone(ingest.LabelValue(ls, g.deviceLabel))
	}
	if g.modelLabel != "" {
		st.model = strings.Clone(ingest.LabelValue(ls, g.modelLabel))
	}
	for _, name := range g.infoLabels {
		if v := ingest.LabelValue(ls, name); v != "" {
			st.info = append(st.info, ingest.Label{Name: name, Value: strings.Clone(v)})
		}
	}
	return st
}
