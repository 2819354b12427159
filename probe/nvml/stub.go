//go:build !cgo || !linux

package nvml

import (
	"context"
	"fmt"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// Collector is the stand-in of a build without cgo: NVML cannot be loaded.
type Collector struct{}

// New returns the stand-in collector.
func New(Options) *Collector { return &Collector{} }

// Collect reports NVML unavailable.
func (*Collector) Collect(context.Context, *probe.Appender) error {
	return fmt.Errorf("NVML needs a cgo build (this binary was built with CGO_ENABLED=0): %w", probe.ErrUnavailable)
}

// Close does nothing.
func (*Collector) Close() {}
