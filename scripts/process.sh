# Sourced by the benchmark scripts.

# stop_pid stops the process whose PID is in SERVER_PID, started by the sourcing script:
# SIGTERM, up to 30 s to exit, then SIGKILL; SERVER_PID is cleared.
stop_pid() {
	if [[ -n "${SERVER_PID:-}" ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		for _ in $(seq 1 60); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.5
		done
		kill -9 "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}

# wait_ready URL LOG: polls URL until it answers 2xx (up to 60 s); on timeout names LOG and fails.
wait_ready() {
	for _ in $(seq 1 120); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.5
	done
	echo "$1 did not become ready; see $2" >&2
	return 1
}
