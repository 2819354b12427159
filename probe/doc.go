// Package probe runs the node probe: it schedules collectors, turns what they append into
// samples labelled with the node's external labels, and remote-writes them to the gateway
// every interval through a bounded, ordered, retrying buffer.
//
// It owns scheduling, the per-collector self-metrics
// (eagle_eye_probe_collector_duration_seconds, eagle_eye_probe_collector_success) and the
// sender. It refuses to know any device: collectors live in subpackages (nvml, kmsg, engine,
// netdev, ascend, simulate) and meet this package through the one-method Collector interface.
//
// Goroutines: Probe.Run starts one loop per collector (each at its own interval), one Run
// goroutine per collector that also implements Runner (event readers), and the sender's
// batcher and shipper. Everything stops when the context ends; the sender then tries once to
// flush what it holds.
//
// Usage:
//
//	snd, _ := probe.NewSender(probe.SenderOptions{Client: client, Interval: time.Second, ...})
//	p, _ := probe.New(probe.Options{Collectors: cs, Sink: snd, ExternalLabels: ls, ...})
//	go snd.Run(ctx)
//	p.Run(ctx)
package probe
