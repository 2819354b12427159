package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/prometheus/rules"
	"golang.org/x/sync/errgroup"

	"github.com/eagle-eye-ai/eagle-eye/api"
	"github.com/eagle-eye-ai/eagle-eye/diagnosis"
	"github.com/eagle-eye-ai/eagle-eye/fanout/forward"
	"github.com/eagle-eye-ai/eagle-eye/fanout/hotseries"
	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/internal/cpuslots"
	"github.com/eagle-eye-ai/eagle-eye/tsdb"
	ui "github.com/eagle-eye-ai/eagle-eye/web"
)

// endpoints are where a started gateway can be reached.
type endpoints struct {
	HTTP string // host:port
	NATS string // URL of the NATS server the hot series go to; empty when off
	ZMQ  string // ZeroMQ PUB endpoint; empty when off
}

// started reports where the gateway listens once it is ready; tests use it.
type started func(endpoints)

// run builds the gateway from its flags and configuration, serves until ctx ends, then shuts
// down in order: stop accepting, let in-flight requests finish, stop rules, send the alerts
// still queued for Alertmanager, close the window.
func run(ctx context.Context, f *Flags, cfg *Config, logger *slog.Logger, onReady started) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("eagle_eye_gateway"),
	)

	windowDir := ""
	if f.DataDir != "" {
		windowDir = filepath.Join(f.DataDir, "window")
	}
	window, err := tsdb.New(tsdb.Options{
		Window:           time.Duration(cfg.Storage.Window),
		OutOfOrderWindow: time.Duration(cfg.Storage.OutOfOrderWindow),
		MaxSeries:        cfg.Limits.MaxSeries,
		MaxExemplars:     cfg.Storage.MaxExemplars,
		Dir:              windowDir,
		Logger:           logger,
		Registerer:       reg,
	})
	if err != nil {
		return fmt.Errorf("window: %w", err)
	}
	defer func() {
		if err := window.Close(); err != nil {
			logger.Error("close window", "err", err)
		}
	}()

	// Bulk writes and PromQL queries (rules, the HTTP API) share the CPU slots, so that
	// together they leave the spare processors free for network events and small writes.
	cpu := cpuSlots(cfg, reg, logger)
	defer cpu.Close()
	engine := api.NewEngine(api.EngineOptions{
		Timeout:       time.Duration(cfg.Query.Timeout),
		MaxSamples:    cfg.Query.MaxSamples,
		LookbackDelta: time.Duration(cfg.Query.LookbackDelta),
		QueryTracker:  cpuslots.QueryTracker{Slots: cpu},
		Logger:        logger.With("component", "promql"),
		Registerer:    reg,
	})

	var sinks []ingest.Sink
	var fwd *forward.Forwarder
	if len(cfg.RemoteWrite) > 0 {
		queueDir := f.QueueDir
		if queueDir == "" && f.DataDir != "" {
			queueDir = filepath.Join(f.DataDir, "forward")
		}
		if queueDir == "" {
			return errors.New("remote_write is configured but there is no durable place for its queue: set --storage.dir or --forward.queue-dir")
		}
		fwd, err = forward.New(forward.Options{Config: &cfg.Config, Dir: queueDir, Logger: logger, Registerer: reg, CPUs: cfg.cpus})
		if err != nil {
			return fmt.Errorf("forwarding: %w", err)
		}
		defer func() {
			if err := fwd.Close(); err != nil { // after Shutdown, a no-op
				logger.Error("close forwarding queues", "err", err)
			}
		}()
	}
	sinks = append(sinks, window)
	if fwd != nil {
		// A 2xx promises the samples are in every destination's queue. The window goes first:
		// when it refuses a sample (out of order, a duplicate with another value), the
		// handler stops offering the request's body as it is, so the forwarder encodes what
		// it sends and leaves such samples out instead of having the destination refuse the
		// whole body.
		sinks = append(sinks, fwd)
	}
	var hot *hotseries.Publisher
	if cfg.HotSeries.Enabled {
		hot, err = hotseries.New(hotseries.Options{Config: cfg.HotSeries, DataDir: f.DataDir, Logger: logger, Registerer: reg})
		if err != nil {
			return fmt.Errorf("hot series: %w", err)
		}
		// Start binds NATS and ZeroMQ now, so a port in use fails the start, not later.
		if err := hot.Start(ctx); err != nil {
			return fmt.Errorf("hot series: %w", err)
		}
		defer func() {
			if err := hot.Close(); err != nil {
				logger.Error("close hot series", "err", err)
			}
		}()
		// First: the tap takes microseconds and never blocks nor fails a write, so routers
		// hear of a sample before the forwarding queue and the window have taken it. A
		// request that a later sink refuses is sent again; the tap takes a resent sample as
		// the same one.
		sinks = append([]ingest.Sink{hot}, sinks...)
	}

	if f.WebConfigFile != "" {
		if err := web.Validate(f.WebConfigFile); err != nil {
			return fmt.Errorf("web config %s: %w", f.WebConfigFile, err)
		}
	}
	// Listening this early lets the external URL name the port actually bound (":0" in tests).
	ln, err := net.Listen("tcp", f.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.ListenAddress, err)
	}
	defer ln.Close() // for an early return; serving closes it otherwise
	extURL, err := externalURL(f.ExternalURL, ln.Addr().String(), f.WebConfigFile)
	if err != nil {
		return err
	}
	alerts := newAlerter(alerterOptions{ExternalURL: extURL.String(), Logger: logger, Registerer: reg})
	defer func() { // for an early return; the shutdown below stops it otherwise
		sctx, cancel := context.WithTimeout(context.Background(), f.ShutdownGrace)
		defer cancel()
		alerts.Stop(sctx)
	}()

	if f.EvalInterval <= 0 {
		f.EvalInterval = 15 * time.Second
	}
	ruleFiles, catalogFile, cleanupRules, err := ruleSources(f)
	if err != nil {
		return err
	}
	defer cleanupRules()
	catalog, err := diagnosis.LoadCatalog(catalogFile)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	var publisher diagnosis.Publisher
	if hot != nil {
		publisher = diagnosisPublisher{hot}
	}
	diag, err := diagnosis.New(diagnosis.Options{
		Catalog:    catalog,
		Queryable:  window,
		Publisher:  publisher,
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("diagnosis: %w", err)
	}
	if hot != nil {
		hot.SetAnnotate(hardwareDiagnosis(diag), "hardware")
	}
	rulesCtx, cancelRules := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRules()
	queryOffset := f.QueryOffset
	ruleManager := rules.NewManager(&rules.ManagerOptions{
		QueryFunc: rules.EngineQueryFunc(engine, window),
		// The rules' alerts go to the diagnosis and, when configured, to Alertmanager.
		NotifyFunc: func(ctx context.Context, expr string, as ...*rules.Alert) {
			diag.Notify(ctx, expr, as...)
			alerts.Notify(ctx, expr, as...)
		},
		ExternalURL:            extURL,
		Context:                rulesCtx,
		AppendableV2:           window,
		Queryable:              window,
		DefaultRuleQueryOffset: func() time.Duration { return queryOffset },
		Logger:                 logger.With("component", "rules"),
		Registerer:             reg,
	})
	reloadRules := func() error {
		if f.NoDiagnosis {
			return nil
		}
		return diag.Reload(ruleManager, diagnosis.RuleConfig{Files: ruleFiles, CatalogFile: catalogFile, Interval: f.EvalInterval, ExternalURL: extURL.String()})
	}
	if err := reloadRules(); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	if err := alerts.ApplyConfig(cfg.Alerting); err != nil {
		return fmt.Errorf("alerting: %w", err)
	}
	// reload reads the rules, the catalog and the configuration file's alerting section again;
	// the file's other sections size what already runs and apply at the next start. Everything
	// is checked before anything is applied, so a refused reload changes nothing.
	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		alerting := cfg.Alerting
		if f.ConfigFile != "" {
			c, err := LoadConfigFile(f.ConfigFile)
			if err != nil {
				return err
			}
			alerting = c.Alerting
		}
		if err := alerts.Check(alerting); err != nil {
			return fmt.Errorf("alerting: %w", err)
		}
		if err := reloadRules(); err != nil {
			return err
		}
		if err := alerts.ApplyConfig(alerting); err != nil {
			return fmt.Errorf("alerting: %w", err)
		}
		return nil
	}

	write, err := ingest.NewHandler(ingest.Options{
		Logger:      logger,
		Registerer:  reg,
		Sinks:       sinks,
		Limits:      ingestLimits(cfg),
		CPUSlots:    cpu,
		Overload429: cfg.Ingest.OverloadStatus == http.StatusTooManyRequests,
	})
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}

	flagMap := map[string]string{
		"config.file":               f.ConfigFile,
		"web.listen-address":        f.ListenAddress,
		"web.config.file":           f.WebConfigFile,
		"web.external-url":          extURL.String(),
		"forward.queue-dir":         f.QueueDir,
		"rules.files":               strings.Join(ruleFiles, ","),
		"catalog.file":              catalogFile,
		"rules.evaluation-interval": f.EvalInterval.String(),
		"rules.query-offset":        f.QueryOffset.String(),
		"storage.window":            cfg.Storage.Window.String(),
		"storage.dir":               f.DataDir,
		"query.timeout":             cfg.Query.Timeout.String(),
		"query.max-samples":         fmt.Sprint(cfg.Query.MaxSamples),
		"query.lookback-delta":      cfg.Query.LookbackDelta.String(),
		"log.level":                 f.LogLevel,
		"log.format":                f.LogFormat,
	}
	extra := map[string]http.Handler{
		// The built-in page: status, fleet, diagnoses, live engine load, a PromQL box.
		"/":              ui.Handler(ui.Options{Gatherer: reg}),
		"POST /-/reload": reloadHandler(reload, logger),
		// Go's profiler, as Prometheus serves it: CPU, heap and allocation profiles, goroutines.
		"/debug/pprof/":        http.HandlerFunc(pprof.Index),
		"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
	if fwd != nil {
		extra["/api/v1/status/forward"] = fwd.StatusHandler()
	}
	if !f.NoDiagnosis {
		extra["/api/v1/diagnoses"] = diag.Handler()
	}
	httpAPI, err := api.New(api.Options{
		Extra:         extra,
		Storage:       window,
		Engine:        engine,
		Rules:         ruleManager,
		Alertmanagers: alerts,
		Write:         write,
		QueryTimeout:  time.Duration(cfg.Query.Timeout),
		LookbackDelta: time.Duration(cfg.Query.LookbackDelta),
		Build:         buildInfo(),
		Flags:         flagMap,
		Logger:        logger,
		Registerer:    reg,
		Gatherer:      reg,
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}

	srv := &http.Server{
		Handler:           httpAPI,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return window.Run(gctx) })
	g.Go(func() error { return diag.Run(gctx) })
	g.Go(func() error {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				if err := reload(); err != nil {
					logger.Error("reload refused; the previous rules, catalog and alerting configuration stay", "err", err)
				} else {
					logger.Info("rules, catalog and alerting configuration reloaded")
				}
			}
		}
	})
	if hot != nil {
		g.Go(func() error { return hot.Run(gctx) })
	}
	if fwd != nil {
		// Runs until Shutdown below, after the last write was answered.
		g.Go(func() error { return fwd.Run(context.WithoutCancel(gctx)) })
	}
	g.Go(func() error {
		ruleManager.Run()
		return nil
	})
	g.Go(func() error {
		webCfg := f.WebConfigFile
		err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webCfg}, logger.With("component", "http"))
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve http: %w", err)
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("shutting down", "grace", f.ShutdownGrace)
		httpAPI.SetReady(false)
		sctx, cancel := context.WithTimeout(context.Background(), f.ShutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("http shutdown did not finish in time; closing connections", "err", err)
			_ = srv.Close()
		}
		if fwd != nil {
			// Send what the grace period allows; the rest stays queued for the next start.
			fctx, cancel := context.WithTimeout(context.Background(), f.ShutdownGrace)
			defer cancel()
			if err := fwd.Shutdown(fctx); err != nil {
				logger.Error("stop forwarding", "err", err)
			}
		}
		ruleManager.Stop()
		// After the rules, whose last evaluation may have queued resolved alerts.
		actx, cancel := context.WithTimeout(context.Background(), f.ShutdownGrace)
		defer cancel()
		alerts.Stop(actx)
		return nil
	})

	httpAPI.SetReady(true)
	var natsURL, zmqAddr string
	if hot != nil {
		natsURL, zmqAddr = hot.NATSURL(), hot.ZMQAddress()
	}
	logger.Info("gateway ready",
		"address", ln.Addr().String(),
		"nats", natsURL,
		"zmq", zmqAddr,
		"window", cfg.Storage.Window.String(),
		"config", configName(f.ConfigFile),
		"tls_auth", f.WebConfigFile != "",
		"version", buildInfo().Version,
	)
	if onReady != nil {
		onReady(endpoints{HTTP: ln.Addr().String(), NATS: natsURL, ZMQ: zmqAddr})
	}
	return g.Wait()
}

// cpuSlots returns the slots of limits.max_bulk_writes (0: the default, GOMAXPROCS), with
// background threads at runtime.bulk_write_nice and gauges of their use.
func cpuSlots(cfg *Config, reg prometheus.Registerer, logger *slog.Logger) *cpuslots.Slots {
	n := cfg.Limits.MaxBulkWrites
	if n == 0 {
		n = ingest.DefaultMaxBulkWrites()
	}
	// With runtime.bulk_write_nice 0, NewBackground returns plain slots.
	s, err := cpuslots.NewBackground(n, cfg.Runtime.BulkWriteNice)
	if err != nil {
		logger.Warn("bulk writes run at the process's priority (runtime.bulk_write_nice)", "err", err)
	}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "eagle_eye_cpu_slots",
				Help: "Slots for CPU-bound work (bulk writes, PromQL queries): limits.max_bulk_writes.",
			}, func() float64 { return float64(s.Cap()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "eagle_eye_cpu_slots_in_use",
				Help: "CPU slots held now by bulk writes and PromQL queries.",
			}, func() float64 { return float64(s.InUse()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "eagle_eye_cpu_slots_waiting",
				Help: "Bulk writes and PromQL queries waiting for a CPU slot now.",
			}, func() float64 { return float64(s.Waiting()) }),
		)
	}
	return s
}

func ingestLimits(cfg *Config) ingest.Limits {
	// In the configuration 0 means "no limit"; ingest reads 0 as "default", negative as none.
	unlimited := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	unlimited64 := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	return ingest.Limits{
		MaxBodyBytes:        unlimited64(cfg.Limits.MaxBodyBytes),
		MaxDecodedBytes:     unlimited64(cfg.Limits.MaxDecodedBytes),
		MaxSeriesPerRequest: unlimited(cfg.Limits.MaxSeriesPerRequest),
		MaxLabelsPerSeries:  unlimited(cfg.Limits.MaxLabelsPerSeries),
		MaxLabelNameLength:  unlimited(cfg.Limits.MaxLabelNameLength),
		MaxLabelValueLength: unlimited(cfg.Limits.MaxLabelValueLength),
		MaxInflightWrites:   cfg.Limits.MaxInflightWrites, // 0: the default, 2 × CPUs
		MaxBulkWrites:       cfg.Limits.MaxBulkWrites,     // 0: the default, GOMAXPROCS
		MaxInflightWait:     time.Duration(cfg.Ingest.InflightWait),
	}
}

func configName(path string) string {
	if path == "" {
		return "<bundled default>"
	}
	return path
}

func buildInfo() api.BuildInfo {
	b := api.BuildInfo{Version: version.Version, Revision: version.Revision, Branch: version.Branch, BuildUser: version.BuildUser, BuildDate: version.BuildDate}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Revision == "" {
					b.Revision = s.Value
				}
			case "vcs.time":
				if b.BuildDate == "" {
					b.BuildDate = s.Value
				}
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

func versionString() string {
	b := buildInfo()
	return fmt.Sprintf("eagle-eye gateway %s (revision %s, %s)", b.Version, b.Revision, os.Getenv("GOVERSION"))
}
