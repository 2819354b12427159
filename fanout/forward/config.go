package forward

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	yaml "go.yaml.in/yaml/v2"
)

// Config is the forwarding part of the gateway's configuration file: the destinations, written
// exactly as a Prometheus `remote_write:` list, and this package's own per-destination options
// under `forward:`. The gateway embeds it inline in its own configuration.
type Config struct {
	RemoteWrite []*config.RemoteWriteConfig `yaml:"remote_write,omitempty"`
	Forward     ForwardConfig               `yaml:"forward,omitempty"`
}

// ForwardConfig holds the queue and processing options. Defaults applies to every destination;
// Destinations overrides it per destination, keyed by the remote_write entry's name (or, for an
// entry without a name, by the name Destination.Name derives from its URL).
type ForwardConfig struct {
	Defaults     QueueConfig            `yaml:"defaults,omitempty"`
	Destinations map[string]QueueConfig `yaml:"destinations,omitempty"`
}

// FsyncPolicy says when an appended record is forced to disk.
type FsyncPolicy string

const (
	// FsyncAlways fsyncs before Write returns; concurrent writers share one fsync (group
	// commit). A 2xx then promises the data survives a power loss.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval fsyncs every FsyncInterval. A process crash loses nothing (the data is in
	// the page cache); an operating-system crash or power loss may lose the last interval.
	FsyncInterval FsyncPolicy = "interval"
)

// Aggregation is how a downsampling rule reduces the samples of one interval.
type Aggregation string

const (
	AggLast Aggregation = "last"
	AggAvg  Aggregation = "avg"
	AggMax  Aggregation = "max"
)

// QueueConfig is one destination's queue and processing options. A zero field inherits the
// default (from ForwardConfig.Defaults, then from the package defaults).
type QueueConfig struct {
	// QueueDir overrides the destination's queue directory (default: <--forward.queue-dir>/<name>).
	QueueDir string `yaml:"queue_dir,omitempty"`
	// MaxQueueBytes bounds the on-disk queue; past it the oldest segments are dropped (counted).
	MaxQueueBytes units.Base2Bytes `yaml:"max_queue_bytes,omitempty"`
	// MaxAge bounds how long a record may wait; older records are dropped (counted).
	MaxAge model.Duration `yaml:"max_age,omitempty"`
	// MemoryBytes is how much of the newest unsent data is also kept in memory, so the senders
	// need not read it back from disk.
	MemoryBytes units.Base2Bytes `yaml:"memory_bytes,omitempty"`
	// SegmentBytes is the size at which a queue file is closed and a new one started.
	SegmentBytes units.Base2Bytes `yaml:"segment_bytes,omitempty"`
	// Fsync is "always" (default) or "interval".
	Fsync FsyncPolicy `yaml:"fsync,omitempty"`
	// FsyncInterval is the period of the "interval" policy.
	FsyncInterval model.Duration `yaml:"fsync_interval,omitempty"`
	// Shards is the number of parallel senders of encoded records, and the pass-through
	// requests the relay starts with in flight (it grows them up to max_shards as needed); 0
	// means min(queue_config.max_shards, max(queue_config.min_shards, 2 × CPUs)).
	Shards int `yaml:"shards,omitempty"`
	// DropOutOfOrder, when true (default), drops a sample whose timestamp is not newer than
	// the last one sent for its series instead of sending it: a destination without an
	// out-of-order window would refuse the whole batch around it.
	DropOutOfOrder *bool `yaml:"drop_out_of_order,omitempty"`
	// Downsample rules, applied after write_relabel_configs; the first matching rule wins.
	Downsample []DownsampleRule `yaml:"downsample,omitempty"`
}

// DownsampleRule forwards one sample per Interval for the series Selector matches.
type DownsampleRule struct {
	Selector string         `yaml:"selector"`
	Interval model.Duration `yaml:"interval"`
	Function Aggregation    `yaml:"function"`

	matchers []*labels.Matcher
}

// Package defaults for QueueConfig.
const (
	DefaultMaxQueueBytes = 1 << 30
	DefaultMaxAge        = model.Duration(24 * time.Hour)
	DefaultMemoryBytes   = 64 << 20
	DefaultSegmentBytes  = 128 << 20
	DefaultFsyncInterval = model.Duration(100 * time.Millisecond)
	minSegmentBytes      = 64 << 10
)

// ParseConfig parses YAML holding `remote_write:` and `forward:` keys strictly (unknown keys are
// errors), applies Prometheus' remote-write defaults and this package's, and validates.
func ParseConfig(b []byte) (*Config, error) {
	c := &Config{}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// UnmarshalYAML makes "last" the default function.
func (r *DownsampleRule) UnmarshalYAML(unmarshal func(any) error) error {
	type plain DownsampleRule
	*r = DownsampleRule{Function: AggLast}
	return unmarshal((*plain)(r))
}

// Validate checks the destinations the way Prometheus checks its remote_write section (unique
// names, relabel rules, queue sizes, one auth method) plus this package's options.
func (c *Config) Validate() error {
	names := map[string]int{}
	for i, rw := range c.RemoteWrite {
		if rw == nil {
			return fmt.Errorf("remote_write[%d]: empty or null remote write config section", i)
		}
		if rw.URL == nil || rw.URL.URL == nil {
			return fmt.Errorf("remote_write[%d]: url for remote_write is empty", i)
		}
		if err := rw.Validate(model.UTF8Validation); err != nil {
			return fmt.Errorf("remote_write[%d]: %w", i, err)
		}
		if err := rw.QueueConfig.Validate(); err != nil {
			return fmt.Errorf("remote_write[%d]: %w", i, err)
		}
		name := DestinationName(rw)
		if err := validName(name); err != nil {
			return fmt.Errorf("remote_write[%d]: name %q: %w", i, name, err)
		}
		if j, ok := names[name]; ok {
			return fmt.Errorf("remote_write[%d]: found multiple remote write configs with name %q (also remote_write[%d])", i, name, j)
		}
		names[name] = i
	}
	if err := c.Forward.Defaults.validate(); err != nil {
		return fmt.Errorf("forward.defaults: %w", err)
	}
	for name, qc := range c.Forward.Destinations {
		if _, ok := names[name]; !ok {
			known := make([]string, 0, len(names))
			for n := range names {
				known = append(known, n)
			}
			return fmt.Errorf("forward.destinations.%s: no remote_write entry has this name (names: %s)", name, strings.Join(known, ", "))
		}
		if err := qc.validate(); err != nil {
			return fmt.Errorf("forward.destinations.%s: %w", name, err)
		}
		c.Forward.Destinations[name] = qc
	}
	return nil
}

func validName(n string) error {
	switch {
	case n == "", n == ".", n == "..":
		return errors.New("must be a usable directory name")
	case strings.ContainsAny(n, "/\\\x00"):
		return errors.New("must not contain a slash, a backslash or NUL (it names the queue directory)")
	}
	return nil
}

func (q *QueueConfig) validate() error {
	switch q.Fsync {
	case "", FsyncAlways, FsyncInterval:
	default:
		return fmt.Errorf("fsync: %q is not one of always, interval", q.Fsync)
	}
	if q.MaxQueueBytes < 0 || q.MemoryBytes < 0 || q.SegmentBytes < 0 {
		return errors.New("max_queue_bytes, memory_bytes and segment_bytes must not be negative")
	}
	if q.SegmentBytes != 0 && q.SegmentBytes < minSegmentBytes {
		return fmt.Errorf("segment_bytes: %s is below the minimum of 64KiB", q.SegmentBytes)
	}
	if q.SegmentBytes != 0 && q.SegmentBytes > 1<<31 {
		return fmt.Errorf("segment_bytes: %s is above the maximum of 2GiB", q.SegmentBytes)
	}
	if q.MaxAge < 0 || q.FsyncInterval < 0 {
		return errors.New("max_age and fsync_interval must not be negative")
	}
	if q.Shards < 0 || q.Shards > 1024 {
		return fmt.Errorf("shards: %d is not between 0 and 1024", q.Shards)
	}
	for i := range q.Downsample {
		r := &q.Downsample[i]
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(r.Selector)
		if err != nil {
			return fmt.Errorf("downsample[%d].selector %q: %w", i, r.Selector, err)
		}
		r.matchers = ms
		if r.Interval <= 0 {
			return fmt.Errorf("downsample[%d].interval must be positive", i)
		}
		switch r.Function {
		case AggLast, AggAvg, AggMax:
		default:
			return fmt.Errorf("downsample[%d].function: %q is not one of last, avg, max", i, r.Function)
		}
	}
	return nil
}

// DestinationName is the name a remote_write entry's queue and metrics go by: its `name`, else
// "rw-" and a short hash of its URL, so the queue survives edits to anything but the URL.
func DestinationName(rw *config.RemoteWriteConfig) string {
	if rw.Name != "" {
		return rw.Name
	}
	u := ""
	if rw.URL != nil && rw.URL.URL != nil {
		u = rw.URL.String()
	}
	h := sha256.Sum256([]byte(u))
	return "rw-" + hex.EncodeToString(h[:4])
}

// resolved is one destination's effective queue options.
type resolved struct {
	dir           string
	maxBytes      int64
	maxAge        time.Duration
	memoryBytes   int64
	segmentBytes  int64
	fsync         FsyncPolicy
	fsyncInterval time.Duration
	shards        int
	dropOOO       bool
	downsample    []DownsampleRule
}

// resolve merges per-destination options over the defaults and the package defaults.
func (c *Config) resolve(name, baseDir string, rw *config.RemoteWriteConfig, cpus int) resolved {
	d := c.Forward.Defaults
	o, ok := c.Forward.Destinations[name]
	if !ok {
		o = QueueConfig{}
	}
	pick := func(a, b, def int64) int64 {
		switch {
		case a != 0:
			return a
		case b != 0:
			return b
		}
		return def
	}
	r := resolved{
		maxBytes:      pick(int64(o.MaxQueueBytes), int64(d.MaxQueueBytes), DefaultMaxQueueBytes),
		maxAge:        time.Duration(pick(int64(o.MaxAge), int64(d.MaxAge), int64(DefaultMaxAge))),
		memoryBytes:   pick(int64(o.MemoryBytes), int64(d.MemoryBytes), DefaultMemoryBytes),
		fsyncInterval: time.Duration(pick(int64(o.FsyncInterval), int64(d.FsyncInterval), int64(DefaultFsyncInterval))),
		shards:        int(pick(int64(o.Shards), int64(d.Shards), 0)),
		dropOOO:       true,
		fsync:         FsyncAlways,
	}
	seg := pick(int64(o.SegmentBytes), int64(d.SegmentBytes), 0)
	if seg == 0 {
		seg = min(int64(DefaultSegmentBytes), max(int64(minSegmentBytes), r.maxBytes/8))
	}
	r.segmentBytes = seg
	switch {
	case o.Fsync != "":
		r.fsync = o.Fsync
	case d.Fsync != "":
		r.fsync = d.Fsync
	}
	switch {
	case o.DropOutOfOrder != nil:
		r.dropOOO = *o.DropOutOfOrder
	case d.DropOutOfOrder != nil:
		r.dropOOO = *d.DropOutOfOrder
	}
	r.downsample = o.Downsample
	if len(r.downsample) == 0 {
		r.downsample = d.Downsample
	}
	r.dir = o.QueueDir
	if r.dir == "" {
		r.dir = d.QueueDir
		if r.dir != "" {
			r.dir += "/" + name
		}
	}
	if r.dir == "" && baseDir != "" {
		r.dir = baseDir + "/" + name
	}
	if r.shards == 0 {
		if cpus <= 0 {
			cpus = runtime.GOMAXPROCS(0)
		}
		r.shards = min(rw.QueueConfig.MaxShards, max(rw.QueueConfig.MinShards, 2*cpus))
	}
	if r.shards <= 0 {
		r.shards = 1
	}
	return r
}
