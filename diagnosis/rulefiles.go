package diagnosis

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"
)

// ErrRules is wrapped by the errors LoadRuleFiles returns for a bad rule file.
var ErrRules = errors.New("invalid rule file")

// ExpandRuleFiles resolves glob patterns to the sorted, de-duplicated list of files; a pattern
// that matches nothing is an error (a typo must not load an empty rule set).
func ExpandRuleFiles(patterns []string) ([]string, error) {
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("%w: pattern %q: %v", ErrRules, p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%w: pattern %q matches no file", ErrRules, p)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// LoadRuleFiles validates rule files as the rules manager will load them (Prometheus'
// rulefmt: YAML, PromQL, templates; errors carry file:line:column), and checks that every
// alerting rule names its diagnosis: labels pattern, component (gpu|npu|engine|network|node)
// and severity (critical|warning|info), annotations summary and runbook.
func LoadRuleFiles(files ...string) error {
	var errs []error
	p := parser.NewParser(parser.Options{})
	for _, f := range files {
		groups, ferrs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		if len(ferrs) > 0 {
			for _, e := range ferrs {
				errs = append(errs, fmt.Errorf("%w: %w", ErrRules, e))
			}
			continue
		}
		lines := ruleLines(f)
		for gi, g := range groups.Groups {
			for ri, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				bad := func(format string, args ...any) {
					line := 0
					if gi < len(lines) && ri < len(lines[gi]) {
						line = lines[gi][ri]
					}
					errs = append(errs, fmt.Errorf("%w: %s:%d: group %q, rule %q: %s", ErrRules, f, line, g.Name, r.Alert, fmt.Sprintf(format, args...)))
				}
				if r.Labels["pattern"] == "" {
					bad("no pattern label")
				}
				if !slices.Contains(components, r.Labels["component"]) {
					bad("component label %q is not one of gpu, npu, engine, network, node", r.Labels["component"])
				}
				if severityRank(r.Labels["severity"]) == 0 {
					bad("severity label %q is not critical, warning or info", r.Labels["severity"])
				}
				for _, a := range []string{"summary", "runbook"} {
					if r.Annotations[a] == "" {
						bad("no %s annotation", a)
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ruleLines returns the line of every rule, by group and rule index.
func ruleLines(file string) [][]int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var doc struct {
		Groups []struct {
			Rules []yaml.Node `yaml:"rules"`
		} `yaml:"groups"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return nil
	}
	out := make([][]int, len(doc.Groups))
	for i, g := range doc.Groups {
		for _, r := range g.Rules {
			out[i] = append(out[i], r.Line)
		}
	}
	return out
}

// RuleUpdater is the part of *rules.Manager that Reload drives.
type RuleUpdater interface {
	Update(interval time.Duration, files []string, externalLabels labels.Labels, externalURL string, groupEvalIterationFunc rules.GroupEvalIterationFunc) error
}

// RuleConfig is what Reload loads.
type RuleConfig struct {
	// Files are glob patterns of rule files.
	Files []string
	// CatalogFile is the catalog's path.
	CatalogFile string
	// Interval is the default evaluation interval of rule groups.
	Interval       time.Duration
	ExternalLabels labels.Labels
	ExternalURL    string
}

// Reload validates the rule files and the catalog, and only when both are valid hands the
// files to the manager and swaps the catalog in. On any error nothing changes: the manager
// keeps its rules and the diagnoser its catalog, and the error names the file and line.
func (d *Diagnoser) Reload(m RuleUpdater, c RuleConfig) error {
	files, err := ExpandRuleFiles(c.Files)
	if err != nil {
		return err
	}
	if err := LoadRuleFiles(files...); err != nil {
		return err
	}
	cat, err := LoadCatalog(c.CatalogFile)
	if err != nil {
		return err
	}
	if err := m.Update(c.Interval, files, c.ExternalLabels, c.ExternalURL, nil); err != nil {
		return fmt.Errorf("update rules: %w", err)
	}
	d.SetCatalog(cat)
	d.logger.Info("rules loaded", "files", len(files), "patterns", len(cat.Patterns()))
	return nil
}
