package hotseries

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Modes of a group.
const (
	// ModeInterval publishes every endpoint that received samples since the last round, once
	// per interval.
	ModeInterval = "interval"
	// ModeOnIngest publishes an endpoint as soon as a write carries its samples, at most once
	// per min_gap per endpoint.
	ModeOnIngest = "on-ingest"
)

// Aggregations combine the series of one endpoint (several engines, several devices) into one
// field value.
const (
	AggSum     = "sum"
	AggMax     = "max"
	AggMin     = "min"
	AggAvg     = "avg"
	AggLast    = "last"     // the series with the newest sample
	AggCount   = "count"    // how many series report
	AggAllZero = "all_zero" // 1 when every series is 0, else 0 (health flags)
)

// Defaults for the zero values of a group.
const (
	DefaultInterval     = time.Second
	MinInterval         = 100 * time.Millisecond
	DefaultMinGap       = 100 * time.Millisecond
	DefaultStaleAfter   = 2 * time.Second
	DefaultRemovedAfter = time.Minute
	// DefaultSubject is the NATS subject template of a group that names none.
	DefaultSubject = "eagle_eye.hot.{group}"
	// RoutingSubject is the subject existing routers subscribe to.
	RoutingSubject = "eagle_eye.routing_metrics"
	// DefaultBucket is the JetStream KV bucket holding the last message per endpoint.
	DefaultBucket = "eagle_eye_hot_series"
)

// Config is the hot-series publisher's configuration: the `hot_series:` section of the
// gateway's configuration file. Zero values mean the documented default.
type Config struct {
	// Enabled turns the publisher on (the default).
	Enabled bool `yaml:"enabled"`
	// BuiltinGroups names the built-in groups to publish: any of routing, network, hardware.
	// All three by default; [] publishes only Groups.
	BuiltinGroups []string `yaml:"builtin_groups"`
	// Groups are groups of one's own. A group named like a built-in one replaces it.
	Groups []GroupConfig `yaml:"groups,omitempty"`
	// MaxEndpointsPerGroup bounds the endpoints tracked per group (default 10000); an
	// endpoint over it is not tracked and its samples are counted as dropped.
	MaxEndpointsPerGroup int `yaml:"max_endpoints_per_group"`
	// MaxSeriesPerEndpoint bounds the series tracked per endpoint (default 1024).
	MaxSeriesPerEndpoint int `yaml:"max_series_per_endpoint"`
	// MaxCachedSeries bounds the series-membership cache, hot or not (default 1048576).
	MaxCachedSeries int `yaml:"max_cached_series"`

	NATS NATSConfig `yaml:"nats"`
	ZMQ  ZMQConfig  `yaml:"zmq"`
}

// NATSConfig configures the NATS side: an embedded server (no URL) or an external one.
type NATSConfig struct {
	// Enabled publishes to NATS (the default).
	Enabled bool `yaml:"enabled"`
	// URL of an external NATS server or cluster (comma-separated). Empty: run an embedded
	// server in the gateway process (--nats.url).
	URL string `yaml:"url,omitempty"`
	// ListenAddress is where the embedded server accepts routers, host:port; port 0 picks a
	// free one. Empty: no listener, only in-process connections (--nats.listen-address).
	ListenAddress string `yaml:"listen_address"`
	// StoreDir is the embedded server's JetStream directory. Empty: <data dir>/nats, or a
	// temporary directory removed on Close when there is no data dir.
	StoreDir string `yaml:"store_dir,omitempty"`
	// Bucket is the JetStream KV bucket holding the last message per endpoint.
	Bucket string `yaml:"kv_bucket"`
	// KVStorage is file (the default; survives a server restart) or memory.
	KVStorage string `yaml:"kv_storage"`
	// KVTTL drops keys not updated for this long (default 1h; at least 2 × removed_after).
	KVTTL model.Duration `yaml:"kv_ttl"`
	// KVUpdateInterval is the most often an endpoint's KV entry is rewritten (default 1s; 0:
	// on every message). Every message still goes out on the subject at once; the KV entry
	// is for routers that join late, and rewriting it for every on-ingest message would
	// double the server's work and slow the live feed. Status changes (stale, removed,
	// fresh again) are written at once, and an entry left behind is brought up to date
	// within the interval.
	KVUpdateInterval model.Duration `yaml:"kv_update_interval"`
	// ReconnectBufferBytes bounds what is buffered while disconnected (default 8 MiB); past
	// it messages are dropped and counted.
	ReconnectBufferBytes int `yaml:"reconnect_buffer_bytes"`

	// Credentials for an external server; at most one of user/password, token, creds file,
	// nkey seed file.
	User         string           `yaml:"user,omitempty"`
	Password     commoncfg.Secret `yaml:"password,omitempty"`
	Token        commoncfg.Secret `yaml:"token,omitempty"`
	CredsFile    string           `yaml:"creds_file,omitempty"`
	NKeySeedFile string           `yaml:"nkey_seed_file,omitempty"`
	// TLS for an external server: CA bundle, and a client certificate for mutual TLS.
	TLSCAFile   string `yaml:"tls_ca_file,omitempty"`
	TLSCertFile string `yaml:"tls_cert_file,omitempty"`
	TLSKeyFile  string `yaml:"tls_key_file,omitempty"`
}

// ZMQConfig configures the ZeroMQ PUB socket.
type ZMQConfig struct {
	// Enabled publishes on ZeroMQ (the default).
	Enabled bool `yaml:"enabled"`
	// Bind is the PUB socket's endpoint (--zmq.bind), e.g. tcp://127.0.0.1:5556; port 0
	// picks a free one.
	Bind string `yaml:"bind"`
	// HighWaterMark is the socket's send queue length in messages (default 10000); past it
	// the socket drops.
	HighWaterMark int `yaml:"high_water_mark"`
	// QueueSize is the publisher's own queue in front of the socket (default 4096); past it
	// messages are dropped and counted.
	QueueSize int `yaml:"queue_size"`
}

// GroupConfig is one group of hot series published together.
type GroupConfig struct {
	// Name identifies the group in messages, keys and subjects: [A-Za-z0-9_-]+.
	Name string `yaml:"name"`
	// Selectors are PromQL series selectors; a series belongs to the group when it matches
	// any of them and its metric name feeds one of Fields. Empty: any series.
	Selectors []string `yaml:"selectors,omitempty"`
	// EndpointLabels identify an endpoint; a series lacking any of them is not published.
	EndpointLabels []string `yaml:"endpoint_labels"`
	// ModelLabel is copied into the message's model; empty for none.
	ModelLabel string `yaml:"model_label,omitempty"`
	// InfoLabels are copied into the message's labels when an endpoint's series carry them
	// (static capabilities: device model, driver, link layer...).
	InfoLabels []string `yaml:"info_labels,omitempty"`
	// DeviceLabel names the label that tells devices apart (gpu, device); fields with
	// per_device also appear per device under the message's devices.
	DeviceLabel string `yaml:"device_label,omitempty"`
	// Fields maps a field name to where its value comes from.
	Fields map[string]FieldConfig `yaml:"fields"`
	// NATSSubject is the subject template: {group}, {endpoint} and {model} are replaced.
	// Default eagle_eye.hot.{group} (eagle_eye.routing_metrics for the routing group).
	NATSSubject string `yaml:"nats_subject,omitempty"`
	// ZMQTopic is the ZeroMQ topic template, same variables; default: the NATS subject.
	ZMQTopic string `yaml:"zmq_topic,omitempty"`
	// Mode is interval (default) or on-ingest.
	Mode string `yaml:"mode,omitempty"`
	// Interval between publishing rounds in interval mode (default 1s, at least 100ms).
	Interval model.Duration `yaml:"interval,omitempty"`
	// MinGap is the least time between two messages for one endpoint in on-ingest mode
	// (default 100ms).
	MinGap model.Duration `yaml:"min_gap,omitempty"`
	// StaleAfter: an endpoint with no samples for this long is published once as stale
	// (default 2s). A series silent this long no longer counts in its endpoint's fields.
	StaleAfter model.Duration `yaml:"stale_after,omitempty"`
	// RemovedAfter: an endpoint silent this long is published as removed, deleted from the
	// KV bucket and forgotten (default 1m).
	RemovedAfter model.Duration `yaml:"removed_after,omitempty"`
}

// FieldConfig says how one field is computed. In YAML it is either a list of sources or a
// mapping with sources and options:
//
//	kv_cache_usage: [vllm:kv_cache_usage_perc, vllm:gpu_cache_usage_perc, sglang:token_usage]
//	num_requests_waiting: {sources: [vllm:num_requests_waiting, sglang:num_queue_reqs], aggregate: sum}
type FieldConfig struct {
	// Sources are alternatives in order of preference: per endpoint, the first one with
	// fresh data gives the value. This is how one field maps old and new engine names.
	Sources []SourceConfig `yaml:"sources"`
	// Aggregate combines an endpoint's series of the chosen source: sum (default), max, min,
	// avg, last, count or all_zero. Ratios are always Σ numerator / Σ denominator.
	Aggregate string `yaml:"aggregate,omitempty"`
	// PerDevice also reports the field per device (the group's device_label).
	PerDevice bool `yaml:"per_device,omitempty"`
	// Subtract names another field whose value is subtracted from this one, floored at 0
	// (remaining capacity = capacity - use).
	Subtract string `yaml:"subtract,omitempty"`
}

// SourceConfig is one source of a field; exactly one of Metrics, Rate and Ratio is set. In
// YAML a plain string is Metrics with one name.
type SourceConfig struct {
	// Metrics are gauges read as they are (the newest sample of each series).
	Metrics Names `yaml:"metrics,omitempty"`
	// Rate are counters read as a per-second rate over each series' last two samples.
	Rate Names `yaml:"rate,omitempty"`
	// Ratio is [numerator, denominator, more denominators...]: Σ numerator / Σ denominators
	// over the endpoint's series (e.g. FB used / (FB used + FB free)).
	Ratio []string `yaml:"ratio,omitempty"`
	// Counters makes Ratio a ratio of the increases over each series' last two samples
	// (hit rate from hit and query counters, mean latency from _sum and _count).
	Counters bool `yaml:"counters,omitempty"`
}

// Names is a list of metric names; YAML accepts one name as a plain string.
type Names []string

// UnmarshalYAML accepts a string or a list of strings.
func (n *Names) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*n = Names{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return err
	}
	*n = many
	return nil
}

// UnmarshalYAML accepts a metric name or a mapping.
func (s *SourceConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var name string
	if err := unmarshal(&name); err == nil {
		*s = SourceConfig{Metrics: Names{name}}
		return nil
	}
	type plain SourceConfig
	return unmarshal((*plain)(s))
}

// UnmarshalYAML accepts a list of sources or a mapping.
func (f *FieldConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var list []SourceConfig
	if err := unmarshal(&list); err == nil {
		*f = FieldConfig{Sources: list}
		return nil
	}
	type plain FieldConfig
	return unmarshal((*plain)(f))
}

// DefaultConfig returns the configuration used when none is given: the built-in groups
// routing, network and hardware, an embedded NATS server on 127.0.0.1:4222 and a ZeroMQ PUB
// socket on tcp://127.0.0.1:5556.
func DefaultConfig() Config {
	return Config{
		Enabled:              true,
		BuiltinGroups:        []string{"routing", "network", "hardware"},
		MaxEndpointsPerGroup: 10000,
		MaxSeriesPerEndpoint: 1024,
		MaxCachedSeries:      1 << 20,
		NATS: NATSConfig{
			Enabled:              true,
			ListenAddress:        "127.0.0.1:4222",
			Bucket:               DefaultBucket,
			KVStorage:            "file",
			KVTTL:                model.Duration(time.Hour),
			KVUpdateInterval:     model.Duration(time.Second),
			ReconnectBufferBytes: 8 << 20,
		},
		ZMQ: ZMQConfig{
			Enabled:       true,
			Bind:          "tcp://127.0.0.1:5556",
			HighWaterMark: 10000,
			QueueSize:     4096,
		},
	}
}

// ValidationError is one configuration problem; Path is dotted from the hot_series section
// (groups[routing].fields.kv_cache_usage.aggregate).
type ValidationError struct {
	Path, Msg string
}

func (e *ValidationError) Error() string { return e.Path + ": " + e.Msg }

var (
	groupNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Groups returns the groups that will be published: the selected built-in ones (replaced by
// a group of Groups with the same name), then the others of Groups, in order.
func (c *Config) ResolvedGroups() []GroupConfig {
	var out []GroupConfig
	own := map[string]bool{}
	for _, g := range c.Groups {
		own[g.Name] = true
	}
	for _, name := range c.BuiltinGroups {
		if own[name] {
			continue
		}
		if g, ok := builtinGroup(name); ok {
			out = append(out, g)
		}
	}
	return append(out, c.Groups...)
}

// Validate checks the configuration; the error joins one *ValidationError per problem.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &ValidationError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for i, name := range c.BuiltinGroups {
		if _, ok := builtinGroup(name); !ok {
			add(fmt.Sprintf("builtin_groups[%d]", i), "unknown built-in group %q (routing, network, hardware)", name)
		}
	}
	for _, l := range []struct {
		path string
		v    int
	}{
		{"max_endpoints_per_group", c.MaxEndpointsPerGroup},
		{"max_series_per_endpoint", c.MaxSeriesPerEndpoint},
		{"max_cached_series", c.MaxCachedSeries},
		{"nats.reconnect_buffer_bytes", c.NATS.ReconnectBufferBytes},
		{"zmq.high_water_mark", c.ZMQ.HighWaterMark},
		{"zmq.queue_size", c.ZMQ.QueueSize},
	} {
		if l.v < 0 {
			add(l.path, "must not be negative, got %d", l.v)
		}
	}
	if c.NATS.Enabled {
		if c.NATS.Bucket != "" && !groupNameRE.MatchString(c.NATS.Bucket) {
			add("nats.kv_bucket", "must match [A-Za-z0-9_-]+, got %q", c.NATS.Bucket)
		}
		if s := c.NATS.KVStorage; s != "" && s != "file" && s != "memory" {
			add("nats.kv_storage", "must be file or memory, got %q", s)
		}
		if c.NATS.KVTTL < 0 {
			add("nats.kv_ttl", "must not be negative, got %s", c.NATS.KVTTL)
		}
		if c.NATS.KVUpdateInterval < 0 {
			add("nats.kv_update_interval", "must not be negative, got %s", c.NATS.KVUpdateInterval)
		}
		n := 0
		for _, set := range []bool{c.NATS.User != "" || c.NATS.Password != "", c.NATS.Token != "", c.NATS.CredsFile != "", c.NATS.NKeySeedFile != ""} {
			if set {
				n++
			}
		}
		if n > 1 {
			add("nats", "set at most one of user/password, token, creds_file, nkey_seed_file")
		}
		if (c.NATS.TLSCertFile == "") != (c.NATS.TLSKeyFile == "") {
			add("nats.tls_cert_file", "tls_cert_file and tls_key_file go together")
		}
	}
	if c.ZMQ.Enabled && c.ZMQ.Bind != "" && !strings.Contains(c.ZMQ.Bind, "://") {
		add("zmq.bind", "must be a ZeroMQ endpoint like tcp://127.0.0.1:5556, got %q", c.ZMQ.Bind)
	}
	seen := map[string]bool{}
	for i, g := range c.Groups {
		path := fmt.Sprintf("groups[%d]", i)
		if g.Name != "" {
			path = fmt.Sprintf("groups[%s]", g.Name)
		}
		if seen[g.Name] {
			add(path+".name", "duplicate group name %q", g.Name)
		}
		seen[g.Name] = true
		errs = append(errs, g.validate(path)...)
	}
	return errors.Join(errs...)
}

func (g *GroupConfig) validate(path string) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, &ValidationError{Path: path + sub, Msg: fmt.Sprintf(format, args...)})
	}
	if !groupNameRE.MatchString(g.Name) {
		add(".name", "must match [A-Za-z0-9_-]+, got %q", g.Name)
	}
	for i, s := range g.Selectors {
		if _, err := parseSelector(s); err != nil {
			add(fmt.Sprintf(".selectors[%d]", i), "invalid series selector %q: %v", s, err)
		}
	}
	if len(g.EndpointLabels) == 0 {
		add(".endpoint_labels", "at least one label must identify an endpoint")
	}
	for i, l := range g.EndpointLabels {
		if !labelNameRE.MatchString(l) {
			add(fmt.Sprintf(".endpoint_labels[%d]", i), "invalid label name %q", l)
		}
	}
	for i, l := range g.InfoLabels {
		if !labelNameRE.MatchString(l) {
			add(fmt.Sprintf(".info_labels[%d]", i), "invalid label name %q", l)
		}
	}
	for _, l := range []struct{ key, v string }{{".model_label", g.ModelLabel}, {".device_label", g.DeviceLabel}} {
		if l.v != "" && !labelNameRE.MatchString(l.v) {
			add(l.key, "invalid label name %q", l.v)
		}
	}
	if len(g.Fields) == 0 {
		add(".fields", "a group needs at least one field")
	}
	for _, name := range sortedKeys(g.Fields) {
		f := g.Fields[name]
		fp := ".fields." + name
		if !labelNameRE.MatchString(name) {
			add(fp, "field names must match [a-zA-Z_][a-zA-Z0-9_]*")
		}
		if len(f.Sources) == 0 {
			add(fp+".sources", "a field needs at least one source")
		}
		for i, s := range f.Sources {
			sp := fmt.Sprintf("%s.sources[%d]", fp, i)
			kinds := 0
			for _, set := range []bool{len(s.Metrics) > 0, len(s.Rate) > 0, len(s.Ratio) > 0} {
				if set {
					kinds++
				}
			}
			if kinds != 1 {
				add(sp, "set exactly one of metrics, rate, ratio")
			}
			if len(s.Ratio) == 1 {
				add(sp+".ratio", "needs a numerator and at least one denominator")
			}
			if s.Counters && len(s.Ratio) == 0 {
				add(sp+".counters", "only applies to ratio")
			}
			for _, n := range slices.Concat(s.Metrics, s.Rate, Names(s.Ratio)) {
				if n == "" {
					add(sp, "empty metric name")
				}
			}
		}
		switch f.Aggregate {
		case "", AggSum, AggMax, AggMin, AggAvg, AggLast, AggCount, AggAllZero:
		default:
			add(fp+".aggregate", "must be one of sum, max, min, avg, last, count, all_zero; got %q", f.Aggregate)
		}
		if f.PerDevice && g.DeviceLabel == "" {
			add(fp+".per_device", "needs the group's device_label")
		}
		if f.Subtract != "" {
			other, ok := g.Fields[f.Subtract]
			switch {
			case !ok:
				add(fp+".subtract", "no field %q in this group", f.Subtract)
			case other.Subtract != "":
				add(fp+".subtract", "field %q subtracts itself; chains are not supported", f.Subtract)
			}
		}
	}
	switch g.Mode {
	case "", ModeInterval, ModeOnIngest:
	default:
		add(".mode", "must be interval or on-ingest, got %q", g.Mode)
	}
	if g.Interval != 0 && time.Duration(g.Interval) < MinInterval {
		add(".interval", "must be at least %s, got %s", MinInterval, g.Interval)
	}
	for _, d := range []struct {
		key string
		v   model.Duration
	}{{".min_gap", g.MinGap}, {".stale_after", g.StaleAfter}, {".removed_after", g.RemovedAfter}} {
		if d.v < 0 {
			add(d.key, "must not be negative, got %s", d.v)
		}
	}
	if g.StaleAfter > 0 && g.RemovedAfter > 0 && g.RemovedAfter <= g.StaleAfter {
		add(".removed_after", "must be longer than stale_after (%s), got %s", g.StaleAfter, g.RemovedAfter)
	}
	for _, t := range []struct{ key, v string }{{".nats_subject", g.NATSSubject}, {".zmq_topic", g.ZMQTopic}} {
		if err := checkTemplate(t.v, t.key == ".nats_subject"); err != nil {
			add(t.key, "%v", err)
		}
	}
	return errs
}

// checkTemplate checks a subject or topic template with sample values in place.
func checkTemplate(tmpl string, subject bool) error {
	if tmpl == "" {
		return nil
	}
	s := strings.NewReplacer("{group}", "g", "{endpoint}", "e", "{model}", "m").Replace(tmpl)
	if strings.ContainsAny(s, "{}") {
		return fmt.Errorf("unknown variable in %q (known: {group}, {endpoint}, {model})", tmpl)
	}
	if !subject {
		return nil
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("invalid NATS subject %q: empty token, wildcard or whitespace", tmpl)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
