package e2etest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequirePeers is the environment variable that turns a missing peer from a skip into a
// failure: CI sets it after installing every peer.
const RequirePeers = "EAGLE_EYE_REQUIRE_PEERS"

// Peer returns the first of names found: an absolute path that exists, a name on PATH, or a
// name in $(go env GOPATH)/bin (where `go install` puts tools). When none is found the test
// skips, or fails when EAGLE_EYE_REQUIRE_PEERS=1; install says how to get one.
func Peer(t testing.TB, install string, names ...string) string {
	t.Helper()
	var gobins []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			gobins = append(gobins, filepath.Join(dir, "bin"))
		}
	}
	for _, n := range names {
		if filepath.IsAbs(n) {
			if _, err := os.Stat(n); err == nil {
				return n
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range gobins {
			if p := filepath.Join(dir, n); isFile(p) {
				return p
			}
		}
	}
	Missing(t, strings.Join(names, " or ")+" not found", install)
	return ""
}

// Missing skips the test for a missing peer, or fails it when EAGLE_EYE_REQUIRE_PEERS=1.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv(RequirePeers) == "1" {
		t.Fatalf("%s and %s=1 (install: %s)", what, RequirePeers, install)
	}
	t.Skipf("%s (install: %s); set %s=1 to fail instead", what, install, RequirePeers)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
