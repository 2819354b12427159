// Package web serves the gateway's built-in page at /: one HTML document with its CSS and
// JavaScript inline and no external assets, embedded in the binary.
//
// The page shows the gateway's status (build information, series in the window, ingest
// rate), the probes and engine targets seen, active diagnoses with their advice (or says
// diagnosis is not enabled when /api/v1/diagnoses answers 404), a live view of per-endpoint
// queue and KV-cache load polled every two seconds, and a PromQL box that draws the result of
// /api/v1/query_range as an SVG line chart.
//
// Everything the page shows comes from the gateway's own HTTP API, fetched by the browser
// with relative URLs, so the page works behind any path-preserving proxy. The one thing the
// API does not carry, the gateway's self-metrics, comes from /ui/status.json, which this
// package serves from the prometheus.Gatherer it is given.
//
// The package knows nothing of the window, ingest or publishers. It starts no goroutines; its
// only state is a few seconds of status readings, so that rates can be answered at once.
//
// Usage, mounted as the catch-all of the gateway's mux:
//
//	mux.Handle("/", web.Handler(web.Options{Gatherer: reg}))
//	// serves "/", "/index.html" and "/ui/status.json"; 404 for every other path
package web
