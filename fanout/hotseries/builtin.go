package hotseries

// builtinGroup returns a fresh copy of a built-in group.
func builtinGroup(name string) (GroupConfig, bool) {
	switch name {
	case "routing":
		return routingGroup(), true
	case "network":
		return networkGroup(), true
	case "hardware":
		return hardwareGroup(), true
	}
	return GroupConfig{}, false
}

func src(names ...string) SourceConfig { return SourceConfig{Metrics: names} }

func counterRatio(num, den string) SourceConfig {
	return SourceConfig{Ratio: []string{num, den}, Counters: true}
}

// routingGroup is what a router scores endpoints by: engine queue, running requests, KV-cache
// use, prefix-cache hit rate and mean TTFT/ITL, for vLLM (current and pre-0.9/0.11 names)
// and SGLang. One message per inference server pod.
func routingGroup() GroupConfig {
	return GroupConfig{
		Name:           "routing",
		Selectors:      []string{`{__name__=~"vllm:.+|sglang:.+"}`},
		EndpointLabels: []string{"namespace", "pod"},
		ModelLabel:     "model_name",
		InfoLabels:     []string{"instance", "node"},
		NATSSubject:    RoutingSubject,
		Fields: map[string]FieldConfig{
			// Requests waiting in the engine's queue, summed over data-parallel engines.
			"num_requests_waiting": {Sources: []SourceConfig{src("vllm:num_requests_waiting"), src("sglang:num_queue_reqs")}, Aggregate: AggSum},
			// Requests being processed.
			"num_requests_running": {Sources: []SourceConfig{src("vllm:num_requests_running"), src("sglang:num_running_reqs")}, Aggregate: AggSum},
			// KV-cache (token pool) use, 0..1, the fullest engine.
			"kv_cache_usage": {Sources: []SourceConfig{src("vllm:kv_cache_usage_perc"), src("vllm:gpu_cache_usage_perc"), src("sglang:token_usage")}, Aggregate: AggMax},
			// Prefix-cache hit rate, 0..1, over the last two samples of the hit and query counters.
			"prefix_cache_hit_rate": {Sources: []SourceConfig{
				counterRatio("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
				counterRatio("vllm:prefix_cache_hits", "vllm:prefix_cache_queries"),
				counterRatio("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
				src("sglang:cache_hit_rate"),
			}},
			// Mean time to first token, seconds, of the requests finished between the last two samples.
			"ttft_seconds": {Sources: []SourceConfig{
				counterRatio("vllm:time_to_first_token_seconds_sum", "vllm:time_to_first_token_seconds_count"),
				counterRatio("sglang:time_to_first_token_seconds_sum", "sglang:time_to_first_token_seconds_count"),
			}},
			// Mean inter-token latency, seconds.
			"itl_seconds": {Sources: []SourceConfig{
				counterRatio("vllm:inter_token_latency_seconds_sum", "vllm:inter_token_latency_seconds_count"),
				counterRatio("vllm:time_per_output_token_seconds_sum", "vllm:time_per_output_token_seconds_count"),
				counterRatio("sglang:inter_token_latency_seconds_sum", "sglang:inter_token_latency_seconds_count"),
				counterRatio("sglang:time_per_output_token_seconds_sum", "sglang:time_per_output_token_seconds_count"),
			}},
		},
	}
}

// networkGroup is per node: RDMA and NIC receive and transmit rates, nominal capacity and
// what remains of it, per device and summed, for weight-distribution and KV-transfer
// decisions. It reads the probe's series (probe/netdev: node_exporter's node_infiniband_* and
// node_network_* names plus eagle_eye_network_*), labelled with the probe's node label.
func networkGroup() GroupConfig {
	capacity := src("node_infiniband_rate_bytes_per_second", "node_network_speed_bytes")
	return GroupConfig{
		Name:           "network",
		Selectors:      []string{`{__name__=~"eagle_eye_network_.+|node_infiniband_.+|node_network_.+"}`},
		EndpointLabels: []string{"node"},
		DeviceLabel:    "device",
		NATSSubject:    "eagle_eye.network_metrics",
		Fields: map[string]FieldConfig{
			// Bytes per second, the probe's own rates first, else rates of the byte counters.
			"rx_bytes_per_second": {Sources: []SourceConfig{
				src("eagle_eye_network_receive_bytes_per_second"),
				{Rate: Names{"node_infiniband_port_data_received_bytes_total", "node_network_receive_bytes_total"}},
			}, Aggregate: AggSum, PerDevice: true},
			"tx_bytes_per_second": {Sources: []SourceConfig{
				src("eagle_eye_network_transmit_bytes_per_second"),
				{Rate: Names{"node_infiniband_port_data_transmitted_bytes_total", "node_network_transmit_bytes_total"}},
			}, Aggregate: AggSum, PerDevice: true},
			// Nominal link rate (bytes/s): the static capability of the node's links.
			"capacity_bytes_per_second": {Sources: []SourceConfig{capacity}, Aggregate: AggSum, PerDevice: true},
			// Bandwidth left: link rate minus the busier direction, 0 for a link that is down.
			"available_bytes_per_second": {Sources: []SourceConfig{src("eagle_eye_network_remaining_bandwidth_bytes_per_second")}, Aggregate: AggSum, PerDevice: true},
			// Capacity minus the current rate per direction, floored at 0.
			"rx_available_bytes_per_second": {Sources: []SourceConfig{capacity}, Aggregate: AggSum, PerDevice: true, Subtract: "rx_bytes_per_second"},
			"tx_available_bytes_per_second": {Sources: []SourceConfig{capacity}, Aggregate: AggSum, PerDevice: true, Subtract: "tx_bytes_per_second"},
			// Links (InfiniBand ports and NICs) reporting a rate.
			"links": {Sources: []SourceConfig{capacity}, Aggregate: AggCount},
		},
	}
}

// hardwareGroup is per node (the probe's node label, which its engine series carry too, so a
// router joins it to routing messages by labels.node): device count, compute, memory and
// memory-bandwidth utilisation (average, maximum and per device), temperature, power,
// reachability and a health flag, from dcgm-exporter's names as the probe writes them.
func hardwareGroup() GroupConfig {
	return GroupConfig{
		Name:           "hardware",
		Selectors:      []string{`{__name__=~"DCGM_.+|eagle_eye_gpu_reachable"}`},
		EndpointLabels: []string{"node"},
		InfoLabels:     []string{"modelName", "Hostname", "hostname", "DCGM_FI_DRIVER_VERSION"},
		DeviceLabel:    "gpu",
		NATSSubject:    "eagle_eye.hardware_metrics",
		Fields: map[string]FieldConfig{
			"device_count": {Sources: []SourceConfig{src("DCGM_FI_DEV_GPU_UTIL"), src("DCGM_FI_DEV_FB_USED")}, Aggregate: AggCount},
			// Compute utilisation, percent.
			"gpu_util":     {Sources: []SourceConfig{src("DCGM_FI_DEV_GPU_UTIL")}, Aggregate: AggAvg, PerDevice: true},
			"gpu_util_max": {Sources: []SourceConfig{src("DCGM_FI_DEV_GPU_UTIL")}, Aggregate: AggMax},
			// Memory-bandwidth utilisation, percent.
			"mem_copy_util":     {Sources: []SourceConfig{src("DCGM_FI_DEV_MEM_COPY_UTIL")}, Aggregate: AggAvg, PerDevice: true},
			"mem_copy_util_max": {Sources: []SourceConfig{src("DCGM_FI_DEV_MEM_COPY_UTIL")}, Aggregate: AggMax},
			// Memory (framebuffer) utilisation, 0..1: used / (used + free).
			"fb_used_ratio": {Sources: []SourceConfig{{Ratio: []string{"DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}}}, PerDevice: true},
			"gpu_temp_max":  {Sources: []SourceConfig{src("DCGM_FI_DEV_GPU_TEMP")}, Aggregate: AggMax},
			"power_watts":   {Sources: []SourceConfig{src("DCGM_FI_DEV_POWER_USAGE")}, Aggregate: AggSum},
			// Value of the last XID error seen on any device (0: none).
			"xid_last": {Sources: []SourceConfig{src("DCGM_FI_DEV_XID_ERRORS")}, Aggregate: AggMax, PerDevice: true},
			// GPUs answering NVML (the probe's eagle_eye_gpu_reachable; a lost GPU reports 0 and
			// nothing else, so it is not in device_count).
			"devices_reachable": {Sources: []SourceConfig{src("eagle_eye_gpu_reachable")}, Aggregate: AggSum, PerDevice: true},
			// 1 when no device reports a row-remap failure or a volatile double-bit ECC error.
			"healthy": {Sources: []SourceConfig{src("DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")}, Aggregate: AggAllZero, PerDevice: true},
		},
	}
}
