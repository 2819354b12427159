package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	// Alertmanagers are found through static_configs (built into Prometheus' discovery), files
	// and DNS. Each mechanism registers itself when imported; the others (Kubernetes, clouds)
	// stay out because they pull in large SDKs. A file written by any other tool covers them.
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/model/relabel"
	yamlv2 "go.yaml.in/yaml/v2"
	yamlv3 "go.yaml.in/yaml/v3"
)

// discoveryKeys are the keys of an alertmanagers entry that select a discovery mechanism the
// gateway has, e.g. static_configs, file_sd_configs.
func discoveryKeys() []string {
	var keys []string
	for _, name := range discovery.RegisteredConfigNames() {
		if name == "static" {
			keys = append(keys, "static_configs")
		} else {
			keys = append(keys, name+"_sd_configs")
		}
	}
	return keys
}

// unsupportedDiscovery finds alertmanagers entries that use a discovery mechanism the gateway
// does not have, with the line of each.
func unsupportedDiscovery(root *yamlv3.Node, file string) []error {
	known := map[string]bool{}
	for _, k := range discoveryKeys() {
		known[k] = true
	}
	var errs []error
	for i, am := range alertingList(root, "alertmanagers") {
		if am.Kind != yamlv3.MappingNode {
			continue
		}
		for j := 0; j+1 < len(am.Content); j += 2 {
			k := am.Content[j]
			if !strings.HasSuffix(k.Value, "_sd_configs") || known[k.Value] {
				continue
			}
			errs = append(errs, &ConfigError{File: file, Line: k.Line, Msg: fmt.Sprintf(
				"alerting.alertmanagers[%d].%s: the gateway has no %s service discovery; use one of %s (a file_sd file can be written by any other discovery)",
				i, k.Value, strings.TrimSuffix(k.Value, "_sd_configs"), strings.Join(discoveryKeys(), ", "))})
		}
	}
	return errs
}

// alertingList returns the elements of the list alerting.<key>; nil when there is none.
func alertingList(root *yamlv3.Node, key string) []*yamlv3.Node {
	n := root
	if n.Kind == yamlv3.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	var line int
	if n = mappingValue(mappingValue(n, "alerting", &line), key, &line); n == nil || n.Kind != yamlv3.SequenceNode {
		return nil
	}
	return n.Content
}

// locateAlertingError gives a line to the errors of err that have none and come from the
// alerting section. Prometheus' own parsers check an entry as a whole (one authentication
// method, a relabel rule's regex) and say neither where nor which entry: each entry is
// parsed again alone to find the one that fails.
func locateAlertingError(root *yamlv3.Node, err error) error {
	errs := unjoin(err)
	for _, e := range errs {
		var ce *ConfigError
		if !errors.As(e, &ce) || ce.Line > 0 {
			continue
		}
		for _, sec := range []struct {
			path  string
			nodes []*yamlv3.Node
			into  func() any
		}{
			{"alerting.alertmanagers", alertingList(root, "alertmanagers"), func() any { return new(config.AlertmanagerConfig) }},
			{"alerting.alert_relabel_configs", alertingList(root, "alert_relabel_configs"), func() any { return new(relabel.Config) }},
		} {
			if i, n := failingElement(sec.nodes, sec.into, ce.Msg); n != nil {
				ce.Line, ce.Msg = n.Line, fmt.Sprintf("%s[%d]: %s", sec.path, i, ce.Msg)
				break
			}
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// failingElement parses each node alone into a fresh value and returns the first that fails
// with msg.
func failingElement(nodes []*yamlv3.Node, into func() any, msg string) (int, *yamlv3.Node) {
	for i, n := range nodes {
		b, err := yamlv3.Marshal(n)
		if err != nil {
			continue
		}
		if err := yamlv2.UnmarshalStrict(b, into()); err != nil && strings.Contains(msg, strings.TrimPrefix(err.Error(), "yaml: ")) {
			return i, n
		}
	}
	return 0, nil
}

// validateAlerting checks the alerting section as Prometheus does when it loads its
// configuration, plus what would make every notification fail, naming each entry.
func validateAlerting(a *config.AlertingConfig) []fieldError {
	var errs []fieldError
	relabels := func(path string, rcs []*relabel.Config) {
		for i, rc := range rcs {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				errs = append(errs, fieldError{fmt.Sprintf("%s[%d]", path, i), err.Error()})
			}
		}
	}
	relabels("alerting.alert_relabel_configs", a.AlertRelabelConfigs)
	for i, am := range a.AlertmanagerConfigs {
		path := fmt.Sprintf("alerting.alertmanagers[%d]", i)
		if am == nil {
			errs = append(errs, fieldError{path, "empty or null alertmanager entry"})
			continue
		}
		if am.Scheme != "http" && am.Scheme != "https" {
			errs = append(errs, fieldError{path + ".scheme", fmt.Sprintf("must be http or https, got %q", am.Scheme)})
		}
		if am.Timeout <= 0 {
			errs = append(errs, fieldError{path + ".timeout", fmt.Sprintf("must be positive, got %s", am.Timeout)})
		}
		relabels(path+".relabel_configs", am.RelabelConfigs)
		relabels(path+".alert_relabel_configs", am.AlertRelabelConfigs)
	}
	return errs
}
