// Package forward forwards everything the gateway ingests to long-term remote-write storage
// (Prometheus, Thanos, Mimir, VictoriaMetrics, ...) through a crash-safe queue on disk per
// destination. A Forwarder is an ingest.Sink meant to come after the window: when its Write
// returns, the request is durable in every destination's queue, so a 2xx is a promise; a
// request part of which an earlier sink refused (out of order) is encoded without being passed
// through (below).
//
// # What it owns
//
// Destinations are configured exactly as Prometheus' `remote_write:` list (parsed with
// prometheus/config, so a block pasted from a Prometheus configuration works): url, name,
// headers, basic_auth / authorization / oauth2 / sigv4 / azuread / google_iam, tls_config,
// proxy settings, write_relabel_configs, protobuf_message (RW 1.0 or 2.0 towards the
// destination), send_exemplars, send_native_histograms and queue_config (max_shards,
// min_shards, max_samples_per_send, batch_send_deadline, min_backoff, max_backoff). The
// package's own options (queue size and age bounds, fsync policy, shards, downsampling) live
// under `forward:`; see Config and docs/forwarding.md.
//
// Write applies each destination's write_relabel_configs and downsampling rules, encodes what
// is kept into one record and appends it to the destination's queue. A request whose body
// the destination can take as it is (ingest.Request.Body set, same protocol, nothing that
// relabelling, downsampling or the send_* switches would change) is queued as that body
// instead, with the 32-bit keys of its series: a pass-through record. An RW 2.0 request of
// float samples for an RW 1.0 destination is encoded into that destination's request right
// away and queued the same way (transcode.go). With the fsync policy
// "always" (the default) Write returns after an fsync that concurrent writers share (group
// commit); with "interval" a background fsync runs every fsync_interval, and an operating-system
// crash may lose that much. Write waits for the disk only, never for a destination.
//
// A queue is a directory of segment files of CRC-framed records; a series' labels are written
// once per segment and referred to by hash afterwards. Recent records are also held in memory
// so senders rarely read the disk. On open, every frame is checked and a torn tail is
// truncated. Past max_queue_bytes the oldest segment is deleted, past max_age the oldest
// records are; both are counted in eagle_eye_forward_dropped_samples_total and logged.
//
// Each destination has a fixed number of shards; a series goes to shard hash mod shards, so it
// is always sent by the same shard, in queue order. A shard batches up to max_samples_per_send
// samples or batch_send_deadline, and retries its batch on 5xx, 429 (always, whatever
// retry_on_http_429 says, honouring Retry-After) and network errors with capped exponential
// backoff until it is delivered; other 4xx answers drop the batch (counted by reason). Each
// shard saves its position before every send, so a restart resends only what may not have
// arrived, and sends that apart from newer data: against a destination without an
// out-of-order window, a duplicate can then only cost the duplicate itself.
//
// Pass-through records are sent by the destination's relay, one request per record, up to
// as many in flight as there are shards. The relay holds a record back while one in flight
// shares a series key with it or while a shard has not yet delivered an encoded record queued
// before it, and a shard holds an encoded record back until the relay has delivered the
// pass-through records queued before it: every series stays in queue order across both.
//
// # What it refuses to know
//
// How requests are received (ingest), the window, or anything else the gateway does. It never
// reads another component's storage.
//
// # Goroutines and locks
//
// New starts nothing (it recovers the queues from disk). Run starts, per destination, one
// goroutine per shard, one for the relay (and one per request it has in flight), and one
// housekeeping goroutine (segment deletion, the age bound, the
// interval fsync), plus, for a destination with downsampling rules, one that closes the
// intervals of quiet series; it returns after Shutdown or Close, or when its context ends.
// Write runs on the caller's goroutine; writes to one destination are encoded and appended one
// at a time (processor.mu), so that a series' definition precedes its references; pass-through
// records define nothing and are appended without it.
//
// Lock order: Forwarder.writeMu, processor.mu, downsampler.mu, queue.mu; queue.syncMu before
// queue.mu. destination.mu, destination.flushMu and throttle.mu are leaves. A shard's state is
// its goroutine's alone, as is the relay's; they share only their read and done positions with
// the queue (under queue.mu), and the relay asks the shards to flush through flushMu.
//
// # Usage
//
//	cfg, err := forward.ParseConfig(yamlBytes) // or embed forward.Config in a larger file
//	fwd, err := forward.New(forward.Options{Config: cfg, Dir: queueDir, Logger: logger, Registerer: reg})
//	go fwd.Run(context.Background())
//	handler := ingest.NewHandler(ingest.Options{Sinks: []ingest.Sink{hotSeries, window, fwd}, ...})
//	mux.Handle("/api/v1/status/forward", fwd.StatusHandler())
//	...
//	_ = fwd.Shutdown(ctxWithDeadline) // after the HTTP server stopped taking writes
package forward
