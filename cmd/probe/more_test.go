package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/node"
)

func testFlags() Flags {
	return Flags{
		GatewayURL: "http://127.0.0.1:9095/api/v1/write", Protocol: "2.0", Interval: time.Second,
		BufferSamples: 1000, MaxBackoff: time.Second, EngineInterval: time.Second, Labels: []string{"node=test"},
		ProcfsPath: "../../probe/node/testdata/proc", Node: true, NodeExclude: node.DefaultExclude,
		Ascend: true, NPUSmi: "npu-smi-absent-here", HCCNTool: "hccn_tool", AscendTimeout: 2 * time.Second,
	}
}

// TestNodeAndAscendWiring: --path.procfs reaches the node collector, the Ascend collector runs
// every 5 s.
func TestNodeAndAscendWiring(t *testing.T) {
	f := testFlags()
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	got, err := buildMore(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]probe.Scheduled{}
	for _, s := range got {
		byName[s.Name] = s
	}
	if byName["ascend"].Interval != 5*time.Second {
		t.Errorf("ascend interval %v", byName["ascend"].Interval)
	}
	n, ok := byName["node"]
	if !ok {
		t.Fatalf("no node collector in %v", got)
	}
	a := probe.NewAppender(time.Now())
	if err := n.Collector.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	var load float64
	for _, s := range a.Series() {
		if s.Name() == "eagle_eye_node_load1" {
			load = s.Samples[0].V
		}
	}
	if load != 3.52 {
		t.Errorf("eagle_eye_node_load1 = %v from the fixture procfs, want 3.52", load)
	}
}

func TestConfigRejects(t *testing.T) {
	f := testFlags()
	f.NodeExclude = "(veth"
	f.AscendTimeout = 0
	_, err := f.config()
	if err == nil || !strings.Contains(err.Error(), "--node.netdev-exclude") || !strings.Contains(err.Error(), "--ascend.command-timeout") {
		t.Errorf("err = %v", err)
	}
}
