package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/tsdb"
)

func newTestAPI(t *testing.T) (*API, *tsdb.Window) {
	t.Helper()
	w, err := tsdb.New(tsdb.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	a, err := New(Options{Storage: w, Engine: NewEngine(EngineOptions{}), Build: BuildInfo{Version: "1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	return a, w
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestReadiness(t *testing.T) {
	a, _ := newTestAPI(t)
	if code, _ := get(t, a, "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready before SetReady: %d, want 503", code)
	}
	if code, _ := get(t, a, "/api/v1/query?query=1"); code != http.StatusServiceUnavailable {
		t.Errorf("query before SetReady: %d, want 503", code)
	}
	if code, _ := get(t, a, "/-/healthy"); code != http.StatusOK {
		t.Errorf("/-/healthy: %d, want 200 even before ready", code)
	}
	a.SetReady(true)
	if code, _ := get(t, a, "/-/ready"); code != http.StatusOK {
		t.Errorf("/-/ready after SetReady: %d", code)
	}
	if code, body := get(t, a, "/api/v1/query?query=1%2B1&time=4"); code != http.StatusOK || !strings.Contains(body, `[4,"2"]`) {
		t.Errorf("query: %d %s", code, body)
	}
}

func TestMetadataFromRemoteWrite(t *testing.T) {
	a, w := newTestAPI(t)
	a.SetReady(true)
	req := &ingest.Request{Metadata: []ingest.FamilyMetadata{
		{Family: "vllm:num_requests_waiting", Metadata: metadata.Metadata{Type: model.MetricTypeGauge, Help: "Requests waiting."}},
		{Family: "vllm:prompt_tokens_total", Metadata: metadata.Metadata{Type: model.MetricTypeCounter, Help: "Prompt tokens."}},
	}}
	if _, err := w.Write(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, a, "/api/v1/metadata?metric=vllm:num_requests_waiting")
	var r struct {
		Status string
		Data   map[string][]map[string]string
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 200 || r.Status != "success" {
		t.Fatalf("metadata: %d %s", code, body)
	}
	if got := r.Data["vllm:num_requests_waiting"]; len(got) != 1 || got[0]["type"] != "gauge" || got[0]["help"] != "Requests waiting." {
		t.Errorf("metadata for one metric: %v", r.Data)
	}
	if _, body := get(t, a, "/api/v1/metadata?limit=1"); strings.Count(body, `"type"`) != 1 {
		t.Errorf("limit=1 answered %s", body)
	}
	if code, body := get(t, a, "/api/v1/metadata?limit=x"); code != http.StatusBadRequest || !strings.Contains(body, "limit must be a number") {
		t.Errorf("bad limit: %d %s", code, body)
	}
}

func TestBuildInfoAndStatus(t *testing.T) {
	a, w := newTestAPI(t)
	a.SetReady(true)
	code, body := get(t, a, "/api/v1/status/buildinfo")
	if code != 200 || !strings.Contains(body, `"version":"1.2.3"`) || strings.Contains(body, "features") {
		t.Errorf("buildinfo: %d %s", code, body)
	}
	s := ingest.Series{Labels: []ingest.Label{{Name: "__name__", Value: "up"}}, Samples: []ingest.Sample{{T: time.Now().UnixMilli(), V: 1}}}
	s.Hash, s.Hash2 = ingest.KeyHashes([]byte("__name__\xffup\xff"))
	if _, err := w.Write(context.Background(), &ingest.Request{Series: []ingest.Series{s}}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, a, "/api/v1/status/tsdb"); code != 200 || !strings.Contains(body, `"numSeries":1`) {
		t.Errorf("status/tsdb: %d %s", code, body)
	}
	if code, body := get(t, a, "/api/v1/rules"); code != 200 || !strings.Contains(body, `"groups":[]`) {
		t.Errorf("rules without a retriever: %d %s", code, body)
	}
}

type fakeAlertmanagers struct{ active, dropped []*url.URL }

func (f fakeAlertmanagers) Alertmanagers() []*url.URL        { return f.active }
func (f fakeAlertmanagers) DroppedAlertmanagers() []*url.URL { return f.dropped }

func TestAlertmanagers(t *testing.T) {
	a, _ := newTestAPI(t)
	a.SetReady(true)
	if code, body := get(t, a, "/api/v1/alertmanagers"); code != 200 || !strings.Contains(body, `"activeAlertmanagers":[],"droppedAlertmanagers":[]`) {
		t.Errorf("alertmanagers without a retriever: %d %s", code, body)
	}

	w, err := tsdb.New(tsdb.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	am := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	a, err = New(Options{Storage: w, Engine: NewEngine(EngineOptions{}), Alertmanagers: fakeAlertmanagers{
		active:  []*url.URL{am("http://am-0:9093/api/v2/alerts")},
		dropped: []*url.URL{am("http://am-1:9093/api/v2/alerts")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a.SetReady(true)
	want := `"activeAlertmanagers":[{"url":"http://am-0:9093/api/v2/alerts"}],"droppedAlertmanagers":[{"url":"http://am-1:9093/api/v2/alerts"}]`
	if code, body := get(t, a, "/api/v1/alertmanagers"); code != 200 || !strings.Contains(body, want) {
		t.Errorf("alertmanagers: %d %s; want %s", code, body, want)
	}
}
