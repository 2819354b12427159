package promtest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBuildPrometheus builds (or finds) the Prometheus binary and checks that it was built
// from the module version go.mod names.
func TestBuildPrometheus(t *testing.T) {
	bin := Binary(t)
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m %s: %v\n%s", bin, err, out)
	}
	ver, err := Version()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "mod\t"+module+"\t"+ver) {
		t.Errorf("%s was not built from %s %s:\n%s", bin, module, ver, out)
	}
}
