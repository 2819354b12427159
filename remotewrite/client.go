package remotewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// RecoverableError is a failed send that may succeed if repeated: a network error, a 5xx, or
// a 429. RetryAfter is the server's Retry-After hint, zero when it gave none.
type RecoverableError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *RecoverableError) Error() string { return e.Err.Error() }
func (e *RecoverableError) Unwrap() error { return e.Err }

// StatusError is a non-2xx answer. Whether it is retried is decided by Retryable alone.
type StatusError struct {
	Code int
	Body string // the start of the response body, for the log
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("remote write: HTTP %d", e.Code)
	}
	return fmt.Sprintf("remote write: HTTP %d: %s", e.Code, e.Body)
}

// Retryable is the sender's retry policy in one place: 5xx and 429 are retried (the request
// was not, or not wholly, accepted for a reason that may pass); every other non-2xx status is
// final, because the same body would be refused again (400 invalid, 413 too large, 415 wrong
// type, 401/403 credentials).
func Retryable(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// ClientOptions configures a Client. URL is required; zero values of the others mean the
// defaults written beside them.
type ClientOptions struct {
	URL       string
	Protocol  Protocol      // V1 when zero
	Timeout   time.Duration // per request; 10 s when zero
	UserAgent string        // "eagle-eye-probe" when empty
	// HTTPClient, when set, is used instead of a client built from Timeout.
	HTTPClient *http.Client
}

// Client POSTs encoded bodies to one remote-write URL. It is safe for concurrent use.
type Client struct {
	url      string
	protocol Protocol
	ua       string
	hc       *http.Client
}

// NewClient validates the options and returns a client; it opens no connection.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("remote-write URL %q: %w", o.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("remote-write URL %q: want http:// or https:// with a host", o.URL)
	}
	if o.Protocol == 0 {
		o.Protocol = V1
	}
	if o.Protocol != V1 && o.Protocol != V2 {
		return nil, fmt.Errorf("unknown remote-write protocol %d", o.Protocol)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "eagle-eye-probe"
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: o.Timeout}
	}
	return &Client{url: u.String(), protocol: o.Protocol, ua: o.UserAgent, hc: hc}, nil
}

// Protocol returns the protocol the client's bodies must be encoded with.
func (c *Client) Protocol() Protocol { return c.protocol }

// Send POSTs one body produced by Encode with the client's protocol. It returns nil on 2xx, a
// *RecoverableError (wrapping a *StatusError or the network error) when the send may be
// retried, and a *StatusError when it must not be. ctx bounds the request.
func (c *Client) Send(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	req.Header.Set("Content-Type", c.protocol.ContentType())
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", c.protocol.VersionHeader())
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &RecoverableError{Err: fmt.Errorf("remote write: %w", err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	se := &StatusError{Code: resp.StatusCode, Body: string(bytes.TrimSpace(msg))}
	if !Retryable(resp.StatusCode) {
		return se
	}
	return &RecoverableError{Err: se, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date. Zero when absent or
// unparsable, or when the date has passed.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// IsRecoverable reports whether err is a *RecoverableError and returns it.
func IsRecoverable(err error) (*RecoverableError, bool) {
	var re *RecoverableError
	ok := errors.As(err, &re)
	return re, ok
}
