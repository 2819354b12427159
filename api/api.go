package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// Storage is what the API reads: samples, exemplars, metadata and head statistics.
type Storage interface {
	storage.SampleAndChunkQueryable
	storage.ExemplarQueryable
	// Metadata returns metadata per metric family: for one family when metric is non-empty,
	// for at most limit families when limit > 0.
	Metadata(metric string, limit int) map[string][]metadata.Metadata
	// Stats returns cardinality statistics for /api/v1/status/tsdb.
	Stats(statsByLabelName string, limit int) (*ptsdb.Stats, error)
}

// BuildInfo identifies the running binary in /api/v1/status/buildinfo.
type BuildInfo struct {
	Version, Revision, Branch, BuildUser, BuildDate string
}

// Options configures the API.
type Options struct {
	Storage Storage
	Engine  promql.QueryEngine
	// Rules lists rule groups and alerts for /api/v1/rules and /api/v1/alerts. Nil serves
	// empty lists.
	Rules v1.RulesRetriever
	// Alertmanagers lists the Alertmanagers alerts are sent to, and those relabelling
	// dropped, for /api/v1/alertmanagers. Nil serves empty lists.
	Alertmanagers v1.AlertmanagerRetriever
	// Write, when set, is mounted at POST /api/v1/write.
	Write http.Handler
	// Extra handlers mounted as given, e.g. the gateway's own endpoints.
	Extra map[string]http.Handler
	// QueryTimeout caps each query; a request's own timeout parameter may lower it.
	QueryTimeout  time.Duration
	LookbackDelta time.Duration
	Build         BuildInfo
	// Flags are shown at /api/v1/status/flags.
	Flags      map[string]string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// API is the HTTP API. Its zero value is not usable; call New.
type API struct {
	opts    Options
	handler http.Handler
	ready   atomic.Bool
	start   time.Time
}

// New builds the API's handler tree. It starts nothing.
func New(opts Options) (*API, error) {
	if opts.Storage == nil || opts.Engine == nil {
		return nil, errors.New("api: storage and engine are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	if opts.LookbackDelta == 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	a := &API{opts: opts, start: time.Now()}
	rr := opts.Rules
	if rr == nil {
		rr = noRules{}
	}
	var ar v1.AlertmanagerRetriever = noAlertmanagers{}
	if opts.Alertmanagers != nil {
		ar = opts.Alertmanagers
	}
	build := &v1.PrometheusVersion{
		Version: opts.Build.Version, Revision: opts.Build.Revision, Branch: opts.Build.Branch,
		BuildUser: opts.Build.BuildUser, BuildDate: opts.Build.BuildDate, GoVersion: runtime.Version(),
	}
	flags := opts.Flags
	if flags == nil {
		flags = map[string]string{}
	}
	cfg := config.DefaultConfig
	papi := v1.NewAPI(
		opts.Engine,
		opts.Storage,
		nil, // no appender: writes come through Options.Write
		opts.Storage,
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		func(context.Context) v1.AlertmanagerRetriever { return ar },
		func() config.Config { return cfg },
		flags,
		v1.GlobalURLOptions{ListenAddress: "", Host: "", Scheme: "http"},
		a.readyHandler,
		adminStats{opts.Storage},
		"",    // no TSDB directory
		false, // admin endpoints off
		true,  // search endpoints on
		10000,
		opts.Logger.With("component", "api"),
		func(context.Context) v1.RulesRetriever { return rr },
		0, 0, 0, // no remote read
		false,
		regexp.MustCompile(".*"),
		a.runtimeInfo,
		build,
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		opts.Gatherer,
		opts.Registerer,
		nil,
		false, nil, // remote write is served by Options.Write
		false, false, false, // no OTLP
		opts.LookbackDelta,
		false, false,
		nil,
		features.NewRegistry(),
		v1.OpenAPIOptions{},
		nil,
		false,
		opts.QueryTimeout,
	)
	router := route.New()
	papi.Register(router.WithPrefix("/api/v1"))

	mux := http.NewServeMux()
	mux.Handle("/api/v1/", router)
	mux.HandleFunc("GET /api/v1/metadata", a.metadata)
	if opts.Write != nil {
		mux.Handle("/api/v1/write", opts.Write)
	}
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "Eagle Eye gateway is Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "Eagle Eye gateway is not ready.")
			return
		}
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "Eagle Eye gateway is Ready.")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError)}))
	for p, h := range opts.Extra {
		mux.Handle(p, h)
	}
	a.handler = mux
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// SetReady marks the gateway ready (or not) for /-/ready and the query endpoints.
func (a *API) SetReady(ready bool) { a.ready.Store(ready) }

func (a *API) readyHandler(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
			return
		}
		f(w, r)
	}
}

func (a *API) runtimeInfo() (v1.RuntimeInfo, error) {
	cwd, _ := os.Getwd()
	return v1.RuntimeInfo{
		StartTime:      a.start,
		CWD:            cwd,
		GoroutineCount: runtime.NumGoroutine(),
		GOMAXPROCS:     runtime.GOMAXPROCS(0),
		GOGC:           os.Getenv("GOGC"),
		GODEBUG:        os.Getenv("GODEBUG"),
	}, nil
}

// metadata answers /api/v1/metadata from what senders sent, in Prometheus' JSON shape.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody("bad_data", "limit must be a number"))
			return
		}
		limit = n
	}
	if limit == 0 {
		writeJSON(w, http.StatusOK, successBody(map[string][]metadata.Metadata{}))
		return
	}
	writeJSON(w, http.StatusOK, successBody(a.opts.Storage.Metadata(r.FormValue("metric"), max(limit, 0))))
}

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return []string{} }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("the gateway scrapes no targets")
}

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

var errNotSupported = errors.New("not supported by the gateway's in-memory window")

// adminStats gives the API's TSDB status endpoints what the window has.
type adminStats struct{ s Storage }

func (adminStats) CleanTombstones() error { return errNotSupported }
func (adminStats) Delete(context.Context, int64, int64, ...*labels.Matcher) error {
	return errNotSupported
}
func (adminStats) Snapshot(string, bool) error { return errNotSupported }
func (a adminStats) Stats(name string, limit int) (*ptsdb.Stats, error) {
	return a.s.Stats(name, limit)
}
func (adminStats) WALReplayStatus() (ptsdb.WALReplayStatus, error) {
	return ptsdb.WALReplayStatus{}, nil
}
func (adminStats) BlockMetas() ([]ptsdb.BlockMeta, error) { return []ptsdb.BlockMeta{}, nil }
