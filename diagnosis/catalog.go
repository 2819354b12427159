package diagnosis

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RouterAction tells a router what to do with the endpoints on a faulty device.
type RouterAction string

const (
	// Unroutable: remove from routing now.
	Unroutable RouterAction = "unroutable"
	// Deprioritize: weight down, keep as a fallback.
	Deprioritize RouterAction = "deprioritize"
	// Observe: no routing change.
	Observe RouterAction = "observe"
)

// Rank orders actions from the least to the most disruptive: 0 for none or unknown.
func (a RouterAction) Rank() int {
	switch a {
	case Unroutable:
		return 3
	case Deprioritize:
		return 2
	case Observe:
		return 1
	}
	return 0
}

// ErrCatalog is wrapped by every error LoadCatalog and ParseCatalog return for a bad catalog.
var ErrCatalog = errors.New("invalid catalog")

var components = []string{"gpu", "npu", "engine", "network", "node"}

// DeviceInfo is what a catalog override can match on.
type DeviceInfo struct {
	Model    string
	Driver   string
	Firmware string
}

// Advice is a catalog entry resolved for one device.
type Advice struct {
	Pattern      string       `json:"pattern"`
	Title        string       `json:"title"`
	Component    string       `json:"component"`
	Conclusion   string       `json:"conclusion"`
	Steps        []string     `json:"steps"`
	RouterAction RouterAction `json:"router_action"`
	// Overrides names the overrides that applied, in order.
	Overrides []string `json:"overrides,omitempty"`
}

// Catalog maps fault patterns to conclusions and handling. It is immutable once loaded and safe
// for concurrent use.
type Catalog struct {
	name     string
	patterns map[string]*catalogPattern
}

type catalogFile struct {
	Version  int                        `yaml:"version"`
	Patterns map[string]*catalogPattern `yaml:"patterns"`
}

type catalogPattern struct {
	Title        string             `yaml:"title"`
	Component    string             `yaml:"component"`
	Conclusion   string             `yaml:"conclusion"`
	RouterAction RouterAction       `yaml:"router_action"`
	Steps        []string           `yaml:"steps"`
	SuppressedBy []string           `yaml:"suppressed_by"`
	Overrides    []*catalogOverride `yaml:"overrides"`
}

type catalogOverride struct {
	Name         string       `yaml:"name"`
	When         matchSpec    `yaml:"when"`
	Conclusion   string       `yaml:"conclusion"`
	Steps        []string     `yaml:"steps"`
	ExtraSteps   []string     `yaml:"extra_steps"`
	RouterAction RouterAction `yaml:"router_action"`

	model    *regexp.Regexp
	driver   versionRange
	firmware versionRange
}

type matchSpec struct {
	Model    string `yaml:"model"`
	Driver   string `yaml:"driver"`
	Firmware string `yaml:"firmware"`
}

// LoadCatalog reads and validates a catalog file. Errors name the file and line.
func LoadCatalog(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return ParseCatalog(path, b)
}

// ParseCatalog validates a catalog held in memory; name is used in errors.
func ParseCatalog(name string, data []byte) (*Catalog, error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrCatalog, name, line, fmt.Sprintf(format, args...))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCatalog, name, err)
	}
	var f catalogFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: empty", ErrCatalog, name)
		}
		// yaml.v3 errors already carry "line N".
		return nil, fmt.Errorf("%w: %s: %v", ErrCatalog, name, err)
	}
	lines := catalogLines(&root)
	if f.Version != 1 {
		return nil, bad(lines.at("version"), "version %d: only version 1 is known", f.Version)
	}
	if len(f.Patterns) == 0 {
		return nil, bad(lines.at("patterns"), "no patterns")
	}
	for id, p := range f.Patterns {
		at := func(path ...string) int { return lines.at(append([]string{"patterns", id}, path...)...) }
		if p == nil {
			return nil, bad(at(), "pattern %s is empty", id)
		}
		if p.Title == "" || p.Conclusion == "" {
			return nil, bad(at(), "pattern %s needs a title and a conclusion", id)
		}
		if !slices.Contains(components, p.Component) {
			return nil, bad(at("component"), "pattern %s: component %q is not one of %s", id, p.Component, strings.Join(components, ", "))
		}
		if p.RouterAction.Rank() == 0 {
			return nil, bad(at("router_action"), "pattern %s: router_action %q is not unroutable, deprioritize or observe", id, p.RouterAction)
		}
		if len(p.Steps) == 0 {
			return nil, bad(at(), "pattern %s has no steps", id)
		}
		for i, s := range p.SuppressedBy {
			if _, ok := f.Patterns[s]; !ok || s == id {
				return nil, bad(lines.at("patterns", id, "suppressed_by", strconv.Itoa(i)), "pattern %s: suppressed_by names %q, which is not another pattern of the catalog", id, s)
			}
		}
		for i, o := range p.Overrides {
			oat := func(field string) int {
				return lines.at("patterns", id, "overrides", strconv.Itoa(i), field)
			}
			if o == nil || o.Name == "" {
				return nil, bad(at("overrides"), "pattern %s: override %d needs a name", id, i)
			}
			if o.When == (matchSpec{}) {
				return nil, bad(oat("when"), "pattern %s: override %s matches everything: give when.model, when.driver or when.firmware", id, o.Name)
			}
			if o.When.Model != "" {
				re, err := regexp.Compile("(?i)" + o.When.Model)
				if err != nil {
					return nil, bad(oat("when"), "pattern %s: override %s: model: %v", id, o.Name, err)
				}
				o.model = re
			}
			var err error
			if o.driver, err = parseRange(o.When.Driver); err != nil {
				return nil, bad(oat("when"), "pattern %s: override %s: driver: %v", id, o.Name, err)
			}
			if o.firmware, err = parseRange(o.When.Firmware); err != nil {
				return nil, bad(oat("when"), "pattern %s: override %s: firmware: %v", id, o.Name, err)
			}
			if o.RouterAction != "" && o.RouterAction.Rank() == 0 {
				return nil, bad(oat("router_action"), "pattern %s: override %s: router_action %q is not unroutable, deprioritize or observe", id, o.Name, o.RouterAction)
			}
			if o.Conclusion == "" && len(o.Steps) == 0 && len(o.ExtraSteps) == 0 && o.RouterAction == "" {
				return nil, bad(oat("name"), "pattern %s: override %s changes nothing", id, o.Name)
			}
		}
	}
	return &Catalog{name: name, patterns: f.Patterns}, nil
}

// Patterns returns the catalog's pattern ids, sorted.
func (c *Catalog) Patterns() []string {
	ids := make([]string, 0, len(c.patterns))
	for id := range c.patterns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Lookup resolves a pattern for a device: the pattern's entry with every matching override
// applied in order. ok is false for a pattern the catalog does not know.
func (c *Catalog) Lookup(pattern string, d DeviceInfo) (a Advice, ok bool) {
	p, ok := c.patterns[pattern]
	if !ok {
		return Advice{}, false
	}
	a = Advice{
		Pattern:      pattern,
		Title:        p.Title,
		Component:    p.Component,
		Conclusion:   p.Conclusion,
		Steps:        slices.Clone(p.Steps),
		RouterAction: p.RouterAction,
	}
	for _, o := range p.Overrides {
		if !o.matches(d) {
			continue
		}
		if o.Conclusion != "" {
			a.Conclusion = o.Conclusion
		}
		if len(o.Steps) > 0 {
			a.Steps = slices.Clone(o.Steps)
		}
		a.Steps = append(a.Steps, o.ExtraSteps...)
		if o.RouterAction != "" {
			a.RouterAction = o.RouterAction
		}
		a.Overrides = append(a.Overrides, o.Name)
	}
	return a, true
}

// suppressedBy returns the patterns that explain pattern.
func (c *Catalog) suppressedBy(pattern string) []string {
	if p, ok := c.patterns[pattern]; ok {
		return p.SuppressedBy
	}
	return nil
}

// matches reports whether every condition of the override holds. A condition on a field the
// device does not report (empty) does not hold.
func (o *catalogOverride) matches(d DeviceInfo) bool {
	if o.model != nil && (d.Model == "" || !o.model.MatchString(d.Model)) {
		return false
	}
	if o.driver != nil && !o.driver.contains(d.Driver) {
		return false
	}
	if o.firmware != nil && !o.firmware.contains(d.Firmware) {
		return false
	}
	return true
}

// catalogLineIndex maps a dotted path of mapping keys and sequence indexes to a line.
type catalogLineIndex map[string]int

func catalogLines(root *yaml.Node) catalogLineIndex {
	idx := catalogLineIndex{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := path + "/" + n.Content[i].Value
				idx[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := path + "/" + strconv.Itoa(i)
				idx[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return idx
}

// at returns the line of the deepest existing prefix of path (1 when nothing matches).
func (idx catalogLineIndex) at(path ...string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := idx["/"+strings.Join(path[:n], "/")]; ok {
			return l
		}
	}
	return 1
}

// versionRange is a conjunction of comparisons on dotted versions; nil matches anything.
type versionRange []versionBound

type versionBound struct {
	op string
	v  string
}

func parseRange(s string) (versionRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var r versionRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		op := ""
		for _, cand := range []string{">=", "<=", "==", "!=", ">", "<", "="} {
			if strings.HasPrefix(part, cand) {
				op = cand
				break
			}
		}
		if op == "" {
			return nil, fmt.Errorf("%q: a comparison starts with one of >= <= > < == !=", part)
		}
		v := strings.TrimSpace(strings.TrimPrefix(part, op))
		if v == "" {
			return nil, fmt.Errorf("%q: no version after %s", part, op)
		}
		if op == "=" {
			op = "=="
		}
		r = append(r, versionBound{op: op, v: v})
	}
	return r, nil
}

func (r versionRange) contains(v string) bool {
	if v == "" {
		return false
	}
	for _, b := range r {
		c := compareVersions(v, b.v)
		ok := false
		switch b.op {
		case ">=":
			ok = c >= 0
		case "<=":
			ok = c <= 0
		case ">":
			ok = c > 0
		case "<":
			ok = c < 0
		case "==":
			ok = c == 0
		case "!=":
			ok = c != 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// compareVersions compares dotted versions segment by segment: numerically when both segments
// are decimal, else as hexadecimal numbers (VBIOS versions such as 96.00.5E), else as strings.
// A missing segment counts as 0, so "535" == "535.0".
func compareVersions(a, b string) int {
	as, bs := splitVersion(a), splitVersion(b)
	for i := range max(len(as), len(bs)) {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if c := compareSegment(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func splitVersion(v string) []string {
	return strings.FieldsFunc(strings.TrimPrefix(strings.TrimSpace(v), "v"), func(r rune) bool {
		return r == '.' || r == '-' || r == '_'
	})
}

func compareSegment(x, y string) int {
	if a, err := strconv.ParseUint(x, 10, 64); err == nil {
		if b, err := strconv.ParseUint(y, 10, 64); err == nil {
			return cmp.Compare(a, b)
		}
	}
	if a, err := strconv.ParseUint(x, 16, 64); err == nil {
		if b, err := strconv.ParseUint(y, 16, 64); err == nil {
			return cmp.Compare(a, b)
		}
	}
	return strings.Compare(x, y)
}
