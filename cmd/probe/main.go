// Command probe is the Eagle Eye node probe: it reads the node's GPUs (NVML), the kernel log
// (XIDs), Ascend NPUs (npu-smi), inference engines' /metrics and RDMA/NIC counters, and
// remote-writes everything to the gateway every second. With --simulate it makes up a
// synthetic fleet instead, for demos and tests.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"

	"github.com/eagle-eye-ai/eagle-eye/probe/node"
)

// Flags holds the command line.
type Flags struct {
	GatewayURL     string
	Protocol       string
	Interval       time.Duration
	BufferSamples  int
	GatewayTimeout time.Duration
	MaxBackoff     time.Duration
	FlushTimeout   time.Duration
	Labels         []string
	ListenAddress  string
	SysfsPath      string
	ProcfsPath     string
	KmsgPath       string
	NVML           bool
	NVMLLibrary    string
	Kmsg           bool
	Netdev         bool
	Node           bool
	NodeExclude    string
	Ascend         bool
	NPUSmi         string
	HCCNTool       string
	AscendTimeout  time.Duration
	Engine         bool
	EngineTargets  []string
	EngineInterval time.Duration
	EngineTimeout  time.Duration
	KubeletURL     string
	Simulate       bool
	SimNodes       int
	SimGPUs        int
	SimEngines     int
	SimNPUNodes    int
	SimFaults      []string
	LogLevel       string
	LogFormat      string
}

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli parses args, runs the probe until SIGINT/SIGTERM and returns the exit code.
func cli(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("probe", "Eagle Eye probe: one per node. Collects NVIDIA GPU telemetry (NVML, dcgm-exporter names), XID errors (NVML events and the kernel log), Ascend NPU state (npu-smi, hccn_tool), inference-engine metrics (vLLM, SGLang, any Prometheus endpoint), RDMA/NIC counters and node load and memory (procfs), and remote-writes them to the gateway every interval. A collector whose device or library is absent says so once and stays off. --simulate replaces every collector with a synthetic fleet.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(version.Print("probe"))
	exitCode := -1
	app.Terminate(func(code int) { exitCode = code })

	var f Flags
	app.Flag("gateway.url", "Remote-write URL of the gateway (or any remote-write receiver).").
		Default("http://localhost:9095/api/v1/write").StringVar(&f.GatewayURL)
	app.Flag("gateway.protocol", "Remote-write protocol: 1.0 (prometheus.WriteRequest) or 2.0 (io.prometheus.write.v2.Request).").
		Default("2.0").EnumVar(&f.Protocol, "1.0", "2.0", "1", "2")
	app.Flag("probe.interval", "Collection and send interval: every collector runs this often (engines at --engine.interval) and everything collected in one interval goes out as one request.").
		Default("1s").DurationVar(&f.Interval)
	app.Flag("gateway.buffer-samples", "Most samples kept in memory while the gateway is unreachable; beyond it the oldest are dropped and counted (eagle_eye_probe_samples_dropped_total{reason=\"buffer_full\"}). About 100 bytes each once encoded and compressed, less with RW 2.0.").
		Default("1000000").IntVar(&f.BufferSamples)
	app.Flag("gateway.timeout", "Timeout of one remote-write request.").
		Default("10s").DurationVar(&f.GatewayTimeout)
	app.Flag("gateway.max-backoff", "Longest wait between retries of a failed request (network error, 5xx, 429); the wait doubles from 100ms. A Retry-After from the gateway is honoured up to one minute.").
		Default("5s").DurationVar(&f.MaxBackoff)
	app.Flag("gateway.flush-timeout", "On SIGTERM, how long the probe may spend sending what it still buffers, once.").
		Default("5s").DurationVar(&f.FlushTimeout)
	app.Flag("label", "External label NAME=VALUE added to every series that does not already carry NAME; repeatable. node defaults to the hostname.").
		PlaceHolder("node=gpu-node-1").StringsVar(&f.Labels)
	app.Flag("web.listen-address", "Address of the probe's own HTTP server: self-metrics at /metrics, health at /-/healthy. Empty disables it.").
		Default(":9101").StringVar(&f.ListenAddress)
	app.Flag("path.sysfs", "sysfs mount point (InfiniBand and network counters are read under it).").
		Default("/sys").StringVar(&f.SysfsPath)
	app.Flag("path.procfs", "procfs mount point (load, memory and network interface counters are read under it by --collector.node).").
		Default("/proc").StringVar(&f.ProcfsPath)
	app.Flag("path.kmsg", "Kernel log to follow for NVIDIA XIDs: /dev/kmsg (records since boot, then new ones) or a text file such as /var/log/kern.log (read, then followed).").
		Default("/dev/kmsg").StringVar(&f.KmsgPath)
	app.Flag("collector.nvml", "Collect NVIDIA GPU telemetry and XID events through NVML (needs libnvidia-ml.so.1).").
		Default("true").BoolVar(&f.NVML)
	app.Flag("nvml.library-path", "Path of libnvidia-ml.so.1; the dynamic loader's search path when empty.").
		StringVar(&f.NVMLLibrary)
	app.Flag("collector.kmsg", "Follow the kernel log (--path.kmsg) for NVIDIA XID lines.").
		Default("true").BoolVar(&f.Kmsg)
	app.Flag("collector.netdev", "Collect InfiniBand/RoCE port counters and NIC byte counters from sysfs, with rates and remaining bandwidth.").
		Default("true").BoolVar(&f.Netdev)
	app.Flag("collector.node", "Collect node context from --path.procfs: load averages (loadavg), total and available memory and hugepages (meminfo), and byte, error and drop counters of every interface in net/dev (bonds and VLANs included; needs the host network namespace).").
		Default("true").BoolVar(&f.Node)
	app.Flag("node.netdev-exclude", "Regular expression of interfaces in <procfs>/net/dev that --collector.node leaves out; empty keeps every interface.").
		Default(node.DefaultExclude).StringVar(&f.NodeExclude)
	app.Flag("collector.ascend", "Collect Ascend NPU state every 5s: npu-smi info (health, power, temperature, AICore, memory), npu-smi info -t ecc / -t health per chip (HBM ECC counters, error codes) and hccn_tool per chip (network and link status).").
		Default("true").BoolVar(&f.Ascend)
	app.Flag("ascend.npu-smi", "npu-smi command (looked up in PATH unless a path).").
		Default("npu-smi").StringVar(&f.NPUSmi)
	app.Flag("ascend.hccn-tool", "hccn_tool command for NPU network and link status (looked up in PATH unless a path); '-' reads neither.").
		Default("hccn_tool").StringVar(&f.HCCNTool)
	app.Flag("ascend.command-timeout", "Timeout of each npu-smi and hccn_tool run: a status read that takes longer reports -1 (unknown), and the command is not started again for that chip until it has exited (a wedged driver can block it).").
		Default("2s").DurationVar(&f.AscendTimeout)
	app.Flag("collector.engine", "Scrape inference engines (--engine.target, --engine.kubelet-url).").
		Default("true").BoolVar(&f.Engine)
	app.Flag("engine.target", "Prometheus text or OpenMetrics endpoint to scrape, e.g. http://127.0.0.1:8000/metrics (vLLM), http://127.0.0.1:30000/metrics (SGLang); repeatable. Optional labels after '#': URL#job=vllm,model=llama.").
		PlaceHolder("URL").StringsVar(&f.EngineTargets)
	app.Flag("engine.interval", "Scrape interval of engine targets; 100ms or more.").
		Default("1s").DurationVar(&f.EngineInterval)
	app.Flag("engine.timeout", "Timeout of one engine scrape; the engine interval when zero.").
		Default("0s").DurationVar(&f.EngineTimeout)
	app.Flag("engine.kubelet-url", "Kubelet /pods URL (e.g. https://127.0.0.1:10250/pods) to discover this node's pods annotated prometheus.io/scrape=true (port, path, scheme annotations as Prometheus' convention). Empty disables discovery.").
		StringVar(&f.KubeletURL)
	app.Flag("simulate", "Make up a synthetic fleet instead of reading this node: NVIDIA nodes, one Ascend node, vLLM and SGLang engines, InfiniBand ports, with scripted faults. Every node reports eagle_eye_probe_simulated 1.").
		BoolVar(&f.Simulate)
	app.Flag("simulate.nodes", "Synthetic NVIDIA nodes.").Default("3").IntVar(&f.SimNodes)
	app.Flag("simulate.gpus-per-node", "GPUs per synthetic NVIDIA node.").Default("8").IntVar(&f.SimGPUs)
	app.Flag("simulate.engines-per-node", "Engines per synthetic NVIDIA node, alternately vLLM and SGLang.").Default("4").IntVar(&f.SimEngines)
	app.Flag("simulate.npu-nodes", "Synthetic Ascend nodes (8 NPUs each); 0 for none.").Default("1").IntVar(&f.SimNPUNodes)
	app.Flag("simulate.fault", "Scripted fault KIND@NODE[/TARGET]@OFFSET[+DURATION]; repeatable. Kinds: xidNN (xid79 takes the GPU off the bus), dbe_storm, thermal, kv_saturation, engine_stall, link_down (an InfiniBand port, or an NPU's link with an npu-N target), npu_fault, npu_link_down. Targets: gpu-N, engine-N, npu-N, mlx5_N/PORT. Example: xid79@node-1/gpu-3@30s, kv_saturation@node-0/engine-0@1m+2m.").
		PlaceHolder("xid79@node-1/gpu-3@30s").StringsVar(&f.SimFaults)
	app.Flag("log.level", "Only log messages of this severity or above: debug, info, warn, error.").
		Default("info").EnumVar(&f.LogLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Log format: logfmt or json.").
		Default("logfmt").EnumVar(&f.LogFormat, "logfmt", "json")

	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 2
	}
	if exitCode >= 0 {
		return exitCode
	}
	logger := newLogger(f.LogLevel, f.LogFormat, stderr)
	cfg, err := f.config()
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger, nil); err != nil {
		logger.Error("probe stopped with an error", "err", err)
		return 1
	}
	return 0
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	lvl := promslog.NewLevel()
	_ = lvl.Set(level)
	fmtv := promslog.NewFormat()
	_ = fmtv.Set(format)
	return promslog.New(&promslog.Config{Level: lvl, Format: fmtv, Writer: w})
}

// parseLabels reads NAME=VALUE pairs.
func parseLabels(in []string) ([][2]string, error) {
	var out [][2]string
	for _, s := range in {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" || k == "__name__" {
			return nil, fmt.Errorf("--label %q: want NAME=VALUE", s)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}
