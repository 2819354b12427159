package api

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
)

// EngineOptions configures the PromQL engine shared by the API and rule evaluation.
type EngineOptions struct {
	// Timeout caps one query's evaluation. Default 2m, as in Prometheus.
	Timeout time.Duration
	// MaxSamples caps the samples one query may load at once. Default 50,000,000, as in
	// Prometheus.
	MaxSamples int
	// LookbackDelta is how far back an instant vector looks for a sample. Default 5m.
	LookbackDelta time.Duration
	// QueryTracker, when set, bounds how many queries run at once: the engine calls its Insert
	// before evaluating a query (it may wait) and Delete after. Nil: no bound.
	QueryTracker promql.QueryTracker
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// NewEngine returns a PromQL engine with Prometheus' defaults and its commonly enabled
// features (@ modifier, negative offsets, per-step statistics).
func NewEngine(o EngineOptions) *promql.Engine {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 50000000
	}
	if o.LookbackDelta <= 0 {
		o.LookbackDelta = 5 * time.Minute
	}
	return promql.NewEngine(promql.EngineOpts{
		Logger:               o.Logger,
		Reg:                  o.Registerer,
		MaxSamples:           o.MaxSamples,
		Timeout:              o.Timeout,
		LookbackDelta:        o.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		EnablePerStepStats:   true,
		ActiveQueryTracker:   o.QueryTracker,
	})
}
