package hotseries

import (
	"encoding/json"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMessagesMatchSchema checks every kind of message against the documented schema's
// required and allowed properties, and the schema's example against the Go client's type.
func TestMessagesMatchSchema(t *testing.T) {
	b, err := os.ReadFile(repoFile(t, "docs/hot-series.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
		Examples   []json.RawMessage          `json:"examples"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	check := func(data []byte) {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		for _, r := range schema.Required {
			if _, ok := m[r]; !ok {
				t.Errorf("message lacks required %q: %s", r, data)
			}
		}
		for k := range m {
			if _, ok := schema.Properties[k]; !ok {
				t.Errorf("message has %q, not in the schema: %s", k, data)
			}
		}
	}
	for _, ex := range schema.Examples {
		check(ex)
	}
	cfg := DefaultConfig()
	for i := range 3 {
		g, _ := builtinGroup(cfg.BuiltinGroups[i])
		g.StaleAfter, g.RemovedAfter = 0, 0
		cfg.Groups = append(cfg.Groups, g)
	}
	runFake(t, cfg, func(p *Publisher, ft *fakeTransport, _ *prometheus.Registry) {
		now := time.Now().UnixMilli()
		req := fleetRequest(testFleet(), now, 1)
		req.Series = append(req.Series, series("DCGM_FI_DEV_GPU_UTIL", map[string]string{"node": "n1", "gpu": "0", "modelName": "H100"}, now, 50))
		write(t, p, req)
		time.Sleep(2 * time.Minute) // fresh, stale, removed
		synctest.Wait()
		ft.mu.Lock()
		defer ft.mu.Unlock()
		seen := map[string]bool{}
		for _, m := range ft.raw {
			check(m.data)
			var s struct {
				Status  string          `json:"status"`
				Devices json.RawMessage `json:"devices"`
			}
			_ = json.Unmarshal(m.data, &s)
			seen[s.Status] = true
			seen["devices"] = seen["devices"] || s.Devices != nil
		}
		if len(seen) != 4 {
			t.Errorf("saw %v; want fresh, stale, removed and a message with devices", seen)
		}
	})
}
