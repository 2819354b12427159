package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/router"
)

// TestDiagnosisThroughTheGateway feeds the gateway a simulated fleet in which GPU 3 of node-1
// falls off the bus, and checks every output of the diagnosis: the report in
// /api/v1/diagnoses with the device's identity and the catalog's advice, the message on
// eagle_eye.diagnosis.critical, the hardware feed's annotation for the node, the
// eagle_eye_diagnosis_active metric and the standard /api/v1/alerts.
func TestDiagnosisThroughTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the probe; skipped with -short")
	}
	gw := startGateway(t, "", func(f *Flags) { f.EvalInterval = time.Second })
	nc, err := nats.Connect(gw.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	diagMsgs := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe("eagle_eye.diagnosis.critical", diagMsgs); err != nil {
		t.Fatal(err)
	}
	hardware := make(chan router.Message, 256)
	if _, err := router.Subscribe(nc, "eagle_eye.hardware_metrics", func(m router.Message) { hardware <- m }); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bins := e2etest.Build(t, dir, "probe")
	e2etest.Start(t, filepath.Join(dir, "probe.log"), bins["probe"], "--simulate",
		"--gateway.url="+gw.URL+"/api/v1/write", "--web.listen-address=", "--simulate.nodes=2",
		"--simulate.fault=xid79@node-1/gpu-3@1s")

	type report struct {
		Pattern, State, Node, Conclusion, RouterAction string
		Identity                                       struct{ UUID, Model, Driver, Firmware, Index string }
		Recommendations                                []string
	}
	var got []report
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := httpGet(t, gw.URL+"/api/v1/diagnoses?pattern=G01&state=firing")
		var r struct {
			Status string
			Data   []json.RawMessage
		}
		if code == http.StatusOK && json.Unmarshal([]byte(body), &r) == nil && len(r.Data) > 0 {
			got = got[:0]
			for _, raw := range r.Data {
				var rep report
				var fields map[string]any
				_ = json.Unmarshal(raw, &fields)
				_ = json.Unmarshal(raw, &rep)
				rep.RouterAction, _ = fields["router_action"].(string)
				got = append(got, rep)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no G01 report after 60s: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(got) != 1 {
		t.Fatalf("%d G01 reports, want exactly one: %+v", len(got), got)
	}
	r := got[0]
	if r.Node != "node-1" || r.Identity.Index != "3" || r.Identity.UUID == "" || r.Identity.Model == "" || r.Identity.Driver == "" {
		t.Errorf("report identity: %+v", r)
	}
	if r.RouterAction != "unroutable" || r.Conclusion == "" || len(r.Recommendations) < 2 {
		t.Errorf("report advice: action %q conclusion %q steps %v", r.RouterAction, r.Conclusion, r.Recommendations)
	}

	select {
	case m := <-diagMsgs:
		if !strings.Contains(string(m.Data), `"G01"`) {
			t.Errorf("diagnosis message: %s", m.Data)
		}
	case <-time.After(10 * time.Second):
		t.Error("no message on eagle_eye.diagnosis.critical")
	}
	for end := time.After(15 * time.Second); ; {
		select {
		case m := <-hardware:
			if m.Endpoint["node"] != "node-1" || m.Annotations["health"] != "faulty" {
				continue
			}
			if m.Annotations["pattern"] != "G01" || m.Annotations["router_action"] != "unroutable" {
				t.Errorf("hardware annotations for node-1: %v", m.Annotations)
			}
		case <-end:
			t.Fatal("the hardware feed never marked node-1 faulty")
		}
		break
	}
	_, metrics := httpGet(t, gw.URL+"/metrics")
	if !strings.Contains(metrics, `eagle_eye_diagnosis_active{`) || !strings.Contains(metrics, `pattern="G01"`) {
		t.Error("/metrics lacks eagle_eye_diagnosis_active for G01")
	}
	_, alerts := httpGet(t, gw.URL+"/api/v1/alerts")
	if !strings.Contains(alerts, `"alertname":"GPUFellOffBus"`) || !strings.Contains(alerts, `"state":"firing"`) {
		t.Errorf("/api/v1/alerts lacks the firing GPUFellOffBus: %.500s", alerts)
	}
}

// TestReloadRefusesABadRuleFile reloads with a broken rule file: the answer names the file and
// line and the previous rules stay loaded.
func TestReloadRefusesABadRuleFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "mine.rules.yml")
	if err := os.WriteFile(good, []byte(`groups:
  - name: mine
    rules:
      - record: node:up:count
        expr: count(up)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, "", func(f *Flags) { f.RuleFiles = []string{filepath.Join(dir, "*.rules.yml")} })
	_, rules := httpGet(t, gw.URL+"/api/v1/rules")
	if !strings.Contains(rules, `"node:up:count"`) {
		t.Fatalf("rules not loaded: %.300s", rules)
	}
	if err := os.WriteFile(good, []byte("groups:\n  - name: mine\n    rules:\n      - record: bad\n        expr: count(up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, gw.URL); code != http.StatusBadRequest || !strings.Contains(body, "mine.rules.yml: 5:15") {
		t.Errorf("reload of a bad file: %d %s; want 400 naming mine.rules.yml line 5", code, body)
	}
	_, rules = httpGet(t, gw.URL+"/api/v1/rules")
	if !strings.Contains(rules, `"node:up:count"`) {
		t.Errorf("the previous rules were dropped by a refused reload: %.300s", rules)
	}
}

// postReload asks the gateway to reload and returns the status and the start of the answer.
func postReload(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}
