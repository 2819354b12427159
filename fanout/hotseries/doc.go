// Package hotseries is the gateway's hot-series tap: it picks the series routers score
// endpoints by (engine queue, running requests, KV-cache use, ...; NIC bandwidth; GPU
// utilisation and health) out of every write request and publishes one JSON message per
// endpoint, within milliseconds of ingest, to NATS (a subject per group, default
// eagle_eye.routing_metrics for routing, plus a JetStream KV bucket holding the last message
// per endpoint so a router that joins late reads the current state at once) and to a ZeroMQ
// PUB socket (multipart [topic, json]). The message format is docs/hot-series.md and
// docs/hot-series.schema.json; routers in Go read it with package router.
//
// # What it owns
//
// Group membership of series (PromQL selectors, metric-name aliases for vLLM's old and new
// names and SGLang), a bounded per-endpoint state of the newest two samples of each hot
// series, field computation (aggregates over engines and devices, counter rates and ratios),
// freshness (fresh, stale after stale_after, removed after removed_after), the embedded NATS
// server, the NATS connection and KV bucket, and the ZeroMQ socket.
//
// # What it refuses to know
//
// The window and the HTTP layer: it never reads storage, it only sees what ingest hands every
// sink. It imports ingest for the Sink types only.
//
// # Goroutines and lifetimes
//
// Write runs on the request's goroutine, like every sink. It looks each series up by
// ingest.Series.Hash and Hash2 in a bounded, sharded cache (resolved once per series: selectors, metric
// name, endpoint labels, strings copied), then records the newest sample under the
// endpoint's mutex. It keeps nothing of the request, allocates nothing for a known series,
// never waits for a transport and never fails: it returns every sample as accepted.
//
// Run starts one goroutine per group. In interval mode it publishes, every interval, each
// endpoint that received samples since the last round; in on-ingest mode Write wakes it and
// it publishes at once, at most once per min_gap per endpoint. The same goroutine sweeps for
// endpoints silent for stale_after (one stale message) and removed_after (a removed message,
// the KV key deleted, the state forgotten). The NATS transport publishes from the group
// goroutine without waiting for acknowledgements (nats.go buffers up to
// reconnect_buffer_bytes while disconnected, then drops); the ZeroMQ transport copies into a
// bounded queue drained by one goroutine. Everything dropped is counted in
// eagle_eye_hot_series_dropped_total{reason}.
//
// Locks: a group's mu (its endpoint map) before an endpoint's mu; a group's dirty-list mutex
// and the cache shards' mutexes are never held with another lock.
//
// # Use
//
//	hot, err := hotseries.New(hotseries.Options{Config: cfg, DataDir: dir, Logger: logger, Registerer: reg})
//	if err != nil { ... }
//	if err := hot.Start(ctx); err != nil { ... } // binds NATS and ZeroMQ
//	defer hot.Close()
//	sinks := []ingest.Sink{window, hot} // after the window
//	go hot.Run(ctx)
package hotseries
