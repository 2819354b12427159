package main

import (
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/ascend"
	"github.com/eagle-eye-ai/eagle-eye/probe/engine"
	"github.com/eagle-eye-ai/eagle-eye/probe/netdev"
	"github.com/eagle-eye-ai/eagle-eye/probe/node"
)

// ascendInterval is how often npu-smi and hccn_tool run: npu-smi takes a good part of a
// second per call, there are several per chip, and npu-exporter's default update time is 5 s.
const ascendInterval = 5 * time.Second

// serviceAccountToken is where a pod finds its token for the kubelet.
const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// buildMore makes the engine, network, node and NPU collectors.
func buildMore(cfg *Config, logger *slog.Logger) ([]probe.Scheduled, error) {
	var out []probe.Scheduled
	if cfg.Engine && (len(cfg.EngineTargets) > 0 || cfg.KubeletURL != "") {
		var targets []engine.Target
		for _, s := range cfg.EngineTargets {
			t, err := engine.ParseTarget(s)
			if err != nil {
				return nil, err
			}
			targets = append(targets, t)
		}
		var kl *engine.Kubelet
		if cfg.KubeletURL != "" {
			tok := ""
			if _, err := os.Stat(serviceAccountToken); err == nil {
				tok = serviceAccountToken
			}
			var err error
			kl, err = engine.NewKubelet(engine.KubeletOptions{
				URL: cfg.KubeletURL, TokenFile: tok, InsecureSkipVerify: true,
				Logger: logger.With("collector", "engine"),
			})
			if err != nil {
				return nil, err
			}
		}
		s, err := engine.New(engine.Options{
			Targets: targets, Kubelet: kl, Timeout: cfg.EngineTimeout,
			Logger: logger.With("collector", "engine"),
		})
		if err != nil {
			return nil, err
		}
		out = append(out, probe.Scheduled{Name: "engine", Collector: s, Interval: cfg.EngineInterval})
	}
	if cfg.Netdev {
		out = append(out, probe.Scheduled{Name: "netdev", Collector: netdev.New(cfg.SysfsPath)})
	}
	if cfg.Node {
		exclude := regexp.MustCompile("^$") // empty flag: every interface
		if cfg.NodeExclude != "" {
			exclude = regexp.MustCompile(cfg.NodeExclude) // checked by config
		}
		out = append(out, probe.Scheduled{Name: "node", Collector: node.New(node.Options{Procfs: cfg.ProcfsPath, Exclude: exclude})})
	}
	if cfg.Ascend {
		out = append(out, probe.Scheduled{Name: "ascend", Collector: ascend.New(ascend.Options{
			Command: cfg.NPUSmi, HCCNTool: cfg.HCCNTool, Timeout: cfg.AscendTimeout,
		}), Interval: ascendInterval})
	}
	return out, nil
}
