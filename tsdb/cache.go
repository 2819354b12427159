package tsdb

import (
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// seriesCache maps a request series to the head's series reference and label set, so that a
// known series is appended without building its labels or hashing them into the head's index
// again: the hot path of steady-state ingest.
//
// A series is identified by the 128 bits of its two ingest hashes (Series.Hash and Hash2, both
// computed once while decoding). Comparing two hashes
// instead of the label strings avoids reading the stored labels, which are cold in memory, for
// every sample; a false match would need both 64-bit hashes to collide at once. Entries follow
// the head: when the head drops a series on truncation it tells the cache (PostDeletion).
type seriesCache struct {
	stripes [cacheStripes]cacheStripe
}

const cacheStripes = 256

type cacheStripe struct {
	mu sync.RWMutex
	m  map[uint64]cacheEntry
	// overflow holds entries whose ingest hash collides with another series': rare.
	overflow map[uint64][]cacheEntry
}

type cacheEntry struct {
	h2   uint64
	ref  storage.SeriesRef
	lset labels.Labels
}

func (c *seriesCache) init() {
	for i := range c.stripes {
		c.stripes[i].m = make(map[uint64]cacheEntry)
	}
}

// get returns the cached reference and labels, or 0 and empty labels.
func (c *seriesCache) get(h1, h2 uint64) (storage.SeriesRef, labels.Labels) {
	s := &c.stripes[h1%cacheStripes]
	s.mu.RLock()
	e, ok := s.m[h1]
	if ok && e.h2 != h2 {
		ok = false
		for _, o := range s.overflow[h1] {
			if o.h2 == h2 {
				e, ok = o, true
				break
			}
		}
	}
	s.mu.RUnlock()
	if !ok {
		return 0, labels.EmptyLabels()
	}
	return e.ref, e.lset
}

func (c *seriesCache) put(h1, h2 uint64, ref storage.SeriesRef, lset labels.Labels) {
	s := &c.stripes[h1%cacheStripes]
	e := cacheEntry{h2: h2, ref: ref, lset: lset}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[h1]
	switch {
	case !ok:
		s.m[h1] = e
	case old.h2 == h2:
		s.m[h1] = e
	default:
		if s.overflow == nil {
			s.overflow = make(map[uint64][]cacheEntry)
		}
		for i, o := range s.overflow[h1] {
			if o.h2 == h2 {
				s.overflow[h1][i] = e
				return
			}
		}
		s.overflow[h1] = append(s.overflow[h1], e)
	}
}

// remove drops the entry of a series the head deleted.
func (c *seriesCache) remove(lset labels.Labels) {
	h1, h2 := hashLabelSet(lset)
	s := &c.stripes[h1%cacheStripes]
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[h1]; ok && e.h2 == h2 {
		delete(s.m, h1)
		// Promote a colliding entry, if any.
		if of := s.overflow[h1]; len(of) > 0 {
			s.m[h1] = of[0]
			if len(of) == 1 {
				delete(s.overflow, h1)
			} else {
				s.overflow[h1] = of[1:]
			}
		}
		return
	}
	of := s.overflow[h1]
	for i, o := range of {
		if o.h2 == h2 {
			of = append(of[:i], of[i+1:]...)
			if len(of) == 0 {
				delete(s.overflow, h1)
			} else {
				s.overflow[h1] = of
			}
			return
		}
	}
}

func (c *seriesCache) len() (n int) {
	for i := range c.stripes {
		s := &c.stripes[i]
		s.mu.RLock()
		n += len(s.m)
		for _, of := range s.overflow {
			n += len(of)
		}
		s.mu.RUnlock()
	}
	return n
}

// hashLabelSet computes a stored label set's identity as ingest computes it for a request.
func hashLabelSet(lset labels.Labels) (uint64, uint64) {
	var b []byte
	lset.Range(func(l labels.Label) {
		b = append(b, l.Name...)
		b = append(b, 0xff)
		b = append(b, l.Value...)
		b = append(b, 0xff)
	})
	return ingest.KeyHashes(b)
}

// seriesLifecycle enforces Options.MaxSeries when the head creates a series and keeps the
// cache in step when the head deletes series.
type seriesLifecycle struct{ w *Window }

func (l *seriesLifecycle) PreCreation(labels.Labels) error {
	return l.w.checkSeriesLimit()
}

func (*seriesLifecycle) PostCreation(labels.Labels) {}

func (l *seriesLifecycle) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	for _, lset := range deleted {
		l.w.cache.remove(lset)
	}
}
