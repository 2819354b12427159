// Package api serves the Prometheus HTTP API over the gateway's window, so that Grafana and
// any PromQL client query the gateway as if it were Prometheus, plus the gateway's own
// endpoints (/-/healthy, /-/ready, /metrics).
//
// The query endpoints are Prometheus' own web/api/v1 handlers, so the JSON is Prometheus'
// byte for byte; this package supplies what that API needs from a server (targets, rules,
// alertmanagers, TSDB status) in the shape of a gateway, and answers /api/v1/metadata from
// the metadata that remote-write senders sent, since the gateway scrapes no targets.
//
// It reads only through storage.Queryable and friends; it never writes. The write endpoint is
// mounted from outside (Options.Write), so that this package knows no ingest protocol.
package api
