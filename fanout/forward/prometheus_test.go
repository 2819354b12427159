package forward

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/ingest"
	"github.com/eagle-eye-ai/eagle-eye/internal/promtest"
)

var outage = flag.Duration("forward.outage", 60*time.Second, "how long the destination is down in TestPrometheusOutage")

// The tests in this file run a real Prometheus (no out-of-order window, its default) as the
// destination and compare what arrived by PromQL.

const stepMs = 100 // sample k of a series is at base + k·stepMs with value k

func startPrometheus(t *testing.T) *promtest.Server {
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	return promtest.Start(t, "global:\n  scrape_interval: 1h\n",
		"--web.enable-remote-write-receiver",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request")
}

func crashSeries(metric string, i int, k int, base int64) ingest.Series {
	return series([]string{"__name__", metric, "series", strconv.Itoa(i), "job", "forward-test"},
		ingest.Sample{T: base + int64(k)*stepMs, V: float64(k)})
}

// promCounts returns, per value of the "series" label, how many samples and what sum of
// values Prometheus holds for k in [0, upto[series]].
func promCounts(t *testing.T, p *promtest.Server, metric string, base int64, upto map[int]int) (counts map[int]int, sums map[int]float64) {
	t.Helper()
	counts, sums = map[int]int{}, map[int]float64{}
	for _, fn := range []string{"count_over_time", "sum_over_time"} {
		// Group the series by their last k so that one query covers each group exactly.
		groups := map[int][]int{}
		for i, k := range upto {
			groups[k] = append(groups[k], i)
		}
		for k, ids := range groups {
			at := base + int64(k)*stepMs
			sel := make([]string, len(ids))
			for j, i := range ids {
				sel[j] = strconv.Itoa(i)
			}
			q := fmt.Sprintf(`%s(%s{series=~"%s"}[%dms])`, fn, metric, strings.Join(sel, "|"), int64(k+1)*stepMs)
			resp, code, err := promtest.Get(context.Background(), p.URL, "/api/v1/query", url.Values{
				"query": {q}, "time": {strconv.FormatFloat(float64(at)/1000, 'f', 3, 64)},
			})
			if err != nil || code != 200 {
				t.Fatalf("query %s: %d %v", q, code, err)
			}
			var data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			}
			if err := json.Unmarshal(resp.Data, &data); err != nil {
				t.Fatal(err)
			}
			for _, r := range data.Result {
				i, _ := strconv.Atoi(r.Metric["series"])
				v, _ := strconv.ParseFloat(r.Value[1].(string), 64)
				if fn == "count_over_time" {
					counts[i] = int(v)
				} else {
					sums[i] = v
				}
			}
		}
	}
	return counts, sums
}

// waitComplete polls Prometheus until every series i holds exactly samples 0..upto[i].
func waitComplete(t *testing.T, p *promtest.Server, metric string, base int64, upto map[int]int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counts, sums := promCounts(t, p, metric, base, upto)
		missing, total := 0, 0
		var bad []string
		for i, k := range upto {
			total += k + 1
			want := float64(k) * float64(k+1) / 2
			if counts[i] != k+1 || sums[i] != want {
				missing += k + 1 - counts[i]
				if len(bad) < 5 {
					bad = append(bad, fmt.Sprintf("series %d: %d samples (sum %v), want %d (sum %v)", i, counts[i], sums[i], k+1, want))
				}
			}
		}
		if len(bad) == 0 {
			t.Logf("all %d acknowledged samples of %d series are in Prometheus", total, len(upto))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d acknowledged samples missing: %s", timeout, missing, total, strings.Join(bad, "; "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestPrometheusEverySample(t *testing.T) {
	p := startPrometheus(t)
	for _, proto := range []string{protoV1, protoV2} {
		for _, mode := range writeModes {
			t.Run(proto+"/"+mode, func(t *testing.T) {
				cfg := fmt.Sprintf(`remote_write:
  - url: %s/api/v1/write
    name: prom
    protobuf_message: %s
    queue_config: {batch_send_deadline: 100ms}
`, p.URL, proto)
				f, reg := startForwarder(t, cfg, t.TempDir())
				base := time.Now().Add(-40 * time.Minute).UnixMilli()
				metric := strings.NewReplacer(".", "_", "-", "_").Replace("fwd_test_" + proto + "_" + mode)
				w := fleetWriter(t, f, proto, mode)
				const n, reqs = 200, 150
				for k := range reqs {
					ss := make([]ingest.Series, n)
					for i := range n {
						ss[i] = crashSeries(metric, i, k, base)
					}
					if err := w(k, ss); err != nil {
						t.Fatal(err)
					}
				}
				upto := map[int]int{}
				for i := range n {
					upto[i] = reqs - 1
				}
				waitComplete(t, p, metric, base, upto, 60*time.Second)
				if d := metricValue(t, reg, "eagle_eye_forward_dropped_samples_total", nil); d != 0 {
					t.Errorf("dropped %v samples", d)
				}
			})
		}
	}
}

// downProxy forwards to target, or, while down, drops every connection without an answer.
type downProxy struct {
	*httptest.Server
	down atomic.Bool
}

func newDownProxy(t *testing.T, target string) *downProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	d := &downProxy{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.(*net.TCPConn).SetLinger(0)
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(d.Close)
	return d
}

func TestPrometheusOutage(t *testing.T) {
	p := startPrometheus(t)
	proxy := newDownProxy(t, p.URL)
	cfg := fmt.Sprintf(`remote_write:
  - url: %s/api/v1/write
    name: prom
    protobuf_message: %s
    queue_config: {batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 1s, max_samples_per_send: 2000}
`, proxy.URL, protoV2)
	f, reg := startForwarder(t, cfg, t.TempDir())
	// Through ingest's handler in the destination's protocol, as the gateway writes: the
	// requests are queued as they arrived and the relay sends them.
	via := newViaHandler(t, f, ingest.V2)
	base := time.Now().Add(-50 * time.Minute).UnixMilli()
	const n = 100
	var k atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	// The load: one request of n series every 10 ms, until stopped (bounded by the test's phases).
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			kk := int(k.Load())
			ss := make([]ingest.Series, n)
			for i := range n {
				ss[i] = crashSeries("fwd_test_outage", i, kk, base)
			}
			if err := via.write(ss...); err != nil {
				t.Errorf("Write during outage: %v", err)
				return
			}
			k.Add(1)
		}
	}()
	time.Sleep(2 * time.Second)
	proxy.down.Store(true)
	t.Logf("destination down for %s under load", *outage)
	time.Sleep(*outage)
	pending := metricValue(t, reg, "eagle_eye_forward_queue_samples", nil)
	age := metricValue(t, reg, "eagle_eye_forward_oldest_queued_age_seconds", nil)
	if pending == 0 || age < outage.Seconds()/2 {
		t.Errorf("during the outage: %v samples queued, oldest %vs", pending, age)
	}
	proxy.down.Store(false)
	upAt := time.Now()
	time.Sleep(3 * time.Second) // fresh data keeps flowing while the backlog drains
	close(stop)
	<-writerDone
	last := int(k.Load()) - 1
	upto := map[int]int{}
	for i := range n {
		upto[i] = last
	}
	waitComplete(t, p, "fwd_test_outage", base, upto, 90*time.Second)
	t.Logf("%d samples queued during the outage; backlog and fresh data delivered %v after the destination came back",
		int(pending), time.Since(upAt).Round(100*time.Millisecond))
	if d := metricValue(t, reg, "eagle_eye_forward_dropped_samples_total", nil); d != 0 {
		t.Errorf("dropped %v samples", d)
	}
	if got := metricValue(t, reg, "eagle_eye_forward_passthrough_samples_total", nil); got != float64(n*(last+1)) {
		t.Errorf("passthrough_samples_total = %v, want every sample (%d)", got, n*(last+1))
	}
}

// TestPrometheusCrash kills a process running the forwarder under load with SIGKILL, twice,
// restarts it on the same queue directory each time, and checks that every sample whose
// Write returned reached Prometheus.
func TestPrometheusCrash(t *testing.T) {
	p := startPrometheus(t)
	dir := t.TempDir()
	base := time.Now().Add(-50 * time.Minute).UnixMilli()
	const writers, perWriter = 4, 50
	acked := make([]int, writers) // last acknowledged k per writer
	for i := range acked {
		acked[i] = -1
	}
	run := func(phase string, kill time.Duration) {
		starts := make([]string, writers)
		for w := range writers {
			starts[w] = strconv.Itoa(acked[w] + 1)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(),
			"FORWARD_CRASH_CHILD=1", "FORWARD_CRASH_URL="+p.URL+"/api/v1/write", "FORWARD_CRASH_DIR="+dir,
			"FORWARD_CRASH_BASE="+strconv.FormatInt(base, 10), "FORWARD_CRASH_START="+strings.Join(starts, ","),
			"FORWARD_CRASH_DRAIN="+strconv.FormatBool(kill == 0))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		n := 0
		scanDone := make(chan struct{})
		go func() {
			defer close(scanDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var w, k int
				if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &w, &k); err == nil {
					mu.Lock()
					acked[w] = max(acked[w], k)
					n++
					mu.Unlock()
				}
			}
		}()
		if kill > 0 {
			time.Sleep(kill)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		<-scanDone
		err = cmd.Wait()
		if kill == 0 && err != nil {
			t.Fatalf("%s: child failed: %v", phase, err)
		}
		mu.Lock()
		t.Logf("%s: %d writes acknowledged, last per writer %v", phase, n, acked)
		mu.Unlock()
	}
	run("first run, SIGKILL after 4s", 4*time.Second)
	run("second run, SIGKILL after 3s", 3*time.Second)
	run("third run, drained and stopped", 0)
	upto := map[int]int{}
	for w := range writers {
		for j := range perWriter {
			upto[w*perWriter+j] = acked[w]
		}
	}
	waitComplete(t, p, "fwd_test_crash", base, upto, 90*time.Second)
}

// TestCrashChild is the process TestPrometheusCrash kills: it writes under load and prints
// "ack <writer> <k>" after every Write that returned nil.
func TestCrashChild(t *testing.T) {
	if os.Getenv("FORWARD_CRASH_CHILD") != "1" {
		t.Skip("run by TestPrometheusCrash")
	}
	const writers, perWriter = 4, 50
	base, _ := strconv.ParseInt(os.Getenv("FORWARD_CRASH_BASE"), 10, 64)
	starts := strings.Split(os.Getenv("FORWARD_CRASH_START"), ",")
	drain := os.Getenv("FORWARD_CRASH_DRAIN") == "true"
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`remote_write:
  - url: %s
    name: prom
    queue_config: {batch_send_deadline: 100ms, max_samples_per_send: 1000, min_backoff: 20ms, max_backoff: 500ms}
forward:
  defaults: {shards: 4}
`, os.Getenv("FORWARD_CRASH_URL"))))
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{Config: cfg, Dir: os.Getenv("FORWARD_CRASH_DIR"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { _ = f.Run(context.Background()); close(runDone) }()
	// Even requests go through ingest's handler (queued as they arrived, sent by the relay),
	// odd ones are written decoded (encoded records, sent by the shards): both lanes carry
	// every series, and their order must survive the kills.
	via := newViaHandler(t, f, ingest.V1)
	var outMu sync.Mutex
	stdout := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second) // a drained run writes for 2 s; a killed one until killed
	if !drain {
		deadline = time.Now().Add(time.Minute)
	}
	for w := range writers {
		k0, _ := strconv.Atoi(starts[w])
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for k := k0; time.Now().Before(deadline); k++ {
				<-tick.C
				ss := make([]ingest.Series, perWriter)
				for j := range perWriter {
					ss[j] = crashSeries("fwd_test_crash", w*perWriter+j, k, base)
				}
				var err error
				if k%2 == 0 {
					err = via.write(ss...)
				} else {
					_, err = f.Write(context.Background(), &ingest.Request{Series: ss})
				}
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				outMu.Lock()
				fmt.Fprintf(stdout, "ack %d %d\n", w, k)
				stdout.Flush()
				outMu.Unlock()
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-runDone
}
