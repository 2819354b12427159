package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/eagle-eye-ai/eagle-eye/internal/cpuslots"
)

// Error classes of the handler's own refusals, next to ErrInvalid and ErrOverloaded. They
// decide the status code in statusFor and nowhere else.
var (
	errMethodNotAllowed     = errors.New("method not allowed")
	errUnsupportedMediaType = errors.New("unsupported media type")
	errTooLarge             = errors.New("request too large")
)

// classedError gives err a class (one of the sentinels) without putting the class' text
// into the message the sender reads.
type classedError struct {
	class, err error
}

func classed(class, err error) error    { return &classedError{class: class, err: err} }
func (e *classedError) Error() string   { return e.err.Error() }
func (e *classedError) Unwrap() []error { return []error{e.class, e.err} }

// statusFor is the write path's one error → HTTP status policy.
//
//	nil                          204 No Content
//	errMethodNotAllowed          405 (with Allow: POST)
//	errUnsupportedMediaType      415: content type or encoding; decided before reading the body
//	errTooLarge                  413: body, decoded size or series count over a limit
//	ErrOverloaded                503 with Retry-After; 429 when overload429 is set
//	ErrInvalid                   400: malformed, or (partly) invalid data; not retried
//	anything else                500: the gateway's own fault; the sender retries
//
// Overload is checked before ErrInvalid so that an error carrying both is retried.
func statusFor(err error, overload429 bool) int {
	switch {
	case err == nil:
		return http.StatusNoContent
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, errUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrOverloaded):
		if overload429 {
			return http.StatusTooManyRequests
		}
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Response headers of RW 2.0.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Handler is the remote-write receiver: an http.Handler for POST /api/v1/write. It is safe
// for concurrent use.
type Handler struct {
	sinks       []Sink
	lim         limits
	now         func() time.Time
	overload429 bool
	retryAfter  string
	slots       chan struct{}   // nil: unlimited
	bulk        *cpuslots.Slots // bulk writes run in one of these
	metrics     *handlerMetrics
	log         *logThrottle
}

// NewHandler validates o and builds a Handler. It starts nothing; it registers the metrics
// with o.Registerer.
func NewHandler(o Options) (*Handler, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("ingest options: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "ingest")
	now := o.Now
	if now == nil {
		now = time.Now
	}
	retryAfter := o.RetryAfter
	if retryAfter == 0 {
		retryAfter = DefaultRetryAfter
	}
	m, err := newHandlerMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		sinks:       append([]Sink(nil), o.Sinks...),
		lim:         o.Limits.resolve(),
		now:         now,
		overload429: o.Overload429,
		retryAfter:  strconv.Itoa(max(1, int(math.Ceil(retryAfter.Seconds())))),
		metrics:     m,
		log:         newLogThrottle(logger, now, 10*time.Second),
	}
	if h.lim.maxInflight > 0 {
		h.slots = make(chan struct{}, h.lim.maxInflight)
	}
	h.bulk = o.CPUSlots
	if h.bulk == nil {
		h.bulk = cpuslots.New(h.lim.maxBulk)
	}
	return h, nil
}

// outcome is what one request came to.
type outcome struct {
	version Version // 0 until the content type is known
	err     error
	msg     string // the error's text, copied out of pooled memory
	written Stats
}

// ServeHTTP answers one write request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	out := h.handle(r)
	code := statusFor(out.err, h.overload429)

	hdr := w.Header()
	if out.version == V2 {
		hdr.Set(headerSamplesWritten, strconv.Itoa(out.written.Samples))
		hdr.Set(headerHistogramsWritten, strconv.Itoa(out.written.Histograms))
		hdr.Set(headerExemplarsWritten, strconv.Itoa(out.written.Exemplars))
	}
	switch code {
	case http.StatusNoContent:
		w.WriteHeader(code)
	case http.StatusMethodNotAllowed:
		hdr.Set("Allow", http.MethodPost)
		writeError(w, code, out.msg)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		hdr.Set("Retry-After", h.retryAfter)
		writeError(w, code, out.msg)
	default:
		writeError(w, code, out.msg)
	}

	h.metrics.requests.WithLabelValues(versionLabel(out.version), statusLabel(code)).Inc()
	h.metrics.duration.Observe(time.Since(start).Seconds())
	h.logOutcome(r, &out, code)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

func (h *Handler) logOutcome(r *http.Request, out *outcome, code int) {
	if out.err == nil {
		return
	}
	var le *limitError
	isLimit := errors.As(out.err, &le)
	if isLimit {
		h.metrics.limitHits.WithLabelValues(le.limit).Inc()
	}
	switch {
	case code >= 500 && code != http.StatusServiceUnavailable:
		h.log.log(slog.LevelError, "status:"+statusLabel(code), "write request failed",
			"status", code, "remote_addr", r.RemoteAddr, "err", out.msg)
	case isLimit:
		h.log.warn("limit:"+le.limit, "write request refused by a limit",
			"status", code, "limit", "limits."+le.limit, "remote_addr", r.RemoteAddr, "err", out.msg)
	case code == http.StatusBadRequest:
		// Partial writes log through logProblems; this covers requests refused whole and
		// sink rejections.
		h.log.warn("status:400", "write request rejected", "status", code, "remote_addr", r.RemoteAddr,
			"err", truncateString(out.msg, 1024))
	default:
		h.log.warn("status:"+statusLabel(code), "write request refused", "status", code,
			"remote_addr", r.RemoteAddr, "err", out.msg)
	}
}

// handle does the work of ServeHTTP except writing the answer.
func (h *Handler) handle(r *http.Request) (out outcome) {
	if r.Method != http.MethodPost {
		out.err = classed(errMethodNotAllowed, fmt.Errorf("method %s not allowed: remote write takes POST", r.Method))
		out.msg = out.err.Error()
		return out
	}
	v, err := parseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		out.err, out.msg = err, err.Error()
		return out
	}
	out.version = v
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(strings.TrimSpace(enc), "snappy") {
		out.err = classed(errUnsupportedMediaType,
			fmt.Errorf("content encoding %q is not supported: remote write bodies must be snappy (block format)", enc))
		out.msg = out.err.Error()
		return out
	}
	if lim := h.lim.maxBodyBytes; lim > 0 && r.ContentLength > lim {
		out.err = newLimitError(errTooLarge, limitMaxBodyBytes, lim, "request body of %d bytes is too large", r.ContentLength)
		out.msg = out.err.Error()
		return out
	}

	ctx := r.Context()
	if err := h.acquire(ctx); err != nil {
		out.err, out.msg = err, err.Error()
		return out
	}
	defer h.release()

	d := getDecoder(&h.lim, h.now().Add(DefaultMaxFutureSampleDelta).UnixMilli())
	defer putDecoder(d)
	if out.err = h.read(d, r); out.err != nil {
		out.msg = strings.Clone(out.err.Error())
		return out
	}
	if len(d.buf) < BulkWriteBytes {
		h.decodeAndWrite(ctx, d, v, &out)
		return out
	}
	d.bulk = true
	queued := time.Now()
	if err := h.bulk.Run(ctx, func() {
		h.metrics.bulkWait.Observe(time.Since(queued).Seconds())
		h.decodeAndWrite(ctx, d, v, &out)
	}); err != nil {
		h.metrics.bulkWait.Observe(time.Since(queued).Seconds())
		out.err = classed(ErrOverloaded, fmt.Errorf("waiting for a bulk write slot: %w", err))
		out.msg = out.err.Error()
	}
	return out
}

// decodeAndWrite decodes the body read into d and hands it to the sinks.
func (h *Handler) decodeAndWrite(ctx context.Context, d *decoder, v Version, out *outcome) {
	if out.err = d.decode(v); out.err != nil {
		out.msg = strings.Clone(out.err.Error())
		return
	}
	h.countProblems(d)
	out.written, out.err = h.write(ctx, d)
	if out.err != nil {
		out.msg = strings.Clone(out.err.Error())
	}
}

// acquire takes an inflight slot, waiting at most the configured time.
func (h *Handler) acquire(ctx context.Context) error {
	if h.slots == nil {
		h.metrics.inflight.Inc()
		return nil
	}
	select {
	case h.slots <- struct{}{}:
		h.metrics.inflight.Inc()
		return nil
	default:
	}
	if h.lim.inflightWait > 0 {
		t := time.NewTimer(h.lim.inflightWait)
		defer t.Stop()
		select {
		case h.slots <- struct{}{}:
			h.metrics.inflight.Inc()
			return nil
		case <-ctx.Done():
			return classed(ErrOverloaded, fmt.Errorf("waiting for a write slot: %w", ctx.Err()))
		case <-t.C:
		}
	}
	return newLimitError(ErrOverloaded, limitMaxInflightWrite, int64(h.lim.maxInflight),
		"too many concurrent write requests, waited %v for a slot; retry later", h.lim.inflightWait)
}

func (h *Handler) release() {
	h.metrics.inflight.Dec()
	if h.slots != nil {
		<-h.slots
	}
}

// read reads and decompresses the body into d.
func (h *Handler) read(d *decoder, r *http.Request) error {
	body, err := readBody(r.Body, d.body, r.ContentLength, h.lim.maxBodyBytes)
	d.body = body
	h.metrics.compressedBytes.Add(float64(len(body)))
	if err != nil {
		return err
	}
	n, err := s2.DecodedLen(body)
	if err != nil {
		return classed(ErrInvalid, fmt.Errorf("snappy: corrupt block header (%d body bytes): %w", len(body), err))
	}
	if lim := h.lim.maxDecodedBytes; lim > 0 && int64(n) > lim {
		return newLimitError(errTooLarge, limitMaxDecodedBytes, lim,
			"snappy body announces %d decoded bytes, too large", n)
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	out, err := s2.Decode(d.buf[:cap(d.buf)], body)
	if err != nil {
		return classed(ErrInvalid, fmt.Errorf("snappy: corrupt body: %w", err))
	}
	d.buf = out
	h.metrics.decodedBytes.Add(float64(len(out)))
	return nil
}

// readBody reads r into buf[:0], growing it, and refuses more than limit bytes (0: no
// limit). hint is the announced Content-Length, -1 when unknown.
func readBody(r io.Reader, buf []byte, hint, limit int64) ([]byte, error) {
	buf = buf[:0]
	if hint > 0 && (limit <= 0 || hint <= limit) && int64(cap(buf)) < hint+1 {
		buf = make([]byte, 0, hint+1) // +1: room to see EOF without growing
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if limit > 0 && int64(len(buf)) > limit {
			return buf, newLimitError(errTooLarge, limitMaxBodyBytes, limit, "request body is too large")
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, classed(ErrInvalid, fmt.Errorf("read request body: %w", err))
		}
	}
}

// countProblems counts and logs (throttled) what validation dropped.
func (h *Handler) countProblems(d *decoder) {
	p := &d.problems
	if p.total == 0 {
		return
	}
	for r := reasonNone + 1; r < numReasons; r++ {
		n := p.byReason[r]
		if n == 0 {
			continue
		}
		h.metrics.rejectedByReason[r].Add(float64(n))
		if l, ok := r.limit(); ok {
			h.metrics.limitHits.WithLabelValues(l).Add(float64(n))
		}
		h.log.warn("series:"+r.String(), "invalid series dropped from a write request",
			"reason", r.String(), "count", n, "first_problem", p.msgs[0])
	}
}

// write hands the decoded request to the sinks in order and works out what every sink
// accepted.
func (h *Handler) write(ctx context.Context, d *decoder) (Stats, error) {
	req := &d.req
	valid := d.valid
	h.metrics.samplesByVersion[req.Version].Add(float64(valid.Samples))
	h.metrics.histograms.Add(float64(valid.Histograms))
	h.metrics.exemplars.Add(float64(valid.Exemplars))

	var problems []string
	if err := d.problems.err(d.problems.total + len(req.Series)); err != nil {
		problems = append(problems, err.Error())
	}
	written := valid
	if d.problems.total == 0 && !d.reordered {
		req.Body = d.body
	}
	if len(req.Series) > 0 || len(req.Metadata) > 0 {
		for i, s := range h.sinks {
			if d.bulk {
				// Each sink takes a millisecond or more over a bulk write, none of them
				// blocking: between them, let waiting goroutines (small writes, publishers)
				// run rather than have them wait for the whole request.
				runtime.Gosched()
			}
			st, err := s.Write(ctx, req)
			written = minStats(written, st)
			if err == nil {
				continue
			}
			if errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverloaded) {
				problems = append(problems, fmt.Sprintf("sink %d rejected data: %v", i, err))
				// Refused data (out of order, a duplicate with another value) would make a
				// destination refuse the whole body: later sinks must not pass it on as it is.
				req.Body = nil
				continue
			}
			if i < len(h.sinks)-1 {
				written = Stats{} // the later sinks accepted nothing
			}
			if errors.Is(err, ErrOverloaded) {
				return written, fmt.Errorf("sink %d: %w", i, err)
			}
			return written, fmt.Errorf("sink %d failed: %w", i, err)
		}
	}
	if len(problems) > 0 {
		return written, classed(ErrInvalid, errors.New(strings.Join(problems, "\n")))
	}
	return written, nil
}

func minStats(a, b Stats) Stats {
	return Stats{
		Samples:    max(0, min(a.Samples, b.Samples)),
		Histograms: max(0, min(a.Histograms, b.Histograms)),
		Exemplars:  max(0, min(a.Exemplars, b.Exemplars)),
	}
}

const (
	mediaTypeProtobuf = "application/x-protobuf"
	protoV1           = "prometheus.WriteRequest"
	protoV2           = "io.prometheus.write.v2.Request"
)

// parseContentType picks the message from Content-Type. An empty Content-Type is RW 1.0, as
// Prometheus' own receiver and client_golang's exp/api/remote take it (old senders send
// none); the media type and parameter names are case-insensitive, the proto value is not.
func parseContentType(ct string) (Version, error) {
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return V1, nil
	}
	media, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(media), mediaTypeProtobuf) {
		return 0, classed(errUnsupportedMediaType, fmt.Errorf(
			"content type %q is not supported: use %s, optionally with ;proto=%s or ;proto=%s",
			truncateString(ct, 128), mediaTypeProtobuf, protoV1, protoV2))
	}
	v := V1
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		key, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "proto") {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch val {
		case protoV1:
			v = V1
		case protoV2:
			v = V2
		default:
			return 0, classed(errUnsupportedMediaType, fmt.Errorf(
				"protobuf message %q is not supported: use proto=%s or proto=%s", truncateString(val, 128), protoV1, protoV2))
		}
	}
	return v, nil
}
