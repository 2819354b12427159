package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/internal/cpuslots"
)

func TestStatusFor(t *testing.T) {
	for _, tc := range []struct {
		err         error
		overload429 bool
		want        int
	}{
		{nil, false, 204},
		{classed(errMethodNotAllowed, errors.New("x")), false, 405},
		{classed(errUnsupportedMediaType, errors.New("x")), false, 415},
		{errSeriesLimit(10), false, 413},
		{fmt.Errorf("sink 0: %w", ErrOverloaded), false, 503},
		{fmt.Errorf("sink 0: %w", ErrOverloaded), true, 429},
		{fmt.Errorf("window: %w: out of order sample", ErrInvalid), false, 400},
		{errors.Join(ErrInvalid, ErrOverloaded), false, 503}, // retryable wins
		{errors.New("disk full"), false, 500},
		{context.Canceled, false, 500},
	} {
		if got := statusFor(tc.err, tc.overload429); got != tc.want {
			t.Errorf("statusFor(%v, %v) = %d, want %d", tc.err, tc.overload429, got, tc.want)
		}
	}
}

// trapBody fails the test if the handler reads a body it should have refused unread.
type trapBody struct {
	t    *testing.T
	read atomic.Bool
}

func (b *trapBody) Read([]byte) (int, error) { b.read.Store(true); return 0, io.EOF }
func (b *trapBody) Close() error             { return nil }

func TestHandlerStatusCodes(t *testing.T) {
	goodV1 := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"__name__", "up", "job", "a"}, 1, 2)}}))
	goodV2 := snappy(marshalV2(t, newV2Builder().series([]string{"__name__", "up", "job", "a"}, 1, 2).build()))
	invalid := fmt.Errorf("window: %w: out of order sample", ErrInvalid)
	half := func(*Request) (Stats, error) { return Stats{Samples: 1}, invalid }

	for _, tc := range []struct {
		name        string
		method      string
		ctype, enc  string
		body        []byte // nil: a body that must not be read
		opts        Options
		answers     []func(*Request) (Stats, error) // one sink per entry; nil entry accepts all
		want        int
		wantHeaders map[string]string
		wantBody    string
		wantCalls   []int // times each sink was called
	}{
		{name: "GET", method: "GET", ctype: ctV1, want: 405, wantHeaders: map[string]string{"Allow": "POST"}},
		{name: "PUT", method: "PUT", ctype: ctV1, want: 405, wantHeaders: map[string]string{"Allow": "POST"}},
		{name: "json", ctype: "application/json", enc: "snappy", want: 415, wantBody: "content type"},
		{name: "text", ctype: "text/plain", want: 415},
		{name: "unknown proto", ctype: "application/x-protobuf;proto=io.prometheus.write.v3.Request", enc: "snappy", want: 415, wantBody: "protobuf message"},
		{name: "gzip", ctype: ctV1, enc: "gzip", want: 415, wantBody: "snappy"},
		{name: "zstd v2", ctype: ctV2, enc: "zstd", want: 415,
			wantHeaders: map[string]string{headerSamplesWritten: "0", headerHistogramsWritten: "0", headerExemplarsWritten: "0"}},
		{name: "empty content type is v1", body: goodV1, enc: "snappy", want: 204, answers: []func(*Request) (Stats, error){nil}, wantCalls: []int{1}},
		{name: "bare protobuf is v1", ctype: "application/x-protobuf", enc: "snappy", body: goodV1, want: 204},
		{name: "params with spaces", ctype: `Application/X-Protobuf; charset=binary; proto="prometheus.WriteRequest"`, enc: "snappy", body: goodV1, want: 204},
		{name: "empty encoding is snappy", ctype: ctV1, body: goodV1, want: 204},
		{name: "v1", ctype: ctV1, enc: "snappy", body: goodV1, want: 204},
		{name: "v2", ctype: ctV2, enc: "snappy", body: goodV2, want: 204,
			wantHeaders: map[string]string{headerSamplesWritten: "2", headerHistogramsWritten: "0", headerExemplarsWritten: "0"}},
		{name: "v2 no sinks", ctype: ctV2, enc: "snappy", body: goodV2, want: 204, answers: []func(*Request) (Stats, error){},
			wantHeaders: map[string]string{headerSamplesWritten: "2"}},
		{name: "v1 body as v2", ctype: ctV2, enc: "snappy", body: goodV1, want: 400, wantBody: "decode RW 2.0 request",
			wantHeaders: map[string]string{headerSamplesWritten: "0"}},
		{name: "body over limit", ctype: ctV2, enc: "snappy", body: goodV2, opts: Options{Limits: Limits{MaxBodyBytes: 10}},
			want: 413, wantBody: "limits.max_body_bytes", wantHeaders: map[string]string{headerSamplesWritten: "0"}},
		{name: "sink invalid", ctype: ctV2, enc: "snappy", body: goodV2, answers: []func(*Request) (Stats, error){half},
			want: 400, wantBody: "out of order", wantHeaders: map[string]string{headerSamplesWritten: "1"}},
		{name: "sink invalid, later sinks still called", ctype: ctV2, enc: "snappy", body: goodV2,
			answers: []func(*Request) (Stats, error){half, nil}, wantCalls: []int{1, 1},
			want: 400, wantHeaders: map[string]string{headerSamplesWritten: "1"}},
		{name: "sink overloaded", ctype: ctV2, enc: "snappy", body: goodV2,
			answers:   []func(*Request) (Stats, error){func(*Request) (Stats, error) { return Stats{}, fmt.Errorf("queue full: %w", ErrOverloaded) }, nil},
			wantCalls: []int{1, 0}, want: 503, wantBody: "queue full",
			wantHeaders: map[string]string{"Retry-After": "1", headerSamplesWritten: "0"}},
		{name: "sink overloaded 429", ctype: ctV1, enc: "snappy", body: goodV1, opts: Options{Overload429: true, RetryAfter: 2500e6},
			answers: []func(*Request) (Stats, error){func(*Request) (Stats, error) { return Stats{}, ErrOverloaded }},
			want:    429, wantHeaders: map[string]string{"Retry-After": "3"}},
		{name: "second sink fails", ctype: ctV2, enc: "snappy", body: goodV2,
			answers:   []func(*Request) (Stats, error){nil, func(*Request) (Stats, error) { return Stats{}, errors.New("disk full") }},
			wantCalls: []int{1, 1}, want: 500, wantBody: "sink 1 failed: disk full",
			wantHeaders: map[string]string{headerSamplesWritten: "0"}},
		{name: "sink reports more than sent", ctype: ctV2, enc: "snappy", body: goodV2,
			answers: []func(*Request) (Stats, error){func(*Request) (Stats, error) { return Stats{Samples: 99}, nil }},
			want:    204, wantHeaders: map[string]string{headerSamplesWritten: "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answers := tc.answers
			if answers == nil {
				answers = []func(*Request) (Stats, error){nil}
			}
			var sinks []Sink
			var recs []*recordingSink
			for _, a := range answers {
				s := &recordingSink{answer: a}
				recs = append(recs, s)
				sinks = append(sinks, s)
			}
			tc.opts.Sinks = sinks
			h, _ := newTestHandler(t, tc.opts)

			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, "/api/v1/write", nil)
			trap := &trapBody{t: t}
			if tc.body != nil {
				r.Body = io.NopCloser(bytes.NewReader(tc.body))
				r.ContentLength = int64(len(tc.body))
			} else {
				r.Body = trap
			}
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			if tc.enc != "" {
				r.Header.Set("Content-Encoding", tc.enc)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			if w.Code != tc.want {
				t.Errorf("status = %d, want %d (body %q)", w.Code, tc.want, w.Body)
			}
			if trap.read.Load() {
				t.Error("the body was read")
			}
			for k, v := range tc.wantHeaders {
				if got := w.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tc.want == 204 && w.Body.Len() != 0 {
				t.Errorf("204 with body %q", w.Body)
			}
			if !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Errorf("body %q does not contain %q", w.Body, tc.wantBody)
			}
			for i, want := range tc.wantCalls {
				if got := len(recs[i].requests()); got != want {
					t.Errorf("sink %d called %d times, want %d", i, got, want)
				}
			}
		})
	}
}

// blockingSink holds every Write until released.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
}

func (s *blockingSink) Write(ctx context.Context, req *Request) (Stats, error) {
	s.entered <- struct{}{}
	<-s.release
	return countStats(req), nil
}

func TestInflightLimit(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	h, reg := newTestHandler(t, Options{Sinks: []Sink{sink}, Limits: Limits{MaxInflightWrites: 1, MaxInflightWait: -1}})
	body := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1Series([]string{"__name__", "up"}, 1)}}))

	var wg sync.WaitGroup
	wg.Add(1)
	var first int
	go func() {
		defer wg.Done()
		first = post(h, ctV1, "snappy", body).Code
	}()
	<-sink.entered

	w := post(h, ctV1, "snappy", body)
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "limits.max_inflight_writes") {
		t.Errorf("second request: %d %v %q", w.Code, w.Header(), w.Body)
	}
	if got := testutil.ToFloat64(h.metrics.inflight); got != 1 {
		t.Errorf("inflight = %v", got)
	}
	close(sink.release)
	wg.Wait()
	if first != 204 {
		t.Errorf("first request: %d", first)
	}
	if got := testutil.ToFloat64(h.metrics.limitHits.WithLabelValues(limitMaxInflightWrite)); got != 1 {
		t.Errorf("limit hits = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "eagle_eye_ingest_requests_total"); err != nil || n == 0 {
		t.Errorf("requests_total: %d series, %v", n, err)
	}
}

// countingHandler counts log records.
type countingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestLogsAreThrottled(t *testing.T) {
	logs := &countingHandler{}
	now := testNow
	h, _ := newTestHandler(t, Options{Logger: slog.New(logs), Now: func() time.Time { return now }})
	bad := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"job", "no-name"}, 1), v1Series([]string{"__name__", "ok"}, 1)}}))
	for range 100 {
		if w := post(h, ctV1, "snappy", bad); w.Code != 400 {
			t.Fatalf("status %d", w.Code)
		}
	}
	// One line for the dropped series, one for the 400.
	if n := len(logs.records); n != 2 {
		t.Fatalf("%d log lines for 100 bad requests, want 2", n)
	}
	now = now.Add(11 * time.Second)
	post(h, ctV1, "snappy", bad)
	if n := len(logs.records); n != 4 {
		t.Fatalf("%d log lines after the interval, want 4", n)
	}
	var suppressed int64
	logs.records[2].Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed_since_last" {
			suppressed = a.Value.Int64()
		}
		return true
	})
	if suppressed != 99 {
		t.Errorf("suppressed_since_last = %d, want 99", suppressed)
	}
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	if _, err := NewHandler(Options{Sinks: []Sink{nil}}); err == nil {
		t.Error("nil sink accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewHandler(Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHandler(Options{Registerer: reg}); err == nil {
		t.Error("second handler on the same registry accepted")
	}
}

// gatedSink holds writes of more than 10 series until released and notes how many it held at
// once; smaller writes pass straight through.
type gatedSink struct {
	entered chan struct{}
	release chan struct{}

	mu        sync.Mutex
	held, max int
}

func (s *gatedSink) Write(ctx context.Context, req *Request) (Stats, error) {
	if len(req.Series) <= 10 {
		return countStats(req), nil
	}
	s.mu.Lock()
	s.held++
	s.max = max(s.max, s.held)
	s.mu.Unlock()
	s.entered <- struct{}{}
	<-s.release
	s.mu.Lock()
	s.held--
	s.mu.Unlock()
	return countStats(req), nil
}

// bulkWrite is a compressed RW 1.0 body of 400 DCGM-like series: well over BulkWriteBytes
// decoded.
func bulkWrite(t *testing.T) []byte {
	t.Helper()
	var bulk prompb.WriteRequest
	for i := range 400 {
		bulk.Timeseries = append(bulk.Timeseries, v1Series([]string{"__name__", "DCGM_FI_DEV_GPU_UTIL",
			"Hostname", "node-0001.cluster.example", "UUID", fmt.Sprintf("GPU-%08d-aaaa-bbbb-cccc", i),
			"device", "nvidia0", "gpu", "0", "modelName", "NVIDIA H100 80GB HBM3"}, float64(i)))
	}
	raw := marshalV1(t, &bulk)
	if len(raw) < BulkWriteBytes {
		t.Fatalf("bulk body is %d bytes decoded, under BulkWriteBytes", len(raw))
	}
	return snappy(raw)
}

func TestBulkWritesAreBoundedAndSmallWritesPassThem(t *testing.T) {
	sink := &gatedSink{entered: make(chan struct{}, 3), release: make(chan struct{})}
	h, reg := newTestHandler(t, Options{Sinks: []Sink{sink}, Limits: Limits{MaxInflightWrites: 8, MaxBulkWrites: 1}})

	bulkBody := bulkWrite(t)
	small := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"__name__", "vllm:num_requests_waiting", "pod", "engine-0"}, 3)}}))

	codes := make(chan int, 3)
	for range 3 {
		go func() { codes <- post(h, ctV1, "snappy", bulkBody).Code }()
	}
	<-sink.entered // one bulk write is in the sink; the other two wait for its slot

	// A small write is answered while the bulk slot is taken.
	if w := post(h, ctV1, "snappy", small); w.Code != 204 {
		t.Fatalf("small write while bulk writes wait: %d %q", w.Code, w.Body)
	}
	select {
	case <-sink.entered:
		t.Fatal("a second bulk write reached the sink while the first held the only bulk slot")
	case <-time.After(50 * time.Millisecond):
	}
	close(sink.release)
	for range 3 {
		if c := <-codes; c != 204 {
			t.Errorf("bulk write: %d", c)
		}
	}
	if sink.max != 1 {
		t.Errorf("bulk writes in the sink at once: %d, want 1 (limits.max_bulk_writes)", sink.max)
	}
	if n, err := testutil.GatherAndCount(reg, "eagle_eye_ingest_bulk_wait_seconds"); err != nil || n != 1 {
		t.Fatalf("bulk wait histogram: %d series, %v", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "eagle_eye_ingest_bulk_wait_seconds" {
			if got := mf.GetMetric()[0].GetHistogram().GetSampleCount(); got != 3 {
				t.Errorf("bulk waits observed: %d, want 3 (the small write is not counted)", got)
			}
		}
	}
}

// TestBulkWritesShareCPUSlots: with slots shared with other CPU-bound work (the gateway's
// PromQL queries), a bulk write waits while that work holds them, a small write does not,
// and a bulk write whose client leaves while waiting is answered as overload without
// reaching the sinks. It runs with ordinary slots and with background threads (the
// gateway's default, runtime.bulk_write_nice), where bulk writes run on threads of their own.
func TestBulkWritesShareCPUSlots(t *testing.T) {
	background, err := cpuslots.NewBackground(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	for name, slots := range map[string]*cpuslots.Slots{"inline": cpuslots.New(1), "background": background} {
		t.Run(name, func(t *testing.T) {
			defer slots.Close()
			testBulkWritesShareCPUSlots(t, slots)
		})
	}
}

func testBulkWritesShareCPUSlots(t *testing.T, slots *cpuslots.Slots) {
	var written atomic.Int64
	sink := SinkFunc(func(_ context.Context, req *Request) (Stats, error) {
		written.Add(int64(len(req.Series)))
		return countStats(req), nil
	})
	h, _ := newTestHandler(t, Options{Sinks: []Sink{sink}, CPUSlots: slots, Limits: Limits{MaxBulkWrites: 8}})
	bulkBody := bulkWrite(t)
	small := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"__name__", "vllm:num_requests_waiting", "pod", "engine-0"}, 3)}}))

	if !slots.TryAcquire() { // a query holds the only slot
		t.Fatal("the slot is taken before any write")
	}
	if w := post(h, ctV1, "snappy", small); w.Code != 204 || written.Load() != 1 {
		t.Fatalf("small write while a query holds the slot: %d %q, %d series written", w.Code, w.Body, written.Load())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(bulkBody)).WithContext(ctx)
	r.Header.Set("Content-Type", ctV1)
	r.Header.Set("Content-Encoding", "snappy")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "bulk write slot") {
		t.Fatalf("bulk write whose client left while waiting: %d %q, want 503 naming the bulk write slot", w.Code, w.Body)
	}
	if written.Load() != 1 {
		t.Fatalf("%d series written, want only the small write's 1", written.Load())
	}

	code := make(chan int)
	go func() { code <- post(h, ctV1, "snappy", bulkBody).Code }()
	for slots.Waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case c := <-code:
		t.Fatalf("bulk write answered %d while the query held the slot", c)
	case <-time.After(20 * time.Millisecond):
	}
	slots.Release() // the query ends
	if c := <-code; c != 204 || written.Load() != 401 {
		t.Fatalf("bulk write after the slot freed: %d, %d series written, want 204 and 401", c, written.Load())
	}
	if slots.InUse() != 0 {
		t.Fatalf("%d slots held after every write ended", slots.InUse())
	}
}

// TestBodyOfferedOnlyWhenIntact checks when sinks see the request body as it arrived: only
// when the decoded series are all of it, unchanged, and no earlier sink refused part of it.
func TestBodyOfferedOnlyWhenIntact(t *testing.T) {
	sorted := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"__name__", "up", "job", "a"}, 1, 2),
		v1Series([]string{"__name__", "up", "job", "b"}, 1, 2)}}))
	unsorted := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"job", "a", "__name__", "up"}, 1, 2)}}))
	oneInvalid := snappy(marshalV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series([]string{"__name__", "up", "job", "a"}, 1, 2),
		v1Series([]string{"job", "no-name"}, 1, 2)}}))
	v2 := snappy(marshalV2(t, newV2Builder().series([]string{"__name__", "up", "job", "a"}, 1, 2).build()))
	refuse := SinkFunc(func(context.Context, *Request) (Stats, error) {
		return Stats{}, fmt.Errorf("window: %w: out of order sample", ErrInvalid)
	})
	for _, tc := range []struct {
		name     string
		ctype    string
		body     []byte
		refuse   bool // a first sink refuses part of the request
		wantBody bool
	}{
		{"intact v1", ctV1, sorted, false, true},
		{"intact v2", ctV2, v2, false, true},
		{"labels reordered", ctV1, unsorted, false, false},
		{"a series dropped", ctV1, oneInvalid, false, false},
		{"an earlier sink refused data", ctV1, sorted, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			seen := false
			last := SinkFunc(func(_ context.Context, req *Request) (Stats, error) {
				seen = true
				got = bytes.Clone(req.Body)
				return Stats{Samples: 1 << 20}, nil
			})
			sinks := []Sink{last}
			if tc.refuse {
				sinks = []Sink{refuse, last}
			}
			h, _ := newTestHandler(t, Options{Sinks: sinks})
			post(h, tc.ctype, "snappy", tc.body)
			if !seen {
				t.Fatal("the sink was not called")
			}
			if tc.wantBody && !bytes.Equal(got, tc.body) {
				t.Errorf("Body = %d bytes, want the %d bytes posted", len(got), len(tc.body))
			}
			if !tc.wantBody && got != nil {
				t.Errorf("Body set (%d bytes), want nil", len(got))
			}
		})
	}
}
