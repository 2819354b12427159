package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

// assertGrafanaRequests sends every request Grafana's Prometheus datasource makes (health
// check, version detection, panels, exemplars, metric browser, variables, metadata, rules)
// to Prometheus and to the gateway, the way Grafana sends them, and compares the answers.
func assertGrafanaRequests(ctx context.Context, t *testing.T, promURL, gwURL string, start, end time.Time) {
	t.Helper()
	secs := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	ms := func(tm time.Time) string { return strconv.FormatInt(tm.UnixMilli(), 10) }
	// Frontend resource calls use whole seconds; backend calls float seconds aligned to step.
	same := []struct {
		name, path string
		post       bool
		params     url.Values
	}{
		{"health check", "/api/v1/query", true, url.Values{"query": {"1+1"}, "time": {"4"}}},
		{"instant panel", "/api/v1/query", true, url.Values{"query": {"sum(rate(demo_requests_total[5s]))"}, "time": {unix(end)}, "timeout": {"30s"}}},
		{"range panel", "/api/v1/query_range", true, url.Values{"query": {"avg by (gpu) (demo_gpu_temperature_celsius)"}, "start": {unix(start)}, "end": {unix(end)}, "step": {"2"}, "timeout": {"30s"}}},
		{"range panel, GET", "/api/v1/query_range", false, url.Values{"query": {"demo_requests_total"}, "start": {unix(start)}, "end": {unix(end)}, "step": {"0.5"}}},
		{"panel exemplars", "/api/v1/query_exemplars", true, url.Values{"query": {"demo_latency_seconds_bucket"}, "start": {unix(start)}, "end": {unix(end)}}},
		{"metric names", "/api/v1/label/__name__/values", false, url.Values{"start": {secs(start)}, "end": {secs(end)}, "limit": {"40000"}}},
		{"label keys", "/api/v1/labels", true, url.Values{"limit": {"40000"}, "start": {secs(start)}, "end": {secs(end)}, "match[]": {"demo_requests_total"}}},
		{"label values", "/api/v1/label/model_name/values", false, url.Values{"start": {secs(start)}, "end": {secs(end)}, "limit": {"40000"}, "match[]": {`demo_requests_total{code="200"}`}}},
		{"escaped label values", "/api/v1/label/U__Hostname/values", false, url.Values{"start": {secs(start)}, "end": {secs(end)}, "limit": {"40000"}}},
		{"series variable", "/api/v1/series", true, url.Values{"match[]": {`{__name__=~"demo_gpu.*"}`}, "start": {secs(start)}, "end": {secs(end)}, "limit": {"40000"}}},
		{"query_result variable", "/api/v1/query", true, url.Values{"query": {"count(up)"}, "time": {secs(end)}}},
		{"metadata for one metric", "/api/v1/metadata", false, url.Values{"limit": {"40000"}, "metric": {"demo_latency_seconds"}}},
	}
	for _, c := range same {
		t.Run("grafana/"+c.name, func(t *testing.T) {
			assertSameAnswer(ctx, t, promURL, gwURL, c.path, c.params, c.post)
		})
	}

	// Requests whose answers legitimately differ between servers: same status and shape.
	shape := []struct {
		name, path string
		params     url.Values
		check      func(t *testing.T, data json.RawMessage)
	}{
		{"buildinfo", "/api/v1/status/buildinfo", nil, func(t *testing.T, data json.RawMessage) {
			var m map[string]any
			mustJSON(t, data, &m)
			if _, ok := m["features"]; ok {
				t.Errorf("buildinfo carries features, which makes Grafana treat the gateway as Mimir: %s", data)
			}
			if v, _ := m["version"].(string); v == "" {
				t.Errorf("buildinfo without version: %s", data)
			}
		}},
		{"exemplar probe in milliseconds", "/api/v1/query_exemplars", url.Values{"query": {"test"}, "start": {ms(end.Add(-30 * time.Minute))}, "end": {ms(end)}}, nil},
		{"all metadata", "/api/v1/metadata", url.Values{"limit": {"40000"}}, func(t *testing.T, data json.RawMessage) {
			var m map[string][]map[string]string
			mustJSON(t, data, &m)
			if len(m["demo_requests_total"]) != 1 || m["demo_requests_total"][0]["type"] != "counter" {
				t.Errorf("metadata lacks demo_requests_total as a counter: %s", data)
			}
		}},
		{"rules", "/api/v1/rules", nil, func(t *testing.T, data json.RawMessage) {
			var m struct {
				Groups []any `json:"groups"`
			}
			mustJSON(t, data, &m)
			if m.Groups == nil {
				t.Errorf("rules data must hold a groups list: %s", data)
			}
		}},
		{"alerts", "/api/v1/alerts", nil, nil},
	}
	for _, c := range shape {
		t.Run("grafana/"+c.name, func(t *testing.T) {
			for _, base := range []string{promURL, gwURL} {
				r, code, err := promtest.Get(ctx, base, c.path, c.params)
				if err != nil || code != http.StatusOK || r.Status != "success" {
					t.Fatalf("%s%s: code %d, err %v, resp %+v", base, c.path, code, err, r)
				}
				if base == gwURL && c.check != nil {
					c.check(t, r.Data)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
