package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/nvml"
	"github.com/eagle-eye-ai/eagle-eye/probe/simulate"
	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// Config is the validated command line.
type Config struct {
	Flags
	Protocol remotewrite.Protocol
	External []probe.Label
	Faults   []simulate.Fault
	// newNVML builds the NVML collector; nvml.New when nil (the footprint benchmark passes a
	// mocked machine).
	newNVML func(nvml.Options) probe.Collector
}

// config validates the flags; every error names the flag.
func (f *Flags) config() (*Config, error) {
	c := &Config{Flags: *f}
	var errs []error
	var err error
	if c.Protocol, err = remotewrite.ParseProtocol(f.Protocol); err != nil {
		errs = append(errs, fmt.Errorf("--gateway.protocol: %w", err))
	}
	if _, err := remotewrite.NewClient(remotewrite.ClientOptions{URL: f.GatewayURL}); err != nil {
		errs = append(errs, fmt.Errorf("--gateway.url: %w", err))
	}
	if f.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--probe.interval %v: must be at least 100ms", f.Interval))
	}
	if f.EngineInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--engine.interval %v: must be at least 100ms", f.EngineInterval))
	}
	if f.BufferSamples <= 0 {
		errs = append(errs, fmt.Errorf("--gateway.buffer-samples %d: must be positive", f.BufferSamples))
	}
	if f.MaxBackoff < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--gateway.max-backoff %v: must be at least 100ms", f.MaxBackoff))
	}
	pairs, err := parseLabels(f.Labels)
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range pairs {
		c.External = append(c.External, probe.L(p[0], p[1]))
	}
	if !slices.ContainsFunc(c.External, func(l probe.Label) bool { return l.Name == "node" }) && !f.Simulate {
		host, err := os.Hostname()
		if err != nil || host == "" {
			errs = append(errs, errors.New("--label node=NAME is needed: the hostname cannot be read"))
		}
		c.External = append(c.External, probe.L("node", host))
	}
	for _, s := range f.SimFaults {
		ft, err := simulate.ParseFault(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--simulate.fault: %w", err))
			continue
		}
		c.Faults = append(c.Faults, ft)
	}
	if len(f.SimFaults) > 0 && !f.Simulate {
		errs = append(errs, errors.New("--simulate.fault needs --simulate"))
	}
	if f.Simulate && (f.SimNodes < 0 || f.SimGPUs < 0 || f.SimEngines < 0 || f.SimNPUNodes < 0) {
		errs = append(errs, errors.New("--simulate.* sizes must not be negative"))
	}
	if _, err := regexp.Compile(f.NodeExclude); err != nil {
		errs = append(errs, fmt.Errorf("--node.netdev-exclude: %w", err))
	}
	if f.Ascend && f.AscendTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--ascend.command-timeout %v: must be at least 10ms", f.AscendTimeout))
	}
	for _, t := range f.EngineTargets {
		u, _, _ := strings.Cut(t, "#")
		if _, err := remotewrite.NewClient(remotewrite.ClientOptions{URL: u}); err != nil {
			errs = append(errs, fmt.Errorf("--engine.target: %w", err))
		}
	}
	return c, errors.Join(errs...)
}

// hostname is the node's name for the dcgm-exporter Hostname label.
func (c *Config) hostname() string {
	for _, l := range c.External {
		if l.Name == "node" {
			return l.Value
		}
	}
	h, _ := os.Hostname()
	return h
}
