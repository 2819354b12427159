// Package router is what an intelligent router imports to follow Eagle Eye's hot series:
// the typed message, and a Watcher that reads every endpoint's current state from the
// JetStream KV bucket and then follows each update, with no gap between the two.
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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

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
	// Buffer is the Updates channel's capacity (1024 when 0). A router that does not keep
	// up holds up its own Watcher only.
	Buffer int
}

// Watcher follows one group's endpoints through the KV bucket.
type Watcher struct {
	kw        jetstream.KeyWatcher
	snapshot  []Message
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
	kw, err := kv.Watch(wctx, opts.Group+".>")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s in %s: %w", opts.Group, opts.Bucket, err)
	}
	w := &Watcher{kw: kw, updates: make(chan Message, cmp(opts.Buffer, 1024)), cancel: cancel, done: make(chan struct{})}
	// Initial values, up to the nil entry that ends them.
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-wctx.Done():
			w.Stop()
			return nil, wctx.Err()
		case e, ok = <-kw.Updates():
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
		}
	}
	w.following = true
	go w.follow(wctx)
	return w, nil
}

func cmp(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (w *Watcher) follow(ctx context.Context) {
	defer close(w.done)
	defer close(w.updates)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.kw.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			m, err := Decode(e.Value())
			if err != nil {
				if e.Operation() == jetstream.KeyValuePut {
					continue
				}
				m = Message{SchemaVersion: SchemaVersion, Key: e.Key(), Status: StatusRemoved}
			}
			if e.Operation() != jetstream.KeyValuePut {
				m.Status = StatusRemoved
			}
			select {
			case w.updates <- m:
			case <-ctx.Done():
				return
			}
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
		err = w.kw.Stop()
		if w.following {
			<-w.done
		}
	})
	return err
}
