// Package router is what an intelligent router imports to follow Eagle Eye's hot series:
// the typed message, and a Watcher that reads every endpoint's current state from the
// JetStream KV bucket and then follows the live subject, with no gap between the two.
//
// A router that only needs the live feed subscribes to the subject
// (eagle_eye.routing_metrics) with Subscribe; one that must know every endpoint at once,
// also after a restart, uses Watch. Both decode the same JSON (docs/hot-series.md).
//
//	nc, _ := nats.Connect("nats://127.0.0.1:4222")
//	w, err := router.Watch(ctx, nc, router.Options{Group: "routing"})
//	for _, m := range w.Snapshot() { table[m.Key] = m }
//	for m := range w.Updates() { table[m.Key] = m }
//
// The package depends on nats.go only; it does not import the gateway.
package router

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Statuses of a message.
const (
	// StatusFresh: the endpoint reported within the group's stale_after.
	StatusFresh = "fresh"
	// StatusStale: the endpoint stopped reporting; metrics hold the last known values. Treat
	// it as saturated, or skip it.
	StatusStale = "stale"
	// StatusRemoved: the endpoint has been silent for long and is forgotten; metrics is empty.
	StatusRemoved = "removed"
)

// Defaults, as the gateway uses them.
const (
	DefaultBucket  = "eagle_eye_hot_series"
	RoutingSubject = "eagle_eye.routing_metrics"
	SchemaVersion  = 1
)

// Message is one endpoint's state, as published.
type Message struct {
	SchemaVersion int    `json:"schema_version"`
	Group         string `json:"group"`
	// Key is the endpoint's key in the KV bucket, <group>.<escaped endpoint label values>.
	Key    string `json:"key"`
	Status string `json:"status"`
	// Publisher identifies the publishing process; Seq counts its messages of this group,
	// from 1, without gaps (a gap means lost messages, a new Publisher a restart).
	Publisher string `json:"publisher"`
	Seq       uint64 `json:"seq"`
	// Endpoint is the identity: the group's endpoint labels (e.g. namespace, pod).
	Endpoint map[string]string `json:"endpoint"`
	Model    string            `json:"model,omitempty"`
	// Labels are static capabilities (instance, GPU model, driver, link layer...).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are set by other gateway components: in the hardware group, the diagnosis
	// of the node's devices (health, pattern, severity, router_action, report_id).
	Annotations map[string]string `json:"annotations,omitempty"`
	// Metrics are the group's fields that have data; the others are listed in Missing.
	Metrics map[string]float64 `json:"metrics"`
	// Devices holds per-device fields by device id (gpu index, NIC), for groups with one.
	Devices map[string]map[string]float64 `json:"devices,omitempty"`
	Missing []string                      `json:"missing,omitempty"`
	// SampleTimestamp is the newest sample's timestamp, PublishTimestamp when the message was
	// built; both Unix milliseconds.
	SampleTimestamp  int64 `json:"sample_timestamp"`
	PublishTimestamp int64 `json:"publish_timestamp"`
}

// Decode parses one message.
func Decode(data []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(data, &m); err != nil {
		return Message{}, fmt.Errorf("hot-series message: %w", err)
	}
	if m.SchemaVersion != SchemaVersion {
		return m, fmt.Errorf("hot-series message: schema_version %d, this package reads %d", m.SchemaVersion, SchemaVersion)
	}
	return m, nil
}

// Subscribe calls fn for every message published on subject (RoutingSubject, or
// eagle_eye.hot.> for every group). fn runs on the subscription's goroutine; messages that
// do not decode are skipped.
func Subscribe(nc *nats.Conn, subject string, fn func(Message)) (*nats.Subscription, error) {
	return nc.Subscribe(subject, func(msg *nats.Msg) {
		if m, err := Decode(msg.Data); err == nil {
			fn(m)
		}
	})
}

// Options select what a Watcher follows.
type Options struct {
	// Bucket is the KV bucket (DefaultBucket when empty).
	Bucket string
	// Group is the group to follow (routing when empty).
	Group string
	// Subject is where the group's messages are published live: by default the built-in
	// groups' subjects (RoutingSubject, eagle_eye.network_metrics, eagle_eye.hardware_metrics)
	// and eagle_eye.hot.<group> for others. A group whose subject template names
	// {endpoint} or {model} needs a wildcard here, e.g. eagle_eye.hot.mygroup.>.
	Subject string
	// Buffer is the Updates channel's capacity (1024 when 0). A router that does not keep
	// up holds up its own Watcher only.
	Buffer int
}

// DefaultSubject is the live subject of a group as the gateway publishes it by default.
func DefaultSubject(group string) string {
	switch group {
	case "routing", "":
		return RoutingSubject
	case "network":
		return "eagle_eye.network_metrics"
	case "hardware":
		return "eagle_eye.hardware_metrics"
	}
	return "eagle_eye.hot." + group
}

// Watcher follows one group's endpoints: their state in the KV bucket when it starts, then
// every message. The gateway publishes each message on the group's subject at once and
// rewrites an endpoint's KV entry at most every kv_update_interval (1 s by default), so the
// Watcher reads both and delivers, per endpoint, only what is newer than what it delivered
// before: live messages as they come, and a KV entry only when it carries a message the
// live feed missed (one published just before the Watcher subscribed, or lost while the
// connection was down).
type Watcher struct {
	group     string
	kw        jetstream.KeyWatcher
	sub       *nats.Subscription
	live      chan *nats.Msg
	snapshot  []Message
	last      map[string]Message // per key, the newest message delivered (or in the snapshot)
	pruned    int64              // when tombstones were last pruned, ms
	updates   chan Message
	cancel    context.CancelFunc
	done      chan struct{}
	once      sync.Once
	following bool
}

// ErrNoBucket is returned by Watch when the bucket does not exist yet (the gateway has not
// started); retry later.
var ErrNoBucket = errors.New("hot-series KV bucket not found")

// Watch reads the current state of every endpoint of the group and returns once it has all
// of it (Snapshot); Updates then delivers every later message, stale and removed ones
// included, until ctx ends or Stop is called.
func Watch(ctx context.Context, nc *nats.Conn, opts Options) (*Watcher, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Group == "" {
		opts.Group = "routing"
	}
	if opts.Subject == "" {
		opts.Subject = DefaultSubject(opts.Group)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, opts.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoBucket, opts.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("hot-series bucket %s: %w", opts.Bucket, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	buf := cmp.Or(max(opts.Buffer, 0), 1024)
	w := &Watcher{group: opts.Group, live: make(chan *nats.Msg, buf), last: map[string]Message{},
		updates: make(chan Message, buf), cancel: cancel, done: make(chan struct{})}
	// Live first, so that nothing published while the snapshot is read is missed.
	if w.sub, err = nc.ChanSubscribe(opts.Subject, w.live); err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe %s: %w", opts.Subject, err)
	}
	flush := func() error { return nc.FlushTimeout(10 * time.Second) }
	if _, ok := wctx.Deadline(); ok {
		flush = func() error { return nc.FlushWithContext(wctx) }
	}
	if err := flush(); err != nil {
		w.Stop()
		return nil, fmt.Errorf("subscribe %s: %w", opts.Subject, err)
	}
	if w.kw, err = kv.Watch(wctx, opts.Group+".>"); err != nil {
		w.Stop()
		return nil, fmt.Errorf("watch %s in %s: %w", opts.Group, opts.Bucket, err)
	}
	// Initial values, up to the nil entry that ends them.
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-wctx.Done():
			w.Stop()
			return nil, wctx.Err()
		case e, ok = <-w.kw.Updates():
		}
		if !ok {
			w.Stop()
			return nil, errors.New("hot-series watch ended before the snapshot was read")
		}
		if e == nil {
			break
		}
		if e.Operation() != jetstream.KeyValuePut {
			continue // deleted: not a current endpoint
		}
		if m, err := Decode(e.Value()); err == nil {
			w.snapshot = append(w.snapshot, m)
			w.last[m.Key] = m
		}
	}
	w.following = true
	go w.follow(wctx)
	return w, nil
}

// newer reports whether m supersedes prev, the last message delivered for its key: a later
// sequence number from the same publisher, or, from another publisher (the gateway
// restarted, or a second one), a later publish time.
func newer(m, prev Message) bool {
	if m.Publisher == prev.Publisher {
		return m.Seq > prev.Seq
	}
	return m.PublishTimestamp >= prev.PublishTimestamp
}

func (w *Watcher) follow(ctx context.Context) {
	defer close(w.done)
	defer close(w.updates)
	for {
		var m Message
		select {
		case <-ctx.Done():
			return
		case msg := <-w.live:
			var err error
			if m, err = Decode(msg.Data); err != nil || m.Group != w.group {
				continue
			}
		case e, ok := <-w.kw.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			var err error
			m, err = Decode(e.Value())
			if err != nil {
				if e.Operation() == jetstream.KeyValuePut {
					continue
				}
				if prev, ok := w.last[e.Key()]; ok && prev.Status == StatusRemoved {
					continue
				}
				m = Message{SchemaVersion: SchemaVersion, Group: w.group, Key: e.Key()}
			}
			if e.Operation() != jetstream.KeyValuePut {
				m.Status = StatusRemoved
			}
		}
		if prev, ok := w.last[m.Key]; ok && m.Publisher != "" && !newer(m, prev) {
			continue
		}
		if m.Status == StatusRemoved {
			// A tombstone, so that the KV delete following the live message is not
			// delivered again; dropped once old (see prune).
			w.last[m.Key] = Message{Status: StatusRemoved, Publisher: m.Publisher, Seq: m.Seq, PublishTimestamp: m.PublishTimestamp}
			w.prune(m.PublishTimestamp)
		} else {
			w.last[m.Key] = m
		}
		select {
		case w.updates <- m:
		case <-ctx.Done():
			return
		}
	}
}

// tombstoneAge is how long a removed endpoint's tombstone is kept: far longer than a KV
// entry can lag behind the live feed.
const tombstoneAge = 10 * 60 * 1000 // ms

// prune drops tombstones older than tombstoneAge, at most once per tombstoneAge/10, so that
// a router watching a fleet with churning endpoints does not grow without bound.
func (w *Watcher) prune(nowMS int64) {
	if nowMS-w.pruned < tombstoneAge/10 {
		return
	}
	w.pruned = nowMS
	for k, m := range w.last {
		if m.Status == StatusRemoved && nowMS-m.PublishTimestamp > tombstoneAge {
			delete(w.last, k)
		}
	}
}

// Snapshot is every endpoint's state when Watch returned.
func (w *Watcher) Snapshot() []Message { return w.snapshot }

// Updates delivers the messages after the snapshot; it is closed when the Watcher stops.
func (w *Watcher) Updates() <-chan Message { return w.updates }

// Stop ends the watch and waits for it to finish.
func (w *Watcher) Stop() error {
	var err error
	w.once.Do(func() {
		w.cancel()
		if w.sub != nil {
			err = w.sub.Unsubscribe()
		}
		if w.kw != nil {
			err = errors.Join(err, w.kw.Stop())
		}
		if w.following {
			<-w.done
		}
	})
	return err
}
