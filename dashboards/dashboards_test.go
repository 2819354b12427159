package dashboards

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

type panel struct {
	ID         int              `json:"id"`
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *datasource      `json:"datasource"`
	Targets    []target         `json:"targets"`
	Panels     []panel          `json:"panels"`
	GridPos    *json.RawMessage `json:"gridPos"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Instant    bool        `json:"instant"`
	Datasource *datasource `json:"datasource"`
}

type variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Datasource *datasource `json:"datasource"`
}

type dashboardDoc struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// query is one panel query, named for messages.
type query struct {
	file, title, refID, expr string
}

func (q query) String() string { return fmt.Sprintf("%s / %q / %s", q.file, q.title, q.refID) }

func loadAll(t *testing.T) map[string]dashboardDoc {
	t.Helper()
	files, err := fs.Glob(FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("found %d dashboards, want at least 7", len(files))
	}
	out := map[string]dashboardDoc{}
	for _, f := range files {
		b, err := FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboardDoc
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

func walk(ps []panel, fn func(panel)) {
	for _, p := range ps {
		fn(p)
		walk(p.Panels, fn)
	}
}

func queries(docs map[string]dashboardDoc) []query {
	var qs []query
	files := make([]string, 0, len(docs))
	for f := range docs {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		walk(docs[f].Panels, func(p panel) {
			for _, tg := range p.Targets {
				qs = append(qs, query{file: f, title: p.Title, refID: tg.RefID, expr: tg.Expr})
			}
		})
	}
	return qs
}

// varRef matches a Grafana variable reference: $name, ${name} or ${name:format}.
var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}?`)

// expand replaces Grafana variables with values that make the query runnable: "All" (.*)
// for template variables, which the dashboards use only inside =~ matchers, and one minute
// for the interval variables.
func expand(expr string) string {
	return varRef.ReplaceAllStringFunc(expr, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "1m"
		case "__interval_ms", "__range_ms":
			return "60000"
		case "__range_s":
			return "60"
		}
		return ".*"
	})
}

func TestShape(t *testing.T) {
	docs := loadAll(t)
	uids := map[string]string{}
	for f, d := range docs {
		t.Run(f, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q: both required", d.UID, d.Title)
			}
			if len(d.UID) > 40 {
				t.Errorf("uid %q longer than Grafana's 40 characters", d.UID)
			}
			if other, ok := uids[d.UID]; ok {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = f
			if len(d.Panels) == 0 {
				t.Fatal("no panels")
			}
			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				vars[v.Name] = true
				if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
					t.Errorf("variable %s: datasource %+v, want uid ${datasource}", v.Name, v.Datasource)
				}
			}
			if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" ||
				d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
				t.Errorf("first variable must be datasource, of type datasource, query prometheus")
			}
			ids := map[int]bool{}
			walk(d.Panels, func(p panel) {
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if p.GridPos == nil {
					t.Errorf("panel %q has no gridPos", p.Title)
				}
				if p.Type == "row" || p.Type == "text" {
					return
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no queries", p.Title)
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
					t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
				}
				for _, tg := range p.Targets {
					if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q query %s: datasource uid %q", p.Title, tg.RefID, tg.Datasource.UID)
					}
					for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
						if !strings.HasPrefix(m[1], "__") && !vars[m[1]] {
							t.Errorf("panel %q query %s uses undefined variable $%s", p.Title, tg.RefID, m[1])
						}
					}
				}
			})
			// No datasource UID other than the variable anywhere in the file.
			b, _ := FS.ReadFile(f)
			for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
				if m[1] != "${datasource}" && m[1] != d.UID {
					t.Errorf("hard-coded uid %q", m[1])
				}
			}
		})
	}
}

func TestQueriesParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	qs := queries(loadAll(t))
	if len(qs) < 50 {
		t.Errorf("only %d panel queries", len(qs))
	}
	for _, q := range qs {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty query", q)
			continue
		}
		if _, err := p.ParseExpr(expand(q.expr)); err != nil {
			t.Errorf("%s: %v\n%s", q, err, q.expr)
		}
	}
}

// labelValuesQuery matches the variable queries the dashboards use:
// label_values(label) and label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((?:(.+),\s*)?([A-Za-z_][A-Za-z0-9_]*)\)$`)

func variableQueries(t *testing.T, docs map[string]dashboardDoc) map[string]string {
	out := map[string]string{}
	for f, d := range docs {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q := ""
			switch vq := v.Query.(type) {
			case string:
				q = vq
			case map[string]any:
				q, _ = vq["query"].(string)
			}
			if !labelValuesQuery.MatchString(q) {
				t.Errorf("%s variable %s: query %q is not label_values(...)", f, v.Name, q)
			}
			out[f+"|$"+v.Name] = q
		}
	}
	return out
}
