package main

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"

	"github.com/eagle-eye-ai/eagle-eye/fanout/forward"
	"github.com/eagle-eye-ai/eagle-eye/fanout/hotseries"
	yamlv2 "go.yaml.in/yaml/v2"
	yamlv3 "go.yaml.in/yaml/v3"
)

// defaultConfigYAML is the configuration used when --config.file is not given. It spells out
// every default, so it doubles as the reference for the file format.
//
//go:embed default.yml
var defaultConfigYAML []byte

// Config is the gateway's configuration file.
type Config struct {
	Storage StorageConfig `yaml:"storage"`
	Query   QueryConfig   `yaml:"query"`
	Limits  LimitsConfig  `yaml:"limits"`
	Ingest  IngestConfig  `yaml:"ingest"`
	Runtime RuntimeConfig `yaml:"runtime"`
	// HotSeries configures publishing hot series to routers over NATS and ZeroMQ; see
	// docs/hot-series.md. Its defaults are hotseries.DefaultConfig().
	HotSeries hotseries.Config `yaml:"hot_series"`
	// Forwarding: remote_write destinations, exactly as in a Prometheus configuration, and
	// forward: the queue and downsampling options; see docs/forwarding.md.
	forward.Config `yaml:",inline"`
	// Alerting: the Alertmanagers the diagnosis alerts are sent to, written exactly as in a
	// Prometheus configuration's alerting section; see docs/diagnosis.md. Empty: none.
	Alerting config.AlertingConfig `yaml:"alerting,omitempty"`

	// cpus is the number of CPUs the process may use, found by tuneRuntime before it adds
	// spare processors; 0 when the runtime was not tuned (in tests).
	cpus int
}

// RuntimeConfig tunes the Go runtime.
type RuntimeConfig struct {
	// GOGC is the garbage collector's target percentage; the GOGC environment variable, when
	// set, wins.
	GOGC int `yaml:"gogc"`
	// SpareProcessors is how many Go processors run beyond the CPUs the process may use
	// (GOMAXPROCS = CPUs + this), unless the GOMAXPROCS environment variable is set. Bulk
	// writes and PromQL queries run at most CPUs at a time (limits.max_bulk_writes), so the
	// spare processors are free for the garbage collector's mark worker and for network
	// events and small writes.
	SpareProcessors int `yaml:"spare_processors"`
	// BulkWriteNice runs bulk writes on threads of their own whose scheduling priority is
	// lowered by this much (as nice(1) counts, 1 to 19; Linux only), so that while the CPUs
	// are saturated the operating system runs network events, small writes and the
	// hot-series publishers first. 0 runs bulk writes on ordinary threads.
	BulkWriteNice int `yaml:"bulk_write_nice"`
	// MemoryLimitRatio sets GOMEMLIMIT to this fraction of the container's memory limit
	// (cgroup), when there is one and GOMEMLIMIT is not set. 0 turns it off.
	MemoryLimitRatio float64 `yaml:"memory_limit_ratio"`
}

// StorageConfig configures the in-memory window.
type StorageConfig struct {
	// Window is how much recent data is kept; --storage.window overrides it.
	Window model.Duration `yaml:"window"`
	// OutOfOrderWindow tolerates samples this much older than their series' newest one.
	OutOfOrderWindow model.Duration `yaml:"out_of_order_window"`
	// MaxExemplars is the exemplar ring size; -1 turns exemplar storage off.
	MaxExemplars int `yaml:"max_exemplars"`
}

// QueryConfig configures PromQL evaluation.
type QueryConfig struct {
	Timeout       model.Duration `yaml:"timeout"`
	MaxSamples    int            `yaml:"max_samples"`
	LookbackDelta model.Duration `yaml:"lookback_delta"`
}

// LimitsConfig holds the write-path limits. 0 means "no limit" unless noted.
type LimitsConfig struct {
	MaxBodyBytes        int64 `yaml:"max_body_bytes"`
	MaxDecodedBytes     int64 `yaml:"max_decoded_bytes"`
	MaxSeriesPerRequest int   `yaml:"max_series_per_request"`
	MaxLabelsPerSeries  int   `yaml:"max_labels_per_series"`
	MaxLabelNameLength  int   `yaml:"max_label_name_length"`
	MaxLabelValueLength int   `yaml:"max_label_value_length"`
	MaxInflightWrites   int   `yaml:"max_inflight_writes"`
	MaxBulkWrites       int   `yaml:"max_bulk_writes"`
	MaxSeries           int   `yaml:"max_series"`
}

// IngestConfig configures the write endpoint's behaviour.
type IngestConfig struct {
	// OverloadStatus is the status answered when writes back up: 503 (default; every sender
	// retries it) or 429 (only senders configured to retry 429 do).
	OverloadStatus int `yaml:"overload_status"`
	// InflightWait is how long a write waits for a free slot before the overload answer.
	InflightWait model.Duration `yaml:"inflight_wait"`
}

// ConfigError is a configuration problem, located in its file.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadConfigFile reads and validates a configuration file. An empty path loads the bundled
// defaults.
func LoadConfigFile(path string) (*Config, error) {
	if path == "" {
		return ParseConfig(defaultConfigYAML, "<bundled default>")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(b, path)
	if err != nil {
		return nil, err
	}
	// As in Prometheus, files the alerting section names (TLS files, file_sd_configs) are
	// relative to the configuration file.
	cfg.Alerting.SetDirectory(filepath.Dir(path))
	return cfg, nil
}

// ParseConfig parses YAML strictly over the bundled defaults and validates the result.
// Errors name the file and line.
func ParseConfig(b []byte, name string) (*Config, error) {
	cfg := &Config{HotSeries: hotseries.DefaultConfig()}
	if err := yamlv2.UnmarshalStrict(defaultConfigYAML, cfg); err != nil {
		return nil, fmt.Errorf("bundled default config: %w", err)
	}
	var root yamlv3.Node
	_ = yamlv3.Unmarshal(b, &root) // a malformed document is reported by the strict parse below
	// Before the strict parse: it would reject an unknown discovery mechanism as a field
	// missing from a generated struct type, which tells the operator nothing.
	if errs := unsupportedDiscovery(&root, name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := yamlv2.UnmarshalStrict(b, cfg); err != nil {
		return nil, locateAlertingError(&root, yamlError(name, b, err))
	}
	if errs := cfg.validate(); len(errs) > 0 {
		out := make([]error, 0, len(errs))
		for _, fe := range errs {
			out = append(out, &ConfigError{File: name, Line: lineOf(&root, fe.path), Msg: fe.path + ": " + fe.msg})
		}
		return nil, errors.Join(out...)
	}
	return cfg, nil
}

type fieldError struct{ path, msg string }

func (c *Config) validate() []fieldError {
	var errs []fieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, args...)})
	}
	if w := time.Duration(c.Storage.Window); w < time.Minute {
		add("storage.window", "must be at least 1m, got %s", c.Storage.Window)
	}
	if o := time.Duration(c.Storage.OutOfOrderWindow); o < 0 || o > time.Duration(c.Storage.Window) {
		add("storage.out_of_order_window", "must be between 0 and storage.window (%s), got %s", c.Storage.Window, c.Storage.OutOfOrderWindow)
	}
	if c.Storage.MaxExemplars < -1 {
		add("storage.max_exemplars", "must be -1 (off), 0 (default) or positive, got %d", c.Storage.MaxExemplars)
	}
	if c.Query.Timeout <= 0 {
		add("query.timeout", "must be positive, got %s", c.Query.Timeout)
	}
	if c.Query.MaxSamples <= 0 {
		add("query.max_samples", "must be positive, got %d", c.Query.MaxSamples)
	}
	if c.Query.LookbackDelta <= 0 {
		add("query.lookback_delta", "must be positive, got %s", c.Query.LookbackDelta)
	}
	for _, l := range []struct {
		path string
		v    int64
	}{
		{"limits.max_body_bytes", c.Limits.MaxBodyBytes},
		{"limits.max_decoded_bytes", c.Limits.MaxDecodedBytes},
		{"limits.max_series_per_request", int64(c.Limits.MaxSeriesPerRequest)},
		{"limits.max_labels_per_series", int64(c.Limits.MaxLabelsPerSeries)},
		{"limits.max_label_name_length", int64(c.Limits.MaxLabelNameLength)},
		{"limits.max_label_value_length", int64(c.Limits.MaxLabelValueLength)},
		{"limits.max_inflight_writes", int64(c.Limits.MaxInflightWrites)},
		{"limits.max_bulk_writes", int64(c.Limits.MaxBulkWrites)},
		{"limits.max_series", int64(c.Limits.MaxSeries)},
	} {
		if l.v < 0 {
			add(l.path, "must not be negative, got %d", l.v)
		}
	}
	if c.Limits.MaxDecodedBytes > 0 && c.Limits.MaxBodyBytes > c.Limits.MaxDecodedBytes {
		add("limits.max_decoded_bytes", "must be at least limits.max_body_bytes (%d), got %d", c.Limits.MaxBodyBytes, c.Limits.MaxDecodedBytes)
	}
	if s := c.Ingest.OverloadStatus; s != 503 && s != 429 {
		add("ingest.overload_status", "must be 503 or 429, got %d", s)
	}
	if c.Runtime.GOGC < 10 || c.Runtime.GOGC > 1000 {
		add("runtime.gogc", "must be between 10 and 1000, got %d", c.Runtime.GOGC)
	}
	if p := c.Runtime.SpareProcessors; p < 0 || p > 64 {
		add("runtime.spare_processors", "must be between 0 and 64, got %d", p)
	}
	if n := c.Runtime.BulkWriteNice; n < 0 || n > 19 {
		add("runtime.bulk_write_nice", "must be between 0 and 19, got %d", n)
	}
	if r := c.Runtime.MemoryLimitRatio; r < 0 || r > 1 {
		add("runtime.memory_limit_ratio", "must be between 0 and 1, got %g", r)
	}
	if c.Ingest.InflightWait < 0 {
		add("ingest.inflight_wait", "must not be negative, got %s", c.Ingest.InflightWait)
	}
	if err := c.Config.Validate(); err != nil {
		// Its errors start with the path they concern, e.g. "remote_write[0]: ...".
		path, msg := "remote_write", err.Error()
		if p, rest, ok := strings.Cut(msg, ": "); ok && (strings.HasPrefix(p, "remote_write") || strings.HasPrefix(p, "forward")) {
			path, msg = p, rest
		}
		errs = append(errs, fieldError{path, msg})
	}
	errs = append(errs, validateAlerting(&c.Alerting)...)
	if err := c.HotSeries.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var ve *hotseries.ValidationError
			if errors.As(e, &ve) {
				errs = append(errs, fieldError{"hot_series." + ve.Path, ve.Msg})
			} else {
				errs = append(errs, fieldError{"hot_series", e.Error()})
			}
		}
	}
	return errs
}

// unjoin lists the errors of an errors.Join, or err itself.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// yamlError turns a yaml.v2 error into ConfigErrors, one per line it names. Errors from a
// field's own parser (a bad duration, say) carry no line: it is found from the quoted value.
func yamlError(name string, doc []byte, err error) error {
	var te *yamlv2.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if _, e := fmt.Sscanf(msg, "line %d:", &line); e == nil {
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		} else if i := strings.LastIndex(msg, "\""); i > 0 {
			if j := strings.LastIndex(msg[:i], "\""); j >= 0 {
				var root yamlv3.Node
				if yamlv3.Unmarshal(doc, &root) == nil {
					line = lineOfValue(&root, msg[j+1:i])
				}
			}
		}
		return &ConfigError{File: name, Line: line, Msg: msg}
	}
	out := make([]error, 0, len(te.Errors))
	for _, m := range te.Errors {
		line := 0
		if _, e := fmt.Sscanf(m, "line %d:", &line); e == nil {
			m = strings.TrimSpace(m[strings.Index(m, ":")+1:])
		}
		// "field x not found in type config.plain": the Go type helps no operator, and for
		// Prometheus' discovery configs it is a struct built at run time, spelt out in full.
		if i := strings.Index(m, " not found in type "); i > 0 && strings.HasPrefix(m, "field ") {
			m = m[:i+len(" not found")]
		}
		out = append(out, &ConfigError{File: name, Line: line, Msg: m})
	}
	return errors.Join(out...)
}

// lineOf finds the line of a dotted key path in a YAML document, the deepest part of it that
// exists; 0 when none does. A part may select a list element: key[2] by index, key[x] by the
// element's name.
func lineOf(doc *yamlv3.Node, path string) int {
	n := doc
	if n.Kind == yamlv3.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		key, sel, hasSel := strings.Cut(strings.TrimSuffix(part, "]"), "[")
		n = mappingValue(n, key, &line)
		if n == nil {
			return line
		}
		if hasSel {
			if n = listElement(n, sel); n == nil {
				return line
			}
			line = n.Line
		}
	}
	return line
}

// mappingValue returns the value of key in mapping n and records its line; nil when absent.
func mappingValue(n *yamlv3.Node, key string, line *int) *yamlv3.Node {
	if n == nil || n.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			*line = n.Content[i].Line
			return n.Content[i+1]
		}
	}
	return nil
}

// listElement selects an element of sequence n by index, or by its name key.
func listElement(n *yamlv3.Node, sel string) *yamlv3.Node {
	if n.Kind != yamlv3.SequenceNode {
		return nil
	}
	if i, err := strconv.Atoi(sel); err == nil {
		if i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
		return nil
	}
	for _, e := range n.Content {
		var line int
		if v := mappingValue(e, "name", &line); v != nil && v.Value == sel {
			return e
		}
	}
	return nil
}

// lineOfValue finds the line of the first scalar whose value is v; 0 when there is none.
func lineOfValue(n *yamlv3.Node, v string) int {
	if n.Kind == yamlv3.ScalarNode && n.Value == v {
		return n.Line
	}
	for _, c := range n.Content {
		if l := lineOfValue(c, v); l > 0 {
			return l
		}
	}
	return 0
}
