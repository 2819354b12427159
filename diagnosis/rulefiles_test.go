package diagnosis

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

func TestLoadRuleFiles(t *testing.T) {
	if err := LoadRuleFiles(ruleFiles(t)...); err != nil {
		t.Fatalf("project rules: %v", err)
	}
	err := LoadRuleFiles("testdata/bad-promql.rules.yml")
	if err == nil || !errors.Is(err, ErrRules) || !strings.Contains(err.Error(), "bad-promql.rules.yml: 9:15:") {
		t.Errorf("bad PromQL: %v", err)
	}
	err = LoadRuleFiles("testdata/no-pattern.rules.yml")
	for _, want := range []string{
		`no-pattern.rules.yml:6: group "incomplete", rule "NoPattern": no pattern label`,
		`severity label "page"`,
		"no runbook annotation",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("incomplete rule: %v, want %q", err, want)
		}
	}
	if _, err := ExpandRuleFiles([]string{"testdata/*.nothing"}); err == nil {
		t.Error("a pattern matching nothing must fail")
	}
}

type fakeUpdater struct{ files [][]string }

func (f *fakeUpdater) Update(_ time.Duration, files []string, _ labels.Labels, _ string, _ rules.GroupEvalIterationFunc) error {
	f.files = append(f.files, files)
	return nil
}

// TestReload: a bad rule file or catalog changes nothing; good ones reach the manager and the
// diagnoser.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	b, err := os.ReadFile(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cat, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Catalog: loadCatalog(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	before := d.catalog.Load()
	m := &fakeUpdater{}
	good := RuleConfig{Files: []string{"../rules/*.rules.yml"}, CatalogFile: cat, Interval: 15 * time.Second}
	for _, bad := range []RuleConfig{
		{Files: []string{"../rules/*.rules.yml", "testdata/bad-promql.rules.yml"}, CatalogFile: cat},
		{Files: good.Files, CatalogFile: "testdata/catalog-router-action.bad.yaml"},
	} {
		if err := d.Reload(m, bad); err == nil {
			t.Fatalf("reload of %v accepted", bad)
		}
	}
	if len(m.files) != 0 || d.catalog.Load() != before {
		t.Fatal("a refused reload changed something")
	}
	if err := d.Reload(m, good); err != nil {
		t.Fatal(err)
	}
	if len(m.files) != 1 || len(m.files[0]) != 6 || d.catalog.Load() == before {
		t.Fatalf("reload: %v", m.files)
	}
}
