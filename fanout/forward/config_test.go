package forward

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

func TestParseConfigPrometheusPaste(t *testing.T) {
	b, err := os.ReadFile("testdata/prometheus_paste.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if len(c.RemoteWrite) != 2 {
		t.Fatalf("got %d destinations, want 2", len(c.RemoteWrite))
	}
	m := c.RemoteWrite[0]
	if m.Name != "mimir" || m.Headers["X-Scope-OrgID"] != "inference" || m.HTTPClientConfig.BasicAuth == nil {
		t.Errorf("first destination not parsed as written: %+v", m)
	}
	if m.QueueConfig.MaxShards != 8 || !m.QueueConfig.RetryOnRateLimit || len(m.WriteRelabelConfigs) != 1 {
		t.Errorf("queue_config or relabelling lost: %+v", m.QueueConfig)
	}
	// Prometheus' defaults fill what the second entry left out.
	s := c.RemoteWrite[1]
	if s.QueueConfig.MaxSamplesPerSend != config.DefaultQueueConfig.MaxSamplesPerSend ||
		s.RemoteTimeout != config.DefaultRemoteWriteConfig.RemoteTimeout {
		t.Errorf("defaults not applied: %+v", s.QueueConfig)
	}
	if s.ProtobufMessage != "io.prometheus.write.v2.Request" {
		t.Errorf("protobuf_message = %q", s.ProtobufMessage)
	}
	name := DestinationName(s)
	if !strings.HasPrefix(name, "rw-") || name != DestinationName(s) {
		t.Errorf("derived name %q", name)
	}

	r := c.resolve("mimir", "/q", m, 0)
	if r.dir != "/q/mimir" || r.maxBytes != 512<<20 || r.maxAge != 12*time.Hour || r.fsync != FsyncInterval ||
		r.fsyncInterval != 50*time.Millisecond || len(r.downsample) != 2 || r.downsample[1].Function != AggLast || !r.dropOOO {
		t.Errorf("resolved mimir options: %+v", r)
	}
	if r.shards < 1 || r.shards > 8 {
		t.Errorf("shards %d not within [min_shards, max_shards]", r.shards)
	}
	r2 := c.resolve(name, "/q", s, 3)
	if r2.maxBytes != 2<<30 || r2.fsync != FsyncAlways || len(r2.downsample) != 0 || r2.dir != "/q/"+name {
		t.Errorf("resolved defaults: %+v", r2)
	}
	if want := min(s.QueueConfig.MaxShards, max(s.QueueConfig.MinShards, 6)); r2.shards != want {
		t.Errorf("shards %d for 3 CPUs, want 2 × CPUs within min_shards and max_shards: %d", r2.shards, want)
	}
	if r2.segmentBytes != DefaultSegmentBytes {
		t.Errorf("segment bytes %d", r2.segmentBytes)
	}
}

func TestParseConfigBad(t *testing.T) {
	want := map[string]string{
		"unknown_key":          "max_shard",
		"two_auth":             "at most one of",
		"dup_name":             "multiple remote write configs",
		"no_url":               "url for remote_write is empty",
		"bad_protobuf":         "protobuf_message",
		"bad_fsync":            "fsync",
		"unknown_destination":  "no remote_write entry has this name",
		"bad_selector":         "selector",
		"bad_function":         "median",
		"bad_relabel":          "error parsing regexp",
		"bad_queue":            "max_backoff",
		"authorization_header": "authorization header",
		"slash_name":           "slash",
	}
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) != len(want) {
		t.Errorf("%d bad fixtures, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yml")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseConfig(b)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), want[name]) {
				t.Errorf("error %q does not mention %q", err, want[name])
			}
		})
	}
}

func TestConfigEmpty(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil || len(c.RemoteWrite) != 0 {
		t.Fatalf("empty config: %v %+v", err, c)
	}
	f, err := New(Options{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Write(t.Context(), &ingest.Request{Series: []ingest.Series{series([]string{"__name__", "up"}, ingest.Sample{T: 1, V: 1})}})
	if err != nil || st.Samples != 1 {
		t.Fatalf("Write without destinations: %v %+v", err, st)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewNeedsDir(t *testing.T) {
	c, err := ParseConfig([]byte("remote_write:\n  - url: http://127.0.0.1:1/api/v1/write\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Config: c}); err == nil || !strings.Contains(err.Error(), "queue directory") {
		t.Fatalf("New without a queue dir: %v", err)
	}
}
