package forward

import (
	"encoding/json"
	"maps"
	"net/http"
	"time"
)

// Status is the JSON served at /api/v1/status/forward.
type Status struct {
	Destinations []DestinationStatus `json:"destinations"`
}

// DestinationStatus describes one destination for humans.
type DestinationStatus struct {
	Name            string `json:"name"`
	URL             string `json:"url"`
	ProtobufMessage string `json:"protobuf_message"`
	Shards          int    `json:"shards"`
	// PassThroughConcurrency is the most pass-through requests in flight at once, now.
	PassThroughConcurrency int         `json:"passthrough_concurrency"`
	Queue                  QueueStatus `json:"queue"`
	SentSamples            int64       `json:"sent_samples"`
	// PassThroughSamples were queued as the request body they arrived in (see the package
	// documentation); the rest were encoded for the destination.
	PassThroughSamples int64 `json:"passthrough_samples"`
	// TranscodedSamples were queued as the RW 1.0 request an RW 2.0 write is sent as.
	TranscodedSamples int64            `json:"transcoded_samples"`
	RetriedSamples    int64            `json:"retried_samples"`
	DroppedSamples    map[string]int64 `json:"dropped_samples"`
	Requests          map[string]int64 `json:"requests_by_code"`
	LastSuccess       *time.Time       `json:"last_success,omitempty"`
	LastError         string           `json:"last_error,omitempty"`
	LastErrorAt       *time.Time       `json:"last_error_at,omitempty"`
}

// QueueStatus is one destination's queue.
type QueueStatus struct {
	Dir              string  `json:"dir"`
	DiskBytes        int64   `json:"disk_bytes"`
	MaxBytes         int64   `json:"max_bytes"`
	Segments         int     `json:"segments"`
	PendingRecords   int64   `json:"pending_records"`
	PendingSamples   int64   `json:"pending_samples"`
	MemoryBytes      int64   `json:"memory_bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	MaxAge           string  `json:"max_age"`
	Fsync            string  `json:"fsync"`
}

// Status returns a snapshot of every destination.
func (f *Forwarder) Status() Status {
	now := f.now()
	out := Status{Destinations: []DestinationStatus{}}
	for _, d := range f.dests {
		st := d.q.stats()
		ds := DestinationStatus{
			Name: d.name, URL: d.url, ProtobufMessage: string(d.rw.ProtobufMessage), Shards: len(d.shards),
			PassThroughConcurrency: int(d.relay.limitGauge.Load()),
			SentSamples:            d.sentSamples.Load(), RetriedSamples: d.retriedSamps.Load(), PassThroughSamples: d.passedSamples.Load(), TranscodedSamples: d.transcodedSamples.Load(),
			Queue: QueueStatus{
				Dir: d.opts.dir, DiskBytes: st.DiskBytes, MaxBytes: d.opts.maxBytes, Segments: st.Segments,
				PendingRecords: st.PendingRecs, PendingSamples: st.PendingSamps, MemoryBytes: st.MemBytes,
				MaxAge: d.opts.maxAge.String(), Fsync: string(d.opts.fsync),
			},
		}
		if !st.OldestPending.IsZero() {
			ds.Queue.OldestAgeSeconds = max(0, now.Sub(st.OldestPending).Seconds())
		}
		if ns := d.lastSuccess.Load(); ns > 0 {
			t := time.Unix(0, ns).UTC()
			ds.LastSuccess = &t
		}
		d.mu.Lock()
		ds.DroppedSamples = maps.Clone(d.dropped)
		ds.Requests = maps.Clone(d.requestCounts)
		if d.lastErr != "" {
			ds.LastError = d.lastErr
			t := d.lastErrAt.UTC()
			ds.LastErrorAt = &t
		}
		d.mu.Unlock()
		out.Destinations = append(out.Destinations, ds)
	}
	return out
}

// StatusHandler serves Status as indented JSON, for /api/v1/status/forward.
func (f *Forwarder) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(f.Status())
	})
}
