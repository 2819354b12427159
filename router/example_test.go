package router_test

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/eagle-eye-ai/eagle-eye/router"
)

// A router reads every endpoint's current state, then follows the updates.
func ExampleWatch() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		return
	}
	defer nc.Close()
	ctx := context.Background()
	w, err := router.Watch(ctx, nc, router.Options{Group: "routing"})
	if err != nil {
		return
	}
	defer w.Stop()
	table := map[string]router.Message{}
	for _, m := range w.Snapshot() {
		table[m.Key] = m
	}
	for m := range w.Updates() {
		if m.Status == router.StatusRemoved {
			delete(table, m.Key)
			continue
		}
		table[m.Key] = m
		fmt.Println(m.Endpoint["pod"], m.Metrics["num_requests_waiting"], m.Metrics["kv_cache_usage"])
	}
}

func ExampleDecode() {
	m, err := router.Decode([]byte(`{"schema_version":1,"group":"routing","key":"routing.ns.pod-a","status":"fresh",` +
		`"publisher":"99d40ba6","seq":7,"endpoint":{"namespace":"ns","pod":"pod-a"},"metrics":{"kv_cache_usage":0.42},` +
		`"sample_timestamp":1764000001000,"publish_timestamp":1764000001003}`))
	fmt.Println(m.Endpoint["pod"], m.Metrics["kv_cache_usage"], m.Status, err)
	// Output: pod-a 0.42 fresh <nil>
}
