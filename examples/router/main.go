// Command router is a minimal intelligent router on Eagle Eye's hot series: it reads every
// endpoint's current state from the gateway's NATS KV bucket, then follows the updates and,
// after each one, prints the endpoint it would send the next request to. It scores like the
// Gateway API Inference Extension's saturation detector, max(waiting/5, kv_cache_usage/0.8),
// and never picks a stale or removed endpoint.
//
//	go run ./examples/router --nats.url nats://127.0.0.1:4222
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eagle-eye-ai/eagle-eye/router"
)

func main() {
	url := flag.String("nats.url", "nats://127.0.0.1:4222", "the gateway's NATS server")
	group := flag.String("group", "routing", "hot-series group to follow")
	bucket := flag.String("bucket", router.DefaultBucket, "JetStream KV bucket")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *url, *group, *bucket); err != nil {
		slog.Error("router", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, group, bucket string) error {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	w, err := router.Watch(ctx, nc, router.Options{Bucket: bucket, Group: group})
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()

	table := map[string]router.Message{}
	for _, m := range w.Snapshot() {
		table[m.Key] = m
	}
	fmt.Printf("%d endpoints in group %s at start\n", len(table), group)
	for _, k := range slices.Sorted(maps.Keys(table)) {
		m := table[k]
		fmt.Printf("  %-50s %-6s %v\n", k, m.Status, m.Metrics)
	}
	for m := range w.Updates() {
		if m.Status == router.StatusRemoved {
			delete(table, m.Key)
		} else {
			table[m.Key] = m
		}
		best, score, n := pick(table)
		age := time.Since(time.UnixMilli(m.PublishTimestamp))
		if best == "" {
			fmt.Printf("seq %-8d %-45s %-7s age %-8s -> no endpoint can take work\n", m.Seq, m.Key, m.Status, age.Round(time.Microsecond))
			continue
		}
		fmt.Printf("seq %-8d %-45s %-7s age %-8s -> next request to %s (score %.2f of %d)\n", m.Seq, m.Key, m.Status, age.Round(time.Microsecond), best, score, n)
	}
	return nil
}

// pick returns the least saturated fresh endpoint, its score and how many were candidates.
func pick(table map[string]router.Message) (string, float64, int) {
	best, bestScore, n := "", 0.0, 0
	for k, m := range table {
		waiting, okW := m.Metrics["num_requests_waiting"]
		kv, okK := m.Metrics["kv_cache_usage"]
		if m.Status != router.StatusFresh || (!okW && !okK) {
			continue // stale or unknown load counts as saturated
		}
		s := max(waiting/5, kv/0.8)
		n++
		if best == "" || s < bestScore || (s == bestScore && k < best) {
			best, bestScore = k, s
		}
	}
	return best, bestScore, n
}
