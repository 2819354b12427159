package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
	yamlv2 "go.yaml.in/yaml/v2"
)

// alerter sends the rules' alerts to the Alertmanagers of the alerting section: Prometheus'
// notifier manager, fed by a discovery manager named "notify", wired as Prometheus wires them.
// Nothing runs until a configuration names an Alertmanager; the notifier's metrics are
// registered from the start, as in Prometheus.
//
// Notify may be called from any goroutine. ApplyConfig and Stop are serialised by mu; after
// Stop, ApplyConfig is refused.
type alerter struct {
	logger   *slog.Logger
	reg      prometheus.Registerer
	notifier *notifier.Manager
	send     rules.NotifyFunc
	running  atomic.Bool // alerts go to the notifier only once it runs

	mu        sync.Mutex
	stopped   bool
	discovery *discovery.Manager
	cancelSD  context.CancelFunc
	notifyRun chan struct{} // closed when the notifier's Run returns
	sdRun     chan struct{} // closed when the discovery manager's Run returns
}

type alerterOptions struct {
	// ExternalURL is where the gateway is reached from outside: alerts' generatorURL starts
	// with it.
	ExternalURL string
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// notifierOptions are Prometheus' defaults for its --alertmanager.* flags.
func notifierOptions(reg prometheus.Registerer) *notifier.Options {
	return &notifier.Options{
		QueueCapacity:   10000,
		DrainOnShutdown: true,
		MaxBatchSize:    notifier.DefaultMaxBatchSize,
		Registerer:      reg,
	}
}

func newAlerter(o alerterOptions) *alerter {
	logger := o.Logger.With("component", "notifier")
	n := notifier.NewManager(notifierOptions(o.Registerer), model.UTF8Validation, logger)
	return &alerter{
		logger:   logger,
		reg:      o.Registerer,
		notifier: n,
		send:     rules.SendAlerts(n, o.ExternalURL),
	}
}

// Notify is the rules manager's NotifyFunc for Alertmanager: firing alerts at every
// evaluation, resolved ones for a while after they resolve. It queues and never blocks; a
// full queue drops its oldest alerts, counted in prometheus_notifications_dropped_total.
func (a *alerter) Notify(ctx context.Context, expr string, alerts ...*rules.Alert) {
	if a.running.Load() {
		a.send(ctx, expr, alerts...)
	}
}

// Check reports whether ac would be accepted by ApplyConfig, changing nothing: it builds the
// HTTP clients (TLS files, proxies, credentials files) on a throwaway notifier.
func (a *alerter) Check(ac config.AlertingConfig) error {
	if len(ac.AlertmanagerConfigs) == 0 {
		return nil
	}
	dry := notifier.NewManager(notifierOptions(nil), model.UTF8Validation, slog.New(slog.DiscardHandler))
	return dry.ApplyConfig(notifierConfig(ac))
}

// ApplyConfig applies an alerting section, starting the notifier and its discovery when it is
// the first to name an Alertmanager. Nothing changes when it returns an error.
func (a *alerter) ApplyConfig(ac config.AlertingConfig) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return errors.New("alerting: shutting down")
	}
	if a.discovery == nil && len(ac.AlertmanagerConfigs) == 0 {
		return nil
	}
	if err := a.Check(ac); err != nil {
		return err
	}
	if err := a.notifier.ApplyConfig(notifierConfig(ac)); err != nil {
		return err
	}
	if a.discovery == nil {
		if err := a.start(); err != nil {
			return err
		}
	}
	sd := make(map[string]discovery.Configs, len(ac.AlertmanagerConfigs))
	for name, am := range ac.AlertmanagerConfigs.ToMap() {
		sd[name] = am.ServiceDiscoveryConfigs
	}
	// After the notifier's: the notifier must know a set before discovery reports its targets.
	return a.discovery.ApplyConfig(sd)
}

// start runs the discovery and notifier managers; called with mu held, once.
func (a *alerter) start() error {
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(a.reg)
	if err != nil {
		return fmt.Errorf("alertmanager discovery: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := discovery.NewManager(ctx, a.logger.With("component", "discovery manager notify"), a.reg, sdMetrics, discovery.Name("notify"))
	if d == nil { // it has logged why
		cancel()
		return errors.New("alertmanager discovery: cannot create the discovery manager")
	}
	a.discovery, a.cancelSD = d, cancel
	a.sdRun, a.notifyRun = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(a.sdRun)
		_ = d.Run() // returns ctx's error once cancelled
	}()
	go func() {
		defer close(a.notifyRun)
		a.notifier.Run(d.SyncCh())
	}()
	a.running.Store(true)
	a.logger.Info("sending alerts to Alertmanager")
	return nil
}

// Stop stops the notifier, sending what is queued until ctx ends, then its discovery. Call it
// after the rules manager has stopped, so the last alerts, resolved ones included, are queued.
// Later calls do nothing.
func (a *alerter) Stop(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	a.stopped = true
	if a.discovery == nil {
		return
	}
	a.notifier.Stop()
	select {
	case <-a.notifyRun:
	case <-ctx.Done():
		a.logger.Warn("alerts still queued for Alertmanager at the end of the shutdown grace period are dropped")
	}
	a.cancelSD()
	<-a.sdRun
}

// Alertmanagers lists the Alertmanagers alerts are sent to, for /api/v1/alertmanagers.
func (a *alerter) Alertmanagers() []*url.URL { return a.notifier.Alertmanagers() }

// DroppedAlertmanagers lists the discovered Alertmanagers that relabelling dropped.
func (a *alerter) DroppedAlertmanagers() []*url.URL { return a.notifier.DroppedAlertmanagers() }

// notifierConfig is the Prometheus configuration the notifier reads: the alerting section
// with Prometheus' global defaults (no external labels).
func notifierConfig(ac config.AlertingConfig) *config.Config {
	return &config.Config{GlobalConfig: config.DefaultGlobalConfig, AlertingConfig: ac}
}

// externalURL is --web.external-url, or as Prometheus derives it: http(s)://<hostname>:<port>
// of the address the gateway listens on, https when the web configuration enables TLS. The
// path keeps no trailing slash, so links can be appended to it.
func externalURL(flag, listenAddr, webConfigFile string) (*url.URL, error) {
	u := flag
	if u == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		_, port, err := net.SplitHostPort(listenAddr)
		if err != nil {
			return nil, err
		}
		scheme := "http"
		if webConfigHasTLS(webConfigFile) {
			scheme = "https"
		}
		u = fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, port))
	}
	eu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("--web.external-url %q: %w", u, err)
	}
	if eu.Scheme != "http" && eu.Scheme != "https" || eu.Host == "" {
		return nil, fmt.Errorf("--web.external-url %q: want an absolute http or https URL", u)
	}
	p := strings.TrimRight(eu.Path, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	eu.Path = p
	return eu, nil
}

// webConfigHasTLS reports whether the exporter-toolkit web configuration at path enables TLS.
// An unreadable file counts as no TLS: web.Validate reports it.
func webConfigHasTLS(path string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var c web.Config
	if yamlv2.Unmarshal(b, &c) != nil {
		return false
	}
	return c.TLSConfig.IsEnabled()
}
