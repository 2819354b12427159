package hotseries

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
)

// zmqTransport sends multipart [topic, json] messages on a PUB socket. send only copies the
// message into a bounded queue (dropping, counted, when it is full); one goroutine moves the
// queue into the socket, which itself queues up to its high-water mark and then drops.
//
// Known limits of zmq4 v0.17.0: the socket's drops past the high-water mark are silent (not
// in our drop counter); one subscriber whose TCP window is full holds up delivery to the
// others (never ingest); and a closed socket can leave one idle goroutine behind.
type zmqTransport struct {
	p      *Publisher
	sock   zmq4.Socket
	topics atomic.Pointer[[]string] // what subscribers asked for, refreshed every topicsEvery
	queue  chan zmqMsg
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
}

type zmqMsg struct{ topic, data []byte }

// topicsEvery is how often the transport reads which topics subscribers have asked for: a
// message no subscriber wants is not copied nor queued at all (with no ZeroMQ subscriber,
// the feed costs nothing), and a new subscriber's first messages may be this much late.
const topicsEvery = 50 * time.Millisecond

func (t *zmqTransport) name() string { return "zmq" }

func startZMQ(cfg ZMQConfig, p *Publisher) (*zmqTransport, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sock := zmq4.NewPub(ctx, zmq4.WithLogger(log.New(io.Discard, "", 0)))
	if err := sock.SetOption(zmq4.OptionHWM, cmpOr(cfg.HighWaterMark, 10000)); err != nil {
		cancel()
		_ = sock.Close()
		return nil, fmt.Errorf("zmq high-water mark: %w", err)
	}
	if err := sock.Listen(cfg.Bind); err != nil {
		cancel()
		_ = sock.Close()
		return nil, fmt.Errorf("zmq cannot bind %s (--zmq.bind): %w", cfg.Bind, err)
	}
	t := &zmqTransport{
		p:      p,
		sock:   sock,
		queue:  make(chan zmqMsg, cmpOr(cfg.QueueSize, 4096)),
		done:   make(chan struct{}),
		cancel: cancel,
	}
	t.refreshTopics()
	t.wg.Add(1)
	go t.run()
	return t, nil
}

func (t *zmqTransport) refreshTopics() {
	var ts []string
	if s, ok := t.sock.(zmq4.Topics); ok {
		ts = s.Topics()
	} else {
		ts = []string{""} // cannot tell: send everything
	}
	t.topics.Store(&ts)
}

// wanted reports whether some subscriber's subscription is a prefix of topic.
func (t *zmqTransport) wanted(topic string) bool {
	for _, s := range *t.topics.Load() {
		if strings.HasPrefix(topic, s) {
			return true
		}
	}
	return false
}

func (t *zmqTransport) run() {
	defer t.wg.Done()
	tick := time.NewTicker(topicsEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			t.refreshTopics()
		case m := <-t.queue:
			if err := t.sock.SendMulti(zmq4.NewMsgFrom(m.topic, m.data)); err != nil {
				t.p.drop(dropZMQQueue, 1)
				t.p.log.log(slog.LevelWarn, "zmq-send", "cannot send on the ZeroMQ socket", "err", err)
			}
		}
	}
}

func (t *zmqTransport) send(m *outMessage) bool {
	if m.kvOnly || !t.wanted(m.topic) {
		return false
	}
	msg := zmqMsg{topic: []byte(m.topic), data: append([]byte(nil), m.data...)}
	select {
	case t.queue <- msg:
		return true
	default:
		t.p.drop(dropZMQQueue, 1)
		t.p.log.log(slog.LevelWarn, "zmq-queue", "ZeroMQ queue full; dropping hot-series messages", "queue_size", cap(t.queue))
		return false
	}
}

// addr is the bound address, with the port the system picked for port 0.
func (t *zmqTransport) addr() string {
	if a := t.sock.Addr(); a != nil {
		return "tcp://" + a.String()
	}
	return ""
}

func (t *zmqTransport) close() error {
	var err error
	t.once.Do(func() {
		close(t.done)
		t.wg.Wait()
		err = t.sock.Close()
		t.cancel()
	})
	return err
}
