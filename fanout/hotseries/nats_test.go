package hotseries

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/router"
)

// routingOnly is a configuration with the routing group alone, publishing every 100ms.
func routingOnly(cfg Config) Config {
	cfg.BuiltinGroups = nil
	g := routingGroup()
	g.Interval = model.Duration(100 * time.Millisecond)
	cfg.Groups = []GroupConfig{g}
	return cfg
}

// collector gathers decoded messages from a subscription.
type collector struct {
	mu   sync.Mutex
	msgs []router.Message
}

func (c *collector) add(m router.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

// follow subscribes a collector to the routing subject on nc, as a router would, until the
// test ends.
func follow(t testing.TB, nc *nats.Conn) *collector {
	t.Helper()
	c := &collector{}
	sub, err := router.Subscribe(nc, router.RoutingSubject, c.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) snapshot() []router.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]router.Message(nil), c.msgs...)
}

// complete reports whether every engine has a message with all its rates (written twice).
func complete(ms []router.Message, fleet []engine) bool {
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Status == router.StatusFresh && len(m.Missing) <= 1 { // SGLang has no ITL series here
			seen[m.Endpoint["pod"]] = true
		}
	}
	return len(seen) == len(fleet)
}

func TestNATSEmbeddedSubjectAndLateRouter(t *testing.T) {
	cfg := testConfig()
	cfg.ZMQ.Enabled = false
	p := startPublisher(t, Options{Config: routingOnly(cfg)})
	url := p.NATSURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || p.EmbeddedNATSURL() != url {
		t.Fatalf("embedded NATS URL %q", url)
	}

	// A router subscribed before the data arrives, over TCP like any router.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	live := follow(t, nc)

	fleet := testFleet()
	now := time.Now().UnixMilli()
	write(t, p, fleetRequest(fleet, now, 1))
	write(t, p, fleetRequest(fleet, now+1000, 2))
	waitFor(t, 5*time.Second, "one message per endpoint", func() bool { return len(live.snapshot()) >= len(fleet) })
	time.Sleep(300 * time.Millisecond) // three more rounds: nothing new was written
	got := live.snapshot()
	if len(got) != len(fleet) {
		t.Fatalf("%d messages on %s, want exactly one per endpoint (%d)", len(got), router.RoutingSubject, len(fleet))
	}
	byPod := map[string]router.Message{}
	for _, m := range got {
		byPod[m.Endpoint["pod"]] = m
	}
	for _, e := range fleet {
		checkRouting(t, byPod[e.pod], e)
	}

	// A router that starts now reads every endpoint's state from the KV bucket at once.
	late, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	w, err := router.Watch(ctx, late, router.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	t.Logf("late router read %d endpoints in %s", len(w.Snapshot()), time.Since(start))
	snap := map[string]router.Message{}
	for _, m := range w.Snapshot() {
		snap[m.Endpoint["pod"]] = m
	}
	if len(snap) != len(fleet) {
		t.Fatalf("snapshot has %d endpoints, want %d", len(snap), len(fleet))
	}
	for _, e := range fleet {
		checkRouting(t, snap[e.pod], e)
	}

	// And follows what comes next.
	fleet[0].waiting = 42
	write(t, p, fleetRequest(fleet[:1], now+2000, 3))
	select {
	case m := <-w.Updates():
		if m.Endpoint["pod"] != fleet[0].pod || m.Metrics["num_requests_waiting"] != 42 {
			t.Errorf("update %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no update after the snapshot")
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsServer runs the system's nats-server on a loopback port with JetStream in dir.
type natsServer struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
}

func (s *natsServer) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.dir)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		s.cmd.Stdout, s.cmd.Stderr = nil, nil
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "nats-server to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func (s *natsServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func TestNATSExternalServerRestart(t *testing.T) {
	srv := &natsServer{bin: e2etest.Peer(t, "apt-get install -y nats-server", "nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"), dir: t.TempDir(), port: freePort(t)}
	srv.start(t)
	t.Cleanup(srv.stop)
	url := fmt.Sprintf("nats://127.0.0.1:%d", srv.port)

	cfg := testConfig()
	cfg.ZMQ.Enabled = false
	cfg.NATS.URL = url
	p := startPublisher(t, Options{Config: routingOnly(cfg)})
	if p.NATSURL() != url || p.EmbeddedNATSURL() != "" {
		t.Errorf("NATSURL %q EmbeddedNATSURL %q", p.NATSURL(), p.EmbeddedNATSURL())
	}

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	live := follow(t, nc)

	fleet := testFleet()
	now := time.Now().UnixMilli()
	// The bucket is made in the background once connected.
	waitFor(t, 10*time.Second, "the KV bucket", func() bool {
		w, err := router.Watch(context.Background(), nc, router.Options{})
		if err != nil {
			return false
		}
		_ = w.Stop()
		return true
	})
	write(t, p, fleetRequest(fleet, now, 1))
	write(t, p, fleetRequest(fleet, now+1000, 2))
	waitFor(t, 5*time.Second, "every endpoint on the external server", func() bool { return complete(live.snapshot(), fleet) })

	// Restart the server: the publisher reconnects by itself and carries on.
	srv.stop()
	waitFor(t, 5*time.Second, "the publisher to notice", func() bool { return testutil.ToFloat64(p.m.natsConnected) == 0 })
	write(t, p, fleetRequest(fleet, now+2000, 3)) // buffered while disconnected
	srv.start(t)
	waitFor(t, 15*time.Second, "the publisher to reconnect", func() bool { return testutil.ToFloat64(p.m.natsConnected) == 1 })
	waitFor(t, 15*time.Second, "the router to reconnect", nc.IsConnected)
	before := len(live.snapshot())
	fleet[0].waiting = 99
	var last router.Message
	waitFor(t, 15*time.Second, "messages after the restart", func() bool {
		write(t, p, fleetRequest(fleet, time.Now().UnixMilli(), 4))
		for _, m := range live.snapshot()[before:] {
			if m.Endpoint["pod"] == fleet[0].pod && m.Metrics["num_requests_waiting"] == 99 {
				last = m
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
		return false
	})
	if last.Seq <= uint64(len(fleet)) {
		t.Errorf("seq after restart %d: the sequence continues per publisher", last.Seq)
	}
	// The KV bucket survived the restart (file storage) and has the new state, within
	// kv_update_interval.
	var n int
	found := false
	waitFor(t, 5*time.Second, "the KV entry to catch up", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w, err := router.Watch(ctx, nc, router.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Stop() }()
		n = len(w.Snapshot())
		for _, m := range w.Snapshot() {
			if m.Endpoint["pod"] == fleet[0].pod {
				found = m.Metrics["num_requests_waiting"] == 99
			}
		}
		return n == len(fleet) && found
	})
}

// TestKVUpdateInterval writes one endpoint 20 times in quick succession in on-ingest mode:
// every write goes out live at once, while the KV entry is written for the first one and
// brought up to date once kv_update_interval has passed. A Watcher started in between
// delivers each message once, in order, and ends on the last value, whichever of the live
// feed and the KV entry brings it first.
func TestKVUpdateInterval(t *testing.T) {
	cfg := routingOnlyMode(ModeOnIngest, time.Second)
	cfg.Groups[0].MinGap = model.Duration(time.Millisecond)
	cfg.NATS.KVUpdateInterval = model.Duration(500 * time.Millisecond)
	p := startPublisher(t, Options{Config: cfg})
	nc, err := nats.Connect(p.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	live := follow(t, nc)

	fleet := testFleet()[:1]
	now := time.Now().UnixMilli()
	const writes = 20
	began := time.Now()
	for i := 1; i <= writes; i++ {
		fleet[0].waiting = float64(i)
		write(t, p, fleetRequest(fleet, now+int64(i)*10, i))
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "every write live", func() bool { return len(live.snapshot()) == writes })
	for i, m := range live.snapshot() {
		if m.Metrics["num_requests_waiting"] != float64(i+1) {
			t.Fatalf("live message %d has waiting %v, want %d", i, m.Metrics["num_requests_waiting"], i+1)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := router.Watch(ctx, nc, router.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	if len(w.Snapshot()) != 1 {
		t.Fatalf("snapshot has %d endpoints, want 1", len(w.Snapshot()))
	}
	last := w.Snapshot()[0]
	for last.Metrics["num_requests_waiting"] != writes {
		select {
		case m := <-w.Updates():
			if m.Seq <= last.Seq {
				t.Fatalf("update seq %d after %d: delivered twice or out of order", m.Seq, last.Seq)
			}
			last = m
		case <-ctx.Done():
			t.Fatalf("the Watcher never saw the last value; it has %v", last.Metrics)
		}
	}
	// Nothing more: the KV catch-up carries a message already delivered.
	select {
	case m := <-w.Updates():
		t.Errorf("extra update seq %d after the last one", m.Seq)
	case <-time.After(time.Second):
	}

	// The bucket's stream stored a handful of entries, not one per message.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One write per started interval, plus the catch-up.
	maxPuts := uint64(time.Since(began)/(500*time.Millisecond)) + 2
	if got := info.State.LastSeq; got < 2 || got > maxPuts {
		t.Errorf("KV stream has %d entries after %d live messages, want 2..%d", got, writes, maxPuts)
	}
}
