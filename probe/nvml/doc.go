// Package nvml collects NVIDIA GPU telemetry through NVML (go-nvml) under dcgm-exporter's
// metric and label names, so dashboards and rules written for dcgm-exporter work on the
// probe's series unchanged, and feeds XID events from an NVML event set into an xid.Tracker.
//
// Every series carries dcgm-exporter's GPU labels: gpu (index), UUID, device (nvidia<minor>),
// modelName, pci_bus_id, Hostname, and DCGM_FI_DRIVER_VERSION (dcgm-exporter's label-type
// field). Units are dcgm-exporter's: MiB for framebuffer, W for power, mJ for energy, MHz for
// clocks, bytes/s for PCIe throughput, ns for violation time.
//
// NVML needs cgo: with CGO_ENABLED=0 (or off Linux) the package builds a collector that
// reports the source unavailable. With cgo, a node without libnvidia-ml.so.1
// (nvml.Init returns ERROR_LIBRARY_NOT_FOUND) gets the same: the collector says so once and
// stays off; the probe never fails for it.
//
// Goroutines: Collect runs on the probe's collection loop and reads PCIe throughput of all
// GPUs concurrently (NVML blocks 20 ms per read); Run waits on the event set, one second per
// call, until its context ends. Both share the device list, built once by whichever runs first.
package nvml
