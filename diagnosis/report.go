package diagnosis

import (
	"time"
)

// State of a report.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Report is one diagnosis: one fault pattern on one device, from the first firing alert to its
// resolution. A report that resolves and fires again within Options.FlapHold is the same
// report (Flaps counts the re-openings).
type Report struct {
	ID        string `json:"id"`
	Pattern   string `json:"pattern"`
	Title     string `json:"title"`
	Component string `json:"component"`
	Severity  string `json:"severity"`
	State     string `json:"state"`
	Node      string `json:"node"`
	// Device is the device's key: gpu/<UUID>, npu/<node>/<id>, engine/<instance>,
	// network/<node>/<device>[/<port>], node/<node>.
	Device       string       `json:"device"`
	Identity     Identity     `json:"identity"`
	Engines      []Engine     `json:"engines,omitempty"`
	Evidence     []Evidence   `json:"evidence"`
	Related      []Related    `json:"related,omitempty"`
	Conclusion   string       `json:"conclusion"`
	Steps        []string     `json:"recommendations"`
	RouterAction RouterAction `json:"router_action"`
	Overrides    []string     `json:"overrides,omitempty"`
	FirstSeen    time.Time    `json:"first_seen"`
	LastSeen     time.Time    `json:"last_seen"`
	ResolvedAt   *time.Time   `json:"resolved_at,omitempty"`
	Flaps        int          `json:"flaps"`
	// SupersededBy is set on a report closed because a pattern that explains it fired on the
	// same device (catalog suppressed_by); it names that report.
	SupersededBy string `json:"superseded_by,omitempty"`
}

// Identity is what is known of the faulty device, from the alert's labels and the device's
// info series.
type Identity struct {
	UUID     string `json:"uuid,omitempty"`
	Serial   string `json:"serial,omitempty"`
	Index    string `json:"index,omitempty"`
	PCIBusID string `json:"pci_bus_id,omitempty"`
	Model    string `json:"model,omitempty"`
	Driver   string `json:"driver,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	Instance string `json:"instance,omitempty"`
	Pod      string `json:"pod,omitempty"`
	Port     string `json:"port,omitempty"`
}

// Engine is an inference engine that runs on the faulty device (or on its node when the
// series do not say which device an engine uses).
type Engine struct {
	Instance  string `json:"instance"`
	Job       string `json:"job,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Model     string `json:"model_name,omitempty"`
}

// Evidence is one alert instance behind a report.
type Evidence struct {
	Alert     string            `json:"alert"`
	Signal    string            `json:"signal,omitempty"`
	Labels    map[string]string `json:"labels"`
	Value     float64           `json:"value"`
	Threshold string            `json:"threshold,omitempty"`
	Summary   string            `json:"summary,omitempty"`
	Expr      string            `json:"expr"`
	ActiveAt  time.Time         `json:"active_at"`
	Time      time.Time         `json:"time"`
	State     string            `json:"state"`
}

// Related is a pattern folded into this report because the report's pattern explains it.
type Related struct {
	Pattern   string    `json:"pattern"`
	Alert     string    `json:"alert"`
	Signal    string    `json:"signal,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
}

// DeviceState is the current diagnosis of one device, for routers: healthy, or the worst
// firing pattern with its router action.
type DeviceState struct {
	Component string `json:"component"`
	Node      string `json:"node"`
	Device    string `json:"device"`
	Healthy   bool   `json:"healthy"`
	// The worst firing report (most disruptive router action, then severity); empty when
	// healthy.
	Pattern      string       `json:"pattern,omitempty"`
	Severity     string       `json:"severity,omitempty"`
	RouterAction RouterAction `json:"router_action,omitempty"`
	ReportID     string       `json:"report_id,omitempty"`
	Since        time.Time    `json:"since,omitzero"`
	// Via is set on an engine's state that comes from a fault of a device it runs on.
	Via string `json:"via,omitempty"`
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 3
	case "warning":
		return 2
	case "info":
		return 1
	}
	return 0
}
