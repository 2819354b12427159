// Package ingest is the gateway's remote-write receiver: the HTTP endpoint
// POST /api/v1/write for Prometheus Remote-Write 1.0 (prometheus.WriteRequest) and 2.0 rc.4
// (io.prometheus.write.v2.Request), snappy-compressed.
//
// # What it owns
//
// The HTTP semantics of the write path (status codes, the RW 2.0 Written headers,
// Retry-After), content negotiation, snappy decompression, protobuf decoding, validation
// of series and the limits that bound one request's cost. It hands each request's valid series
// to an ordered list of Sinks and turns their answers into one HTTP answer. statusFor is the
// only place that maps an error class to a status code:
//
//	204  every series valid and every sink accepted it
//	400  malformed body, or some series invalid (dropped, the rest written), or a sink
//	     returned an error wrapping ErrInvalid; the body names the first problems and the count
//	405  not POST
//	413  body, decoded size or series count over a limit
//	415  unsupported Content-Type or Content-Encoding, decided before the body is read
//	503  (429 with Options.Overload429) a sink returned ErrOverloaded, or no write slot freed
//	     up in time; with Retry-After
//	500  any other sink error
//
// An empty Content-Type is RW 1.0 and an empty Content-Encoding is snappy, as Prometheus'
// own receiver treats them. A series is invalid when it has no labels, no __name__, an empty
// or duplicate label name, invalid UTF-8, a label count, name or value over its limit, an
// RW 2.0 symbol reference out of range (or an odd number of them), both samples and
// histograms (RW 2.0), a timestamp more than 10 minutes ahead of Options.Now, or an invalid
// native histogram. NaN, ±Inf and the stale marker are valid values; UTF-8 names with dots
// or spaces are valid names. Unsorted labels are sorted.
//
// # What it refuses to know
//
// What sinks do with the data: ingest imports no storage, publisher or forwarder. A sink's
// meaning (durable queue, window, hot-series tap) and order are the caller's decision.
//
// # Goroutines and lifetimes
//
// Handler starts no goroutine. Each request is decoded and written on the goroutine net/http
// calls ServeHTTP on; sinks are called one after the other on that goroutine. At most
// Limits.MaxInflightWrites requests are read, decoded and written at once; the others wait
// up to Limits.MaxInflightWait before their body is read, then get 503.
//
// Decoding is zero-copy: every string in a Request aliases the decompressed body, and every
// slice comes from a pooled decoder reused by later requests. A Request and everything it
// references are therefore valid only until Sink.Write returns; a sink that keeps anything
// (or hands it to another goroutine) copies it first.
//
// # Usage
//
//	h, err := ingest.NewHandler(ingest.Options{
//		Logger:     logger,
//		Registerer: reg,
//		Sinks:      []ingest.Sink{forwardQueue, window, hotSeriesTap},
//		Limits:     ingest.Limits{MaxSeriesPerRequest: 20000},
//	})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/api/v1/write", h)
package ingest
