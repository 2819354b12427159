// Package tsdb holds the gateway's short in-memory window of recent samples.
//
// It is built on Prometheus' own TSDB head: samples are appended to a head that is never
// compacted into blocks; instead the window truncates the head continuously to the last
// Options.Window of wall-clock time, so memory stays proportional to the active series and
// the window length. Full chunks are memory-mapped from a scratch directory as Prometheus does;
// nothing is written ahead, and nothing survives a restart.
//
// The package knows no protocol, HTTP or publisher. It takes decoded write requests through
// Write (it is an ingest.Sink) and exposes the data through the storage interfaces that
// Prometheus' PromQL engine, rules manager and HTTP API read: storage.Queryable,
// storage.ExemplarQueryable, plus metric metadata for /api/v1/metadata.
//
// Goroutines: Run truncates the head on a ticker until its context ends; Write may be called
// from many goroutines at once; queriers may be opened concurrently with both.
//
//	w, err := tsdb.New(tsdb.Options{Window: 30 * time.Minute, Registerer: reg, Logger: log})
//	if err != nil { ... }
//	defer w.Close()
//	go w.Run(ctx)
//	engine.NewInstantQuery(ctx, w, nil, `sum(rate(x[1m]))`, time.Now())
package tsdb
