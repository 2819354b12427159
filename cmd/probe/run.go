package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/kmsg"
	"github.com/eagle-eye-ai/eagle-eye/probe/nvml"
	"github.com/eagle-eye-ai/eagle-eye/probe/simulate"
	"github.com/eagle-eye-ai/eagle-eye/probe/xid"
	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// started reports the address of the probe's HTTP server once it listens; tests use it.
type started func(addr string)

// run builds the probe from cfg and runs it until ctx ends; then the collectors stop, the
// sender encodes what is left and tries once to send everything it holds, and the HTTP server
// closes.
func run(ctx context.Context, cfg *Config, logger *slog.Logger, onReady started) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("eagle_eye_probe"),
	)
	client, err := remotewrite.NewClient(remotewrite.ClientOptions{
		URL: cfg.GatewayURL, Protocol: cfg.Protocol, Timeout: cfg.GatewayTimeout,
	})
	if err != nil {
		return err
	}
	sender, err := probe.NewSender(probe.SenderOptions{
		Client:           client,
		Interval:         cfg.Interval,
		MaxBufferSamples: cfg.BufferSamples,
		MaxBackoff:       cfg.MaxBackoff,
		FlushTimeout:     cfg.FlushTimeout,
		Logger:           logger.With("component", "sender"),
		Registerer:       reg,
	})
	if err != nil {
		return err
	}
	scheduled, closers, err := buildCollectors(cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	p, err := probe.New(probe.Options{
		Collectors:     scheduled,
		Sink:           sender,
		Interval:       cfg.Interval,
		ExternalLabels: cfg.External,
		Logger:         logger,
		Registerer:     reg,
	})
	if err != nil {
		return err
	}

	var srv *http.Server
	if cfg.ListenAddress != "" {
		ln, err := net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			return fmt.Errorf("--web.listen-address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy") })
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("HTTP server", "err", err)
			}
		}()
		if onReady != nil {
			onReady(ln.Addr().String())
		}
	} else if onReady != nil {
		onReady("")
	}
	names := make([]string, len(scheduled))
	for i, s := range scheduled {
		names[i] = s.Name
	}
	logger.Info("probe started", "gateway", cfg.GatewayURL, "protocol", cfg.Protocol.String(),
		"interval", cfg.Interval, "collectors", names, "external_labels", fmt.Sprint(cfg.External))

	// The sender outlives the collectors so that their last samples are flushed.
	sendCtx, stopSend := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { _ = sender.Run(sendCtx) })
	_ = p.Run(ctx)
	stopSend()
	wg.Wait()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	logger.Info("probe stopped")
	return nil
}

// buildCollectors makes the collectors the flags ask for; closers release what they hold.
func buildCollectors(cfg *Config, logger *slog.Logger) ([]probe.Scheduled, []func(), error) {
	if cfg.Simulate {
		fleet, err := simulate.New(simulate.Options{
			Nodes: cfg.SimNodes, GPUsPerNode: cfg.SimGPUs, EnginesPerNode: cfg.SimEngines,
			NPUNodes: npuNodes(cfg.SimNPUNodes), Faults: cfg.Faults,
		})
		if err != nil {
			return nil, nil, err
		}
		logger.Warn("SIMULATED FLEET: every series this probe sends is synthetic, not read from this node; each synthetic node reports eagle_eye_probe_simulated 1",
			"nodes", cfg.SimNodes, "gpus_per_node", cfg.SimGPUs, "engines_per_node", cfg.SimEngines,
			"npu_nodes", cfg.SimNPUNodes, "faults", len(cfg.Faults))
		return []probe.Scheduled{{Name: "simulate", Collector: fleet}}, nil, nil
	}
	var (
		out     []probe.Scheduled
		closers []func()
	)
	tracker := xid.NewTracker()
	if cfg.NVML {
		o := nvml.Options{
			Hostname: cfg.hostname(), LibraryPath: cfg.NVMLLibrary, Tracker: tracker,
			Logger: logger.With("collector", "nvml"),
		}
		if cfg.newNVML != nil {
			out = append(out, probe.Scheduled{Name: "nvml", Collector: cfg.newNVML(o)})
		} else {
			c := nvml.New(o)
			out = append(out, probe.Scheduled{Name: "nvml", Collector: c})
			closers = append(closers, c.Close)
		}
	}
	if cfg.Kmsg {
		r, err := kmsg.New(kmsg.Options{Path: cfg.KmsgPath, Tracker: tracker, Logger: logger.With("collector", "kmsg")})
		if err != nil {
			return nil, nil, err
		}
		out = append(out, probe.Scheduled{Name: "kmsg", Collector: r})
	}
	if cfg.NVML || cfg.Kmsg {
		out = append(out, probe.Scheduled{Name: "xid", Collector: tracker})
	}
	more, err := buildMore(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	return append(out, more...), closers, nil
}

// npuNodes maps the flag (0 = none) to simulate.Options (0 = default, negative = none).
func npuNodes(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
