package remotewrite

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func testSeries() []Series {
	return []Series{
		{
			Labels:  []Label{{"__name__", "DCGM_FI_DEV_GPU_TEMP"}, {"UUID", "GPU-1"}, {"gpu", "0"}},
			Samples: []Sample{{T: 1000, V: 41}, {T: 2000, V: 42}},
			Type:    Gauge,
			Help:    "GPU temperature (in C).",
		},
		{Labels: []Label{{"__name__", "empty"}}}, // no samples: left out
		{
			Labels:  []Label{{"__name__", "eagle_eye_gpu_xid_errors_total"}, {"xid", "79"}},
			Samples: []Sample{{T: 2000, V: 3}},
			Type:    Counter,
		},
	}
}

func TestEncodeV1(t *testing.T) {
	body, n, err := Encode(V1, testSeries())
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("samples = %d, want 3", n)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if len(req.Timeseries) != 2 {
		t.Fatalf("series = %d, want 2", len(req.Timeseries))
	}
	if got := req.Timeseries[0].Samples[1]; got.Timestamp != 2000 || got.Value != 42 {
		t.Errorf("sample = %+v", got)
	}
	if len(req.Metadata) != 2 || req.Metadata[0].Type != prompb.MetricMetadata_GAUGE || req.Metadata[0].Help == "" {
		t.Errorf("metadata = %+v", req.Metadata)
	}
}

func TestEncodeV2(t *testing.T) {
	body, n, err := Encode(V2, testSeries())
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("samples = %d, want 3", n)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if req.Symbols[0] != "" {
		t.Fatalf("symbols must start with the empty string: %q", req.Symbols)
	}
	if len(req.Timeseries) != 2 {
		t.Fatalf("series = %d, want 2", len(req.Timeseries))
	}
	ts := req.Timeseries[1]
	var got []string
	for _, r := range ts.LabelsRefs {
		got = append(got, req.Symbols[r])
	}
	want := []string{"__name__", "eagle_eye_gpu_xid_errors_total", "xid", "79"}
	if len(got) != len(want) {
		t.Fatalf("labels = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("labels = %q, want %q", got, want)
		}
	}
	if ts.Metadata.Type != writev2.Metadata_METRIC_TYPE_COUNTER {
		t.Errorf("type = %v", ts.Metadata.Type)
	}
	if req.Symbols[req.Timeseries[0].Metadata.HelpRef] != "GPU temperature (in C)." {
		t.Errorf("help not sent")
	}
}

func TestRetryable(t *testing.T) {
	for code, want := range map[int]bool{
		400: false, 401: false, 403: false, 404: false, 413: false, 415: false,
		429: true, 500: true, 502: true, 503: true, 504: true,
	} {
		if got := Retryable(code); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClientSend(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		retryAfter  string
		wantErr     bool
		recoverable bool
		wantAfter   time.Duration
	}{
		{"no content", 204, "", false, false, 0},
		{"ok", 200, "", false, false, 0},
		{"bad request dropped", 400, "", true, false, 0},
		{"too large dropped", 413, "", true, false, 0},
		{"unsupported dropped", 415, "", true, false, 0},
		{"too many requests retried", 429, "2", true, true, 2 * time.Second},
		{"overloaded retried", 503, "1", true, true, time.Second},
		{"server error retried", 500, "", true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []Protocol{V1, V2} {
				var hdr http.Header
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hdr = r.Header.Clone()
					_, _ = io.Copy(io.Discard, r.Body)
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(tc.status)
				}))
				c, err := NewClient(ClientOptions{URL: srv.URL + "/api/v1/write", Protocol: p})
				if err != nil {
					t.Fatal(err)
				}
				body, _, _ := Encode(p, testSeries())
				err = c.Send(context.Background(), body)
				srv.Close()
				if (err != nil) != tc.wantErr {
					t.Fatalf("%v: err = %v", p, err)
				}
				re, ok := IsRecoverable(err)
				if ok != tc.recoverable {
					t.Fatalf("%v: recoverable = %v (%v)", p, ok, err)
				}
				if ok && re.RetryAfter != tc.wantAfter {
					t.Errorf("%v: RetryAfter = %v, want %v", p, re.RetryAfter, tc.wantAfter)
				}
				var se *StatusError
				if tc.wantErr && !errors.As(err, &se) {
					t.Errorf("%v: %v is not a *StatusError", p, err)
				}
				if hdr.Get("Content-Type") != p.ContentType() || hdr.Get("Content-Encoding") != "snappy" ||
					hdr.Get("X-Prometheus-Remote-Write-Version") != p.VersionHeader() || hdr.Get("User-Agent") == "" {
					t.Errorf("%v: headers = %v", p, hdr)
				}
			}
		})
	}
}

func TestClientNetworkErrorIsRecoverable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close() // nothing listens there any more
	c, err := NewClient(ClientOptions{URL: u, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := IsRecoverable(c.Send(context.Background(), []byte("x"))); !ok {
		t.Fatal("a refused connection must be recoverable")
	}
}

func TestNewClientValidates(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9095", "ftp://127.0.0.1/x", "http://"} {
		if _, err := NewClient(ClientOptions{URL: u}); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
	if _, err := ParseProtocol("3"); err == nil {
		t.Error("ParseProtocol(3) accepted")
	}
	if p, _ := ParseProtocol("2.0"); p != V2 {
		t.Error("ParseProtocol(2.0) != V2")
	}
}
