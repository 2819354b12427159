package forward

import (
	"sync"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// Probes send RW 2.0 and most long-term stores take RW 1.0, so the commonest write cannot be
// passed through as it arrived. It can still go through the relay: the write is encoded once,
// at Write, straight from the decoded request into the RW 1.0 body the destination takes, and
// queued as a pass-through record. That skips what makes the shards' path expensive (the
// per-series definition lookups when queueing and sending, decoding the record again) and
// leaves the protobuf and snappy encoding. Writes with histograms or exemplars keep the
// shards' path.

// transcoder holds the scratch buffers of one transcoding.
type transcoder struct {
	enc  wireEncoder // for appendV1Metadata's scratch
	raw  []byte
	md   []byte
	out  []byte
	seen map[string]struct{}
}

var transcoders = sync.Pool{New: func() any { return &transcoder{seen: map[string]struct{}{}} }}

// canTranscode reports whether req can be queued as an RW 1.0 body for this destination: it
// arrived intact as RW 2.0, the destination takes RW 1.0 and changes nothing in it, and it
// carries only float samples (and metadata).
func (p *processor) canTranscode(req *ingest.Request, st ingest.Stats) bool {
	return req.Body != nil && req.Version == ingest.V2 && p.proto == ingest.V1 &&
		len(p.relabel) == 0 && p.ds == nil && st.Histograms == 0 && st.Exemplars == 0
}

// writeTranscoded appends req, encoded as an RW 1.0 request, as a pass-through record.
func (p *processor) writeTranscoded(req *ingest.Request, st ingest.Stats, nowMs int64) (seq uint64, samples int, err error) {
	tc := transcoders.Get().(*transcoder)
	frame := encodePass(req, st, nowMs, tc.encodeV1(req, p.sendMetadata))
	transcoders.Put(tc)
	return p.appendPass(frame, st)
}

// appendV1Series appends s (labels and float samples) as one TimeSeries of an RW 1.0
// WriteRequest, sized first so that it is written in place, in one pass.
func appendV1Series(b []byte, s *ingest.Series) []byte {
	n := v1LabelsSize(s.Labels)
	for _, x := range s.Samples {
		m := sizeDouble(x.V) + sizeInt(x.T)
		n += 1 + protowire.SizeVarint(uint64(m)) + m
	}
	b = protowire.AppendTag(b, v1ReqTimeseries, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = appendV1Labels(b, v1TSLabels, s.Labels)
	for _, x := range s.Samples {
		b = protowire.AppendTag(b, v1TSSamples, protowire.BytesType)
		b = appendShortVarint(b, sizeDouble(x.V)+sizeInt(x.T))
		b = appendDouble(b, v1SampleValue, x.V)
		b = appendInt(b, v1SampleTimestamp, x.T)
	}
	return b
}

// encodeV1 returns req as a snappy-compressed RW 1.0 request, aliasing tc: series with their
// samples (start timestamps have no place in RW 1.0), then each family's metadata once, as
// encodeV1 of the shards' wire encoder writes them.
func (tc *transcoder) encodeV1(req *ingest.Request, sendMetadata bool) []byte {
	raw, md := tc.raw[:0], tc.md[:0]
	clear(tc.seen)
	for i := range req.Series {
		s := &req.Series[i]
		if len(s.Samples) > 0 {
			raw = appendV1Series(raw, s)
		}
		if sendMetadata && !s.Metadata.IsEmpty() {
			if name := ingest.LabelValue(s.Labels, "__name__"); name != "" {
				if _, ok := tc.seen[name]; !ok {
					tc.seen[name] = struct{}{}
					md = tc.enc.appendV1Metadata(md, name, s.Metadata)
				}
			}
		}
	}
	tc.raw, tc.md = append(raw, md...), md
	tc.out = s2.EncodeSnappy(tc.out[:cap(tc.out)], tc.raw)
	return tc.out
}
