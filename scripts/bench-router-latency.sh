#!/usr/bin/env bash
# Ingest → router latency under load, end to end: the gateway binary with its routing group
# publishing on ingest, cmd/loadgen remote-writing a 100k-series fleet (DCGM and vLLM
# series, 2000 per request). First at full speed for up to 25 s (long enough to include rule
# evaluations and window upkeep), to find the gateway's maximum ingest rate;
# then, on a fresh gateway, at half that rate with a second loadgen as the router
# (--router.probe-only): every 5 ms a tiny vLLM write, timed until its value arrives on
# eagle_eye.routing_metrics over NATS (TCP). Everything listens on 127.0.0.1 only; every run is bounded by --requests and
# --duration.
#
# Environment (all optional):
#   BENCH_DIR  scratch directory (default /tmp/eerouter); its gw-data dir is removed at the end
#   RUNS       repetitions of the half-rate run (default 2)
#   SECONDS_HALF  length of each half-rate run (default 30)
#   PROTOCOL   rw1 or rw2 (default rw2)
#   GATEWAY_ARGS  extra gateway flags, e.g. --no-diagnosis.enabled
#   BUILTIN_GROUPS  the other built-in hot-series groups published (default "network, hardware")
#   GATEWAY_YAML  more top-level gateway configuration, appended to the generated file (e.g.
#              "runtime: {spare_processors: 2}")
#   HALF_RATE  skip the full-speed run and load at this many samples/s (to compare settings at
#              one load)
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/eerouter}
RUNS=${RUNS:-2}
SECONDS_HALF=${SECONDS_HALF:-30}
PROTOCOL=${PROTOCOL:-rw2}
SERIES=${SERIES:-100000}
PER_REQUEST=2000

mkdir -p "$BENCH_DIR/results"
rm -f "$BENCH_DIR"/results/half-run*.txt "$BENCH_DIR"/results/probe-run*.txt
go build -o "$BENCH_DIR/gateway" ./cmd/gateway
go build -o "$BENCH_DIR/loadgen" ./cmd/loadgen

# The built-in groups, with routing replaced by the same fields published on ingest.
cat >"$BENCH_DIR/gateway.yml" <<YAML
hot_series:
  builtin_groups: [${BUILTIN_GROUPS-network, hardware}]
  groups:
    - name: routing
      selectors: ['{__name__=~"vllm:.+|sglang:.+"}']
      endpoint_labels: [namespace, pod]
      model_label: model_name
      info_labels: [instance, node]
      nats_subject: eagle_eye.routing_metrics
      mode: on-ingest
      fields:
        num_requests_waiting: {sources: [vllm:num_requests_waiting, sglang:num_queue_reqs], aggregate: sum}
        num_requests_running: {sources: [vllm:num_requests_running, sglang:num_running_reqs], aggregate: sum}
        kv_cache_usage: {sources: [vllm:kv_cache_usage_perc, vllm:gpu_cache_usage_perc, sglang:token_usage], aggregate: max}
        ttft_seconds: [{ratio: [vllm:time_to_first_token_seconds_sum, vllm:time_to_first_token_seconds_count], counters: true}]
YAML
if [[ -n ${GATEWAY_YAML:-} ]]; then
	printf '%s\n' "$GATEWAY_YAML" >>"$BENCH_DIR/gateway.yml"
fi

# shellcheck source=scripts/process.sh
source scripts/process.sh
SERVER_PID=""
stop_gateway() {
	stop_pid
	rm -rf "$BENCH_DIR/gw-data"
}
trap stop_gateway EXIT

start_gateway() {
	mkdir -p "$BENCH_DIR/gw-data"
	"$BENCH_DIR/gateway" --web.listen-address=127.0.0.1:19095 --storage.dir="$BENCH_DIR/gw-data" \
		--config.file="$BENCH_DIR/gateway.yml" --nats.listen-address=127.0.0.1:14222 \
		--zmq.bind=tcp://127.0.0.1:0 --log.level=warn ${GATEWAY_ARGS:-} >"$BENCH_DIR/results/gateway-$1.log" 2>&1 &
	SERVER_PID=$!
	wait_ready http://127.0.0.1:19095/-/ready "$BENCH_DIR/results/gateway-$1.log"
}

loadgen() {
	"$BENCH_DIR/loadgen" --url=http://127.0.0.1:19095/api/v1/write --protocol="$PROTOCOL" \
		--series=$SERIES --samples-per-request=$PER_REQUEST --concurrency=4 \
		--progress=0 --pid="$SERVER_PID" --clock-ticks="$(getconf CLK_TCK)" "$@"
}

if [[ -n ${HALF_RATE:-} ]]; then
	HALF=$HALF_RATE
	rm -f "$BENCH_DIR/results/max.txt"
else
	start_gateway max
	sleep 2
	echo "== full speed" >&2
	loadgen --requests=12000 --duration=25s >"$BENCH_DIR/results/max.txt"
	cat "$BENCH_DIR/results/max.txt" >&2
	stop_gateway
	MAX=$(awk -F': *' '/^samples\/s/ {print $2}' "$BENCH_DIR/results/max.txt")
	HALF=$((MAX / 2))
fi
REQUESTS=$((HALF * SECONDS_HALF / PER_REQUEST))

for run in $(seq 1 "$RUNS"); do
	start_gateway "half$run"
	sleep 2
	echo "== half rate ($HALF samples/s) with the router probe, run $run" >&2
	loadgen --duration=5m --rate="$HALF" --requests="$REQUESTS" >"$BENCH_DIR/results/half-run$run.txt" &
	LOAD_PID=$!
	# The router is a process of its own, as in production; it starts once the first round
	# (series creation) is in and stops before the load does.
	sleep 3
	"$BENCH_DIR/loadgen" --url=http://127.0.0.1:19095/api/v1/write --router.nats-url=nats://127.0.0.1:14222 \
		--router.probe-only --duration="$((SECONDS_HALF - 5))s" >"$BENCH_DIR/results/probe-run$run.txt"
	wait "$LOAD_PID"
	cat "$BENCH_DIR/results/half-run$run.txt" "$BENCH_DIR/results/probe-run$run.txt" >&2
	stop_gateway
done

printf '%-10s %12s %10s %8s %10s %10s %10s\n' run samples/s cpu-s/1M probes p50 p99 max
for f in "$BENCH_DIR/results/max.txt" "$BENCH_DIR"/results/half-run*.txt; do
	[[ -f "$f" ]] || continue
	r=$(basename "$f" .txt)
	probe="$BENCH_DIR/results/probe-${r#half-}.txt"
	[[ -f "$probe" ]] || probe=/dev/null
	awk -v r="$r" -F': *' '
		/^samples\/s/ {sps=$2} /cpu-s per 1M/ {cpu=$2} /^router probes/ {split($2, p, " "); probes=p[3]}
		/^router latency p50/ {p50=$2} /^router latency p99/ {p99=$2} /^router latency max/ {mx=$2}
		END {printf "%-10s %12s %10s %8s %10s %10s %10s\n", r, sps, cpu, probes, p50, p99, mx}' "$f" "$probe"
done
