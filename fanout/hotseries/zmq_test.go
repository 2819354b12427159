package hotseries

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eagle-eye-ai/eagle-eye/internal/e2etest"
	"github.com/eagle-eye-ai/eagle-eye/router"
)

func repoFile(t testing.TB, rel string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

// TestZMQLibzmqSubscriber runs the Python example router (pyzmq on libzmq) against the PUB
// socket and checks it receives the same messages as a NATS subscriber.
func TestZMQLibzmqSubscriber(t *testing.T) {
	python := e2etest.Peer(t, "apt-get install -y python3-zmq", "/usr/bin/python3")
	if err := exec.Command(python, "-c", "import zmq").Run(); err != nil {
		e2etest.Missing(t, "python3-zmq: "+err.Error(), "apt-get install -y python3-zmq")
	}
	cfg := testConfig()
	cfg.NATS.ListenAddress = "" // in-process only
	p := startPublisher(t, Options{Config: routingOnly(cfg)})
	addr := p.ZMQAddress()
	if !strings.HasPrefix(addr, "tcp://127.0.0.1:") {
		t.Fatalf("ZMQ address %q", addr)
	}

	nc, err := nats.Connect("", nats.InProcessServer(p.nats.srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bySeq := map[uint64]router.Message{}
	live := follow(t, nc)

	fleet := testFleet()
	const want = 30
	cmd := exec.Command(python, repoFile(t, "examples/router-python/subscribe.py"),
		"--endpoint", addr, "--raw", "--count", "30", "--timeout", "20")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan []string, 1)
	go func() {
		var ls []string
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ls = append(ls, sc.Text())
		}
		lines <- ls
		exited <- cmd.Wait()
	}()
	// A new subscriber's subscription takes a moment to reach the PUB socket: keep the data
	// flowing until it has what it asked for.
	deadline := time.After(30 * time.Second)
	var got []string
	now := time.Now().UnixMilli()
loop:
	for k := 1; ; k++ {
		write(t, p, fleetRequest(fleet, now+int64(k)*1000, k))
		select {
		case got = <-lines:
			break loop
		case <-deadline:
			_ = cmd.Process.Kill()
			<-lines
			<-exited
			t.Fatal("the libzmq subscriber did not get its messages in 30s")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	if len(got) != want {
		t.Fatalf("%d lines, want %d", len(got), want)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range live.snapshot() {
		bySeq[m.Seq] = m
	}
	completeSeen := map[string]bool{}
	for _, line := range got {
		var rec struct {
			Topic   string          `json:"topic"`
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		m, err := router.Decode(rec.Message)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Topic != router.RoutingSubject {
			t.Errorf("topic %q", rec.Topic)
		}
		if n, ok := bySeq[m.Seq]; !ok || !reflect.DeepEqual(n, m) {
			t.Errorf("ZeroMQ message seq %d differs from NATS:\n zmq  %+v\n nats %+v", m.Seq, m, n)
		}
		if len(m.Missing) <= 1 {
			for _, e := range fleet {
				if e.pod == m.Endpoint["pod"] {
					checkRouting(t, m, e)
					completeSeen[e.pod] = true
				}
			}
		}
	}
	if len(completeSeen) != len(fleet) {
		t.Errorf("complete messages for %d endpoints, want %d", len(completeSeen), len(fleet))
	}
}

// TestZMQSkipsMessagesNobodyWants: with no ZeroMQ subscriber the transport neither queues nor
// counts messages as published, while NATS publishes them all.
func TestZMQSkipsMessagesNobodyWants(t *testing.T) {
	cfg := testConfig()
	cfg.NATS.ListenAddress = ""
	p := startPublisher(t, Options{Config: routingOnly(cfg)})
	published := map[string]float64{}
	count := func() {
		for i, tr := range p.transports {
			published[tr.name()] = testutil.ToFloat64(p.m.published[i].WithLabelValues("routing"))
		}
	}
	fleet := testFleet()
	now := time.Now().UnixMilli()
	write(t, p, fleetRequest(fleet, now, 1))
	write(t, p, fleetRequest(fleet, now+1000, 2))
	waitFor(t, 5*time.Second, "NATS messages", func() bool { count(); return published["nats"] >= float64(len(fleet)) })
	if published["zmq"] != 0 || len(p.zmq.queue) != 0 {
		t.Errorf("with no subscriber: %v ZeroMQ messages counted, %d queued", published["zmq"], len(p.zmq.queue))
	}
}
