package hotseries

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	yamlv2 "go.yaml.in/yaml/v2"
)

// load reads a fixture the way the gateway reads its file: strictly, over the defaults.
func load(t *testing.T, path string) (Config, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	file := struct {
		HotSeries Config `yaml:"hot_series"`
	}{HotSeries: DefaultConfig()}
	if err := yamlv2.UnmarshalStrict(b, &file); err != nil {
		return file.HotSeries, err
	}
	return file.HotSeries, file.HotSeries.Validate()
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	groups := cfg.ResolvedGroups()
	if len(groups) != 3 {
		t.Fatalf("%d built-in groups", len(groups))
	}
	for _, g := range groups {
		if errs := g.validate(g.Name); len(errs) > 0 {
			t.Errorf("built-in group %s: %v", g.Name, errors.Join(errs...))
		}
	}
	if groups[0].NATSSubject != "eagle_eye.routing_metrics" {
		t.Errorf("routing subject %q", groups[0].NATSSubject)
	}
	// The zero Options work: the defaults.
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.groups) != 3 {
		t.Errorf("New(Options{}) has %d groups", len(p.groups))
	}
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(t, "testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	groups := cfg.ResolvedGroups()
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	if strings.Join(names, ",") != "hardware,routing,lora" {
		t.Fatalf("groups %v: the own routing group replaces the built-in one", names)
	}
	r := groups[1]
	if r.Mode != ModeOnIngest || time.Duration(r.MinGap) != 50*time.Millisecond || len(r.Fields["kv_cache_usage"].Sources) != 3 {
		t.Errorf("routing group %+v", r)
	}
	if s := r.Fields["prefix_cache_hit_rate"].Sources; len(s) != 2 || !s[0].Counters || s[1].Metrics[0] != "sglang:cache_hit_rate" {
		t.Errorf("prefix_cache_hit_rate sources %+v", s)
	}
	if s := groups[2].Fields["preemptions_per_second"].Sources; len(s) != 1 || s[0].Rate[0] != "vllm:num_preemptions_total" {
		t.Errorf("rate source %+v", s)
	}
	if cfg.NATS.URL != "nats://127.0.0.1:4222" || string(cfg.NATS.Token) != "s3cret" || cfg.NATS.Bucket != DefaultBucket {
		t.Errorf("nats %+v", cfg.NATS)
	}
	out, err := yamlv2.Marshal(cfg.NATS)
	if err != nil || strings.Contains(string(out), "s3cret") {
		t.Errorf("the token must not be marshalled back: %s", out)
	}
	if _, err := New(Options{Config: cfg}); err != nil {
		t.Error(err)
	}
}

func TestConfigBad(t *testing.T) {
	for file, wants := range map[string][]string{
		"testdata/bad_values.bad.yml": {
			`builtin_groups[1]: unknown built-in group "gpu"`,
			"nats.kv_storage: must be file or memory",
			`groups[bad name].name: must match`,
			`groups[bad name].selectors[0]: invalid series selector`,
			"groups[bad name].endpoint_labels: at least one label",
			"groups[bad name].mode: must be interval or on-ingest",
			"groups[bad name].interval: must be at least 100ms",
			"groups[bad name].removed_after: must be longer than stale_after",
			"groups[bad name].nats_subject: unknown variable",
			"groups[bad name].fields.f1.sources[0]: set exactly one of metrics, rate, ratio",
			`groups[bad name].fields.f1.aggregate: must be one of`,
			"groups[bad name].fields.f1.per_device: needs the group's device_label",
			`groups[bad name].fields.f1.subtract: no field "missing"`,
		},
		"testdata/unknown_key.bad.yml": {"field agregate not found"},
	} {
		t.Run(file, func(t *testing.T) {
			_, err := load(t, file)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var ve *ValidationError
			if strings.Contains(file, "values") && !errors.As(err, &ve) {
				t.Errorf("want *ValidationError in %T", err)
			}
		})
	}
}

// TestDocumentedConfig keeps docs/hot-series.md's configuration example valid.
func TestDocumentedConfig(t *testing.T) {
	b, err := os.ReadFile(repoFile(t, "docs/hot-series.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "```yaml\nhot_series:")
	if start < 0 {
		t.Fatal("no hot_series example in docs/hot-series.md")
	}
	block := doc[start+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	path := t.TempDir() + "/doc.yml"
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ResolvedGroups()) != 4 {
		t.Errorf("%d groups", len(cfg.ResolvedGroups()))
	}
	if _, err := New(Options{Config: cfg}); err != nil {
		t.Error(err)
	}
}
