// Package e2etest runs the project's real binaries in end-to-end tests: it builds them once per
// test, starts them as processes with their output in a log file, waits for readiness and
// stops them with SIGTERM (then SIGKILL) when the test ends.
package e2etest

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// ModuleRoot is the directory of this module's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		var out []byte
		out, rootErr = exec.Command("go", "env", "GOMOD").Output()
		root = filepath.Dir(strings.TrimSpace(string(out)))
	})
	if rootErr != nil {
		t.Fatalf("find the module root: %v", rootErr)
	}
	return root
}

// Build builds the named commands (directories under cmd/, e.g. "gateway", "probe") into dir
// and returns their paths by name.
func Build(t testing.TB, dir string, names ...string) map[string]string {
	t.Helper()
	bins := make(map[string]string, len(names))
	for _, name := range names {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
		cmd.Dir = ModuleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_CFLAGS=-O2 -g -Wno-deprecated-declarations")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
		}
		bins[name] = bin
	}
	return bins
}

// Process is a started binary.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

// Start runs bin with args, appending its stdout and stderr to logPath; the process is
// stopped when the test ends.
func Start(t testing.TB, logPath, bin string, args ...string) *Process {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop sends SIGTERM and waits up to 20 s for the exit; past that it kills the process and
// fails the test, since every binary must stop on SIGTERM. Stopping twice is harmless.
func (p *Process) Stop(t testing.TB) {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 20 s of SIGTERM", p.cmd.Path)
		}
	})
}

// Kill stops the process at once, as a crash would.
func (p *Process) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// WaitOK polls url until it answers 200, for at most 30 s.
func WaitOK(t testing.TB, url string) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("%s did not answer 200 within 30 s", url)
}
