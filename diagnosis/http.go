package diagnosis

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Filter selects reports; empty fields match everything.
type Filter struct {
	Node      string
	Device    string // the device key, or the device's UUID, serial or engine instance
	Severity  string // critical | warning | info
	State     string // firing | resolved
	Pattern   string
	Component string
}

func (f Filter) match(r *report) bool {
	switch {
	case f.Node != "" && f.Node != r.Node,
		f.Severity != "" && f.Severity != r.Severity,
		f.State != "" && f.State != r.State,
		f.Pattern != "" && f.Pattern != r.Pattern,
		f.Component != "" && f.Component != r.Component:
		return false
	}
	if f.Device != "" {
		id := r.Identity
		if f.Device != r.Device && f.Device != id.UUID && f.Device != id.Serial && f.Device != id.Instance {
			return false
		}
	}
	return true
}

func parseFilter(q url.Values) (Filter, error) {
	f := Filter{
		Node:      q.Get("node"),
		Device:    q.Get("device"),
		Severity:  q.Get("severity"),
		State:     q.Get("state"),
		Pattern:   q.Get("pattern"),
		Component: q.Get("component"),
	}
	if f.Severity != "" && severityRank(f.Severity) == 0 {
		return f, fmt.Errorf("severity %q: want critical, warning or info", f.Severity)
	}
	if f.State != "" && f.State != StateFiring && f.State != StateResolved {
		return f, fmt.Errorf("state %q: want firing or resolved", f.State)
	}
	return f, nil
}

type apiResponse struct {
	Status    string   `json:"status"`
	Data      []Report `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// Handler serves GET /api/v1/diagnoses in the Prometheus API's envelope:
// {"status":"success","data":[report, ...]}. Query parameters node, device, severity, state,
// pattern and component filter the reports (GET or form-encoded POST).
func (d *Diagnoser) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_ = json.NewEncoder(w).Encode(apiResponse{Status: "error", ErrorType: "bad_data", Error: "method not allowed"})
			return
		}
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(apiResponse{Status: "error", ErrorType: "bad_data", Error: err.Error()})
			return
		}
		f, err := parseFilter(r.Form)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(apiResponse{Status: "error", ErrorType: "bad_data", Error: err.Error()})
			return
		}
		reports := d.Reports(f)
		if reports == nil {
			reports = []Report{}
		}
		// data is always present, [] when nothing matches.
		_ = json.NewEncoder(w).Encode(struct {
			Status string   `json:"status"`
			Data   []Report `json:"data"`
		}{"success", reports})
	})
}
