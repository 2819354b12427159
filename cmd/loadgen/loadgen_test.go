package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/internal/fleet"

	"github.com/eagle-eye-ai/eagle-eye/fanout/hotseries"
	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// decoded is one sample read back from a payload.
type decoded struct {
	id   string // every label, joined
	name string
	t    int64
	v    float64
}

func decode(t *testing.T, proto Protocol, payload []byte) []decoded {
	t.Helper()
	raw, err := snappy.Decode(nil, payload)
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	var out []decoded
	if proto == RW1 {
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			t.Fatalf("unmarshal RW1: %v", err)
		}
		for _, ts := range req.Timeseries {
			if len(ts.Labels) < 8 {
				t.Fatalf("series with %d labels", len(ts.Labels))
			}
			var id strings.Builder
			name := ""
			for _, l := range ts.Labels {
				id.WriteString(l.Name + "=" + l.Value + ",")
				if l.Name == "__name__" {
					name = l.Value
				}
			}
			for _, s := range ts.Samples {
				out = append(out, decoded{id.String(), name, s.Timestamp, s.Value})
			}
		}
		return out
	}
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		t.Fatalf("unmarshal RW2: %v", err)
	}
	for _, ts := range req.Timeseries {
		if len(ts.LabelsRefs) < 16 || len(ts.LabelsRefs)%2 != 0 {
			t.Fatalf("series with %d label refs", len(ts.LabelsRefs))
		}
		name := ""
		var id strings.Builder
		for i := 0; i < len(ts.LabelsRefs); i += 2 {
			id.WriteString(req.Symbols[ts.LabelsRefs[i]] + "=" + req.Symbols[ts.LabelsRefs[i+1]] + ",")
			if req.Symbols[ts.LabelsRefs[i]] == "__name__" {
				name = req.Symbols[ts.LabelsRefs[i+1]]
			}
		}
		if ts.Metadata.Type == writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
			t.Fatalf("series %s without a metric type", name)
		}
		for _, s := range ts.Samples {
			out = append(out, decoded{id.String(), name, s.Timestamp, s.Value})
		}
	}
	return out
}

func metricName(ls []fleet.Label) string {
	for _, l := range ls {
		if l.Name == "__name__" {
			return l.Value
		}
	}
	return ""
}

func TestPayloadsDecode(t *testing.T) {
	for _, proto := range []Protocol{RW1, RW2} {
		t.Run(string(proto), func(t *testing.T) {
			plan := Plan{Protocol: proto, Series: 1050, SamplesPerRequest: 200}
			tmpl, err := BuildTemplates(plan)
			if err != nil {
				t.Fatal(err)
			}
			if len(tmpl) != 6 {
				t.Fatalf("%d requests per round, want 6", len(tmpl))
			}
			const rounds = 3
			start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
			got, err := EncodeRounds(tmpl, rounds, start, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Payloads) != rounds*6 {
				t.Fatalf("%d payloads, want %d", len(got.Payloads), rounds*6)
			}
			for i, p := range got.Payloads {
				r, j := i/6, i%6
				samples := decode(t, proto, p)
				want := plan.SamplesIn(j)
				if len(samples) != want || got.Samples[i] != want {
					t.Fatalf("payload %d: %d samples (counted %d), want %d", i, len(samples), got.Samples[i], want)
				}
				for k, s := range samples {
					series := j*200 + k
					if s.t != start+int64(r)*1000 {
						t.Fatalf("payload %d sample %d: timestamp %d, want %d", i, k, s.t, start+int64(r)*1000)
					}
					if s.v != fleet.Value(series, r) {
						t.Fatalf("payload %d sample %d: value %v, want %v", i, k, s.v, fleet.Value(series, r))
					}
					if want := metricName(fleet.Series(series)); s.name != want {
						t.Fatalf("payload %d sample %d: name %s, want %s", i, k, s.name, want)
					}
				}
			}
		})
	}
}

func TestEncodeRoundsRefusesOtherVarintLengths(t *testing.T) {
	tmpl, err := BuildTemplates(Plan{Protocol: RW1, Series: 10, SamplesPerRequest: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeRounds(tmpl, 2, 1000, 1000); err == nil {
		t.Fatal("a timestamp of 1000 was accepted")
	}
}

func TestParseProc(t *testing.T) {
	stat := "4242 (odd (name) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 1500 250 0 0 20 0 9 0 100 2000000 3000 ..."
	got, err := ParseStatCPU(stat)
	if err != nil || got != 1750 {
		t.Fatalf("ParseStatCPU = %d, %v; want 1750", got, err)
	}
	rss, hwm := ParseStatusMem("Name:\tx\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n")
	if rss != 102400 || hwm != 204800 {
		t.Fatalf("ParseStatusMem = %d, %d", rss, hwm)
	}
	if got := CPUPerMillion(3, 2_000_000); got != 1.5 {
		t.Fatalf("CPUPerMillion = %v", got)
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if q := Quantile(d, 0.5); q != 50*time.Millisecond {
		t.Fatalf("p50 = %v", q)
	}
	if q := Quantile(d, 0.99); q != 99*time.Millisecond {
		t.Fatalf("p99 = %v", q)
	}
	if q := Quantile(nil, 0.5); q != 0 {
		t.Fatalf("p50 of nothing = %v", q)
	}
}

// TestRunAgainstServer sends a small bounded run to a test receiver and checks headers,
// counts and that each series' timestamps arrive in order.
func TestRunAgainstServer(t *testing.T) {
	for _, proto := range []Protocol{RW1, RW2} {
		t.Run(string(proto), func(t *testing.T) {
			var (
				mu     sync.Mutex
				last   = map[string]int64{}
				n      int
				badHdr string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				if r.Header.Get("Content-Type") != proto.ContentType() || r.Header.Get("Content-Encoding") != "snappy" ||
					r.Header.Get("X-Prometheus-Remote-Write-Version") != proto.VersionHeader() {
					badHdr = r.Header.Get("Content-Type")
				}
				samples := decode(t, proto, body)
				key := samples[0].id // a request's first series names its slot
				if ts := samples[0].t; ts <= last[key] {
					t.Errorf("slot out of order: %d after %d", ts, last[key])
				} else {
					last[key] = ts
				}
				n += len(samples)
				if strings.Contains(r.URL.Path, "fail") {
					http.Error(w, "nope", http.StatusBadRequest)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			f := Flags{URL: srv.URL + "/api/v1/write", Protocol: string(proto), Series: 500, SamplesPerRequest: 100,
				Concurrency: 3, Requests: 23, Step: time.Second, Timeout: 5 * time.Second, ClockTicks: 100}
			rep, err := run(t.Context(), &f, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if ok, failed := rep.Result.OK(); ok != 23 || failed != 0 {
				t.Fatalf("ok %d failed %d", ok, failed)
			}
			if rep.Result.Samples != 2300 || n != 2300 {
				t.Fatalf("samples: reported %d, received %d", rep.Result.Samples, n)
			}
			if badHdr != "" {
				t.Fatalf("wrong headers (content type %q)", badHdr)
			}
			var sb strings.Builder
			rep.Write(&sb)
			if !strings.Contains(sb.String(), "requests ok:         23") {
				t.Fatalf("report:\n%s", sb.String())
			}
		})
	}
}

// TestRouterProbe runs a small load against the real ingest handler feeding the real
// hot-series publisher (routing group on ingest, embedded NATS on loopback) with the router
// probe on: the probe's writes come back on the routing subject and the report has their
// latency.
func TestRouterProbe(t *testing.T) {
	cfg := hotseries.DefaultConfig()
	cfg.BuiltinGroups = nil
	cfg.NATS.ListenAddress = "127.0.0.1:0"
	cfg.NATS.StoreDir = t.TempDir()
	cfg.ZMQ.Enabled = false
	cfg.Groups = []hotseries.GroupConfig{{
		Name: "routing", EndpointLabels: []string{"namespace", "pod"}, ModelLabel: "model_name",
		NATSSubject: hotseries.RoutingSubject, Mode: hotseries.ModeOnIngest,
		Fields: map[string]hotseries.FieldConfig{
			"num_requests_waiting": {Sources: []hotseries.SourceConfig{{Metrics: hotseries.Names{"vllm:num_requests_waiting"}}}},
		},
	}}
	pub, err := hotseries.New(hotseries.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go pub.Run(t.Context()) //nolint:errcheck // returns when the test ends
	h, err := ingest.NewHandler(ingest.Options{Sinks: []ingest.Sink{pub}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	f := Flags{URL: srv.URL, Protocol: string(RW2), Series: 2000, SamplesPerRequest: 500, Concurrency: 2,
		Requests: 40, Rate: 40000, Step: time.Second, Timeout: 5 * time.Second, ClockTicks: 100,
		RouterNATS: pub.NATSURL(), ProbeInterval: 5 * time.Millisecond}
	rep, err := run(t.Context(), &f, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Router
	if r == nil || r.Sent < 50 || r.Failed != 0 || r.Received < r.Sent*9/10 {
		t.Fatalf("router probe: %+v, want ≥ 50 probes, nearly all received", r)
	}
	if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
		t.Errorf("latencies out of order: %+v", r)
	}
	var sb strings.Builder
	rep.Write(&sb)
	if !strings.Contains(sb.String(), "router latency p99:") {
		t.Errorf("report:\n%s", sb.String())
	}
	t.Logf("%d probes: p50 %s p99 %s", r.Received, r.P50, r.P99)

	// The probe alone, as the router process beside a load generator.
	var out, errb strings.Builder
	code := cli([]string{"--url=" + srv.URL, "--router.nats-url=" + pub.NATSURL(), "--router.probe-only",
		"--duration=500ms"}, &out, &errb)
	var sent, received, failed int
	_, scanErr := fmt.Sscanf(out.String(), "router probes:       %d sent, %d received, %d write failures", &sent, &received, &failed)
	if code != 0 || scanErr != nil || sent < 50 || failed != 0 || received < sent*9/10 {
		t.Fatalf("--router.probe-only: exit %d (%v), stdout:\n%s\nstderr:\n%s", code, scanErr, out.String(), errb.String())
	}
	if code := cli([]string{"--router.probe-only", "--duration=1s"}, io.Discard, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--router.probe-only needs --router.nats-url") {
		t.Errorf("--router.probe-only without NATS: exit %d, %q", code, errb.String())
	}
}
