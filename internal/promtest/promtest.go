// Package promtest runs a real Prometheus server for tests. The binary is built from the
// Prometheus module this project depends on (same version as go.mod), once, into a cache
// directory, so a fresh machine needs nothing but Go.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
)

const module = "github.com/prometheus/prometheus"

// Version is the Prometheus module version this project builds against: the one linked into
// the running test binary, else the one go.mod names.
func Version() (string, error) {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == module {
				return d.Version, nil
			}
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// CacheDir is where built binaries are kept: $EAGLE_EYE_TEST_CACHE, else the user cache dir.
func CacheDir() (string, error) {
	if d := os.Getenv("EAGLE_EYE_TEST_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "eagle-eye"), nil
}

// Binary returns the path of a Prometheus server binary of the go.mod version, building it
// with `go install` on first use (a few minutes, cold). $EAGLE_EYE_PROMETHEUS overrides it.
func Binary(t testing.TB) string {
	t.Helper()
	return tool(t, "prometheus", "EAGLE_EYE_PROMETHEUS")
}

// Promtool returns the path of a promtool binary of the go.mod Prometheus version, built
// like Binary into the same cache. $EAGLE_EYE_PROMTOOL overrides it.
func Promtool(t testing.TB) string {
	t.Helper()
	return tool(t, "promtool", "EAGLE_EYE_PROMTOOL")
}

// tool builds cmd/<name> of the Prometheus module at the go.mod version into
// <cache>/<name>-<version>/ once, and returns its path; env names a variable that overrides it.
func tool(t testing.TB, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	ver, err := Version()
	if err != nil {
		t.Fatalf("prometheus version: %v", err)
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatalf("cache dir: %v", err)
	}
	dir := filepath.Join(cache, name+"-"+ver)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create %s: %v", dir, err)
	}
	// Several test packages may get here at once: one builds, the others wait on the lock.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("building %s %s into %s (once; a few minutes)", name, ver, dir)
	start := time.Now()
	cmd := exec.Command("go", "install", "-tags", "remove_all_sd", module+"/cmd/"+name+"@"+ver)
	cmd.Dir = dir // outside this module, so the install uses Prometheus' own go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go install %s %s: %v\n%s", name, ver, err, out)
	}
	t.Logf("built %s in %s", name, time.Since(start).Round(time.Second))
	return bin
}

// Server is a running Prometheus.
type Server struct {
	URL  string
	Dir  string
	cmd  *exec.Cmd
	logs *os.File
}

// Start runs Prometheus with the given configuration and extra flags, waits until it is
// ready, and stops it when the test ends.
func Start(t testing.TB, configYAML string, flags ...string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	logs, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	s := &Server{URL: "http://" + addr, Dir: dir, cmd: cmd, logs: logs}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logs.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("prometheus not ready after 60s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Response is the envelope of the Prometheus HTTP API.
type Response struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// Get calls a Prometheus-API endpoint at base and decodes its envelope.
func Get(ctx context.Context, base, path string, params url.Values) (*Response, int, error) {
	u := base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	return do(req)
}

// PostForm calls an endpoint with a form body, as Grafana does.
func PostForm(ctx context.Context, base, path string, params url.Values) (*Response, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(req)
}

func do(req *http.Request) (*Response, int, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("decode %s response (%d): %w: %.200s", req.URL.Path, resp.StatusCode, err, b)
	}
	return &r, resp.StatusCode, nil
}
