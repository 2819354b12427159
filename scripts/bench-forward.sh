#!/usr/bin/env bash
# CPU added by forwarding: the gateway as shipped (hot series, bundled rules), fed by
# cmd/loadgen at a fixed rate (a 100k-series fleet, RW 2.0, 2,000 series per request), once
# without remote_write and once forwarding everything to a second gateway (the destination:
# hot series and rules off; its CPU is not counted, but it shares the machine). Each
# measurement starts both gateways fresh. Everything listens on 127.0.0.1 only; every run is
# bounded by --requests and --duration.
#
# Environment (all optional):
#   BENCH_DIR  scratch directory (default /tmp/eefwd); its data dirs are removed at the end
#   RUNS       repetitions of the off/on pair (default 2)
#   RATE       samples per second sent to the gateway (default 300000)
#   SECONDS_RUN  length of each measurement (default 30)
#   PROTOCOL   rw1 or rw2, for the load and the destination alike (default rw2)
#   DEST_PROTOCOL  rw1 or rw2 for the destination alone (default PROTOCOL): with another
#              protocol than the load's, every write is re-encoded instead of passed through
#   GATEWAY_ARGS  extra flags for the measured gateway
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/eefwd}
RUNS=${RUNS:-2}
RATE=${RATE:-300000}
SECONDS_RUN=${SECONDS_RUN:-30}
PROTOCOL=${PROTOCOL:-rw2}
PER_REQUEST=2000
REQUESTS=$((RATE * SECONDS_RUN / PER_REQUEST))
DEST_PROTOCOL=${DEST_PROTOCOL:-$PROTOCOL}
case "$PROTOCOL" in
rw1 | rw2) ;;
*) echo "PROTOCOL must be rw1 or rw2" >&2; exit 2 ;;
esac
case "$DEST_PROTOCOL" in
rw1) MESSAGE=prometheus.WriteRequest ;;
rw2) MESSAGE=io.prometheus.write.v2.Request ;;
*) echo "DEST_PROTOCOL must be rw1 or rw2" >&2; exit 2 ;;
esac

mkdir -p "$BENCH_DIR/results"
go build -o "$BENCH_DIR/gateway" ./cmd/gateway
go build -o "$BENCH_DIR/loadgen" ./cmd/loadgen
printf 'hot_series:\n  enabled: false\n' >"$BENCH_DIR/destination.yml"
echo '{}' >"$BENCH_DIR/off.yml"
cat >"$BENCH_DIR/on.yml" <<YAML
remote_write:
  - url: http://127.0.0.1:19196/api/v1/write
    protobuf_message: $MESSAGE
YAML

# shellcheck source=scripts/process.sh
source scripts/process.sh
SERVER_PID=""
DEST_PID=""
stop_all() {
	stop_pid
	SERVER_PID=$DEST_PID
	DEST_PID=""
	stop_pid
	rm -rf "$BENCH_DIR/gw-data" "$BENCH_DIR/dest-data"
}
trap stop_all EXIT

measure() { # mode run
	mkdir -p "$BENCH_DIR/gw-data" "$BENCH_DIR/dest-data"
	"$BENCH_DIR/gateway" --web.listen-address=127.0.0.1:19196 --storage.dir="$BENCH_DIR/dest-data" \
		--config.file="$BENCH_DIR/destination.yml" --no-diagnosis.enabled --nats.listen-address=127.0.0.1:0 \
		--zmq.bind=tcp://127.0.0.1:0 --log.level=warn >"$BENCH_DIR/results/destination-$1-$2.log" 2>&1 &
	DEST_PID=$!
	"$BENCH_DIR/gateway" --web.listen-address=127.0.0.1:19195 --storage.dir="$BENCH_DIR/gw-data" \
		--config.file="$BENCH_DIR/$1.yml" --nats.listen-address=127.0.0.1:0 --zmq.bind=tcp://127.0.0.1:0 \
		--log.level=warn ${GATEWAY_ARGS:-} >"$BENCH_DIR/results/gateway-$1-$2.log" 2>&1 &
	SERVER_PID=$!
	wait_ready http://127.0.0.1:19196/-/ready "$BENCH_DIR/results"
	wait_ready http://127.0.0.1:19195/-/ready "$BENCH_DIR/results"
	sleep 2
	echo "== forwarding $1, run $2 ($RATE samples/s)" >&2
	"$BENCH_DIR/loadgen" --url=http://127.0.0.1:19195/api/v1/write --protocol="$PROTOCOL" \
		--series=100000 --samples-per-request=$PER_REQUEST --concurrency=4 --progress=0 \
		--rate="$RATE" --requests="$REQUESTS" --duration=5m \
		--pid="$SERVER_PID" --clock-ticks="$(getconf CLK_TCK)" >"$BENCH_DIR/results/$1-run$2.txt"
	if [[ $1 == on ]]; then
		sleep 2
		curl -fs http://127.0.0.1:19195/api/v1/status/forward >"$BENCH_DIR/results/status-run$2.json" || true
	fi
	stop_all
}

for run in $(seq 1 "$RUNS"); do
	measure off "$run"
	measure on "$run"
done

printf '%-6s %12s %16s %16s %14s\n' run samples/s 'cpu-s/1M off' 'cpu-s/1M on' 'added by fwd'
for run in $(seq 1 "$RUNS"); do
	off=$(awk -F': *' '/cpu-s per 1M/ {print $2}' "$BENCH_DIR/results/off-run$run.txt")
	on=$(awk -F': *' '/cpu-s per 1M/ {print $2}' "$BENCH_DIR/results/on-run$run.txt")
	sps=$(awk -F': *' '/^samples\/s/ {print $2}' "$BENCH_DIR/results/on-run$run.txt")
	awk -v r="$run" -v s="$sps" -v a="$off" -v b="$on" \
		'BEGIN {printf "%-6s %12s %16s %16s %13.0f%%\n", r, s, a, b, (b - a) / a * 100}'
done
