// Command loadgen remote-writes a synthetic AI-inference fleet (DCGM and vLLM series) to a
// remote-write receiver and reports throughput, latency and, optionally, the receiver's CPU
// and memory use. Every payload is encoded before the timed part, so that the receiver, not
// the load generator, is what is measured.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// Flags holds the command line.
type Flags struct {
	URL               string
	Protocol          string
	Series            int
	SamplesPerRequest int
	Concurrency       int
	Requests          int
	Duration          time.Duration
	Rounds            int
	Rate              float64
	Step              time.Duration
	Timeout           time.Duration
	PID               int
	ClockTicks        int64
	Progress          time.Duration
	RouterNATS        string
	ProbeInterval     time.Duration
	ProbeOnly         bool
}

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

func cli(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("loadgen", "Remote-writes a synthetic AI-inference fleet (DCGM-exporter GPU series and vLLM engine series, about ten labels each) to a Prometheus remote-write receiver, and reports requests by status code, samples per second and request latency. A round sends one sample of every series, split into requests; successive rounds are one step apart in time. All payloads are encoded and compressed before the timed part. The run is bounded by --requests, --duration, or both; it stops at whichever comes first.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)

	var f Flags
	app.Flag("url", "Remote-write endpoint to send to.").
		Default("http://127.0.0.1:9095/api/v1/write").StringVar(&f.URL)
	app.Flag("protocol", "Remote-write version: rw1 (prometheus.WriteRequest) or rw2 (io.prometheus.write.v2.Request, with per-series metadata).").
		Default("rw1").EnumVar(&f.Protocol, string(RW1), string(RW2))
	app.Flag("series", "Number of distinct series in the fleet; every round sends one sample of each.").
		Default("100000").IntVar(&f.Series)
	app.Flag("samples-per-request", "Series (one sample each) per write request.").
		Default("2000").IntVar(&f.SamplesPerRequest)
	app.Flag("concurrency", "Requests in flight at once, one per worker. Requests carrying the same series are never in flight together, so they arrive in timestamp order.").
		Default("4").IntVar(&f.Concurrency)
	app.Flag("requests", "Total write requests to send; 0 means as many as --rounds holds. The number of rounds pre-encoded follows from it.").
		Default("0").IntVar(&f.Requests)
	app.Flag("duration", "Longest the timed part may run; 0 means no time limit (then --requests or --rounds bounds the run).").
		Default("0").DurationVar(&f.Duration)
	app.Flag("rounds", "Rounds to pre-encode when --requests is 0. The run stops when they are all sent.").
		Default("60").IntVar(&f.Rounds)
	app.Flag("rate", "Upper bound on samples sent per second, over the whole run; 0 sends as fast as the receiver answers.").
		Default("0").Float64Var(&f.Rate)
	app.Flag("step", "Timestamp distance between successive rounds. The first round is stamped about a minute before now, earlier when there are many rounds, so that the last one is not in the future.").
		Default("1s").DurationVar(&f.Step)
	app.Flag("timeout", "Timeout of one write request.").
		Default("30s").DurationVar(&f.Timeout)
	app.Flag("pid", "Process ID of the receiver, when it runs on this host: its CPU time (utime+stime from /proc/PID/stat) is read before and after the timed part, its VmRSS and VmHWM (/proc/PID/status) after, and the report adds CPU-seconds per million samples and RSS per series.").
		Default("0").IntVar(&f.PID)
	app.Flag("clock-ticks", "Clock ticks per second of /proc/PID/stat (getconf CLK_TCK).").
		Default("100").Int64Var(&f.ClockTicks)
	app.Flag("progress", "Interval between progress lines on stderr; 0 turns them off.").
		Default("5s").DurationVar(&f.Progress)
	app.Flag("router.nats-url", "NATS server of the gateway's hot-series feed (e.g. nats://127.0.0.1:4222). When set, loadgen also acts as a router while the load runs: every --router.probe-interval it writes a two-series vLLM request for one of 100 endpoints of its own (namespace loadgen, pods loadgen-probe-N) and times how long the value takes to arrive on eagle_eye.routing_metrics, from just before the write to the message; the report adds p50, p99 and max. The gateway's routing group must publish on ingest (mode: on-ingest) for this to measure ingest latency rather than the publishing interval.").
		StringVar(&f.RouterNATS)
	app.Flag("router.probe-interval", "Time between two router probe writes.").
		Default("5ms").DurationVar(&f.ProbeInterval)
	app.Flag("router.probe-only", "Send no fleet load: only run the router probe (--router.nats-url) for --duration and report its latency. Run it beside a loadgen that sends the load, so that the router, like a real one, is a process of its own.").
		BoolVar(&f.ProbeOnly)

	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	if err := f.validate(); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.ProbeOnly {
		return probeOnly(ctx, &f, stdout, stderr)
	}
	rep, err := run(ctx, &f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	rep.Write(stdout)
	if _, failed := rep.Result.OK(); failed > 0 {
		return 3
	}
	return 0
}

func (f *Flags) validate() error {
	switch {
	case f.Series <= 0:
		return errors.New("--series must be positive")
	case f.SamplesPerRequest <= 0:
		return errors.New("--samples-per-request must be positive")
	case f.Concurrency <= 0:
		return errors.New("--concurrency must be positive")
	case f.Requests < 0 || f.Duration < 0 || f.Rate < 0:
		return errors.New("--requests, --duration and --rate must not be negative")
	case f.Requests == 0 && f.Rounds <= 0:
		return errors.New("--rounds must be positive when --requests is 0")
	case f.Step <= 0 || f.Step%time.Millisecond != 0:
		return errors.New("--step must be a positive whole number of milliseconds")
	case f.PID < 0 || f.ClockTicks <= 0:
		return errors.New("--pid must not be negative and --clock-ticks must be positive")
	case f.RouterNATS != "" && f.ProbeInterval <= 0:
		return errors.New("--router.probe-interval must be positive")
	case f.ProbeOnly && (f.RouterNATS == "" || f.Duration <= 0):
		return errors.New("--router.probe-only needs --router.nats-url and a --duration")
	}
	return nil
}

// probeOnly runs the router probe alone for f.Duration and prints its report; like a load
// run, it exits 3 when a probe write failed.
func probeOnly(ctx context.Context, f *Flags, stdout, stderr io.Writer) int {
	probe, err := startRouterProbe(f.URL, f.RouterNATS, f.ProbeInterval, f.Timeout)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	runCtx, cancel := context.WithTimeout(ctx, f.Duration)
	defer cancel()
	probe.run(runCtx)
	r := probe.finish(2 * time.Second)
	r.Write(stdout)
	if r.Failed > 0 {
		return 3
	}
	return 0
}

// gate keeps the requests of one slot (the same series, successive rounds) in round order.
type gate struct {
	mu   sync.Mutex
	cond sync.Cond
	next int
}

func (g *gate) wait(round int) {
	g.mu.Lock()
	for g.next != round {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

func (g *gate) done() {
	g.mu.Lock()
	g.next++
	g.cond.Broadcast()
	g.mu.Unlock()
}

// firstTimestamp is the timestamp of round 0: a minute before now, moved back by up to 8
// minutes so that later rounds stay in the past.
func firstTimestamp(now time.Time, rounds int, step time.Duration) int64 {
	back := min(time.Duration(rounds-1)*step, 8*time.Minute)
	return now.Add(-time.Minute - back).UnixMilli()
}

func run(ctx context.Context, f *Flags, log io.Writer) (*Report, error) {
	plan := Plan{Protocol: Protocol(f.Protocol), Series: f.Series, SamplesPerRequest: f.SamplesPerRequest}
	per := plan.RequestsPerRound()
	total := f.Requests
	if total == 0 {
		total = f.Rounds * per
	}
	rounds := (total + per - 1) / per

	t0 := time.Now()
	tmpl, err := BuildTemplates(plan)
	if err != nil {
		return nil, err
	}
	payloads, err := EncodeRounds(tmpl, rounds, firstTimestamp(time.Now(), rounds, f.Step), f.Step.Milliseconds())
	if err != nil {
		return nil, err
	}
	tmpl = nil
	fmt.Fprintf(log, "loadgen: pre-encoded %d requests (%d rounds of %d) in %s: %.1f MiB compressed, %.1f KiB per request\n",
		total, rounds, per, time.Since(t0).Round(time.Millisecond),
		float64(payloads.Bytes)/(1<<20), float64(payloads.Bytes)/float64(len(payloads.Payloads))/1024)

	client := &http.Client{
		Timeout: f.Timeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: f.Concurrency,
			MaxConnsPerHost:     f.Concurrency,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
	defer client.CloseIdleConnections()

	var server *ServerUsage
	if f.PID > 0 {
		before, err := ReadProc(f.PID)
		if err != nil {
			return nil, fmt.Errorf("reading the receiver's usage: %w", err)
		}
		server = &ServerUsage{PID: f.PID, Before: before}
	}

	runCtx := ctx
	if f.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, f.Duration)
		defer cancel()
	}

	var probe *routerProbe
	probeDone := make(chan struct{})
	if f.RouterNATS != "" {
		probe, err = startRouterProbe(f.URL, f.RouterNATS, f.ProbeInterval, f.Timeout)
		if err != nil {
			return nil, err
		}
	}
	probeCtx, stopProbe := context.WithCancel(runCtx)
	defer stopProbe()
	go func() {
		defer close(probeDone)
		if probe != nil {
			probe.run(probeCtx)
		}
	}()

	gates := make([]gate, per)
	for i := range gates {
		gates[i].cond.L = &gates[i].mu
	}
	var (
		next       atomic.Int64
		doneReqs   atomic.Int64
		okSamples  atomic.Int64
		failedReqs atomic.Int64
		sentBytes  atomic.Int64
		wg         sync.WaitGroup
		results    = make([]*Result, f.Concurrency)
	)
	start := time.Now()
	for w := range results {
		res := newResult()
		results[w] = res
		wg.Go(func() {
			for runCtx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				r, j := i/per, i%per
				gates[j].wait(r)
				if f.Rate > 0 {
					due := start.Add(time.Duration(float64(r*f.Series+j*f.SamplesPerRequest) / f.Rate * float64(time.Second)))
					if !sleepUntil(runCtx, due) {
						gates[j].done()
						return
					}
				}
				if runCtx.Err() != nil {
					gates[j].done()
					return
				}
				body := payloads.Payloads[i]
				n := payloads.Samples[i]
				status, took, errText := send(client, f.URL, plan.Protocol, body)
				gates[j].done()
				res.Add(status, n, took, errText)
				doneReqs.Add(1)
				sentBytes.Add(int64(len(body)))
				if status >= 200 && status < 300 {
					okSamples.Add(int64(n))
				} else {
					failedReqs.Add(1)
				}
			}
		})
	}

	finished := make(chan struct{})
	if f.Progress > 0 {
		go func() {
			tick := time.NewTicker(f.Progress)
			defer tick.Stop()
			var last int64
			lastT := start
			for {
				select {
				case <-finished:
					return
				case now := <-tick.C:
					s := okSamples.Load()
					fmt.Fprintf(log, "loadgen: %6.1fs  requests %d/%d (failed %d)  samples ok %d  %.0f samples/s\n",
						now.Sub(start).Seconds(), doneReqs.Load(), total, failedReqs.Load(), s,
						float64(s-last)/now.Sub(lastT).Seconds())
					last, lastT = s, now
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(finished)
	stopProbe()
	<-probeDone

	if server != nil {
		after, err := ReadProc(f.PID)
		if err != nil {
			return nil, fmt.Errorf("reading the receiver's usage after the run: %w", err)
		}
		server.After = after
	}
	res := newResult()
	for _, r := range results {
		res.Merge(r)
	}
	rep := &Report{
		Protocol:   plan.Protocol,
		URL:        f.URL,
		Series:     f.Series,
		Elapsed:    elapsed,
		Result:     res,
		Bytes:      sentBytes.Load(),
		Server:     server,
		ClockTicks: f.ClockTicks,
	}
	if probe != nil {
		r := probe.finish(2 * time.Second)
		rep.Router = &r
	}
	if done := int(doneReqs.Load()); done < total {
		reason := "time limit (--duration)"
		if ctx.Err() != nil {
			reason = "interrupted"
		}
		rep.StoppedEarly = fmt.Sprintf("%s after %d of %d requests", reason, done, total)
	}
	return rep, nil
}

// sleepUntil waits until t; false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// send posts one payload; status 0 means the request got no answer.
func send(client *http.Client, url string, proto Protocol, body []byte) (status int, took time.Duration, errText string) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err.Error()
	}
	h := req.Header
	h.Set("Content-Type", proto.ContentType())
	h.Set("Content-Encoding", "snappy")
	h.Set("X-Prometheus-Remote-Write-Version", proto.VersionHeader())
	h.Set("User-Agent", "eagle-eye-loadgen")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err.Error()
	}
	var msg []byte
	if resp.StatusCode/100 != 2 {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), string(msg)
}
