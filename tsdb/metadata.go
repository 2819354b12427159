package tsdb

import (
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// maxFamilies bounds the metadata store; families past it are not recorded.
const maxFamilies = 100000

// metadataStore keeps the newest metadata (type, help, unit) per metric family, as
// /api/v1/metadata serves it.
type metadataStore struct {
	mu sync.RWMutex
	m  map[string]metadata.Metadata
}

func (s *metadataStore) init() { s.m = make(map[string]metadata.Metadata) }

func (s *metadataStore) observeFamilies(fams []ingest.FamilyMetadata) {
	for _, f := range fams {
		s.set(f.Family, f.Metadata)
	}
}

func (s *metadataStore) observeSeries(ser *ingest.Series) {
	md := ser.Metadata
	if md.Type == "" && md.Help == "" && md.Unit == "" {
		return
	}
	if md.Type == model.MetricTypeUnknown && md.Help == "" && md.Unit == "" {
		return
	}
	for _, l := range ser.Labels {
		if l.Name == model.MetricNameLabel {
			s.set(familyName(l.Value, md.Type), md)
			return
		}
	}
}

func (s *metadataStore) set(family string, md metadata.Metadata) {
	s.mu.RLock()
	old, ok := s.m[family]
	s.mu.RUnlock()
	if ok && old == md {
		return
	}
	s.mu.Lock()
	if _, ok := s.m[family]; ok || len(s.m) < maxFamilies {
		s.m[strings.Clone(family)] = metadata.Metadata{
			Type: md.Type, Help: strings.Clone(md.Help), Unit: strings.Clone(md.Unit),
		}
	}
	s.mu.Unlock()
}

// familyName strips the suffixes that classic histograms and summaries add to their series.
func familyName(name string, typ model.MetricType) string {
	switch typ {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary:
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(name, suf) {
				return strings.TrimSuffix(name, suf)
			}
		}
	}
	return name
}

// Metadata returns metadata per family, as /api/v1/metadata answers: for one metric when
// metric is non-empty, for at most limit families when limit > 0.
func (w *Window) Metadata(metric string, limit int) map[string][]metadata.Metadata {
	s := &w.meta
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string][]metadata.Metadata)
	if metric != "" {
		if md, ok := s.m[metric]; ok {
			out[metric] = []metadata.Metadata{md}
		}
		return out
	}
	for fam, md := range s.m {
		if limit > 0 && len(out) >= limit {
			break
		}
		out[fam] = []metadata.Metadata{md}
	}
	return out
}
