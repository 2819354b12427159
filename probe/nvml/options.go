package nvml

import (
	"log/slog"

	"github.com/eagle-eye-ai/eagle-eye/probe/xid"
)

// Options configures the collector.
type Options struct {
	// Hostname is the value of the Hostname label, as dcgm-exporter sets it.
	Hostname string
	// LibraryPath overrides where libnvidia-ml.so.1 is loaded from; the loader's search path
	// when empty.
	LibraryPath string
	// Tracker receives XIDs from the NVML event set and learns from the collector how PCI bus
	// ids map to GPU labels. Events are not read when nil.
	Tracker *xid.Tracker
	Logger  *slog.Logger // discards when nil
}
