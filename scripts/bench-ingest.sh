#!/usr/bin/env bash
# End-to-end ingest benchmark: the same load (cmd/loadgen) against the gateway (RW 1.0 and
# 2.0), Prometheus 3 (RW 1.0 and 2.0) and VictoriaMetrics (RW 1.0), one server at a time, each
# started fresh on an empty data directory and stopped after its run. Everything listens on
# 127.0.0.1 only. Reports land in $BENCH_DIR/results; a summary table is printed at the end.
#
# Environment (all optional):
#   BENCH_DIR   scratch directory (default /tmp/eebench); its *-data dirs are removed at the end
#   RUNS        repetitions of the whole sequence (default 2)
#   REQUESTS    write requests per run (default 10000: 20M samples at 2000 per request)
#   SERIES, SAMPLES_PER_REQUEST, CONCURRENCY   load shape (defaults 100000, 2000, 4)
#   SERVERS     which runs, in order (default "gateway-rw1 gateway-rw2 prometheus-rw1 prometheus-rw2 victoriametrics-rw1")
#   PROMETHEUS  Prometheus 3 binary (default ~/.cache/eagle-eye/prometheus-v0.316.0/prometheus)
#   VICTORIA    VictoriaMetrics binary (default victoria-metrics from PATH)
#   GATEWAY_ARGS  extra gateway flags, e.g. "--no-diagnosis.enabled --config.file=no-hot.yml"
#               to measure the write path alone
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/eebench}
RUNS=${RUNS:-2}
REQUESTS=${REQUESTS:-10000}
SERIES=${SERIES:-100000}
SAMPLES_PER_REQUEST=${SAMPLES_PER_REQUEST:-2000}
CONCURRENCY=${CONCURRENCY:-4}
SERVERS=${SERVERS:-gateway-rw1 gateway-rw2 prometheus-rw1 prometheus-rw2 victoriametrics-rw1}
PROMETHEUS=${PROMETHEUS:-$HOME/.cache/eagle-eye/prometheus-v0.316.0/prometheus}
VICTORIA=${VICTORIA:-victoria-metrics}
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$BENCH_DIR/results"
go build -o "$BENCH_DIR/gateway" ./cmd/gateway
go build -o "$BENCH_DIR/loadgen" ./cmd/loadgen
printf 'global:\n  scrape_interval: 1m\n' >"$BENCH_DIR/prometheus.yml"

# shellcheck source=scripts/process.sh
source scripts/process.sh
SERVER_PID=""

stop_server() {
	stop_pid
	rm -rf "$BENCH_DIR/gw-data" "$BENCH_DIR/prom-data" "$BENCH_DIR/vm-data"
}
trap stop_server EXIT

# start_server NAME: starts one server on an empty data directory and waits until it is ready.
# Sets SERVER_PID and URL.
start_server() {
	local log="$BENCH_DIR/results/$1.log" ready
	case "$1" in
	gateway)
		mkdir -p "$BENCH_DIR/gw-data"
		"$BENCH_DIR/gateway" --web.listen-address=127.0.0.1:19095 --storage.dir="$BENCH_DIR/gw-data" \
			--nats.listen-address=127.0.0.1:0 --zmq.bind=tcp://127.0.0.1:0 ${GATEWAY_ARGS:-} \
			--log.level=warn >"$log" 2>&1 &
		URL=http://127.0.0.1:19095/api/v1/write ready=http://127.0.0.1:19095/-/ready ;;
	prometheus)
		"$PROMETHEUS" --config.file="$BENCH_DIR/prometheus.yml" --web.enable-remote-write-receiver \
			--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest \
			--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request \
			--storage.tsdb.path="$BENCH_DIR/prom-data" --web.listen-address=127.0.0.1:19090 \
			--log.level=warn >"$log" 2>&1 &
		URL=http://127.0.0.1:19090/api/v1/write ready=http://127.0.0.1:19090/-/ready ;;
	victoriametrics)
		"$VICTORIA" -httpListenAddr=127.0.0.1:18428 -storageDataPath="$BENCH_DIR/vm-data" \
			-loggerLevel=WARN >"$log" 2>&1 &
		URL=http://127.0.0.1:18428/api/v1/write ready=http://127.0.0.1:18428/health ;;
	esac
	SERVER_PID=$!
	wait_ready "$ready" "$log"
}

for run in $(seq 1 "$RUNS"); do
	for s in $SERVERS; do
		server=${s%-*} proto=${s##*-}
		out="$BENCH_DIR/results/$s-run$run.txt"
		start_server "$server"
		sleep 2 # let start-up work settle before the CPU reading
		echo "== $s run $run (pid $SERVER_PID)" >&2
		cpu_before=$(head -1 /proc/stat)
		"$BENCH_DIR/loadgen" --url="$URL" --protocol="$proto" --series="$SERIES" \
			--samples-per-request="$SAMPLES_PER_REQUEST" --concurrency="$CONCURRENCY" \
			--requests="$REQUESTS" --duration=10m --pid="$SERVER_PID" --clock-ticks="$CLK_TCK" \
			--progress=10s >"$out" || echo "loadgen exited $? for $s run $run" >&2
		# Whole-machine view over the run: pre-encoding included. High steal means the
		# host was busy with other work and the figures of this run are suspect.
		awk -v a="$cpu_before" -v b="$(head -1 /proc/stat)" 'BEGIN {
			split(a, x); split(b, y); for (i = 2; i <= 9; i++) { d[i] = y[i] - x[i]; t += d[i] }
			printf "host busy (all cores): %.0f%%\nhost steal:          %.1f%%\n", 100 * (t - d[5] - d[6]) / t, 100 * d[9] / t
		}' >>"$out"
		cat "$out" >&2
		stop_server
	done
done

# Summary: one line per report.
printf '%-20s %-5s %12s %10s %10s %8s %8s %10s %8s %6s\n' server run samples/s cpu-s/1M rss-MiB B/series p50 p99 failed steal
for run in $(seq 1 "$RUNS"); do
	for s in $SERVERS; do
		f="$BENCH_DIR/results/$s-run$run.txt"
		[[ -f $f ]] || continue
		awk -v s="$s" -v r="$run" -F': *' '
			/^samples\/s/ {sps=$2} /cpu-s per 1M/ {cpu=$2} /^server rss after/ {rss=$2+0}
			/rss per series/ {bps=$2+0} /^latency p50/ {p50=$2} /^latency p99/ {p99=$2}
			/^requests failed/ {failed=$2} /^host steal/ {steal=$2}
			END {printf "%-20s %-5s %12s %10s %10s %8s %8s %10s %8s %6s\n", s, r, sps, cpu, rss, bps, p50, p99, failed, steal}' "$f"
	done
done
