package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/eagle-eye-ai/eagle-eye/router"
)

// probeEndpoints is how many engine endpoints the router probe writes in turn: each is
// written every probeEndpoints × --router.probe-interval (500 ms at the default 5 ms), past
// the routing group's min_gap, so every probe write is published at once.
const probeEndpoints = 100

// probeMarker is in every message about a probe endpoint (its pod label).
var probeMarker = []byte("loadgen-probe-")

// routerProbe measures what a router sees while the load runs: every interval it writes a
// tiny request for one of its own endpoints (pod loadgen-probe-K) with a unique
// num_requests_waiting, and a NATS subscriber on the routing subject notes when that value
// arrives. Latency runs from just before the write is sent to the message's arrival:
// HTTP, decode, the hot-series tap, NATS and the subscriber.
type routerProbe struct {
	url      string
	client   *http.Client
	interval time.Duration
	nc       *nats.Conn
	sub      *nats.Subscription

	mu    sync.Mutex
	sent  map[int64]time.Time // by id, until received
	lat   []time.Duration
	write []time.Duration // each probe write's own request latency
	nSent int
	fails int
	late  int // arrived after the run was over
	ended bool
}

// RouterLatency is the probe's result.
type RouterLatency struct {
	Sent, Received, Failed int
	P50, P99, Max          time.Duration
	// WriteP50 and WriteP99 are the probe writes' own request latencies: the part of the
	// above spent before the gateway answered.
	WriteP50, WriteP99 time.Duration
}

func startRouterProbe(url, natsURL string, interval time.Duration, timeout time.Duration) (*routerProbe, error) {
	nc, err := nats.Connect(natsURL, nats.Name("eagle-eye-loadgen-router-probe"))
	if err != nil {
		return nil, fmt.Errorf("router probe: connect to %s: %w", natsURL, err)
	}
	p := &routerProbe{
		url: url, interval: interval, nc: nc, sent: map[int64]time.Time{},
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}},
	}
	p.sub, err = nc.Subscribe(router.RoutingSubject, func(msg *nats.Msg) {
		at := time.Now()
		// The fleet's own endpoints are most of the feed: skip them before decoding, so that
		// the probe's messages do not queue behind thousands of decodes in this callback.
		if !bytes.Contains(msg.Data, probeMarker) {
			return
		}
		m, err := router.Decode(msg.Data)
		if err != nil || !strings.HasPrefix(m.Endpoint["pod"], "loadgen-probe-") {
			return
		}
		id := int64(m.Metrics["num_requests_waiting"])
		p.mu.Lock()
		defer p.mu.Unlock()
		if t, ok := p.sent[id]; ok {
			delete(p.sent, id)
			if p.ended {
				p.late++
				return
			}
			p.lat = append(p.lat, at.Sub(t))
		}
	})
	if err == nil {
		_ = p.sub.SetPendingLimits(-1, -1)
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("router probe: subscribe to %s: %w", router.RoutingSubject, err)
	}
	return p, nil
}

// run writes probes until ctx ends.
func (p *routerProbe) run(ctx context.Context) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for id := int64(1); ; id++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		body := probeBody(id, time.Now())
		p.mu.Lock()
		p.sent[id] = time.Now()
		p.nSent++
		p.mu.Unlock()
		status, took, _ := send(p.client, p.url, RW1, body)
		p.mu.Lock()
		if status/100 != 2 {
			delete(p.sent, id)
			p.fails++
		} else {
			p.write = append(p.write, took)
		}
		p.mu.Unlock()
	}
}

// probeBody is a snappy-compressed RW 1.0 request: one vLLM engine's queue and KV-cache use.
func probeBody(id int64, now time.Time) []byte {
	pod := "loadgen-probe-" + strconv.FormatInt(id%probeEndpoints, 10)
	ls := func(name string) []prompb.Label {
		return []prompb.Label{{Name: "__name__", Value: name}, {Name: "model_name", Value: "loadgen-probe"},
			{Name: "namespace", Value: "loadgen"}, {Name: "pod", Value: pod}}
	}
	ts := now.UnixMilli()
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: ls("vllm:kv_cache_usage_perc"), Samples: []prompb.Sample{{Timestamp: ts, Value: 0.5}}},
		{Labels: ls("vllm:num_requests_waiting"), Samples: []prompb.Sample{{Timestamp: ts, Value: float64(id)}}},
	}}
	raw, _ := req.Marshal() // cannot fail: a plain struct
	return snappy.Encode(nil, raw)
}

// finish waits up to wait for probes still in flight, then stops and reports.
func (p *routerProbe) finish(wait time.Duration) RouterLatency {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.sent)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = p.sub.Unsubscribe()
	p.nc.Close()
	p.client.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = true
	r := RouterLatency{Sent: p.nSent, Received: len(p.lat), Failed: p.fails}
	if len(p.lat) > 0 {
		slices.Sort(p.lat)
		r.P50, r.P99, r.Max = Quantile(p.lat, 0.5), Quantile(p.lat, 0.99), p.lat[len(p.lat)-1]
	}
	if len(p.write) > 0 {
		slices.Sort(p.write)
		r.WriteP50, r.WriteP99 = Quantile(p.write, 0.5), Quantile(p.write, 0.99)
	}
	return r
}

// Write prints the result as report lines.
func (r *RouterLatency) Write(w io.Writer) {
	fmt.Fprintf(w, "router probes:       %d sent, %d received, %d write failures\n", r.Sent, r.Received, r.Failed)
	fmt.Fprintf(w, "router latency p50:  %s\n", r.P50.Round(10*time.Microsecond))
	fmt.Fprintf(w, "router latency p99:  %s\n", r.P99.Round(10*time.Microsecond))
	fmt.Fprintf(w, "router latency max:  %s\n", r.Max.Round(10*time.Microsecond))
	fmt.Fprintf(w, "router probe write p50: %s\n", r.WriteP50.Round(10*time.Microsecond))
	fmt.Fprintf(w, "router probe write p99: %s\n", r.WriteP99.Round(10*time.Microsecond))
}
