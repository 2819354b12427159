package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/discovery/file"
)

func TestBundledDefaults(t *testing.T) {
	cfg, err := LoadConfigFile("")
	if err != nil {
		t.Fatalf("bundled default config does not load: %v", err)
	}
	if time.Duration(cfg.Storage.Window) != 30*time.Minute || cfg.Ingest.OverloadStatus != 503 || cfg.Limits.MaxBodyBytes != 32<<20 {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestGoodConfig(t *testing.T) {
	cfg, err := LoadConfigFile(filepath.Join("testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Storage.Window) != time.Hour || cfg.Limits.MaxSeries != 2000000 || cfg.Ingest.OverloadStatus != 429 {
		t.Errorf("values not applied: %+v", cfg)
	}
	// Keys the file leaves out keep their defaults.
	if cfg.Query.MaxSamples != 50000000 || cfg.Limits.MaxLabelsPerSeries != 64 {
		t.Errorf("defaults lost for absent keys: %+v", cfg)
	}
	// The alerting section is Prometheus' own, with the discovery mechanisms the gateway has;
	// its files are relative to the configuration file, as in Prometheus.
	ams := cfg.Alerting.AlertmanagerConfigs
	if len(ams) != 1 || len(cfg.Alerting.AlertRelabelConfigs) != 1 {
		t.Fatalf("alerting: %+v", cfg.Alerting)
	}
	am := ams[0]
	if am.Scheme != "https" || am.PathPrefix != "/alertmanager" || time.Duration(am.Timeout) != 5*time.Second || am.APIVersion != "v2" {
		t.Errorf("alertmanager entry: %+v", am)
	}
	var kinds []string
	for _, sd := range am.ServiceDiscoveryConfigs {
		kinds = append(kinds, sd.Name())
		if f, ok := sd.(*file.SDConfig); ok && (len(f.Files) != 1 || f.Files[0] != filepath.Join("testdata", "alertmanagers", "*.json")) {
			t.Errorf("file_sd_configs files %v, want them relative to the config file", f.Files)
		}
	}
	if strings.Join(kinds, ",") != "dns,file,static" {
		t.Errorf("discovery configs %v, want static, file and dns", kinds)
	}
	if ca := am.HTTPClientConfig.TLSConfig.CAFile; ca != filepath.Join("testdata", "am-ca.pem") {
		t.Errorf("tls_config.ca_file %q, want it relative to the config file", ca)
	}
}

func TestBadConfigs(t *testing.T) {
	for file, want := range map[string][]string{
		"unknown_key.bad.yml": {"unknown_key.bad.yml:3: field windw not found"},
		"bad_values.bad.yml": {
			"bad_values.bad.yml:3: storage.window: must be at least 1m, got 10s",
			"bad_values.bad.yml:6: query.max_samples: must be positive, got 0",
			"bad_values.bad.yml:8: limits.max_labels_per_series: must not be negative, got -3",
			"bad_values.bad.yml:10: ingest.overload_status: must be 503 or 429, got 500",
			"bad_values.bad.yml:12: runtime.spare_processors: must be between 0 and 64, got -1",
			"bad_values.bad.yml:13: runtime.bulk_write_nice: must be between 0 and 19, got 20",
		},
		"wrong_type.bad.yml":   {"wrong_type.bad.yml:2: cannot unmarshal !!str `lots` into int64"},
		"bad_duration.bad.yml": {"bad_duration.bad.yml:2:", "30 minutes"},
		// Paths into lists, by a group's name and by index, point at the element's line.
		"hot_series.bad.yml":   {`hot_series.bad.yml:4: hot_series.groups[x].mode: must be interval or on-ingest, got "bogus"`},
		"remote_write.bad.yml": {`remote_write.bad.yml:4: remote_write[1]: found multiple remote write configs with name "lt"`},
		"alerting.bad.yml": {
			"alerting.bad.yml:3: alerting.alert_relabel_configs[0]: relabel configuration for replace action requires 'target_label' value",
			`alerting.bad.yml:8: alerting.alertmanagers[0].scheme: must be http or https, got "ftp"`,
			"alerting.bad.yml:9: alerting.alertmanagers[0].timeout: must be positive, got 0s",
		},
		// Prometheus' parser checks the entry as a whole; the gateway finds which one.
		"alerting_auth.bad.yml": {"alerting_auth.bad.yml:6: alerting.alertmanagers[1]: at most one of basic_auth, oauth2 & authorization must be configured"},
		// A discovery mechanism the gateway is built without, named with its line.
		"alerting_sd.bad.yml": {"alerting_sd.bad.yml:5: alerting.alertmanagers[0].kubernetes_sd_configs: the gateway has no kubernetes service discovery; use one of dns_sd_configs, file_sd_configs, static_configs"},
	} {
		t.Run(file, func(t *testing.T) {
			_, err := LoadConfigFile(filepath.Join("testdata", file))
			if err == nil {
				t.Fatal("accepted")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %v is not a *ConfigError", err)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestFlagsOverrideConfig(t *testing.T) {
	var out, errb strings.Builder
	code := cli([]string{"--config.file=testdata/bad_values.bad.yml"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "bad_values.bad.yml:3: storage.window") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := cli([]string{"--storage.window=10s"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "storage.window: must be at least 1m") {
		t.Errorf("a bad --storage.window: exit %d, stderr %q", code, errb.String())
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out, errb strings.Builder
	if code := cli([]string{"--help"}, &out, &errb); code != 0 {
		t.Errorf("--help exit code %d", code)
	}
	help := out.String() + errb.String()
	for _, f := range []string{"--config.file", "--web.listen-address", "--web.config.file", "--storage.window", "--storage.dir", "--query.timeout", "--query.max-samples", "--query.lookback-delta", "--log.level", "--log.format", "--web.shutdown-timeout", "--web.external-url"} {
		if !strings.Contains(help, f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}

func TestTuneRuntimeAddsSpareProcessorsBeyondBulkWrites(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" || os.Getenv("GOGC") != "" {
		t.Skip("GOMAXPROCS or GOGC set in the environment: the gateway leaves the runtime alone then")
	}
	cpus := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(cpus)
	defer debug.SetGCPercent(debug.SetGCPercent(30))

	cfg, err := LoadConfigFile("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Runtime.MemoryLimitRatio = 0
	tuneRuntime(cfg, slog.New(slog.DiscardHandler))
	if got := runtime.GOMAXPROCS(0); got != cpus+2 {
		t.Errorf("GOMAXPROCS = %d with the bundled defaults, want the %d CPUs plus two spare", got, cpus)
	}
	if cfg.cpus != cpus {
		t.Errorf("CPU count for the forwarding shards %d, want %d (spare processors not counted)", cfg.cpus, cpus)
	}
	if cfg.Limits.MaxBulkWrites != cpus {
		t.Errorf("limits.max_bulk_writes settled to %d, want the CPU count %d", cfg.Limits.MaxBulkWrites, cpus)
	}
	if got := debug.SetGCPercent(30); got != 100 {
		t.Errorf("GOGC = %d, want the bundled runtime.gogc 100", got)
	}
}
