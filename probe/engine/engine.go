// Package engine scrapes inference engines (vLLM, SGLang) and any other Prometheus text or
// OpenMetrics endpoint (Mooncake master, Ray, a router's endpoint picker) and appends what
// they expose, plus up, scrape_duration_seconds and scrape_samples_scraped per target, as
// Prometheus does. Target labels job and instance are set on every series; a scraped label
// of the same name is kept as exported_<name>, as Prometheus does with honor_labels false.
//
// Targets are static (Options.Targets) and/or discovered from the kubelet's /pods list
// (Options.Kubelet): pods on this node annotated prometheus.io/scrape: "true", with
// prometheus.io/port, prometheus.io/path and prometheus.io/scheme as in Prometheus' common
// convention; they get namespace, pod and container labels.
//
// Goroutines: Collect scrapes every target concurrently and waits for all (each bounded by
// the scrape timeout); it is called by the probe at the engine interval, down to 100 ms.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// Target is one endpoint to scrape.
type Target struct {
	URL    string
	Labels []probe.Label // job, instance and any others; instance defaults to host:port, job to "engine"
}

// ParseTarget reads URL[#name=value,name=value], e.g.
// "http://127.0.0.1:8000/metrics#job=vllm,model=llama".
func ParseTarget(s string) (Target, error) {
	raw, extra, _ := strings.Cut(s, "#")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Target{}, fmt.Errorf("engine target %q: want http(s)://host:port/path", s)
	}
	t := Target{URL: raw}
	if extra != "" {
		for _, kv := range strings.Split(extra, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !model.LabelName(k).IsValidLegacy() || k == "__name__" {
				return Target{}, fmt.Errorf("engine target %q: label %q: want name=value", s, kv)
			}
			t.Labels = append(t.Labels, probe.L(k, v))
		}
	}
	return t.withDefaults(), nil
}

func (t Target) withDefaults() Target {
	u, _ := url.Parse(t.URL)
	has := func(n string) bool {
		for _, l := range t.Labels {
			if l.Name == n {
				return true
			}
		}
		return false
	}
	if !has("instance") && u != nil {
		t.Labels = append(t.Labels, probe.L("instance", u.Host))
	}
	if !has("job") {
		t.Labels = append(t.Labels, probe.L("job", "engine"))
	}
	sort.Slice(t.Labels, func(i, j int) bool { return t.Labels[i].Name < t.Labels[j].Name })
	return t
}

// Options configures the scraper.
type Options struct {
	Targets []Target
	// Kubelet discovers targets from the kubelet's pod list; nil disables discovery.
	Kubelet *Kubelet
	// Timeout bounds one scrape; the collection's deadline (the engine interval) when zero.
	Timeout time.Duration
	// MaxSamples bounds the samples taken from one scrape; a target exposing more fails its
	// scrape (up 0). 100,000 when zero.
	MaxSamples int
	// MaxBodyBytes bounds one response; 32 MiB when zero.
	MaxBodyBytes int64
	Client       *http.Client // a default client when nil
	Logger       *slog.Logger // discards when nil
}

// Scraper scrapes its targets on each Collect.
type Scraper struct {
	o   Options
	hc  *http.Client
	log *slog.Logger

	mu     sync.Mutex
	failed map[string]bool // targets whose last scrape failed, to log changes only
}

// New validates o and returns a scraper; it connects to nothing until Collect.
func New(o Options) (*Scraper, error) {
	if len(o.Targets) == 0 && o.Kubelet == nil {
		return nil, fmt.Errorf("engine: no targets and no discovery: %w", probe.ErrUnavailable)
	}
	for i := range o.Targets {
		if _, err := url.Parse(o.Targets[i].URL); err != nil {
			return nil, fmt.Errorf("engine target %q: %w", o.Targets[i].URL, err)
		}
		o.Targets[i] = o.Targets[i].withDefaults()
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 100_000
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	hc := o.Client
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	}
	return &Scraper{o: o, hc: hc, log: o.Logger, failed: map[string]bool{}}, nil
}

type result struct {
	t        Target
	samples  []scraped
	err      error
	duration time.Duration
}

type scraped struct {
	typ    remotewrite.MetricType
	name   string
	labels []probe.Label
	t      int64
	v      float64
}

// Collect scrapes every target and appends its samples and its up/scrape_duration_seconds.
// A failing target is up 0; the collection fails only when every target does.
func (s *Scraper) Collect(ctx context.Context, a *probe.Appender) error {
	targets := s.o.Targets
	if s.o.Kubelet != nil {
		targets = append(append([]Target(nil), targets...), s.o.Kubelet.Targets(ctx)...)
	}
	if len(targets) == 0 {
		return nil
	}
	res := make([]result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { res[i] = s.scrape(ctx, t, a.Time()) })
	}
	wg.Wait()
	failed := 0
	for _, r := range res {
		up := 1.0
		if r.err != nil {
			up = 0
			failed++
		}
		s.logChange(r)
		for _, x := range r.samples {
			a.Sample(x.typ, x.name, x.t, x.v, x.labels)
		}
		a.Gauge("up", up, r.t.Labels)
		a.Gauge("scrape_duration_seconds", r.duration.Seconds(), r.t.Labels)
		a.Gauge("scrape_samples_scraped", float64(len(r.samples)), r.t.Labels)
	}
	if failed == len(res) {
		return fmt.Errorf("all %d engine targets failed", failed)
	}
	return nil
}

func (s *Scraper) logChange(r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.failed[r.t.URL]
	switch {
	case r.err != nil && !was:
		s.log.Warn("engine scrape failed", "target", r.t.URL, "err", r.err)
	case r.err == nil && was:
		s.log.Info("engine scrape recovered", "target", r.t.URL)
	}
	s.failed[r.t.URL] = r.err != nil
}

const accept = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

func (s *Scraper) scrape(ctx context.Context, t Target, now time.Time) result {
	start := time.Now()
	r := result{t: t}
	if s.o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.Timeout)
		defer cancel()
	}
	r.samples, r.err = s.fetch(ctx, t, now)
	r.duration = time.Since(start)
	if r.err != nil {
		r.samples = nil
	}
	return r
}

func (s *Scraper) fetch(ctx context.Context, t Target, now time.Time) ([]scraped, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "eagle-eye-probe")
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body := io.LimitReader(resp.Body, s.o.MaxBodyBytes+1)
	fams, err := decode(body, expfmt.ResponseFormat(resp.Header))
	if err != nil {
		return nil, err
	}
	return s.flatten(fams, t, now)
}

// Parse decodes an exposition in the given format (a Content-Type value; text when empty)
// into metric families. It is what Collect uses on each response.
func Parse(r io.Reader, contentType string) (map[string]*dto.MetricFamily, error) {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return decode(r, expfmt.ResponseFormat(h))
}

func decode(r io.Reader, f expfmt.Format) (map[string]*dto.MetricFamily, error) {
	switch f.FormatType() {
	case expfmt.TypeOpenMetrics, expfmt.TypeProtoDelim:
		out := map[string]*dto.MetricFamily{}
		dec := expfmt.NewDecoder(r, f)
		for range 1_000_000 { // bounded: at most this many families
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); err != nil {
				if errors.Is(err, io.EOF) {
					return out, nil
				}
				return nil, fmt.Errorf("parse %s: %w", f, err)
			}
			out[mf.GetName()] = mf
		}
		return nil, errors.New("too many metric families")
	default:
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(r)
		if err != nil {
			return nil, fmt.Errorf("parse text exposition: %w", err)
		}
		return fams, nil
	}
}

// flatten turns families into samples with the target's labels.
func (s *Scraper) flatten(fams map[string]*dto.MetricFamily, t Target, now time.Time) ([]scraped, error) {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []scraped
	for _, n := range names {
		mf := fams[n]
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(now.UnixNano())}, mf)
		if err != nil {
			return nil, err
		}
		typ := remotewrite.Unknown
		switch mf.GetType() {
		case dto.MetricType_COUNTER, dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM, dto.MetricType_SUMMARY:
			typ = remotewrite.Counter
		case dto.MetricType_GAUGE:
			typ = remotewrite.Gauge
		}
		for _, smp := range vec {
			if len(out) >= s.o.MaxSamples {
				return nil, fmt.Errorf("more than %d samples in one scrape (engine max samples)", s.o.MaxSamples)
			}
			name := string(smp.Metric[model.MetricNameLabel])
			st := typ
			if mf.GetType() == dto.MetricType_SUMMARY && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") {
				st = remotewrite.Gauge // quantiles
			}
			out = append(out, scraped{typ: st, name: name, labels: mergeLabels(smp.Metric, t.Labels), t: int64(smp.Timestamp), v: float64(smp.Value)})
		}
	}
	return out, nil
}

// mergeLabels returns the scraped labels (without __name__) plus the target's; a scraped
// label the target also sets is renamed exported_<name>.
func mergeLabels(m model.Metric, target []probe.Label) []probe.Label {
	out := make([]probe.Label, 0, len(m)+len(target))
	for k, v := range m {
		if k == model.MetricNameLabel {
			continue
		}
		name := string(k)
		for _, tl := range target {
			if tl.Name == name {
				name = "exported_" + name
				break
			}
		}
		out = append(out, probe.L(name, string(v)))
	}
	return append(out, target...)
}
