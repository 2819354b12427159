// Package remotewrite is a small Prometheus remote-write client: it encodes series into a
// remote-write 1.0 (prometheus.WriteRequest) or 2.0 (io.prometheus.write.v2.Request) body,
// compresses it with snappy, POSTs it with the headers the specification requires, and says
// whether a failed request may be retried.
//
// It owns the wire format and the HTTP exchange only. It knows nothing of batching, queues or
// backoff: a caller (the probe's sender) decides when to send, how long to wait and what to
// drop. It starts no goroutines and keeps no state between calls besides the http.Client.
//
// Usage:
//
//	body, n, err := remotewrite.Encode(remotewrite.V2, series)
//	c, _ := remotewrite.NewClient(remotewrite.ClientOptions{URL: u, Protocol: remotewrite.V2})
//	err = c.Send(ctx, body)
//	var re *remotewrite.RecoverableError
//	if errors.As(err, &re) { /* wait re.RetryAfter (if set) and try again */ }
package remotewrite
