package hotseries

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsTransport publishes each message on its subject and puts it in the KV bucket, both
// as plain core-NATS publishes: nothing waits for an acknowledgement. While disconnected,
// nats.go buffers up to ReconnectBufSize; past it messages are dropped and counted.
//
// On-ingest groups' live messages go out on a second connection. A connection's publishes
// share one lock and one write buffer, which its flusher holds while it writes, and the
// embedded server reads the in-process connection as fast as it handles what it read: a
// live message queued behind an interval group's round of thousands waited tens of
// milliseconds for the lock.
type natsTransport struct {
	p        *Publisher
	cfg      NATSConfig
	srv      *server.Server // embedded server, nil for an external one
	tmpDir   string         // removed on close
	nc       *nats.Conn     // KV puts and interval groups' messages
	live     *nats.Conn     // on-ingest groups' messages; nil when there are none
	kvPrefix string
	log      *throttle

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	ensuring atomic.Bool
}

func (t *natsTransport) name() string { return "nats" }

// startNATS starts the embedded server (when cfg has no URL), connects, and makes sure the
// KV bucket exists: at once for the embedded server, in the background for an external one
// (which may be down now; the bucket is made again after every reconnect).
func startNATS(cfg NATSConfig, dataDir string, p *Publisher) (_ *natsTransport, err error) {
	t := &natsTransport{p: p, cfg: cfg, log: p.log}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = t.close()
		}
	}()
	if cfg.Bucket == "" {
		t.cfg.Bucket = DefaultBucket
	}
	t.kvPrefix = "$KV." + t.cfg.Bucket + "."

	opts := []nats.Option{
		nats.Name("eagle-eye-hot-series"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(cmpOr(cfg.ReconnectBufferBytes, 8<<20)),
		nats.PingInterval(5 * time.Second),
		nats.ConnectHandler(func(*nats.Conn) { t.connected() }),
		nats.ReconnectHandler(func(*nats.Conn) { t.connected() }),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			p.m.natsConnected.Set(0)
			if nc.IsClosed() {
				return // our own Close, not a lost server
			}
			t.log.log(slog.LevelWarn, "nats-disconnect", "disconnected from NATS; buffering, then dropping, until reconnected", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			t.log.log(slog.LevelWarn, "nats-error", "NATS error", "err", err)
		}),
	}
	url := cfg.URL
	if url == "" {
		if err := t.startServer(dataDir); err != nil {
			return nil, err
		}
		opts = append(opts, nats.InProcessServer(t.srv))
	} else {
		auth, err := authOptions(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	t.nc, err = nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if p.hasOnIngest() {
		// Same options but the handlers: connection state and the bucket follow t.nc.
		liveOpts := append(opts[:0:0], opts...)
		liveOpts = append(liveOpts, nats.Name("eagle-eye-hot-series-live"),
			nats.ConnectHandler(nil), nats.ReconnectHandler(nil),
			nats.DisconnectErrHandler(nil))
		if t.live, err = nats.Connect(url, liveOpts...); err != nil {
			return nil, fmt.Errorf("connect to NATS (live messages): %w", err)
		}
	}
	if t.srv != nil {
		ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
		defer cancel()
		if err := t.ensureBucket(ctx); err != nil {
			return nil, fmt.Errorf("create KV bucket %s: %w", t.cfg.Bucket, err)
		}
	}
	if t.nc.IsConnected() {
		p.m.natsConnected.Set(1)
		t.connected()
	}
	return t, nil
}

func cmpOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (t *natsTransport) startServer(dataDir string) error {
	dir := t.cfg.StoreDir
	switch {
	case dir != "":
	case dataDir != "":
		dir = filepath.Join(dataDir, "nats")
	default:
		d, err := os.MkdirTemp("", "eagle-eye-nats-")
		if err != nil {
			return fmt.Errorf("NATS store dir: %w", err)
		}
		dir, t.tmpDir = d, d
	}
	opts := &server.Options{
		ServerName:         "eagle-eye",
		DontListen:         t.cfg.ListenAddress == "",
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
		NoSigs:             true,
	}
	if !opts.DontListen {
		host, port, err := net.SplitHostPort(t.cfg.ListenAddress)
		if err != nil {
			return fmt.Errorf("nats listen address %q: %w", t.cfg.ListenAddress, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("nats listen address %q: bad port", t.cfg.ListenAddress)
		}
		opts.Host, opts.Port = host, n
		if n == 0 {
			opts.Port = server.RANDOM_PORT
		} else {
			// The server only logs a failed listen; find out here, with a clear error.
			ln, err := net.Listen("tcp", t.cfg.ListenAddress)
			if err != nil {
				return fmt.Errorf("embedded NATS cannot listen on %s (--nats.listen-address): %w", t.cfg.ListenAddress, err)
			}
			_ = ln.Close()
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	srv.SetLoggerV2(serverLogger{t.p.logger.With("component", "nats-server")}, false, false, false)
	t.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("embedded NATS did not become ready in 10s")
	}
	return nil
}

func authOptions(cfg NATSConfig) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.User != "" || cfg.Password != "":
		opts = append(opts, nats.UserInfo(cfg.User, string(cfg.Password)))
	case cfg.Token != "":
		opts = append(opts, nats.Token(string(cfg.Token)))
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	return opts, nil
}

// connected runs on every (re)connect: it makes sure the bucket exists, in the background,
// one attempt series at a time.
func (t *natsTransport) connected() {
	t.p.m.natsConnected.Set(1)
	if t.srv != nil || !t.ensuring.CompareAndSwap(false, true) {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer t.ensuring.Store(false)
		wait := 250 * time.Millisecond
		for attempt := 0; attempt < 20; attempt++ {
			ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
			err := t.ensureBucket(ctx)
			cancel()
			if err == nil {
				return
			}
			t.log.log(slog.LevelWarn, "nats-bucket", "cannot create the hot-series KV bucket yet; retrying", "bucket", t.cfg.Bucket, "err", err)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
		}
	}()
}

func (t *natsTransport) ensureBucket(ctx context.Context) error {
	js, err := jetstream.New(t.nc)
	if err != nil {
		return err
	}
	storage := jetstream.FileStorage
	if t.cfg.KVStorage == "memory" {
		storage = jetstream.MemoryStorage
	}
	ttl := time.Duration(t.cfg.KVTTL)
	if ttl == 0 {
		ttl = time.Hour
	}
	_, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      t.cfg.Bucket,
		Description: "Eagle Eye hot series: the last message per endpoint",
		History:     1,
		TTL:         ttl,
		Storage:     storage,
	})
	return err
}

func (t *natsTransport) send(m *outMessage) bool {
	var err error
	if m.subject != "" && !m.kvOnly {
		nc := t.nc
		if m.live && t.live != nil {
			nc = t.live
		}
		err = nc.Publish(m.subject, m.data)
	}
	var kvErr error
	switch {
	case m.noKV:
	case m.removed:
		kvErr = t.nc.PublishMsg(&nats.Msg{Subject: t.kvPrefix + m.kvKey, Header: nats.Header{"KV-Operation": []string{"DEL"}}, Data: m.data})
	default:
		kvErr = t.nc.Publish(t.kvPrefix+m.kvKey, m.data)
	}
	if err == nil {
		err = kvErr
	}
	if err == nil {
		return true
	}
	if errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.p.drop(dropNATSBuffer, 1)
		t.log.log(slog.LevelWarn, "nats-buffer", "NATS reconnect buffer full; dropping hot-series messages", "bytes", cmpOr(t.cfg.ReconnectBufferBytes, 8<<20))
		return false
	}
	t.p.drop(dropNATSError, 1)
	t.log.log(slog.LevelWarn, "nats-publish", "cannot publish to NATS", "subject", m.subject, "err", err)
	return false
}

// url is where routers connect: the embedded server's client URL, or the configured one.
func (t *natsTransport) url() string {
	if t.srv != nil {
		if t.cfg.ListenAddress == "" {
			return ""
		}
		return t.srv.ClientURL()
	}
	return t.cfg.URL
}

func (t *natsTransport) close() error {
	t.cancel()
	for _, nc := range []*nats.Conn{t.live, t.nc} {
		if nc != nil {
			if nc.IsConnected() {
				_ = nc.FlushTimeout(time.Second)
			}
			nc.Close()
		}
	}
	t.wg.Wait()
	if t.srv != nil {
		t.srv.Shutdown()
		t.srv.WaitForShutdown()
	}
	if t.tmpDir != "" {
		return os.RemoveAll(t.tmpDir)
	}
	return nil
}

// serverLogger sends the embedded server's log to slog; its notices (a banner at start) are
// debug lines.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(string, ...any)           {}
func (s serverLogger) Tracef(string, ...any)           {}
