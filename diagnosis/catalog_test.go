package diagnosis

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCatalogLookup(t *testing.T) {
	c := loadCatalog(t)
	a, ok := c.Lookup("E01", DeviceInfo{})
	if !ok || a.RouterAction != Deprioritize || a.Component != "engine" || len(a.Steps) == 0 || len(a.Overrides) != 0 {
		t.Fatalf("E01: %+v %v", a, ok)
	}
	if _, ok := c.Lookup("X99", DeviceInfo{}); ok {
		t.Fatal("unknown pattern found")
	}
	// The returned steps are a copy.
	a.Steps[0] = "changed"
	if b, _ := c.Lookup("E01", DeviceInfo{}); b.Steps[0] == "changed" {
		t.Fatal("Lookup returned the catalog's own slice")
	}
}

// TestCatalogModelDriverAdvice: advice differs by model, driver and firmware where the catalog
// says so, and is the same where it does not.
func TestCatalogModelDriverAdvice(t *testing.T) {
	c := loadCatalog(t)
	h100 := DeviceInfo{Model: "NVIDIA H100 80GB HBM3", Driver: "550.54.15", Firmware: "96.00.99.00.01"}
	h100OldVBIOS := DeviceInfo{Model: "NVIDIA H100 80GB HBM3", Driver: "550.54.15", Firmware: "96.00.5E.00.01"}
	a100 := DeviceInfo{Model: "NVIDIA A100-SXM4-80GB", Driver: "525.85.12", Firmware: "92.00.45.00.06"}
	v100 := DeviceInfo{Model: "Tesla V100-SXM2-32GB", Driver: "470.182.03"}
	l40 := DeviceInfo{Model: "NVIDIA L40S", Driver: "535.104.05"}
	cases := []struct {
		pattern       string
		dev           DeviceInfo
		overrides     []string
		conclusionHas string
		stepHas       string
	}{
		{"G01", h100, []string{"hgx-nvswitch"}, "unreachable", "nvidia-fabricmanager"},
		{"G01", h100OldVBIOS, []string{"hgx-nvswitch", "old-vbios"}, "unreachable", "96.00.74"},
		{"G01", l40, nil, "unreachable", "Reboot the node"},
		{"G05", h100, nil, "row remap is pending", "GPU reset"},
		{"G05", v100, []string{"pre-ampere-page-retirement"}, "retires pages instead of remapping rows", "PAGE_RETIREMENT"},
		{"G06", a100, []string{"gsp-before-r535"}, "before R535", "NVreg_EnableGpuFirmware=0"},
		{"G06", h100, []string{"gsp-r535-plus"}, "needs a reset", "GSP firmware log"},
		{"G06", DeviceInfo{Model: "NVIDIA H100"}, nil, "needs a reset", "Reset the GPU"}, // driver unknown: no range applies
		{"G10", l40, []string{"pcie-card-airflow"}, "throttled", "fan policy"},
		{"G10", h100, []string{"sxm-cold-plate"}, "throttled", "coolant"},
		{"N02", DeviceInfo{Model: "Ascend910B3"}, nil, "RoCE", "PreSeparateNPU"},
		{"N02", DeviceInfo{Model: "Ascend310P3"}, []string{"atlas-inference-card"}, "host NIC", "host network interface"},
	}
	for _, tc := range cases {
		a, ok := c.Lookup(tc.pattern, tc.dev)
		if !ok {
			t.Fatalf("%s not found", tc.pattern)
		}
		if !slices.Equal(a.Overrides, tc.overrides) {
			t.Errorf("%s on %+v: overrides %v, want %v", tc.pattern, tc.dev, a.Overrides, tc.overrides)
		}
		if !strings.Contains(a.Conclusion, tc.conclusionHas) {
			t.Errorf("%s on %+v: conclusion %q lacks %q", tc.pattern, tc.dev, a.Conclusion, tc.conclusionHas)
		}
		if !slices.ContainsFunc(a.Steps, func(s string) bool { return strings.Contains(s, tc.stepHas) }) {
			t.Errorf("%s on %+v: steps %q lack %q", tc.pattern, tc.dev, a.Steps, tc.stepHas)
		}
	}
	// The same pattern gives different advice on an A100 with R525 and an H100 with R550.
	x, _ := c.Lookup("G06", a100)
	y, _ := c.Lookup("G06", h100)
	if x.Conclusion == y.Conclusion || slices.Equal(x.Steps, y.Steps) {
		t.Error("G06 advice does not differ between driver 525 and 550")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"550.54.15", "535", 1},
		{"525.85.12", "535", -1},
		{"535", "535.0.0", 0},
		{"96.00.5E.00.01", "96.00.74", -1}, // hexadecimal VBIOS segment
		{"96.00.99.00.01", "96.00.74", 1},
		{"v1.2.10", "1.2.9", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	r, err := parseRange(">=535, <550")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"535.104.05": true, "550.54.15": false, "525.1": false, "": false} {
		if r.contains(v) != want {
			t.Errorf("range contains %q = %v", v, !want)
		}
	}
}

// TestCatalogErrors: a bad catalog is refused with its file and line.
func TestCatalogErrors(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/catalog-unknown-field.bad.yaml": "line 9: field severity not found",
		"testdata/catalog-router-action.bad.yaml": `catalog-router-action.bad.yaml:7: pattern G01: router_action "drain"`,
		"testdata/catalog-driver-range.bad.yaml":  `catalog-driver-range.bad.yaml:11: pattern G06: override old: driver: "535": a comparison`,
		"testdata/catalog-suppressed-by.bad.yaml": `catalog-suppressed-by.bad.yaml:9: pattern G05: suppressed_by names "G02"`,
		"testdata/does-not-exist.yaml":            "no such file",
	} {
		_, err := LoadCatalog(file)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", file, err, want)
		}
		if err != nil && !strings.Contains(file, "does-not-exist") && !errors.Is(err, ErrCatalog) {
			t.Errorf("%s: %v does not wrap ErrCatalog", file, err)
		}
	}
}
