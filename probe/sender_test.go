package probe

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/eagle-eye-ai/eagle-eye/remotewrite"
)

// rwServer is a remote-write receiver whose answer is scripted per request.
type rwServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	answer func(n int) (status int, retryAfter string) // n counts requests from 0
	n      int
	got    []request // accepted requests only
	times  []time.Time
}

type request struct {
	series  int
	samples []remotewrite.Sample // every sample, in request order
}

func newRWServer(t *testing.T, answer func(n int) (int, string)) *rwServer {
	s := &rwServer{t: t, answer: answer}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *rwServer) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := s.n
	s.n++
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	status, ra := 204, ""
	if s.answer != nil {
		status, ra = s.answer(n)
	}
	if status/100 == 2 {
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			s.t.Errorf("snappy: %v", err)
		}
		var req request
		if r.Header.Get("Content-Type") == remotewrite.V2.ContentType() {
			var wr writev2.Request
			if err := wr.Unmarshal(raw); err != nil {
				s.t.Errorf("decode v2: %v", err)
			}
			req.series = len(wr.Timeseries)
			for _, ts := range wr.Timeseries {
				for _, smp := range ts.Samples {
					req.samples = append(req.samples, remotewrite.Sample{T: smp.Timestamp, V: smp.Value})
				}
			}
		} else {
			var wr prompb.WriteRequest
			if err := wr.Unmarshal(raw); err != nil {
				s.t.Errorf("decode v1: %v", err)
			}
			req.series = len(wr.Timeseries)
			for _, ts := range wr.Timeseries {
				for _, smp := range ts.Samples {
					req.samples = append(req.samples, remotewrite.Sample{T: smp.Timestamp, V: smp.Value})
				}
			}
		}
		s.mu.Lock()
		s.got = append(s.got, req)
		s.mu.Unlock()
	}
	if ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	w.WriteHeader(status)
}

func (s *rwServer) accepted() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.got...)
}

func (s *rwServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func newTestSender(t *testing.T, url string, p remotewrite.Protocol, o SenderOptions) (*Sender, *prometheus.Registry) {
	t.Helper()
	c, err := remotewrite.NewClient(remotewrite.ClientOptions{URL: url, Protocol: p, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o.Client, o.Registerer = c, reg
	if o.Interval == 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 10 * time.Millisecond
		o.MaxBackoff = 50 * time.Millisecond
	}
	s, err := NewSender(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

// one returns a one-sample series named x with value v at t.
func one(name string, t int64, v float64) remotewrite.Series {
	return remotewrite.Series{
		Labels:  []Label{{Name: "__name__", Value: name}},
		Samples: []remotewrite.Sample{{T: t, V: v}},
		Type:    remotewrite.Gauge,
	}
}

// waitFor polls cond every 10 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func runSender(t *testing.T, s *Sender) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func TestSenderBatchesPerInterval(t *testing.T) {
	for _, p := range []remotewrite.Protocol{remotewrite.V1, remotewrite.V2} {
		t.Run(p.String(), func(t *testing.T) {
			srv := newRWServer(t, nil)
			s, _ := newTestSender(t, srv.srv.URL, p, SenderOptions{Interval: time.Hour})
			// Three collections within one interval, two of the same series (a fast collector).
			s.Append([]remotewrite.Series{one("a", 1000, 1), one("b", 1000, 2)})
			s.Append([]remotewrite.Series{one("a", 1100, 3)})
			s.Append([]remotewrite.Series{one("c", 1100, 4)})
			stop := runSender(t, s)
			s.cut() // what the interval tick does
			waitFor(t, 5*time.Second, "one request", func() bool { return len(srv.accepted()) == 1 })
			stop()
			got := srv.accepted()
			if len(got) != 1 {
				t.Fatalf("requests = %d, want 1", len(got))
			}
			if got[0].series != 3 || len(got[0].samples) != 4 {
				t.Fatalf("got %d series / %d samples, want 3 / 4", got[0].series, len(got[0].samples))
			}
			if got[0].samples[0].V != 1 || got[0].samples[1].V != 3 {
				t.Errorf("series a not merged in order: %+v", got[0].samples)
			}
		})
	}
}

func TestSenderRetriesThenDeliversInOrder(t *testing.T) {
	srv := newRWServer(t, func(n int) (int, string) {
		if n < 3 {
			return []int{503, 500, 429}[n], ""
		}
		return 204, ""
	})
	s, reg := newTestSender(t, srv.srv.URL, remotewrite.V2, SenderOptions{})
	stop := runSender(t, s)
	for i := range 5 {
		s.Append([]remotewrite.Series{one("x", int64(i), float64(i))})
		time.Sleep(60 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "5 samples", func() bool { return countSamples(srv.accepted()) == 5 })
	stop()
	var last int64 = -1
	for _, r := range srv.accepted() {
		for _, smp := range r.samples {
			if smp.T <= last {
				t.Fatalf("out of order: %d after %d", smp.T, last)
			}
			last = smp.T
		}
	}
	if got := testutil.ToFloat64(s.metrics.retries); got != 3 {
		t.Errorf("retries = %v, want 3", got)
	}
	if n := testutil.CollectAndCount(reg, "eagle_eye_probe_samples_dropped_total"); n != 4 {
		t.Errorf("dropped series = %d", n)
	}
	if got := testutil.ToFloat64(s.metrics.sent); got != 5 {
		t.Errorf("sent = %v, want 5", got)
	}
}

func countSamples(rs []request) int {
	n := 0
	for _, r := range rs {
		n += len(r.samples)
	}
	return n
}

func TestSenderHonoursRetryAfter(t *testing.T) {
	srv := newRWServer(t, func(n int) (int, string) {
		if n == 0 {
			return 503, "1"
		}
		return 204, ""
	})
	s, _ := newTestSender(t, srv.srv.URL, remotewrite.V1, SenderOptions{})
	stop := runSender(t, s)
	defer stop()
	s.Append([]remotewrite.Series{one("x", 1, 1)})
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(srv.accepted()) == 1 })
	srv.mu.Lock()
	gap := srv.times[1].Sub(srv.times[0])
	srv.mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Fatalf("retried after %v; Retry-After said 1 s (backoff alone is 10 ms)", gap)
	}
}

func TestSenderDropsOn4xx(t *testing.T) {
	srv := newRWServer(t, func(n int) (int, string) {
		if n == 0 {
			return 400, ""
		}
		return 204, ""
	})
	s, _ := newTestSender(t, srv.srv.URL, remotewrite.V2, SenderOptions{})
	stop := runSender(t, s)
	defer stop()
	s.Append([]remotewrite.Series{one("bad", 1, 1), one("bad", 2, 1)})
	waitFor(t, 5*time.Second, "first request", func() bool { return srv.requests() >= 1 })
	s.Append([]remotewrite.Series{one("good", 3, 1)})
	waitFor(t, 5*time.Second, "second batch", func() bool { return len(srv.accepted()) == 1 })
	if got := testutil.ToFloat64(s.metrics.dropped.WithLabelValues("rejected")); got != 2 {
		t.Errorf("dropped rejected = %v, want 2", got)
	}
	if srv.requests() != 2 {
		t.Errorf("requests = %d: a 400 must not be retried", srv.requests())
	}
}

func TestSenderBufferBoundDropsOldest(t *testing.T) {
	var mu sync.Mutex
	up := false
	srv := newRWServer(t, func(int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return 204, ""
		}
		return 503, ""
	})
	s, _ := newTestSender(t, srv.srv.URL, remotewrite.V2, SenderOptions{MaxBufferSamples: 10})
	stop := runSender(t, s)
	defer stop()
	for i := range 20 {
		s.Append([]remotewrite.Series{one("x", int64(i), float64(i)), one("y", int64(i), float64(i))})
		time.Sleep(55 * time.Millisecond)
	}
	if b := s.Buffered(); b > 10 {
		t.Fatalf("buffered %d samples, bound is 10", b)
	}
	dropped := testutil.ToFloat64(s.metrics.dropped.WithLabelValues("buffer_full"))
	if dropped < 30 {
		t.Fatalf("dropped %v, want at least 30 of 40", dropped)
	}
	mu.Lock()
	up = true
	mu.Unlock()
	waitFor(t, 5*time.Second, "the buffer to drain", func() bool { return s.Buffered() == 0 })
	got := countSamples(srv.accepted())
	if float64(got)+dropped != 40 {
		t.Fatalf("sent %d + dropped %v != 40 appended", got, dropped)
	}
	// What survived is the newest, in order.
	var last int64 = -1
	for _, r := range srv.accepted() {
		for _, smp := range r.samples {
			if smp.T < last {
				t.Fatalf("out of order after outage: %d after %d", smp.T, last)
			}
			last = smp.T
		}
	}
	if last != 19 {
		t.Errorf("newest sample %d, want 19", last)
	}
}

func TestSenderFlushesOnShutdown(t *testing.T) {
	srv := newRWServer(t, nil)
	s, _ := newTestSender(t, srv.srv.URL, remotewrite.V1, SenderOptions{Interval: time.Hour})
	stop := runSender(t, s)
	s.Append([]remotewrite.Series{one("x", 1, 1), one("y", 1, 2)})
	stop()
	if got := countSamples(srv.accepted()); got != 2 {
		t.Fatalf("flushed %d samples at shutdown, want 2", got)
	}
}

func TestNewSenderValidates(t *testing.T) {
	if _, err := NewSender(SenderOptions{}); err == nil {
		t.Error("accepted no client")
	}
	c, _ := remotewrite.NewClient(remotewrite.ClientOptions{URL: "http://127.0.0.1:1/"})
	if _, err := NewSender(SenderOptions{Client: c, MinBackoff: time.Minute, MaxBackoff: time.Second}); err == nil {
		t.Error("accepted min backoff > max backoff")
	}
}
