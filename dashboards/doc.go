// Package dashboards holds Eagle Eye's Grafana dashboards, one JSON file per concern:
//
//	fleet-overview.json   nodes, accelerators and engines at a glance
//	accelerators.json     NVIDIA GPU and Ascend NPU health
//	inference-sla.json    TTFT, inter-token latency, queues, KV cache, preemptions
//	ai-gateway.json       the endpoint picker's view of the pool, per model
//	diagnosis.json        active diagnosis reports, firing alerts and their evidence
//	network.json          InfiniBand/RoCE ports, NICs, NPU links
//	gateway-health.json   the gateway's own eagle_eye_* metrics
//
// Every dashboard reads one Prometheus datasource through the ${datasource} variable (the
// gateway itself, or any Prometheus holding the same series) and names no datasource UID.
// The Helm chart ships copies under charts/eagle-eye/dashboards/ for Grafana's provisioning
// sidecar; the chart's tests keep the copies identical to these files.
//
// The package owns nothing but the files. FS exposes them to Go code, for example to serve
// them for download. The tests parse every panel query as PromQL and run it against a gateway
// fed by the probe's synthetic fleet.
package dashboards

import "embed"

// FS holds every dashboard, by file name. It is read-only and safe for concurrent use.
//
//go:embed *.json
var FS embed.FS
