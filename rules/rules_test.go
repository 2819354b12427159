package rules_test

import (
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/eagle-eye-ai/eagle-eye/diagnosis"
	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
	"github.com/eagle-eye-ai/eagle-eye/rules"
)

func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	return files
}

// TestPromtool runs `promtool check rules` and `promtool test rules` on every rule file; a rule
// file without its <name>.test.yml fails.
func TestPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds promtool on first use")
	}
	promtool := promtest.Promtool(t)
	for _, f := range ruleFiles(t) {
		t.Run(f, func(t *testing.T) {
			if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
				t.Fatalf("promtool check rules %s: %v\n%s", f, err, out)
			}
			test := strings.TrimSuffix(f, ".rules.yml") + ".test.yml"
			if _, err := os.Stat(test); err != nil {
				t.Fatalf("%s has no unit-test file %s", f, test)
			}
			if out, err := exec.Command(promtool, "test", "rules", test).CombinedOutput(); err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", test, err, out)
			}
		})
	}
}

// TestRulesMatchCatalog: every alerting rule passes diagnosis' checks and names a pattern of the
// catalog with the catalog's component; every catalog pattern has a rule.
func TestRulesMatchCatalog(t *testing.T) {
	files := ruleFiles(t)
	if err := diagnosis.LoadRuleFiles(files...); err != nil {
		t.Fatal(err)
	}
	cat, err := diagnosis.LoadCatalog("catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, f := range files {
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errs)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				pat := r.Labels["pattern"]
				adv, ok := cat.Lookup(pat, diagnosis.DeviceInfo{})
				if !ok {
					t.Errorf("%s: %s: pattern %s is not in the catalog", f, r.Alert, pat)
					continue
				}
				if adv.Component != r.Labels["component"] {
					t.Errorf("%s: %s: component %s, catalog says %s", f, r.Alert, r.Labels["component"], adv.Component)
				}
				seen[pat] = true
			}
		}
	}
	for _, id := range cat.Patterns() {
		if !seen[id] {
			t.Errorf("catalog pattern %s has no alerting rule", id)
		}
	}
}

// TestEmbedded: the embedded copies are the files on disk.
func TestEmbedded(t *testing.T) {
	want := append(ruleFiles(t), "catalog.yaml")
	var got []string
	err := fs.WalkDir(rules.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, path)
			b, _ := fs.ReadFile(rules.FS, path)
			disk, _ := os.ReadFile(path)
			if string(b) != string(disk) {
				t.Errorf("embedded %s differs from the file", path)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("embedded %v, want %v", got, want)
	}
}
