// Command gateway is the Eagle Eye gateway: it receives Prometheus remote write, keeps a short
// in-memory window, and answers PromQL like Prometheus.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
)

// Flags holds the command line.
type Flags struct {
	ConfigFile     string
	ListenAddress  string
	WebConfigFile  string
	ExternalURL    string
	Window         model.Duration
	DataDir        string
	QueryTimeout   model.Duration
	QueryMaxSample int
	LookbackDelta  model.Duration
	LogLevel       string
	LogFormat      string
	ShutdownGrace  time.Duration
	QueueDir       string
	NoDiagnosis    bool
	RuleFiles      []string
	CatalogFile    string
	EvalInterval   time.Duration
	QueryOffset    time.Duration
	// Hot-series transports; nil when the flag was not given (the config file decides).
	NATSListen, NATSURL, ZMQBind *string
}

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli parses args, runs the gateway until SIGINT/SIGTERM and returns the exit code.
func cli(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("gateway", "Eagle Eye gateway: receives Prometheus remote write (1.0 and 2.0) from probes and Prometheus servers, keeps a short in-memory window of recent samples, and answers the Prometheus HTTP query API over it, so Grafana can use it as a Prometheus datasource.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(versionString())
	exitCode := -1 // set by --help and --version, which end the program
	app.Terminate(func(code int) { exitCode = code })

	var f Flags
	app.Flag("config.file", "Gateway configuration file (YAML). When absent, the bundled defaults are used; a file only needs the keys it changes. Unknown keys and invalid values are refused with their line.").
		PlaceHolder("PATH").StringVar(&f.ConfigFile)
	app.Flag("web.listen-address", "Address the HTTP server listens on: remote write at /api/v1/write, the Prometheus query API at /api/v1/*, health at /-/healthy and /-/ready, self-metrics at /metrics.").
		Default(":9095").StringVar(&f.ListenAddress)
	app.Flag("web.config.file", "Web configuration file in the Prometheus exporter-toolkit format, enabling TLS, mutual TLS and basic authentication for every endpoint (write and query alike).").
		PlaceHolder("PATH").StringVar(&f.WebConfigFile)
	app.Flag("web.external-url", "The URL under which the gateway is reached from outside, e.g. behind a reverse proxy. Alerts sent to Alertmanager link back to it (generatorURL). Default: http://<hostname>:<port of --web.listen-address>/, https when --web.config.file enables TLS.").
		PlaceHolder("URL").StringVar(&f.ExternalURL)
	app.Flag("storage.window", "How much recent data the in-memory window keeps and can query. Overrides storage.window from the configuration file.").
		PlaceHolder("30m").SetValue(&f.Window)
	app.Flag("storage.dir", "Directory for the gateway's files: the window's memory-mapped head chunks. Its window/ subdirectory is emptied at start. Empty means a fresh temporary directory, removed at exit.").
		Default("").StringVar(&f.DataDir)
	app.Flag("query.timeout", "Maximum time a query may take before it is aborted. Overrides query.timeout from the configuration file.").
		PlaceHolder("2m").SetValue(&f.QueryTimeout)
	app.Flag("query.max-samples", "Maximum number of samples a single query can load into memory. Overrides query.max_samples from the configuration file.").
		PlaceHolder("50000000").IntVar(&f.QueryMaxSample)
	app.Flag("query.lookback-delta", "How far back an instant selector looks for a sample. Overrides query.lookback_delta from the configuration file.").
		PlaceHolder("5m").SetValue(&f.LookbackDelta)
	app.Flag("log.level", "Only log messages of this severity or above: debug, info, warn, error.").
		Default("info").EnumVar(&f.LogLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Log format: logfmt or json.").
		Default("logfmt").EnumVar(&f.LogFormat, "logfmt", "json")
	app.Flag("forward.queue-dir", "Directory of the durable forwarding queues (one per remote_write destination). Default: forward/ under --storage.dir. A write is acknowledged only once it is in every destination's queue here, so it must survive restarts: with remote_write configured, one of the two must be set.").
		PlaceHolder("PATH").StringVar(&f.QueueDir)
	var diagnosisOn bool
	app.Flag("diagnosis.enabled", "Evaluate the diagnosis rules and serve /api/v1/diagnoses. With --no-diagnosis.enabled the gateway evaluates no rules at all.").
		Default("true").BoolVar(&diagnosisOn)
	app.Flag("rules.files", "Diagnosis rule files (Prometheus format), as a glob; repeatable. Default: the bundled rules/*.rules.yml. Reloaded on SIGHUP and POST /-/reload; a bad file is refused with its line and the old rules stay.").
		PlaceHolder("GLOB").StringsVar(&f.RuleFiles)
	app.Flag("catalog.file", "Fault catalog: pattern to conclusion, handling steps and router action, with model/driver/firmware overrides. Default: the bundled rules/catalog.yaml. Reloaded with the rules.").
		PlaceHolder("PATH").StringVar(&f.CatalogFile)
	app.Flag("rules.evaluation-interval", "How often rule groups without an interval of their own are evaluated.").
		Default("15s").DurationVar(&f.EvalInterval)
	app.Flag("rules.query-offset", "How far in the past rules evaluate, so that samples still in flight from the probes are counted (Prometheus' rule_query_offset).").
		Default("2s").DurationVar(&f.QueryOffset)
	app.Flag("web.shutdown-timeout", "On SIGTERM, how long in-flight requests may take to finish before the server closes them.").
		Default("15s").DurationVar(&f.ShutdownGrace)

	var natsListen, natsURL, zmqBind string
	var natsListenSet, natsURLSet, zmqBindSet bool
	app.Flag("nats.listen-address", "Address the embedded NATS server listens on for routers (hot series, JetStream KV of the latest state, diagnoses). Empty: in-process only. Overrides hot_series.nats.listen_address.").
		PlaceHolder("127.0.0.1:4222").IsSetByUser(&natsListenSet).StringVar(&natsListen)
	app.Flag("nats.url", "URL of an external NATS server or cluster to publish to instead of the embedded one. Credentials and TLS go in hot_series.nats of the configuration file. Overrides hot_series.nats.url.").
		PlaceHolder("nats://HOST:4222").IsSetByUser(&natsURLSet).StringVar(&natsURL)
	app.Flag("zmq.bind", "ZeroMQ PUB endpoint the hot-series feed is published on, multipart [topic, json]. Overrides hot_series.zmq.bind.").
		PlaceHolder("tcp://127.0.0.1:5556").IsSetByUser(&zmqBindSet).StringVar(&zmqBind)

	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 2
	}
	if exitCode >= 0 {
		return exitCode
	}
	f.NoDiagnosis = !diagnosisOn
	if f.ExternalURL != "" {
		if _, err := externalURL(f.ExternalURL, "", ""); err != nil {
			fmt.Fprintf(stderr, "gateway: %v\n", err)
			return 2
		}
	}
	if natsListenSet {
		f.NATSListen = &natsListen
	}
	if natsURLSet {
		f.NATSURL = &natsURL
	}
	if zmqBindSet {
		f.ZMQBind = &zmqBind
	}
	logger := newLogger(f.LogLevel, f.LogFormat, stderr)
	cfg, err := LoadConfigFile(f.ConfigFile)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		fmt.Fprintf(stderr, "gateway: invalid configuration:\n%v\n", err)
		return 2
	}
	applyFlags(cfg, &f)
	if errs := cfg.validate(); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stderr, "gateway: %s: %s\n", e.path, e.msg)
		}
		return 2
	}

	tuneRuntime(cfg, logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &f, cfg, logger, nil); err != nil {
		logger.Error("gateway stopped with an error", "err", err)
		return 1
	}
	return 0
}

// applyFlags lets command-line flags override the configuration file.
func applyFlags(cfg *Config, f *Flags) {
	if f.Window != 0 {
		cfg.Storage.Window = f.Window
	}
	if f.QueryTimeout != 0 {
		cfg.Query.Timeout = f.QueryTimeout
	}
	if f.QueryMaxSample != 0 {
		cfg.Query.MaxSamples = f.QueryMaxSample
	}
	if f.LookbackDelta != 0 {
		cfg.Query.LookbackDelta = f.LookbackDelta
	}
	if f.NATSListen != nil {
		cfg.HotSeries.NATS.ListenAddress = *f.NATSListen
	}
	if f.NATSURL != nil {
		cfg.HotSeries.NATS.URL = *f.NATSURL
	}
	if f.ZMQBind != nil {
		cfg.HotSeries.ZMQ.Bind = *f.ZMQBind
	}
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	lvl := promslog.NewLevel()
	_ = lvl.Set(level)
	fmtv := promslog.NewFormat()
	_ = fmtv.Set(format)
	return promslog.New(&promslog.Config{Level: lvl, Format: fmtv, Writer: w})
}

// tuneRuntime applies the runtime section unless the environment already decided. It also
// settles limits.max_bulk_writes (0: the CPUs the process may use, before spare processors are
// added), which the spare processors are reckoned against.
func tuneRuntime(cfg *Config, logger *slog.Logger) {
	rc := cfg.Runtime
	cpus := runtime.GOMAXPROCS(0) // Go's default: the CPUs of the machine or the container's quota
	cfg.cpus = cpus
	if cfg.Limits.MaxBulkWrites == 0 {
		cfg.Limits.MaxBulkWrites = cpus
	}
	if rc.SpareProcessors > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(cpus + rc.SpareProcessors)
		logger.Debug("spare processors added", "gomaxprocs", cpus+rc.SpareProcessors, "bulk_writes", cfg.Limits.MaxBulkWrites)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(rc.GOGC)
	}
	if rc.MemoryLimitRatio > 0 && os.Getenv("GOMEMLIMIT") == "" {
		limit, err := memlimit.Set(
			memlimit.WithRatio(rc.MemoryLimitRatio),
			memlimit.WithProvider(memlimit.FromCgroup),
		)
		if err == nil && limit > 0 && limit < math.MaxInt64 {
			logger.Info("memory limit set from the container's", "gomemlimit_bytes", limit)
		}
	}
}
