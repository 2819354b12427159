package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/crypto/bcrypt"

	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

func rw1Body(t testing.TB, series ...prompb.TimeSeries) []byte {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func ts(name string, t time.Time, v float64, kv ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: t.UnixMilli(), Value: v}}}
}

func postWrite(t testing.TB, client *http.Client, u string, body []byte, mutate func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if mutate != nil {
		mutate(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMalformedWritesKeepTheWindowExact sends a mix of valid, partly valid and broken writes
// through the real gateway and checks that exactly the valid samples are queryable and the
// gateway keeps serving.
func TestMalformedWritesKeepTheWindowExact(t *testing.T) {
	gw := startGateway(t, "limits:\n  max_labels_per_series: 8\n  max_body_bytes: 65536\n", nil)
	now := time.Now().Truncate(time.Second)
	c := http.DefaultClient

	bomb := ts("bomb", now, 1)
	for i := range 20 {
		bomb.Labels = append(bomb.Labels, prompb.Label{Name: fmt.Sprintf("l%02d", i), Value: "x"})
	}
	noName := prompb.TimeSeries{Labels: []prompb.Label{{Name: "pod", Value: "x"}}, Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}}}
	good := rw1Body(t, ts("valid_total", now, 1, "pod", "a"), ts("valid_total", now, 2, "pod", "b"))
	partial := rw1Body(t, ts("valid_total", now, 3, "pod", "c"), bomb, noName)
	noise := make([]byte, 100000)
	_, _ = rand.Read(noise)
	huge := rw1Body(t, ts("big", now, 1, "v", fmt.Sprintf("%x", noise))) // incompressible
	for _, step := range []struct {
		name    string
		body    []byte
		mutate  func(*http.Request)
		code    int
		message string
	}{
		{"valid", good, nil, http.StatusNoContent, ""},
		{"partly valid", partial, nil, http.StatusBadRequest, "limits.max_labels_per_series"},
		{"truncated snappy", good[:len(good)/2], nil, http.StatusBadRequest, "snappy"},
		{"garbage protobuf", snappy.Encode(nil, []byte("\xff\xff\xff\xff garbage")), nil, http.StatusBadRequest, "decode"},
		{"oversized body", huge, nil, http.StatusRequestEntityTooLarge, "limits.max_body_bytes"},
		{"json", []byte(`{"series":[]}`), func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, http.StatusUnsupportedMediaType, "content type"},
		{"gzip", good, func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }, http.StatusUnsupportedMediaType, "encoding"},
	} {
		code, msg := postWrite(t, c, gw.URL, step.body, step.mutate)
		if code != step.code || !strings.Contains(msg, step.message) {
			t.Errorf("%s: got %d %q, want %d containing %q", step.name, code, msg, step.code, step.message)
		}
	}
	// Exactly the valid samples: pods a, b (first write) and c (the valid part of the second).
	r, code, err := promtest.Get(context.Background(), gw.URL, "/api/v1/query", url.Values{"query": {"sum(valid_total) * 1000 + count(valid_total)"}, "time": {unix(now)}})
	if err != nil || code != 200 || !strings.Contains(string(r.Data), `"6003"`) {
		t.Fatalf("window content: code %d err %v data %s, want 6003 (sum 6, count 3)", code, err, r.Data)
	}
	r, _, _ = promtest.Get(context.Background(), gw.URL, "/api/v1/query", url.Values{"query": {"count({__name__=~\"bomb|big\"}) or vector(0)"}, "time": {unix(now)}})
	if !strings.Contains(string(r.Data), `"0"`) {
		t.Errorf("rejected series reached the window: %s", r.Data)
	}
	// Limit hits are counted in /metrics.
	_, metrics := httpGet(t, gw.URL+"/metrics")
	// Bulk writes and the PromQL engine share the CPU slots (limits.max_bulk_writes, by default
	// GOMAXPROCS), all given back.
	slots := strconv.Itoa(runtime.GOMAXPROCS(0))
	for _, m := range []string{`eagle_eye_ingest_limit_hits_total{limit="max_labels_per_series"} 1`, `eagle_eye_ingest_limit_hits_total{limit="max_body_bytes"} 1`,
		"\neagle_eye_cpu_slots " + slots + "\n", "\nprometheus_engine_queries_concurrent_max " + slots + "\n", "\neagle_eye_cpu_slots_in_use 0\n"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestTLSAndBasicAuth serves the gateway with a web config file (TLS + basic auth) and checks
// that both writes and queries need the credentials.
func TestTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  probe: %s\n", certFile, keyFile, hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, "", func(f *Flags) { f.WebConfigFile = webCfg })
	base := strings.Replace(gw.URL, "http://", "https://", 1)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	auth := func(r *http.Request) { r.SetBasicAuth("probe", "s3cret") }

	if code, _ := postWrite(t, client, base, rw1Body(t, ts("secure", time.Now(), 1)), nil); code != http.StatusUnauthorized {
		t.Errorf("write without credentials: %d, want 401", code)
	}
	if code, body := postWrite(t, client, base, rw1Body(t, ts("secure", time.Now(), 1)), auth); code != http.StatusNoContent {
		t.Errorf("write with credentials: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/query?query=secure", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("query without credentials: %d, want 401", resp.StatusCode)
	}
	auth(req)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"__name__":"secure"`) {
		t.Errorf("query with credentials: %d %s", resp.StatusCode, b)
	}
	// Plain HTTP is refused on a TLS listener.
	if resp, err := http.Get(gw.URL + "/-/healthy"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on a TLS listener")
		}
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestBinaryStartsAndStopsOnSIGTERM builds the gateway, runs it as a user would with no flags
// but a port, and stops it with SIGTERM: it must exit 0 after logging its shutdown.
func TestBinaryStartsAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr := promtest.FreeAddr(t)
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--log.format=json",
		"--nats.listen-address=127.0.0.1:0", "--zmq.bind=tcp://127.0.0.1:0")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready in 30s; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := postWrite(t, http.DefaultClient, "http://"+addr, rw1Body(t, ts("hello", time.Now(), 1)), nil); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}
	if runtime.GOOS == "linux" {
		checkBulkThreads(t, "http://"+addr, cmd.Process.Pid)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("did not exit within 20s of SIGTERM; logs:\n%s", logs.String())
	}
	for _, want := range []string{`"msg":"gateway ready"`, `"msg":"shutting down"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

// checkBulkThreads checks that the gateway with its bundled defaults runs one background
// thread per CPU slot at runtime.bulk_write_nice (5) below the process's priority.
func checkBulkThreads(t *testing.T, url string, pid int) {
	t.Helper()
	_, metrics := httpGet(t, url+"/metrics")
	var slots int
	for line := range strings.Lines(metrics) {
		if v, ok := strings.CutPrefix(line, "eagle_eye_cpu_slots "); ok {
			slots, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if slots < 1 {
		t.Fatalf("/metrics has no eagle_eye_cpu_slots")
	}
	niceOf := func(task string) int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task))
		if err != nil {
			return -100 // the thread ended meanwhile
		}
		// Fields after the command's closing parenthesis, from the third (state) on; nice is
		// the 19th.
		_, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		n, _ := strconv.Atoi(f[19-3])
		return n
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The process's own priority is that of its least nice thread: not necessarily the main
	// thread's, which the runtime may have given to a background goroutine.
	nices := make([]int, 0, len(tasks))
	for _, task := range tasks {
		if n := niceOf(task.Name()); n != -100 {
			nices = append(nices, n)
		}
	}
	base := slices.Min(nices)
	lowered := 0
	for _, n := range nices {
		if n == min(19, base+5) {
			lowered++
		}
	}
	if lowered != slots {
		t.Errorf("%d of the gateway's %d threads run at nice %d, want one per CPU slot (%d)", lowered, len(tasks), min(19, base+5), slots)
	}
}

// TestQueryLimits checks that query.max_samples is enforced with Prometheus' error.
func TestQueryLimits(t *testing.T) {
	gw := startGateway(t, "query:\n  max_samples: 5\n", nil)
	now := time.Now().Truncate(time.Second)
	var series []prompb.TimeSeries
	for i := range 10 {
		series = append(series, ts("load", now, float64(i), "pod", fmt.Sprint(i)))
	}
	if code, body := postWrite(t, http.DefaultClient, gw.URL, rw1Body(t, series...), nil); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}
	r, code, err := promtest.Get(context.Background(), gw.URL, "/api/v1/query", url.Values{"query": {"load"}, "time": {unix(now)}})
	if err != nil || code != 422 || r.ErrorType != "execution" || !strings.Contains(r.Error, "too many samples") {
		t.Fatalf("query over max_samples: code %d err %v resp %+v", code, err, r)
	}
	r, code, err = promtest.Get(context.Background(), gw.URL, "/api/v1/query", url.Values{"query": {`load{pod="3"}`}, "time": {unix(now)}})
	if err != nil || code != 200 || !strings.Contains(string(r.Data), `"3"`) {
		t.Fatalf("query under the limit: code %d err %v resp %+v", code, err, r)
	}
}
